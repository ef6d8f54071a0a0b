"""gradcheck and gradgradcheck catch wrong gradients and say where."""

import numpy as np
import pytest
from functions import NotebookSoftmax, cube

import autodiff as ad


class Doubled(ad.Function):
    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return np.sin(x.data)

    @staticmethod
    def backward(ctx, grad_output):
        (x,) = ctx.saved_tensors
        return grad_output * 2 * np.cos(x.data)  # twice the true derivative; not differentiable


def test_a_wrong_gradient_raises_with_input_index_and_values():
    x = ad.tensor(np.random.default_rng(0).standard_normal((2, 3)), requires_grad=True)
    with pytest.raises(ad.GradcheckError) as info:
        ad.gradcheck(lambda x: NotebookSoftmax.apply(x), [x])
    message = str(info.value)
    assert "input 0 (shape (2, 3))" in message and "worst at index (" in message
    assert "analytical" in message and "numerical" in message and "tolerance" in message


def test_raise_exception_false_returns_false():
    x = ad.tensor(np.linspace(-1, 1, 4), requires_grad=True)
    assert ad.gradcheck(Doubled.apply, [x], raise_exception=False) is False
    assert ad.gradcheck(Doubled.apply, [x], raise_exception=False, fast_mode=True) is False


def test_fast_mode_failure_still_names_the_element():
    x = ad.tensor(np.linspace(-1, 1, 4), requires_grad=True)
    with pytest.raises(ad.GradcheckError, match="worst at index"):
        ad.gradcheck(Doubled.apply, [x], fast_mode=True)


def test_the_softmax_bug_hides_from_an_all_ones_seed():
    """Why gradcheck uses a random upstream gradient: softmax's VJP of ones is exactly zero."""
    x = ad.tensor(np.random.default_rng(1).standard_normal((2, 3)), requires_grad=True)
    x.softmax(1).sum().backward()
    np.testing.assert_allclose(x.grad.data, 0, atol=1e-15)


def test_gradgradcheck_catches_a_wrong_second_derivative():
    LinearBackward = cube(differentiable=False)  # right first derivative, wrong second
    x = ad.tensor([0.5, 1.5], requires_grad=True)
    assert ad.gradcheck(LinearBackward.apply, [x])
    assert not ad.gradgradcheck(LinearBackward.apply, [x], raise_exception=False)


def test_float32_inputs_are_checked_in_float64():
    x = ad.tensor(np.linspace(0.1, 1, 5, dtype=np.float32), requires_grad=True)
    assert ad.gradcheck(lambda x: (x.log() * x).sum(), [x])
