"""What a recorded op leaves behind (a `Node`, the tensor's ``grad_fn``) and whether ops record.

The backward walker (`autodiff.backward`) talks to a node through three things only: its
``inputs``, ``vjp(g, create_graph)`` (one gradient per input, ``None`` where none is needed) and
``release()``. It knows nothing about particular ops.
"""

from __future__ import annotations

import contextlib
import weakref
from typing import Any

from autodiff.ops import Op


class GradMode:
    """Global switches read on every recorded op (one attribute lookup each)."""

    enabled = True
    detect_anomaly = False
    record_origins = False  # on under detect_anomaly, and while autodiff.testing localises


class GradObservers:
    """Objects told each tensor's complete gradient during backward (`autodiff.viz` snapshots).

    The walker checks ``active`` once per node; nothing is called when it is empty.
    """

    active: list = []

    @classmethod
    def add(cls, observer) -> None:
        cls.active.append(observer)

    @classmethod
    def remove(cls, observer) -> None:
        cls.active.remove(observer)


def is_grad_enabled() -> bool:
    return GradMode.enabled


@contextlib.contextmanager
def switched(**flags: bool):
    """Set GradMode's flags for a block and restore them after; also usable as a decorator."""
    previous = {name: getattr(GradMode, name) for name in flags}
    for name, value in flags.items():
        setattr(GradMode, name, value)
    try:
        yield
    finally:
        for name, value in previous.items():
            setattr(GradMode, name, value)


def no_grad():
    """Context manager and decorator: ops inside record nothing (as torch.no_grad)."""
    return switched(enabled=False)


class GraphFreedError(RuntimeError):
    pass


def freed_error(node: Any) -> GraphFreedError:
    return GraphFreedError(
        f"backward: the graph through {node!r} was freed by an earlier backward; "
        "pass retain_graph=True to the first backward to walk it again"
    )


class Node:
    """One application of a primitive: its op, input tensors and parameters (dim, shape, ...)."""

    __slots__ = ("op", "inputs", "params", "_out", "origin")

    def __init__(self, op: Op, inputs: tuple, params: dict, out: Any) -> None:
        self.op = op
        self.inputs = inputs
        self.params = params
        self._out = weakref.ref(out)  # weak: the output holds this node, not the other way round
        self.origin = None  # where user code created it, noted while origins are recorded

    @property
    def name(self) -> str:
        return self.op.name

    def vjp(self, g: Any, create_graph: bool) -> list:
        inputs = self.inputs
        if inputs is None:
            raise freed_error(self)
        out = self._out()
        if create_graph:
            args = inputs
        else:
            args, out = [t.data for t in inputs], out.data
        params = self.params
        return [
            rule(g, out, *args, **params) if t.requires_grad else None
            for t, rule in zip(inputs, self.op.vjps)
        ]

    def release(self) -> None:
        self.inputs = None

    def __repr__(self) -> str:
        return f"<{camel(self.name)}Backward>"


def tensors_in_order(roots: list) -> list:
    """Every tensor behind `roots`, each after the tensors it was computed from (an iterative
    post-order, inputs in argument order): the order the program ran, and a numbering that is
    the same for the same program every time."""
    order, seen = [], set()  # tensors hash by identity
    stack = [(t, False) for t in reversed(roots)]
    while stack:
        t, inputs_done = stack.pop()
        if t in seen:
            continue
        node = t.grad_fn
        if node is None or inputs_done:
            seen.add(t)
            order.append(t)
            continue
        if node.inputs is None:
            raise freed_error(node)
        stack.append((t, True))
        stack.extend((i, False) for i in reversed(node.inputs) if i not in seen)
    return order


def camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))
