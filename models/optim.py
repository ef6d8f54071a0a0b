"""Optimizers: they read ``.grad`` and update ``.data`` in place, as torch.optim."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from autodiff import Tensor


class Optimizer:
    """Base class: keeps the parameters (each once, in order) and steps those with a .grad."""

    def __init__(self, params: Iterable[Tensor], lr: float) -> None:
        name = type(self).__name__
        self.params = list({id(p): p for p in params}.values())  # a shared one moves once
        if not self.params:
            raise ValueError(f"{name}: got an empty parameter list")
        for i, p in enumerate(self.params):
            if not isinstance(p, Tensor) or not p.requires_grad:
                raise TypeError(f"{name}: parameter {i} must be a Tensor with "
                                f"requires_grad=True, got {p!r:.60}")
        self.lr = check_number(name, "lr", lr, low=0.0, low_open=True)

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        for i, p in enumerate(self.params):
            if p.grad is None:
                continue
            if not p.data.flags.writeable:
                raise ValueError(f"{type(self).__name__}.step: parameter {i} (shape {p.shape}) "
                                 "holds a read-only array; give it a writeable copy "
                                 "(p.data = p.data.copy())")
            self.update(i, p, p.grad.data)

    def update(self, i: int, p: Tensor, g: np.ndarray) -> None:
        raise NotImplementedError


class SGD(Optimizer):
    """p ← p − lr·v with v ← momentum·v + g (plain SGD when momentum is 0)."""

    def __init__(self, params: Iterable[Tensor], lr: float, momentum: float = 0.0) -> None:
        super().__init__(params, lr)
        self.momentum = check_number("SGD", "momentum", momentum, low=0.0, high=1.0)
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
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"Adam: betas must be a pair of numbers, got {betas!r}")
        self.betas = tuple(check_number("Adam", f"betas[{i}]", b, low=0.0, high=1.0)
                           for i, b in enumerate(betas))
        self.eps = check_number("Adam", "eps", eps, low=0.0, low_open=True)
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


def check_number(optimizer: str, name: str, value: object, low: float, high: float = math.inf,
                 low_open: bool = False) -> float:
    """A finite real in [low, high) (or (low, high) with low_open); anything else is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{optimizer}: {name} must be a number, got {value!r}")
    value = float(value)
    above = value > low if low_open else value >= low
    if not (math.isfinite(value) and above and value < high):
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g})"
        raise ValueError(f"{optimizer}: {name} must be a finite number in {bounds}, got {value}")
    return value
