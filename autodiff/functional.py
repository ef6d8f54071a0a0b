"""The ops also offered as functions, ``autodiff.exp(t)`` beside ``t.exp()`` (as torch.exp)."""

from __future__ import annotations

from autodiff.tensor import Tensor


def _tensor(t) -> Tensor:
    return t if isinstance(t, Tensor) else Tensor(t)


def matmul(a, b) -> Tensor:
    return _tensor(a) @ b


def exp(t) -> Tensor:
    return _tensor(t).exp()


def log(t) -> Tensor:
    return _tensor(t).log()


def clamp(t, min: float | None = None, max: float | None = None) -> Tensor:
    return _tensor(t).clamp(min=min, max=max)


def relu(t) -> Tensor:
    return _tensor(t).relu()


def sigmoid(t) -> Tensor:
    return _tensor(t).sigmoid()


def tanh(t) -> Tensor:
    return _tensor(t).tanh()


def sum(t, dim=None, keepdim: bool = False) -> Tensor:
    return _tensor(t).sum(dim, keepdim)


def mean(t, dim=None, keepdim: bool = False) -> Tensor:
    return _tensor(t).mean(dim, keepdim)


def softmax(t, dim: int) -> Tensor:
    return _tensor(t).softmax(dim)


def log_softmax(t, dim: int) -> Tensor:
    return _tensor(t).log_softmax(dim)
