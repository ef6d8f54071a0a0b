"""`Linear` and `MLP`."""

from __future__ import annotations

import numpy as np

from autodiff import ShapeError, Tensor
from models.module import Module

ACTIVATIONS = {"relu": Tensor.relu, "tanh": Tensor.tanh, "sigmoid": Tensor.sigmoid}


class Linear(Module):
    """y = x @ weightᵀ + bias, weight of shape (out_features, in_features) as in PyTorch.

    Initialised as PyTorch does: uniform in ±1/√in_features.
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True,
                 rng: np.random.Generator | None = None) -> None:
        for name, n in (("in_features", in_features), ("out_features", out_features)):
            if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
                raise ValueError(f"Linear: {name} must be a positive int, got {n!r}")
        rng = rng if rng is not None else np.random.default_rng()
        bound = 1 / np.sqrt(in_features)
        self.in_features, self.out_features = in_features, out_features
        self.weight = Tensor(rng.uniform(-bound, bound, (out_features, in_features)),
                             requires_grad=True)
        self.bias = Tensor(rng.uniform(-bound, bound, out_features), requires_grad=True) \
            if bias else None

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


class Softmax(Module):
    """softmax over `dim`, as a module (as torch.nn.Softmax(dim))."""

    def __init__(self, dim: int) -> None:
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return x.softmax(self.dim)


class MLP(Module):
    """Linear layers of the given sizes, with `activation` between them (not after the last).

    ``MLP([64, 50, 10])`` maps (N, 64) to (N, 10) logits.
    """

    def __init__(self, sizes: list[int], activation: str = "relu", bias: bool = True,
                 rng: np.random.Generator | None = None) -> None:
        if len(sizes) < 2:
            raise ValueError(f"MLP: sizes needs at least an input and an output width, got {sizes}")
        if activation not in ACTIVATIONS:
            raise ValueError(f"MLP: activation must be one of {sorted(ACTIVATIONS)}, "
                             f"got {activation!r}")
        rng = rng if rng is not None else np.random.default_rng()
        self.activation = activation
        self.layers = [Linear(n_in, n_out, bias, rng) for n_in, n_out in zip(sizes, sizes[1:])]

    def forward(self, x: Tensor) -> Tensor:
        if x.shape[-1:] != (self.layers[0].in_features,):
            raise ShapeError(f"MLP: expected input of width {self.layers[0].in_features}, "
                             f"got shape {x.shape}")
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < len(self.layers) - 1:
                x = ACTIVATIONS[self.activation](x)
        return x
