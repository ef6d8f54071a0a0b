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
from typing import Any, Literal, NamedTuple

import numpy as np

from autodiff.backward import into_leaves
from autodiff.effects import Backward, Effects, GradCleared, Saved, Update, Write
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


class Line(NamedTuple):
    """A line of a program, for drawing it: the slot it writes, the function it calls, the
    slots it reads, and whether it is a forward op, a backward rule or a step's effect
    (storing a gradient, writing into a tensor, clearing .grad, an optimizer's update)."""

    written: str
    function: str
    read: list[str]
    kind: Literal["forward", "backward", "effect"]


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
    # the program as data, for drawing: one `Line` per op, rule and effect
    steps: list[Line] = field(default_factory=list)
    # the arrays the forward writes into (``t0_buffer``), and those each backward does; None
    # where there are none
    buffers: Buffers | None = None
    gradient_buffers: list[Buffers | None] = field(default_factory=list)
    step: bool = False  # a whole training step: its backward ran inside (outputs get no node)
    touched: list[tuple[Tensor, Any]] = field(default_factory=list)  # see `_touched`
    returns_none: bool = False


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
                ones=np.ones, copyto=np.copyto, into_leaves=into_leaves, gradients=None, T=None,
                forward=None, read=None, captured=None, args=None, kwargs=None, g=None,
                missing=object())  # missing: a keyword argument not given


def build(fn: Callable[..., Any], entries: list[Entry], sources: dict[int, Any],
          args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
          effects: Effects) -> Program:
    """The program for one trace: guard, forward and backward source, compiled. `sources`: where
    the index arrays came from, `effects`: what fn did besides ops (`trace`)."""
    names: dict[Tensor, str] = {}  # tensor -> slot name (tensors hash by identity)
    array_slots: dict[int, str] = {}  # id(a named tensor's array) -> its slot
    keep: list[Tensor] = []  # tensors named, in the order they were
    shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {}  # each slot's, for tape and viz
    captured: list[Tensor] = []
    captured_slots: dict[str, int] = {}  # slot -> its place in `captured`

    def give_slot(t: Tensor, slot: str) -> None:
        names[t] = slot
        array_slots.setdefault(id(t.data), slot)
        shapes.setdefault(slot, (t.shape, t.dtype))
        keep.append(t)

    def slot_of(t: Tensor) -> str:
        """Its slot: an argument's, an op output's, a leaf's gradient, or (first seen here) a
        new captured one."""
        if t not in names:
            owner = effects.owners.get(t)
            if owner is not None:  # a .grad the call found: read where it is first used
                give_slot(t, gradient_of(owner))
                forward_lines.append(f"    {names[t]} = {tensor_of(owner)}._grad.data")
            else:  # made before fn ran, or a constant made inside it
                captured_slots[f"c{len(captured)}"] = len(captured)
                captured.append(t)
                give_slot(t, f"c{len(captured) - 1}")
        return names[t]

    def gradient_of(leaf: Tensor) -> str:
        """The name of the array that holds a leaf's .grad in a whole step."""
        return f"grad_{slot_of(leaf)}"

    def position_of(t: Tensor) -> int:
        """Where an argument or captured tensor is among those the program reads."""
        slot = slot_of(t)
        if slot in captured_slots:
            return len(arguments) + captured_slots[slot]
        return [a for a, _, _ in arguments].index(slot)

    def tensor_of(t: Tensor) -> str:
        """The Tensor an argument or captured slot reads, as the generated code names it."""
        return f"T[{position_of(t)}]"

    arguments = []  # (slot, where in args, in words) of each Tensor argument
    for slot, expression, words, t in tensor_arguments(args):
        if t not in names:
            give_slot(t, slot)
            arguments.append((slot, expression, words))
    namespace: dict[str, Any] = dict(RESERVED)
    forward_lines = []
    steps: list[Line] = []
    outputs_list = list(result) if isinstance(result, tuple) else [result]
    returned = {id(o) for o in outputs_list}
    returned_arrays = [o.data for o in outputs_list if isinstance(o, Tensor)]
    # the forward's values are lent to a call until its backward has run: with two outputs
    # whose backwards run separately, neither could tell when the other's had, so none are
    # (a whole step's, until it returns: its backward runs inside it)
    is_step = any(isinstance(r, Backward) for r in effects.records)
    lend = is_step or sum(isinstance(o, Tensor) and o.requires_grad for o in outputs_list) <= 1
    buffers: list[tuple[str, tuple[int, ...], np.dtype]] = []  # (name, shape, dtype)
    computed: dict[tuple[Any, ...], str] = {}  # (op, input slots, params, ...) -> its slot
    merged: set[int] = set()  # entries that repeat an earlier one: their slot is its slot
    # an index array copied from a tensor's data: read from that tensor's slot at each replay
    from_slot: dict[int, str] = {}
    checked: set[str] = set()  # slots of integer indices checked non-negative
    transient = effects.transient()
    pending = list(effects.records)

    def forget(slot: str) -> None:
        """A slot's array was written in place: an op on it is not the one computed before."""
        for key in [key for key, value in computed.items() if slot in key[1] or value == slot]:
            del computed[key]

    def effect_lines(at: int) -> None:
        """The lines of the records noted before op `at` (see `autodiff.effects`)."""
        while pending and pending[0].at == at:
            record = pending.pop(0)
            if isinstance(record, Backward):
                backward_call(record)
            elif isinstance(record, GradCleared):
                if record.tensor not in transient:
                    forward_lines.append(f"    {tensor_of(record.tensor)}.grad = None")
                steps.append(Line(gradient_of(record.tensor), "clear", [], "effect"))
            elif isinstance(record, Write):
                value = slot_of(record.value)
                owner = effects.owners.get(record.target)
                target = slot_of(record.target) if owner is None else gradient_of(owner)
                if owner is None and target not in slots_read():
                    give_slot(record.target, value)  # an intermediate: its slot is the value's
                    continue
                slot_of(record.target)
                if id(record) not in fused:
                    forward_lines.append(f"    copyto({target}, {value}, casting='same_kind')")
                forget(target)
                steps.append(Line(target, "write", [value], "effect"))
            elif isinstance(record, Update):
                param, grad = tensor_of(record.param), slot_of(record.grad)
                optimizer = named(namespace, "optimizer", record.optimizer)
                forward_lines.append(
                    f"    {optimizer}.update({param}, {grad}, {optimizer}.param_groups"
                    f"[{record.group}], {optimizer}.state.setdefault({param}, {{}}))")
                forget(slot_of(record.param))
                steps.append(Line(slot_of(record.param), "update", [grad], "effect"))

    def written_by(k: int, e: Entry) -> str | None:
        """The array op k may write its result into: that of the tensor a `Write` right after
        it gives the result to (a parameter or a .grad, same shape and dtype), when nothing
        else reads the result. That write then writes nothing more (`fused`)."""
        record = pending[0] if pending else None
        if not (isinstance(record, Write) and record.at == k + 1 and record.value is e.out
                and e.op.writes_into and e.out.shape == record.target.shape
                and e.out.dtype == record.target.dtype and id(e.out) not in returned
                and not any(e.out is t for later in entries[k + 1:] for t in later.inputs)):
            return None
        owner = effects.owners.get(record.target)
        if owner is None and slot_of(record.target) not in slots_read():
            return None
        fused.add(id(record))
        return gradient_of(owner) if owner is not None else slot_of(record.target)

    fused: set[int] = set()  # the writes whose op wrote into the target itself

    def slots_read() -> list[str]:
        """The argument and captured slots so far."""
        return [slot for slot, _, _ in arguments] + [f"c{i}" for i in range(len(captured))]

    def backward_call(record: Backward) -> None:
        """``loss.backward()``: the backward's source (as for a forward-only program), called
        on a seed of ones; each leaf's gradient is kept in ``grad_<slot>``, stored into its
        .grad as the walker would unless nobody can see it there (`Effects.transient`)."""
        j = len(step_backwards)
        leaves = [slot_of(t) for t in record.leaves]
        lent: list[tuple[str, tuple[int, ...], np.dtype]] = []
        done = entries[:record.at]
        made = _backward_lines(done, merged, names, from_slot, names[record.root], leaves,
                               namespace, steps, shapes, lent)
        if made is None:
            return
        lines, reached = made
        values = [f"t{k}" for k in range(record.at) if k not in merged]
        known = {name for name, _, _ in buffers}
        buffers.extend(b for b in lent if b[0] not in known)
        parameters = ["g", *slots_read(), *values, *(name for name, _, _ in lent)]
        step_backwards.append([f"def step_backward{j}({', '.join(parameters)}):", *lines])
        root = record.root
        dtype = named(namespace, root.dtype.name, root.dtype)
        forward_lines.append(f"    gradients = step_backward{j}(ones({root.shape}, {dtype}), "
                             f"{', '.join(parameters[1:])})")
        stored = []
        for i, (leaf, got) in enumerate(zip(record.leaves, reached)):
            if not got:
                continue
            steps.append(Line(gradient_of(leaf), "keep" if leaf in transient else "store",
                              [f"g_{slot_of(leaf)}"], "effect"))
            if leaf in transient:
                forward_lines.append(f"    {gradient_of(leaf)} = gradients[{i}]")
            else:
                stored.append((i, leaf))
        if stored:
            forward_lines.append(
                f"    into_leaves([{', '.join(tensor_of(t) for _, t in stored)}], "
                f"[{', '.join(f'gradients[{i}]' for i, _ in stored)}])")
            forward_lines.extend(f"    {gradient_of(t)} = {tensor_of(t)}._grad.data"
                                 for _, t in stored)
        for leaf, grad in zip(record.leaves, record.grads):
            if grad is not None and grad not in names:
                give_slot(grad, gradient_of(leaf))
            forget(gradient_of(leaf))

    step_backwards: list[list[str]] = []
    for k, e in enumerate(entries):
        effect_lines(k)
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
        read = [names[t] for t in e.inputs]
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
        into = written_by(k, e)
        if into is not None:  # ``w -= lr * w.grad``: the subtraction writes into w's array
            params.append(f"out={into}")
        elif lend and e.op.writes_into and _worth_a_buffer(e.out.data) and not any(
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
        steps.append(Line(f"t{k}", function, read + [index_slot for _, index_slot in indices],
                          "forward"))
    effect_lines(len(entries))
    grad_states = [(position_of(t), was_none) for t, was_none in effects.grad_was_none.items()
                   if was_none is not None]
    if result is None and is_step:
        outputs_list = []  # a step that returns nothing
    elif not all(isinstance(o, Tensor) and o in names for o in outputs_list):
        raise TypeError("compile: the function must return a Tensor computed by the engine, or "
                        "a tuple of them" + (", or nothing" if is_step else ""))
    outputs = [names[o] for o in outputs_list]
    values = [f"t{k}" for k in range(len(entries)) if k not in merged]
    # gradients go to the arguments and captured tensors that require grad (a captured one
    # with its own graph passes them on: the walker continues from it); a step's outputs get
    # none: its backward ran inside it
    leaf_names = [] if is_step else list(dict.fromkeys(
        names[t] for t in keep if t.requires_grad and names[t][0] in "ac"))
    read_slots = [slot for slot, _, _ in arguments] + [f"c{i}" for i in range(len(captured))]
    leaves = [read_slots.index(name) for name in leaf_names]
    forward_sig = ", ".join(["T", *read_slots, *(name for name, _, _ in buffers)])
    namespace["captured"] = captured
    read_by_ops = {slot for line in steps for slot in line.read}
    unread = {slot for slot, _, _ in arguments if slot not in read_by_ops}
    tensors_read = [expression for _, expression, _ in arguments]
    tensors_read += [f"captured[{i}]" for i in range(len(captured))]
    touched = _touched(effects)
    source = [*guard_source(args, kwargs, captured, names_read(fn, namespace), unread,
                            namespace, identity={slot_of(t) for t, _ in touched},
                            extra=[f"({tensors_read[k]}._grad is None) is {was_none}"
                                   for k, was_none in grad_states]), "",
              "def read(args):  # the tensors the forward reads, in slot order",
              f"    return [{', '.join(tensors_read)}]", "",
              f"def forward({forward_sig}):", *forward_lines,
              f"    return ({', '.join(outputs)}{',' if outputs else ''})" + (
                  "" if is_step else f", ({', '.join(values)}{',' if values else ''})")]
    backwards_src: list[list[str] | None] = []
    gradient_buffers = []
    for j, out_name in enumerate([] if is_step else outputs):
        lent: list[tuple[str, tuple[int, ...], np.dtype]] = []
        made = _backward_lines(entries, merged, names, from_slot, out_name, leaf_names,
                               namespace, steps, shapes, lent)
        gradient_buffers.append(Buffers.of(lent))
        if made is not None:
            parameters = ["g", *read_slots, *values, *(name for name, _, _ in lent)]
            backwards_src.append([f"def backward{j}({', '.join(parameters)}):", *made[0]])
        else:
            backwards_src.append(None)
    text = "\n".join(source + [line for b in step_backwards + backwards_src if b
                               for line in [""] + b])
    exec(builtins.compile(text, "<autodiff.compile>", "exec"), namespace)
    return Program(namespace["guard"], namespace["read"], arguments, captured, leaves,
                   namespace["forward"],
                   [namespace[f"backward{j}"] if b else None for j, b in enumerate(backwards_src)],
                   text, shapes, isinstance(result, tuple), steps=steps, unread=unread,
                   buffers=Buffers.of(buffers),
                   gradient_buffers=gradient_buffers, step=is_step, touched=touched,
                   returns_none=result is None and is_step)


def _touched(effects: Effects) -> list[tuple[Tensor, Any]]:
    """The tensors whose state a traced step changes (values, .grad), each with the optimizer
    whose state for it changes too (or None): what ``check=True`` compares."""
    found: dict[tuple[int, int], tuple[Tensor, Any]] = {}
    for r in effects.records:
        if isinstance(r, Backward):
            tensors = [(t, None) for t in r.leaves]
        elif isinstance(r, GradCleared):
            tensors = [(r.tensor, None)]
        elif isinstance(r, Write):
            tensors = [(effects.owners.get(r.target, r.target), None)]
        else:
            tensors = [(r.param, r.optimizer)]
        for t, optimizer in tensors:
            found.setdefault((id(t), id(optimizer)), (t, optimizer))
    return list(found.values())


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


def _backward_lines(entries: list[Entry], merged: set[int], names: dict[Tensor, str],
                    from_slot: dict[int, str], out_name: str,
                    leaves: list[str], namespace: dict[str, Any],
                    steps: list[Line],
                    shapes: dict[str, tuple[tuple[int, ...], np.dtype]],
                    lent: list[tuple[str, tuple[int, ...], np.dtype]]
                    ) -> tuple[list[str], list[bool]] | None:
    """The backward of one output: VJP rules in reverse order, contributions summed; its lines
    and which leaves it reaches.

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
    produced = {names[e.out]: k for k, e in enumerate(entries) if k not in merged}
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
        out = names[e.out]
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
            name = names[t]
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
            arguments = [f"g_{out}", out] + [names[x] for x in e.inputs]
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
            steps.append(Line(f"g_{name}", function, [f"g_{out}", out] +
                              [names[x] for x in e.inputs], "backward"))
    for name, (line, buffer) in buffered.items():
        if any(np.may_share_memory(buffer, grads[leaf]) for leaf in leaves if leaf in grads):
            # the caller would keep it as a .grad: written by the next call, so not lent
            lines[line] = lines[line].replace(f", into=g_{name}_buffer)", ")", 1)
            lent.remove((f"g_{name}_buffer", buffer.shape, buffer.dtype))
    found = [f"g_{name}" if name in grads else "None" for name in leaves]
    lines.append(f"    return [{', '.join(found)}]")
    return lines, [name in grads for name in leaves]


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
        self.name = getattr(fn, "__name__", type(fn).__name__)  # for messages

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
        if any(tensors_in(v, "", "") for v in bound.kwargs.values()):
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
            program = build(self.fn, entries, sources, args, kwargs, result, effects)
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
        buffers = lent.take() if lent is not None else []
        if program.step:  # backward ran inside: the outputs are values, the buffers free again
            try:
                results = program.forward(read, *arrays, *buffers)
            finally:
                if lent is not None:
                    lent.give_back(buffers)
            if program.returns_none:
                return None
            outputs = [Tensor._wrap(data) for data in results]
            return tuple(outputs) if program.output_is_tuple else outputs[0]
        results, values = program.forward(read, *arrays, *buffers)
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
        differences = [f"output {i}" for i, (r, e) in enumerate(zip(given, expected))
                       if r is not None and (r.shape != e.shape or not np.array_equal(
                           r.data, e.data, equal_nan=True))]
        differences += [f"{difference} of a tensor of shape {saved.t.shape}"
                        for saved in replayed for difference in [saved.difference()]
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
        for line in program.source.splitlines():
            slot = line.strip().split(" = ")[0].split(" += ")[0]
            if slot in program.shapes:
                shape, dtype = program.shapes[slot]
                line = f"{line:<60} {shape} {dtype}"
            lines.append(line)
        return "\n".join(lines)
