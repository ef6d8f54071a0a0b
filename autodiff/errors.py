"""Error messages that name the op, the shapes and what was expected, and the checks behind them.

Ops do not pre-check what NumPy checks anyway (that would cost time on every call): when a
forward fails, `explain` turns NumPy's complaint into one that speaks of the op and its operands,
in the op's own words where it declares them (`Op.explain`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import DTypeLike

from autodiff.primitive import Op


class ShapeError(ValueError):
    """An op was given operands whose shapes (or dims, or indices) it cannot take."""


def explain(op: Op, inputs: Sequence[Any], params: dict[str, Any],
            error: Exception) -> Exception:
    """The error to raise when `op`'s forward failed with NumPy's `error`: a ShapeError when the
    op says the shapes do not fit, else an error of NumPy's kind, in the op's words."""
    shapes = [t.shape for t in inputs]
    words = op.explain(shapes, params) if op.explain is not None else None
    if words:
        return ShapeError(f"{op.name}: {words}")
    if len(shapes) >= 2 or isinstance(error, TypeError):
        listed = " and ".join(f"{t.shape} {t.dtype}" for t in inputs)
        kind = TypeError if isinstance(error, TypeError) else ValueError
        return kind(f"{op.name}: cannot apply to operands {listed}: {error}")
    return ShapeError(f"{op.name}: {error} (tensor of shape {shapes[0]})")


def as_numeric_array(caller: str, data: object, dtype: DTypeLike | None = None) -> np.ndarray:
    """``np.asarray(data, dtype)``, refusing what is not numbers: strings, None, objects and
    complex values (no op here is defined on them)."""
    try:
        array = np.asarray(data)  # first as it is: "1.5" with dtype=float would pass
        if array.dtype.kind in "biuf" and dtype is not None:
            array = array.astype(dtype, copy=False)
    except (ValueError, TypeError) as error:
        raise TypeError(f"{caller}: expected numbers (a number, a nested list of numbers, an "
                        f"array or a Tensor), got {_describe(data)}: {error}") from None
    if array.dtype.kind not in "biuf":
        raise TypeError(f"{caller}: expected numbers (bool, integer or floating), got "
                        f"{_describe(data)} of dtype {array.dtype}")
    return array


def _describe(data: object) -> str:
    return repr(data) if data is None or isinstance(data, str) and len(data) < 40 else \
        type(data).__name__


def normalize_dims(op_name: str, shape: tuple[int, ...], dim: Any) -> tuple[int, ...] | None:
    """Check `dim` (int, negative int, tuple or None) and return it as a sorted tuple of
    non-negative ints (None stays None: all dims)."""
    if dim is None:
        return None
    dims = tuple(dim) if isinstance(dim, (tuple, list)) else (dim,)
    ndim = len(shape)
    normalized = []
    for d in dims:
        if not isinstance(d, (int, np.integer)) or isinstance(d, bool):
            raise TypeError(f"{op_name}: dim must be an int or a tuple of ints, got {d!r}")
        if not -ndim <= d < ndim:
            raise ShapeError(f"{op_name}: dim {d} is out of range for a tensor of shape {shape} "
                             f"(expected {_dim_range(ndim)})")
        normalized.append(int(d) % ndim)
    if len(set(normalized)) != len(normalized):
        raise ShapeError(f"{op_name}: dim {dim} names the same dimension twice")
    return tuple(sorted(normalized))


def reduced_dims(op_name: str, shape: tuple[int, ...], dim: Any) -> tuple[int, ...] | None:
    """The dims a reduction (sum, mean, max) runs over; an empty tuple means all of them, as in
    PyTorch (NumPy would reduce none)."""
    dims = normalize_dims(op_name, shape, dim)
    return None if dims == () else dims


def normalize_dim(op_name: str, shape: tuple[int, ...], dim: Any) -> int:
    """Check one required dim (softmax, transpose, ...) and return it as a non-negative int."""
    if dim is None or isinstance(dim, (tuple, list)):
        raise TypeError(f"{op_name}: dim must be a single int, got {dim!r}")
    dims = normalize_dims(op_name, shape, dim)
    assert dims is not None
    return dims[0]


def _dim_range(ndim: int) -> str:
    return f"an int in [{-ndim}, {ndim - 1}]" if ndim else "no dim: the tensor is 0-d"
