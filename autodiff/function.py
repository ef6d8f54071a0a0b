"""User-defined ops, PyTorch style: subclass `Function`, write static `forward` and `backward`.

    class Cube(Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.data ** 3               # an array or a Tensor

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * 3 * x ** 2  # one gradient per forward argument

    y = Cube.apply(x)

`forward` runs without recording; `backward` gets the upstream gradient as a Tensor and returns one
gradient per argument of `forward` (None for arguments that have none). Under
``create_graph=True`` backward's Tensor ops are recorded, so a backward written with Tensor ops
can be differentiated again.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from autodiff.errors import ShapeError, as_numeric_array
from autodiff.forward import shaped_tangent
from autodiff.graph import (
    GradMode,
    InPlace,
    check_rebound,
    check_versions,
    freed_error,
    set_modes,
)
from autodiff.recording import record
from autodiff.tensor import Tensor


class Context:
    """What forward leaves for backward: ``save_for_backward(*tensors)`` and any attribute."""

    def __init__(self) -> None:
        self.saved_tensors: tuple[Tensor, ...] = ()
        self.saved_at = 0  # the in-place count when saved: backward refuses if one changed since

    def save_for_backward(self, *tensors: Tensor) -> None:
        for i, t in enumerate(tensors):
            if t is not None and not isinstance(t, Tensor):
                raise TypeError(f"save_for_backward: argument {i} must be a Tensor or None, "
                                f"got {type(t).__name__} (keep other values as ctx attributes)")
        self.saved_tensors = tensors
        self.saved_at = InPlace.count


class Function:
    """Base class of user-defined ops; call them with ``MyOp.apply(*args)``."""

    @staticmethod
    def forward(ctx: Context, *args: Any) -> Any:
        raise NotImplementedError

    @staticmethod
    def backward(ctx: Context, grad_output: Tensor) -> Any:
        raise NotImplementedError

    @staticmethod
    def jvp(ctx: Context, *tangents: Any) -> Any:
        """Optional, for forward mode: the output's tangent, given one tangent per argument of
        forward (zeros for a tensor without one, None for other arguments)."""
        raise NotImplementedError

    @classmethod
    def apply(cls, *args: Any) -> Tensor:
        if GradMode.tracing:
            raise TypeError(f"{cls.__name__}: autodiff.compile cannot trace a user-defined "
                            "Function; call the function without compile")
        ctx = Context()
        table = GradMode.tangents
        with set_modes(enabled=False, tangents=None):  # forward's own ops record nothing
            result = cls.forward(ctx, *args)
        if not isinstance(result, (Tensor, np.ndarray, np.generic, int, float)):
            raise TypeError(f"{cls.__name__}.forward returned {type(result).__name__}; it must "
                            "return a Tensor or an array of numbers")
        # a fresh tensor: forward may have returned an input
        out = Tensor._wrap(as_numeric_array(f"{cls.__name__}.forward's result",
                                            getattr(result, "data", result)))
        slots = tuple(i for i, a in enumerate(args) if isinstance(a, Tensor))
        inputs = tuple(args[i] for i in slots)
        record(cls.__name__, inputs, out, FunctionNode, cls, ctx, args, slots)
        if table is not None:
            _forward_mode(cls, ctx, args, out, table)
        return out


def _forward_mode(function: type[Function], ctx: Context, args: tuple[Any, ...], out: Tensor,
                  table: dict[Any, Any]) -> None:
    """Set out's tangent with the Function's own `jvp`, when an argument has a tangent."""
    tangents = [table.get(a) if isinstance(a, Tensor) else None for a in args]
    if all(t is None for t in tangents):
        return
    if function.jvp is Function.jvp:
        raise TypeError(f"{function.__name__}: forward mode needs a static method jvp(ctx, "
                        "*tangents) giving the output's tangent; this Function has none")
    filled = [np.zeros(a.shape, a.dtype) if isinstance(a, Tensor) and t is None else t
              for a, t in zip(args, tangents)]
    with set_modes(enabled=GradMode.tangents_recorded, tangents=None):
        result = function.jvp(ctx, *filled)
    table[out] = shaped_tangent(result if GradMode.tangents_recorded
                                else np.asarray(getattr(result, "data", result)), out,
                                GradMode.tangents_recorded)


class FunctionNode:
    """One application of a `Function`: a `graph.GradNode`, as a primitive's `Node` is."""

    __slots__ = ("function", "ctx", "args", "inputs", "arg_slots", "origin", "recorded_at")

    def __init__(self, function: type[Function], ctx: Context, args: tuple[Any, ...],
                 arg_slots: tuple[int, ...], out: Tensor) -> None:
        self.function = function
        self.ctx: Context | None = ctx  # out is not kept: backward gets what ctx saved
        self.args: tuple[Any, ...] | None = args  # forward's arguments, to apply it again
        self.inputs: tuple[Any, ...] | None = tuple(args[i] for i in arg_slots)
        self.arg_slots = arg_slots  # where each input tensor stood among forward's arguments
        self.origin: str | None = None
        self.recorded_at = InPlace.count

    @property
    def name(self) -> str:
        return self.function.__name__

    @property
    def label(self) -> str:
        return self.name

    def vjp(self, g: Any, create_graph: bool) -> list[Any]:
        if self.inputs is None or self.ctx is None or self.args is None:
            raise freed_error(self)
        saved = self.ctx.saved_tensors
        check_rebound(self, self.inputs, self.recorded_at)
        check_versions(self, saved, self.ctx.saved_at, None, tuple(range(len(saved))),
                       "saved tensor")
        if create_graph:
            grads = self.function.backward(self.ctx, g)
        else:
            with set_modes(enabled=False):
                grads = self.function.backward(self.ctx, Tensor._wrap(g))
        grads = grads if isinstance(grads, tuple) else (grads,)
        if len(grads) != len(self.args):
            raise TypeError(f"{self.name}.backward returned {len(grads)} gradient(s) for the "
                            f"{len(self.args)} argument(s) of forward; it must return one per "
                            "argument (None where there is none)")
        return [self._checked(grads[slot], t, create_graph) if t.requires_grad else None
                for slot, t in zip(self.arg_slots, self.inputs)]

    def _checked(self, g: Any, t: Tensor, create_graph: bool) -> Any:
        if g is None:
            return None
        if not isinstance(g, Tensor):
            g = as_numeric_array(f"{self.name}.backward's gradient", g)
        if not _sums_to(g.shape, t.shape):
            raise ShapeError(f"{self.name}.backward: gradient of shape {g.shape} does not match "
                             f"its input's shape {t.shape}")
        if create_graph:
            return g if isinstance(g, Tensor) else Tensor._wrap(g.astype(t.dtype))
        # a copy: the array may be one the user keeps (the engine may accumulate into it)
        return np.array(g.data if isinstance(g, Tensor) else g, dtype=t.dtype)

    def release(self) -> None:
        self.inputs = self.ctx = self.args = None

    def formulas(self) -> list[str]:
        return [(self.function.backward.__doc__ or "").strip() or "user-defined backward"]

    def replay(self) -> Callable[..., Tensor]:
        if self.args is None:
            raise freed_error(self)
        forward_args = self.args

        def function(*xs: Tensor) -> Tensor:
            args = list(forward_args)
            for slot, x in zip(self.arg_slots, xs):
                args[slot] = x
            return self.function.apply(*args)
        return function

    def __repr__(self) -> str:
        return f"<{self.name}Backward>"


def _sums_to(grad_shape: tuple[int, ...], shape: tuple[int, ...]) -> bool:
    """Whether a gradient of grad_shape is shape, or shape broadcast (the walker sums it back)."""
    try:
        return np.broadcast_shapes(grad_shape, shape) == grad_shape
    except ValueError:
        return False
