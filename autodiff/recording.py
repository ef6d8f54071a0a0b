"""Recording an op: the one place a node is attached to an output (for primitives and for
user-defined Functions alike)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from autodiff import anomaly
from autodiff.graph import GradMode, GradNode


def record(name: str, inputs: tuple[Any, ...], out: Any,
           make_node: Callable[..., GradNode], *node_args: Any) -> Any:
    """Attach ``make_node(*node_args, out)`` as out's grad_fn when grad mode is on and some input
    requires grad; while origins are recorded, note the user's line (and check for NaN/inf under
    detect_anomaly). Returns out."""
    if GradMode.enabled:
        for t in inputs:  # a loop, not any(): this runs for every op, so it is kept lean
            if t.requires_grad:
                out.requires_grad = True
                out.grad_fn = make_node(*node_args, out)
                break
    if GradMode.record_origins:
        anomaly.note(name, inputs, out)
    return out
