"""sklearn's digits, split and batched as the notebook does."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Digits:
    """8×8 digit images as rows of 64 pixels (0..16), labels 0..9, split 90% / 10% in order."""

    x_train: np.ndarray  # (1617, 64) float64
    labels_train: np.ndarray  # (1617,) int
    x_test: np.ndarray  # (180, 64)
    labels_test: np.ndarray  # (180,)

    @property
    def y_train(self) -> np.ndarray:
        return one_hot(self.labels_train)

    @property
    def y_test(self) -> np.ndarray:
        return one_hot(self.labels_test)


def one_hot(labels: np.ndarray, classes: int = 10) -> np.ndarray:
    """(N,) integer labels → (N, classes) rows of zeros with a 1 at the label."""
    return np.eye(classes)[labels]


def load_digits(train_fraction: float = 0.9) -> Digits:
    """The first 90% of sklearn's 1797 digits for training, the last 10% for testing."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError:
        raise ImportError("load_digits needs scikit-learn: pip install 'autodiff[models]' "
                          "(or pip install scikit-learn)") from None

    data = sklearn_digits()
    n_train = int(len(data.target) * train_fraction)
    x, labels = data.data.astype(np.float64), data.target
    return Digits(x[:n_train], labels[:n_train], x[n_train:], labels[n_train:])


def random_batches(n_rows: int, batches: int = 200, batch_size: int = 100,
                   seed: int = 0) -> list[np.ndarray]:
    """Row indices of `batches` batches, each `batch_size` rows drawn at random (with
    replacement) from range(n_rows), as the notebook draws them; seeded."""
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n_rows, batch_size) for _ in range(batches)]
