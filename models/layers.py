"""`MLP`: the notebook's kind of network, built from `autodiff.nn.Linear`."""

from __future__ import annotations

import numpy as np

from autodiff import ShapeError, Tensor
from autodiff.nn import Linear, Module

ACTIVATIONS = {"relu": Tensor.relu, "tanh": Tensor.tanh, "sigmoid": Tensor.sigmoid}


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
