"""The notebook's network as an engine graph: 64 → 50 → ReLU → 10 → softmax → squared error."""

import numpy as np
from functions import notebook_loss
from hypothesis import assume, given
from hypothesis import strategies as st

import autodiff as ad


@given(seed=st.integers(0, 2**32 - 1), rows=st.integers(1, 8))
def test_notebook_network_gradients_match_finite_differences(seed, rows):
    rng = np.random.default_rng(seed)
    x = ad.tensor(rng.random((rows, 64)) * 16)  # digits pixels are 0..16
    y = ad.tensor(np.eye(10)[rng.integers(0, 10, rows)])
    w1 = ad.tensor(rng.standard_normal((64, 50)) * 0.05, requires_grad=True)
    w2 = ad.tensor(rng.standard_normal((50, 10)) * 0.1, requires_grad=True)
    assume(np.abs(x.data @ w1.data).min() > 1e-3)  # finite differences must not cross ReLU's kink
    ad.gradcheck(lambda w1, w2: notebook_loss(x, y, w1, w2), [w1, w2], fast_mode=True, seed=seed)


def test_notebook_network_gradients_elementwise():
    rng = np.random.default_rng(7)
    x = ad.tensor(rng.random((5, 64)) * 16)
    y = ad.tensor(np.eye(10)[rng.integers(0, 10, 5)])
    w1 = ad.tensor(rng.standard_normal((64, 50)) * 0.05, requires_grad=True)
    w2 = ad.tensor(rng.standard_normal((50, 10)) * 0.1, requires_grad=True)
    assert ad.gradcheck(lambda w1, w2: notebook_loss(x, y, w1, w2), [w1, w2])
