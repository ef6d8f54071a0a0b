"""The subgradient each op declares at its kinks, asserted exactly (matching PyTorch)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autodiff as ad
from autodiff.ops import OPS
from autodiff.testing import floats


def _grad_of(fn, values):
    x = ad.tensor(np.asarray(values, dtype=float), requires_grad=True)
    fn(x).backward(np.ones(fn(x.detach()).shape))
    return x.grad.data


def test_relu_passes_no_gradient_at_zero():
    np.testing.assert_array_equal(_grad_of(ad.relu, [-1.0, 0.0, 2.0]), [0.0, 0.0, 1.0])


def test_abs_has_gradient_zero_at_zero():
    np.testing.assert_array_equal(_grad_of(lambda x: x.abs(), [-2.0, 0.0, 3.0]), [-1.0, 0.0, 1.0])


@given(low=floats(-3, 0), width=floats(0.1, 3))
def test_clamp_passes_the_gradient_at_both_bounds(low, width):
    high = low + width
    grads = _grad_of(lambda x: x.clamp(min=low, max=high), [low - 1, low, high, high + 1])
    np.testing.assert_array_equal(grads, [0.0, 1.0, 1.0, 0.0])


@given(ties=st.integers(2, 5), others=st.integers(0, 4), upstream=floats(-3, 3))
def test_max_shares_the_gradient_equally_between_ties(ties, others, upstream):
    values = [5.0] * ties + [1.0] * others
    x = ad.tensor(values, requires_grad=True)
    x.max().backward(np.asarray(upstream))
    np.testing.assert_allclose(x.grad.data, [upstream / ties] * ties + [0.0] * others)


def test_max_over_a_dim_shares_ties_per_row():
    x = ad.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    x.max(dim=1).backward(np.array([1.0, 1.0]))
    np.testing.assert_array_equal(x.grad.data, [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])


@pytest.mark.parametrize("name", ["relu", "abs", "clamp", "max"])
def test_every_kink_is_declared(name):
    op = OPS[name]
    assert op.kinks, f"{name} must say in words what it returns at its kink"
    assert op.kink is not None or op.ties, f"{name} must declare its kink for the tests"


def test_smooth_ops_declare_no_kink():
    assert {name for name, op in OPS.items() if op.kink or op.ties} == {"relu", "abs", "clamp",
                                                                         "max"}


def test_softmax_and_log_softmax_are_finite_around_plus_minus_1000():
    x = ad.tensor([[1000.0, -1000.0, 999.0], [-1000.0, -1001.0, -999.0]], requires_grad=True)
    for out in (x.softmax(1), x.log_softmax(1)):
        assert np.isfinite(out.data).all()
        out.backward(np.random.default_rng(0).standard_normal(out.shape))
        assert np.isfinite(x.grad.data).all()
    np.testing.assert_allclose(x.softmax(1).data.sum(1), [1.0, 1.0])
    np.testing.assert_allclose(np.exp(x.log_softmax(1).data), x.softmax(1).data)


def test_sigmoid_is_finite_for_large_inputs():
    out = ad.tensor([-1000.0, 0.0, 1000.0]).sigmoid()
    np.testing.assert_array_equal(out.data, [0.0, 0.5, 1.0])
