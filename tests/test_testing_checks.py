"""assert_grad_close, its oracles, and localisation of a wrong op."""

import numpy as np
import pytest
from functions import NotebookSoftmax, notebook_loss
from hypothesis import given, settings

import autodiff as ad
from autodiff.testing import assert_grad_close, localize, programs
from models import one_hot
from models.numpy_backprop import loss_and_grads, notebook_loss_and_grads


def problem(seed=0, rows=5):
    rng = np.random.default_rng(seed)
    x = ad.tensor(rng.integers(0, 17, (rows, 64)).astype(float))
    y = ad.tensor(one_hot(rng.integers(0, 10, rows)))
    w1 = ad.tensor(rng.standard_normal((64, 50)) * 0.1, requires_grad=True)
    w2 = ad.tensor(rng.standard_normal((50, 10)) * 0.1, requires_grad=True)
    return x, y, w1, w2


@settings(max_examples=50)
@given(programs())
def test_random_programs_have_correct_gradients(program):
    assert_grad_close(program, program.tensors())


def test_a_wrong_op_inside_the_notebook_network_is_named_with_its_line():
    x, y, w1, w2 = problem()
    with pytest.raises(AssertionError) as info:
        assert_grad_close(lambda w1, w2: notebook_loss(x, y, w1, w2, NotebookSoftmax.apply),
                          [w1, w2])
    report = str(info.value)
    assert "assert_grad_close: the gradient of input" in report and "worst at index" in report
    assert "the first op whose own gradient is wrong: NotebookSoftmax" in report
    assert "functions.py" in report and "softmax((x @ w1).relu() @ w2)" in report  # its line


def test_localize_returns_none_when_every_op_is_right():
    x, y, w1, w2 = problem()
    assert localize(lambda w1, w2: notebook_loss(x, y, w1, w2), [w1, w2]) is None


def test_reference_oracle_with_the_hand_derived_backprop():
    x, y, w1, w2 = problem()

    def reference(w1, w2, upstream):  # loss_and_grads is for a scalar loss: scale by u
        (u,) = upstream
        _, dw1, dw2 = loss_and_grads(x.data, y.data, w1, w2)
        return u * dw1, u * dw2

    assert_grad_close(lambda w1, w2: notebook_loss(x, y, w1, w2), [w1, w2], reference=reference)

    def notebook_reference(w1, w2, upstream):
        (u,) = upstream
        _, dw1, dw2 = notebook_loss_and_grads(x.data, y.data, w1, w2)
        return u * dw1, u * dw2

    with pytest.raises(AssertionError, match="disagrees with reference gradient"):
        assert_grad_close(lambda w1, w2: notebook_loss(x, y, w1, w2), [w1, w2],
                          reference=notebook_reference, locate_op=False)


@pytest.mark.parametrize("fn", [lambda a: a.exp() * a, lambda a: a.tanh().log_softmax(dim=-1),
                                lambda a: (a @ a.T).softmax(dim=0), lambda a: (a * a + 1).sqrt()])
def test_complex_step_oracle(fn):
    a = ad.tensor(np.random.default_rng(0).standard_normal((3, 3)), requires_grad=True)
    assert_grad_close(fn, [a], oracle="complex", atol=1e-10, rtol=1e-9)  # exact to rounding


def test_float32_has_its_own_default_tolerance():
    a = ad.tensor(np.linspace(0.5, 2, 6, dtype=np.float32), requires_grad=True)
    assert_grad_close(lambda a: (a.log() * a.exp()).softmax(dim=0), [a])
    with pytest.raises(AssertionError):  # float32 rounding is far above float64's tolerance
        assert_grad_close(lambda a: (a.log() * a.exp()).softmax(dim=0), [a], atol=1e-12,
                          rtol=1e-12, locate_op=False)
