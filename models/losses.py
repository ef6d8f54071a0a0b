"""Losses: the notebook's squared error on the softmax output, and cross-entropy."""

from __future__ import annotations

import numpy as np

from autodiff import ShapeError, Tensor


def squared_error(logits: Tensor, targets: Tensor) -> Tensor:
    """The notebook's loss: Σ (softmax(logits, dim=1) − targets)², summed over the batch.

    logits (N, C); targets one-hot (N, C).
    """
    if logits.shape != targets.shape:
        raise ShapeError(f"squared_error: logits {logits.shape} and one-hot targets "
                         f"{targets.shape} must have the same shape (N, C)")
    return (logits.softmax(dim=1) - targets).pow(2).sum()


def cross_entropy(logits: Tensor, labels) -> Tensor:
    """Mean over the batch of −log softmax(logits)[label], as torch.nn.functional.cross_entropy.

    logits (N, C); labels (N,) integer class indices.
    """
    labels = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1] or labels.dtype.kind not in "iu":
        raise ShapeError(f"cross_entropy: expected logits (N, C) and integer labels (N,), got "
                         f"logits {logits.shape} and labels {labels.shape} of {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"cross_entropy: labels must lie in [0, {logits.shape[1] - 1}], got "
                         f"{labels.min()}..{labels.max()}")
    picked = logits.log_softmax(dim=1)[np.arange(len(labels)), labels]
    return -picked.mean()
