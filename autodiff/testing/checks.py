"""`assert_grad_close`: a gradient check as an assertion, with oracles, per-dtype tolerances and,
on failure, the first recorded op whose own gradient is wrong."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from autodiff.gradcheck import (
    Mismatch,
    analytical_vjp,
    as_float64,
    compare,
    differentiable,
    is_projected,
    numerical_vjp,
    projected,
    random_upstream,
)
from autodiff.graph import switched
from autodiff.tensor import Tensor
from autodiff.testing.localize import localize

# defaults per dtype of the gradient being checked (the oracle always runs in float64)
TOLERANCES = {np.dtype(np.float64): (1e-5, 1e-3), np.dtype(np.float32): (1e-3, 1e-2)}


def assert_grad_close(fn: Callable[..., Tensor | Sequence[Tensor]], inputs: Sequence, *,
                      oracle: str = "central", reference: Callable | None = None,
                      atol: float | None = None, rtol: float | None = None, eps: float = 1e-6,
                      seed: int = 0, localise: bool = True) -> None:
    """Assert that the engine's gradient of `fn` at `inputs` matches an oracle.

    The engine's vector-Jacobian product Jᵀu (u random, one per output) is computed in the inputs'
    own dtype; the oracle in float64:

    - ``oracle="central"``: central finite differences, two evaluations per element;
    - ``oracle="complex"``: complex step, Im f(x + ih)/h, exact to rounding, for functions made
      of ops analytic in x (arithmetic, matmul, exp, log, sqrt, tanh, softmax, log_softmax, sum,
      shape ops; not sigmoid, abs, relu, clamp, max);
    - ``reference=f``: a user's gradient function, ``f(*arrays, upstream) -> one gradient per
      input that requires grad`` (upstream: the list of u, one per output).

    Tolerances default by dtype (float64: atol 1e-5, rtol 1e-3; float32: 1e-3, 1e-2). On failure
    the AssertionError names the input, the worst element, both values and the error, and then
    the first recorded op whose own VJP disagrees with finite differences: its name, the line of
    code that created it, its input shapes and its worst element.
    """
    inputs = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    checked = differentiable(inputs)
    if not checked:
        raise ValueError("assert_grad_close: no input Tensor has requires_grad=True")
    upstream = random_upstream(fn, inputs, np.random.default_rng(seed))
    analytical = analytical_vjp(fn, inputs, upstream)
    if reference is not None:
        name = "reference gradient"
        arrays = [t.data if isinstance(t, Tensor) else t for t in inputs]
        expected = dict(zip(checked, [np.asarray(g) for g in reference(*arrays, upstream)]))
    elif oracle == "complex":
        name, expected = "complex step", complex_step_vjp(fn, inputs, upstream)
    elif oracle == "central":
        name, expected = "finite differences", numerical_vjp(fn, as_float64(inputs), upstream,
                                                             eps)
    else:
        raise ValueError(f"assert_grad_close: oracle must be 'central' or 'complex', "
                         f"got {oracle!r}")
    for i in checked:
        default_atol, default_rtol = TOLERANCES.get(inputs[i].dtype, TOLERANCES[np.dtype("f8")])
        mismatch = compare(i, analytical[i].astype(np.float64), expected[i],
                           default_atol if atol is None else atol,
                           default_rtol if rtol is None else rtol, name, is_projected(upstream))
        if mismatch:
            raise AssertionError(_report(mismatch, fn, inputs, localise))


def complex_step_vjp(fn: Callable, inputs: list, upstream: list[np.ndarray],
                     h: float = 1e-20) -> dict[int, np.ndarray]:
    """Jᵀu by the complex step: Im <u, f(x + ih·e_k)> / h for each element k (no cancellation)."""
    result, value = {}, projected(fn, upstream)
    with switched(enabled=False):
        for i in differentiable(inputs):
            shifted = list(inputs)
            base = inputs[i].data.astype(np.complex128)
            gradient = np.zeros(base.shape)
            for index in np.ndindex(base.shape):
                x = base.copy()
                x[index] += 1j * h
                shifted[i] = Tensor._wrap(x)  # complex: past the constructor's check
                gradient[index] = np.imag(value(*shifted)) / h
            result[i] = gradient
    return result


def _report(mismatch: Mismatch, fn: Callable, inputs: list, localise: bool) -> str:
    lines = [mismatch.message("assert_grad_close")]
    if localise:
        finding = localize(fn, inputs)
        lines.append(finding.message() if finding else
                     "every recorded op's own gradient agrees with finite differences: the "
                     "function itself is not differentiable at this input, or the oracle is off")
    return "\n".join(lines)
