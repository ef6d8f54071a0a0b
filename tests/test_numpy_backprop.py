"""The hand-derived NumPy backprop: the correct one equals the engine, the notebook's does not."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import autodiff as ad
from models import one_hot, squared_error
from models.numpy_backprop import compare_gradients, loss_and_grads, notebook_loss_and_grads


def problem(seed: int, rows: int = 20, scale: float = 0.1):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 17, (rows, 64)).astype(float)  # digits-like pixels
    y = one_hot(rng.integers(0, 10, rows))
    return x, y, rng.standard_normal((64, 50)) * scale, rng.standard_normal((50, 10)) * scale


def engine_grads(x, y, w1, w2, loss):
    w1_t, w2_t = ad.tensor(w1, requires_grad=True), ad.tensor(w2, requires_grad=True)
    value = loss((ad.tensor(x) @ w1_t).relu() @ w2_t, ad.tensor(y))
    value.backward()
    return value.item(), w1_t.grad.data, w2_t.grad.data


@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 30))
def test_correct_backprop_equals_the_engine(seed, rows):
    x, y, w1, w2 = problem(seed, rows)
    loss, dw1, dw2 = loss_and_grads(x, y, w1, w2)
    e_loss, e_dw1, e_dw2 = engine_grads(x, y, w1, w2, squared_error)
    assert loss == pytest.approx(e_loss, rel=1e-12)
    np.testing.assert_allclose(dw1, e_dw1, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(dw2, e_dw2, rtol=1e-12, atol=1e-12)


def test_correct_backprop_matches_finite_differences():
    x, y, w1, w2 = problem(0, rows=6)
    assert np.abs(x @ w1).min() > 1e-3  # finite differences stay clear of ReLU's kink
    loss_and_grads_of = lambda a, b: loss_and_grads(x, y, a, b)  # noqa: E731
    _, dw1, dw2 = loss_and_grads_of(w1, w2)
    eps = 1e-6
    for w, dw in ((w1, dw1), (w2, dw2)):
        numerical = np.zeros_like(w)
        for i in np.ndindex(w.shape):
            old = w[i]
            w[i] = old + eps
            plus = loss_and_grads_of(w1, w2)[0]
            w[i] = old - eps
            minus = loss_and_grads_of(w1, w2)[0]
            w[i] = old
            numerical[i] = (plus - minus) / (2 * eps)
        np.testing.assert_allclose(dw, numerical, rtol=1e-4, atol=1e-7)


@given(seed=st.integers(0, 2**32 - 1))
def test_notebook_backprop_is_not_the_gradient_of_its_loss(seed):
    x, y, w1, w2 = problem(seed)
    _, *true = loss_and_grads(x, y, w1, w2)
    notebook_loss, *notebook = notebook_loss_and_grads(x, y, w1, w2)
    assert notebook_loss == pytest.approx(loss_and_grads(x, y, w1, w2)[0])  # same loss
    relative, angle = compare_gradients(tuple(true), tuple(notebook))
    assert relative > 0.5 and angle > 10


@given(seed=st.integers(0, 2**32 - 1))
def test_notebook_backprop_is_the_gradient_of_twice_the_cross_entropy(seed):
    """What it actually computes: 2(s − y) is the gradient at the logits of −2 Σ y·log s."""
    x, y, w1, w2 = problem(seed)
    _, dw1, dw2 = notebook_loss_and_grads(x, y, w1, w2)
    _, e_dw1, e_dw2 = engine_grads(
        x, y, w1, w2, lambda z, y: (z.log_softmax(dim=1) * y).sum() * -2)
    np.testing.assert_allclose(dw1, e_dw1, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dw2, e_dw2, rtol=1e-10, atol=1e-12)
