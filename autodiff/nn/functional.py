"""Losses and activations as functions, as ``torch.nn.functional``: ``F.relu(x)``,
``F.cross_entropy(logits, labels)``, ``F.mse_loss``, ``F.binary_cross_entropy_with_logits``.

Each is written with the engine's ops, so its gradient comes from their rules. `reduction` is
"mean" (the default), "sum" or "none", as in PyTorch.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from autodiff.errors import ShapeError
from autodiff.tensor import Tensor, stack


def relu(x: Tensor) -> Tensor:
    return x.relu()


def sigmoid(x: Tensor) -> Tensor:
    return x.sigmoid()


def tanh(x: Tensor) -> Tensor:
    return x.tanh()


def softmax(x: Tensor, dim: int) -> Tensor:
    return x.softmax(dim)


def log_softmax(x: Tensor, dim: int) -> Tensor:
    return x.log_softmax(dim)


def _reduce(loss: str, values: Tensor, reduction: str) -> Tensor:
    if reduction == "mean":
        return values.mean()
    if reduction == "sum":
        return values.sum()
    if reduction == "none":
        return values
    raise ValueError(f"{loss}: reduction must be 'mean', 'sum' or 'none', got {reduction!r}")


def cross_entropy(logits: Tensor, labels: Any, reduction: str = "mean") -> Tensor:
    """−log softmax(logits)[label] for each row, averaged over the batch by default.

    logits (N, C); labels (N,) integer class indices.
    """
    given = labels  # indexed by as given: a compiled step reads a Tensor's labels at each call
    labels = np.asarray(labels.data if isinstance(labels, Tensor) else labels)
    if logits.ndim != 2 or labels.shape != logits.shape[:1] or labels.dtype.kind not in "iu":
        raise ShapeError(f"cross_entropy: expected logits (N, C) and integer labels (N,), got "
                         f"logits {logits.shape} and labels {labels.shape} of {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= logits.shape[1]):
        raise ValueError(f"cross_entropy: labels must lie in [0, {logits.shape[1] - 1}], got "
                         f"{labels.min()}..{labels.max()}")
    picked = logits.log_softmax(dim=1)[np.arange(len(labels)),
                                       given if isinstance(given, Tensor) else labels]
    return _reduce("cross_entropy", -picked, reduction)


def _target(loss: str, input: Tensor, target: Any) -> Tensor:
    """The target as a tensor of input's dtype and shape. PyTorch broadcasts a target of another
    shape with only a warning ((N, 1) against (N,) makes an N×N loss); here it is an error."""
    target = target if isinstance(target, Tensor) else Tensor(target, dtype=input.dtype)
    if input.shape != target.shape:
        raise ShapeError(f"{loss}: input {input.shape} and target {target.shape} must have the "
                         "same shape (reshape one: a broadcast loss is rarely what was meant)")
    return target


def mse_loss(input: Tensor, target: Tensor, reduction: str = "mean") -> Tensor:
    """(input − target)², averaged (or summed) over every element."""
    target = _target("mse_loss", input, target)
    return _reduce("mse_loss", (input - target) ** 2, reduction)


def binary_cross_entropy_with_logits(input: Tensor, target: Tensor,
                                     reduction: str = "mean") -> Tensor:
    """−(y·log σ(z) + (1 − y)·log(1 − σ(z))) for logits z and targets y in [0, 1].

    Computed as log_softmax over the pair (0, z), whose entries are log(1 − σ(z)) and log σ(z):
    stable for any z, and its gradient is σ(z) − y everywhere.
    """
    target = _target("binary_cross_entropy_with_logits", input, target)
    log_probs = stack([input * 0, input], dim=-1).log_softmax(dim=-1)
    picked = target * log_probs[..., 1] + (1 - target) * log_probs[..., 0]
    return _reduce("binary_cross_entropy_with_logits", -picked, reduction)
