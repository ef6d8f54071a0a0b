"""Optimizers: they read ``.grad`` and update ``.data`` in place, as torch.optim."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from autodiff import Tensor


class Optimizer:
    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        self.params = list(params)
        if not self.params:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        if lr <= 0:
            raise ValueError(f"{type(self).__name__}: lr must be positive, got {lr}")
        self.lr = lr

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is not None:
                self.update(i, p, p.grad.data)

    def update(self, i: int, p: Tensor, g: np.ndarray) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """p ← p − lr·v with v ← momentum·v + g (plain SGD when momentum is 0)."""

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum = momentum
        self.velocity: list[np.ndarray | None] = [None] * len(self.params)

    def update(self, i: int, p: Tensor, g: np.ndarray) -> None:
        if self.momentum:
            v = self.velocity[i]
            self.velocity[i] = g.copy() if v is None else self.momentum * v + g
            g = self.velocity[i]
        p.data -= self.lr * g


class Adam(Optimizer):
    """Adam (Kingma & Ba): steps by bias-corrected running means of g and g²."""

    def __init__(self, params: Iterable[Tensor], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(params, lr)
        self.betas, self.eps = betas, eps
        self.m = [np.zeros_like(p.data) for p in self.params]
        self.v = [np.zeros_like(p.data) for p in self.params]
        self.steps = [0] * len(self.params)

    def update(self, i: int, p: Tensor, g: np.ndarray) -> None:
        b1, b2 = self.betas
        self.steps[i] += 1
        self.m[i] = b1 * self.m[i] + (1 - b1) * g
        self.v[i] = b2 * self.v[i] + (1 - b2) * g * g
        m_hat = self.m[i] / (1 - b1 ** self.steps[i])
        v_hat = self.v[i] / (1 - b2 ** self.steps[i])
        p.data -= self.lr * m_hat / (np.sqrt(v_hat) + self.eps)
