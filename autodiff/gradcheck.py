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

import numpy as np

from autodiff.backward import grad
from autodiff.tensor import Tensor


class GradcheckError(RuntimeError):
    """The engine's gradient disagrees with finite differences."""


def gradcheck(fn: Callable[..., Tensor | Sequence[Tensor]], inputs: Tensor | Sequence,
              *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
              raise_exception: bool = True, fast_mode: bool = False, seed: int = 0) -> bool:
    """Check d fn / d input for every input Tensor that requires grad (computed in float64).

    Returns True when all agree; otherwise raises GradcheckError naming the input, the worst
    element, both values and the error, or returns False with ``raise_exception=False``.
    """
    inputs = _as_float64(inputs)
    checked = [i for i, t in enumerate(inputs) if isinstance(t, Tensor) and t.requires_grad]
    if not checked:
        raise ValueError("gradcheck: no input Tensor has requires_grad=True")
    rng = np.random.default_rng(seed)
    outputs = _outputs(fn(*inputs))
    upstream = [rng.standard_normal(o.shape) for o in outputs]

    def projected(*xs) -> float:  # <u, f(x)>, the scalar whose gradient is Jᵀu
        return sum(float(np.vdot(u, o.data)) for u, o in zip(upstream, _outputs(fn(*xs))))

    recorded = [(o, u) for o, u in zip(outputs, upstream) if o.requires_grad]
    grads = grad([o for o, _ in recorded], [inputs[i] for i in checked],
                 grad_outputs=[u for _, u in recorded], allow_unused=True) if recorded else \
        [None] * len(checked)
    analytical = [np.zeros(inputs[i].shape) if g is None else g.data
                  for i, g in zip(checked, grads)]

    if fast_mode and _projection_agrees(projected, inputs, checked, analytical, rng, eps, atol,
                                        rtol):
        return True
    for i, a in zip(checked, analytical):
        message = _compare(i, a, _numerical_gradient(projected, inputs, i, eps), atol, rtol)
        if message:
            if raise_exception:
                raise GradcheckError(message)
            return False
    return True


def gradgradcheck(fn: Callable[..., Tensor | Sequence[Tensor]], inputs: Tensor | Sequence,
                  *, eps: float = 1e-6, atol: float = 1e-5, rtol: float = 1e-3,
                  raise_exception: bool = True, fast_mode: bool = False, seed: int = 0) -> bool:
    """Check second derivatives: gradcheck of x ↦ (d fn/dx)ᵀu, built with create_graph=True."""
    inputs = _as_float64(inputs)
    checked = [t for t in inputs if isinstance(t, Tensor) and t.requires_grad]
    rng = np.random.default_rng(seed + 1)
    upstream = [rng.standard_normal(o.shape) for o in _outputs(fn(*inputs))]

    def first_derivative(*xs):
        diff = [x for x in xs if isinstance(x, Tensor) and x.requires_grad]
        grads = grad(_outputs(fn(*xs)), diff, grad_outputs=upstream, create_graph=True,
                     allow_unused=True)
        return tuple(g for g in grads if g is not None)

    return gradcheck(first_derivative, inputs, eps=eps, atol=atol, rtol=rtol,
                     raise_exception=raise_exception, fast_mode=fast_mode, seed=seed) \
        if checked else True


def _as_float64(inputs) -> list:
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    return [Tensor(t.data.astype(np.float64), requires_grad=t.requires_grad, name=t.name)
            if isinstance(t, Tensor) and t.dtype.kind == "f" else t for t in inputs]


def _outputs(result) -> list[Tensor]:
    return [result] if isinstance(result, Tensor) else list(result)


def _numerical_gradient(projected: Callable, inputs: list, i: int, eps: float) -> np.ndarray:
    x = inputs[i].data
    gradient = np.zeros(x.shape)
    for index in np.ndindex(x.shape):
        original = x[index]
        x[index] = original + eps
        plus = projected(*inputs)
        x[index] = original - eps
        minus = projected(*inputs)
        x[index] = original
        gradient[index] = (plus - minus) / (2 * eps)
    return gradient


def _projection_agrees(projected, inputs, checked, analytical, rng, eps, atol, rtol) -> bool:
    directions = {i: rng.standard_normal(inputs[i].shape) for i in checked}
    originals = {i: inputs[i].data.copy() for i in checked}
    values = []
    for sign in (1, -1):
        for i in checked:
            inputs[i].data[...] = originals[i] + sign * eps * directions[i]
        values.append(projected(*inputs))
    for i in checked:
        inputs[i].data[...] = originals[i]
    numerical = (values[0] - values[1]) / (2 * eps)
    analytic = sum(float(np.vdot(directions[i], a)) for i, a in zip(checked, analytical))
    return abs(analytic - numerical) <= atol + rtol * abs(numerical)


def _compare(i: int, analytical: np.ndarray, numerical: np.ndarray, atol: float,
             rtol: float) -> str | None:
    """None when close; otherwise a report of the element that is furthest out of tolerance."""
    error = np.abs(analytical - numerical)
    tolerance = atol + rtol * np.abs(numerical)
    excess = error - tolerance
    if analytical.size == 0 or not (excess > 0).any() and np.isfinite(analytical).all():
        return None
    worst = np.unravel_index(np.nanargmax(np.where(np.isnan(excess), np.inf, excess)),
                             analytical.shape)
    return (f"gradcheck: the gradient of input {i} (shape {analytical.shape}) disagrees with "
            f"finite differences; worst at index {tuple(int(k) for k in worst)}: "
            f"analytical {analytical[worst]:.6g}, numerical {numerical[worst]:.6g}, "
            f"error {error[worst]:.3g} > tolerance {tolerance[worst]:.3g} "
            f"(atol + rtol·|numerical|)")
