"""A traced function as a program: its lines as records, the passes that write them, and the
one emitter that turns them into Python source (`autodiff.compile`).

`build` reads a trace (the ops noted, in order, with what the function did besides ops: see
`autodiff.effects`) and writes one `Line` per line of the program, as torch.fx writes a graph of
nodes: its kind (a forward op, a backward rule, a step's effect, a replay's check), the name it
binds, the function it calls, what it reads, its parameters, and fields such as the array it
writes into (``into``) and how a gradient joins its slot (``accumulate``). Each concern is a
pass of `_Builder` over the trace (slots and common subexpressions, index checks, a step's
effects, the backward from the op table, buffers), each deciding fields of the records, never
text. `emit` writes a record as source; `tape` prints the same records with their shapes, and
`viz.tape_to_dot` draws them.
"""

from __future__ import annotations

import builtins
import functools
import inspect
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from autodiff.backward import into_leaves
from autodiff.effects import Backward, Effects, GradCleared, Update, Write
from autodiff.graph import GradMode
from autodiff.guards import guard_source, literal, named, names_read, tensor_arguments
from autodiff.primitive import OPS, Op, sum_to
from autodiff.tensor import Tensor

# Arrays of this size or more are written into buffers a program keeps (``out=``, ``into=``):
# glibc's malloc gives smaller ones from its free lists, faster than NumPy's handling of out=
# (measured: the notebook step's 8–40 KiB arrays in buffers made it 2–6% slower), and takes
# larger ones from the kernel (mmap) by default, faulting their pages in again at every call.
LEND_FROM = 128 << 10


class CompileCheckError(RuntimeError):
    """With ``check=True``: a replay and the eager function disagreed."""


@dataclass
class Entry:
    """One primitive applied while tracing."""

    op: Op
    inputs: tuple[Tensor, ...]
    params: dict[str, Any]
    out: Tensor


@dataclass
class Line:
    """One line of a program: ``out = function(*read, *params, into=...)``, with the result
    fitted (``sum_to``, ``astype``) and, for a gradient, bound, added or added in place."""

    kind: Literal["forward", "backward", "effect", "check", "kernel"]
    out: str | None  # the name it binds; None: a call made for what it does
    function: str | None  # the callable as the namespace names it; None: ``out = read[0]``
    read: list[str]  # positional arguments: slots, or the tensors ``T[k]`` an effect acts on
    params: list[str] = field(default_factory=list)  # keyword arguments, as source
    into: str | None = None  # the array the result is written into
    lent: bool = False  # that array is one of the program's buffers, not the caller's
    into_keyword: str = "out"  # ``out=`` for an op's forward, ``into=`` for a rule
    accumulate: Literal["=", "+", "+="] = "="  # a gradient: bound, added, added in place
    sum_to: tuple[int, ...] | None = None  # the shape the result is summed back to
    astype: str | None = None  # the dtype the result is cast to
    target: str | None = None  # the slot an effect changes in place (a weight, a .grad)
    shape: tuple[tuple[int, ...], np.dtype] | None = None  # of what it binds, for the tape
    op: Op | None = None  # the primitive a forward line applies, or whose rule a backward calls
    rule: int | None = None  # a backward line: the input whose gradient the rule gives
    values: dict[str, Any] = field(default_factory=dict)  # the params themselves


def emit(line: Line) -> str:
    """A line as Python source (indented, without its shape)."""
    if line.function is None:
        value = line.read[0]
    else:
        arguments = line.read + line.params
        if line.into is not None:
            arguments = [*arguments, f"{line.into_keyword}={line.into}"]
        value = f"{line.function}({', '.join(arguments)})"
    if line.sum_to is not None:
        value = f"sum_to({value}, {line.sum_to})"
    if line.astype is not None:
        value = f"{value}.astype({line.astype!r})"
    if line.out is None:
        return f"    {value}"
    if line.accumulate == "+=":
        return f"    {line.out} += {value}"
    if line.accumulate == "+":
        return f"    {line.out} = {line.out} + {value}"
    return f"    {line.out} = {value}"


def taped(line: Line) -> str:
    """A line as the tape prints it: its source, then the shape and dtype of what it binds."""
    text = emit(line)
    if line.shape is None:
        return text
    shape, dtype = line.shape
    return f"{text:<60} {shape} {dtype}"


@dataclass
class Function:
    """A generated function: its name, parameters, lines and what it returns."""

    name: str
    parameters: list[str]
    lines: list[Line]
    returns: str

    def source(self, show: Callable[[Line], str] = emit) -> list[str]:
        return [f"def {self.name}({', '.join(self.parameters)}):",
                *[show(line) for line in self.lines], f"    return {self.returns}"]


class Buffers:
    """The arrays a program writes into (``out=``, ``into=``), lent to one call at a time.

    A call takes a free set, or makes one, and gives it back once nothing can read it any more:
    the forward's once its backward has run (until then a second call gets a set of its own,
    so ``loss1 = step(a); loss2 = step(b); loss1.backward()`` reads loss1's values), a
    backward's when it returns, a whole step's when it returns. A set never given back (a loss
    with no backward, a graph retained) is left to the garbage collector. list.pop and
    list.append are atomic, so threads replaying one program never share a set."""

    __slots__ = ("specs", "free")
    KEPT = 2  # free sets kept: one per thread replaying at once, for two (more are made)

    def __init__(self, specs: list[tuple[tuple[int, ...], np.dtype]]) -> None:
        self.specs = specs  # each array's (shape, dtype)
        self.free: list[list[np.ndarray]] = []

    @classmethod
    def of(cls, named: list[tuple[str, tuple[int, ...], np.dtype]]) -> Buffers:
        """The buffers of these (name, shape, dtype); perhaps none."""
        return cls([(shape, dtype) for _, shape, dtype in named])

    def take(self) -> list[np.ndarray]:
        if not self.specs:
            return []
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
    functions: list[Function] = field(default_factory=list)  # the records, for tape and viz
    guard_source: list[str] = field(default_factory=list)  # guard and read, as written
    shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = field(default_factory=dict)
    output_is_tuple: bool = False
    # the slots of Tensor arguments no op read: guarded by identity (see guards.guard_source)
    unread: set[str] = field(default_factory=set)
    # the arrays the forward writes into (``t0_buffer``), and those each backward does
    buffers: Buffers = field(default_factory=lambda: Buffers([]))
    gradient_buffers: list[Buffers] = field(default_factory=list)
    step: bool = False  # a whole training step: its backward ran inside (outputs get no node)
    touched: list[tuple[Tensor, Any]] = field(default_factory=list)  # see `_touched`
    returns_none: bool = False
    kernels: list[str] = field(default_factory=list)  # fused kernels' sources (backend="numba")
    # per output: where among the tensors read it is, when fn returned one of them (an argument,
    # a weight) as it was, which the replay returns itself, as eager does; else None
    passed_through: list[int | None] = field(default_factory=list)

    @property
    def lines(self) -> list[Line]:
        """Every line, function after function: forward ops, then backward rules."""
        return [line for function in self.functions for line in function.lines]


# ---------------------------------------------------------------- what generated code calls
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


def store_gradients(*pairs: Any) -> None:
    """``loss.backward()``'s last act in a whole step: each leaf, gradient pair stored as the
    walker stores it (`backward.into_leaves`)."""
    into_leaves(pairs[::2], list(pairs[1::2]))


def grad_array(t: Tensor) -> np.ndarray:
    """The array of t's .grad, as the step now holds it."""
    grad = t._grad
    assert grad is not None  # the program reads it where the trace found one
    return grad.data


def clear_grad(t: Tensor) -> None:
    """``t.grad = None``."""
    t.grad = None


def update_param(optimizer: Any, param: Tensor, grad: np.ndarray, group: int) -> None:
    """``optimizer.step()`` on one parameter: its own update, with its group and state as they
    are now (a learning rate a scheduler set, Adam's step count)."""
    optimizer.update_parameter(param, grad, optimizer.param_groups[group])


# names the generated code uses for itself: an op or a type of the same name gets another
RESERVED = dict(len=len, isinstance=isinstance, type=type, GradMode=GradMode, Tensor=Tensor,
                sum_to=sum_to, same_shape=same_shape, non_negative=non_negative,
                ones=np.ones, copyto=np.copyto, store_gradients=store_gradients,
                grad_array=grad_array, clear_grad=clear_grad, update_param=update_param,
                guard=None, forward=None, read=None, captured=None, args=None, kwargs=None,
                g=None, T=None, missing=object())  # missing: a keyword argument not given


# ---------------------------------------------------------------- the passes
# a pass that rewrites the functions' lines into kernels: (functions, shapes, traced arrays,
# namespace) -> (functions, the kernels' sources, conditions the guard adds)
Fuse = Callable[[list["Function"], dict[str, Any], dict[str, np.ndarray], dict[str, Any]],
                tuple[list["Function"], list[str], list[str]]]


def build(fn: Callable[..., Any], entries: list[Entry], sources: dict[int, Any],
          args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
          effects: Effects, fuse: Fuse | None = None) -> Program:
    """The program for one trace: guard, forward and backward, written and compiled. `sources`:
    where the index arrays came from, `effects`: what fn did besides ops (`compile.trace`),
    `fuse`: a pass that rewrites the functions' lines into kernels (`autodiff.fusion.fuse`)."""
    return _Builder(fn, entries, sources, args, kwargs, result, effects).program(fuse)


class _Builder:
    """The state the passes share while they write one program's records."""

    def __init__(self, fn: Callable[..., Any], entries: list[Entry], sources: dict[int, Any],
                 args: tuple[Any, ...], kwargs: dict[str, Any], result: Any,
                 effects: Effects) -> None:
        self.fn, self.entries, self.sources = fn, entries, sources
        self.args, self.kwargs, self.result, self.effects = args, kwargs, result, effects
        self.names: dict[Tensor, str] = {}  # tensor -> slot (tensors hash by identity)
        self.array_slots: dict[int, str] = {}  # id(a named tensor's array) -> its slot
        self.named_in_order: list[Tensor] = []
        self.shapes: dict[str, tuple[tuple[int, ...], np.dtype]] = {}  # each slot's
        self.captured: list[Tensor] = []
        self.captured_slots: dict[str, int] = {}  # slot -> its place in `captured`
        self.namespace: dict[str, Any] = dict(RESERVED)
        self.forward: list[Line] = []
        self.functions: list[Function] = []  # the backwards a whole step calls
        self.buffers: list[tuple[str, tuple[int, ...], np.dtype]] = []  # (name, shape, dtype)
        self.computed: dict[tuple[Any, ...], str] = {}  # (op, input slots, params, ...) -> slot
        self.merged: set[int] = set()  # entries that repeat an earlier one: its slot is theirs
        self.from_slot: dict[int, str] = {}  # id(an index array) -> the slot it is read from
        self.checked: set[str] = set()  # slots of integer indices checked non-negative
        self.pending = list(effects.records)
        self.fused: set[int] = set()  # the writes whose op wrote into the target itself
        self.grads_added_into: set[Tensor] = set()  # leaves whose .grad a step adds into
        self.transient = effects.transient()
        self.is_step = any(isinstance(r, Backward) for r in effects.records)
        # what a function with effects may return: nothing (an update, optimizer.step)
        self.returns_none = result is None and bool(effects.records)
        self.arguments: list[tuple[str, str, str]] = []  # (slot, where in args, in words)
        for slot, expression, words, t in tensor_arguments(args):
            if t not in self.names:
                self.give_slot(t, slot)
                self.arguments.append((slot, expression, words))
        outputs = list(result) if isinstance(result, tuple) else [result]
        self.outputs_list = [] if self.returns_none else outputs
        self.returned = {id(o) for o in self.outputs_list}
        self.returned_arrays = [o.data for o in self.outputs_list if isinstance(o, Tensor)]
        # the forward's values are lent to a call until its backward has run: with two
        # outputs whose backwards run separately, neither could tell when the other's had, so
        # none are (a whole step's, until it returns: its backward runs inside it)
        self.lend = self.is_step or sum(isinstance(o, Tensor) and o.requires_grad
                                        for o in self.outputs_list) <= 1

    # ------------------------------------------------------------ slots
    def give_slot(self, t: Tensor, slot: str) -> None:
        self.names[t] = slot
        self.array_slots.setdefault(id(t.data), slot)
        self.shapes.setdefault(slot, (t.shape, t.dtype))
        self.named_in_order.append(t)

    def slot_of(self, t: Tensor) -> str:
        """Its slot: an argument's, an op output's, a leaf's gradient, or (first seen here) a
        new captured one."""
        if t not in self.names:
            owner = self.effects.owners.get(t)
            if owner is not None:  # a .grad the call found: read where it is first used
                self.give_slot(t, self.gradient_of(owner))
                self.forward.append(Line("effect", self.names[t], "grad_array",
                                         [self.tensor_of(owner)], shape=self.shapes[self.names[t]]))
            else:  # made before fn ran, or a constant made inside it
                self.captured_slots[f"c{len(self.captured)}"] = len(self.captured)
                self.captured.append(t)
                self.give_slot(t, f"c{len(self.captured) - 1}")
        return self.names[t]

    def gradient_of(self, leaf: Tensor) -> str:
        """The name of the array that holds a leaf's .grad in a whole step."""
        return f"grad_{self.slot_of(leaf)}"

    def position_of(self, t: Tensor) -> int:
        """Where an argument or captured tensor is among those the program reads."""
        slot = self.slot_of(t)
        if slot in self.captured_slots:
            return len(self.arguments) + self.captured_slots[slot]
        return [a for a, _, _ in self.arguments].index(slot)

    def tensor_of(self, t: Tensor) -> str:
        """The Tensor an argument or captured slot reads, as the generated code names it."""
        return f"T[{self.position_of(t)}]"

    def slots_read(self) -> list[str]:
        """The argument and captured slots so far."""
        return [slot for slot, _, _ in self.arguments] + [f"c{i}" for i in range(len(
            self.captured))]

    def made_by_the_call(self, t: Tensor) -> bool:
        """An intermediate: no argument, captured tensor or .grad, so a write to it has no
        array of the caller's to go into (its slot is the written value's from then on)."""
        return t not in self.effects.owners and self.slot_of(t) not in self.slots_read()

    def forget(self, slot: str) -> None:
        """A slot's array was written in place (a parameter's, a .grad's): an op reading it is
        not the one computed before."""
        for key in [key for key in self.computed if slot in key[1]]:
            del self.computed[key]

    # ------------------------------------------------------------ the forward's ops
    def op(self, k: int, e: Entry) -> None:
        """Op k's line, unless it repeats an earlier one (the same op on the same slots, with
        the same parameters and grad mode): then its slot is the earlier one's."""
        for t in e.inputs:
            self.slot_of(t)
        indices = self.index_sources(e)
        read = [self.names[t] for t in e.inputs]
        key = (e.op.name, tuple(read), e.out.requires_grad, tuple(e.params.items()))
        if id(e.out) not in self.returned and all(literal(v) for v in e.params.values()):
            if key in self.computed:
                self.give_slot(e.out, self.computed[key])
                self.merged.add(k)
                return
            self.computed[key] = f"t{k}"
        self.give_slot(e.out, f"t{k}")
        line = Line("forward", f"t{k}", named(self.namespace, e.op.name, e.op.forward), read,
                    _params(e.params, f"p{k}", self.namespace, self.from_slot),
                    shape=self.shapes[f"t{k}"], op=e.op, values=dict(e.params))
        line.into = self.written_by(k, e)
        if line.into is None and self.lend and e.op.writes_into and _worth_a_buffer(
                e.out.data) and not any(np.may_share_memory(e.out.data, o)
                                        for o in self.returned_arrays):
            # written into an array of the program's own, never one the caller sees
            self.buffers.append((f"t{k}_buffer", e.out.shape, e.out.dtype))
            line.into, line.lent = f"t{k}_buffer", True
        self.index_checks(indices)
        self.forward.append(line)
        if any(array.dtype == bool for array, _ in indices):
            # a mask from a tensor selects as many elements as it holds True: a shape the
            # guard cannot know in advance, so the replay checks it
            self.forward.append(Line("check", None, "same_shape", [f"t{k}", repr(e.out.shape)]))

    def index_sources(self, e: Entry) -> list[tuple[np.ndarray, str]]:
        """Each index array among the op's parameters that was copied from a tensor (or the
        caller's array), with the slot it is read from at each replay."""
        indices = []
        for array in _arrays_in(e.params):
            source = self.sources.get(id(array))
            if isinstance(source, Tensor):
                self.from_slot[id(array)] = self.slot_of(source)
            elif source is not None and id(source) in self.array_slots:
                self.from_slot[id(array)] = self.array_slots[id(source)]
            if id(array) in self.from_slot:
                indices.append((array, self.from_slot[id(array)]))
        return indices

    def index_checks(self, indices: list[tuple[np.ndarray, str]]) -> None:
        """An integer index read from a tensor whose traced values were all ≥ 0 is checked to
        stay so: what checked it in Python (cross_entropy's labels) does not run again, and a
        negative one would count from the end."""
        for array, slot in indices:
            if array.dtype.kind == "i" and (array >= 0).all() and slot not in self.checked:
                self.forward.append(Line("check", None, "non_negative", [slot]))
                self.checked.add(slot)

    def written_by(self, k: int, e: Entry) -> str | None:
        """The array op k may write its result into: that of the tensor a `Write` right after
        it gives the result to (a parameter or a .grad, same shape and dtype), when nothing
        else reads the result. That write then writes nothing more (`fused`)."""
        record = self.pending[0] if self.pending else None
        if not (isinstance(record, Write) and record.at == k + 1 and record.value is e.out
                and e.op.writes_into and e.out.shape == record.target.shape
                and e.out.dtype == record.target.dtype and id(e.out) not in self.returned
                and not any(e.out is t for later in self.entries[k + 1:] for t in later.inputs)):
            return None
        if self.made_by_the_call(record.target):
            return None
        self.fused.add(id(record))
        return self.slot_of(record.target)  # a .grad's slot is its leaf's gradient_of

    # ------------------------------------------------------------ a whole step's effects
    def effect_lines(self, at: int) -> None:
        """The lines of the records noted before op `at` (see `autodiff.effects`)."""
        while self.pending and self.pending[0].at == at:
            record = self.pending.pop(0)
            if isinstance(record, Backward):
                self.backward_call(record)
            elif isinstance(record, GradCleared):
                grad = self.gradient_of(record.tensor)
                if record.tensor not in self.transient:
                    self.forward.append(Line("effect", None, "clear_grad",
                                             [self.tensor_of(record.tensor)], target=grad))
            elif isinstance(record, Write):
                self.write(record)
            elif isinstance(record, Update):
                grad = self.slot_of(record.grad)
                optimizer = named(self.namespace, "optimizer", record.optimizer)
                self.forward.append(Line(
                    "effect", None, "update_param",
                    [optimizer, self.tensor_of(record.param), grad], [f"group={record.group}"],
                    target=self.slot_of(record.param), values={"group": record.group}))
                self.forget(self.slot_of(record.param))

    def write(self, record: Write) -> None:
        """An in-place op outside recording: its value into the target's own array (a weight,
        a .grad), or, for an intermediate, the value's slot is the target's from now on."""
        value = self.slot_of(record.value)
        if self.made_by_the_call(record.target):
            self.give_slot(record.target, value)
            return
        target = self.slot_of(record.target)  # a .grad's slot is its leaf's gradient_of
        if id(record) not in self.fused:
            self.forward.append(Line("effect", None, "copyto", [target, value],
                                     ["casting='same_kind'"], target=target))
        self.forget(target)

    def backward_call(self, record: Backward) -> None:
        """``loss.backward()``: the backward (as for a forward-only program) called on a seed
        of ones; each leaf's gradient is stored into its .grad as the walker would, or kept
        local where nobody can see it there (`Effects.transient`)."""
        leaves = [self.slot_of(t) for t in record.leaves]
        lent: list[tuple[str, tuple[int, ...], np.dtype]] = []
        made = self.backward(self.entries[:record.at], self.names[record.root], leaves, lent)
        if made is None:
            return
        lines, reached = made
        values = [f"t{k}" for k in range(record.at) if k not in self.merged]
        known = {name for name, _, _ in self.buffers}
        self.buffers.extend(b for b in lent if b[0] not in known)
        got = [(leaf, slot) for leaf, slot, r in zip(record.leaves, leaves, reached) if r]
        name = f"step_backward{len(self.functions)}"
        parameters = ["g", *self.slots_read(), *values, *(b for b, _, _ in lent)]
        self.functions.append(Function(name, parameters, lines,
                                       _tuple([f"g_{slot}" for _, slot in got])))
        root = record.root
        dtype = named(self.namespace, root.dtype.name, root.dtype)
        seed = f"ones({root.shape}, {dtype})"
        kept = [self.gradient_of(leaf) if leaf in self.transient else f"g_{slot}"
                for leaf, slot in got]
        self.forward.append(Line("effect", _tuple(kept)[1:-1] or None, name,
                                 [seed, *parameters[1:]]))
        stored = [(leaf, slot) for leaf, slot in got if leaf not in self.transient]
        added = {leaf for leaf, in_place in zip(record.leaves, record.in_place) if in_place}
        for leaf, slot in stored:  # a .grad the walker adds into: the same add, in its array
            if leaf in added:
                array, add = self.gradient_of(leaf), OPS["add"]
                if not any(line.out == array for line in self.forward):  # not read yet
                    self.forward.append(Line("effect", array, "grad_array",
                                             [self.tensor_of(leaf)], shape=self.shapes[slot]))
                self.forward.append(Line(
                    "effect", array, named(self.namespace, add.name, add.forward),
                    [array, f"g_{slot}"], into=array, target=array, shape=self.shapes[slot],
                    op=add))
                self.grads_added_into.add(leaf)
        stored = [(leaf, slot) for leaf, slot in stored if leaf not in added]
        if stored:
            self.forward.append(Line("effect", None, "store_gradients", [
                part for leaf, slot in stored for part in (self.tensor_of(leaf), f"g_{slot}")]))
            for leaf, slot in stored:
                array = self.gradient_of(leaf)
                self.forward.append(Line("effect", array, "grad_array", [self.tensor_of(leaf)],
                                         shape=self.shapes[slot]))
        for leaf, grad in zip(record.leaves, record.grads):
            if grad is not None and grad not in self.names:
                self.give_slot(grad, self.gradient_of(leaf))
            self.forget(self.gradient_of(leaf))

    # ------------------------------------------------------------ the backward
    def backward(self, entries: list[Entry], out_name: str, leaves: list[str],
                 lent: list[tuple[str, tuple[int, ...], np.dtype]]
                 ) -> tuple[list[Line], list[bool]] | None:
        """The backward of one output: VJP rules in reverse order, contributions summed; its
        lines, and which leaves it reaches.

        The rules run once here, on the traced values, so each contribution's shape and dtype
        is known (as torch.fx's shape propagation does): only one that differs from its
        input's is given the walker's ``sum_to`` (undo broadcasting) or ``astype``. It also
        shows which gradient arrays a slot owns alone (a rule made them, and they are no
        forward value, input or other gradient): a second contribution is added into those in
        place. A merged entry (one that repeated an earlier) is skipped: the earlier one's
        rules pass on the gradient both received, summed.

        A rule that can write into a given array (``into``) is lent one for an intermediate's
        first contribution (``into=g_t1_buffer``, appended to `lent`), unless that array
        reaches a leaf's gradient, which the caller keeps: the trace shows which do."""
        names = self.names
        produced = {names[e.out]: k for k, e in enumerate(entries) if k not in self.merged}
        if out_name not in produced or not entries[produced[out_name]].out.requires_grad:
            return None
        root = entries[produced[out_name]].out
        grads = {out_name: np.ones_like(root.data)}  # the gradients of this one run
        owned: set[str] = set()  # the slots whose gradient array is theirs alone
        forward_arrays = {id(x.data) for e in entries for x in (*e.inputs, e.out)}
        lines = [Line("backward", f"g_{out_name}", None, ["g"], shape=(root.shape, root.dtype))]
        buffered: dict[str, tuple[Line, np.ndarray]] = {}  # slot -> (its line, array lent)
        for k in range(produced[out_name], -1, -1):
            e = entries[k]
            out = names[e.out]
            if k in self.merged or out not in grads or not e.out.requires_grad:
                continue
            rules = e.op.vjps * len(e.inputs) if e.op.variadic else e.op.vjps
            for i, (t, rule) in enumerate(zip(e.inputs, rules)):
                if rule is None or not t.requires_grad:
                    continue
                params = {**e.params, "which": i} if e.op.variadic else e.params
                # asked of the rule itself: its copy on arrays keeps the code, not a signature
                # that a wrapper declares (``__signature__``, as mutation testing's trampolines)
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
                line = Line("backward", f"g_{name}", named(self.namespace, rule.__name__, rule),
                            [f"g_{out}", out] + [names[x] for x in e.inputs],
                            _params(params, f"p{k}", self.namespace, self.from_slot),
                            into_keyword="into", shape=(t.shape, t.dtype), op=e.op, rule=i,
                            values=params)
                if part is buffer:
                    buffered[name] = (line, buffer)
                    line.into, line.lent = f"g_{name}_buffer", True
                if part.shape != t.shape:
                    part, line.sum_to = sum_to(part, t.shape), t.shape
                if part.dtype != t.dtype:
                    part, line.astype = part.astype(t.dtype), t.dtype.name
                if name in owned:
                    grads[name] += part
                    line.accumulate = "+="
                elif name in grads:
                    grads[name] = grads[name] + part
                    line.accumulate = "+"
                    owned.add(name)
                else:
                    if (type(part) is np.ndarray and part.base is None and part.flags.writeable
                            and id(part) not in forward_arrays
                            and not any(part is g for g in grads.values())):
                        owned.add(name)
                    grads[name] = part
                    self.shapes[f"g_{name}"] = (t.shape, t.dtype)
                lines.append(line)
        for name, (line, buffer) in buffered.items():
            if any(np.may_share_memory(buffer, grads[leaf]) for leaf in leaves if leaf in grads):
                # the caller would keep it as a .grad: written by the next call, so not lent
                line.into, line.lent = None, False
                lent.remove((f"g_{name}_buffer", buffer.shape, buffer.dtype))
        return lines, [name in grads for name in leaves]

    # ------------------------------------------------------------ the whole program
    def program(self, fuse: Fuse | None = None) -> Program:
        for k, e in enumerate(self.entries):
            self.effect_lines(k)
            self.op(k, e)
        self.effect_lines(len(self.entries))
        if not all(isinstance(o, Tensor) and o in self.names for o in self.outputs_list):
            raise TypeError("compile: the function must return a Tensor computed by the engine, "
                            "or a tuple of them, or nothing when it changes state (a "
                            "backward, an update)")
        # the state a call finds and leaves is that of the arguments and captured tensors: an
        # intermediate written in place is made anew by each call
        guarded = [(t, was_none) for t, was_none in self.effects.grad_was_none.items()
                   if was_none is not None]
        for t, _ in guarded:
            self.slot_of(t)  # one whose .grad the function only asked about: captured now
        read_slots = self.slots_read()
        grad_states = [(self.position_of(t), was_none) for t, was_none in guarded
                       if self.slot_of(t) in read_slots]
        touched = [(t, optimizer) for t, optimizer in _touched(self.effects)
                   if self.slot_of(t) in read_slots]
        identity = {self.slot_of(t) for t, _ in touched}
        outputs = [self.names[o] for o in self.outputs_list]
        values = [f"t{k}" for k in range(len(self.entries)) if k not in self.merged]
        # gradients go to the arguments and captured tensors that require grad (a captured one
        # with its own graph passes them on: the walker continues from it); a step's outputs
        # get none: its backward ran inside it
        leaf_names = [] if self.is_step else list(dict.fromkeys(
            self.names[t] for t in self.named_in_order
            if t.requires_grad and self.names[t] in read_slots))
        returned = f"({', '.join(outputs)}{',' if outputs else ''})"
        if not self.is_step:
            returned += f", ({', '.join(values)}{',' if values else ''})"
        forward = Function("forward", ["T", *read_slots, *(b for b, _, _ in self.buffers)],
                           self.forward, returned)
        backwards: list[Function | None] = []
        gradient_buffers = []
        for j, out_name in enumerate([] if self.is_step else outputs):
            lent: list[tuple[str, tuple[int, ...], np.dtype]] = []
            made = self.backward(self.entries, out_name, leaf_names, lent)
            gradient_buffers.append(Buffers.of(lent))
            if made is None:
                backwards.append(None)
                continue
            found = [f"g_{name}" if reached else "None" for name, reached in zip(leaf_names,
                                                                                 made[1])]
            backwards.append(Function(
                f"backward{j}", ["g", *read_slots, *values, *(b for b, _, _ in lent)],
                made[0], f"[{', '.join(found)}]"))
        functions = [forward, *self.functions, *[b for b in backwards if b is not None]]
        kernels: list[str] = []
        fused_guards: list[str] = []
        if fuse is not None:
            arrays = {slot: t.data for t, slot in self.names.items()}
            functions, kernels, fused_guards = fuse(functions, self.shapes, arrays,
                                                    self.namespace)
        self.namespace["captured"] = self.captured
        read_by_ops = {slot for line in self.forward for slot in line.read}
        read_by_ops |= set(self.from_slot.values())  # indices read from a tensor's slot
        unread = {slot for slot, _, _ in self.arguments if slot not in read_by_ops}
        tensors_read = [expression for _, expression, _ in self.arguments]
        tensors_read += [f"captured[{i}]" for i in range(len(self.captured))]
        header = [*guard_source(self.args, self.kwargs, self.captured,
                                names_read(self.fn, self.namespace), unread, self.namespace,
                                identity=identity,
                                extra=[f"({tensors_read[k]}._grad is None) is {was_none}"
                                       for k, was_none in grad_states] + [
                                    f"{tensors_read[self.position_of(t)]}._grad_owned is True"
                                    for t in self.grads_added_into  # as the call found it
                                    if self.effects.grad_was_none.get(t) is False]
                                + fused_guards), "",
                  "def read(args):  # the tensors the forward reads, in slot order",
                  f"    return [{', '.join(tensors_read)}]"]
        text = "\n".join(header + [line for f in functions for line in ["", *f.source()]])
        exec(builtins.compile(text, "<autodiff.compile>", "exec"), self.namespace)
        return Program(self.namespace["guard"], self.namespace["read"], self.arguments,
                       self.captured, [read_slots.index(name) for name in leaf_names],
                       self.namespace["forward"],
                       [None if b is None else self.namespace[b.name] for b in backwards],
                       functions, header, self.shapes, isinstance(self.result, tuple),
                       unread=unread, buffers=Buffers.of(self.buffers),
                       gradient_buffers=gradient_buffers, step=self.is_step, touched=touched,
                       returns_none=self.returns_none, kernels=kernels,
                       passed_through=[read_slots.index(name) if name in read_slots else None
                                       for name in outputs])


def _tuple(names: list[str]) -> str:
    """A tuple of these names as source: ``()``, ``(a,)``, ``(a, b)``."""
    return f"({', '.join(names)}{',' if len(names) == 1 else ''})"


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


@functools.cache
def on_arrays(rule: Callable[..., Any]) -> Callable[..., Any]:
    """The rule itself, with ``prim.NAME`` bound to the op's forward: a compiled backward runs
    on arrays only (create_graph is refused), so it needs no dispatch on the operands' type."""
    forwards = types.SimpleNamespace(**{name: op.forward for name, op in OPS.items()})
    return types.FunctionType(rule.__code__, {**rule.__globals__, "prim": forwards},
                              rule.__name__, rule.__defaults__, rule.__closure__)
