"""Error messages that name the op, the shapes and what was expected.

Ops do not pre-check what NumPy checks anyway (that would cost time on every call): when a
forward fails, `explain` turns NumPy's complaint into one that speaks of the op and its operands.
"""

from __future__ import annotations

import numpy as np


class ShapeError(ValueError):
    """An op was given operands whose shapes (or dims, or indices) it cannot take."""


def explain(op_name: str, shapes: list[tuple[int, ...]], params: dict, error: Exception) -> str:
    if op_name == "matmul":
        return _explain_matmul(*shapes)
    if len(shapes) >= 2:
        listed = " and ".join(str(s) for s in shapes)
        return (f"{op_name}: cannot broadcast shapes {listed} "
                "(aligned from the right, each dimension must be equal or 1)")
    (shape,) = shapes
    if op_name == "reshape":
        return (f"reshape: cannot reshape a tensor of shape {shape} ({int(np.prod(shape))} "
                f"elements) into {params['shape']}")
    if op_name == "broadcast_to":
        return f"broadcast_to: cannot broadcast shape {shape} to {params['shape']}"
    if op_name == "index":
        return f"index: {error} (tensor of shape {shape})"
    return f"{op_name}: cannot apply to a tensor of shape {shape}: {error}"


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


def check_dim(op_name: str, shape: tuple[int, ...], dim) -> int:
    """Normalize one required dim (softmax, transpose, ...) to a non-negative int."""
    if dim is None or isinstance(dim, (tuple, list)):
        raise TypeError(f"{op_name}: dim must be a single int, got {dim!r}")
    return check_dims(op_name, shape, dim)[0]


def _dim_range(ndim: int) -> str:
    return f"an int in [{-ndim}, {ndim - 1}]" if ndim else "no dim: the tensor is 0-d"
