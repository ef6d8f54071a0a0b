"""`assert_grad_close`: a gradient check as an assertion, with oracles, per-dtype tolerances and,
on failure, the first recorded op whose own gradient is wrong."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autodiff.forward import forward_mode, tangent_of
from autodiff.gradcheck import (
    Mismatch,
    analytical_vjp,
    as_float64,
    compare,
    grad_input_indices,
    is_projected,
    numerical_vjp,
    outputs_of,
    projected,
    random_upstream,
)
from autodiff.graph import set_modes, tensors_in_order
from autodiff.ops import OPS
from autodiff.tensor import Tensor
from autodiff.testing.localize import localize

# defaults per dtype of the gradient being checked (the oracle always runs in float64)
TOLERANCES = {np.dtype(np.float64): (1e-5, 1e-3), np.dtype(np.float32): (1e-3, 1e-2)}
ANALYTIC = sorted(name for name, op in OPS.items() if op.analytic)
Oracle = dict[int, np.ndarray]  # the expected Jᵀu per input that requires grad


def assert_grad_close(fn: Callable[..., Tensor | Sequence[Tensor]],
                      inputs: Tensor | Sequence[Any], *, oracle: str = "central",
                      reference: Callable[..., Sequence[object]] | None = None,
                      atol: float | None = None, rtol: float | None = None, eps: float = 1e-6,
                      seed: int = 0, locate_op: bool = True) -> None:
    """Assert that the engine's gradient of `fn` at `inputs` matches an oracle.

    The engine's vector-Jacobian product Jᵀu (u random, one per output; 1 for a single scalar
    output) is computed in the inputs' own dtype; the oracle in float64:

    - ``oracle="central"``: central finite differences, two evaluations per element;
    - ``oracle="complex"``: complex step, Im f(x + ih)/h, exact to rounding, for functions made
      of the ops the op table declares analytic (`ANALYTIC`); others are refused;
    - ``oracle="forward"``: forward mode, one JVP per input element (its JVP rules, not the VJP
      rules under test), exact to rounding: ``(Jᵀu)_k = <u, J e_k>``;
    - ``reference=f``: a user's gradient function, ``f(*arrays, upstream) -> one gradient per
      input that requires grad`` (upstream: the list of u, one per output).

    Tolerances default by dtype (float64: atol 1e-5, rtol 1e-3; float32: 1e-3, 1e-2). On failure
    the AssertionError names the input, the worst element, both values and the error, and then
    (with `locate_op`) the first recorded op whose own VJP disagrees with finite differences:
    its name, the line of code that created it, its input shapes and its worst element.
    """
    values: list[Any] = [inputs] if isinstance(inputs, Tensor) else list(inputs)
    checked = grad_input_indices(values)
    if not checked:
        raise ValueError("assert_grad_close: no input Tensor has requires_grad=True")
    upstream = random_upstream(fn, values, np.random.default_rng(seed))
    analytical = analytical_vjp(fn, values, upstream)
    name, expected = _oracle(fn, values, upstream, oracle, reference, eps)
    for i in checked:
        default_atol, default_rtol = TOLERANCES.get(values[i].dtype, TOLERANCES[np.dtype("f8")])
        mismatch = compare(i, analytical[i].astype(np.float64), expected[i],
                           default_atol if atol is None else atol,
                           default_rtol if rtol is None else rtol, name, is_projected(upstream))
        if mismatch:
            raise AssertionError(_report(mismatch, fn, values, locate_op))


def _oracle(fn: Callable[..., Any], inputs: list[Any], upstream: list[np.ndarray], oracle: str,
            reference: Callable[..., Sequence[object]] | None, eps: float) -> tuple[str, Oracle]:
    """The oracle's name and its Jᵀu for each input that requires grad."""
    if reference is not None:
        arrays = [t.data if isinstance(t, Tensor) else t for t in inputs]
        gradients = [np.asarray(g) for g in reference(*arrays, upstream)]
        return "reference gradient", dict(zip(grad_input_indices(inputs), gradients))
    if oracle == "complex":
        return "complex step", complex_step_vjp(fn, inputs, upstream)
    if oracle == "central":
        return "finite differences", numerical_vjp(fn, as_float64(inputs), upstream, eps)
    if oracle == "forward":
        return "forward mode", forward_mode_vjp(fn, as_float64(inputs), upstream)
    raise ValueError(f"assert_grad_close: oracle must be 'central', 'complex' or 'forward', "
                     f"got {oracle!r}")


def forward_mode_vjp(fn: Callable[..., Any], inputs: list[Any],
                     upstream: list[np.ndarray]) -> Oracle:
    """Jᵀu by forward mode: for each input element k, the tangent e_k gives J e_k in one pass,
    and (Jᵀu)_k = <u, J e_k>. An oracle independent of the VJP rules."""
    result = {}
    with set_modes(enabled=False):
        for i in grad_input_indices(inputs):
            gradient = np.zeros(inputs[i].shape)
            for index in np.ndindex(inputs[i].shape):
                direction = np.zeros(inputs[i].shape)
                direction[index] = 1
                with forward_mode({inputs[i]: direction}) as table:
                    outputs = outputs_of(fn(*inputs))
                    gradient[index] = sum(float(np.vdot(u, tangent_of(table, o)))
                                          for u, o in zip(upstream, outputs))
            result[i] = gradient
    return result


def complex_step_vjp(fn: Callable[..., Any], inputs: list[Any], upstream: list[np.ndarray],
                     h: float = 1e-20) -> Oracle:
    """Jᵀu by the complex step: Im <u, f(x + ih·e_k)> / h for each element k (no cancellation).
    Only for functions made of analytic ops: any other recorded op is refused, by name."""
    _require_analytic(fn, inputs)
    result, value = {}, projected(fn, upstream)
    with set_modes(enabled=False):
        for i in grad_input_indices(inputs):
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


def _require_analytic(fn: Callable[..., Any], inputs: list[Any]) -> None:
    used = {t.grad_fn.name for t in tensors_in_order(outputs_of(fn(*inputs)))
            if t.grad_fn is not None}
    if not_analytic := sorted(used - set(ANALYTIC)):
        raise ValueError(f"assert_grad_close: the complex step needs analytic ops, and "
                         f"{', '.join(not_analytic)} {'is' if len(not_analytic) == 1 else 'are'}"
                         " not (see Op.analytic); use oracle='central'")


def _report(mismatch: Mismatch, fn: Callable[..., Any], inputs: list[Any], locate_op: bool) -> str:
    lines = [mismatch.message("assert_grad_close")]
    if locate_op:
        finding = localize(fn, inputs)
        lines.append(finding.message() if finding else
                     "every recorded op's own gradient agrees with finite differences: the "
                     "function itself is not differentiable at this input, or the oracle is off")
    return "\n".join(lines)
