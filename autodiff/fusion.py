"""The fused backend of `autodiff.compile` (``backend="numba"``): each run of elementwise ops
and reductions in a program, forward, backward and update alike, as one generated loop.

A program (`autodiff.program`) is a list of lines, each one NumPy call (``t3 = softmax(t2,
dim=1)``, ``t4 = sub(t3, a1)``): each walks its arrays once and costs about a microsecond
besides. `fuse` finds the maximal runs of lines whose op declares a loop form (`Loop`, in the
op table) over one iteration shape, and writes each run as one function of loops that numba
compiles: a value only the run reads stays a scalar in a register, one read later is written
out, and the lines between runs (matmuls, reshapes, effects) stay as they are. A whole step's
backward is first written into its forward (`inline`), so a run crosses from the loss into its
gradient and the update.

Inside a kernel, the last dim is the inner loop and the others are outer loops. A reduction
along the last dim (softmax's max and sum) is one value per row: it splits a row's work into
stages, each a loop over the row, and a value computed in one stage and read in a later one is
kept in a row-long array. A reduction over all dims (a loss) is a running total, written when
the loops end. Every value is rounded to the program's dtype as it is made, so float32 stays
float32.
"""

from __future__ import annotations

import ast
import builtins
import hashlib
import importlib.util
import inspect
import os
import re
import sys
import types
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from autodiff.program import Function, Line, emit

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))  # what numba's loops and np.dot take
REDUCTIONS = {"reduce_sum": "sum", "reduce_max": "max", "reduce_min": "min"}
START = {"sum": "0", "max": "-np.inf", "min": "np.inf"}  # a reduction's value before any element


# how far a fused value may be from eager's, relative to the largest magnitude of the array:
# sums are taken in another order, and numba's exp and log are not NumPy's
TOLERANCE = {8: 1e-12, 4: 1e-5, 2: 1e-2}  # by itemsize: float64, float32, float16


def agree(a: Any, b: Any) -> bool:
    """A fused value and eager's agree: the same dtype, shape and NaNs, values within
    `TOLERANCE` (integers and booleans exactly)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype != b.dtype or a.shape != b.shape:
        return False
    if a.dtype.kind != "f":
        return bool(np.array_equal(a, b))
    nan = np.isnan(b)
    if not np.array_equal(np.isnan(a), nan) or not np.array_equal(a[np.isinf(b)],
                                                                  b[np.isinf(b)]):
        return False
    finite = np.isfinite(b)
    if not finite.any():
        return True
    scale = np.abs(b[finite]).max()
    return bool(np.all(np.abs(a[finite] - b[finite]) <= TOLERANCE[a.itemsize] * scale))


class Unfusable(Exception):
    """A line that cannot join the run: it ends it (and runs as NumPy, or starts the next)."""


def numba_or_explain() -> Any:
    """numba, or an ImportError that names the extra that installs it."""
    try:
        import numba
    except ImportError as error:
        raise ImportError("compile(backend='numba') needs numba: pip install 'autodiff[fast]'"
                          ) from error
    return numba


# ---------------------------------------------------------------- a whole step as one function
def inline(functions: list[Function]) -> list[Function]:
    """The forward with each step backward it calls written in its place (a seed made at the
    start, the backward's lines, its results bound to the names the call bound), so that runs
    can cross from the loss into the backward. A step with two backwards is left as it is:
    their lines would bind the same names (``g_t3``) twice."""
    forward, others = functions[0], functions[1:]
    called = {f.name: f for f in others}
    calls = [line for line in forward.lines if line.function in called]
    if not calls or len(calls) > 1:
        return functions
    seeds: list[Line] = []
    lines: list[Line] = []
    for line in forward.lines:
        backward = called.get(line.function or "")
        if backward is None:
            lines.append(line)
            continue
        seed = f"seed{len(seeds)}"
        call = ast.parse(line.read[0], mode="eval").body  # ones(shape, dtype)
        assert isinstance(call, ast.Call)
        seeds.append(Line("effect", seed, "ones", [ast.unparse(a) for a in call.args],
                          shape=backward.lines[0].shape))
        for inner in backward.lines:
            lines.append(replace(inner, read=[seed if r == "g" else r for r in inner.read]))
        for name, value in zip(_bound(line), _names(backward.returns)):
            if name != value:
                lines.append(Line("effect", name, None, [value]))
    inlined = {line.function for line in calls}
    return [replace(forward, lines=seeds + lines), *[f for f in others if f.name not in inlined]]


# ---------------------------------------------------------------- values and steps of a run
@dataclass(eq=False)
class Value:
    """A value in a kernel: an input it reads, or one it makes."""

    local: str  # its name in the kernel
    # "full": one per element; "row": one per row; "scalar"; a sum over all ("total") or
    # over all dims but the last ("column", one per column), ready when the loops end
    kind: str
    stage: int = 0  # the first stage that may read it
    source: str | None = None  # an input: the program's name for it
    index: str = ""  # an input array: how the element at (i0, ..., j) is read
    scalar_input: bool = False  # a 0-d input, passed as a number
    kept: bool = False  # full, and read in a later stage: kept in a row-long array
    shape: tuple[int, ...] = ()  # as an output
    reduced: tuple[int, ...] = ()  # a reduction's value: the dims it reduced


@dataclass
class Step:
    """``target = expression`` in the kernel, or a reduction of it into target."""

    target: Value
    expression: ast.expr
    stage: int
    reduce: str | None = None  # "sum", "max", "min"


@dataclass
class Run:
    """A run of lines fused into one kernel, being built."""

    shape: tuple[int, ...]
    dtype: np.dtype
    lines: list[Line] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    values: dict[str, Value] = field(default_factory=dict)  # program name -> what it is now
    # each line's value: (its position, the name it binds, the value, the shape it has there)
    defined: list[tuple[int, str, Value, tuple[int, ...]]] = field(default_factory=list)
    inputs: list[Value] = field(default_factory=list)
    locals: set[str] = field(default_factory=set)
    stage: int = 0
    arrays: dict[str, np.ndarray] = field(default_factory=dict)  # the traced arrays, by name
    writes: dict[int, str] = field(default_factory=dict)  # id(value) -> a caller's array
    buffers: dict[int, str] = field(default_factory=dict)  # id(value) -> a program's buffer

    # ------------------------------------------------------------ reading
    def fresh(self, name: str) -> str:
        name = name.replace("[", "_").replace("]", "").replace("(", "").replace(")", "")
        local, n = name, 1
        while local in self.locals or local in ("np", "j") or re.fullmatch(r"i\d+", local):
            n += 1
            local = f"{name}_{n}"
        self.locals.add(local)
        return local

    def read(self, name: str, known: dict[str, tuple[tuple[int, ...], np.dtype]],
             reduced: tuple[int, ...] | None = None) -> Value:
        """The value a line reads by this program name: made earlier in the run, or an input
        (its index from its shape, broadcast against the run's; `reduced`: the dims a
        reduction removed from it, when it was made without keepdim)."""
        if name in self.values:
            return self.values[name]
        if name not in known:
            raise Unfusable(f"{name}: shape unknown")
        shape, dtype = known[name]
        if dtype != self.dtype and not (shape == () and dtype == np.float64):  # a Python float
            raise Unfusable(f"{name}: dtype {dtype}")
        nd = len(self.shape)
        if len(shape) > nd:
            raise Unfusable(f"{name}: more dims than the run")
        dims = ([d for d in range(nd) if d not in reduced] if reduced
                else list(range(nd - len(shape), nd)))
        if len(dims) != len(shape) or any(
                n != 1 and n != self.shape[d] for n, d in zip(shape, dims)):
            raise Unfusable(f"{name}: shape {shape} against {self.shape}")
        loops = [_loop_variable(d, nd) if n != 1 else "0" for n, d in zip(shape, dims)]
        if "j" in loops:
            kind = "full"
        elif any(v != "0" for v in loops):
            kind = "row"
        else:
            kind = "scalar"
        array = self.arrays.get(name)
        if array is not None and any(
                np.may_share_memory(array, self.arrays[target]) for target in self.writes.values()
                if target in self.arrays):
            raise Unfusable(f"{name} shares memory with an array the run wrote")
        value = Value(self.fresh(name), kind, source=name, scalar_input=shape == (),
                      index="" if shape == () else f"[{', '.join(loops)}]")
        self.values[name] = value
        self.inputs.append(value)
        return value

    # ------------------------------------------------------------ adding a line
    def add(self, position: int, line: Line,
            known: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        """The line's steps, or Unfusable (the run is then as it was)."""
        saved = (dict(self.values), list(self.steps), list(self.inputs), set(self.locals),
                 self.stage, list(self.defined), dict(self.writes), dict(self.buffers))
        try:
            self._add(position, line, known)
        except Unfusable:
            (self.values, self.steps, self.inputs, self.locals, self.stage, self.defined,
             self.writes, self.buffers) = saved
            raise
        self.lines.append(line)

    def _add(self, position: int, line: Line,
             known: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
        if line.function == "copyto":  # a step's write into a caller's array (g.zero_())
            target, value = line.read
            if known.get(target) != (self.shape, self.dtype):
                raise Unfusable(f"a write into {target} of another shape or dtype")
            result = self.write_into(target, self.read(value, known), target)
            self.defined.append((position, target, result, self.shape))
            return
        if line.out is None or line.shape is None or line.astype:
            raise Unfusable("not an op's value")
        shape, dtype = line.shape
        if dtype != self.dtype:
            raise Unfusable("another dtype")
        statements, names, reduced_names, dims = _recipe(line, len(self.shape))
        keepdim = line.values.get("keepdim", True)
        bound = {variable: self.read(name, known, dims if variable in reduced_names
                                     and not keepdim else None)
                 for variable, name in zip(names, line.read)}
        for k, (variable, expression) in enumerate(statements):
            last = k == len(statements) - 1
            bound[variable] = self.expression(expression, bound, dims, line.out if last else
                                              f"{line.out}_{variable}")
        result = bound[statements[-1][0]]
        if line.sum_to is not None:  # broadcasting undone: a sum over the dims it added
            result = self.summed_to(result, line.sum_to, line.out)
        if line.accumulate != "=":  # a gradient's second share: added to the first
            before = self.read(line.out, known)
            result = self.map(ast.BinOp(_name(before), ast.Add(), _name(result)),
                              line.out, [before, result])
        if shape != self.shape and line.sum_to is None and not (  # full, or a reduction's
                result.kind == "scalar" and int(np.prod(shape)) == 1 or result.kind in (
                    "row", "total", "column")
                and shape in _reduced_shapes(self.shape, result.reduced)):
            raise Unfusable(f"a value of shape {shape} in a run over {self.shape}")
        if result.kind in ("row", "total", "column") and shape != self.shape:
            result.shape = shape  # kept dims or not: where its output array has them
        if line.into is not None and not line.lent:
            result = self.write_into(line.into, result, line.out)
        elif line.into is not None and self.fits(result, shape) and not self.bound(result):
            self.buffers[id(result)] = line.into  # where it goes, if it is written out
        self.values[line.out] = result
        self.defined.append((position, line.out, result, shape))

    def summed_to(self, value: Value, shape: tuple[int, ...], name: str) -> Value:
        """A rule's result summed back to its input's shape (`primitive.sum_to`): over the
        leading dims broadcasting added and the dims where the input had 1."""
        lead = len(self.shape) - len(shape)
        dims = tuple(range(lead)) + tuple(lead + i for i, n in enumerate(shape)
                                          if n == 1 and self.shape[lead + i] != 1)
        if value.kind != "full":
            raise Unfusable("a sum of a broadcast value")
        return self.reduction("sum", _name(value), dims, f"{name}_sum")

    def fits(self, value: Value, shape: tuple[int, ...]) -> bool:
        """Whether the value can be written out as an array of this shape as it is: made by
        the run, and one per element where the shape is the run's."""
        return value.source is None and (value.kind == "full" or shape != self.shape)

    def bound(self, value: Value) -> bool:
        """Whether a line before bound it to a name."""
        return any(v is value for _, _, v, _ in self.defined)

    def write_into(self, target: str, result: Value, name: str) -> Value:
        """A value written into a caller's array (``out=c0``: a weight's update, a .grad
        zeroed): element by element where the loop stands, so no other array the run reads may
        share that array's memory; later lines read the value itself."""
        if not self.fits(result, self.shape) or self.bound(result):
            result = self.map(_name(result), name, [result], kind="full")
        array = self.arrays.get(target)
        for value in self.inputs:
            other = self.arrays.get(value.source or "")
            if (value.source != target and array is not None and other is not None
                    and np.may_share_memory(array, other)):
                raise Unfusable(f"{value.source} shares memory with {target}")
        self.writes[id(result)] = target
        self.values[target] = result
        return result

    def expression(self, text: str, bound: dict[str, Value], dims: tuple[int, ...] | None,
                   name: str) -> Value:
        """One statement of a recipe: its reductions lifted into steps of their own, then the
        rest as a step."""
        tree = ast.parse(text, mode="eval").body

        def visit(node: ast.expr) -> ast.expr:
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in REDUCTIONS):
                operand = visit(node.args[0])
                value = self.reduction(REDUCTIONS[node.func.id], operand, dims,
                                       f"{name}_{node.func.id[7:]}")
                return _name(value)
            if isinstance(node, ast.Name) and node.id in bound:
                return _name(bound[node.id])
            for field_name, child in ast.iter_fields(node):
                if isinstance(child, ast.expr):
                    setattr(node, field_name, visit(child))
                elif isinstance(child, list):
                    setattr(node, field_name, [visit(c) if isinstance(c, ast.expr) else c
                                               for c in child])
            return node

        tree = visit(tree)
        if isinstance(tree, ast.Name) and tree.id in self.by_local():
            return self.by_local()[tree.id]  # a name for a value already there: no step
        return self.map(tree, name, self.operands(tree))

    def by_local(self) -> dict[str, Value]:
        found = {v.local: v for v in self.inputs}
        found.update({v.local: v for v in self.values.values()})
        found.update({s.target.local: s.target for s in self.steps})
        return found

    def operands(self, tree: ast.expr) -> list[Value]:
        values = self.by_local()
        return [values[n.id] for n in ast.walk(tree) if isinstance(n, ast.Name)
                and n.id in values]

    def map(self, tree: ast.expr, name: str, operands: list[Value], kind: str = "") -> Value:
        """An elementwise step: one value per element, per row, or one for the run (`kind`
        forces one per element: a broadcast)."""
        if any(v.kind in ("total", "column") for v in operands):
            raise Unfusable("a sum read before the loops end")
        kinds = {v.kind for v in operands} | {kind}
        kind = "full" if "full" in kinds else "row" if "row" in kinds else "scalar"
        ready = max([self.ready(v) for v in operands], default=0)
        stage = 0 if kind == "scalar" else max(ready, self.stage)
        for v in operands:
            if v.kind == "full" and v.source is None and v.stage < stage:
                v.kept = True
        target = Value(self.fresh(name), kind, stage)
        self.steps.append(Step(target, tree, stage))
        if kind != "scalar":
            self.stage = stage
        return target

    def reduction(self, how: str, operand: ast.expr, dims: tuple[int, ...] | None,
                  name: str) -> Value:
        """A reduction over the op's dims: along the last, one value per row, ready from the
        next stage; over all, a total, ready only when the loops end; a sum over all but the
        last, one per column, ready when the loops end too."""
        nd = len(self.shape)
        operands = self.operands(operand)
        if not any(v.kind == "full" for v in operands):
            raise Unfusable("a reduction of a broadcast value")
        if how == "sum" and nd > 1 and dims == tuple(range(nd - 1)):
            kind = "column"
        elif dims == (nd - 1,):
            kind = "row"
        elif dims == tuple(range(nd)) and nd > 1:
            kind = "total"
        else:
            raise Unfusable(f"a reduction over dims {dims}")
        stage = max([self.ready(v) for v in operands] + [self.stage])
        for v in operands:
            if v.kind == "full" and v.source is None and v.stage < stage:
                v.kept = True
        target = Value(self.fresh(name), kind, stage + 1, reduced=tuple(dims or range(nd)))
        self.steps.append(Step(target, operand, stage, how))
        self.stage = stage
        return target

    @staticmethod
    def ready(v: Value) -> int:
        return 0 if v.source is not None else v.stage

    # ------------------------------------------------------------ the kernel
    def outputs(self, escaping: set[int]) -> list[tuple[str, Value]]:
        """The names the run binds that are read after it (`escaping`: their places in
        `defined`), each with the value written out for it: a copy where the value is an
        input's, another name's, or one to broadcast to the run's shape."""
        outs: list[tuple[str, Value]] = []
        for k, (_, name, value, shape) in enumerate(self.defined):
            if k not in escaping and id(value) not in self.writes:
                continue
            if id(value) not in self.writes and (not self.fits(value, shape) or any(
                    v is value for _, v in outs)):
                value = self.map(_name(value), name, [value],
                                 kind="full" if shape == self.shape else "")
            value.shape = shape
            outs.append((name, value))
        return outs

    def source(self, name: str, outs: list[Value]) -> tuple[str, list[str]]:
        """The kernel's source and the arguments the program passes it."""
        dtype = f"np.{self.dtype.name}"
        *outer, width = self.shape

        def cast(text: str) -> str:  # float64 arithmetic gives float64; float32's may not
            return text if self.dtype == np.float64 else f"{dtype}({text})"

        parameters = [v.local for v in self.inputs]
        arguments = [f"{v.source}[()]" if v.scalar_input else str(v.source) for v in self.inputs]
        arrays = {}  # id(an output) -> the array it is written into, as the kernel names it
        for v in outs:
            target = self.writes.get(id(v), self.buffers.get(id(v)))
            if target is None:
                arrays[id(v)] = self.fresh(f"{v.local}_out")
            elif target in arguments and not self.inputs[arguments.index(target)].scalar_input:
                arrays[id(v)] = parameters[arguments.index(target)]  # read, then written
            else:
                arrays[id(v)] = self.fresh(target)
                parameters.append(arrays[id(v)])
                arguments.append(target)
        body = [f"# {_text(line)}" for line in self.lines]
        for v in outs:
            if id(v) not in self.writes and id(v) not in self.buffers and v.kind != "column":
                body.append(f"{arrays[id(v)]} = np.empty({v.shape}, {dtype})")
        kept = [s.target for s in self.steps if s.target.kept]
        body += [f"{v.local}_row = np.empty({width}, {dtype})" for v in kept]
        written = {id(v) for v in outs}

        def text(step: Step) -> str:
            return ast.unparse(self.accessed(step))

        def store(v: Value) -> list[str]:
            if id(v) not in written:
                return []
            return [f"{arrays[id(v)]}[{self.out_index(v)}] = {v.local}"]

        for s in self.steps:  # one value for the whole run, before the loops
            if s.target.kind == "scalar":
                body += [f"{s.target.local} = {cast(text(s))}",
                         *store(s.target)]
        totals = [s for s in self.steps if s.target.kind == "total"]
        body += [f"{s.target.local} = {dtype}({START[s.reduce or 'sum']})" for s in totals]
        columns = [s for s in self.steps if s.target.kind == "column"]
        body += [f"{s.target.local} = np.zeros({width}, {dtype})" for s in columns]
        loops = [f"{'    ' * d}for i{d} in range({n}):" for d, n in enumerate(outer)]
        body += loops
        pad = "    " * len(outer)
        for stage in range(max([s.stage for s in self.steps], default=0) + 1):
            inner = [s for s in self.steps if s.stage == stage and s.target.kind != "scalar"]
            if not inner:
                continue
            for s in inner:
                if s.target.kind == "row" and s.reduce is None:
                    body += [f"{pad}{s.target.local} = {cast(text(s))}",
                             *[pad + t for t in store(s.target)]]
                elif s.target.kind == "row":
                    body.append(f"{pad}{s.target.local} = {dtype}({START[s.reduce or 'sum']})")
            body.append(f"{pad}for j in range({width}):")
            for s in inner:
                if s.target.kind == "row" and s.reduce is None:
                    continue
                value = text(s)
                if s.reduce is None:
                    body.append(f"{pad}    {s.target.local} = {cast(value)}")
                    body += [f"{pad}    {t}" for t in store(s.target)]
                    if s.target.kept:
                        body.append(f"{pad}    {s.target.local}_row[j] = {s.target.local}")
                elif s.target.kind == "column":
                    body.append(f"{pad}    {s.target.local}[j] += {cast(value)}")
                elif s.reduce == "sum":
                    body.append(f"{pad}    {s.target.local} += {cast(value)}")
                else:
                    body.append(f"{pad}    {s.target.local} = np.{s.reduce}imum("
                                f"{s.target.local}, {cast(value)})")
            for s in inner:
                if s.target.kind == "row" and s.reduce is not None:
                    body += [pad + t for t in store(s.target)]
        for s in totals:
            body += store(s.target)
        body += [f"{arrays[id(s.target)]} = {s.target.local}.reshape({s.target.shape})"
                 for s in columns if id(s.target) in written]
        returned = [arrays[id(v)] for v in outs]
        body.append(f"return {', '.join(returned) if returned else 'None'}")
        return "\n".join([f"def {name}({', '.join(parameters)}):",
                          *["    " + b for b in body]]) + "\n", arguments

    def accessed(self, step: Step) -> ast.expr:
        """A step's expression with each value read as it is there: an input's element, a
        value kept from an earlier stage from its row, else the local."""
        values = self.by_local()
        inner = step.target.kind in ("full", "total", "column") or step.reduce is not None

        class Reader(ast.NodeTransformer):
            def visit_Name(self, node: ast.Name) -> ast.expr:
                v = values.get(node.id)
                if v is not None and v.source is not None and not v.scalar_input:
                    return ast.parse(f"{v.local}{v.index}", mode="eval").body
                if v is not None and v.kept and inner and v.stage < step.stage:
                    return ast.parse(f"{v.local}_row[j]", mode="eval").body
                return node

        return Reader().visit(_copy(step.expression))

    def out_index(self, v: Value) -> str:
        """Where a value is written in its output array."""
        nd = len(self.shape)
        if v.kind == "full":
            return ", ".join([_loop_variable(d, nd) for d in range(nd)])
        if v.kind == "row":
            kept = [d for d in range(nd) if d not in v.reduced or len(v.shape) == nd]
            parts = [_loop_variable(d, nd) if d not in v.reduced else "0" for d in kept]
            return ", ".join(parts) if parts else "()"
        return ", ".join("0" for _ in v.shape) if v.shape else "()"


def _reduced_shapes(shape: tuple[int, ...], dims: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The shapes of a reduction of `shape` over `dims`, with keepdim and without."""
    return [tuple(1 if d in dims else n for d, n in enumerate(shape)),
            tuple(n for d, n in enumerate(shape) if d not in dims)]


def _loop_variable(d: int, nd: int) -> str:
    return "j" if d == nd - 1 else f"i{d}"


def _name(v: Value) -> ast.Name:
    return ast.Name(v.local, ast.Load())


def _copy(tree: ast.expr) -> ast.expr:
    return ast.parse(ast.unparse(tree), mode="eval").body


def _bound(line: Line) -> list[str]:
    """The names a line binds (``a``, ``a, b``, ``a,``)."""
    return [] if line.out is None else _names(line.out)


def _names(text: str) -> list[str]:
    """The names in a tuple or name written as source: ``(a, b)`` -> [a, b]."""
    return [n.id for n in ast.walk(ast.parse(text, mode="eval")) if isinstance(n, ast.Name)]


def _text(line: Line) -> str:
    return emit(line).strip()


def _recipe(line: Line, nd: int) -> tuple[Any, list[str], tuple[str, ...], tuple[int, ...] | None]:
    """A line's loop form as [(variable, expression)], the names its inputs go by, the inputs
    that hold a reduction's result, and the dims its reductions reduce (normalized)."""
    if line.function is None:  # ``out = name``: the value itself
        return [("value", "x")], ["x"], (), None
    if line.function == "elementwise":  # an optimizer's update (`_updates_as_loops`)
        return [("value", line.values["expression"])], line.values["names"], (), None
    if line.kind == "kernel":
        raise Unfusable("a kernel")
    op = line.op
    if op is None or op.loop is None or line.kind == "check":
        raise Unfusable("no loop form")
    if line.rule is None:
        recipe = op.loop.forward
        names = list(op.input_names)
        reduced: tuple[str, ...] = ()
    else:
        recipe = op.loop.vjps[line.rule] if line.rule < len(op.loop.vjps) else None
        rule = op.vjps[line.rule]
        assert rule is not None
        names = list(inspect.signature(rule).parameters)[:len(line.read)]
        reduced = op.loop.reduced
    if callable(recipe):
        wanted = inspect.signature(recipe).parameters
        recipe = recipe(**{k: v for k, v in line.values.items() if k in wanted})
    if recipe is None:
        raise Unfusable("no loop form for these params")
    statements = [part.strip() for part in recipe.split(";")]
    steps = []
    for k, statement in enumerate(statements):
        variable, _, expression = statement.rpartition(" = ")
        steps.append((variable or f"result{k}", expression))
    dim = line.values.get("dim")
    if dim is None:
        dims = tuple(range(nd)) if nd else None
    else:
        dims = tuple(sorted(d % nd for d in ((dim,) if isinstance(dim, int) else dim))) if nd \
            else None
    return steps, names, reduced, dims


# ---------------------------------------------------------------- a function's runs
def fuse(functions: list[Function], shapes: dict[str, tuple[tuple[int, ...], np.dtype]],
         arrays: dict[str, np.ndarray], namespace: dict[str, Any]
         ) -> tuple[list[Function], list[str], list[str]]:
    """The functions with their runs of fusable lines as kernels, and each stretch of kernels
    and matmuls as one numba function (a region); the sources of the modules that hold them
    (one per function, bound in `namespace`); what the guard must check besides (that each
    optimizer's update still has the loops it was written as)."""
    numba_or_explain()
    sources: list[str] = []
    guards: list[str] = []
    known = dict(shapes)
    functions = inline(functions)
    functions[0] = replace(functions[0], lines=_updates_as_loops(functions[0].lines, known,
                                                                 namespace, guards))
    fused = [fuse_function(f, known, arrays, namespace, sources) for f in functions]
    return fused, sources, guards


def _updates_as_loops(lines: list[Line], known: dict[str, tuple[tuple[int, ...], np.dtype]],
                      namespace: dict[str, Any], guards: list[str]) -> list[Line]:
    """Each ``optimizer.step()`` of one parameter (`program.update_param`) as the optimizer's
    `LoopUpdate`: a call that gives this step's numbers and state arrays, then one line per
    array it writes, which runs join. The guard checks that the update has those loops still
    (SGD's momentum set to 0 or from it traces again)."""
    result: list[Line] = []
    for line in lines:
        optimizer = namespace.get(line.read[0]) if line.function == "update_param" else None
        update = getattr(optimizer, "loop_update", lambda group: None)
        group = int(line.params[0].split("=")[1]) if optimizer is not None else 0
        loops = update(optimizer.param_groups[group]) if optimizer is not None else None
        shape = known.get(line.target or "")
        if loops is None or shape is None or shape[1] not in FLOATS:
            result.append(line)
            continue
        k = len(guards)
        namespace[f"update{k}_loops"] = loops
        guards.append(f"{line.read[0]}.loop_update({line.read[0]}.param_groups[{group}]) == "
                      f"update{k}_loops")
        names = {"p": line.target, "g": line.read[2]} | {
            n: f"update{k}_{n}" for n in (*loops.numbers, *loops.state)}
        known.update({names[n]: ((), np.dtype(np.float64)) for n in loops.numbers})  # floats
        known.update({names[n]: shape for n in loops.state})
        given = [names[n] for n in (*loops.numbers, *loops.state)]
        result.append(Line("effect", ", ".join(given) + ("," if len(given) == 1 else ""),
                           "loop_state", [line.read[0], line.read[1]], [f"group={group}"]))
        for written, expression in loops.writes:
            variables = [n.id for n in ast.walk(ast.parse(expression, mode="eval"))
                         if isinstance(n, ast.Name) and n.id in names]
            variables = list(dict.fromkeys(variables))
            result.append(Line("effect", names[written], "elementwise",
                               [names[v] for v in variables],
                               [f"names={tuple(variables)!r}", f"expression={expression!r}"],
                               into=names[written], target=names[written], shape=shape,
                               values={"names": variables, "expression": expression}))
    namespace.update(loop_state=loop_state, elementwise=elementwise)
    return result


def loop_state(optimizer: Any, p: Any, group: int) -> tuple[Any, ...]:
    """An optimizer's numbers (as NumPy floats, which a kernel's caller reads as ``x[()]``)
    and state arrays for one parameter's update this step."""
    return tuple(np.float64(v) if isinstance(v, (int, float)) else v
                 for v in optimizer.loop_state(p, optimizer.param_groups[group]))


def elementwise(*values: Any, names: tuple[str, ...], expression: str, out: np.ndarray
                ) -> np.ndarray:
    """A loop line that no run took, as NumPy: the expression on whole arrays, into `out`."""
    np.copyto(out, eval(expression, {"np": np}, dict(zip(names, values))),
              casting="same_kind")
    return out


def fuse_function(function: Function, shapes: dict[str, tuple[tuple[int, ...], np.dtype]],
                  arrays: dict[str, np.ndarray], namespace: dict[str, Any],
                  sources: list[str]) -> Function:
    """One function's runs as kernels and its stretches of kernels and matmuls as regions."""
    function = replace(function, lines=_hoisted(function.lines))
    known = shapes  # the program's, and the names an optimizer's loops bind
    runs: list[tuple[int, Run]] = []  # (the position of its first line, the run)
    run: Run | None = None
    for position, line in enumerate(function.lines):
        try:
            if run is None:
                raise Unfusable("no run")
            run.add(position, line, known)
        except Unfusable:
            run = _start(position, line, known, arrays)
            if run is not None:
                runs.append((position, run))
        if line.out is not None and line.shape is not None:
            known[line.out] = line.shape
        elif line.out is not None and line.function is None and line.read[0] in known:
            known[line.out] = known[line.read[0]]
    prefix = f"{function.name}_" if function.name != "forward" else ""
    kernels: list[str] = []
    replaced: list[tuple[int, int, Line]] = []
    for start, run in runs:
        end = start + len(run.lines)
        try:
            outs = run.outputs(_escaping(function.lines, function.returns, end, [
                (p, n, k) for k, (p, n, _, _) in enumerate(run.defined)]))
        except Unfusable:  # a total read under two names: left to NumPy
            continue
        if not any(s.reduce or s.target.kind != "scalar" for s in run.steps):
            continue  # only names and numbers: nothing to loop over
        name = f"{prefix}kernel{len(kernels)}"
        source, arguments = run.source(name, [value for _, value in outs])
        kernels.append(source)
        replaced.append((start, end, Line("kernel", ", ".join(n for n, _ in outs) or None, name,
                                          arguments)))
    lines = list(function.lines)
    for start, end, line in reversed(replaced):
        lines[start:end] = [line]
    if not kernels:
        return function
    lines, regions = _regions(lines, function.returns, known, prefix)
    text = "\n\n".join(kernels + regions)
    sources.append(text)
    module = compiled(text)
    for line in lines:
        if line.kind == "kernel" and line.function is not None:
            namespace[line.function] = getattr(module, line.function)
    namespace["asarray"] = np.asarray
    return replace(function, lines=lines)


def _regions(lines: list[Line], returns: str, known: dict[str, tuple[tuple[int, ...], np.dtype]],
             prefix: str) -> tuple[list[Line], list[str]]:
    """Each stretch of kernel calls, matmuls and names bound again as one numba function: one
    call from Python where there were many, BLAS for the matmuls (``np.dot``)."""
    stretches: list[list[int]] = []
    for position, line in enumerate(lines):
        if _in_numba(line, known) is None:
            continue
        if stretches and stretches[-1][-1] == position - 1:
            stretches[-1].append(position)
        else:
            stretches.append([position])
    stretches = [positions for positions in stretches if len(positions) > 1
                 and any(lines[p].kind == "kernel" for p in positions)]
    regions: list[str] = []
    for number, positions in reversed(list(enumerate(stretches))):
        inside = [lines[p] for p in positions]
        start, end = positions[0], positions[-1] + 1
        defined = [(p, n, k) for k, p in enumerate(positions) for n in _bound(lines[p])]
        escaping = _escaping(lines, returns, end, [(p, n, hash((p, n))) for p, n, _ in defined])
        outs = list(dict.fromkeys(n for p, n, _ in defined if hash((p, n)) in escaping))
        parameters: list[str] = []
        bound: set[str] = set()
        for line in inside:  # what a line reads before the region binds it comes from outside
            read = [] if line.function == "ones" else _read_by(line)  # ones((), float64)
            parameters += [name for name in read if name not in bound and name not in parameters]
            bound |= set(_bound(line))
        name = f"{prefix}region{number}"
        body = [_in_numba(line, known) for line in inside]
        returned = ", ".join(outs)
        regions.append("\n".join([f"def {name}({', '.join(parameters)}):",
                                   *[f"    {statement}" for statement in body],
                                   f"    return {returned or 'None'}"]) + "\n")
        arguments = [f"asarray({p})" if known.get(p, ((0,), None))[0] == () else p
                     for p in parameters]
        lines[start:end] = [Line("kernel", returned or None, name, arguments)]
    return lines, regions[::-1]


def _in_numba(line: Line, known: dict[str, tuple[tuple[int, ...], np.dtype]]) -> str | None:
    """The line as a statement of a region, or None where numba cannot run it."""
    if line.kind == "kernel":
        call = f"{line.function}({', '.join(line.read)})"
        return call if line.out is None else f"{line.out} = {call}"
    if line.out is None or line.sum_to or line.astype:
        return None
    if line.function is None:
        return f"{line.out} = {line.read[0]}" if line.read[0].isidentifier() else None
    if line.function == "ones" and line.shape is not None:  # a backward's seed
        return f"{line.out} = np.ones({line.read[0]}, np.{line.shape[1].name})"
    if line.op is None or line.op.name != "matmul" or line.kind not in ("forward", "backward"):
        return None
    if line.into is not None and not line.lent:
        return None
    if line.rule is None:
        a, b = line.read
        product = f"np.dot({a}, {b})"
    else:
        g, _, a, b = line.read
        product = f"np.dot({g}, {b}.T)" if line.rule == 0 else f"np.dot({a}.T, {g})"
    if not all(name in known and len(known[name][0]) == 2 and known[name][1] in FLOATS
               and known[name][1] == known[a][1] for name in (a, b)):
        return None
    if line.accumulate == "+=":
        return f"{line.out} += {product}"
    if line.accumulate == "+":
        return f"{line.out} = {line.out} + {product}"
    return f"{line.out} = {product}"


def _hoisted(lines: list[Line]) -> list[Line]:
    """The lines with each that numba cannot run, and each write into a caller's array with
    the op that makes its value (a step's ``w.grad.zero_()``, written after the forward), moved
    up above the ops before it that it does not depend on, nor they on it: the forward and the
    backward then make one run. A line that stores gradients or updates a parameter is never
    moved (it acts on tensors the names do not show), nor anything across it."""
    written = {line.read[1] for line in lines if line.function == "copyto"}
    order: list[Line] = []
    for line in lines:
        at = len(order)
        movable = not _numba_may_run(line) or line.function == "copyto" or (
            line.out in written and sum(line.out in _read_by(other) for other in lines) == 1)
        if movable and line.function not in ("store_gradients", "update_param"):
            while at and _numba_may_run(order[at - 1]) and _independent(line, order[at - 1]):
                at -= 1
        order.insert(at, line)
    return order


def _numba_may_run(line: Line) -> bool:
    """An op with a loop form, a matmul, a name bound again: what a run or a region may hold."""
    if line.kind == "check":
        return False
    if line.function in (None, "ones", "copyto", "elementwise"):
        return True
    return line.op is not None and (line.op.loop is not None or line.op.name == "matmul")


def _independent(moved: Line, other: Line) -> bool:
    """Neither line reads or writes what the other binds or writes."""
    def written(line: Line) -> set[str]:
        return set(_bound(line)) | {n for n in (line.into, line.target) if n is not None}

    return not (written(moved) & (written(other) | set(_read_by(other)))
                or written(other) & set(_read_by(moved)))


def _start(position: int, line: Line, known: dict[str, tuple[tuple[int, ...], np.dtype]],
           arrays: dict[str, np.ndarray]) -> Run | None:
    """A run that begins with this line, or None if it cannot be in one."""
    if line.shape is None or line.function != "elementwise" and (
            line.function is None or line.op is None or line.op.loop is None):
        return None
    shape, dtype = line.shape
    if line.op is not None and line.op.loop is not None and line.rule is None and isinstance(
            line.op.loop.forward, str) and line.op.loop.forward.startswith("reduce_") \
            and line.read[0] in known:
        shape = known[line.read[0]][0]  # a reduction runs over its input
    if line.sum_to is not None and line.read[0] in known:
        shape = known[line.read[0]][0]  # a rule summed back to its input: over the gradient
    if not shape or shape[-1] == 1 or dtype not in FLOATS:
        return None
    run = Run(shape, dtype, arrays=arrays)
    try:
        run.add(position, line, known)
    except Unfusable:
        return None
    return run


def _escaping(lines: list[Line], returns: str, end: int,
              defined: list[tuple[int, str, int]]) -> set[int]:
    """Which of the values lines before `end` bound (position, name, key) a later line or the
    return reads, by the name they are bound to until it is bound again."""
    escaping = set()
    for position, name, key in defined:
        if any(p > position and n == name for p, n, _ in defined):
            continue  # bound again before the end
        for line in lines[end:]:
            if name in _read_by(line):
                escaping.add(key)
                break
            if name in _bound(line):
                break
        else:
            if name in _names(returns):
                escaping.add(key)
    return escaping


def _read_by(line: Line) -> list[str]:
    """The names a line reads, in order: its arguments (``c2[()]`` reads c2), its params (an
    index read from a slot), the array it writes into, a gradient it adds to."""
    names: list[str] = []
    texts = [*line.read, *(p.split("=", 1)[1] for p in line.params)]
    texts += [line.into] if line.into is not None else []
    texts += [line.out] if line.accumulate != "=" and line.out is not None else []
    for text in texts:
        try:
            tree = ast.parse(text, mode="eval")
        except SyntaxError:
            continue
        names += [n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and n.id not in names]
    return names


# ---------------------------------------------------------------- compiling, cached
COMPILED: dict[str, Any] = {}  # a module's source -> the module, its functions compiled


def cache_folder() -> Path:
    """Where kernels' sources and numba's compiled code are kept between processes:
    ``$AUTODIFF_CACHE``, else ``$XDG_CACHE_HOME/autodiff/kernels`` (``~/.cache/...``)."""
    if "AUTODIFF_CACHE" in os.environ:
        return Path(os.environ["AUTODIFF_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "autodiff" / "kernels"


def compiled(source: str) -> Any:
    """The module of these kernels and regions, each function compiled by numba (lazily, at its
    first call), once per process; with numba's disk cache where the cache folder is writable
    (numba caches the functions of a file: the source is written to one named by its hash)."""
    if source in COMPILED:
        return COMPILED[source]
    numba = numba_or_explain()
    module_name = f"autodiff_kernels_{hashlib.sha256(source.encode()).hexdigest()[:20]}"
    text = f'"""Written by autodiff.compile(backend="numba")."""\nimport numpy as np\n\n\n{source}'
    names = re.findall(r"^def (\w+)\(", source, re.MULTILINE)
    try:
        folder = cache_folder()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{module_name}.py"
        if not path.exists() or path.read_text() != text:
            partial = folder / f".{module_name}.{os.getpid()}.tmp"
            partial.write_text(text)
            os.replace(partial, path)  # never a half-written file under the real name
        spec = importlib.util.spec_from_file_location(module_name, path)
        assert spec is not None and spec.loader is not None
        module: Any = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module  # numba's cache finds a kernel's globals by module
        spec.loader.exec_module(module)
        cache = True
    except OSError:  # no writable cache: compiled in memory, each process again
        module = types.ModuleType(module_name)
        exec(builtins.compile(text, f"<{module_name}>", "exec"), module.__dict__)
        cache = False
    for name in names:  # a region calls the kernels: they are numba functions before it runs
        # a region's np.dot holds pointers to BLAS, which numba cannot cache: compiled anew
        setattr(module, name, numba.njit(cache=cache and "region" not in name)(
            getattr(module, name)))
    COMPILED[source] = module
    return module
