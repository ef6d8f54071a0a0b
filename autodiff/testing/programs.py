"""`programs()`: small random differentiable programs made of the engine's ops.

A program is a DAG: each step applies a primitive to earlier values (so subexpressions are
shared), and inputs of different but broadcastable shapes meet in binary ops. The steps are read
from the op table: every smooth op that works elementwise, or reduces over ``dim``. Each operand
is kept inside the op's declared domain (``v * v + 1`` where it must be positive or nonzero,
``v.tanh()`` where it must stay moderate), so every step is smooth and finite for any finite
input and the program's gradient can be checked anywhere. It prints as Python, so a shrunk
failing example reads as code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import DTypeLike

from autodiff.ops import OPS, Op
from autodiff.tensor import Tensor


def _usable(op: Op) -> bool:
    """Smooth, differentiable in every input, and applicable to any broadcastable operands."""
    return op.smooth and not op.variadic and None not in op.vjps and (
        op.elementwise and not op.params or op.params in (("dim",), ("dim", "keepdim")))


STEPS = {name: op for name, op in OPS.items() if _usable(op)}


@dataclass(frozen=True)
class Step:
    name: str
    operands: tuple[int, ...]  # indices of earlier values (inputs first)
    dim: int | None

    def code(self, names: list[str]) -> str:
        op = STEPS[self.name]
        operands = [_in_domain(op, i, names[k]) for i, k in enumerate(self.operands)]
        params = {} if self.dim is None else {"dim": self.dim}
        if "keepdim" in op.params:  # reduced dims stay, as 1: shapes keep broadcasting
            params["keepdim"] = True
        return op.call_text(*operands, **params)


def _in_domain(op: Op, i: int, name: str) -> str:
    """The operand as it is passed: squared plus one, or squashed, where the op needs it."""
    if i in op.domain.positive or i in op.domain.nonzero:
        return f"({name} * {name} + 1)"
    if i in op.domain.moderate:
        return f"{name}.tanh()"
    return name


@dataclass(frozen=True)
class Program:
    """A drawn program: call it on tensors of ``input_shapes``; ``inputs`` are drawn values."""

    input_shapes: tuple[tuple[int, ...], ...]
    steps: tuple[Step, ...]
    inputs: tuple[np.ndarray, ...]

    def __call__(self, *xs: Tensor) -> Tensor:
        values = list(xs)
        names = [f"x{i}" for i in range(len(xs))]
        scope: dict[str, Tensor] = {}
        for k, step in enumerate(self.steps):
            scope.update(zip(names, values))
            values.append(eval(step.code(names), {}, scope))  # the code __repr__ prints
            names.append(f"v{k}")
        return values[-1]

    def tensors(self, requires_grad: bool = True) -> list[Tensor]:
        return [Tensor(a.copy(), requires_grad=requires_grad) for a in self.inputs]

    def __repr__(self) -> str:
        names = [f"x{i}" for i in range(len(self.input_shapes))]
        lines = [f"def program({', '.join(names)}):  # shapes {list(self.input_shapes)}"]
        for k, step in enumerate(self.steps):
            lines.append(f"    v{k} = {step.code(names)}")
            names.append(f"v{k}")
        lines.append(f"    return v{len(self.steps) - 1}")
        return "\n".join(lines)


@st.composite
def programs(draw: st.DrawFn, max_inputs: int = 3, max_steps: int = 6, max_dims: int = 3,
             max_side: int = 4, dtype: DTypeLike = np.float64) -> Program:
    """Small random differentiable programs over broadcastable inputs (see the module doc)."""
    n_inputs = draw(st.integers(1, max_inputs))
    shapes = draw(hnp.mutually_broadcastable_shapes(
        num_shapes=n_inputs, min_dims=1, max_dims=max_dims, max_side=max_side))
    value_shapes = list(shapes.input_shapes)
    steps = []
    for _ in range(draw(st.integers(1, max_steps))):
        name = draw(st.sampled_from(sorted(STEPS)))
        op = STEPS[name]
        operands = tuple(draw(st.integers(0, len(value_shapes) - 1)) for _ in op.vjps)
        shape = np.broadcast_shapes(*(value_shapes[i] for i in operands))
        dim = draw(st.integers(-len(shape), len(shape) - 1)) if "dim" in op.params else None
        if dim is not None and "keepdim" in op.params:  # the reduced dim stays, as 1
            shape = tuple(1 if i == dim % len(shape) else n for i, n in enumerate(shape))
        steps.append(Step(name, operands, dim))
        value_shapes.append(shape)
    elements = st.floats(-2, 2, allow_nan=False, allow_infinity=False)
    inputs = tuple(draw(hnp.arrays(dtype, s, elements=elements)) for s in shapes.input_shapes)
    return Program(tuple(shapes.input_shapes), tuple(steps), inputs)
