"""The table of primitives: each one's forward and its vector-Jacobian products, side by side.

A forward takes NumPy arrays (and keyword parameters such as ``dim``) and returns an array;
NumPy's ufuncs, and the forwards that take ``out=``, can write it into a given array instead.
A VJP rule ``rule(g, out, *inputs, **params)`` takes the upstream gradient ``g``, the forward's
output and inputs, and returns the gradient for one input. A rule that takes ``into=`` writes
its result into that array when given one, with NumPy's ``out=`` (a compiled backward lends its
buffers so: on arrays only, never when recording). Rules are written with operators and
``prim.NAME`` (another primitive of this table), so the same rule runs on arrays (plain
backward) and on Tensors (``create_graph=True``). A rule may return a gradient of the broadcast
shape: the graph walker sums it back to the input's shape, so no rule has to. Each rule's
docstring is its formula; the graph renderer and the README show it.

What else is known about an op is declared where it is registered (`autodiff.primitive.Op`):
its kink and the gradient it passes there, its domain, whether it is analytic and smooth, what
its rules read (``saves``), and the names it is offered under as ``autodiff.NAME``.
"""

from __future__ import annotations

import operator
from typing import Any

import numpy as np

from autodiff.primitive import OPS as OPS  # the table itself, filled in below
from autodiff.primitive import Domain, Kink, Loop, Value, prim, primitive, sum_to
from autodiff.primitive import Op as Op

Params = dict[str, object]
Index = Any  # ints, slices, ..., None and integer arrays, as NumPy takes them


def at_zero(**params: object) -> tuple[float, ...]:
    return (0.0,)


def at_bounds(min: float | None = None, max: float | None = None) -> tuple[float, ...]:
    return tuple(b for b in (min, max) if b is not None)


def explain_broadcast(shapes: list[tuple[int, ...]], params: Params) -> str | None:
    """Elementwise ops: name the shapes that do not broadcast."""
    try:
        np.broadcast_shapes(*shapes)
    except ValueError:
        listed = " and ".join(str(s) for s in shapes)
        return (f"cannot broadcast shapes {listed} (aligned from the right, each dimension "
                "must be equal or 1)")
    return None


# ---------------------------------------------------------------- arithmetic (broadcasting)
def add_da(g: Value, out: Value, a: Value, b: Value) -> Value:
    """dA = G"""
    return g


def add_db(g: Value, out: Value, a: Value, b: Value) -> Value:
    """dB = G"""
    return g


def sub_db(g: Value, out: Value, a: Value, b: Value) -> Value:
    """dB = −G"""
    return -g


def mul_da(g: Value, out: Value, a: Value, b: Value) -> Value:
    """dA = G·B"""
    return g * b


def mul_db(g: Value, out: Value, a: Value, b: Value) -> Value:
    """dB = G·A"""
    return g * a


def div_da(g: Value, out: Value, a: Value, b: Value) -> Value:
    """dA = G / B"""
    return g / b


def div_db(g: Value, out: Value, a: Value, b: Value) -> Value:
    """dB = −G·A / B² = −G·out / B"""
    return -g * out / b


def neg_vjp(g: Value, out: Value, x: Value) -> Value:
    """dx = −G"""
    return -g


def pow_da(g: Value, out: Value, a: Value, b: Value) -> Value:
    """dA = G·B·A^(B−1)   (0 where A = B = 0, as PyTorch: A⁰ = 1 is constant)"""
    # x ** 2 in a plain backward: 2·G·A, no power taken (the same bits: doubling is exact)
    if type(b) is np.ndarray and b.ndim == 0 and b.item() == 2:
        return g * (2 * a)
    # where A = B = 0, B·A^(B−1) is 0·∞: the exponent is raised to 1 there, giving 0
    exponent = b - 1 + ((np.asarray(a) == 0) & (np.asarray(b) == 0))
    return g * b * a ** exponent


def pow_db(g: Value, out: Value, a: Value, b: Value) -> Value:
    """dB = G·A^B·ln A"""
    return g * out * prim.log(a)


BROADCASTING = dict(elementwise=True, explain=explain_broadcast)
ADD = primitive("add", np.add, add_da, add_db, saves=(), symbol="+",
                loop=Loop("a + b", ("g", "g")), **BROADCASTING)
SUB = primitive("sub", np.subtract, add_da, sub_db, saves=(), symbol="-",
                loop=Loop("a - b", ("g", "-g")), **BROADCASTING)
MUL = primitive("mul", np.multiply, mul_da, mul_db, saves=(0, 1), symbol="*",
                loop=Loop("a * b", ("g * b", "g * a")), **BROADCASTING)
DIV = primitive("div", np.divide, div_da, div_db, domain=Domain(nonzero=(1,)),
                saves=(1, "out"), symbol="/", loop=Loop("a / b", ("g / b", "-g * out / b")),
                **BROADCASTING)
NEG = primitive("neg", np.negative, neg_vjp, saves=(), symbol="-", elementwise=True,
                loop=Loop("-x", ("-g",)))
POW = primitive("pow", operator.pow, pow_da, pow_db,  # a ** b: NumPy squares a ** 2 fast
                domain=Domain(positive=(0,), moderate=(1,)), symbol="**",
                loop=Loop("a * a if b == 2 else a ** b",  # the same bits as pow_da's cases:
                          ("g * (2 * a) if b == 2 else g * b * (a ** (b - 1) if a != 0 or b != 0"
                           " else 1)", "g * out * np.log(a)")),
                **BROADCASTING)


def maximum_da(g: Value, out: Value, a: Value, b: Value) -> Value:
    """dA = G·([A > B] + ½[A = B])   (ties share the gradient, as max)"""
    return g * ((a > b) + (a == b) * 0.5)


def maximum_db(g: Value, out: Value, a: Value, b: Value) -> Value:
    """dB = G·([B > A] + ½[A = B])"""
    return g * ((b > a) + (a == b) * 0.5)


def minimum_da(g: Value, out: Value, a: Value, b: Value) -> Value:
    """dA = G·([A < B] + ½[A = B])   (ties share the gradient, as min)"""
    return g * ((a < b) + (a == b) * 0.5)


def minimum_db(g: Value, out: Value, a: Value, b: Value) -> Value:
    """dB = G·([B < A] + ½[A = B])"""
    return g * ((b < a) + (a == b) * 0.5)


MAXIMUM = primitive("maximum", np.maximum, maximum_da, maximum_db, analytic=False, smooth=False,
                    kink=Kink("A = B", "shared equally, ½ each"), saves=(0, 1),
                    loop=Loop("np.maximum(a, b)", ("g * ((a > b) + (a == b) * 0.5)",
                                                   "g * ((b > a) + (a == b) * 0.5)")),
                    functions=("maximum",), **BROADCASTING)
MINIMUM = primitive("minimum", np.minimum, minimum_da, minimum_db, analytic=False, smooth=False,
                    kink=Kink("A = B", "shared equally, ½ each"), saves=(0, 1),
                    loop=Loop("np.minimum(a, b)", ("g * ((a < b) + (a == b) * 0.5)",
                                                   "g * ((b < a) + (a == b) * 0.5)")),
                    functions=("minimum",), **BROADCASTING)


# ---------------------------------------------------------------- matmul
def _as_matrices(g: Value, a: Value, b: Value) -> tuple[Value, Value, Value]:
    """Promote 1-D operands as np.matmul does: a → row (1, n), b → column (n, 1); g to match."""
    if b.ndim == 1:
        b, g = b.reshape(b.shape + (1,)), g.reshape(g.shape + (1,))
    if a.ndim == 1:
        a, g = a.reshape((1,) + a.shape), g.reshape(g.shape[:-1] + (1,) + g.shape[-1:])
    return g, a, b


def matmul_da(g: Value, out: Value, a: Value, b: Value, into: Value = None) -> Value:
    """dA = G·Bᵀ"""
    if a.ndim == b.ndim == 2:  # the common case, without the general case's reshapes
        return g @ b.T if into is None else np.matmul(g, b.T, out=into)
    g2, a2, b2 = _as_matrices(g, a, b)
    return sum_to(g2 @ b2.mT, a2.shape).reshape(a.shape)


def matmul_db(g: Value, out: Value, a: Value, b: Value, into: Value = None) -> Value:
    """dB = Aᵀ·G"""
    if a.ndim == b.ndim == 2:
        return a.T @ g if into is None else np.matmul(a.T, g, out=into)
    g2, a2, b2 = _as_matrices(g, a, b)
    return sum_to(a2.mT @ g2, b2.shape).reshape(b.shape)


def matmul_ja(da: Value, out: Value, a: Value, b: Value) -> Value:
    """d out = dA·B"""
    return da @ b


def matmul_jb(db: Value, out: Value, a: Value, b: Value) -> Value:
    """d out = A·dB"""
    return a @ db


def explain_matmul(shapes: list[tuple[int, ...]], params: Params) -> str:
    a, b = shapes
    if not a or not b:
        return f"both operands need at least 1 dimension, got {a} and {b}"
    inner_a, inner_b = a[-1], b[-2:][0]  # b's second-to-last dimension, or its only one
    if inner_a != inner_b:
        return (f"cannot multiply {a} by {b}: the last dimension of the first ({inner_a}) must "
                f"equal the {'second-to-last' if len(b) >= 2 else 'only'} dimension of the "
                f"second ({inner_b})")
    return f"cannot broadcast the batch dimensions of {a} and {b}"


MATMUL = primitive("matmul", np.matmul, matmul_da, matmul_db, jvps=(matmul_ja, matmul_jb),
                   saves=(0, 1), symbol="@",
                   functions=("matmul",), explain=explain_matmul)


# ---------------------------------------------------------------- elementwise
def exp_vjp(g: Value, out: Value, x: Value) -> Value:
    """dx = G·eˣ = G·out"""
    return g * out


def log_vjp(g: Value, out: Value, x: Value) -> Value:
    """dx = G / x"""
    return g / x


def sqrt_vjp(g: Value, out: Value, x: Value) -> Value:
    """dx = G / (2√x)"""
    return g / (2 * out)


def abs_vjp(g: Value, out: Value, x: Value) -> Value:
    """dx = G·sign(x)   (0 at x = 0)"""
    return g * prim.sign(x)


def relu_forward(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    return np.maximum(x, 0, out=out)


def relu_vjp(g: Value, out: Value, x: Value, into: Value = None) -> Value:
    """dx = G·[x > 0]   (0 at x = 0)"""
    return g * (x > 0) if into is None else np.multiply(g, x > 0, out=into)


def clamp_forward(x: np.ndarray, min: float | None, max: float | None,
                  out: np.ndarray | None = None) -> np.ndarray:
    return np.clip(x, min, max, out=out)


def clamp_vjp(g: Value, out: Value, x: Value, min: float | None, max: float | None) -> Value:
    """dx = G·[min ≤ x ≤ max]   (bounds included)"""
    if min is not None:
        g = g * (x >= min)
    if max is not None:
        g = g * (x <= max)
    return g


def clamp_loop(min: float | None, max: float | None) -> str:
    """clamp in a fused loop: np.clip's bounds, each only where given."""
    text = "x" if min is None else f"np.maximum(x, {_source(min)})"
    return text if max is None else f"np.minimum({text}, {_source(max)})"


def clamp_vjp_loop(min: float | None, max: float | None) -> str:
    return "g" + (f" * (x >= {_source(min)})" if min is not None else "") + (
        f" * (x <= {_source(max)})" if max is not None else "")


def _source(number: float) -> str:
    """A bound as loop source: ``np.inf`` where repr would say ``inf``."""
    return {np.inf: "np.inf", -np.inf: "-np.inf"}.get(number, repr(float(number)))


def sigmoid_forward(x: np.ndarray) -> np.ndarray:
    return np.exp(-np.logaddexp(0, -x))  # 1 / (1 + e⁻ˣ) without overflow for x ≪ 0


def sigmoid_vjp(g: Value, out: Value, x: Value) -> Value:
    """dx = G·σ(x)·(1 − σ(x))"""
    return g * out * (1 - out)


def tanh_vjp(g: Value, out: Value, x: Value) -> Value:
    """dx = G·(1 − tanh²x)"""
    return g * (1 - out * out)


def sin_vjp(g: Value, out: Value, x: Value) -> Value:
    """dx = G·cos x"""
    return g * prim.cos(x)


def cos_vjp(g: Value, out: Value, x: Value) -> Value:
    """dx = −G·sin x"""
    return -g * prim.sin(x)


def to_forward(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return x.astype(dtype)


def to_vjp(g: Value, out: Value, x: Value, dtype: np.dtype) -> Value:
    """dx = G, back in x's dtype"""
    return prim.to(g, x.dtype)


def to_jvp(dx: Value, out: Value, x: Value, dtype: np.dtype) -> Value:
    """d out = dx, in the new dtype"""
    return prim.to(dx, dtype)


UNARY = dict(elementwise=True)
EXP = primitive("exp", np.exp, exp_vjp, domain=Domain(moderate=(0,)), saves=("out",),
                functions=("exp",), loop=Loop("np.exp(x)", ("g * out",)), **UNARY)
LOG = primitive("log", np.log, log_vjp, domain=Domain(positive=(0,)), saves=(0,),
                functions=("log",), loop=Loop("np.log(x)", ("g / x",)), **UNARY)
SQRT = primitive("sqrt", np.sqrt, sqrt_vjp, domain=Domain(positive=(0,)), saves=("out",),
                 loop=Loop("np.sqrt(x)", ("g / (2 * out)",)), **UNARY)
ABS = primitive("abs", np.abs, abs_vjp, kink=Kink("x = 0", 0.0, at_zero), analytic=False,
                smooth=False, saves=(0,), loop=Loop("np.abs(x)", ("g * np.sign(x)",)), **UNARY)
SIGN = primitive("sign", np.sign, None, kink=Kink("x = 0", 0.0, at_zero), analytic=False,
                 smooth=False, saves=(), loop=Loop("np.sign(x)", (None,)),
                 **UNARY)  # piecewise constant: no gradient flows
RELU = primitive("relu", relu_forward, relu_vjp, kink=Kink("x = 0", 0.0, at_zero),
                 analytic=False, smooth=False, saves=(0,), functions=("relu",),
                 loop=Loop("np.maximum(x, 0)", ("g * (x > 0)",)), **UNARY)
CLAMP = primitive("clamp", clamp_forward, clamp_vjp,
                  kink=Kink("x = min or x = max", 1.0, at_bounds), analytic=False, smooth=False,
                  saves=(0,), functions=("clamp",), loop=Loop(clamp_loop, (clamp_vjp_loop,)),
                  **UNARY)
SIGMOID = primitive("sigmoid", sigmoid_forward, sigmoid_vjp, analytic=False, saves=("out",),
                    functions=("sigmoid",),  # logaddexp has no complex form
                    loop=Loop("np.exp(-np.logaddexp(0, -x))", ("g * out * (1 - out)",)), **UNARY)
TANH = primitive("tanh", np.tanh, tanh_vjp, saves=("out",), functions=("tanh",),
                 loop=Loop("np.tanh(x)", ("g * (1 - out * out)",)), **UNARY)
SIN = primitive("sin", np.sin, sin_vjp, saves=(0,), functions=("sin",),
                loop=Loop("np.sin(x)", ("g * np.cos(x)",)), **UNARY)
def clone_forward(x: np.ndarray) -> np.ndarray:
    return x.copy()


def clone_vjp(g: Value, out: Value, x: Value) -> Value:
    """dx = G"""
    return g


CLONE = primitive("clone", clone_forward, clone_vjp, saves=(), functions=("clone",),
                  loop=Loop("x", ("g",)), **UNARY)
TO = primitive("to", to_forward, to_vjp, jvps=(to_jvp,), saves=(), analytic=False,
               **UNARY)  # analytic=False: a cast to a real dtype drops the complex step
COS = primitive("cos", np.cos, cos_vjp, saves=(0,), functions=("cos",),
                loop=Loop("np.cos(x)", ("-g * np.sin(x)",)), **UNARY)


# ---------------------------------------------------------------- reductions
def keepdim_shape(shape: tuple[int, ...], dim: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape of a reduction over `dim` (normalized, or None for all) with keepdim=True."""
    return tuple(1 if dim is None or i in dim else n for i, n in enumerate(shape))


def sum_forward(x: np.ndarray, dim: tuple[int, ...] | None, keepdim: bool) -> np.ndarray:
    return x.sum(axis=dim, keepdims=keepdim)


def sum_vjp(g: Value, out: Value, x: Value, dim: tuple[int, ...] | None, keepdim: bool) -> Value:
    """dx = G copied back over the summed dims"""
    if dim is not None and not keepdim:  # the summed dims back, as 1s (a full sum broadcasts)
        g = g.reshape(keepdim_shape(x.shape, dim))
    return prim.broadcast_to(g, x.shape)


def sum_jvp(dx: Value, out: Value, x: Value, dim: tuple[int, ...] | None, keepdim: bool) -> Value:
    """d out = Σ dx over the summed dims"""
    return prim.sum(dx, dim, keepdim)


def max_forward(x: np.ndarray, dim: tuple[int, ...] | None, keepdim: bool) -> np.ndarray:
    return x.max(axis=dim, keepdims=keepdim)


def min_forward(x: np.ndarray, dim: tuple[int, ...] | None, keepdim: bool) -> np.ndarray:
    return x.min(axis=dim, keepdims=keepdim)


def extremum_vjp(g: Value, out: Value, x: Value, dim: tuple[int, ...] | None,
                 keepdim: bool) -> Value:
    """dx = G at the maximum (minimum), shared equally between ties"""
    shape = keepdim_shape(x.shape, dim)
    is_max = x == out.reshape(shape)
    return g.reshape(shape) * is_max / prim.sum(is_max, dim, keepdim=True)


def extremum_jvp(dx: Value, out: Value, x: Value, dim: tuple[int, ...] | None,
                 keepdim: bool) -> Value:
    """d out = dx at the maximum (minimum), averaged over ties"""
    is_extreme = x == out.reshape(keepdim_shape(x.shape, dim))
    return prim.sum(dx * is_extreme, dim, keepdim) / prim.sum(is_extreme, dim, keepdim)


EXTREMUM_VJP_LOOP = "n = reduce_sum(x == out); g * (x == out) / n"  # ties share G equally
SUM = primitive("sum", sum_forward, sum_vjp, jvps=(sum_jvp,), saves=(),
                functions=("sum", "mean"), loop=Loop("reduce_sum(x)", ("g",), reduced=("g",)))
MAX = primitive("max", max_forward, extremum_vjp, jvps=(extremum_jvp,), analytic=False,
                smooth=False,
                kink=Kink("ties", "shared equally between the tied maxima (as torch.amax)"),
                loop=Loop("reduce_max(x)", (EXTREMUM_VJP_LOOP,), reduced=("g", "out")))
MIN = primitive("min", min_forward, extremum_vjp, jvps=(extremum_jvp,), analytic=False,
                smooth=False,
                kink=Kink("ties", "shared equally between the tied minima (as torch.amin)"),
                loop=Loop("reduce_min(x)", (EXTREMUM_VJP_LOOP,), reduced=("g", "out")))


# ---------------------------------------------------------------- softmax
def softmax_forward(x: np.ndarray, dim: int, out: np.ndarray | None = None) -> np.ndarray:
    e = np.exp(x - x.max(axis=dim, keepdims=True))  # shifting by the max: same result, no overflow
    return np.divide(e, e.sum(axis=dim, keepdims=True), out=out)


def softmax_vjp(g: Value, s: Value, x: Value, dim: int) -> Value:
    """dx = s·(G − Σ G·s)   (Jᵀg with the Jacobian J = diag(s) − s·sᵀ)"""
    return s * (g - prim.sum(g * s, (dim,), keepdim=True))


def log_softmax_forward(x: np.ndarray, dim: int) -> np.ndarray:
    shifted = x - x.max(axis=dim, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))


def log_softmax_vjp(g: Value, out: Value, x: Value, dim: int) -> Value:
    """dx = G − softmax(x)·Σ G"""
    return g - prim.exp(out) * prim.sum(g, (dim,), keepdim=True)


def log_softmax_jvp(dx: Value, out: Value, x: Value, dim: int) -> Value:
    """d out = dx − Σ softmax(x)·dx"""
    return dx - prim.sum(prim.exp(out) * dx, (dim,), keepdim=True)


SOFTMAX = primitive("softmax", softmax_forward, softmax_vjp,
                    jvps=(softmax_vjp,),  # J is symmetric: Jᵀ·dx = J·dx, one rule for both
                    saves=("out",), functions=("softmax",),
                    loop=Loop("m = reduce_max(x); e = np.exp(x - m); e / reduce_sum(e)",
                              ("t = reduce_sum(g * s); s * (g - t)",)))
LOG_SOFTMAX = primitive("log_softmax", log_softmax_forward, log_softmax_vjp,
                        jvps=(log_softmax_jvp,), saves=("out",), functions=("log_softmax",),
                        loop=Loop("z = x - reduce_max(x); z - np.log(reduce_sum(np.exp(z)))",
                                  ("g - np.exp(out) * reduce_sum(g)",)))


# ---------------------------------------------------------------- shape and indexing
def reshape_forward(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    return x.reshape(shape)


def reshape_vjp(g: Value, out: Value, x: Value, shape: tuple[int, ...]) -> Value:
    """dx = G reshaped back"""
    return g.reshape(x.shape)


def reshape_jvp(dx: Value, out: Value, x: Value, shape: tuple[int, ...]) -> Value:
    """d out = dx reshaped"""
    return dx.reshape(shape)


def explain_reshape(shapes: list[tuple[int, ...]], params: Params) -> str:
    (shape,) = shapes
    return (f"cannot reshape a tensor of shape {shape} ({int(np.prod(shape))} elements) into "
            f"{params['shape']}")


def permute_forward(x: np.ndarray, dims: tuple[int, ...]) -> np.ndarray:
    return np.transpose(x, dims)


def permute_vjp(g: Value, out: Value, x: Value, dims: tuple[int, ...]) -> Value:
    """dx = G with the inverse permutation"""
    return prim.permute(g, tuple(int(i) for i in np.argsort(dims)))


def permute_jvp(dx: Value, out: Value, x: Value, dims: tuple[int, ...]) -> Value:
    """d out = dx permuted"""
    return prim.permute(dx, dims)


def permute_label(dims: tuple[int, ...]) -> str:
    """``.T`` when it reverses every dim, ``transpose(i, j)`` when it swaps two."""
    if dims == tuple(reversed(range(len(dims)))) and len(dims) > 1:
        return ".T"
    moved = [i for i, d in enumerate(dims) if d != i]
    return f"transpose{tuple(moved)}" if len(moved) == 2 else f"permute{dims}"


def broadcast_to_forward(x: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if x.ndim == 0:  # one number everywhere (a loss's gradient): np.broadcast_to's view,
        # made directly (its checks cost three times the view itself)
        view = np.ndarray(shape, x.dtype, x, strides=(0,) * len(shape))
        view.flags.writeable = False
        return view
    return np.broadcast_to(x, shape)  # a read-only view, as NumPy's and PyTorch's expand: no copy


def broadcast_to_vjp(g: Value, out: Value, x: Value, shape: tuple[int, ...]) -> Value:
    """dx = G summed over the broadcast dims (the walker sums it to x's shape)"""
    return g


def broadcast_to_jvp(dx: Value, out: Value, x: Value, shape: tuple[int, ...]) -> Value:
    """d out = dx broadcast"""
    return prim.broadcast_to(dx, shape)


def explain_broadcast_to(shapes: list[tuple[int, ...]], params: Params) -> str:
    return f"cannot broadcast shape {shapes[0]} to {params['shape']}"


def index_forward(x: np.ndarray, index: Index) -> np.ndarray:
    return x[index]


def index_vjp(g: Value, out: Value, x: Value, index: Index) -> Value:
    """dx = zeros with G added at the index (repeats accumulate)"""
    return prim.index_add(g, x.shape, index)


def index_jvp(dx: Value, out: Value, x: Value, index: Index) -> Value:
    """d out = dx[index]"""
    return dx[index]


def index_add_forward(g: np.ndarray, shape: tuple[int, ...], index: Index) -> np.ndarray:
    """zeros(shape) with g added at index (repeated indices accumulate)."""
    out = np.zeros(shape, dtype=g.dtype)
    parts = index if isinstance(index, tuple) else (index,)
    if any(isinstance(p, np.ndarray) for p in parts):
        np.add.at(out, index, g)  # unbuffered: a repeated index adds once per occurrence
    else:
        out[index] = g  # basic indexing never repeats an element
    return out


def index_add_vjp(g: Value, out: Value, x: Value, shape: tuple[int, ...], index: Index) -> Value:
    """dx = G[index]"""
    return g[index]


def index_add_jvp(dg: Value, out: Value, g: Value, shape: tuple[int, ...], index: Index) -> Value:
    """d out = zeros with dg added at the index"""
    return prim.index_add(dg, shape, index)


def index_put_forward(x: np.ndarray, v: np.ndarray, index: Index) -> np.ndarray:
    """A copy of x with v written at the index (``t[index] = v``; v broadcasts)."""
    out = x.copy()
    out[index] = v
    return out


def index_put_dx(g: Value, out: Value, x: Value, v: Value, index: Index) -> Value:
    """dx = G, with 0 where v was written"""
    return prim.index_put(g, 0.0, index)


def index_put_dv(g: Value, out: Value, x: Value, v: Value, index: Index) -> Value:
    """dv = G[index] (summed back to v's shape where v was broadcast)"""
    return g[index]


def index_put_jv(dv: Value, out: Value, x: Value, v: Value, index: Index) -> Value:
    """d out = zeros with dv written at the index"""
    return prim.index_add(prim.broadcast_to(dv, out[index].shape), out.shape, index)


def where_forward(condition: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(condition, a, b)


def where_da(g: Value, out: Value, condition: Value, a: Value, b: Value) -> Value:
    """dA = G where the condition holds, else 0"""
    return prim.where(condition, g, 0)


def where_db(g: Value, out: Value, condition: Value, a: Value, b: Value) -> Value:
    """dB = G where the condition fails, else 0"""
    return prim.where(condition, 0, g)


def cat_forward(*xs: np.ndarray, dim: int) -> np.ndarray:
    return np.concatenate(xs, axis=dim)


def cat_place(xs: tuple[Value, ...], dim: int, which: int) -> tuple[slice, ...]:
    """The index of the slice of cat's output that x_k filled."""
    start = sum(x.shape[dim] for x in xs[:which])
    return (slice(None),) * dim + (slice(start, start + xs[which].shape[dim]),)


def cat_vjp(g: Value, out: Value, *xs: Value, dim: int, which: int) -> Value:
    """dx_k = the slice of G that x_k filled"""
    return g[cat_place(xs, dim, which)]


def cat_jvp(dx: Value, out: Value, *xs: Value, dim: int, which: int) -> Value:
    """d out = dx_k in x_k's slice, zeros elsewhere"""
    return prim.index_add(dx, out.shape, cat_place(xs, dim, which))


def explain_cat(shapes: list[tuple[int, ...]], params: Params) -> str:
    listed = ", ".join(str(s) for s in shapes)
    return f"cannot join shapes {listed} along dim {params['dim']}: all other dims must match"


def stack_forward(*xs: np.ndarray, dim: int) -> np.ndarray:
    return np.stack(xs, axis=dim)


def stack_vjp(g: Value, out: Value, *xs: Value, dim: int, which: int) -> Value:
    """dx_k = G at index k along the new dim"""
    return g[(slice(None),) * dim + (which,)]


def stack_jvp(dx: Value, out: Value, *xs: Value, dim: int, which: int) -> Value:
    """d out = dx_k at index k along the new dim, zeros elsewhere"""
    return prim.index_add(dx, out.shape, (slice(None),) * dim + (which,))


def explain_stack(shapes: list[tuple[int, ...]], params: Params) -> str:
    listed = ", ".join(str(s) for s in shapes)
    return f"cannot stack shapes {listed}: they must all be the same"


RESHAPE = primitive("reshape", reshape_forward, reshape_vjp, jvps=(reshape_jvp,), saves=(),
                    explain=explain_reshape)
PERMUTE = primitive("permute", permute_forward, permute_vjp, jvps=(permute_jvp,), saves=(),
                    label=permute_label)
BROADCAST_TO = primitive("broadcast_to", broadcast_to_forward, broadcast_to_vjp,
                         jvps=(broadcast_to_jvp,), saves=(), explain=explain_broadcast_to,
                         loop=Loop("x"))  # each element reads x where it broadcasts from
INDEX = primitive("index", index_forward, index_vjp, jvps=(index_jvp,), saves=())
INDEX_ADD = primitive("index_add", index_add_forward, index_add_vjp, jvps=(index_add_jvp,),
                      saves=())
CAT = primitive("cat", cat_forward, cat_vjp, jvps=(cat_jvp,), variadic=True, saves=(),
                functions=("cat",),
                explain=explain_cat)
STACK = primitive("stack", stack_forward, stack_vjp, jvps=(stack_jvp,), variadic=True, saves=(),
                  functions=("stack",), explain=explain_stack)
INDEX_PUT = primitive("index_put", index_put_forward, index_put_dx, index_put_dv,
                      jvps=(index_put_dx, index_put_jv), saves=())
WHERE = primitive("where", where_forward, None, where_da, where_db, saves=(0,),
                  functions=("where",), **BROADCASTING)


# ---------------------------------------------------------------- values that pass no gradient
# Comparisons, detach and a cast to an integer or bool dtype give constants: `tensor.constant`
# applies them without recording. They are `Op`s all the same, kept out of the table (they have
# no rules to check), so that what watches every op sees them: a trace replays them.

def detach_forward(x: np.ndarray) -> np.ndarray:
    return x  # the same array: a detached tensor shares its data, as in PyTorch


def cast_forward(x: np.ndarray, dtype: np.dtype) -> np.ndarray:
    return x.astype(dtype)


LT, LE, GT, GE, EQ, NE = (
    Op(name, forward, (None, None), elementwise=True, explain=explain_broadcast)
    for name, forward in [("lt", np.less), ("le", np.less_equal), ("gt", np.greater),
                          ("ge", np.greater_equal), ("eq", np.equal), ("ne", np.not_equal)])
DETACH = Op("detach", detach_forward, (None,))


def argmax_forward(x: np.ndarray, dim: int | None, keepdim: bool) -> np.ndarray:
    return np.argmax(x, axis=dim, keepdims=keepdim)


def argmin_forward(x: np.ndarray, dim: int | None, keepdim: bool) -> np.ndarray:
    return np.argmin(x, axis=dim, keepdims=keepdim)


FLOOR_DIVIDE = Op("floor_divide", np.floor_divide, (None, None), elementwise=True,
                  explain=explain_broadcast)  # // and %: piecewise, given no gradient here
REMAINDER = Op("remainder", np.remainder, (None, None), elementwise=True, explain=explain_broadcast)
ARGMAX = Op("argmax", argmax_forward, (None,))  # indices: piecewise constant, no gradient
ARGMIN = Op("argmin", argmin_forward, (None,))
CAST = Op("cast", cast_forward, (None,))
