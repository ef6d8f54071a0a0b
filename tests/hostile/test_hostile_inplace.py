"""In-place edits after an op used a tensor: backward refuses, naming the op, where its gradient
needs the old values; it computes, as PyTorch does, where the gradient does not read them."""

from __future__ import annotations

import numpy as np
import pytest
from functions import cube

import autodiff as ad


def leaf(values):
    return ad.tensor(np.array(values, dtype=float), requires_grad=True)


@pytest.mark.parametrize(("build", "which"), [
    (lambda a, b: (a * b).sum(), r"mul's input 1"),
    (lambda a, b: (a @ b), r"matmul's input 1"),
    (lambda a, b: (a / b).sum(), r"div's input 1"),
    (lambda a, b: (a ** b).sum(), r"pow's input 1"),
    (lambda a, b: b.log().sum() + a.sum(), r"log's input 0"),
    (lambda a, b: b.relu().sum() + a.sum(), r"relu's input 0"),
    (lambda a, b: b.abs().sum() + a.sum(), r"abs's input 0"),
    (lambda a, b: b.clamp(min=0.5).sum() + a.sum(), r"clamp's input 0"),
    (lambda a, b: b.max() + a.sum(), r"max's input 0"),
])
def test_a_saved_input_modified_in_place_is_refused(build, which):
    a, b = leaf([1.0, 2.0]), ad.tensor([3.0, 4.0], requires_grad=True)
    y = build(a, b)
    b.zero_()
    with pytest.raises(RuntimeError, match=which + r" \(shape \(2,\)\) was modified in place "
                                                   r"after it was used"):
        y.backward()


@pytest.mark.parametrize(("op", "which"), [
    (lambda x: x.exp(), "exp"), (lambda x: x.sqrt(), "sqrt"), (lambda x: x.sigmoid(), "sigmoid"),
    (lambda x: x.tanh(), "tanh"), (lambda x: x.softmax(0), "softmax"),
    (lambda x: x.log_softmax(0), "log_softmax"),
])
def test_an_output_modified_in_place_is_refused_where_the_rule_reads_it(op, which):
    x = leaf([1.0, 2.0])
    y = op(x)
    loss = (y + 1.0).sum()  # add reads neither operand: the error is the op's own
    y.zero_()
    with pytest.raises(RuntimeError, match=rf"{which}'s output .* was modified in place"):
        loss.backward()


def test_an_input_modified_after_use_by_add_is_fine_as_in_pytorch():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = (a + b).sum()
    b.zero_()
    y.backward()
    assert a.grad.tolist() == [1.0, 1.0] and b.grad.tolist() == [1.0, 1.0]


def test_modified_before_use_is_fine():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    b.zero_()
    (a * b).sum().backward()
    assert a.grad.tolist() == [0.0, 0.0]


def test_every_in_place_method_bumps_the_version():
    t = leaf([1.0])
    before = t._version
    t.zero_()
    assert t._version > before


def test_writing_to_data_is_not_tracked_as_in_pytorch():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = (a * b).sum()
    b.data[...] = 0  # documented: .data is the raw array, edits to it are not seen
    y.backward()
    assert a.grad.tolist() == [0.0, 0.0]


def test_a_function_whose_saved_tensor_was_modified_is_refused():
    x = leaf([1.0, 2.0])
    y = cube().apply(x).sum()
    x.zero_()
    with pytest.raises(RuntimeError, match=r"Cube's saved tensor 0 .* modified in place"):
        y.backward()


def test_save_for_backward_takes_tensors_only():
    class Bad(ad.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x.data)
            return x.data

    with pytest.raises(TypeError, match=r"save_for_backward: argument 0 must be a Tensor"):
        Bad.apply(leaf([1.0]))
