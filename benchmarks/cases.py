"""What is measured: the engine's work and hand-written NumPy doing the same, side by side."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import autodiff as ad
from models import Softmax, squared_error
from models.numpy_backprop import loss_and_grads

LR = 1e-6


def training_steps(rows: int, sizes: tuple[int, int, int], dtype,
                   pytorch_cell: bool = False) -> dict[str, Callable]:
    """One SGD step of the notebook's network (relu, softmax, squared error, no biases) on
    `rows` × sizes[0] inputs, by the engine and by the hand-derived NumPy backprop, from the
    same weights. Returns {"engine": step, "compiled": step (autodiff.compile), "numpy": step}.
    With `pytorch_cell`, the engine's step is written as the notebook's PyTorch cell: ``mm``,
    ``clamp(min=0)``, an ``nn.Softmax``-style module, ``** 2``, gradients zeroed (in place)
    before backward."""
    rng = np.random.default_rng(0)
    n_in, n_hidden, n_out = sizes
    x = (rng.random((rows, n_in)) * 16).astype(dtype)
    y = np.eye(n_out, dtype=dtype)[rng.integers(0, n_out, rows)]
    w1 = (rng.standard_normal((n_in, n_hidden)) * 0.1).astype(dtype)
    w2 = (rng.standard_normal((n_hidden, n_out)) * 0.1).astype(dtype)
    x_t, y_t = ad.tensor(x), ad.tensor(y)
    w1_t, w2_t = ad.tensor(w1.copy(), requires_grad=True), ad.tensor(w2.copy(), requires_grad=True)
    w1_np, w2_np = w1.copy(), w2.copy()

    def engine_step(loss_of: Callable[[ad.Tensor, ad.Tensor], ad.Tensor]) -> Callable[[], None]:
        def step() -> None:
            loss = loss_of(x_t, y_t)
            loss.backward()
            for w in (w1_t, w2_t):
                w.data -= LR * w.grad.data
                w.grad = None
        return step

    def cell_step(loss_of: Callable[[ad.Tensor, ad.Tensor], ad.Tensor]) -> Callable[[], None]:
        def step() -> None:
            loss = loss_of(x_t, y_t)
            for w in (w1_t, w2_t):
                if w.grad is not None:
                    w.grad.zero_()
            loss.backward()
            for w in (w1_t, w2_t):
                w.data -= LR * w.grad.data
        return step

    softmax = Softmax(dim=1)

    def loss(x: ad.Tensor, y: ad.Tensor) -> ad.Tensor:
        if pytorch_cell:
            return ((softmax(x.mm(w1_t).clamp(min=0).mm(w2_t)) - y) ** 2).sum()
        return squared_error((x @ w1_t).relu() @ w2_t, y)

    step_of = cell_step if pytorch_cell else engine_step

    def numpy() -> None:
        _, dw1, dw2 = loss_and_grads(x, y, w1_np, w2_np)
        w1_np[...] -= LR * dw1
        w2_np[...] -= LR * dw2

    steps = {"engine": step_of(loss), "compiled": step_of(ad.compile(loss)),
             "numpy": numpy}
    torch_step = _torch_step(x, y, w1, w2)
    if torch_step is not None:
        steps["pytorch"] = torch_step
    return steps


def _torch_step(x, y, w1, w2) -> Callable | None:
    """PyTorch's eager step, when PyTorch happens to be installed (never a dependency)."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(y)
    w1_t = torch.from_numpy(w1.copy()).requires_grad_()
    w2_t = torch.from_numpy(w2.copy()).requires_grad_()

    def step() -> None:
        loss = (((x_t @ w1_t).relu() @ w2_t).softmax(dim=1) - y_t).pow(2).sum()
        loss.backward()
        with torch.no_grad():
            for w in (w1_t, w2_t):
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
