"""autodiff: a small reverse-mode automatic differentiation engine on NumPy, PyTorch-flavoured."""

from autodiff.anomaly import AnomalyError, detect_anomaly
from autodiff.backward import grad
from autodiff.errors import ShapeError
from autodiff.function import Context, Function
from autodiff.functional import (
                                 clamp,
                                 exp,
                                 log,
                                 log_softmax,
                                 matmul,
                                 mean,
                                 relu,
                                 sigmoid,
                                 softmax,
                                 sum,
                                 tanh,
)
from autodiff.gradcheck import GradcheckError, gradcheck, gradgradcheck
from autodiff.graph import GraphFreedError, is_grad_enabled, no_grad
from autodiff.tensor import Tensor, tensor, where

__all__ = [
    "AnomalyError", "Context", "Function", "GradcheckError", "GraphFreedError", "ShapeError",
    "Tensor", "clamp", "detect_anomaly", "exp", "grad", "gradcheck", "gradgradcheck",
    "is_grad_enabled", "log", "log_softmax", "matmul", "mean", "no_grad", "relu", "sigmoid",
    "softmax", "sum", "tanh", "tensor", "where",
]
