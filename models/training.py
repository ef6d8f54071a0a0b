"""The notebook's training, three ways from the same start (the engine, the correct NumPy
backprop, the notebook's own), and a practitioner's version; with tqdm progress bars."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from tqdm.auto import tqdm  # widgets in Jupyter, text bars on a terminal

import autodiff as ad
from models import MLP, Adam, Digits, cross_entropy, squared_error

GradFn = Callable[[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
                  tuple[float, np.ndarray, np.ndarray]]


@dataclass
class Run:
    """One training run: its loss at every step (batches × steps), final weights and timing."""

    name: str
    losses: np.ndarray
    w1: np.ndarray
    w2: np.ndarray
    seconds: float

    @property
    def us_per_step(self) -> float:
        return 1e6 * self.seconds / self.losses.size

    def accuracy(self, x: np.ndarray, labels: np.ndarray) -> float:
        logits = np.maximum(x @ self.w1, 0) @ self.w2
        return float((logits.argmax(axis=1) == labels).mean())


def initial_weights(seed: int, scale: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((64, 50)) * scale, rng.standard_normal((50, 10)) * scale


def train_engine(data: Digits, batches: list[np.ndarray], w1: np.ndarray, w2: np.ndarray,
                 lr: float, steps: int, compiled: bool = False, backend: str = "numpy") -> Run:
    """SGD with gradients from the engine: the notebook's PyTorch autograd version; with
    `compiled`, the whole step (forward, backward, update) is `autodiff.compile`d (traced once,
    then replayed) with that `backend`."""
    w1_t, w2_t = ad.tensor(w1.copy(), requires_grad=True), ad.tensor(w2.copy(), requires_grad=True)

    def step(x: ad.Tensor, y: ad.Tensor) -> ad.Tensor:
        loss = squared_error((x @ w1_t).relu() @ w2_t, y)
        loss.backward()
        with ad.no_grad():
            for w in (w1_t, w2_t):
                w -= lr * w.grad
                w.grad = None
        return loss

    step_of = ad.compile(step, backend=backend) if compiled else step
    name = ("engine, fused" if backend == "numba" else "engine, compiled") if compiled else "engine"
    y_train = data.y_train
    losses = np.empty((len(batches), steps))
    start = time.perf_counter()
    for b, rows in enumerate(tqdm(batches, desc=name, unit="batch", leave=False,
                                  disable=None)):
        x, y = ad.tensor(data.x_train[rows]), ad.tensor(y_train[rows])
        for s in range(steps):
            losses[b, s] = step_of(x, y).item()
    return Run(name, losses, w1_t.data, w2_t.data, time.perf_counter() - start)


def train_numpy(name: str, loss_and_grads: GradFn, data: Digits, batches: list[np.ndarray],
                w1: np.ndarray, w2: np.ndarray, lr: float, steps: int) -> Run:
    """SGD with hand-derived NumPy gradients (the correct ones, or the notebook's)."""
    w1, w2 = w1.copy(), w2.copy()
    y_train = data.y_train
    losses = np.empty((len(batches), steps))
    start = time.perf_counter()
    for b, rows in enumerate(tqdm(batches, desc=name, unit="batch", leave=False,
                                  disable=None)):
        x, y = data.x_train[rows], y_train[rows]
        for s in range(steps):
            losses[b, s], dw1, dw2 = loss_and_grads(x, y, w1, w2)
            w1 -= lr * dw1
            w2 -= lr * dw2
    return Run(name, losses, w1, w2, time.perf_counter() - start)


@dataclass
class PractitionerRun:
    accuracy: float
    seconds: float
    epochs: int


def train_practitioner(data: Digits, seed: int, epochs: int = 40) -> PractitionerRun:
    """The same 64→50→10 network as one would train it today: biases, inputs scaled to [0, 1],
    cross-entropy on the logits, Adam, shuffled minibatches of 64."""
    rng = np.random.default_rng(seed)
    model = MLP([64, 50, 10], rng=rng)
    optimizer = Adam(model.parameters(), lr=1e-2)
    x_train, labels = data.x_train / 16, data.labels_train
    start = time.perf_counter()
    for _ in tqdm(range(epochs), desc="practitioner", unit="epoch", leave=False, disable=None):
        order = rng.permutation(len(labels))
        for i in range(0, len(labels), 64):
            rows = order[i:i + 64]
            loss = cross_entropy(model(ad.tensor(x_train[rows])), labels[rows])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    with ad.no_grad():
        predicted = model(ad.tensor(data.x_test / 16)).data.argmax(axis=1)
    return PractitionerRun(float((predicted == data.labels_test).mean()),
                           time.perf_counter() - start, epochs)
