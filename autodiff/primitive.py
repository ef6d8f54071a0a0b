"""What a primitive is: the `Op` record that `autodiff.ops` fills in, one per primitive.

An `Op` is the only place an op is described: its forward, one VJP rule per input, where it is
not differentiable (`Kink`) and where it is undefined (`Domain`), whether it is analytic (the
complex-step oracle may differentiate it) and smooth (random programs may use it), and the
names under which it is offered as ``autodiff.NAME``. Everything else that lists ops reads them
from ``OPS``.

A rule that needs another primitive calls it as ``prim.NAME(...)``: on NumPy arrays (a plain
backward) that is the primitive's forward, on Tensors (``create_graph=True``) it is recorded,
so the rule can itself be differentiated. ``prim`` is generated from the table as primitives are
registered; the tensor layer tells it how to record (`Dispatch.connect`).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

Value = Any  # what a rule computes with: an ndarray in a plain backward, a Tensor when recorded


@dataclass(frozen=True)
class Kink:
    """Where an op is not differentiable, and the gradient it passes there (as PyTorch).

    `points` gives the kink's locations from the op's parameters (clamp's min and max), so
    tests can put inputs exactly there and assert `gradient`; None means at ties between
    elements (max), where the gradient is shared equally.
    """

    where: str  # in words, e.g. "x = 0"
    gradient: float | str  # d out / d x there: a number, or how it is shared
    points: Callable[..., tuple[float, ...]] | None = None

    def describe(self) -> str:
        return f"at {self.where} the gradient is {self.gradient}"


@dataclass(frozen=True)
class Domain:
    """Inputs (by position) outside whose range the op or its gradient is undefined or
    overflows: the tests and `autodiff.testing.programs` draw values inside it."""

    positive: tuple[int, ...] = ()  # must be > 0
    nonzero: tuple[int, ...] = ()  # must be ≠ 0
    moderate: tuple[int, ...] = ()  # must stay small (|x| ≲ 1), or the output overflows

    def describe(self, names: tuple[str, ...]) -> str:
        parts = [f"{names[i]} > 0" for i in self.positive]
        parts += [f"{names[i]} ≠ 0" for i in self.nonzero]
        parts += [f"{names[i]} moderate" for i in self.moderate]
        return ", ".join(parts)


Recipe = Any  # a loop form: source text, or a function of the op's params giving it (or None)


@dataclass(frozen=True)
class Loop:
    """How the fused backend (`autodiff.fusion`) writes an op inside a generated loop: its
    forward and, per input, its VJP rule, each as scalar Python on one element.

    A recipe is one expression, or steps ``name = expression; ...; expression`` whose last is
    the result. A step may reduce over the op's ``dim``: ``reduce_sum(...)``, ``reduce_max(...)``
    or ``reduce_min(...)`` as its whole right-hand side. The names are the forward's or the
    rule's own parameters (``x``; ``g``, ``out``, ``a``, ``b``) and the op's params (``min``); a
    recipe may be a function of the params instead, giving the text, or None where it has no
    loop form. `reduced`: the inputs of a rule that hold a reduction's result (read as if kept
    with ``keepdim=True``)."""

    forward: Recipe
    vjps: tuple[Recipe, ...] = ()
    reduced: tuple[str, ...] = ()


@dataclass(frozen=True)
class Op:
    """One primitive: its forward, its VJP rules and what is known about it."""

    name: str
    forward: Callable[..., np.ndarray]  # (*arrays, **params) -> array
    vjps: tuple[Callable[..., Value] | None, ...]  # one rule per input; None: no gradient there
    # one JVP rule per input: rule(dx, out, *inputs, **params) is how a tangent dx on that input
    # moves the output (the contributions are added and broadcast to the output's shape)
    jvps: tuple[Callable[..., Value] | None, ...] = ()
    kink: Kink | None = None
    domain: Domain = field(default_factory=Domain)
    analytic: bool = True  # holomorphic in its inputs: the complex step may differentiate it
    smooth: bool = True  # differentiable everywhere in its domain: random programs may use it
    elementwise: bool = False  # applies element by element, broadcasting its inputs
    # takes any number of inputs (cat, stack): its one rule serves each, told which as `which`
    variadic: bool = False
    symbol: str | None = None  # its Python operator (``+``; ``-`` for neg), else a method
    functions: tuple[str, ...] = ()  # offered as autodiff.NAME(t, ...) under these names
    # what the VJP rules read besides shapes (input positions, "out"; None: all inputs and the
    # output): backward refuses to run them when one of these was modified in place since
    saves: tuple[int | str, ...] | None = None
    # extra words for an error when the forward fails: (input shapes, params) -> message
    explain: Callable[..., str | None] | None = None
    # how a drawing names one application of it, from its params (permute of all dims: ".T")
    label: Callable[..., str] | None = None
    loop: Loop | None = None  # how a fused kernel writes it (None: it runs as NumPy there)

    @property
    def params(self) -> tuple[str, ...]:
        """The names of the forward's parameters after its inputs (``dim``, ``keepdim``), without
        ``out``, the array it may write into."""
        if isinstance(self.forward, np.ufunc):
            return ()
        parameters = inspect.signature(self.forward).parameters.values()
        if self.variadic:
            return tuple(p.name for p in parameters if p.kind is p.KEYWORD_ONLY)
        return tuple(p.name for p in parameters if p.name != "out")[len(self.vjps):]

    @property
    def writes_into(self) -> bool:
        """Whether its forward can write its result into a given array, ``out=`` (NumPy's ufuncs
        can, and the forwards that take ``out``): a compiled program reuses such arrays."""
        return isinstance(self.forward, np.ufunc) or (
            "out" in inspect.signature(self.forward).parameters)

    def call_text(self, *operands: str, **params: object) -> str:
        """How Python code applies it, e.g. ``a + b``, ``x.exp()``, ``x.sum(dim=1)``."""
        if self.symbol and len(operands) == 2:
            return f"{operands[0]} {self.symbol} {operands[1]}"
        if self.symbol:
            return f"{self.symbol}{operands[0]}"
        arguments = [*operands[1:], *(f"{k}={v!r}" for k, v in params.items())]
        return f"{operands[0]}.{self.name}({', '.join(arguments)})"

    @property
    def input_names(self) -> tuple[str, ...]:
        """The inputs' names, as the first rule calls them (``a``, ``b``; ``x``)."""
        rule = next((r for r in self.vjps if r is not None), None)
        if rule is None:  # no gradient anywhere (sign)
            return ("x",) if len(self.vjps) == 1 else tuple("abcd"[:len(self.vjps)])
        names = list(inspect.signature(rule).parameters)[2:]  # after (g, out)
        return tuple(names[:len(self.vjps)])

    def formulas(self) -> list[str]:
        """Each input's gradient rule as a formula (its docstring), for viz and the README."""
        return [(rule.__doc__ or "").strip() for rule in self.vjps if rule is not None]

    def describe(self) -> str:
        """Its kink and domain in words (the README's op table and viz show this)."""
        parts = [self.kink.describe()] if self.kink else []
        if domain := self.domain.describe(self.input_names):
            parts.append("defined for " + domain)
        return "; ".join(parts)


OPS: dict[str, Op] = {}


class Dispatch:
    """``prim.NAME(*args, **params)``: the primitive on arrays, or recorded on Tensors."""

    tensor_type: type | None = None  # set by autodiff.tensor
    record: Callable[..., Any] | None = None  # (op, *args, **params) -> Tensor

    @classmethod
    def connect(cls, tensor_type: type, record: Callable[..., Any]) -> None:
        cls.tensor_type, cls.record = tensor_type, record

    def __getattr__(self, name: str) -> Callable[..., Value]:
        op = OPS[name]
        # inputs first, then positional params (a variadic op takes them all as inputs)
        arity, param_names = None if op.variadic else len(op.vjps), op.params
        forward = op.forward

        def call(*args: Value, **params: Any) -> Value:
            if arity is not None and len(args) > arity:
                params.update(zip(param_names, args[arity:]))
                args = args[:arity]
            tensor = Dispatch.tensor_type or ()  # () until autodiff.tensor connects
            for a in args:  # a loop, not any(): every rule calling a primitive runs this
                if isinstance(a, tensor):
                    return Dispatch.record(op, *args, **params)  # type: ignore[misc]
            return forward(*args, **params)

        call.__name__ = name
        setattr(self, name, call)  # looked up once: later calls find the attribute
        return call


prim = Dispatch()


def primitive(name: str, forward: Callable[..., np.ndarray], *vjps: Callable[..., Value] | None,
              **facts: Any) -> Op:
    """Register a primitive: its forward, one VJP rule per input, and what is known about it.

    An elementwise op's Jacobian is diagonal, so its JVP rules are its VJP rules (the tangent in
    place of the upstream gradient) unless it gives its own ``jvps=``.
    """
    if "jvps" not in facts and facts.get("elementwise"):
        facts["jvps"] = vjps
    op = Op(name, forward, vjps, **facts)
    OPS[name] = op
    return op


def sum_to(x: Value, shape: tuple[int, ...]) -> Value:
    """Undo broadcasting: sum x down to `shape` (drop leading dims, sum dims that were 1)."""
    if x.shape == shape:
        return x
    lead = x.ndim - len(shape)
    dims = tuple(range(lead)) + tuple(
        lead + i for i, n in enumerate(shape) if n == 1 and x.shape[lead + i] != 1
    )
    return prim.sum(x, dims, keepdim=True).reshape(shape)
