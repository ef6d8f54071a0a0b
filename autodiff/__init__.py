"""autodiff: a small reverse-mode automatic differentiation engine on NumPy, PyTorch-flavoured."""

from autodiff import autograd, cuda, functional, nn, optim
from autodiff.anomaly import AnomalyError, detect_anomaly
from autodiff.backward import grad
from autodiff.compile import CompileCheckError, compile
from autodiff.creation import (
    ALIASES,
    arange,
    bool_,
    eye,
    float32,
    float64,
    from_numpy,
    full,
    int32,
    int64,
    linspace,
    manual_seed,
    ones,
    ones_like,
    rand,
    randn,
    zeros,
    zeros_like,
)
from autodiff.devices import Device as device
from autodiff.errors import ShapeError
from autodiff.function import Context, Function
from autodiff.functional import *  # noqa: F403 - autodiff.exp, .sum, ...: read from the op table
from autodiff.gradcheck import GradcheckError, gradcheck, gradgradcheck
from autodiff.graph import GraphFreedError, is_grad_enabled, no_grad
from autodiff.tensor import Size, Tensor, ValuesIndices, tensor
from autodiff.transforms import hessian, hvp, jacobian, jvp, vjp

globals().update(ALIASES)  # autodiff.float, .double, .long, .int, .bool (kept out of __all__:
# a star-import would hide Python's builtins)

__all__ = [
    "AnomalyError", "Context", "Function", "GradcheckError", "GraphFreedError", "ShapeError",
    "Tensor", "detect_anomaly", "grad", "gradcheck", "gradgradcheck", "is_grad_enabled",
    "no_grad", "tensor", "compile", "CompileCheckError", "jvp", "vjp", "jacobian", "hessian",
    "hvp", "arange", "bool_",
    "float32", "float64", "from_numpy", "int32", "int64", "manual_seed", "ones", "ones_like",
    "rand", "randn", "zeros", "zeros_like", "eye", "full", "linspace", "Size", "ValuesIndices",
    "device", "autograd", "cuda", "nn", "optim", *functional.__all__,
]
