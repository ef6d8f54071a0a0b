"""`programs()`: small random differentiable programs made of the engine's ops.

A program is a DAG: each step applies an op to earlier values (so subexpressions are shared),
and inputs of different but broadcastable shapes meet in binary ops. Every step is smooth and
finite for any finite input (log and sqrt only see values kept positive, exp only tanh-bounded
ones), so the program's gradient can be checked anywhere. It prints as Python, so a shrunk
failing example reads as code.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from autodiff.tensor import Tensor

# name: (number of operands, Python template, needs a dim)
STEPS = {
    "add": (2, "{0} + {1}", False),
    "sub": (2, "{0} - {1}", False),
    "mul": (2, "{0} * {1}", False),
    "div": (2, "{0} / ({1} * {1} + 1)", False),
    "tanh": (1, "{0}.tanh()", False),
    "sigmoid": (1, "{0}.sigmoid()", False),
    "exp": (1, "{0}.tanh().exp()", False),
    "log": (1, "({0} * {0} + 1).log()", False),
    "sqrt": (1, "({0} * {0} + 1).sqrt()", False),
    "pow": (1, "({0} * {0} + 1) ** 1.5", False),
    "softmax": (1, "{0}.softmax(dim={dim})", True),
    "log_softmax": (1, "{0}.log_softmax(dim={dim})", True),
    "sum": (1, "{0}.sum(dim={dim}, keepdim=True)", True),
    "mean": (1, "{0}.mean(dim={dim}, keepdim=True)", True),
}


@dataclass(frozen=True)
class Step:
    name: str
    operands: tuple[int, ...]  # indices of earlier values (inputs first)
    dim: int | None

    def code(self, names: list[str]) -> str:
        template = STEPS[self.name][1]
        return template.format(*(names[i] for i in self.operands), dim=self.dim)


@dataclass(frozen=True)
class Program:
    """A drawn program: call it on tensors of ``input_shapes``; ``inputs`` are drawn values."""

    input_shapes: tuple[tuple[int, ...], ...]
    steps: tuple[Step, ...]
    inputs: tuple[np.ndarray, ...]

    def __call__(self, *xs: Tensor) -> Tensor:
        values = list(xs)
        names = [f"x{i}" for i in range(len(xs))]
        scope = {}
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
def programs(draw, max_inputs: int = 3, max_steps: int = 6, max_dims: int = 3,
             max_side: int = 4, dtype=np.float64) -> Program:
    """Small random differentiable programs over broadcastable inputs (see the module doc)."""
    n_inputs = draw(st.integers(1, max_inputs))
    shapes = draw(hnp.mutually_broadcastable_shapes(
        num_shapes=n_inputs, min_dims=1, max_dims=max_dims, max_side=max_side))
    value_shapes = list(shapes.input_shapes)
    steps = []
    for _ in range(draw(st.integers(1, max_steps))):
        name = draw(st.sampled_from(sorted(STEPS)))
        arity, _, needs_dim = STEPS[name]
        operands = tuple(draw(st.integers(0, len(value_shapes) - 1)) for _ in range(arity))
        shape = np.broadcast_shapes(*(value_shapes[i] for i in operands))
        dim = draw(st.integers(-len(shape), len(shape) - 1)) if needs_dim else None
        if name in ("sum", "mean"):  # keepdim: the reduced dim stays, as 1
            shape = tuple(1 if i == dim % len(shape) else n for i, n in enumerate(shape))
        steps.append(Step(name, operands, dim))
        value_shapes.append(shape)
    elements = st.floats(-2, 2, allow_nan=False, allow_infinity=False)
    inputs = tuple(draw(hnp.arrays(dtype, s, elements=elements)) for s in shapes.input_shapes)
    return Program(tuple(shapes.input_shapes), tuple(steps), inputs)
