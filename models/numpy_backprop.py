"""The notebook's network differentiated by hand in NumPy: the reference the engine is checked by.

    h = x @ w1          (N, 50)    x (N, 64)
    a = relu(h)
    z = a @ w2          (N, 10)
    s = softmax(z)      rows sum to 1
    L = Σ (s − y)²      y one-hot (N, 10)

Backward, from the loss down: dL/ds = 2(s − y); through softmax, whose Jacobian per row is
J = diag(s) − s sᵀ, dL/dz = Jᵀ dL/ds = s ⊙ (dL/ds − Σⱼ dL/dsⱼ sⱼ); then dw2 = aᵀ dL/dz,
dL/da = dL/dz w2ᵀ, dL/dh = dL/da ⊙ [h > 0], dw1 = xᵀ dL/dh.

The notebook used dL/dz = 2(s − y): it drops the softmax Jacobian, treating softmax as if it
were the identity in the backward pass. `notebook_loss_and_grads` keeps that variant to compare.
"""

from __future__ import annotations

import numpy as np


def _forward(x: np.ndarray, w1: np.ndarray, w2: np.ndarray):
    h = x @ w1
    a = np.maximum(h, 0)
    z = a @ w2
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return h, a, e / e.sum(axis=1, keepdims=True)


def _backward_from_logits(x, h, a, w2, dz):
    dw2 = a.T @ dz
    dh = (dz @ w2.T) * (h > 0)
    return x.T @ dh, dw2


def loss_and_grads(x: np.ndarray, y: np.ndarray, w1: np.ndarray, w2: np.ndarray
                   ) -> tuple[float, np.ndarray, np.ndarray]:
    """The squared-error loss and its true gradients (dw1, dw2), softmax Jacobian included."""
    h, a, s = _forward(x, w1, w2)
    ds = 2 * (s - y)
    dz = s * (ds - (ds * s).sum(axis=1, keepdims=True))
    return float(((s - y) ** 2).sum()), *_backward_from_logits(x, h, a, w2, dz)


def notebook_loss_and_grads(x: np.ndarray, y: np.ndarray, w1: np.ndarray, w2: np.ndarray
                            ) -> tuple[float, np.ndarray, np.ndarray]:
    """The notebook's version: the same loss, and 'gradients' that take 2(s − y) as dL/dz."""
    h, a, s = _forward(x, w1, w2)
    dz = 2 * (s - y)
    return float(((s - y) ** 2).sum()), *_backward_from_logits(x, h, a, w2, dz)


def compare_gradients(true: tuple[np.ndarray, ...],
                      other: tuple[np.ndarray, ...]) -> tuple[float, float]:
    """Relative error ‖other − true‖ / ‖true‖ and the angle in degrees between the two,
    over all weights flattened into one vector."""
    t = np.concatenate([g.ravel() for g in true])
    o = np.concatenate([g.ravel() for g in other])
    relative = np.linalg.norm(o - t) / np.linalg.norm(t)
    cosine = np.dot(t, o) / (np.linalg.norm(t) * np.linalg.norm(o))
    return float(relative), float(np.degrees(np.arccos(np.clip(cosine, -1, 1))))
