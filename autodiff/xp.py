"""The few functions the gradient rules call besides operators.

A gradient rule runs on NumPy arrays in a plain backward pass and on Tensors when
``create_graph=True`` records the backward pass itself. Operators (``+ - * / ** @``,
comparisons, ``.reshape``, ``.mT``) mean the same on both; these functions give the
rest one spelling for both.
"""

from __future__ import annotations

import numpy as np


def is_array(x: object) -> bool:
    """True for NumPy values (plain backward), False for Tensors (recorded backward)."""
    return isinstance(x, (np.ndarray, np.generic))


def exp(x):
    return np.exp(x) if is_array(x) else x.exp()


def log(x):
    return np.log(x) if is_array(x) else x.log()


def sign(x):
    return np.sign(x) if is_array(x) else x.sign()


def where(condition, a, b):
    if is_array(a) or is_array(b):
        return np.where(condition, a, b)
    from autodiff.tensor import where as tensor_where  # here: autodiff.tensor imports this module

    return tensor_where(condition, a, b)


def sum(x, dim, keepdim: bool):
    return x.sum(axis=dim, keepdims=keepdim) if is_array(x) else x.sum(dim, keepdim)


def broadcast_to(x, shape: tuple[int, ...]):
    if not is_array(x):
        return x.broadcast_to(shape)
    out = np.empty(shape, dtype=x.dtype)  # a real array: faster to compute with than a view
    out[...] = x
    return out


def permute(x, dims: tuple[int, ...]):
    return np.transpose(x, dims) if is_array(x) else x.permute(*dims)


def index_add(g, shape: tuple[int, ...], index):
    """zeros(shape) with g added at index (repeated indices accumulate)."""
    if not is_array(g):
        return g._index_add(shape, index)
    out = np.zeros(shape, dtype=g.dtype)
    if _has_array_index(index):
        np.add.at(out, index, g)  # unbuffered: a repeated index adds once per occurrence
    else:
        out[index] = g  # basic indexing never repeats an element
    return out


def _has_array_index(index) -> bool:
    parts = index if isinstance(index, tuple) else (index,)
    return any(isinstance(p, np.ndarray) for p in parts)


def sum_to(x, shape: tuple[int, ...]):
    """Undo broadcasting: sum x down to `shape` (drop leading dims, sum dims that were 1)."""
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    dims = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1
    )
    return sum(x, dims, keepdim=True).reshape(shape)
