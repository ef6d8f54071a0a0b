"""Every op against NumPy (forward) and central finite differences (first and second derivatives).

Rows come from op_table.CASES; hypothesis draws shapes (0-d to 4-d), broadcasting pairs, dims and
values. Gradients are checked with a random upstream gradient, never a plain sum() seed.
"""

import importlib
import inspect

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given
from hypothesis import strategies as st
from op_table import CASES

import autodiff as ad
from autodiff.ops import OPS

trace = importlib.import_module("autodiff.compile").trace


def _tensors(arrays, dtype=None):
    return [ad.Tensor(a if dtype is None or a.dtype.kind != "f" else a.astype(dtype),
                      requires_grad=a.dtype.kind == "f") for a in arrays]


def _draw(case, data):
    return data.draw(case.examples, label=case.name)


def test_every_primitive_has_a_row():
    covered = {name for case in CASES for name in case.covers}
    assert set(OPS) - covered == set(), "primitives with no row in tests/op_table.py"


@pytest.mark.parametrize("case", CASES, ids=repr)
@given(data=st.data())
def test_forward_matches_numpy_and_gradient_matches_finite_differences(case, data):
    arrays, params = _draw(case, data)
    out = case.fn(*_tensors(arrays), **params)
    expected = np.asarray(case.reference(*arrays, **params))
    assert out.shape == expected.shape
    assert out.dtype == expected.dtype
    np.testing.assert_allclose(out.data, expected, rtol=1e-12, atol=1e-12)
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    ad.gradcheck(lambda *ts: case.fn(*ts, **params), _tensors(arrays), fast_mode=True, seed=seed,
                 eps=case.eps)


@pytest.mark.parametrize("case", CASES, ids=repr)
@scaled(0.1)
@given(data=st.data())
def test_gradient_matches_finite_differences_elementwise(case, data):
    arrays, params = _draw(case, data)
    ad.gradcheck(lambda *ts: case.fn(*ts, **params), _tensors(arrays), eps=case.eps)


@pytest.mark.parametrize("case", [c for c in CASES if c.twice_differentiable], ids=repr)
@scaled(0.3)  # 300 examples in CI: the costliest check, kept inside 15 minutes
@given(data=st.data())
def test_second_derivative_matches_finite_differences(case, data):
    arrays, params = _draw(case, data)
    seed = data.draw(st.integers(0, 2**32 - 1), label="seed")
    ad.gradgradcheck(lambda *ts: case.fn(*ts, **params), _tensors(arrays), eps=case.eps,
                     fast_mode=True,
                     seed=seed)


@pytest.mark.parametrize("case", CASES, ids=repr)
@scaled(0.2)
@given(data=st.data())
def test_float32_in_float32_out(case, data):
    arrays, params = _draw(case, data)
    inputs = _tensors(arrays, np.float32)
    out = case.fn(*inputs, **params)
    assert out.dtype == (np.float32 if case.recorded else np.bool_)
    assert out.requires_grad == case.recorded
    if not case.recorded:
        return
    out.backward(np.ones(out.shape, np.float32))
    for t in inputs:
        if t.requires_grad and t.grad is not None:
            assert t.grad.dtype == np.float32
            assert t.grad.shape == t.shape


MATMUL_PROMOTIONS = [((3,), (3,)), ((3,), (3, 2)), ((2, 3), (3,)), ((3,), (4, 3, 2)),
                     ((4, 2, 3), (3,)), ((4, 2, 3), (3, 5)), ((2, 3), (4, 3, 5)),
                     ((1, 2, 3), (4, 3, 5)), ((4, 1, 2, 3), (5, 3, 2))]


@pytest.mark.parametrize("a_shape, b_shape", MATMUL_PROMOTIONS)
def test_matmul_gradient_for_every_promotion_and_batch_broadcast(a_shape, b_shape):
    rng = np.random.default_rng(0)
    a = ad.tensor(rng.standard_normal(a_shape), requires_grad=True)
    b = ad.tensor(rng.standard_normal(b_shape), requires_grad=True)
    assert ad.gradcheck(lambda a, b: a @ b, [a, b])


def test_repeated_index_pairs_accumulate():
    x = ad.tensor(np.zeros((3, 3)), requires_grad=True)
    x[np.array([0, 0, 2]), np.array([1, 1, 0])].sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[0, 2, 0], [0, 0, 0], [1, 0, 0]])


@pytest.mark.parametrize("case", [c for c in CASES if c.recorded], ids=repr)
@scaled(0.1)
@given(data=st.data())
def test_backward_fills_grad_exactly_as_grad_returns_it(case, data):
    """backward() takes a shortcut when the graph is one node over distinct leaves (every row
    applied to fresh tensors is); grad() always walks. Both give the same bits, in the leaves'
    shapes and dtypes, and a leaf's earlier .grad is added to."""
    arrays, params = _draw(case, data)
    inputs = _tensors(arrays)
    out = case.fn(*inputs, **params)
    upstream = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1))).standard_normal(
        out.shape)
    leaves = [t for t in inputs if t.requires_grad]
    walked = ad.grad(out, leaves, upstream, retain_graph=True, allow_unused=True)
    earlier = [np.full(t.shape, 0.5) for t in leaves]
    for t, e in zip(leaves, earlier):
        t.grad = ad.tensor(e.copy())
    out.backward(upstream)
    for t, g, e in zip(leaves, walked, earlier):
        expected = e if g is None else e + g.data
        assert t.grad.dtype == t.dtype and t.grad.shape == t.shape
        np.testing.assert_array_equal(t.grad.data, expected)


@pytest.mark.parametrize("case", [c for c in CASES if c.recorded], ids=repr)
@scaled(0.1)
@given(data=st.data())
def test_a_forward_or_rule_given_an_array_to_write_into_writes_the_same_bits(case, data):
    """What a compiled program lends buffers to: a forward given ``out=`` (Op.writes_into) and a
    rule given ``into=`` return what they return without it, bit for bit."""
    arrays, params = _draw(case, data)
    _, entries, _, _ = trace(lambda *ts: case.fn(*ts, **params), tuple(_tensors(arrays)), {})
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1), label="seed"))
    for e in entries:
        inputs = [x.data for x in e.inputs]
        if e.op.writes_into:
            buffer = np.empty_like(e.out.data)
            assert e.op.forward(*inputs, **e.params, out=buffer) is buffer
            np.testing.assert_array_equal(buffer, e.out.data)
        for rule in e.op.vjps:
            if rule is not None and "into" in inspect.signature(rule).parameters:
                g = rng.standard_normal(e.out.shape).astype(e.out.dtype)
                plain = rule(g, e.out.data, *inputs, **e.params)
                buffer = np.empty_like(plain)
                written = rule(g, e.out.data, *inputs, **e.params, into=buffer)
                # matmul's general case (not 2-D by 2-D) makes a new array, and compile uses it
                assert written is buffer or (
                    e.op.name == "matmul" and not all(x.ndim == 2 for x in inputs))
                np.testing.assert_array_equal(written, plain)
