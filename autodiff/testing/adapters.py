"""Adapters that describe other engines to `autodiff.testing.conformance`.

- `torch()`: PyTorch (imported only when called; PyTorch is not a dependency).
- `scalar(Value)`: a micrograd-style engine whose values are scalar objects with ``+ - * / **``,
  optionally ``relu``/``tanh``/``exp``/``log``/``sigmoid`` methods, ``.backward()`` and
  ``.grad``; arrays of them are NumPy object arrays, so broadcasting, sums and matrix products
  come from NumPy calling the objects' own operators.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from typing import Any

import numpy as np

BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "add": operator.add, "sub": operator.sub, "mul": operator.mul, "div": operator.truediv,
    "matmul": operator.matmul}


class ScalarEngine:
    """A scalar-object engine (micrograd's ``Value``) seen through NumPy object arrays."""

    METHODS = ("relu", "tanh", "exp", "log", "sigmoid", "sin", "cos", "sqrt", "abs")

    def __init__(self, value_type: type, name: str | None = None) -> None:
        self.value_type = value_type
        self.name = name or f"{value_type.__module__}.{value_type.__qualname__}"
        unary = [m for m in self.METHODS if callable(getattr(value_type, m, None))]
        self.ops = sorted([*BINARY, "neg", "pow", "sum", "mean", *unary]
                          + (["softmax"] if "exp" in unary else []))

    def leaf(self, array: np.ndarray) -> np.ndarray:
        return self._each(lambda x: self.value_type(float(x)), np.asarray(array))

    def apply(self, op: str, *handles: Any, **params: Any) -> np.ndarray:
        if op in BINARY:
            return np.asarray(BINARY[op](*handles), dtype=object)
        (x,) = handles
        if op == "neg":
            return np.asarray(-x, dtype=object)
        if op == "pow":
            return self._each(lambda v: v ** params["exponent"], x)
        if op in ("sum", "mean"):
            dim, keepdim = params.get("dim"), params.get("keepdim", False)
            total = np.asarray(np.sum(x, axis=dim, keepdims=keepdim), dtype=object)
            count = x.size if dim is None else x.shape[dim]
            return total if op == "sum" else np.asarray(total / count, dtype=object)
        if op == "softmax":
            e = self._each(lambda v: v.exp(), x)
            return np.asarray(e / np.sum(e, axis=params["dim"], keepdims=True), dtype=object)
        return self._each(lambda v: getattr(v, op)(), x)

    def backward(self, scalar: np.ndarray) -> None:
        scalar.item().backward()

    def grad(self, leaf: np.ndarray) -> np.ndarray:
        return self._numbers(lambda v: v.grad, leaf)

    def value(self, handle: np.ndarray) -> np.ndarray:
        return self._numbers(lambda v: v.data, handle)

    @staticmethod
    def _each(function: Callable[[Any], Any], array: np.ndarray) -> np.ndarray:
        out = np.empty(array.shape, dtype=object)
        for index in np.ndindex(array.shape):
            out[index] = function(array[index])
        return out

    @staticmethod
    def _numbers(function: Callable[[Any], Any], array: np.ndarray) -> np.ndarray:
        array = np.asarray(array, dtype=object)
        return np.array([float(function(v)) for v in array.ravel()]).reshape(array.shape)


def scalar(value_type: type, name: str | None = None) -> ScalarEngine:
    """The adapter of a micrograd-style engine: ``scalar(micrograd.engine.Value)``."""
    return ScalarEngine(value_type, name)


class TorchEngine:
    """PyTorch through the adapter protocol (float64 tensors)."""

    name = "torch"
    ops = ["add", "sub", "mul", "div", "neg", "pow", "exp", "log", "sqrt", "abs", "tanh",
           "sigmoid", "relu", "sin", "cos", "sum", "mean", "matmul", "softmax", "log_softmax"]

    def __init__(self, torch_module: Any) -> None:
        self.torch = torch_module

    def leaf(self, array: np.ndarray) -> Any:
        return self.torch.tensor(array, dtype=self.torch.float64, requires_grad=True)

    def apply(self, op: str, *handles: Any, **params: Any) -> Any:
        if op in BINARY:
            return BINARY[op](*handles)
        (x,) = handles
        if op == "neg":
            return -x
        if op == "pow":
            return x ** params["exponent"]
        if op in ("sum", "mean"):
            dim = params.get("dim")
            reduce = getattr(self.torch, op)
            return reduce(x) if dim is None else reduce(x, dim=dim,
                                                        keepdim=params.get("keepdim", False))
        if op in ("softmax", "log_softmax"):
            return getattr(self.torch, op)(x, dim=params["dim"])
        return getattr(self.torch, op)(x)

    def backward(self, scalar: Any) -> None:
        scalar.backward()

    def grad(self, leaf: Any) -> np.ndarray:
        g = leaf.grad
        return np.zeros(tuple(leaf.shape)) if g is None else g.detach().numpy()

    def value(self, handle: Any) -> np.ndarray:
        return handle.detach().numpy()


def torch() -> TorchEngine:
    """The adapter of PyTorch (imports torch now: ``pip install torch``)."""
    try:
        import torch as torch_module
    except ImportError as error:
        raise ImportError("adapters.torch() needs PyTorch: pip install torch") from error
    return TorchEngine(torch_module)
