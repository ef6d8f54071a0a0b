"""Error messages that name the op, the shapes and what was expected.

Ops do not pre-check what NumPy checks anyway (that would cost time on every call): when a
forward fails, `explain` turns NumPy's complaint into one that speaks of the op and its operands.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


class ShapeError(ValueError):
    """An op was given operands whose shapes (or dims, or indices) it cannot take."""


def explain(op_name: str, inputs: Sequence, params: dict, error: Exception) -> Exception:
    """The error to raise when an op's forward failed with NumPy's `error`: a ShapeError when the
    operands' shapes do not fit the op, else an error of NumPy's kind, in the op's words."""
    shapes = [t.shape for t in inputs]
    if op_name == "matmul":
        return ShapeError(_explain_matmul(*shapes))
    listed = " and ".join(f"{t.shape} {t.dtype}" for t in inputs)
    if len(shapes) >= 2 and not _broadcastable(shapes):
        listed = " and ".join(str(s) for s in shapes)
        return ShapeError(f"{op_name}: cannot broadcast shapes {listed} "
                          "(aligned from the right, each dimension must be equal or 1)")
    if len(shapes) >= 2 or isinstance(error, TypeError):
        kind = TypeError if isinstance(error, TypeError) else ValueError
        return kind(f"{op_name}: cannot apply to operands {listed}: {error}")
    (shape,) = shapes
    if op_name == "reshape":
        return ShapeError(f"reshape: cannot reshape a tensor of shape {shape} "
                          f"({int(np.prod(shape))} elements) into {params['shape']}")
    if op_name == "broadcast_to":
        return ShapeError(f"broadcast_to: cannot broadcast shape {shape} to {params['shape']}")
    if op_name == "index":
        return ShapeError(f"index: {error} (tensor of shape {shape})")
    return ShapeError(f"{op_name}: cannot apply to a tensor of shape {shape}: {error}")


def _broadcastable(shapes: list[tuple[int, ...]]) -> bool:
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        return False
    return True


def _explain_matmul(a: tuple[int, ...], b: tuple[int, ...]) -> str:
    if not a or not b:
        return f"matmul: both operands need at least 1 dimension, got {a} and {b}"
    inner_a, inner_b = a[-1], b[-2] if len(b) >= 2 else b[0]
    if inner_a != inner_b:
        return (f"matmul: cannot multiply {a} by {b}: the last dimension of the first ({inner_a}) "
                f"must equal the {'second-to-last' if len(b) >= 2 else 'only'} dimension of the "
                f"second ({inner_b})")
    return f"matmul: cannot broadcast the batch dimensions of {a} and {b}"


def check_dims(op_name: str, shape: tuple[int, ...], dim) -> tuple[int, ...] | None:
    """Normalize `dim` (int, negative int, tuple or None) to a sorted tuple of non-negative ints."""
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


def reduced_dims(op_name: str, shape: tuple[int, ...], dim) -> tuple[int, ...] | None:
    """The dims a reduction (sum, mean, max) runs over; an empty tuple means all of them, as in
    PyTorch (NumPy would reduce none)."""
    dims = check_dims(op_name, shape, dim)
    return None if dims == () else dims


def check_dim(op_name: str, shape: tuple[int, ...], dim) -> int:
    """Normalize one required dim (softmax, transpose, ...) to a non-negative int."""
    if dim is None or isinstance(dim, (tuple, list)):
        raise TypeError(f"{op_name}: dim must be a single int, got {dim!r}")
    return check_dims(op_name, shape, dim)[0]


def _dim_range(ndim: int) -> str:
    return f"an int in [{-ndim}, {ndim - 1}]" if ndim else "no dim: the tensor is 0-d"
