"""Layers as modules, as in ``torch.nn``: `Linear`, the activations, `Flatten`, `Sequential`,
and the losses `MSELoss` and `CrossEntropyLoss`."""

from __future__ import annotations

from typing import Any

import numpy as np

from autodiff.errors import ShapeError
from autodiff.nn import functional as F
from autodiff.nn.module import Module, Parameter
from autodiff.tensor import Tensor


class Linear(Module):
    """y = x @ weightᵀ + bias, weight of shape (out_features, in_features) as in PyTorch.

    Initialised as PyTorch does: uniform in ±1/√in_features (from `rng`, or a fresh generator).
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: np.random.Generator | None = None) -> None:
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"Linear: {name} must be a positive int, got {n!r}")
        rng = rng if rng is not None else np.random.default_rng()
        bound = 1 / np.sqrt(in_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(rng.uniform(-bound, bound, (out_features, in_features)))
        self.bias = Parameter(rng.uniform(-bound, bound, out_features)) if bias else None

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1:] != (self.in_features,):
            raise ShapeError(f"Linear: expected input of width {self.in_features} "
                             f"(shape (N, {self.in_features})), got shape {x.shape}")
        y = x @ self.weight.T
        return y + self.bias if self.bias is not None else y


class ReLU(Module):
    """max(x, 0), as a module (as torch.nn.ReLU)."""

    def forward(self, x: Tensor) -> Tensor:
        return x.relu()


class Tanh(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.tanh()


class Sigmoid(Module):
    def forward(self, x: Tensor) -> Tensor:
        return x.sigmoid()


class Softmax(Module):
    """softmax over `dim`, as a module (as torch.nn.Softmax(dim))."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return x.softmax(self.dim)


class Flatten(Module):
    """Dims start_dim..end_dim joined into one (as torch.nn.Flatten: from dim 1 by default)."""

    def __init__(self, start_dim: int = 1, end_dim: int = -1) -> None:
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x: Tensor) -> Tensor:
        return x.flatten(self.start_dim, self.end_dim)


class Sequential(Module):
    """Modules applied in order; ``model[0]`` is the first, ``len(model)`` counts them. They are
    its attributes "0", "1", ..., so their parameters are named "0.weight", as in PyTorch."""

    def __init__(self, *modules: Module) -> None:
        for i, m in enumerate(modules):
            if not isinstance(m, Module):
                raise TypeError(f"Sequential: argument {i} must be a Module, got "
                                f"{type(m).__name__}")
            setattr(self, str(i), m)

    def _modules(self) -> list[Module]:
        return [m for m in vars(self).values() if isinstance(m, Module)]

    def forward(self, x: Any) -> Any:
        for module in self._modules():
            x = module(x)
        return x

    def __getitem__(self, i: int) -> Module:
        return self._modules()[i]

    def __len__(self) -> int:
        return len(self._modules())


class MSELoss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = reduction

    def forward(self, input: Tensor, target: Tensor) -> Tensor:
        return F.mse_loss(input, target, self.reduction)


class CrossEntropyLoss(Module):
    def __init__(self, reduction: str = "mean") -> None:
        self.reduction = reduction

    def forward(self, logits: Tensor, labels: Any) -> Tensor:
        return F.cross_entropy(logits, labels, self.reduction)
