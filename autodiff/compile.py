"""`autodiff.compile`: trace a function once, replay it as straight-line code.

Trace: the first call for a signature runs the function eagerly while every primitive applied is
noted (op, inputs, params, output), and what it does besides ops (`autodiff.effects`: a
``backward()``, ``.grad = None``, an in-place update under ``no_grad``, ``optimizer.step()``).
From those notes `autodiff.program` writes four Python functions, as records and then source,
and compiles them once:

- guard (written by `autodiff.guards`): whether a call may replay the program (grad mode; each
  Tensor argument's shape, dtype and requires_grad; other arguments' values; the same facts of
  the tensors it captured; the names the function reads);
- read: the tensors the forward reads, the arguments' (also those inside a list, tuple or dict
  argument, as jax.jit takes a pytree's leaves) and the captured ones;
- forward: one line per op, the op table's own forward on arrays (``t3 = matmul(t1, c0)``);
- backward: the VJP rules in reverse order, for the tensors that need a gradient only,
  contributions summed. The rules run once at trace time, so a contribution is given ``sum_to``
  or ``astype`` only where its shape or dtype differs from its input's, and a sum is taken in
  place where the backward owns the array.

An op repeated on the same slots (and parameters, and grad mode) is computed once.

Buffers: an intermediate of `program.LEND_FROM` bytes or more is written into an array the program
keeps (``t0 = matmul(a0, c0, out=t0_buffer)``), and so is an intermediate's gradient where its
rule can write into one (``into=g_t1_buffer``). A set of them is lent to one call at a time
(`Buffers`), so a value a backward still needs is never overwritten; outputs, and gradients
that reach a leaf's ``.grad``, are never buffers.

Guard: a call tries the cached programs' guards, the most recently used first (up to
`cache_size` are kept), and traces again when none passes. Replay: the forward source runs on
arrays (no Tensor, no node per op) and the outputs are Tensors whose single node runs the
backward source, so ``loss.backward()`` fills ``.grad`` and optimizers work unchanged. A whole
training step (one that calls ``backward()`` itself) is one program: its forward calls its
backward, stores the gradients as the walker would (or keeps them local where ``zero_grad()``
clears them at its end), and writes the update into the weights; its outputs get no node.

What a tracer cannot see: Python control flow that depends on tensor values read through
``.data`` or NumPy, and arrays computed from tensor values outside the engine; they are frozen
as they were when traced. ``check=True`` runs the eager function from the same state beside the
first replays and raises `CompileCheckError` on any difference in the outputs or in the state a
step leaves. What acts outside the ops, which a replay would skip, is refused while tracing
(`graph.refuse_while_tracing`): ``autodiff.grad``, ``backward(gradient=...)``, setting ``.grad``
to a tensor, an in-place op while recording, an update through ``.data`` after ``backward()``,
random draws, forward mode, a Tensor made from another's values, ``bool()`` and ``.item()`` of
a tensor (``if x.sum() > 0``: the branch would be frozen); a call that fails while tracing is
undone.
Comparisons, ``detach()`` and casts to integers pass no gradient, but they are ops (not
recorded, still traced), so a replay computes them again. A user-defined `Function` cannot be
traced, and ``backward(create_graph=True)`` through a compiled function is refused. Inside
forward mode or `detect_anomaly`, which watch every op, the function runs eagerly instead of
replaying. NumPy arrays (not Tensors) that the function reads are frozen into the trace as they
were: pass data that changes as Tensor arguments (or lists, tuples, dicts of them),
positionally or by keyword (a keyword Tensor is moved to its parameter's place; a keyword-only
one is refused). An index made from a tensor (``x[labels]``) is read from that tensor's slot at
each replay; a boolean mask's shape, and an integer index's sign where the traced one had no
negative value, are checked there. A Tensor argument no op reads is guarded by identity. The
names the function's own code reads from its closure and globals are guarded: rebound, they
trace again.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

import numpy as np

from autodiff.effects import Effects, Saved, identical
from autodiff.fusion import agree, fuse, numba_or_explain, with_flush_to_zero
from autodiff.graph import GradMode, InPlace, freed_error, no_grad
from autodiff.guards import tensors_in
from autodiff.primitive import Op
from autodiff.program import (
    CompileCheckError,
    Entry,
    Fuse,
    Program,
    build,
    taped,
)
from autodiff.tensor import Tensor

__all__ = ["CompileCheckError", "Compiled", "compile", "trace"]

CHECKED_CALLS = 3  # replays compared with an eager run under check=True


BACKENDS = ("numpy", "numba")


def compile(fn: Callable[..., Any], *, check: bool = False, cache_size: int = 8,
            backend: str = "numpy") -> Compiled:
    """`fn` traced once per signature and replayed as generated straight-line code (see above);
    with ``backend="numba"``, its runs of elementwise ops and reductions as fused loops
    (`autodiff.fusion`; needs the ``fast`` extra), replayed with subnormal results flushed to
    zero on x86-64 (`autodiff.flush`)."""
    if not callable(fn):
        raise TypeError(f"compile: expected a function to trace, got {type(fn).__name__}")
    if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
        raise ValueError(f"compile: cache_size must be an int ≥ 1 (the traces kept), got "
                         f"{cache_size!r}")
    if backend not in BACKENDS:
        raise ValueError(f"compile: unknown backend {backend!r}; expected one of "
                         f"{', '.join(map(repr, BACKENDS))}")
    if backend == "numba":
        numba_or_explain()
    return Compiled(fn, check, cache_size, fuse if backend == "numba" else None)


# ---------------------------------------------------------------- tracing
def trace(fn: Callable[..., Any], args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> tuple[Any, list[Entry], dict[int, Any], Effects]:
    """Run fn eagerly, noting every primitive applied (under no_grad too), where the arrays
    of the indices it used came from (id(index array) -> the Tensor or array it copied), and
    what it did besides ops (`effects`). If fn raises, what it changed is put back."""
    entries: list[Entry] = []
    effects = Effects(entries)

    def note(op: Op, inputs: tuple[Tensor, ...], params: dict[str, Any], out: Tensor) -> None:
        entries.append(Entry(op, inputs, params, out))

    GradMode.op_hooks.append(note)
    tracing, GradMode.tracing = GradMode.tracing, True
    outer, GradMode.effects = GradMode.effects, effects
    try:
        result = fn(*args, **kwargs)
    except BaseException:
        effects.undo()
        raise
    finally:
        GradMode.op_hooks.remove(note)
        GradMode.tracing = tracing  # as it was: a trace inside another one goes on tracing
        GradMode.effects = outer
        sources, GradMode.index_sources = GradMode.index_sources, {}
    return result, entries, sources, effects


# ---------------------------------------------------------------- replay
class CompiledNode:
    """The one node of a replayed output: its backward is the generated backward source.
    A `graph.GradNode`, whose inputs are the leaves that get gradients."""

    __slots__ = ("program", "index", "values", "inputs", "read", "buffers", "origin",
                 "recorded_at")

    def __init__(self, program: Program, index: int, values: tuple[Any, ...],
                 leaves: tuple[Tensor, ...], read: list[Tensor],
                 buffers: list[np.ndarray]) -> None:
        self.program, self.index, self.values = program, index, values
        self.inputs: tuple[Tensor, ...] | None = leaves
        self.read = read  # every tensor the program read: none may change before backward
        self.buffers = buffers  # the forward's, lent to this call: given back on release
        self.origin: str | None = None
        self.recorded_at = InPlace.count

    name = label = "compiled"

    def vjp(self, g: Any, create_graph: bool) -> list[Any]:
        if self.inputs is None:
            raise freed_error(self)
        if create_graph:
            raise RuntimeError("backward: create_graph=True through an autodiff.compile'd "
                               "function is not supported; call the function uncompiled to "
                               "differentiate its gradients")
        if InPlace.count != self.recorded_at and any(
                t._version > self.recorded_at for t in self.read):
            raise RuntimeError("backward: a tensor the compiled function used was modified in "
                               "place after it ran, and its gradient needs the old values")
        backward = self.program.backwards[self.index]
        assert backward is not None
        lent = self.program.gradient_buffers[self.index]
        arrays = lent.take()
        try:
            return backward(g, *self.values, *arrays)
        finally:
            lent.give_back(arrays)  # no gradient it returns is one of them (see build)

    def release(self) -> None:
        self.inputs = None
        self.values, self.read = (), []
        self.program.buffers.give_back(self.buffers)  # nothing reads the values any more
        self.buffers = []

    def formulas(self) -> list[str]:
        return ["the compiled backward (see step.tape())"]

    def replay(self) -> Callable[..., Any]:
        raise TypeError("a compiled node cannot be replayed op by op")

    def __repr__(self) -> str:
        return "<CompiledBackward>"


class Compiled:
    """A function traced once per signature and replayed (`autodiff.compile`)."""

    def __init__(self, fn: Callable[..., Any], check: bool, cache_size: int,
                 fuse: Fuse | None = None) -> None:
        self.fn, self.cache_size, self.fuse = fn, cache_size, fuse
        self.programs: list[Program] = []  # the most recently used first
        self.checks_left = CHECKED_CALLS if check else 0
        functools.update_wrapper(self, fn)
        self.name = getattr(fn, "__name__", type(fn).__name__)  # for messages

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs and any(tensors_in(v) for v in kwargs.values()):
            args, kwargs = self._positional(args, kwargs)
        if GradMode.op_hooks or GradMode.record_origins:
            # forward mode, and anomaly detection and localisation (which record each op's
            # origin), watch every op: a replay runs none, so run the function as it is
            return self.fn(*args, **kwargs)
        program = self._find(args, kwargs)
        if program is None:
            return self._trace(args, kwargs)  # the eager run's own outputs
        if self.checks_left:
            self.checks_left -= 1
            return self._checked(program, args, kwargs)
        return self._replay(program, args)

    def _positional(self, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call with each Tensor given by keyword moved to its place among the positional
        arguments (``step(x, y=t)`` is ``step(x, t)``): a Tensor argument is read at each
        replay, where a keyword value would be frozen into the trace."""
        try:
            bound = inspect.signature(self.fn).bind(*args, **kwargs)
        except (TypeError, ValueError):  # no signature, or one the call does not fit: as eager
            return args, kwargs
        if any(tensors_in(v) for v in bound.kwargs.values()):
            raise TypeError(f"compile: {self.name} takes a Tensor as a keyword-only "
                            "argument, which a trace would freeze; make it a positional "
                            "parameter")
        return bound.args, bound.kwargs

    def _find(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Program | None:
        """The cached program whose guard this call passes, if any."""
        for k, program in enumerate(self.programs):
            if program.guard(args, kwargs):
                if k:
                    self.programs.insert(0, self.programs.pop(k))
                return program
        return None

    def _trace(self, args: tuple[Any, ...], kwargs: dict[str, Any], undo: bool = False) -> Any:
        """Run fn eagerly, tracing it, and cache the program written from the trace. With
        `undo` (a trace made only to be looked at), what a step changed is put back."""
        result, entries, sources, effects = trace(self.fn, args, kwargs)
        try:
            effects.refuse_hidden_writes(self.name)
            program = build(self.fn, entries, sources, args, kwargs, result, effects,
                            self.fuse)
            if self.fuse is not None:
                program = with_flush_to_zero(program)
        except BaseException:
            effects.undo()  # the call fails as a whole: nothing it changed stays changed
            raise
        if undo:
            effects.undo()
        self.programs.insert(0, program)
        del self.programs[self.cache_size:]
        return result

    def _replay(self, program: Program, args: tuple[Any, ...]) -> Any:
        read = program.read(args)  # in slot order
        arrays = [t.data for t in read]
        lent = program.buffers
        buffers = lent.take()
        if program.step:  # backward ran inside: the outputs are values, the buffers free again
            try:
                results = program.forward(read, *arrays, *buffers)
            finally:
                lent.give_back(buffers)
            if program.returns_none:
                return None
            outputs = _outputs(program, read, results)
            return tuple(outputs) if program.output_is_tuple else outputs[0]
        results, values = program.forward(read, *arrays, *buffers)
        outputs = _outputs(program, read, results)
        if GradMode.enabled and program.leaves:
            leaves = tuple([read[k] for k in program.leaves])
            for j, out in enumerate(outputs):
                if program.backwards[j] is not None:  # at most one when buffers are lent
                    out.requires_grad = True
                    out.grad_fn = CompiledNode(program, j, (*arrays, *values), leaves, read,
                                               buffers)
                    buffers = []
        lent.give_back(buffers)  # those no backward will read
        if program.returns_none:
            return None
        return tuple(outputs) if program.output_is_tuple else outputs[0]

    def _checked(self, program: Program, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """check=True: a replay, then the eager function from the same state, must give the
        same outputs and leave the same state (the values, .grad and optimizer state of what
        a step changes), exactly. The eager run's state is the one kept."""
        before = [Saved(t, optimizer) for t, optimizer in program.touched]
        outputs = self._replay(program, args)
        replayed = [Saved(t, optimizer) for t, optimizer in program.touched]
        for saved in reversed(before):
            saved.restore()
        if program.step:
            eager = self.fn(*args, **kwargs)
        else:
            with no_grad():
                eager = self.fn(*args, **kwargs)
        given = outputs if isinstance(outputs, tuple) else (outputs,)
        expected = eager if isinstance(eager, tuple) else (eager,)
        same = agree if self.fuse is not None else identical  # fused sums run in another order
        differences = [f"output {i}" for i, (r, e) in enumerate(zip(given, expected))
                       if r is not None and not same(r.data, e.data)]
        differences += [f"{difference} of a tensor of shape {saved.t.shape}"
                        for saved in replayed for difference in [saved.difference(same)]
                        if difference is not None]
        if differences:
            raise CompileCheckError(
                f"compile: {differences[0]} after the replayed {self.name} differs from "
                "the eager run: the trace froze something that changed, which a tracer cannot "
                "see (Python control flow on tensor values, an array computed outside the "
                "engine, a name rebound that a function it calls reads, a model's layer "
                "replaced); call it without compile")
        return outputs

    def program(self, *args: Any, **kwargs: Any) -> Program:
        """The program replayed for these arguments (traced if need be, and what the traced
        call changed put back: asking for a step's program does not take a step)."""
        if self._find(args, kwargs) is None:
            self._trace(args, kwargs, undo=True)
        return self.programs[0]

    def tape(self, *args: Any, **kwargs: Any) -> str:
        """The straight-line program replayed for these arguments (traced if need be), one line
        per op with its output's shape: forward, then each output's backward."""
        program = self.program(*args, **kwargs)
        lines = [f"# {slot}: {words}, {shape} {dtype}"
                 f"{', read by no op: guarded by identity' if slot in program.unread else ''}"
                 for slot, _, words in program.arguments
                 for shape, dtype in [program.shapes[slot]]]
        lines += [f"# c{i}: captured {t.name + ' ' if t.name else ''}{t.shape} {t.dtype}"
                  f"{', requires grad' if t.requires_grad else ''}"
                  f"{f' = {t.item()!r}' if t.ndim == 0 else ''}"
                  for i, t in enumerate(program.captured)]
        lines += program.guard_source
        for function in program.functions:
            lines += ["", *function.source(taped)]
        for source in program.kernels:
            lines += ["", "# a fused kernel, compiled by numba", source.rstrip()]
        return "\n".join(lines)


def _outputs(program: Program, read: list[Tensor], results: Any) -> list[Tensor]:
    """A replay's outputs as Tensors: a tensor fn returned as it was given (an argument, a
    weight) is that tensor itself, as in eager; the others wrap the arrays computed."""
    return [Tensor._wrap(data) if k is None else read[k]
            for k, data in zip(program.passed_through, results)]
