"""`autodiff.compile`: trace a function once, replay it as straight-line code.

Trace: the first call for a signature runs the function eagerly while every primitive applied is
noted (op, inputs, params, output). From those notes it writes four Python functions, as
source, and compiles them once:

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

Buffers: an intermediate of `LEND_FROM` bytes or more is written into an array the program
keeps (``t0 = matmul(a0, c0, out=t0_buffer)``), and so is an intermediate's gradient where its
rule can write into one (``into=g_t1_buffer``). A set of them is lent to one call at a time
(`Buffers`), so a value a backward still needs is never overwritten; outputs, and gradients
that reach a leaf's ``.grad``, are never buffers.

Guard: a call tries the cached programs' guards, the most recently used first (up to
`cache_size` are kept), and traces again when none passes. Replay: the forward source runs on
arrays (no Tensor, no node per op) and the outputs are Tensors whose single node runs the
backward source, so ``loss.backward()`` fills ``.grad`` and optimizers work unchanged.

What a tracer cannot see: Python control flow that depends on tensor values (an ``if`` on a
``.item()``), and arrays computed from tensor values outside the engine; they are frozen as they
were when traced. ``check=True`` runs the eager function beside the first replays and raises
`CompileCheckError` on any difference. What acts outside the ops, which a replay would skip, is
refused while tracing (`graph.refuse_while_tracing`): ``backward()`` and ``autodiff.grad``,
setting ``.grad`` or ``zero_()``, random draws, forward mode, a Tensor made from another's values,
``bool()`` of a tensor (``if x.sum() > 0``: the branch would be frozen).
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

import builtins
import functools
import inspect
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autodiff.graph import GradMode, InPlace, freed_error, no_grad
from autodiff.guards import (
    guard_source,
    literal,
    named,
    names_read,
    tensor_arguments,
    tensors_in,
)
from autodiff.primitive import OPS, Op, sum_to
from autodiff.tensor import Tensor

CHECKED_CALLS = 3  # replays compared with an eager run under check=True
# Arrays of this size or more are written into buffers a program keeps (``out=``, ``into=``):
# glibc's malloc gives smaller ones from its free lists, faster than NumPy's handling of out=
# (measured: the notebook step's 8–40 KiB arrays in buffers made it 2–6% slower), and takes
# larger ones from the kernel (mmap) by default, faulting their pages in again at every call.
LEND_FROM = 128 << 10


class CompileCheckError(RuntimeError):
    """With ``check=True``: a replay and the eager function disagreed."""


def compile(fn: Callable[..., Any], *, check: bool = False,
            cache_size: int = 8) -> Compiled:
    """`fn` traced once per signature and replayed as generated straight-line code (see above)."""
    if not callable(fn):
        raise TypeError(f"compile: expected a function to trace, got {type(fn).__name__}")
    if isinstance(cache_size, bool) or not isinstance(cache_size, int) or cache_size < 1:
        raise ValueError(f"compile: cache_size must be an int ≥ 1 (the traces kept), got "
                         f"{cache_size!r}")
    return Compiled(fn, check, cache_size)


# ---------------------------------------------------------------- tracing
@dataclass
class Entry:
    """One primitive applied while tracing."""

    op: Op
    inputs: tuple[Tensor, ...]
    params: dict[str, Any]
    out: Tensor


def trace(fn: Callable[..., Any], args: tuple[Any, ...],
          kwargs: dict[str, Any]) -> tuple[Any, list[Entry], dict[int, Any]]:
    """Run fn eagerly, noting every primitive applied (under no_grad too), and where the arrays
    of the indices it used came from (id(index array) -> the Tensor or array it copied)."""
    entries: list[Entry] = []

    def note(op: Op, inputs: tuple[Tensor, ...], params: dict[str, Any], out: Tensor) -> None:
        entries.append(Entry(op, inputs, params, out))

    GradMode.op_hooks.append(note)
    tracing, GradMode.tracing = GradMode.tracing, True
    try:
        result = fn(*args, **kwargs)
    finally:
        GradMode.op_hooks.remove(note)
        GradMode.tracing = tracing  # as it was: a trace inside another one goes on tracing
        sources, GradMode.index_sources = GradMode.index_sources, {}
    return result, entries, sources


# ---------------------------------------------------------------- the program
class Buffers:
    """The arrays a program writes into (``out=``, ``into=``), lent to one call at a time.

    A call takes a free set, or makes one, and gives it back once nothing can read it any more:
    the forward's once its backward has run (until then a second call gets a set of its own,
    so ``loss1 = step(a); loss2 = step(b); loss1.backward()`` reads loss1's values), a
    backward's when it returns. A set never given back (a loss with no backward, a graph
    retained) is left to the garbage collector. list.pop and list.append are atomic, so threads
    replaying one program never share a set."""

    __slots__ = ("specs", "free")
    KEPT = 2  # free sets kept: one per thread replaying at once, for two (more are made)

    def __init__(self, specs: list[tuple[tuple[int, ...], np.dtype]]) -> None:
        self.specs = specs  # each array's (shape, dtype)
        self.free: list[list[np.ndarray]] = []

    @classmethod
    def of(cls, named: list[tuple[str, tuple[int, ...], np.dtype]]) -> Buffers | None:
        """The buffers of these (name, shape, dtype), or None for none."""
        return cls([(shape, dtype) for _, shape, dtype in named]) if named else None

    def take(self) -> list[np.ndarray]:
        try:
            return self.free.pop()
        except IndexError:
            return [np.empty(shape, dtype) for shape, dtype in self.specs]

    def give_back(self, arrays: list[np.ndarray]) -> None:
        if arrays and len(self.free) < self.KEPT:
            self.free.append(arrays)


@dataclass
class Program:
    """A traced function as generated Python functions, and the tensors they read."""

    guard: Callable[[tuple[Any, ...], dict[str, Any]], bool]  # may this call replay it?
    read: Callable[[tuple[Any, ...]], list[Tensor]]  # the tensors a call's forward reads
    # each Tensor argument: its slot, where it is in args (``args[1][0]``), that in words
    arguments: list[tuple[str, str, str]]
    captured: list[Tensor]  # tensors fn reached that are not arguments (weights, constants)
    # the slots that get gradients (the node's inputs), as positions among the tensors the
    # forward reads: the Tensor arguments, then the captured tensors
    leaves: list[int]
    forward: Callable[..., Any]
    backwards: list[Callable[..., Any] | None]  # per output; None when it needs no gradient
    source: str
    shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = field(default_factory=dict)
    output_is_tuple: bool = False
    # the slots of Tensor arguments no op read: guarded by identity (see guards.guard_source)
    unread: set[str] = field(default_factory=set)
    # the program as data, for drawing: (slot written, function called, slots read), forward
    # lines first, then each backward's
    steps: list[tuple[str, str, list[str]]] = field(default_factory=list)
    # the arrays the forward writes into (``t0_buffer``), and those each backward does; None
    # where there are none
    buffers: Buffers | None = None
    gradient_buffers: list[Buffers | None] = field(default_factory=list)


def same_shape(value: np.ndarray, traced: tuple[int, ...]) -> None:
    """A replay's check where a shape depends on values (indexing by a mask from a tensor)."""
    if value.shape != traced:
        raise CompileCheckError(
            f"compile: indexing by a boolean mask gave shape {value.shape} where the traced "
            f"call's gave {traced}; a shape that depends on tensor values cannot be replayed: "
            "use autodiff.where(mask, x, 0) instead, or call the function uncompiled")


def non_negative(index: np.ndarray) -> None:
    """A replay's check of an integer index read from a tensor whose traced values were all
    ≥ 0: code that validated them in Python (cross_entropy's labels) does not run again."""
    if index.size and index.min() < 0:
        raise CompileCheckError(
            f"compile: an index read from a tensor holds {index.min()} where the traced call's "
            "held no negative value; the checks the function made on it in Python (as "
            "cross_entropy's on its labels) are not run again by a replay, and NumPy would count "
            "it from the end; call the function uncompiled to have them checked")


# names the generated code uses for itself: an op or a type of the same name gets another
RESERVED = dict(len=len, isinstance=isinstance, type=type, GradMode=GradMode, Tensor=Tensor,
                sum_to=sum_to, same_shape=same_shape, non_negative=non_negative, guard=None,
                forward=None, read=None, captured=None, args=None, kwargs=None, g=None,
                missing=object())  # missing: a keyword argument not given


def build(fn: Callable[..., Any], entries: list[Entry], sources: dict[int, Any],
          args: tuple[Any, ...], kwargs: dict[str, Any], result: Any) -> Program:
    """The program for one trace: guard, forward and backward source, compiled. `sources`: where
    the index arrays came from (`trace`)."""
    names: dict[int, str] = {}  # id(tensor) -> slot name
    array_slots: dict[int, str] = {}  # id(a named tensor's array) -> its slot
    keep: list[Tensor] = []  # tensors named, kept alive so their ids stay theirs
    shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {}  # each slot's, for tape and viz
    captured: list[Tensor] = []

    def give_slot(t: Tensor, slot: str) -> None:
        names[id(t)] = slot
        array_slots.setdefault(id(t.data), slot)
        shapes.setdefault(slot, (t.shape, t.dtype))
        keep.append(t)

    def slot_of(t: Tensor) -> str:
        """Its slot: an argument's, an op output's, or (first seen here) a new captured one."""
        if id(t) not in names:  # made before fn ran, or a constant made inside it
            captured.append(t)
            give_slot(t, f"c{len(captured) - 1}")
        return names[id(t)]

    arguments = []  # (slot, where in args, in words) of each Tensor argument
    for slot, expression, words, t in tensor_arguments(args):
        if id(t) not in names:
            give_slot(t, slot)
            arguments.append((slot, expression, words))
    namespace: dict[str, Any] = dict(RESERVED)
    forward_lines = []
    steps: list[tuple[str, str, list[str]]] = []
    outputs_list = list(result) if isinstance(result, tuple) else [result]
    returned = {id(o) for o in outputs_list}
    returned_arrays = [o.data for o in outputs_list if isinstance(o, Tensor)]
    # the forward's values are lent to a call until its backward has run: with two outputs
    # whose backwards run separately, neither could tell when the other's had, so none are
    lend = sum(isinstance(o, Tensor) and o.requires_grad for o in outputs_list) <= 1
    buffers: list[tuple[str, tuple[int, ...], np.dtype]] = []  # (name, shape, dtype)
    computed: dict[tuple[Any, ...], str] = {}  # (op, input slots, params, ...) -> its slot
    merged: set[int] = set()  # entries that repeat an earlier one: their slot is its slot
    # an index array copied from a tensor's data: read from that tensor's slot at each replay
    from_slot: dict[int, str] = {}
    checked: set[str] = set()  # slots of integer indices checked non-negative
    for k, e in enumerate(entries):
        for t in e.inputs:
            slot_of(t)
        indices = []  # (array, the slot it is read from) of each index array in the params
        for array in _arrays_in(e.params):
            source = sources.get(id(array))
            if isinstance(source, Tensor):
                from_slot[id(array)] = slot_of(source)
            elif source is not None and id(source) in array_slots:
                from_slot[id(array)] = array_slots[id(source)]
            if id(array) in from_slot:
                indices.append((array, from_slot[id(array)]))
        read = [names[id(t)] for t in e.inputs]
        key = (e.op.name, tuple(read), e.out.requires_grad, tuple(e.params.items()))
        if id(e.out) not in returned and all(literal(v) for v in e.params.values()):
            if key in computed:  # the same op on the same slots again: computed once
                give_slot(e.out, computed[key])
                merged.add(k)
                continue
            computed[key] = f"t{k}"
        give_slot(e.out, f"t{k}")
        function = named(namespace, e.op.name, e.op.forward)
        params = _params(e.params, f"p{k}", namespace, from_slot)
        if lend and e.op.writes_into and _worth_a_buffer(e.out.data) and not any(
                np.may_share_memory(e.out.data, o) for o in returned_arrays):
            # written into an array of the program's own, never one the caller sees
            buffers.append((f"t{k}_buffer", e.out.shape, e.out.dtype))
            params.append(f"out=t{k}_buffer")
        for array, index_slot in indices:
            if array.dtype.kind == "i" and array.min(initial=0) >= 0 \
                    and index_slot not in checked:
                # a replay does not run again what checked these indices in Python
                # (cross_entropy's labels): a negative one would count from the end
                forward_lines.append(f"    non_negative({index_slot})")
                checked.add(index_slot)
        forward_lines.append(f"    t{k} = {function}({', '.join(read + params)})")
        if any(array.dtype == bool for array, _ in indices):
            # a mask from a tensor selects as many elements as it holds True: a shape the
            # guard cannot know in advance, so the replay checks it
            forward_lines.append(f"    same_shape(t{k}, {e.out.shape})")
        steps.append((f"t{k}", function, read + [index_slot for _, index_slot in indices]))
    if not all(isinstance(o, Tensor) and id(o) in names for o in outputs_list):
        raise TypeError("compile: the function must return a Tensor computed by the engine, or "
                        "a tuple of them")
    outputs = [names[id(o)] for o in outputs_list]
    values = [f"t{k}" for k in range(len(entries)) if k not in merged]
    # gradients go to the arguments and captured tensors that require grad (a captured one
    # with its own graph passes them on: the walker continues from it)
    leaf_names = list(dict.fromkeys(names[id(t)] for t in keep
                                    if t.requires_grad and names[id(t)][0] in "ac"))
    read_slots = [slot for slot, _, _ in arguments] + [f"c{i}" for i in range(len(captured))]
    leaves = [read_slots.index(name) for name in leaf_names]
    forward_sig = ", ".join(read_slots + [name for name, _, _ in buffers])
    namespace["captured"] = captured
    read_by_ops = {slot for _, _, read in steps for slot in read}
    unread = {slot for slot, _, _ in arguments if slot not in read_by_ops}
    tensors_read = [expression for _, expression, _ in arguments]
    tensors_read += [f"captured[{i}]" for i in range(len(captured))]
    source = [*guard_source(args, kwargs, captured, names_read(fn, namespace), unread,
                            namespace), "",
              "def read(args):  # the tensors the forward reads, in slot order",
              f"    return [{', '.join(tensors_read)}]", "",
              f"def forward({forward_sig}):", *forward_lines,
              f"    return ({', '.join(outputs)},), ({', '.join(values)}{',' if values else ''})"]
    backwards_src: list[list[str] | None] = []
    gradient_buffers = []
    for j, out_name in enumerate(outputs):
        lent: list[tuple[str, tuple[int, ...], np.dtype]] = []
        lines = _backward_lines(entries, merged, names, from_slot, out_name, leaf_names,
                                namespace, steps, shapes, lent)
        gradient_buffers.append(Buffers.of(lent))
        if lines is not None:
            parameters = ["g", *read_slots, *values, *(name for name, _, _ in lent)]
            backwards_src.append([f"def backward{j}({', '.join(parameters)}):", *lines])
        else:
            backwards_src.append(None)
    text = "\n".join(source + [line for b in backwards_src if b for line in [""] + b])
    exec(builtins.compile(text, "<autodiff.compile>", "exec"), namespace)
    return Program(namespace["guard"], namespace["read"], arguments, captured, leaves,
                   namespace["forward"],
                   [namespace[f"backward{j}"] if b else None for j, b in enumerate(backwards_src)],
                   text, shapes, isinstance(result, tuple), steps=steps, unread=unread,
                   buffers=Buffers.of(buffers),
                   gradient_buffers=gradient_buffers)


def _worth_a_buffer(value: Any) -> bool:
    """An array the op made (not a view, not a NumPy scalar) of `LEND_FROM` bytes or more."""
    return type(value) is np.ndarray and value.base is None and value.nbytes >= LEND_FROM


def _params(params: dict[str, Any], name: str, namespace: dict[str, Any],
            from_slot: dict[int, str]) -> list[str]:
    """Keyword arguments as source: literals where repr gives one, an index array by the slot it
    was copied from (`from_slot`), else a namespace constant (a tuple: part by part)."""
    def text(value: Any, constant: str) -> str:
        if literal(value):
            return repr(value)
        if isinstance(value, np.dtype):
            return named(namespace, value.name, value)
        if id(value) in from_slot:
            return from_slot[id(value)]
        if isinstance(value, tuple) and any(id(v) in from_slot for v in _arrays_in(value)):
            parts = [text(v, f"{constant}_{i}") for i, v in enumerate(value)]
            return f"({', '.join(parts)}{',' if len(parts) == 1 else ''})"
        namespace[constant] = value
        return constant

    return [f"{key}={text(value, f'{name}_{key}')}" for key, value in params.items()]


def _arrays_in(value: Any) -> list[np.ndarray]:
    """The arrays in a parameter, or in a dict of them (an index: an array, or a tuple of
    parts)."""
    if isinstance(value, np.ndarray):
        return [value]
    if isinstance(value, dict):
        value = tuple(value.values())
    return [a for v in value for a in _arrays_in(v)] if isinstance(value, tuple) else []


def _backward_lines(entries: list[Entry], merged: set[int], names: dict[int, str],
                    from_slot: dict[int, str], out_name: str,
                    leaves: list[str], namespace: dict[str, Any],
                    steps: list[tuple[str, str, list[str]]],
                    shapes: dict[str, tuple[tuple[int, ...], np.dtype]],
                    lent: list[tuple[str, tuple[int, ...], np.dtype]]) -> list[str] | None:
    """The backward of one output: VJP rules in reverse order, contributions summed.

    The rules run once here, on the traced values, so each contribution's shape and dtype is
    known (as torch.fx's shape propagation does): only one that differs from its input's is
    given the walker's ``sum_to`` (undo broadcasting) or ``astype``, in the source itself.
    It also shows which gradient arrays a slot owns alone (a rule made them, and they are no
    forward value, input or other gradient): a second contribution is added into those in
    place. A merged entry (one that repeated an earlier) is skipped: the earlier one's rules
    pass on the gradient both received, summed.

    A rule that can write into a given array (``into``) is lent one for an intermediate's first
    contribution (``into=g_t1_buffer``, appended to `lent`), unless that array reaches a leaf's
    gradient, which the caller keeps: the trace shows which do."""
    produced = {names[id(e.out)]: k for k, e in enumerate(entries) if k not in merged}
    if out_name not in produced or not entries[produced[out_name]].out.requires_grad:
        return None
    root = entries[produced[out_name]].out
    grads = {out_name: np.ones_like(root.data)}  # the gradients of this one run
    owned: set[str] = set()  # the slots whose gradient array is theirs alone
    forward_arrays = {id(x.data) for e in entries for x in (*e.inputs, e.out)}
    shapes[f"g_{out_name}"] = (root.shape, root.dtype)
    lines = [f"    g_{out_name} = g"]
    buffered: dict[str, tuple[int, np.ndarray]] = {}  # slot -> (its line, the array lent)
    for k in range(produced[out_name], -1, -1):
        e = entries[k]
        out = names[id(e.out)]
        if k in merged or out not in grads or not e.out.requires_grad:
            continue
        rules = e.op.vjps * len(e.inputs) if e.op.variadic else e.op.vjps
        for i, (t, rule) in enumerate(zip(e.inputs, rules)):
            if rule is None or not t.requires_grad:
                continue
            params = {**e.params, "which": i} if e.op.variadic else e.params
            # asked of the rule itself: its copy on arrays keeps the code, not a signature
            # that a wrapper declares (``__signature__``, as mutation testing's trampolines do)
            takes_into = "into" in inspect.signature(rule).parameters
            rule = on_arrays(rule)
            name = names[id(t)]
            arrays = [grads[out], e.out.data, *[x.data for x in e.inputs]]
            with np.errstate(all="ignore"):
                part = rule(*arrays, **params)
                buffer = None
                if (name not in leaves and name not in grads  # an intermediate's first share
                        and _worth_a_buffer(part) and takes_into):
                    buffer = np.empty_like(part)
                    if rule(*arrays, **params, into=buffer) is buffer:
                        part = buffer
                        lent.append((f"g_{name}_buffer", part.shape, part.dtype))
            function = named(namespace, rule.__name__, rule)
            arguments = [f"g_{out}", out] + [names[id(x)] for x in e.inputs]
            arguments += _params(params, f"p{k}", namespace, from_slot)
            call = f"{function}({', '.join(arguments)})"
            if part is buffer:
                buffered[name] = (len(lines), buffer)
                call = f"{call[:-1]}, into=g_{name}_buffer)"
            if part.shape != t.shape:
                part, call = sum_to(part, t.shape), f"sum_to({call}, {t.shape})"
            if part.dtype != t.dtype:
                part, call = part.astype(t.dtype), f"{call}.astype({t.dtype.name!r})"
            if name in owned:
                grads[name] += part
                lines.append(f"    g_{name} += {call}")
            elif name in grads:
                grads[name] = grads[name] + part
                lines.append(f"    g_{name} = g_{name} + {call}")
                owned.add(name)
            else:
                if (type(part) is np.ndarray and part.base is None and part.flags.writeable
                        and id(part) not in forward_arrays
                        and not any(part is g for g in grads.values())):
                    owned.add(name)
                grads[name] = part
                lines.append(f"    g_{name} = {call}")
                shapes[f"g_{name}"] = (t.shape, t.dtype)
            steps.append((f"g_{name}", function, [f"g_{out}", out] +
                          [names[id(x)] for x in e.inputs]))
    for name, (line, buffer) in buffered.items():
        if any(np.may_share_memory(buffer, grads[leaf]) for leaf in leaves if leaf in grads):
            # the caller would keep it as a .grad: written by the next call, so not lent
            lines[line] = lines[line].replace(f", into=g_{name}_buffer)", ")", 1)
            lent.remove((f"g_{name}_buffer", buffer.shape, buffer.dtype))
    found = [f"g_{name}" if name in grads else "None" for name in leaves]
    lines.append(f"    return [{', '.join(found)}]")
    return lines


@functools.cache
def on_arrays(rule: Callable[..., Any]) -> Callable[..., Any]:
    """The rule itself, with ``prim.NAME`` bound to the op's forward: a compiled backward runs
    on arrays only (create_graph is refused), so it needs no dispatch on the operands' type."""
    forwards = types.SimpleNamespace(**{name: op.forward for name, op in OPS.items()})
    return types.FunctionType(rule.__code__, {**rule.__globals__, "prim": forwards},
                              rule.__name__, rule.__defaults__, rule.__closure__)


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
        if lent is None:
            return backward(g, *self.values)  # the generated code returns a new list
        arrays = lent.take()
        try:
            return backward(g, *self.values, *arrays)
        finally:
            lent.give_back(arrays)  # no gradient it returns is one of them (see build)

    def release(self) -> None:
        self.inputs = None
        self.values, self.read = (), []
        if self.buffers and self.program.buffers is not None:
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

    def __init__(self, fn: Callable[..., Any], check: bool, cache_size: int) -> None:
        self.fn, self.cache_size = fn, cache_size
        self.programs: list[Program] = []  # the most recently used first
        self.checks_left = CHECKED_CALLS if check else 0
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if kwargs and any(tensors_in(v, "", "") for v in kwargs.values()):
            args, kwargs = self._positional(args, kwargs)
        if GradMode.op_hooks or GradMode.detect_anomaly or GradMode.record_origins:
            # forward mode, anomaly detection and localisation watch every op: a replay runs
            # none, so run the function as it is
            return self.fn(*args, **kwargs)
        program = self._find(args, kwargs)
        if program is None:
            return self._trace(args, kwargs)  # the eager run's own outputs
        outputs = self._replay(program, args)
        if self.checks_left:
            self.checks_left -= 1
            self._compare(outputs, args, kwargs)
        return outputs

    def _positional(self, args: tuple[Any, ...],
                    kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The call with each Tensor given by keyword moved to its place among the positional
        arguments (``step(x, y=t)`` is ``step(x, t)``): a Tensor argument is read at each
        replay, where a keyword value would be frozen into the trace."""
        try:
            bound = inspect.signature(self.fn).bind(*args, **kwargs)
        except (TypeError, ValueError):  # no signature, or one the call does not fit: as eager
            return args, kwargs
        if any(tensors_in(v, "", "") for v in bound.kwargs.values()):
            raise TypeError(f"compile: {self.fn.__name__} takes a Tensor as a keyword-only "
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

    def _trace(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Run fn eagerly, tracing it, and cache the program written from the trace."""
        result, entries, sources = trace(self.fn, args, kwargs)
        self.programs.insert(0, build(self.fn, entries, sources, args, kwargs, result))
        del self.programs[self.cache_size:]
        return result

    def _replay(self, program: Program, args: tuple[Any, ...]) -> Any:
        read = program.read(args)  # in slot order
        arrays = [t.data for t in read]
        lent = program.buffers
        buffers = lent.take() if lent is not None else []
        results, values = program.forward(*arrays, *buffers)
        outputs = [Tensor._wrap(data) for data in results]
        if GradMode.enabled and program.leaves:
            leaves = tuple([read[k] for k in program.leaves])
            for j, out in enumerate(outputs):
                if program.backwards[j] is not None:  # at most one when buffers are lent
                    out.requires_grad = True
                    out.grad_fn = CompiledNode(program, j, (*arrays, *values), leaves, read,
                                               buffers)
                    buffers = []
        if buffers and lent is not None:  # no backward will read them
            lent.give_back(buffers)
        return tuple(outputs) if program.output_is_tuple else outputs[0]

    def _compare(self, outputs: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """check=True: the eager function must give the same outputs, exactly."""
        with no_grad():
            eager = self.fn(*args, **kwargs)
        replayed = outputs if isinstance(outputs, tuple) else (outputs,)
        expected = eager if isinstance(eager, tuple) else (eager,)
        for i, (r, e) in enumerate(zip(replayed, expected)):
            if r.shape != e.shape or not np.array_equal(r.data, e.data, equal_nan=True):
                raise CompileCheckError(
                    f"compile: output {i} of the replayed {self.fn.__name__} differs from the "
                    "eager run: the trace froze something that changed, which a tracer cannot "
                    "see (Python control flow on tensor values, an array computed outside the "
                    "engine, a name rebound that a function it calls reads, a model's layer "
                    "replaced); call it without compile")

    def program(self, *args: Any, **kwargs: Any) -> Program:
        """The program replayed for these arguments (traced if need be)."""
        if self._find(args, kwargs) is None:
            self._trace(args, kwargs)
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
        for line in program.source.splitlines():
            slot = line.strip().split(" = ")[0].split(" += ")[0]
            if slot in program.shapes:
                shape, dtype = program.shapes[slot]
                line = f"{line:<60} {shape} {dtype}"
            lines.append(line)
        return "\n".join(lines)
