"""One row per public op: how to call it, its NumPy reference, and the inputs to draw.

Inputs are kept a margin away from each op's kinks and outside its undefined regions (the ops
declare both in `autodiff.ops`); the kinks themselves are asserted in test_kinks.py.
`test_every_primitive_has_a_row` fails when a primitive of the registry has no row here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import autodiff as ad
from autodiff.primitive import prim
from autodiff.testing import (
    arrays,
    broadcastable_shapes,
    dims,
    distinct_arrays,
    floats,
    matmul_shapes,
    safe_floats,
    shapes,
)

Example = tuple[list[np.ndarray], dict]


@dataclass(frozen=True)
class OpCase:
    name: str
    fn: Callable[..., ad.Tensor]  # (*tensors, **params) -> Tensor
    reference: Callable[..., np.ndarray]  # (*arrays, **params) -> array, NumPy only
    examples: st.SearchStrategy[Example]
    covers: tuple[str, ...]  # the primitives of autodiff.ops it exercises
    twice_differentiable: bool = True
    recorded: bool = True  # False for comparisons: their result never requires grad
    rounds: bool = False  # it rounds to float32 on the way: checks at float32's precision

    @property
    def eps(self) -> float:
        """The finite-difference step: larger than float32's rounding where the op rounds."""
        return 1e-2 if self.rounds else 1e-6

    @property
    def exact(self) -> float:
        """The relative tolerance of identities that hold exactly up to rounding (float32's
        rounding, summed over up to 256 elements, for an op that rounds)."""
        return 1e-5 if self.rounds else 1e-9

    def __repr__(self) -> str:
        return self.name


# ---------------------------------------------------------------- input strategies
def unary(elements=None, shape=None) -> st.SearchStrategy[Example]:
    return arrays(shapes() if shape is None else shape, elements=elements).map(lambda a: ([a], {}))


def binary(a_elements=None, b_elements=None) -> st.SearchStrategy[Example]:
    return broadcastable_shapes(2).flatmap(lambda s: st.tuples(
        arrays(s[0], elements=a_elements), arrays(s[1], elements=b_elements))
    ).map(lambda ab: (list(ab), {}))


def reduction(make_array=None, single_dim: bool = False) -> st.SearchStrategy[Example]:
    make_array = make_array or (lambda shape: arrays(shape))
    min_dims = 1 if single_dim else 0

    @st.composite
    def draw(draw):
        a = draw(shapes(min_dims=min_dims).flatmap(make_array))
        dim = draw(dims(a.ndim, single=single_dim))
        params = {"dim": dim} if single_dim else {"dim": dim, "keepdim": draw(st.booleans())}
        return [a], params

    return draw()


@st.composite
def clamp_examples(draw) -> Example:
    low = draw(floats(-2, 1))
    high = draw(st.one_of(st.none(), floats(low + 0.1, 2)))
    low = draw(st.sampled_from([low, None])) if high is not None else low
    params = {"min": low, "max": high}
    return [draw(arrays(shapes(), elements=safe_floats("clamp", 0, params)))], params


@st.composite
def matmul_examples(draw) -> Example:
    a_shape, b_shape = draw(matmul_shapes())
    return [draw(arrays(a_shape)), draw(arrays(b_shape))], {}


@st.composite
def reshape_examples(draw) -> Example:
    a = draw(arrays(shapes()))
    target = draw(st.sampled_from([(a.size,), (-1,), a.shape[::-1], (1,) + a.shape, (a.size, 1)]))
    return [a], {"shape": target}


@st.composite
def permute_examples(draw) -> Example:
    a = draw(arrays(shapes()))
    return [a], {"dims": tuple(draw(st.permutations(range(a.ndim))))}


@st.composite
def transpose_examples(draw) -> Example:
    a = draw(arrays(shapes(min_dims=1)))
    pick = dims(a.ndim, single=True)
    return [a], {"dim0": draw(pick), "dim1": draw(pick)}


@st.composite
def broadcast_to_examples(draw) -> Example:
    small, other = draw(broadcastable_shapes(2))
    return [draw(arrays(small))], {"shape": np.broadcast_shapes(small, other)}


@st.composite
def index_examples(draw) -> Example:
    a = draw(arrays(shapes(min_dims=1)))
    basic = hnp.basic_indices(a.shape, allow_ellipsis=True)
    rows = st.lists(st.integers(-a.shape[0], a.shape[0] - 1), min_size=1, max_size=6).map(
        np.array)  # integer arrays, repeats included: their gradients must add up
    with_slice = rows.map(lambda r: (r, slice(None)))  # an array inside a tuple index
    options = [basic, rows] + ([with_slice] if a.ndim >= 2 else [])
    return [a], {"index": draw(st.one_of(options))}


@st.composite
def index_add_examples(draw) -> Example:
    [a], params = draw(index_examples())
    g = draw(arrays(a[params["index"]].shape))
    return [g], {"shape": a.shape, "index": params["index"]}


@st.composite
def where_examples(draw) -> Example:
    sc, sa, sb = draw(broadcastable_shapes(3))
    condition = draw(arrays(sc, dtype=np.bool_, elements=st.booleans()))
    return [condition, draw(arrays(sa)), draw(arrays(sb))], {}


@st.composite
def unsqueeze_examples(draw) -> Example:
    a = draw(arrays(shapes(max_dims=3)))
    return [a], {"dim": draw(st.integers(-a.ndim - 1, a.ndim))}


@st.composite
def squeeze_examples(draw) -> Example:
    a = draw(arrays(shapes(min_side=1, max_side=2)))
    return [a], {"dim": draw(st.one_of(st.none(), dims(a.ndim, allow_none=False)))}


def _squeeze_reference(a, dim):
    if dim is None:
        return np.squeeze(a)
    dims = tuple(d % a.ndim for d in (dim if isinstance(dim, tuple) else (dim,)))
    return np.squeeze(a, axis=tuple(d for d in dims if a.shape[d] == 1))


def _sum_reference(a, dim, keepdim):
    return np.sum(a, axis=dim, keepdims=keepdim)


# references written from the definitions (inputs are bounded, so nothing overflows)
def _sigmoid_reference(a):
    return 1 / (1 + np.exp(-a))


def _softmax_reference(a, dim):
    return np.exp(a) / np.exp(a).sum(axis=dim, keepdims=True)


def _log_softmax_reference(a, dim):
    return a - np.log(np.exp(a).sum(axis=dim, keepdims=True))


def _index_add_reference(g, shape, index):
    out = np.zeros(shape)
    np.add.at(out, index, g)
    return out


@st.composite
def apart_examples(draw) -> Example:
    """Two arrays of one shape whose elements differ by at least 0.1 (no ties to compare, or
    where the gradient of maximum and minimum jumps)."""
    a = draw(arrays(shapes()))
    gaps = draw(arrays(a.shape, elements=floats(0.1, 2)))
    signs = draw(arrays(a.shape, elements=st.sampled_from([-1.0, 1.0])))
    return [a, a + gaps * signs], {}


@st.composite
def cat_examples(draw) -> Example:
    """1 to 3 arrays whose shapes differ only along the joined dim."""
    shape = draw(shapes(min_dims=1))
    dim = draw(st.integers(-len(shape), len(shape) - 1))
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
    return [draw(arrays(shape[:dim % len(shape)] + (n,) + shape[dim % len(shape) + 1:]))
            for n in sizes], {"dim": dim}


@st.composite
def stack_examples(draw) -> Example:
    """1 to 3 arrays of one shape, and a dim in [-ndim - 1, ndim]."""
    shape = draw(shapes())
    xs = [draw(arrays(shape)) for _ in range(draw(st.integers(1, 3)))]
    return xs, {"dim": draw(st.integers(-len(shape) - 1, len(shape)))}


@st.composite
def index_put_examples(draw) -> Example:
    """An array, an index without repeated elements (a write to one element twice keeps the
    last: refused where recorded), and values of the indexed shape, or one value broadcast."""
    [a], params = draw(index_examples())
    index = params["index"]
    rows = index[0] if isinstance(index, tuple) and index else index
    if isinstance(rows, np.ndarray):
        rows = np.unique(rows % a.shape[0])
        index = (rows, slice(None)) if isinstance(index, tuple) else rows
    shape = a[index].shape
    v = draw(st.one_of(arrays(shape), arrays(())))
    return [a, v], {"index": index}


def _index_put_reference(a, v, index):
    out = a.copy()
    out[index] = v
    return out


@st.composite
def gather_examples(draw) -> Example:
    a = draw(arrays(shapes(min_dims=1)))
    dim = draw(st.integers(-a.ndim, a.ndim - 1))
    shape = list(a.shape)
    shape[dim] = draw(st.integers(1, 4))
    picks = draw(hnp.arrays(np.int64, tuple(shape), elements=st.integers(0, a.shape[dim] - 1)))
    return [a], {"dim": dim, "index": picks}


@st.composite
def repeat_examples(draw) -> Example:
    a = draw(arrays(shapes(max_dims=3)))
    reps = draw(st.lists(st.integers(1, 3), min_size=a.ndim, max_size=a.ndim + 1))
    return [a], {"reps": tuple(reps)}


def spread_examples(make_array=arrays) -> st.SearchStrategy[Example]:
    """For var and std: each reduced dim holds at least two elements (Bessel's n − 1 > 0)."""
    return reduction(lambda shape: make_array(tuple(max(n, 2) for n in shape) or (2,)))


def comparison(name, compare, reference) -> OpCase:
    return OpCase(name, compare, reference, apart_examples(), (), twice_differentiable=False,
                  recorded=False)


POSITIVE = safe_floats("log", high=4.0)  # the ops' declared domains and kinks steer the values

# ---------------------------------------------------------------- the table
CASES = [
    OpCase("add", lambda a, b: a + b, np.add, binary(), ("add",)),
    OpCase("sub", lambda a, b: a - b, np.subtract, binary(), ("sub",)),
    OpCase("mul", lambda a, b: a * b, np.multiply, binary(), ("mul",)),
    OpCase("div", lambda a, b: a / b, np.divide, binary(b_elements=safe_floats("div", 1)),
           ("div",)),
    OpCase("neg", lambda a: -a, np.negative, unary(), ("neg",)),
    OpCase("pow", lambda a, b: a ** b, np.power,
           binary(safe_floats("pow", 0, high=4.0), floats(-2, 2)), ("pow",)),
    OpCase("square", lambda a: a ** 2, np.square, unary(), ("pow",)),
    OpCase("pow(p)", lambda a, p: a.pow(p), lambda a, p: np.power(a, p),
           st.tuples(arrays(shapes(), elements=POSITIVE), floats(-2, 2)).map(
               lambda ap: ([ap[0]], {"p": ap[1]})), ("pow",)),
    OpCase("matmul", lambda a, b: a @ b, np.matmul, matmul_examples(), ("matmul",)),
    OpCase("mm", lambda a, b: a.mm(b), np.matmul,
           st.tuples(*[st.integers(1, 4)] * 3).flatmap(lambda nkm: st.tuples(
               arrays(nkm[:2]), arrays(nkm[1:]))).map(lambda ab: (list(ab), {})), ("matmul",)),
    OpCase("exp", lambda a: a.exp(), np.exp, unary(), ("exp",)),
    OpCase("log", lambda a: a.log(), np.log, unary(POSITIVE), ("log",)),
    OpCase("sqrt", lambda a: a.sqrt(), np.sqrt, unary(POSITIVE), ("sqrt",)),
    OpCase("abs", lambda a: a.abs(), np.abs, unary(safe_floats("abs")), ("abs",)),
    OpCase("relu", lambda a: a.relu(), lambda a: np.maximum(a, 0),
           unary(safe_floats("relu")), ("relu",)),
    OpCase("clamp", lambda a, min, max: a.clamp(min=min, max=max),
           lambda a, min, max: np.clip(a, min, max), clamp_examples(), ("clamp",)),
    OpCase("sigmoid", lambda a: a.sigmoid(), _sigmoid_reference, unary(), ("sigmoid",)),
    OpCase("tanh", lambda a: a.tanh(), np.tanh, unary(), ("tanh",)),
    OpCase("sin", lambda a: a.sin(), np.sin, unary(), ("sin",)),
    OpCase("to", lambda a: a.to(np.float32).to(a.dtype),
           lambda a: a.astype(np.float32).astype(np.float64), unary(), ("to",), rounds=True),
    OpCase("cos", lambda a: a.cos(), np.cos, unary(), ("cos",)),
    OpCase("sum", lambda a, dim, keepdim: a.sum(dim, keepdim), _sum_reference, reduction(),
           ("sum",)),
    OpCase("mean", lambda a, dim, keepdim: a.mean(dim=dim, keepdim=keepdim),
           lambda a, dim, keepdim: np.mean(a, axis=dim, keepdims=keepdim), reduction(),
           ("sum", "div")),
    OpCase("max", lambda a, dim, keepdim: a.amax(dim, keepdim),
           lambda a, dim, keepdim: np.max(a, axis=dim, keepdims=keepdim),
           reduction(distinct_arrays), ("max",)),
    OpCase("min", lambda a, dim, keepdim: a.amin(dim, keepdim),
           lambda a, dim, keepdim: np.min(a, axis=dim, keepdims=keepdim),
           reduction(distinct_arrays), ("min",)),
    OpCase("softmax", lambda a, dim: a.softmax(dim), _softmax_reference,
           reduction(single_dim=True), ("softmax",)),
    OpCase("log_softmax", lambda a, dim: a.log_softmax(dim), _log_softmax_reference,
           reduction(single_dim=True), ("log_softmax",)),
    OpCase("reshape", lambda a, shape: a.reshape(shape), lambda a, shape: a.reshape(shape),
           reshape_examples(), ("reshape",)),
    OpCase("permute", lambda a, dims: a.permute(*dims), lambda a, dims: np.transpose(a, dims),
           permute_examples(),
           ("permute",)),
    OpCase("transpose", lambda a, dim0, dim1: a.transpose(dim0, dim1),
           lambda a, dim0, dim1: np.swapaxes(a, dim0, dim1), transpose_examples(), ("permute",)),
    OpCase("T", lambda a: a.T, lambda a: a.T, unary(), ("permute",)),
    OpCase("mT", lambda a: a.mT, lambda a: np.swapaxes(a, -1, -2),
           unary(shape=shapes(min_dims=2)), ("permute",)),
    OpCase("unsqueeze", lambda a, dim: a.unsqueeze(dim), lambda a, dim: np.expand_dims(a, dim),
           unsqueeze_examples(), ("reshape",)),
    OpCase("squeeze", lambda a, dim: a.squeeze(dim), _squeeze_reference, squeeze_examples(),
           ("reshape",)),
    OpCase("broadcast_to", lambda a, shape: a.broadcast_to(shape), np.broadcast_to,
           broadcast_to_examples(), ("broadcast_to",)),
    OpCase("index", lambda a, index: a[index], lambda a, index: a[index], index_examples(),
           ("index", "index_add")),
    OpCase("index_add", lambda g, shape, index: prim.index_add(g, shape, index),
           _index_add_reference, index_add_examples(), ("index_add", "index")),
    OpCase("index_put", lambda a, v, index: prim.index_put(a, v, index), _index_put_reference,
           index_put_examples(), ("index_put", "index_add", "index", "broadcast_to")),
    OpCase("clone", lambda a: a.clone(), np.copy, unary(), ("clone",)),
    OpCase("gather", lambda a, dim, index: a.gather(dim, index),
           lambda a, dim, index: np.take_along_axis(a, index, dim), gather_examples(),
           ("index", "index_add")),
    OpCase("max(dim)", lambda a, dim, keepdim: a.max(dim, keepdim).values,
           lambda a, dim, keepdim: np.max(a, axis=dim, keepdims=keepdim),
           reduction(distinct_arrays, single_dim=True).map(
               lambda e: (e[0], {**e[1], "keepdim": bool(e[0][0].size % 2)})), ("index",)),
    OpCase("repeat", lambda a, reps: a.repeat(reps), lambda a, reps: np.tile(a, reps),
           repeat_examples(), ("reshape", "broadcast_to")),
    OpCase("var", lambda a, dim, keepdim: a.var(dim, keepdim=keepdim),
           lambda a, dim, keepdim: np.var(a, axis=dim, ddof=1, keepdims=keepdim),
           spread_examples(), ("sum", "sub", "mul", "div")),
    OpCase("std", lambda a, dim, keepdim: a.std(dim, keepdim=keepdim),
           lambda a, dim, keepdim: np.std(a, axis=dim, ddof=1, keepdims=keepdim),
           spread_examples(distinct_arrays), ("sqrt",)),  # no ties: std 0 is sqrt's kink
    OpCase("norm", lambda a, dim, keepdim: a.norm(dim=dim, keepdim=keepdim),
           lambda a, dim, keepdim: np.sqrt(np.sum(a * a, axis=dim, keepdims=keepdim)),
           reduction(lambda shape: arrays(shape, elements=POSITIVE)), ("sqrt",)),
    OpCase("where", lambda c, a, b: ad.where(c, a, b), np.where, where_examples(), ("where",)),
    OpCase("maximum", ad.maximum, np.maximum, apart_examples(), ("maximum",)),
    OpCase("minimum", ad.minimum, np.minimum, apart_examples(), ("minimum",)),
    OpCase("cat", lambda *xs, dim: ad.cat(xs, dim), lambda *xs, dim: np.concatenate(xs, dim),
           cat_examples(), ("cat",)),
    OpCase("stack", lambda *xs, dim: ad.stack(xs, dim), lambda *xs, dim: np.stack(xs, dim),
           stack_examples(), ("stack",)),
    OpCase("sign", lambda a: a.sign(), np.sign, unary(safe_floats("sign")), ("sign",),
           twice_differentiable=False),
    comparison("lt", lambda a, b: a < b, np.less),
    comparison("le", lambda a, b: a <= b, np.less_equal),
    comparison("gt", lambda a, b: a > b, np.greater),
    comparison("ge", lambda a, b: a >= b, np.greater_equal),
    comparison("eq", lambda a, b: a == b, np.equal),
    comparison("ne", lambda a, b: a != b, np.not_equal),
]
