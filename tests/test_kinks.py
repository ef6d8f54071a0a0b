"""The subgradient each op declares at its kinks, asserted exactly (matching PyTorch)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from op_table import CASES

import autodiff as ad
from autodiff.ops import OPS
from autodiff.tensor import apply
from autodiff.testing import floats

KINKED = [op for op in OPS.values() if op.kink is not None and op.kink.points is not None]


def _row_for(op):
    return next(case for case in CASES if case.covers == (op.name,))


@pytest.mark.parametrize("op", KINKED, ids=lambda op: op.name)
@given(data=st.data())
def test_the_declared_gradient_is_passed_exactly_at_each_kink(op, data):
    """For every op of the table with kink points: inputs exactly there (and the op's
    parameters as its test row draws them) get exactly the gradient the op declares."""
    _, params = data.draw(_row_for(op).examples)
    x = ad.tensor(np.repeat(op.kink.points(**params), 2), requires_grad=True)
    upstream = np.array(data.draw(st.lists(floats(-3, 3), min_size=x.size, max_size=x.size)))
    apply(op, x, **params).backward(upstream)
    np.testing.assert_array_equal(np.zeros(x.shape) if x.grad is None else x.grad.data,
                                  upstream * op.kink.gradient)


def test_relu_abs_and_clamp_declare_what_pytorch_does():
    """The declarations themselves, against PyTorch's documented subgradients."""
    assert (OPS["relu"].kink.gradient, OPS["abs"].kink.gradient) == (0.0, 0.0)
    assert OPS["clamp"].kink.gradient == 1.0


TIED = [op for op in OPS.values() if op.kink is not None and op.kink.points is None]


@pytest.mark.parametrize("op", TIED, ids=lambda op: op.name)
@given(ties=st.integers(2, 5), others=st.integers(0, 4), upstream=floats(-3, 3))
def test_ties_share_the_gradient_equally(op, ties, others, upstream):
    """Every op the table declares with ties: reductions (max, min) split the gradient between
    the tied extremes; elementwise ones (maximum, minimum) give half to each operand."""
    if op.elementwise:
        a, b = (ad.tensor([5.0] * ties, requires_grad=True) for _ in range(2))
        apply(op, a, b).backward(np.full(ties, upstream))
        for t in (a, b):
            np.testing.assert_array_equal(t.grad.data, np.full(ties, upstream / 2))
        return
    for other in (1.0, 9.0):  # below the ties for max, above them for min
        x = ad.tensor([5.0] * ties + [other] * others, requires_grad=True)
        out = apply(op, x, dim=None, keepdim=False)
        if out.item() == 5.0:
            out.backward(np.asarray(upstream))
            np.testing.assert_allclose(x.grad.data, [upstream / ties] * ties + [0.0] * others)
            return
    raise AssertionError(f"{op.name}: the tied value was never the result")


def test_amax_over_a_dim_shares_ties_per_row():
    x = ad.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    x.amax(dim=1).backward(np.array([1.0, 1.0]))
    np.testing.assert_array_equal(x.grad.data, [[0.0, 0.5, 0.5], [1.0, 0.0, 0.0]])


def test_max_with_a_dim_sends_the_gradient_to_the_index_it_returns_as_pytorch():
    x = ad.tensor([[1.0, 3.0, 3.0], [2.0, 0.0, 1.0]], requires_grad=True)
    values, indices = x.max(dim=1)
    assert indices.tolist() == [1, 0]  # the first of the tied maxima
    values.backward(np.array([1.0, 1.0]))
    np.testing.assert_array_equal(x.grad.data, [[0.0, 1.0, 0.0], [1.0, 0.0, 0.0]])


def test_an_op_is_smooth_exactly_when_it_declares_no_kink():
    for op in OPS.values():
        assert op.smooth == (op.kink is None), f"{op.name}: smooth and kink disagree"
        if op.kink is not None:
            assert op.kink.describe(), f"{op.name} must say in words what it returns at its kink"


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


def test_a_rule_written_into_a_buffer_keeps_the_subgradient_at_the_kink():
    """relu's rule on arrays takes into=, as a compiled backward lends it: at x = 0 it must
    still pass 0, as the eager rule does (the property tests draw values off the kink)."""
    x = np.array([-1.0, 0.0, 2.0])
    g = np.array([5.0, 5.0, 5.0])
    buffer = np.empty(3)
    assert ad.ops.relu_vjp(g, None, x, into=buffer) is buffer
    np.testing.assert_array_equal(buffer, ad.ops.relu_vjp(g, None, x))
    np.testing.assert_array_equal(buffer, [0.0, 0.0, 5.0])


def test_forward_mode_through_amax_at_ties_averages_the_tied_tangents():
    """The JVP at ties is the mean of the tied elements' tangents: the transpose of the VJP,
    which shares the gradient equally."""
    x = ad.tensor([[1.0, 1.0, 0.0], [2.0, 3.0, 3.0]])
    _, tangent = ad.jvp(lambda t: t.amax(dim=1), (x,), (ad.tensor([[1.0, 3.0, 9.0],
                                                                  [7.0, 2.0, 6.0]]),))
    np.testing.assert_array_equal(tangent.data, [2.0, 4.0])


def test_the_cast_rules_give_each_side_its_own_dtype():
    """to's VJP returns the gradient in the input's dtype, its JVP the tangent in the output's
    (the walker would cast them anyway; the rules themselves must be right for create_graph)."""
    x32 = np.ones(3, np.float32)
    assert ad.ops.to_vjp(np.ones(3), None, x32, dtype=np.dtype(np.float64)).dtype == np.float32
    assert ad.ops.to_jvp(np.ones(3), None, np.ones(3), dtype=np.dtype(np.float32)).dtype == \
        np.float32
