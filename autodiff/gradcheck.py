"""Gradients checked against central finite differences, in float64.

The function's outputs are projected on a random upstream gradient ``u`` (never all ones: the
softmax VJP of an all-ones gradient is exactly zero, which would hide any softmax bug), so the
engine's VJP ``Jᵀu`` is compared with the finite differences of the scalar ``<u, f(x)>``:

- full mode: each input element is nudged by ±eps (two evaluations per element), and a mismatch
  names the worst element;
- fast mode: all inputs are nudged at once along a random direction ``v`` (two evaluations in all)
  and ``<v, Jᵀu>`` is compared with the directional difference, as HIPS autograd's check_grads
  does. On a mismatch the full mode runs to find the element to report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autodiff.backward import grad
from autodiff.tensor import Tensor


@dataclass(frozen=True)
class Mismatch:
    """The element of one input's gradient that is furthest out of tolerance."""

    input: int
    shape: tuple[int, ...]
    index: tuple[int, ...]
    analytical: float
    expected: float
    error: float
    tolerance: float
    oracle: str = "finite differences"
    projected: bool = False  # the values are Jᵀu for a random u, not the gradient itself

    @property
    def label(self) -> str:
        return "reference" if self.oracle.startswith("reference") else "numerical"

    def message(self, prefix: str = "gradcheck") -> str:
        return (f"{prefix}: the gradient of input {self.input} (shape {self.shape}) disagrees "
                f"with {self.oracle}; worst at index {self.index}: analytical "
                f"{self.analytical:.6g}, {self.label} {self.expected:.6g}, error "
                f"{self.error:.3g} > tolerance {self.tolerance:.3g} (atol + rtol·|expected|)"
                + ("; the values are Jᵀu, the gradient of <u, output> for a random upstream u "
                   "of the output's shape" if self.projected else ""))


Function = Callable[..., Any]  # tensors in, a Tensor or a sequence of Tensors out


class GradcheckError(RuntimeError):
    """The engine's gradient disagrees with finite differences (details in ``.mismatch``)."""

    def __init__(self, mismatch: Mismatch) -> None:
        super().__init__(mismatch.message())
        self.mismatch = mismatch


def gradcheck(fn: Callable[..., Tensor | Sequence[Tensor]], inputs: Tensor | Sequence[Any],
              *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, fast_mode: bool = False, seed: int = 0) -> bool:
    """Check d fn / d input for every input Tensor that requires grad (computed in float64).

    Returns True when all agree; otherwise raises GradcheckError naming the input, the worst
    element, both values and the error, or returns False with ``raise_exception=False``.
    """
    check_steps("gradcheck", eps=eps, atol=atol, rtol=rtol)
    inputs = as_float64(inputs)
    checked = grad_input_indices(inputs)
    if not checked:
        raise ValueError("gradcheck: no input Tensor has requires_grad=True")
    rng = np.random.default_rng(seed)
    upstream = random_upstream(fn, inputs, rng)
    analytical = analytical_vjp(fn, inputs, upstream)
    if fast_mode and _projection_agrees(fn, inputs, upstream, analytical, rng, eps, atol, rtol):
        return True
    numerical = numerical_vjp(fn, inputs, upstream, eps)
    for i in checked:
        mismatch = compare(i, analytical[i], numerical[i], atol, rtol,
                           projected=is_projected(upstream))
        if mismatch:
            if raise_exception:
                raise GradcheckError(mismatch)
            return False
    return True


def gradgradcheck(fn: Callable[..., Tensor | Sequence[Tensor]], inputs: Tensor | Sequence[Any],
                  *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                  raise_exception: bool = True, fast_mode: bool = False, seed: int = 0) -> bool:
    """Check second derivatives: gradcheck of x ↦ (d fn/dx)ᵀu, built with create_graph=True."""
    inputs = as_float64(inputs)
    if not grad_input_indices(inputs):
        return True
    upstream = random_upstream(fn, inputs, np.random.default_rng(seed + 1))

    def first_derivative(*xs: Any) -> tuple[Tensor, ...]:
        diff = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
        grads = grad(outputs_of(fn(*xs)), diff, grad_outputs=upstream, create_graph=True,
                     allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(first_derivative, inputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, fast_mode=fast_mode, seed=seed)


def check_steps(caller: str, **values: float) -> None:
    """eps, atol and rtol must be finite; eps > 0, the tolerances ≥ 0."""
    for name, value in values.items():
        if not np.isfinite(value) or value < 0 or (name == "eps" and value == 0):
            raise ValueError(f"{caller}: {name} must be a finite number "
                             f"{'> 0' if name == 'eps' else '≥ 0'}, got {value}")


def as_float64(inputs: Any) -> list[Any]:
    """Float64 copies of the floating inputs (other inputs as they are)."""
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    return [Tensor(t.data.astype(np.float64), requires_grad=t.requires_grad, name=t.name)
            if isinstance(t, Tensor) and t.dtype.kind == "f" else t for t in inputs]


def grad_input_indices(inputs: list[Any]) -> list[int]:
    """The positions of the inputs that are Tensors requiring grad."""
    return [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]


def outputs_of(result: Any) -> list[Tensor]:
    """fn's result as a list of Tensors; anything else is a TypeError."""
    outputs = [result] if isinstance(result, Tensor) else \
        list(result) if isinstance(result, (list, tuple)) else []
    if not outputs or not all(isinstance(o, Tensor) for o in outputs):
        raise TypeError(f"gradcheck: the function must return a Tensor or a sequence of Tensors, "
                        f"got {type(result).__name__}")
    return outputs


def random_upstream(fn: Function, inputs: list[Any], rng: np.random.Generator) -> list[np.ndarray]:
    """A random upstream gradient u per output of fn(*inputs) (never all ones: see above);
    for a single output of one element, u = 1, so the values checked are the gradient itself."""
    outputs = outputs_of(fn(*inputs))
    if len(outputs) == 1 and outputs[0].size == 1:
        return [np.ones(outputs[0].shape)]
    return [rng.standard_normal(o.shape) for o in outputs]


def is_projected(upstream: list[np.ndarray]) -> bool:
    """Whether the compared values are Jᵀu for a random u (not a scalar's gradient itself)."""
    return not (len(upstream) == 1 and upstream[0].size == 1)


def analytical_vjp(fn: Function, inputs: list[Any],
                   upstream: list[np.ndarray]) -> dict[int, np.ndarray]:
    """The engine's Jᵀu for each input that requires grad (zeros where the output ignores it)."""
    checked = grad_input_indices(inputs)
    recorded = [(o, u) for o, u in zip(outputs_of(fn(*inputs)), upstream) if o.requires_grad]
    grads = grad([o for o, _ in recorded], [inputs[i] for i in checked],
                 grad_outputs=[u.astype(o.dtype) for o, u in recorded],
                 allow_unused=True) if recorded else [None] * len(checked)
    return {i: np.zeros(inputs[i].shape) if g is None else g.data
            for i, g in zip(checked, grads)}


def projected(fn: Function, upstream: list[np.ndarray]) -> Callable[..., complex]:
    """x ↦ <u, f(x)>: the scalar whose gradient is Jᵀu (complex for complex x: complex step)."""
    def value(*xs: Any) -> complex:
        return sum(np.vdot(u, o.data) for u, o in zip(upstream, outputs_of(fn(*xs))))
    return value


def numerical_vjp(fn: Function, inputs: list[Any], upstream: list[np.ndarray],
                  eps: float) -> dict[int, np.ndarray]:
    """Jᵀu by central differences, element by element (two evaluations per element)."""
    value = projected(fn, upstream)
    result = {}
    for i in grad_input_indices(inputs):
        x = inputs[i].data
        gradient = np.zeros(x.shape)
        for index in np.ndindex(x.shape):
            original = x[index]
            x[index] = original + eps
            plus = value(*inputs)
            x[index] = original - eps
            minus = value(*inputs)
            x[index] = original
            gradient[index] = (plus - minus) / (2 * eps)
        result[i] = gradient
    return result


def _projection_agrees(fn: Function, inputs: list[Any], upstream: list[np.ndarray],
                       analytical: dict[int, np.ndarray], rng: np.random.Generator, eps: float,
                       atol: float, rtol: float) -> bool:
    value = projected(fn, upstream)
    directions = {i: rng.standard_normal(inputs[i].shape) for i in analytical}
    originals = {i: inputs[i].data.copy() for i in analytical}
    values = []
    for sign in (1, -1):
        for i in analytical:
            inputs[i].data[...] = originals[i] + sign * eps * directions[i]
        values.append(value(*inputs))
    for i in analytical:
        inputs[i].data[...] = originals[i]
    numerical = (values[0] - values[1]) / (2 * eps)
    analytic = sum(float(np.vdot(directions[i], a)) for i, a in analytical.items())
    return abs(analytic - numerical) <= atol + rtol * abs(numerical)


def compare(i: int, analytical: np.ndarray, expected: np.ndarray, atol: float, rtol: float,
            oracle: str = "finite differences", projected: bool = False) -> Mismatch | None:
    """None when close everywhere; otherwise the element furthest out of tolerance."""
    if analytical.size == 0:
        return None
    error = np.abs(analytical - expected)
    tolerance = atol + rtol * np.abs(expected)
    excess = np.where(np.isnan(error), np.inf, error - tolerance)
    if not (excess > 0).any():
        return None
    worst = np.unravel_index(np.argmax(excess), analytical.shape)
    return Mismatch(i, analytical.shape, tuple(int(k) for k in worst), float(analytical[worst]),
                    float(expected[worst]), float(error[worst]), float(tolerance[worst]), oracle,
                    projected)
