"""A snapshot of a graph: what the drawing needs, kept after backward frees the graph.

The walk is iterative and deterministic: tensors and ops are numbered in the order a depth-first
walk from the roots meets them (inputs in order), so one program always gives the same numbering.
It reads the graph through ``grad_fn`` and the `graph.GradNode` interface only (``inputs``,
``name``, ``formulas()``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autodiff.graph import GradMode, GraphFreedError, tensors_in_order
from autodiff.tensor import Tensor


@dataclass
class TensorInfo:
    index: int
    tensor: Tensor  # kept alive by the snapshot, so values and .grad stay readable
    label: str | None  # its name, or its key in params
    is_param: bool
    is_root: bool
    grad: np.ndarray | None = None  # .grad when the snapshot was taken, or what backward sent
    tangent: np.ndarray | None = None  # its tangent in a forward-mode pass (`tangents=`)

    @property
    def is_leaf(self) -> bool:
        return self.tensor.grad_fn is None

    @property
    def kind(self) -> str:
        """How a drawing shows it: "output", "param" (a parameter, or a leaf that requires
        grad), "input" (another leaf) or "tensor" (computed)."""
        if self.is_root:
            return "output"
        if self.is_param or (self.is_leaf and self.tensor.requires_grad):
            return "param"
        return "input" if self.is_leaf else "tensor"


@dataclass
class OpInfo:
    index: int
    name: str  # the op's name (chains are folded by it)
    formulas: list[str]  # each input's gradient rule, in words
    inputs: list[int]  # tensor indices, in argument order
    output: int
    label: str | None = None  # how it is drawn, where that is not its name (``.T``)
    origin: str | None = None  # the line of user code that made it, where origins were recorded


@dataclass
class Snapshot:
    """Tensors and ops of the graph behind `roots`, numbered in walk order."""

    tensors: list[TensorInfo] = field(default_factory=list)
    ops: list[OpInfo] = field(default_factory=list)
    backward_order: list[int] = field(default_factory=list)  # tensor indices, as backward met them
    _by_id: dict[int, int] = field(default_factory=dict, repr=False)

    def observe(self, tensor: Tensor, grad: Any) -> None:
        """Called by the backward walker with each tensor's complete gradient."""
        index = self._by_id.get(id(tensor))
        if index is not None and self.tensors[index].tensor is tensor:
            # a copy: backward may later add into the array it sent (a leaf's .grad)
            self.tensors[index].grad = np.array(getattr(grad, "data", grad))
            self.backward_order.append(index)

    def __enter__(self) -> Snapshot:
        GradMode.observers.append(self)
        return self

    def __exit__(self, *exc: object) -> None:
        GradMode.observers.remove(self)


def snapshot(*roots: Tensor, params: dict[str, Tensor] | None = None,
             tangents: dict[Tensor, Any] | None = None) -> Snapshot:
    """Record the graph behind `roots`, with each tensor's tangent from `tangents` (the table a
    `autodiff.forward.forward_mode` block yields). Use as a context manager around
    ``backward()`` to keep every intermediate gradient too::

        with viz.snapshot(loss, params=dict(model.named_parameters())) as snap:
            loss.backward()
        viz.to_dot(snap, show_grads=True)
    """
    names = {id(t): key for key, t in (params or {}).items()}
    snap = Snapshot()
    root_ids = {id(r) for r in roots}

    def add_tensor(t: Tensor) -> int:
        snap._by_id[id(t)] = len(snap.tensors)
        snap.tensors.append(TensorInfo(len(snap.tensors), t, t.name or names.get(id(t)),
                                       id(t) in names, id(t) in root_ids,
                                       None if t.grad is None else t.grad.data.copy(),
                                       _tangent(tangents, t)))
        return snap._by_id[id(t)]

    try:
        tensors = tensors_in_order(list(roots))
    except GraphFreedError:
        raise RuntimeError("viz: backward has freed this graph; take a viz.snapshot before "
                           "backward (or pass retain_graph=True)") from None
    for t in tensors:
        index = add_tensor(t)
        node = t.grad_fn
        if node is not None:
            snap.ops.append(OpInfo(len(snap.ops), node.name, node.formulas(),
                                   [snap._by_id[id(i)] for i in node.inputs], index, node.label,
                                   node.origin))
    return snap


def _tangent(tangents: dict[Tensor, Any] | None, t: Tensor) -> np.ndarray | None:
    found = None if tangents is None else tangents.get(t)
    return None if found is None else np.array(getattr(found, "data", found))
