"""User-defined ops through autodiff.Function, PyTorch style."""

import numpy as np
import pytest
from functions import cube

import autodiff as ad

Cube = cube()  # its backward is written with Tensor ops: differentiable again


class ScaledAdd(ad.Function):  # a non-tensor argument gets a None gradient
    @staticmethod
    def forward(ctx, a, b, scale):
        ctx.scale = scale
        return a.data + scale * b.data

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, grad_output * ctx.scale, None


def test_custom_op_gradient_and_second_derivative():
    x = ad.tensor(np.array([0.5, -1.5, 2.0]), requires_grad=True)
    y = Cube.apply(x)
    np.testing.assert_allclose(y.data, x.data ** 3)
    assert repr(y.grad_fn) == "<CubeBackward>"
    assert ad.gradcheck(Cube.apply, [x])
    assert ad.gradgradcheck(Cube.apply, [x])


def test_custom_op_with_broadcasting_and_a_constant_argument():
    a = ad.tensor(np.ones((2, 3)), requires_grad=True)
    b = ad.tensor(np.ones(3), requires_grad=True)
    assert ad.gradcheck(lambda a, b: ScaledAdd.apply(a, b, 2.5), [a, b])


def test_custom_op_inside_a_graph():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    (Cube.apply(x * 2).exp() * 0 + Cube.apply(x)).sum().backward()
    np.testing.assert_allclose(x.grad.data, 3 * x.data ** 2)


class FirstAndLast(ad.Function):  # hands one gradient array to its first and last inputs
    @staticmethod
    def forward(ctx, a, b, c):
        return a.data + 2 * b.data + c.data

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output, grad_output * 2, grad_output


def test_one_gradient_handed_to_two_leaves_becomes_two_grads():
    """backward hands a and c one array: each keeps its own .grad (the engine copies what a
    Function returns), so the second backward adds into each once."""
    a, b, c = (ad.tensor([1.0, 2.0], requires_grad=True) for _ in range(3))
    for _ in range(2):
        FirstAndLast.apply(a, b, c).backward(np.array([1.0, -3.0]))
    assert a.grad is not c.grad and a.grad.data is not c.grad.data
    assert a.grad.tolist() == c.grad.tolist() == [2.0, -6.0] and b.grad.tolist() == [4.0, -12.0]


class WrongCount(ad.Function):
    @staticmethod
    def forward(ctx, a, b):
        return a.data * b.data

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


def test_backward_returning_too_few_gradients_fails_clearly():
    a = ad.tensor([1.0], requires_grad=True)
    b = ad.tensor([1.0], requires_grad=True)
    with pytest.raises(TypeError, match="WrongCount.backward returned 1 gradient"):
        WrongCount.apply(a, b).backward(np.ones(1))


class WrongShape(ad.Function):
    @staticmethod
    def forward(ctx, a):
        return a.data * 2

    @staticmethod
    def backward(ctx, grad_output):
        return np.ones(5)


def test_backward_returning_the_wrong_shape_fails_clearly():
    a = ad.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(ad.ShapeError, match=r"WrongShape.backward: gradient of shape \(5,\)"):
        WrongShape.apply(a).backward(np.ones(2))


def test_no_graph_when_no_input_requires_grad():
    assert Cube.apply(ad.tensor([1.0])).grad_fn is None
