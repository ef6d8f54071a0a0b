"""Hypothesis strategies for property-based gradient tests: tensors, shapes and dims."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from numpy.typing import DTypeLike

from autodiff.ops import OPS, Op
from autodiff.tensor import Tensor

Shape = tuple[int, ...]


def shapes(min_dims: int = 0, max_dims: int = 4, min_side: int = 1,
           max_side: int = 4) -> st.SearchStrategy[Shape]:
    """Array shapes, 0-d to 4-d by default."""
    return hnp.array_shapes(min_dims=min_dims, max_dims=max_dims, min_side=min_side,
                            max_side=max_side)


def floats(low: float = -3.0, high: float = 3.0, *, away_from: tuple[float, ...] = (),
           margin: float = 1e-2) -> st.SearchStrategy[float]:
    """Floats in [low, high], at least `margin` away from each point of `away_from` (kinks)."""
    values = st.floats(low, high, allow_nan=False, allow_infinity=False)
    if not away_from:
        return values
    return values.filter(lambda v: all(abs(v - k) >= margin for k in away_from))


def arrays(shape: Shape | st.SearchStrategy[Shape], dtype: DTypeLike = np.float64,
           elements: st.SearchStrategy[float] | None = None) -> st.SearchStrategy[np.ndarray]:
    return hnp.arrays(dtype, shape, elements=elements if elements is not None else floats())


def tensors(shape: Shape | st.SearchStrategy[Shape] | None = None,
            dtype: DTypeLike = np.float64,
            elements: st.SearchStrategy[float] | None = None,
            requires_grad: bool = True) -> st.SearchStrategy[Tensor]:
    """Tensors of the given (or a drawn) shape and dtype, with bounded finite values."""
    shape = shapes() if shape is None else shape
    return arrays(shape, dtype, elements).map(
        lambda a: Tensor(a, requires_grad=requires_grad and np.dtype(dtype).kind == "f"))


def broadcastable_shapes(num_shapes: int = 2, min_dims: int = 0, max_dims: int = 4,
                         max_side: int = 4) -> st.SearchStrategy[tuple[Shape, ...]]:
    """`num_shapes` shapes that broadcast together (dims of 1 and missing leading dims)."""
    return hnp.mutually_broadcastable_shapes(
        num_shapes=num_shapes, min_dims=min_dims, max_dims=max_dims, max_side=max_side
    ).map(lambda b: b.input_shapes)


@st.composite
def matmul_shapes(draw: st.DrawFn, max_batch_dims: int = 2,
                  max_side: int = 4) -> tuple[Shape, Shape]:
    """Shapes np.matmul accepts: 1-D, 2-D, and batched with broadcasting batch dims."""
    n, k, m = (draw(st.integers(1, max_side)) for _ in range(3))
    batch_a, batch_b = draw(broadcastable_shapes(2, 0, max_batch_dims, max_side))
    a = (k,) if draw(st.booleans()) and not batch_a else batch_a + (n, k)
    b = (k,) if draw(st.booleans()) and not batch_b else batch_b + (k, m)
    return a, b


def dims(ndim: int, *, allow_none: bool = True, allow_tuple: bool = True,
         single: bool = False) -> st.SearchStrategy[Any]:
    """Valid `dim` arguments for a tensor of `ndim` dims: None, an int (maybe negative), a tuple."""
    if ndim == 0:
        return st.none()
    one = st.integers(-ndim, ndim - 1)
    if single:
        return one
    options: list[st.SearchStrategy[Any]] = [one]
    if allow_none:
        options.append(st.none())
    if allow_tuple:
        distinct = st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True)
        options.append(distinct.flatmap(  # each dim maybe written negative
            lambda ds: st.tuples(*[st.sampled_from([d, d - ndim]) for d in ds])))
    return st.one_of(options)


def distinct_arrays(shape: Shape | st.SearchStrategy[Shape], gap: float = 0.05,
                    dtype: DTypeLike = np.float64) -> st.SearchStrategy[np.ndarray]:
    """Arrays whose elements differ pairwise by at least 3/4 of `gap` (no ties, e.g. for max):
    a random order of the multiples of `gap`, each moved by up to gap/4."""
    def build(shape: Shape) -> st.SearchStrategy[np.ndarray]:
        size = int(np.prod(shape))
        return st.permutations(range(size)).flatmap(lambda order: arrays(
            shape, dtype, st.floats(0, gap / 4)).map(
                lambda noise: (np.asarray(order, dtype).reshape(shape) - size / 2) * gap + noise))

    return (shape if isinstance(shape, st.SearchStrategy) else st.just(shape)).flatmap(build)


def safe_floats(op: Op | str, input_index: int = 0, params: dict[str, Any] | None = None,
                low: float = -3.0, high: float = 3.0, margin: float = 1e-2
                ) -> st.SearchStrategy[float]:
    """Values for input `input_index` of `op` kept `margin` away from the op's declared kinks
    (for its `params`, e.g. clamp's bounds) and inside its declared domain."""
    op = OPS[op] if isinstance(op, str) else op
    if input_index in op.domain.positive:
        low = max(low, 0.2)
    kinks = op.kink.points(**(params or {})) if op.kink and op.kink.points else ()
    if input_index in op.domain.nonzero:
        kinks += (0.0,)
        margin = max(margin, 0.2)
    return floats(low, high, away_from=kinks, margin=margin)
