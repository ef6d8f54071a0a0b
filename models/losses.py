"""The notebook's loss: the squared error on the softmax output (cross-entropy is
`autodiff.nn.functional.cross_entropy`, re-exported by `models`)."""

from __future__ import annotations

from autodiff import ShapeError, Tensor


def squared_error(logits: Tensor, targets: Tensor) -> Tensor:
    """The notebook's loss: Σ (softmax(logits, dim=1) − targets)², summed over the batch.

    logits (N, C); targets one-hot (N, C).
    """
    if logits.shape != targets.shape:
        raise ShapeError(f"squared_error: logits {logits.shape} and one-hot targets "
                         f"{targets.shape} must have the same shape (N, C)")
    return (logits.softmax(dim=1) - targets).pow(2).sum()
