"""Test anyone's autograd engine against this one: random programs, shrunk to the op that differs.

An engine is described by an adapter: an object with

- ``name``: what to call it in reports;
- ``ops``: the names it implements, from `OPS` (``sum`` among them: each program is reduced to
  a scalar with it);
- ``leaf(array) -> handle``: a value that requires grad, from a NumPy array;
- ``apply(op, *handles, **params) -> handle``: an op of `OPS`, with its parameters as named
  there (``dim=``, ``keepdim=``, a Python number ``exponent=`` for ``pow``);
- ``backward(scalar_handle)``, ``grad(leaf_handle) -> ndarray``, ``value(handle) -> ndarray``.

`check_engine` draws programs from the engine's ops with hypothesis (inputs of shapes that
broadcast, values kept off each op's kinks and out of its domain's edges, a value used more than
once so that gradients must accumulate), runs each on the engine and on autodiff, and compares
every value and every leaf's gradient. On a difference it raises `EngineMismatch` with the
shrunk program printed in the adapter's terms and the first op that differs: by value, or, when
every value agrees, by the gradient of each op applied alone. An engine that raises inside an op,
returns a wrong shape or a NaN is reported the same way.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from autodiff.tensor import Tensor


class Engine(Protocol):
    name: str
    ops: Any  # a collection of op names

    def leaf(self, array: np.ndarray) -> Any: ...
    def apply(self, op: str, *handles: Any, **params: Any) -> Any: ...
    def backward(self, scalar: Any) -> None: ...
    def grad(self, leaf: Any) -> np.ndarray: ...
    def value(self, handle: Any) -> np.ndarray: ...


class EngineMismatch(AssertionError):
    """The engine under test and autodiff disagree (the message says where and how)."""


@dataclass(frozen=True)
class OpSpec:
    """One op of the vocabulary: its arity, parameters, how autodiff computes it, and where its
    operands must stay (a predicate on each operand's values: inside the domain, off kinks)."""

    arity: int
    params: tuple[str, ...]
    reference: Callable[..., Tensor]
    fits: Callable[..., bool] = field(default=lambda *values: True)


def _away_from(points: tuple[float, ...], margin: float) -> Callable[..., bool]:
    return lambda a, *rest: all(np.all(np.abs(a - p) >= margin) for p in points)


def _moderate(a: np.ndarray, *rest: np.ndarray) -> bool:
    return bool(np.all(np.abs(a) <= 3))


OPS: dict[str, OpSpec] = {
    "add": OpSpec(2, (), lambda a, b: a + b),
    "sub": OpSpec(2, (), lambda a, b: a - b),
    "mul": OpSpec(2, (), lambda a, b: a * b),
    "div": OpSpec(2, (), lambda a, b: a / b, lambda a, b: bool(np.all(np.abs(b) >= 0.2))),
    "neg": OpSpec(1, (), lambda a: -a),
    "pow": OpSpec(1, ("exponent",), lambda a, exponent: a ** exponent,
                  lambda a: bool(np.all(np.abs(a) <= 3))),
    "exp": OpSpec(1, (), lambda a: a.exp(), _moderate),
    "log": OpSpec(1, (), lambda a: a.log(), lambda a: bool(np.all(a >= 0.2))),
    "sqrt": OpSpec(1, (), lambda a: a.sqrt(), lambda a: bool(np.all(a >= 0.2))),
    "abs": OpSpec(1, (), lambda a: a.abs(), _away_from((0.0,), 1e-3)),
    "tanh": OpSpec(1, (), lambda a: a.tanh()),
    "sigmoid": OpSpec(1, (), lambda a: a.sigmoid()),
    "relu": OpSpec(1, (), lambda a: a.relu(), _away_from((0.0,), 1e-3)),
    "sin": OpSpec(1, (), lambda a: a.sin()),
    "cos": OpSpec(1, (), lambda a: a.cos()),
    "sum": OpSpec(1, ("dim", "keepdim"), lambda a, dim=None, keepdim=False: a.sum(dim, keepdim)),
    "mean": OpSpec(1, ("dim", "keepdim"),
                   lambda a, dim=None, keepdim=False: a.mean(dim, keepdim)),
    "matmul": OpSpec(2, (), lambda a, b: a @ b),
    "softmax": OpSpec(1, ("dim",), lambda a, dim: a.softmax(dim)),
    "log_softmax": OpSpec(1, ("dim",), lambda a, dim: a.log_softmax(dim)),
}


@dataclass(frozen=True)
class Step:
    op: str
    operands: tuple[int, ...]  # indices of earlier values (the leaves first)
    params: tuple[tuple[str, Any], ...]

    def code(self, names: list[str]) -> str:
        args = [repr(self.op), *(names[k] for k in self.operands)]
        args += [f"{key}={value!r}" for key, value in self.params]
        return f"apply({', '.join(args)})"


@dataclass(frozen=True)
class Program:
    """Leaves (their arrays), then steps; the last value is summed to a scalar and
    differentiated."""

    leaves: tuple[np.ndarray, ...]
    steps: tuple[Step, ...]

    def pruned(self) -> Program:
        """Without the steps the result does not depend on, and the leaves no step reads."""
        needed = {len(self.leaves) + len(self.steps) - 1}
        for k in range(len(self.steps) - 1, -1, -1):
            if len(self.leaves) + k in needed:
                needed.update(self.steps[k].operands)
        kept_leaves = [i for i in range(len(self.leaves)) if i in needed]
        kept_steps = [k for k in range(len(self.steps)) if len(self.leaves) + k in needed]
        number = {old: new for new, old in enumerate(
            kept_leaves + [len(self.leaves) + k for k in kept_steps])}
        return Program(tuple(self.leaves[i] for i in kept_leaves),
                       tuple(Step(self.steps[k].op,
                                  tuple(number[j] for j in self.steps[k].operands),
                                  self.steps[k].params) for k in kept_steps))

    def names(self) -> list[str]:
        return [f"x{i}" for i in range(len(self.leaves))] + [f"v{k}"
                                                            for k in range(len(self.steps))]

    def __repr__(self) -> str:
        names = self.names()
        lines = [f"{names[i]} = leaf({_short(a)})" for i, a in enumerate(self.leaves)]
        lines += [f"{names[len(self.leaves) + k]} = {s.code(names)}"
                  for k, s in enumerate(self.steps)]
        lines += [f"out = apply('sum', {names[-1]})", "backward(out)"]
        return "\n".join("    " + line for line in lines)


def _short(a: Any) -> str:
    """An array on one line, its first values and its shape."""
    a = np.asarray(a)
    text = " ".join(np.array2string(a, precision=4, separator=", ", threshold=12).split())
    return f"array({text}" + (f", shape {a.shape})" if a.size > 1 else ")")


# ---------------------------------------------------------------- running a program
class _Reference:
    """autodiff itself, as an adapter."""

    name = "autodiff"

    def leaf(self, array: np.ndarray) -> Tensor:
        return Tensor(array, requires_grad=True)

    def apply(self, op: str, *handles: Tensor, **params: Any) -> Tensor:
        return OPS[op].reference(*handles, **params)

    def backward(self, scalar: Tensor) -> None:
        scalar.backward()

    def grad(self, leaf: Tensor) -> np.ndarray:
        return np.zeros(leaf.shape) if leaf.grad is None else leaf.grad.data

    def value(self, handle: Tensor) -> np.ndarray:
        return handle.data


REFERENCE = _Reference()


@dataclass
class _Run:
    values: list[np.ndarray]  # the leaves', then each step's
    grads: list[np.ndarray]  # each leaf's


class _Failed(Exception):
    """The engine raised, or returned something unusable, at a step."""

    def __init__(self, where: str, what: str) -> None:
        super().__init__(f"{where}: {what}")
        self.where, self.what = where, what


def _run(engine: Any, program: Program) -> _Run:
    names = program.names()
    handles = []
    for i, array in enumerate(program.leaves):
        handles.append(_call(engine.leaf, f"leaf {names[i]}", array.copy()))
    for k, step in enumerate(program.steps):
        where = f"{step.op} ({names[len(program.leaves) + k]} = {step.code(names)})"
        handles.append(_call(engine.apply, where, step.op,
                             *(handles[j] for j in step.operands), **dict(step.params)))
    out = _call(engine.apply, "sum (out = apply('sum', ...))", "sum", handles[-1])
    _call(engine.backward, "backward(out)", out)
    values = [np.asarray(_call(engine.value, f"value of {n}", h), dtype=np.float64)
              for n, h in zip(names, handles)]
    grads = [np.asarray(_call(engine.grad, f"grad of {names[i]}", handles[i]), dtype=np.float64)
             for i in range(len(program.leaves))]
    return _Run(values, grads)


def _call(function: Callable[..., Any], where: str, *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except Exception as error:  # the engine's own failure, whatever it is, is the finding
        raise _Failed(where, f"raised {type(error).__name__}: {error}") from None


def _differs(expected: np.ndarray, got: np.ndarray, rtol: float, atol: float) -> str | None:
    """How `got` differs from `expected` (shape first, then a NaN, then values), or None."""
    if got.shape != expected.shape:
        return f"shape {got.shape}, expected {expected.shape}"
    if np.isnan(got).any() and not np.isnan(expected).any():
        return f"NaN where autodiff has none: got {_short(got)}, expected {_short(expected)}"
    if not np.allclose(got, expected, rtol=rtol, atol=atol, equal_nan=True):
        return f"expected {_short(expected)}, got {_short(got)}"
    return None


TOLERANCE = {"float64": (1e-6, 1e-9), "float32": (1e-3, 1e-5)}


def compare(engine: Any, program: Program, dtype: str = "float64", *,
            localize: bool = True) -> None:
    """Run `program` on the engine and on autodiff; raise `EngineMismatch` on any difference.
    With `localize`, a difference in a gradient (or a failure in backward) is traced to the
    first op whose own gradient is wrong."""
    rtol, atol = TOLERANCE[dtype]
    program = program.pruned()
    expected = _run(REFERENCE, program)
    header = f"{engine.name} disagrees with autodiff on this program:\n{program!r}\n"
    try:
        got = _run(engine, program)
    except _Failed as failure:
        found = f"at {failure.where}, {engine.name} {failure.what}"
        if localize and failure.where.startswith(("backward", "grad of")):
            found += "\n" + _localize(engine, program, expected, dtype)
        raise EngineMismatch(header + found) from None
    names = program.names()
    for k, (e, g) in enumerate(zip(expected.values, got.values)):
        if (difference := _differs(e, g, rtol, atol)) is not None:
            step = program.steps[k - len(program.leaves)] if k >= len(program.leaves) else None
            what = f"the value of {names[k]}" + (f", made by {step.op}" if step else "")
            raise EngineMismatch(header + f"the first op whose value differs: {what}: "
                                 f"{difference}")
    for i, (e, g) in enumerate(zip(expected.grads, got.grads)):
        if (difference := _differs(e, g, rtol, atol)) is not None:
            found = f"the gradient of {names[i]} differs: {difference}"
            if localize:
                found += "\n" + _localize(engine, program, expected, dtype)
            raise EngineMismatch(header + found)


def _localize(engine: Any, program: Program, expected: _Run, dtype: str) -> str:
    """Every value agrees, a gradient does not: check each op alone, on the values it saw (a
    leaf of its own for each operand, so that nothing needs accumulating)."""
    for step in program.steps:
        alone = Program(tuple(expected.values[j] for j in step.operands),
                        (Step(step.op, tuple(range(len(step.operands))), step.params),))
        try:
            compare(engine, alone, dtype, localize=False)
        except EngineMismatch as mismatch:
            detail = str(mismatch).split("\n")[-1]
            return (f"the first op whose own gradient is wrong: {step.op}, applied alone:\n"
                    f"{alone!r}\n{detail}")
    names = program.names()
    uses = [[s.op for s in program.steps for i in s.operands if i == j] for j in range(len(names))]
    shared = [f"{names[j]} is used {len(ops)} times (by {', '.join(dict.fromkeys(ops))})"
              for j, ops in enumerate(uses) if len(ops) > 1]
    return (f"each op's gradient alone is right, but not the program's: {'; '.join(shared)}: "
            "the gradients of a value used more than once must be added up (accumulated), not "
            "overwritten")


# ---------------------------------------------------------------- drawing programs
@st.composite
def programs_for(draw: st.DrawFn, ops: list[str], max_steps: int = 5,
                 dtype: str = "float64") -> Program:
    """Programs of the given ops whose every operand is inside the op's domain and off its
    kinks, in which some value is used more than once."""
    leaves: list[np.ndarray] = []
    elements = st.floats(-2, 2, allow_nan=False, allow_infinity=False, width=32)
    shapes = draw(hnp.mutually_broadcastable_shapes(num_shapes=draw(st.integers(1, 3)),
                                                    min_dims=0, max_dims=3, max_side=3))
    for shape in shapes.input_shapes:
        leaves.append(draw(hnp.arrays(dtype, shape, elements=elements)))
    values = [Tensor(a) for a in leaves]
    steps: list[Step] = []
    used: list[int] = []

    def add_leaf(shape: tuple[int, ...]) -> int:
        """A new input of `shape`, numbered after the others (the steps renumbered): its index."""
        nonlocal steps, used
        at = len(leaves)
        leaves.append(draw(hnp.arrays(dtype, shape, elements=elements)))
        values.insert(at, Tensor(leaves[-1]))
        steps = [_shift(s, at) for s in steps]
        used = [u + (u >= at) for u in used]
        return at

    for _ in range(draw(st.integers(1, max_steps))):
        op = draw(st.sampled_from(ops))
        spec = OPS[op]
        operands = [draw(st.integers(0, len(values) - 1)) for _ in range(spec.arity)]
        if "dim" in spec.params:  # a reduction: first on a new input whose dims all differ
            if not draw(st.booleans()):  # in length (a rule that puts the reduced dim back in
                operands = [add_leaf(draw(DISTINCT_SIDES))]  # the wrong place shows), else
            else:  # on the values with the most dims
                most = max(v.ndim for v in values)
                operands = [draw(st.sampled_from([j for j, v in enumerate(values)
                                                  if v.ndim == most]))]
        if op == "matmul":  # a new right operand that fits
            a = values[operands[0]]
            if a.ndim != 2:
                continue
            b = add_leaf((a.shape[1], draw(st.integers(1, 3))))
            operands = [operands[0] + (operands[0] >= b), b]
        params = _params(draw, spec, values[operands[0]].ndim)
        if params is None or not _fits(spec, [values[j] for j in operands], len(operands)):
            continue
        try:
            with np.errstate(all="raise"):
                out = spec.reference(*[values[j] for j in operands], **dict(params))
        except (FloatingPointError, ValueError):
            continue
        if not np.all(np.isfinite(out.data)) or np.abs(out.data).max(initial=0) > 1e4:
            continue
        steps.append(Step(op, tuple(operands), params))
        used += operands
        values.append(out)
    reuse = next((op for op in ("mul", "add") if op in ops), None)
    if steps and reuse and all(used.count(j) < 2 for j in used):
        steps.append(Step(reuse, (len(values) - 1,) * 2, ()))  # one value feeding one op twice
    if not steps:
        steps.append(Step(ops[0] if OPS[ops[0]].arity == 1 and not OPS[ops[0]].params
                          else "sum", (0,), ()))
    return Program(tuple(leaves), tuple(steps))


DISTINCT_SIDES = st.lists(st.integers(2, 4), min_size=2, max_size=3, unique=True).map(tuple)


def _shift(step: Step, at: int) -> Step:
    """The step with its operands renumbered after a leaf was inserted at `at`."""
    return Step(step.op, tuple(j + (j >= at) for j in step.operands), step.params)


def _params(draw: st.DrawFn, spec: OpSpec, ndim: int) -> tuple[tuple[str, Any], ...] | None:
    """An op's parameters. Hypothesis tries its simplest draws first: for a dim those are the
    last dim and no keepdim, where a rule that puts the reduced dim back in the wrong place
    shows (the first dim would hide it)."""
    params: list[tuple[str, Any]] = []
    if "exponent" in spec.params:
        params.append(("exponent", draw(st.sampled_from([2, 3]))))
    if "dim" in spec.params:
        if "keepdim" in spec.params:
            dim = draw(st.one_of(_last_first(ndim), st.none())) if ndim else None
            if dim is not None:
                params += [("dim", dim), ("keepdim", draw(st.booleans()))]
        elif ndim == 0:
            return None  # softmax needs a dim
        else:
            params.append(("dim", draw(_last_first(ndim))))
    return tuple(params)


def _last_first(ndim: int) -> st.SearchStrategy[int]:
    """A dim of `ndim`, counted from the end and from the start alike, the last one first."""
    return st.integers(0, 2 * ndim - 1).map(lambda k: -1 - k if k < ndim else k - ndim)


def _fits(spec: OpSpec, operands: list[Tensor], arity: int) -> bool:
    if arity == 2 and spec is not OPS["matmul"]:
        try:
            np.broadcast_shapes(operands[0].shape, operands[1].shape)
        except ValueError:
            return False
    return bool(spec.fits(*[t.data for t in operands]))


# ---------------------------------------------------------------- the suite
def SETTINGS(max_examples: int) -> settings:  # noqa: N802 - used as a decorator
    """Hypothesis's settings for the suite: the same examples every run, one failure reported
    (shrunk), no example database."""
    return settings(max_examples=max_examples, deadline=None, database=None, derandomize=True,
                    report_multiple_bugs=False,
                    phases=[Phase.explicit, Phase.generate, Phase.shrink],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much,
                                           HealthCheck.data_too_large])


def _vocabulary(engine: Any) -> list[str]:
    ops = sorted(engine.ops)
    unknown = [op for op in ops if op not in OPS]
    if unknown:
        raise ValueError(f"conformance: {engine.name} declares ops outside the vocabulary: "
                         f"{unknown} (autodiff.testing.conformance.OPS lists it: "
                         f"{sorted(OPS)})")
    if "sum" not in ops:
        raise ValueError(f"conformance: {engine.name} must implement 'sum' (each program is "
                         "reduced to a scalar with it)")
    return ops


def check_engine(engine: Any, *, max_examples: int = 100, dtype: str = "float64") -> None:
    """Draw programs from the engine's ops and compare it with autodiff on each (see the module
    doc); raise `EngineMismatch` on the first difference, shrunk. Each op is tried first in
    programs of its own (`check_op`, half the examples), where its parameters vary most."""
    ops = _vocabulary(engine)
    for op in ops:
        check_op(engine, op, max_examples=max(10, max_examples // 2), dtype=dtype)
    _check(engine, ops, 5, max_examples, dtype)


def check_op(engine: Any, op: str, *, max_examples: int = 50, dtype: str = "float64") -> None:
    """`check_engine` on programs of one op (with ``mul``, where the engine has it, so that a
    value can be used twice; ``sum`` reduces them)."""
    ops = _vocabulary(engine)
    if op not in ops:
        raise ValueError(f"conformance: {engine.name} does not declare {op!r}")
    _check(engine, [op] + (["mul"] if "mul" in ops else []), 2, max_examples, dtype)


def _check(engine: Any, ops: list[str], max_steps: int, max_examples: int, dtype: str) -> None:
    if dtype not in TOLERANCE:
        raise ValueError(f"conformance: dtype must be one of {sorted(TOLERANCE)}, got {dtype!r}")

    @SETTINGS(max_examples)
    @given(program=programs_for(ops, max_steps=max_steps, dtype=dtype))
    def agrees(program: Program) -> None:
        compare(engine, program, dtype)

    agrees()


def conformance_tests(make_engine: Callable[[], Any], *, max_examples: int = 100) -> Any:
    """A pytest test function: one test per op the engine declares, and one of programs.
    In a test file::

        from autodiff.testing.conformance import conformance_tests
        from mypkg.adapter import make_engine

        test_conformance = conformance_tests(make_engine)
    """
    import pytest

    ops = _vocabulary(make_engine())

    @pytest.mark.parametrize("check", [f"op {op}" for op in ops] + ["programs"])
    def test_conformance(check: str) -> None:
        engine = make_engine()
        if check == "programs":
            check_engine(engine, max_examples=max_examples)
        else:
            check_op(engine, check.removeprefix("op "), max_examples=max(10, max_examples // 2))

    return test_conformance
