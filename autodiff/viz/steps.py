"""The backward pass step by step, for learners: one drawing per rule applied."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from autodiff.backward import grad
from autodiff.tensor import Tensor
from autodiff.viz.dot import build
from autodiff.viz.snapshot import OpInfo, Snapshot, snapshot


def backward_steps(loss: Tensor, params: dict[str, Tensor] | None = None,
                   rankdir: str = "TB") -> list[Any]:
    """One graphviz Digraph per step of ``loss``'s backward pass, in a list.

    Each step takes the next tensor whose gradient is complete, in the walker's own order, and
    applies the rule of the op that made it (outlined in red, its rule written out). Gradients
    known so far are shown and coloured by norm. Runs its own backward with
    ``retain_graph=True``, so ``.grad`` and the graph are left as they were.
    """
    with snapshot(loss, params=params) as snap:
        leaves = [info.tensor for info in snap.tensors
                  if info.is_leaf and info.tensor.requires_grad]
        for info in snap.tensors:
            info.grad = None  # show only what this backward computes
        grad(loss, leaves, retain_graph=True, allow_unused=True)
    made_by = {op.output: op for op in snap.ops}
    order = snap.backward_order
    return [_step(snap, made_by, order, step, rankdir) for step in range(len(order))]


def _step(snap: Snapshot, made_by: dict[int, OpInfo], order: list[int], step: int,
          rankdir: str) -> Any:
    """The drawing of one step: the gradients known after it, the rule it applied outlined."""
    index = order[step]
    known = set(order[:step + 1])
    partial = Snapshot([replace(t, grad=t.grad if t.index in known else None)
                        for t in snap.tensors], snap.ops)
    op = made_by.get(index)
    if op is None:
        title = f"step {step + 1}/{len(order)}: the gradient reaches a leaf: " \
                f"{snap.tensors[index].label or 'tensor ' + str(index)}"
    else:
        title = f"step {step + 1}/{len(order)}: {op.label or op.name}'s rule: " + \
            ";  ".join(op.formulas)
    return build(partial, show_grads=True, show_rules=True, rankdir=rankdir,
                 highlight=None if op is None else op.index, title=title)
