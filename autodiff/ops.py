"""The table of primitives: each one's forward and its vector-Jacobian products, side by side.

A forward takes NumPy arrays (and keyword parameters such as ``dim``) and returns an array.
A VJP rule ``rule(g, out, *inputs, **params)`` takes the upstream gradient ``g``, the forward's
output and inputs, and returns the gradient for one input. Rules are written with operators and
`autodiff.xp`, so the same rule runs on arrays (plain backward) and on Tensors
(``create_graph=True``). A rule may return a gradient of the broadcast shape: the graph walker
sums it back to the input's shape, so no rule has to. Each rule's docstring is its formula; the
graph renderer shows it.

Kinks (points where an op is not differentiable) are declared with the op, with the subgradient
it returns there; `autodiff.testing` steers inputs away from them and asserts the declaration.
"""

from __future__ import annotations

import operator
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from autodiff import xp


@dataclass(frozen=True)
class Kink:
    """Points where an elementwise op is not differentiable, and the gradient it passes there."""

    points: Callable[..., tuple[float, ...]]  # from the op's parameters, e.g. clamp's min, max
    gradient: float  # d out / d x returned exactly at those points


@dataclass(frozen=True)
class Op:
    name: str
    forward: Callable[..., np.ndarray]
    vjps: tuple[Callable | None, ...]  # one rule per input; None: not differentiable there
    kinks: str = ""  # in words: where the op is not differentiable, and what it returns there
    kink: Kink | None = None  # the same, for tests to steer around and to assert
    ties: bool = False  # not differentiable where inputs tie (max)
    domain: str = ""  # in words: inputs outside which the op or its gradient is undefined
    positive: tuple[int, ...] = ()  # inputs that must be > 0
    nonzero: tuple[int, ...] = ()  # inputs that must be ≠ 0
    # what the VJP rules read besides shapes (input positions, "out"; None: all inputs and the
    # output): backward refuses to run them when one of these was modified in place since
    saves: tuple[int | str, ...] | None = None

    def rules(self) -> list[str]:
        """The formula of each input's gradient rule (its docstring)."""
        return [(rule.__doc__ or "").strip() for rule in self.vjps if rule is not None]


OPS: dict[str, Op] = {}


def primitive(name: str, forward: Callable, *vjps: Callable | None, **declared) -> Op:
    """Register a primitive: its forward, one VJP rule per input, and its kinks and domain."""
    op = Op(name, forward, vjps, **declared)
    OPS[name] = op
    return op


def at_zero(**params) -> tuple[float, ...]:
    return (0.0,)


def at_bounds(min=None, max=None) -> tuple[float, ...]:
    return tuple(b for b in (min, max) if b is not None)


# ---------------------------------------------------------------- arithmetic (broadcasting)
def add_da(g, out, a, b):
    """dA = G"""
    return g


def add_db(g, out, a, b):
    """dB = G"""
    return g


def sub_db(g, out, a, b):
    """dB = −G"""
    return -g


def mul_da(g, out, a, b):
    """dA = G·B"""
    return g * b


def mul_db(g, out, a, b):
    """dB = G·A"""
    return g * a


def div_da(g, out, a, b):
    """dA = G / B"""
    return g / b


def div_db(g, out, a, b):
    """dB = −G·A / B² = −G·out / B"""
    return -g * out / b


def neg_vjp(g, out, x):
    """dx = −G"""
    return -g


def pow_da(g, out, a, b):
    """dA = G·B·A^(B−1)   (0 where A = B = 0, as PyTorch: A⁰ = 1 is constant)"""
    exponent = b - 1
    if (np.asarray(b) == 0).any():  # B·A^(B−1) is 0·∞ where A = 0 too: take A¹ there instead
        exponent = exponent + ((np.asarray(a) == 0) & (np.asarray(b) == 0))
    return g * b * a ** exponent


def pow_db(g, out, a, b):
    """dB = G·A^B·ln A"""
    return g * out * xp.log(a)


ADD = primitive("add", np.add, add_da, add_db, saves=())
SUB = primitive("sub", np.subtract, add_da, sub_db, saves=())
MUL = primitive("mul", np.multiply, mul_da, mul_db, saves=(0, 1))
DIV = primitive("div", np.divide, div_da, div_db, domain="B ≠ 0", nonzero=(1,),
                saves=(1, "out"))
NEG = primitive("neg", np.negative, neg_vjp, saves=())
POW = primitive("pow", operator.pow, pow_da, pow_db,  # a ** b: NumPy squares a ** 2 fast
                domain="A > 0 for a non-integer exponent and for dB; A ≠ 0 where B < 1",
                positive=(0,))


# ---------------------------------------------------------------- matmul
def _as_matrices(g, a, b):
    """Promote 1-D operands as np.matmul does: a → row (1, n), b → column (n, 1); g to match."""
    if b.ndim == 1:
        b, g = b.reshape(b.shape + (1,)), g.reshape(g.shape + (1,))
    if a.ndim == 1:
        a, g = a.reshape((1,) + a.shape), g.reshape(g.shape[:-1] + (1,) + g.shape[-1:])
    return g, a, b


def matmul_da(g, out, a, b):
    """dA = G·Bᵀ"""
    if a.ndim == b.ndim == 2:  # the common case, without the general case's reshapes
        return g @ b.T
    g2, a2, b2 = _as_matrices(g, a, b)
    return xp.sum_to(g2 @ b2.mT, a2.shape).reshape(a.shape)


def matmul_db(g, out, a, b):
    """dB = Aᵀ·G"""
    if a.ndim == b.ndim == 2:
        return a.T @ g
    g2, a2, b2 = _as_matrices(g, a, b)
    return xp.sum_to(a2.mT @ g2, b2.shape).reshape(b.shape)


MATMUL = primitive("matmul", np.matmul, matmul_da, matmul_db, saves=(0, 1))


# ---------------------------------------------------------------- elementwise
def exp_vjp(g, out, x):
    """dx = G·eˣ = G·out"""
    return g * out


def log_vjp(g, out, x):
    """dx = G / x"""
    return g / x


def sqrt_vjp(g, out, x):
    """dx = G / (2√x)"""
    return g / (2 * out)


def abs_vjp(g, out, x):
    """dx = G·sign(x)   (0 at x = 0)"""
    return g * xp.sign(x)


def relu_forward(x):
    return np.maximum(x, 0)


def relu_vjp(g, out, x):
    """dx = G·[x > 0]   (0 at x = 0)"""
    return g * (x > 0)


def clamp_forward(x, min, max):
    return np.clip(x, min, max)


def clamp_vjp(g, out, x, min, max):
    """dx = G·[min ≤ x ≤ max]   (bounds included)"""
    if min is not None:
        g = g * (x >= min)
    if max is not None:
        g = g * (x <= max)
    return g


def sigmoid_forward(x):
    return np.exp(-np.logaddexp(0, -x))  # 1 / (1 + e⁻ˣ) without overflow for x ≪ 0


def sigmoid_vjp(g, out, x):
    """dx = G·σ(x)·(1 − σ(x))"""
    return g * out * (1 - out)


def tanh_vjp(g, out, x):
    """dx = G·(1 − tanh²x)"""
    return g * (1 - out * out)


EXP = primitive("exp", np.exp, exp_vjp, saves=("out",))
LOG = primitive("log", np.log, log_vjp, domain="x > 0", positive=(0,), saves=(0,))
SQRT = primitive("sqrt", np.sqrt, sqrt_vjp, domain="x > 0 (the gradient is infinite at 0)",
                 positive=(0,), saves=("out",))
ABS = primitive("abs", np.abs, abs_vjp, kinks="x = 0: gradient 0 (as PyTorch)",
                kink=Kink(at_zero, 0.0), saves=(0,))
RELU = primitive("relu", relu_forward, relu_vjp, kinks="x = 0: gradient 0 (as PyTorch)",
                 kink=Kink(at_zero, 0.0), saves=(0,))
CLAMP = primitive("clamp", clamp_forward, clamp_vjp,
                  kinks="x = min or x = max: gradient passes (1), as PyTorch",
                  kink=Kink(at_bounds, 1.0), saves=(0,))
SIGMOID = primitive("sigmoid", sigmoid_forward, sigmoid_vjp, saves=("out",))
TANH = primitive("tanh", np.tanh, tanh_vjp, saves=("out",))


# ---------------------------------------------------------------- reductions
def keepdim_shape(shape: tuple[int, ...], dim: tuple[int, ...] | None) -> tuple[int, ...]:
    """The shape of a reduction over `dim` (normalized, or None for all) with keepdim=True."""
    return tuple(1 if dim is None or i in dim else n for i, n in enumerate(shape))


def sum_forward(x, dim, keepdim):
    return x.sum(axis=dim, keepdims=keepdim)


def sum_vjp(g, out, x, dim, keepdim):
    """dx = G copied back over the summed dims"""
    return xp.broadcast_to(g.reshape(keepdim_shape(x.shape, dim)), x.shape)


def max_forward(x, dim, keepdim):
    return x.max(axis=dim, keepdims=keepdim)


def max_vjp(g, out, x, dim, keepdim):
    """dx = G at the maximum, shared equally between ties"""
    shape = keepdim_shape(x.shape, dim)
    is_max = x == out.reshape(shape)
    return g.reshape(shape) * is_max / xp.sum(is_max, dim, keepdim=True)


SUM = primitive("sum", sum_forward, sum_vjp, saves=())
MAX = primitive("max", max_forward, max_vjp,
                kinks="ties: the gradient is shared equally between the tied maxima "
                      "(as torch.amax and torch.max without dim)", ties=True)


# ---------------------------------------------------------------- softmax
def softmax_forward(x, dim):
    e = np.exp(x - x.max(axis=dim, keepdims=True))  # shifting by the max: same result, no overflow
    return e / e.sum(axis=dim, keepdims=True)


def softmax_vjp(g, s, x, dim):
    """dx = s·(G − Σ G·s)   (Jᵀg with the Jacobian J = diag(s) − s·sᵀ)"""
    return s * (g - xp.sum(g * s, dim, keepdim=True))


def log_softmax_forward(x, dim):
    shifted = x - x.max(axis=dim, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=dim, keepdims=True))


def log_softmax_vjp(g, out, x, dim):
    """dx = G − softmax(x)·Σ G"""
    return g - xp.exp(out) * xp.sum(g, dim, keepdim=True)


SOFTMAX = primitive("softmax", softmax_forward, softmax_vjp, saves=("out",))
LOG_SOFTMAX = primitive("log_softmax", log_softmax_forward, log_softmax_vjp,
                        saves=("out",))


# ---------------------------------------------------------------- shape and indexing
def reshape_forward(x, shape):
    return x.reshape(shape)


def reshape_vjp(g, out, x, shape):
    """dx = G reshaped back"""
    return g.reshape(x.shape)


def permute_forward(x, dims):
    return np.transpose(x, dims)


def permute_vjp(g, out, x, dims):
    """dx = G with the inverse permutation"""
    return xp.permute(g, tuple(int(i) for i in np.argsort(dims)))


def broadcast_to_forward(x, shape):
    return np.broadcast_to(x, shape)


def broadcast_to_vjp(g, out, x, shape):
    """dx = G summed over the broadcast dims (the walker sums it to x's shape)"""
    return g


def index_forward(x, index):
    return x[index]


def index_vjp(g, out, x, index):
    """dx = zeros with G added at the index (repeats accumulate)"""
    return xp.index_add(g, x.shape, index)


def index_add_forward(g, shape, index):
    return xp.index_add(g, shape, index)


def index_add_vjp(g, out, x, shape, index):
    """dx = G[index]"""
    return g[index]


def where_forward(condition, a, b):
    return np.where(condition, a, b)


def where_da(g, out, condition, a, b):
    """dA = G where the condition holds, else 0"""
    return xp.where(condition, g, 0)


def where_db(g, out, condition, a, b):
    """dB = G where the condition fails, else 0"""
    return xp.where(condition, 0, g)


RESHAPE = primitive("reshape", reshape_forward, reshape_vjp, saves=())
PERMUTE = primitive("permute", permute_forward, permute_vjp, saves=())
BROADCAST_TO = primitive("broadcast_to", broadcast_to_forward, broadcast_to_vjp, saves=())
INDEX = primitive("index", index_forward, index_vjp, saves=())
INDEX_ADD = primitive("index_add", index_add_forward, index_add_vjp, saves=())
WHERE = primitive("where", where_forward, None, where_da, where_db, saves=(0,))
