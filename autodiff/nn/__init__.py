"""Modules, layers and losses laid out as ``torch.nn``: ``import autodiff as torch`` reaches
``torch.nn.Linear`` and ``torch.nn.functional.cross_entropy``."""

from autodiff.nn import functional
from autodiff.nn.layers import (
    CrossEntropyLoss,
    Flatten,
    Linear,
    MSELoss,
    ReLU,
    Sequential,
    Sigmoid,
    Softmax,
    Tanh,
)
from autodiff.nn.module import Module, Parameter

__all__ = ["CrossEntropyLoss", "Flatten", "Linear", "MSELoss", "Module", "Parameter", "ReLU",
           "Sequential", "Sigmoid", "Softmax", "Tanh", "functional"]
