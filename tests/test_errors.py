"""Every error case of the contract: the message names the op, the shapes and what was expected."""

import numpy as np
import pytest

import autodiff as ad


def t(*shape, grad=True):
    return ad.tensor(np.ones(shape), requires_grad=grad)


@pytest.mark.parametrize("call, pattern", [
    (lambda: t(100, 64) @ t(50, 10),
     r"matmul: cannot multiply \(100, 64\) by \(50, 10\).*\(64\).*\(50\)"),
    (lambda: t(3) @ t(4), r"matmul: cannot multiply \(3,\) by \(4,\)"),
    (lambda: t() @ t(3), r"matmul: both operands need at least 1 dimension"),
    (lambda: t(2, 3, 4) @ t(5, 4, 2), r"matmul: cannot broadcast the batch dimensions"),
    (lambda: t(3).mm(t(3, 2)), r"mm: expected two 2-D tensors, got \(3,\) and \(3, 2\)"),
    (lambda: t(2, 3) + t(4), r"add: cannot broadcast shapes \(2, 3\) and \(4,\)"),
    (lambda: t(2, 3) * t(2), r"mul: cannot broadcast shapes \(2, 3\) and \(2,\)"),
    (lambda: t(2, 3) < t(2), r"lt: cannot broadcast shapes \(2, 3\) and \(2,\)"),
    (lambda: t(2, 3).sum(dim=2), r"sum: dim 2 is out of range for a tensor of shape \(2, 3\)"),
    (lambda: t(2, 3).mean(dim=(0, -2)), r"mean: dim \(0, -2\) names the same dimension twice"),
    (lambda: t(2, 3).softmax(dim=-3), r"softmax: dim -3 is out of range"),
    (lambda: t(2, 3).reshape(4, 2), r"reshape: cannot reshape a tensor of shape \(2, 3\) "
                                    r"\(6 elements\) into \(4, 2\)"),
    (lambda: t(2, 3)[5], r"index: .*5.*\(tensor of shape \(2, 3\)\)"),
    (lambda: t(2, 3).broadcast_to((4, 3, 2)), r"broadcast_to: cannot broadcast shape \(2, 3\)"),
    (lambda: t(2, 3).permute(0, 0), r"permute: dim \(0, 0\) names the same dimension twice"),
    (lambda: t(2, 3).transpose(0, 2), r"transpose: dim 2 is out of range"),
    (lambda: t(0).max(), r"max: cannot reduce over a dim of size 0 \(shape \(0,\)"),
    (lambda: t(3).mT, r"mT: needs at least 2 dims, got shape \(3,\)"),
])
def test_shape_errors_name_the_op_and_the_shapes(call, pattern):
    with pytest.raises(ad.ShapeError, match=pattern) as info:
        call()
    error = info.value  # no NumPy traceback chained underneath
    assert error.__cause__ is None and (error.__context__ is None or error.__suppress_context__)


def test_requires_grad_on_integers_is_a_type_error():
    with pytest.raises(TypeError, match="only floating-point tensors can require gradients"):
        ad.tensor([1, 2, 3], requires_grad=True)


def test_backward_of_a_non_scalar_needs_a_gradient():
    with pytest.raises(RuntimeError, match=r"one element; this one has shape \(2, 3\)"):
        (t(2, 3) * 2).backward()


def test_backward_gradient_of_the_wrong_shape():
    with pytest.raises(ad.ShapeError, match=r"gradient of shape \(3,\) does not match .* \(2, 3\)"):
        (t(2, 3) * 2).backward(np.ones(3))


def test_backward_of_a_tensor_without_graph():
    with pytest.raises(RuntimeError, match="does not require grad"):
        t(2, grad=False).sum().backward()


def test_clamp_needs_a_bound():
    with pytest.raises(ValueError, match="clamp: give min, max or both"):
        t(2).clamp()


def test_dim_must_be_an_int():
    with pytest.raises(TypeError, match="sum: dim must be an int"):
        t(2).sum(dim=1.0)


def test_item_of_many_elements():
    with pytest.raises(ValueError, match=r"item: only a tensor of one element.*\(2,\)"):
        t(2).item()


def test_where_needs_a_boolean_condition():
    with pytest.raises(TypeError, match="where: the condition must be boolean"):
        ad.where(ad.tensor([1.0, 0.0]), t(2), t(2))


BROADCAST = "(aligned from the right, each dimension must be equal or 1)"


@pytest.mark.parametrize("call, error, message", [
    *[(lambda name=name: getattr(t(2, 3), f"__{name}__")(t(2)), ad.ShapeError,
       f"{name}: cannot broadcast shapes (2, 3) and (2,) {BROADCAST}")
      for name in ["lt", "le", "gt", "ge", "eq", "ne"]],
    (lambda: t(2, 3, grad=False) // t(4, grad=False), ad.ShapeError,
     f"floor_divide: cannot broadcast shapes (2, 3) and (4,) {BROADCAST}"),
    (lambda: t(2, 3, grad=False) % t(4, grad=False), ad.ShapeError,
     f"remainder: cannot broadcast shapes (2, 3) and (4,) {BROADCAST}"),
    (lambda: ad.cat([t(2, 3), t(2, 4)], dim=0), ad.ShapeError,
     "cat: cannot join shapes (2, 3), (2, 4) along dim 0: all other dims must match"),
    (lambda: ad.stack([t(2, 3), t(2, 3), t(3, 2)]), ad.ShapeError,
     "stack: cannot stack shapes (2, 3), (2, 3), (3, 2): they must all be the same"),
    (lambda: t(3) @ t(4), ad.ShapeError, "matmul: cannot multiply (3,) by (4,): the last "
     "dimension of the first (3) must equal the only dimension of the second (4)"),
    (lambda: t(5, 3) @ t(4, 2), ad.ShapeError, "matmul: cannot multiply (5, 3) by (4, 2): the "
     "last dimension of the first (3) must equal the second-to-last dimension of the second (4)"),
    (lambda: t(2, 3, 4) @ t(2, 5, 2), ad.ShapeError, "matmul: cannot multiply (2, 3, 4) by "
     "(2, 5, 2): the last dimension of the first (4) must equal the second-to-last dimension of "
     "the second (5)"),
    (lambda: t() @ t(3), ad.ShapeError,
     "matmul: both operands need at least 1 dimension, got () and (3,)"),
    (lambda: t(2, 3, 4) @ t(5, 4, 2), ad.ShapeError,
     "matmul: cannot broadcast the batch dimensions of (2, 3, 4) and (5, 4, 2)"),
    (lambda: ad.grad([t(1).sum(), t(1).sum()], [t(1)], grad_outputs=[None]), RuntimeError,
     "grad: got 2 output tensor(s) and 1 grad_outputs; give one gradient per output (None for "
     "an output of one element)"),
    (lambda: ad.grad(t(2).sum(), [t(2, grad=False)]), RuntimeError,
     "grad: input 0 (shape (2,)) does not require grad"),
    (lambda: (lambda x, z: ad.grad((x * 2).sum(), [x, z]))(t(2), t(3)), RuntimeError,
     "grad: input 1 (shape (3,)) was not used to compute the outputs; pass allow_unused=True to "
     "get None for it"),
    (lambda: ad.grad(t(2).sum(), []), TypeError,
     "grad: inputs must be a Tensor or a non-empty sequence of Tensors, got []"),
    (lambda: ad.grad("y", t(2)), TypeError,
     "grad: outputs must be a Tensor or a non-empty sequence of Tensors, got 'y'"),
    (lambda: t(2, grad=False).sum().backward(), RuntimeError,
     "backward: the tensor does not require grad and has no grad_fn (was it computed under "
     "no_grad, or from tensors without requires_grad?)"),
    (lambda: (t(2, 3) * 2).backward(), RuntimeError, "backward: a gradient can be implied only "
     "for a tensor of one element; this one has shape (2, 3): pass gradient="),
    (lambda: (t(2, 3) * 2).backward(np.ones(3)), ad.ShapeError,
     "backward: gradient of shape (3,) does not match the tensor's shape (2, 3)"),
    (lambda: ad.grad(t(2, 3) * 2, [t(2)], grad_outputs=[np.ones(3)]), ad.ShapeError,
     "grad: gradient of shape (3,) does not match the tensor's shape (2, 3)"),
])
def test_each_message_in_full(call, error, message):
    """The whole text: a user reads all of it, so a word lost or changed is a defect."""
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message
