"""The graph: what a recorded op leaves behind (a node, the tensor's ``grad_fn``), the modes that
say whether ops record, and the in-place count.

Two kinds of node exist, `Node` (a primitive of the op table) and `function.FunctionNode` (a
user's `Function`). Both implement `GradNode`, the one interface the walker, `viz` and
`autodiff.testing` rely on; none of them knows about particular ops.
"""

from __future__ import annotations

import contextlib
import threading
import weakref
from collections.abc import Callable
from typing import Any, Protocol

from autodiff.primitive import Dispatch, Op


class GradModes(threading.local):
    """Switches read on every recorded op. Each thread has its own, as in PyTorch: `no_grad` in
    one thread does not stop another from recording."""

    def __init__(self) -> None:
        self.enabled = True
        self.detect_anomaly = False
        self.record_origins = False  # on under detect_anomaly, and while autodiff.testing localizes
        # objects told each tensor's complete gradient during backward (`autodiff.viz`
        # snapshots); the walker checks the list once per node, nothing is called when it is empty
        self.observers: list[Any] = []
        # what wants to see every primitive applied, hook(op, inputs, params, out): forward
        # mode propagating tangents, autodiff.compile tracing a function; empty otherwise
        self.op_hooks: list[Any] = []
        # forward mode (autodiff.forward): each tensor's tangent while it runs, else None
        self.tangents: dict[Any, Any] | None = None
        self.tangents_recorded = False  # tangents are recorded Tensors (create_graph=True)
        self.tracing = False  # autodiff.compile is tracing: a Function cannot be traced
        # while tracing: id(an index's own array) -> the array it was copied from (a Tensor's,
        # the caller's), so a replay reads the index from its slot instead of freezing it
        self.index_sources: dict[int, Any] = {}
        # while tracing: the `effects.Effects` told of what the function does besides ops
        # (backward, .grad, in-place writes, optimizer updates); None otherwise
        self.effects: Any = None
        # what each `no_grad` block entered in this thread found, innermost last (one object
        # may be entered again, nested, and from several threads)
        self.enabled_before_no_grad: list[bool] = []


GradMode = GradModes()


def is_grad_enabled() -> bool:
    return GradMode.enabled


def refuse_while_tracing(what: str, instead: str) -> None:
    """Raise while `autodiff.compile` traces a function: `what` acts outside the ops a trace
    records (on .grad, on a random generator, on arrays), so a replay would not repeat it."""
    if GradMode.tracing:
        raise RuntimeError(f"compile: {what} inside a compiled function would run once, while "
                           f"it is traced, and never when it is replayed; {instead}")


class set_modes(contextlib.ContextDecorator):
    """Set GradMode's flags for a block and restore them after; also a decorator.

    One object may be entered again, nested, and from several threads at once: what each entry
    restores is kept on a stack of the entering thread.
    """

    def __init__(self, **flags: Any) -> None:
        self.flags = flags
        self._saved = threading.local()

    def __enter__(self) -> set_modes:
        stack = self._saved.__dict__.setdefault("stack", [])
        stack.append({name: getattr(GradMode, name) for name in self.flags})
        for name, value in self.flags.items():
            setattr(GradMode, name, value)
        return self

    def __exit__(self, *exc: object) -> None:
        for name, value in self._saved.stack.pop().items():
            setattr(GradMode, name, value)


class no_grad(contextlib.ContextDecorator):
    """Context manager and decorator: ops inside record nothing (as torch.no_grad). The one
    switch `set_modes` sets, without its stack: an optimizer's update enters it per step."""

    def __enter__(self) -> no_grad:
        GradMode.enabled_before_no_grad.append(GradMode.enabled)
        GradMode.enabled = False
        return self

    def __exit__(self, *exc: object) -> None:
        GradMode.enabled = GradMode.enabled_before_no_grad.pop()


class InPlace:
    """The process-wide count of in-place modifications. A tensor's ``_version`` is the count
    at its latest one (0: never modified). A node notes the count when it is recorded; in
    backward, a tensor it saved whose version is higher was modified after it was used. While
    the count has not moved, nothing was modified and backward checks nothing (one comparison
    per node)."""

    count = 0
    _lock = threading.Lock()

    # id -> (the tensor, the count) of each tensor that an in-place op recorded on gave a new
    # node (``h += 1`` while recording): a node that used it before must not follow that node
    rebound: dict[int, tuple[weakref.ref[Any], int]] = {}

    @classmethod
    def bump(cls, t: Any) -> None:
        """Call after modifying t's array in place."""
        with cls._lock:  # two threads' bumps never share a number
            cls.count += 1
            t._version = cls.count

    @classmethod
    def rebind(cls, t: Any) -> None:
        """Call when an in-place op recorded on t gives it a new node (after `bump`)."""
        key = id(t)
        cls.rebound[key] = (weakref.ref(t, lambda _: cls.rebound.pop(key, None)), t._version)

    @classmethod
    def rebound_at(cls, t: Any) -> int:
        """The count when t last took a new node from an in-place op (0: never)."""
        entry = cls.rebound.get(id(t))
        return entry[1] if entry is not None and entry[0]() is t else 0


class GraphFreedError(RuntimeError):
    pass


class GradNode(Protocol):
    """What a node offers the walker (inputs, vjp, release) and viz and testing (name, origin,
    formulas, replay). `Node` and `function.FunctionNode` implement it."""

    inputs: tuple[Any, ...] | None  # the input tensors, in argument order; None once released
    origin: str | None  # the line of user code that created it, while origins are recorded

    @property
    def name(self) -> str: ...

    @property
    def label(self) -> str:
        """How a drawing names it (its name, or what its op says from its parameters)."""
        ...

    def vjp(self, g: Any, create_graph: bool) -> list[Any]:
        """One gradient per input (None where none is needed), given the output's gradient."""
        ...

    def release(self) -> None:
        """Drop the inputs (and whatever backward needed): the graph is freed."""
        ...

    def formulas(self) -> list[str]:
        """Each input's gradient rule in words."""
        ...

    def replay(self) -> Callable[..., Any]:
        """The node's op as a function of new input tensors (its parameters fixed)."""
        ...


def freed_error(node: GradNode) -> GraphFreedError:
    return GraphFreedError(
        f"backward: the graph through {node!r} was freed by an earlier backward; "
        "pass retain_graph=True to the first backward to walk it again"
    )


class Node:
    """One application of a primitive: its op, input tensors and parameters (dim, shape, ...).

    It notes the in-place count when recorded: backward refuses to run a rule whose saved
    tensors were changed in place since (the rule would compute with the new values).
    """

    __slots__ = ("op", "inputs", "params", "_out", "origin", "recorded_at")

    def __init__(self, op: Op, inputs: tuple[Any, ...], params: dict[str, Any], out: Any) -> None:
        self.op = op
        self.inputs: tuple[Any, ...] | None = inputs
        self.params = params
        self._out = weakref.ref(out)  # weak: the output holds this node, not the other way round
        self.origin: str | None = None
        self.recorded_at = InPlace.count

    @property
    def name(self) -> str:
        return self.op.name

    @property
    def label(self) -> str:
        return self.op.label(**self.params) if self.op.label is not None else self.op.name

    def vjp(self, g: Any, create_graph: bool) -> list[Any]:
        inputs = self.inputs
        if inputs is None:
            raise freed_error(self)
        out = self._out()
        if InPlace.count != self.recorded_at:  # something was modified in place since
            check_rebound(self, inputs, self.recorded_at)
            check_versions(self, inputs, self.recorded_at, out, self.op.saves)
        if create_graph:
            args: Any = inputs
        else:  # the output is alive: backward reached this node through it
            args, out = [t.data for t in inputs], out.data  # type: ignore[union-attr]
        params, rules = self.params, self.op.vjps
        if self.op.variadic:  # one rule serves every input (cat, stack): it is told which
            rule = rules[0]
            assert rule is not None
            return [rule(g, out, *args, which=k, **params) if t.requires_grad else None
                    for k, t in enumerate(inputs)]
        return [
            rule(g, out, *args, **params) if rule is not None and t.requires_grad else None
            for t, rule in zip(inputs, rules)
        ]

    def release(self) -> None:
        self.inputs = None

    def formulas(self) -> list[str]:
        """Its rules' formulas, then its kink and domain in words (generated from the table)."""
        described = self.op.describe()
        return self.op.formulas() + ([described] if described else [])

    def replay(self) -> Callable[..., Any]:
        return lambda *xs: Dispatch.record(self.op, *xs, **self.params)  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"<{camel(self.name)}Backward>"


def check_rebound(node: GradNode, inputs: tuple[Any, ...], recorded_at: int) -> None:
    """Raise if an input of `node` took a new node from an in-place op recorded on it after
    `node` used it: the walker would follow the new node, a graph `node` never saw (PyTorch
    keeps the old edge; here it is an error, never a silently wrong gradient)."""
    if not InPlace.rebound:
        return
    for i, t in enumerate(inputs):
        if InPlace.rebound_at(t) > recorded_at:
            raise RuntimeError(
                f"backward: {node.name}'s input {i} (shape {t.shape}) was changed by an in-place "
                f"op after {node.name} used it (h += ..., h[i] = ..., h.add_(...) while "
                "recording); write h = h + ... for a new tensor instead")


def check_versions(node: GradNode, tensors: tuple[Any, ...], recorded_at: int, out: Any,
                   saves: tuple[int | str, ...] | None, what: str = "input") -> None:
    """Raise if a tensor that `node`'s gradient rule reads was modified in place after the node
    was recorded. `saves` names what the rule reads: input positions, "out" for the output;
    None for all of them."""
    for i in (*range(len(tensors)), "out") if saves is None else saves:
        t, which = (out, "output") if i == "out" else (tensors[int(i)], f"{what} {i}")
        if t is not None and t._version > recorded_at:
            raise RuntimeError(
                f"backward: {node.name}'s {which} (shape {t.shape}) was modified in place after "
                f"it was used, and {node.name}'s gradient needs the old values; modify a copy, "
                "or modify it before using it")


def tensors_in_order(roots: list[Any]) -> list[Any]:
    """Every tensor behind `roots`, each after the tensors it was computed from (an iterative
    post-order, inputs in argument order): the order the program ran, and a numbering that is
    the same for the same program every time."""
    order: list[Any] = []
    seen: set[Any] = set()  # tensors hash by identity
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
