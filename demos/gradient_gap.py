"""How far the notebook's backprop is from the true gradient of its own loss."""

from __future__ import annotations

import numpy as np

from models import Digits
from models.numpy_backprop import compare_gradients, loss_and_grads, notebook_loss_and_grads


def gradient_gap(data: Digits, batches: list[np.ndarray], w1: np.ndarray,
                 w2: np.ndarray) -> dict:
    """Both gradients at the same weights on every batch: relative error and angle."""
    y = data.y_train
    errors, angles = [], []
    for rows in batches:
        _, *true = loss_and_grads(data.x_train[rows], y[rows], w1, w2)
        _, *notebook = notebook_loss_and_grads(data.x_train[rows], y[rows], w1, w2)
        relative, angle = compare_gradients(tuple(true), tuple(notebook))
        errors.append(relative)
        angles.append(angle)
    return {"batches": len(batches),
            "relative_error_median": float(np.median(errors)),
            "relative_error_range": (float(np.min(errors)), float(np.max(errors))),
            "angle_degrees_median": float(np.median(angles)),
            "angle_degrees_range": (float(np.min(angles)), float(np.max(angles)))}
