"""What is measured: the engine's work and hand-written NumPy doing the same, side by side."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

import autodiff as ad
from autodiff import optim
from models import Softmax, squared_error
from models.numpy_backprop import loss_and_grads

LR = 1e-6


def training_steps(rows: int, sizes: tuple[int, int, int], dtype,
                   pytorch_cell: bool = False) -> dict[str, Callable]:
    """One SGD step of the notebook's network (relu, softmax, squared error, no biases) on
    `rows` × sizes[0] inputs, by the engine and by the hand-derived NumPy backprop, from the
    same weights. Returns {"engine": eager step, "compiled": the loss compiled (backward and
    update outside), "whole step": the whole step compiled, "fused": the whole step compiled
    with backend="numba", "numpy": step}. The update is
    PyTorch's idiom, ``with no_grad(): w -= lr * w.grad``. With `pytorch_cell`, the step is
    written as the notebook's PyTorch cell: ``mm``, ``clamp(min=0)``, an ``nn.Softmax``-style
    module, ``** 2``, gradients zeroed (in place) before backward; otherwise gradients are set
    to None after the update."""
    x_t, y_t, (w1_t, w2_t), numpy = _notebook_problem(rows, sizes, dtype, _sgd_update)

    def update() -> None:
        with ad.no_grad():
            for w in (w1_t, w2_t):
                w -= LR * w.grad
                if not pytorch_cell:
                    w.grad = None

    def zero_in_place() -> None:
        for w in (w1_t, w2_t):
            if w.grad is not None:
                w.grad.zero_()

    softmax = Softmax(dim=1)

    def loss(x: ad.Tensor, y: ad.Tensor) -> ad.Tensor:
        if pytorch_cell:
            return ((softmax(x.mm(w1_t).clamp(min=0).mm(w2_t)) - y) ** 2).sum()
        return squared_error((x @ w1_t).relu() @ w2_t, y)

    def step_of(loss_of: Callable[[ad.Tensor, ad.Tensor], ad.Tensor]) -> Callable[..., object]:
        def step(x: ad.Tensor, y: ad.Tensor) -> ad.Tensor:
            loss = loss_of(x, y)
            if pytorch_cell:
                zero_in_place()
            loss.backward()
            update()
            return loss
        return step

    eager, compiled_loss = step_of(loss), step_of(ad.compile(loss))
    whole, fused = ad.compile(step_of(loss)), ad.compile(step_of(loss), backend="numba")
    steps = {"engine": lambda: eager(x_t, y_t), "compiled": lambda: compiled_loss(x_t, y_t),
             "whole step": lambda: whole(x_t, y_t), "fused": lambda: fused(x_t, y_t),
             "numpy": numpy}
    torch_step = _torch_step(rows, sizes, dtype)
    if torch_step is not None:
        steps["pytorch"] = torch_step
    return steps


def first_fused_call() -> float:
    """Seconds from nothing built to the end of the fused notebook step's first replay: numba's
    import, the trace and numba's compile of the kernels (what a process pays once)."""
    start = time.perf_counter()
    fused = training_steps(100, (64, 50, 10), np.float64)["fused"]
    fused()  # the trace
    fused()  # the first replay: numba compiles the kernels, or loads them from its disk cache
    return time.perf_counter() - start


def adam_steps(rows: int, sizes: tuple[int, int, int], dtype) -> dict[str, Callable]:
    """One Adam step of the notebook's network: the engine's (`optim.Adam`, eager, the whole
    step compiled and fused) and a hand-written NumPy Adam step on the hand-derived gradients.
    Each has weights and an optimizer of its own: Adam moves the weights, and a run that took
    three times the steps of another would reach other values (tiny gradients, subnormal
    second moments) that cost other times."""
    state: dict[str, Any] = {"t": 0}
    x_t, y_t, weights, numpy = _notebook_problem(rows, sizes, dtype,
                                                 lambda w, g: _adam_update(w, g, state))

    def step_of(ws: list[ad.Tensor]) -> Callable[[ad.Tensor, ad.Tensor], ad.Tensor]:
        optimizer = optim.Adam(ws, lr=1e-3)

        def step(x: ad.Tensor, y: ad.Tensor) -> ad.Tensor:
            optimizer.zero_grad()
            loss = squared_error((x @ ws[0]).relu() @ ws[1], y)
            loss.backward()
            optimizer.step()
            return loss
        return step

    eager, whole, fused = (step_of([ad.tensor(w.data.copy(), requires_grad=True)
                                    for w in weights]) for _ in range(3))
    whole, fused = ad.compile(whole), ad.compile(fused, backend="numba")
    return {"engine": lambda: eager(x_t, y_t), "whole step": lambda: whole(x_t, y_t),
            "fused": lambda: fused(x_t, y_t), "numpy": numpy}


def _notebook_problem(rows: int, sizes: tuple[int, int, int], dtype,
                      update: Callable[[list[np.ndarray], list[np.ndarray]], None]):
    """The inputs and one-hot targets as tensors, the engine's two weights, and the
    hand-written NumPy step (the hand-derived gradients, then `update` on its own weights)."""
    rng = np.random.default_rng(0)
    n_in, n_hidden, n_out = sizes
    x = (rng.random((rows, n_in)) * 16).astype(dtype)
    y = np.eye(n_out, dtype=dtype)[rng.integers(0, n_out, rows)]
    w1 = (rng.standard_normal((n_in, n_hidden)) * 0.1).astype(dtype)
    w2 = (rng.standard_normal((n_hidden, n_out)) * 0.1).astype(dtype)
    weights = [ad.tensor(w1, requires_grad=True), ad.tensor(w2, requires_grad=True)]
    w_np = [w1.copy(), w2.copy()]

    def numpy() -> None:
        _, dw1, dw2 = loss_and_grads(x, y, *w_np)
        update(w_np, [dw1, dw2])

    return ad.tensor(x), ad.tensor(y), weights, numpy


def _sgd_update(weights: list[np.ndarray], grads: list[np.ndarray]) -> None:
    for w, g in zip(weights, grads):
        w -= LR * g


def _adam_update(weights: list[np.ndarray], grads: list[np.ndarray], state: dict,
                 lr: float = 1e-3, b1: float = 0.9, b2: float = 0.999,
                 eps: float = 1e-8) -> None:
    """Adam as one writes it by hand in NumPy."""
    state["t"] += 1
    t = state["t"]
    for i, (w, g) in enumerate(zip(weights, grads)):
        m = state[f"m{i}"] = b1 * state.get(f"m{i}", 0) + (1 - b1) * g
        v = state[f"v{i}"] = b2 * state.get(f"v{i}", 0) + (1 - b2) * g * g
        w -= lr * (m / (1 - b1 ** t)) / (np.sqrt(v / (1 - b2 ** t)) + eps)


def _torch_step(rows: int, sizes: tuple[int, int, int], dtype) -> Callable | None:
    """PyTorch's eager step, when PyTorch happens to be installed (never a dependency)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)  # the same problem as `_notebook_problem`'s
    n_in, n_hidden, n_out = sizes
    x = torch.from_numpy((rng.random((rows, n_in)) * 16).astype(dtype))
    y = torch.from_numpy(np.eye(n_out, dtype=dtype)[rng.integers(0, n_out, rows)])
    w1 = torch.from_numpy((rng.standard_normal((n_in, n_hidden)) * 0.1).astype(dtype))
    w2 = torch.from_numpy((rng.standard_normal((n_hidden, n_out)) * 0.1).astype(dtype))
    w1.requires_grad_(), w2.requires_grad_()

    def step() -> None:
        loss = (((x @ w1).relu() @ w2).softmax(dim=1) - y).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            for w in (w1, w2):
                w -= LR * w.grad
                w.grad = None

    return step


def elementwise_chain(length: int) -> dict[str, Callable]:
    """A chain of `length` cheap elementwise ops on 10 elements: the engine forward,
    forward + backward, and NumPy forward (the same arithmetic, nothing recorded)."""
    x = ad.tensor(np.linspace(0.1, 1.0, 10), requires_grad=True)
    a = x.data.copy()

    def forward():
        y = x
        for _ in range(length):
            y = y * 1.0001
        return y

    def forward_backward() -> None:
        forward().backward(np.ones(10))
        x.grad = None

    def numpy() -> None:
        y = a
        for _ in range(length):
            y = y * 1.0001

    return {"engine forward": forward, "engine forward+backward": forward_backward,
            "numpy": numpy}


def fan_out(width: int) -> Callable[[], None]:
    """Backward through one tensor used by `width` ops (its gradient gathers `width` shares)."""
    x = ad.tensor(np.linspace(0.1, 1.0, 100), requires_grad=True)
    scales = [ad.tensor(float(i)) for i in range(width)]

    def step() -> None:
        total = x * scales[0]
        for s in scales[1:]:
            total = total + x * s
        total.backward(np.ones(100))
        x.grad = None

    return step
