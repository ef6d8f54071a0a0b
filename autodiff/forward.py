"""Forward mode: tangents carried alongside the values, in the same single pass.

Inside `forward_mode({x: v})`, every op that runs sees its inputs' tangents and sets its output's
tangent from its JVP rules (`Op.jvps`, beside the VJP rules in the op table): the output tangent
is the sum of each input tangent's contribution, broadcast to the output's shape. No graph is
built for it and nothing is differentiated backwards: one forward pass gives ``J v``.

Tangents are arrays, or, with ``create_graph=True``, Tensors whose ops are recorded so the result
can be differentiated again. Run it around a backward with ``create_graph=True`` and the
gradient's tangent is a Hessian-vector product (forward-over-reverse). One level at a time:
forward mode inside forward mode is not supported.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np

from autodiff.graph import GradMode, refuse_while_tracing
from autodiff.primitive import Op, prim

Tensor = Any  # an autodiff.Tensor (this module sits below it)


@contextmanager
def forward_mode(tangents: dict[Tensor, Any],
                 create_graph: bool = False) -> Iterator[dict[Tensor, Any]]:
    """Give tensors tangents for a block; ops inside propagate them. Yields the table of every
    tensor's tangent (read it with `tangent_of`)."""
    if GradMode.tangents is not None:
        raise RuntimeError("forward_mode: already inside forward mode (one level at a time)")
    refuse_while_tracing("forward mode", "run the function uncompiled")
    GradMode.tangents, GradMode.tangents_recorded = dict(tangents), create_graph
    GradMode.op_hooks.append(propagate)
    try:
        yield GradMode.tangents
    finally:
        GradMode.op_hooks.remove(propagate)
        GradMode.tangents, GradMode.tangents_recorded = None, False


def tangent_of(table: dict[Tensor, Any], t: Tensor) -> Any:
    """t's tangent: what forward mode gave it, or zeros where it does not depend on the inputs."""
    found = table.get(t)
    if found is None:
        return np.zeros(t.shape, t.dtype)
    return found


def propagate(op: Op, inputs: tuple[Tensor, ...], params: dict[str, Any], out: Tensor) -> None:
    """Set out's tangent from its inputs' tangents and op's JVP rules (called by each op)."""
    table = GradMode.tangents
    if table is None:  # while the JVP rules themselves run
        return
    if not op.jvps:  # a comparison, detach: a constant, whose tangent is none
        return
    tangents = [table.get(t) for t in inputs]
    if all(dt is None for dt in tangents):
        return  # a constant as far as these tangents go
    recorded = GradMode.tangents_recorded
    args = inputs if recorded else [t.data for t in inputs]
    value = out if recorded else out.data
    rules = op.jvps * len(inputs) if op.variadic else op.jvps
    total = None
    GradMode.tangents = None  # the rules' own ops (when recorded) carry no tangents
    try:
        for k, (dt, rule) in enumerate(zip(tangents, rules)):
            if dt is None or rule is None:
                continue
            extra = {"which": k} if op.variadic else {}
            part = rule(dt, value, *args, **params, **extra)
            total = part if total is None else total + part
        table[out] = shaped_tangent(total, out, recorded)
    finally:
        GradMode.tangents = table


def shaped_tangent(total: Any, out: Tensor, recorded: bool) -> Any:
    """The summed contributions as a tangent of out's shape and dtype (zeros if none)."""
    if total is None:  # no rule for the inputs that move (sign): its tangent is 0
        total = np.zeros(out.shape)  # cast to out's dtype below
    if recorded:
        if not hasattr(total, "grad_fn"):
            total = type(out)._wrap(np.asarray(total, dtype=out.dtype))
        elif total.dtype != out.dtype:  # a tangent of another dtype: cast as it is recorded
            total = total.to(out.dtype)
        return total if total.shape == out.shape else prim.broadcast_to(total, out.shape)
    total = np.asarray(total)
    if total.shape != out.shape:
        total = np.broadcast_to(total, out.shape)
    return total.astype(out.dtype, copy=False)
