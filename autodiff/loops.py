"""A run of a program's lines as one kernel of loops (the fused backend, `autodiff.fusion`).

A `Run` grows line by line: each line's loop form (`primitive.Loop`, from the op table) becomes
steps on `Value`s, scalars in the loop body; a reduction along the last dim splits a row's work
into stages, one over all dims is a running total, a sum over all but the last one running sum
per column. `Run.source` then writes the kernel: the outer loops over the rows, a loop over the
last dim per stage, a value read in a later stage kept in a row-long array, the values later
lines read written out, a write into a caller's array (a weight, a .grad) done in place.
"""

from __future__ import annotations

import ast
import inspect
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autodiff.program import Line, emit

FLOATS = (np.dtype(np.float32), np.dtype(np.float64))  # what numba's loops and np.dot take
REDUCTIONS = {"reduce_sum": "sum", "reduce_max": "max", "reduce_min": "min"}
START = {"sum": "0", "max": "-np.inf", "min": "np.inf"}  # a reduction's value before any element


class Unfusable(Exception):
    """A line that cannot join the run: it ends it (and runs as NumPy, or starts the next)."""



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
        target = Value(self.fresh(name), kind, stage,  # a row's: reduced along the last dim
                       reduced=(len(self.shape) - 1,) if kind == "row" else ())
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
        # the program's arrays the kernel names: the inputs read whole, then those it writes
        named = {a: p for a, p, v in zip(arguments, parameters, self.inputs) if not v.scalar_input}
        for v in outs:
            target = self.writes.get(id(v), self.buffers.get(id(v)))
            if target is None:
                arrays[id(v)] = self.fresh(f"{v.local}_out")
            elif target in named:  # read, then written; or written twice (the later store wins)
                arrays[id(v)] = named[target]
            else:
                arrays[id(v)] = named[target] = self.fresh(target)
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
            looped = [s for s in inner if s.target.kind != "row" or s.reduce is not None]
            if looped:
                body.append(f"{pad}for j in range({width}):")
            for s in looped:
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


def bound_names(line: Line) -> list[str]:
    """The names a line binds (``a``, ``a, b``, ``a,``)."""
    return [] if line.out is None else names_in(line.out)


def names_in(text: str) -> list[str]:
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
