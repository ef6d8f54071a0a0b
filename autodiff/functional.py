"""The ops also offered as functions, ``autodiff.exp(t)`` beside ``t.exp()`` (as torch.exp).

Generated from the op table: every name in an op's ``functions=`` (and in `METHODS`) becomes
``autodiff.NAME``,
calling the Tensor method of that name (its first argument made a Tensor), or the function of
that name in `autodiff.tensor` where there is no method (``where``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autodiff import ops, tensor
from autodiff.tensor import Tensor


def _as_function(name: str) -> Callable[..., Tensor]:
    method = getattr(Tensor, name, None)
    if method is None:
        function: Callable[..., Tensor] = getattr(tensor, name)
        return function

    def call(t: Any, *args: Any, **kwargs: Any) -> Tensor:
        return method(t if isinstance(t, Tensor) else Tensor(t), *args, **kwargs)

    call.__name__ = call.__qualname__ = name
    call.__doc__ = method.__doc__
    return call


# methods that are not one op of the table, offered as functions too (as torch.argmax, ...)
METHODS = ("max", "min", "amax", "amin", "argmax", "argmin", "std", "var", "norm", "numel",
           "flatten", "gather", "allclose", "equal", "t", "transpose", "reshape", "permute",
           "squeeze", "unsqueeze", "abs", "sqrt", "pow", "mm")
FUNCTIONS = {name: _as_function(name)
             for name in [*(n for op in ops.OPS.values() for n in op.functions), *METHODS]}
globals().update(FUNCTIONS)
__all__ = sorted(FUNCTIONS)
