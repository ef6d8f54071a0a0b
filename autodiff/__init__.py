"""autodiff: a small reverse-mode automatic differentiation engine on NumPy, PyTorch-flavoured."""

from autodiff import functional
from autodiff.anomaly import AnomalyError, detect_anomaly
from autodiff.backward import grad
from autodiff.compile import CompileCheckError, compile
from autodiff.creation import (
    arange,
    bool_,
    float32,
    float64,
    from_numpy,
    int32,
    int64,
    manual_seed,
    ones,
    ones_like,
    rand,
    randn,
    zeros,
    zeros_like,
)
from autodiff.errors import ShapeError
from autodiff.function import Context, Function
from autodiff.functional import *  # noqa: F403 - autodiff.exp, .sum, ...: read from the op table
from autodiff.gradcheck import GradcheckError, gradcheck, gradgradcheck
from autodiff.graph import GraphFreedError, is_grad_enabled, no_grad
from autodiff.tensor import Tensor, tensor
from autodiff.transforms import hessian, hvp, jacobian, jvp, vjp

__all__ = [
    "AnomalyError", "Context", "Function", "GradcheckError", "GraphFreedError", "ShapeError",
    "Tensor", "detect_anomaly", "grad", "gradcheck", "gradgradcheck", "is_grad_enabled",
    "no_grad", "tensor", "compile", "CompileCheckError", "jvp", "vjp", "jacobian", "hessian",
    "hvp", "arange", "bool_",
    "float32", "float64", "from_numpy", "int32", "int64", "manual_seed", "ones", "ones_like",
    "rand", "randn", "zeros", "zeros_like", *functional.__all__,
]
