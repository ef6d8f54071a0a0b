"""Finding where things go wrong: the user's line behind each op, and `detect_anomaly`.

While origins are recorded (under `detect_anomaly`, or while `autodiff.testing` localizes a
wrong gradient), every op notes the first line of code outside the engine that called it.
"""

from __future__ import annotations

import linecache
import os
import sys
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np

from autodiff.graph import GradMode, GradNode, set_modes

ENGINE = str(Path(__file__).resolve().parent) + os.sep  # the package's directory, not a prefix


class AnomalyError(FloatingPointError):
    """A NaN or inf appeared in forward or backward under `detect_anomaly`."""


def user_line() -> str:
    """'file:line: code' of the innermost caller outside the autodiff package."""
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(ENGINE):
        frame = frame.f_back
    if frame is None:
        return "<unknown>"
    filename, line = frame.f_code.co_filename, frame.f_lineno
    return f"{filename}:{line}: {linecache.getline(filename, line).strip()}"


def note(name: str, inputs: tuple[Any, ...], out: Any) -> None:
    """Called by each op while origins are recorded: remember where, check for NaN/inf."""
    origin = user_line()
    if out.grad_fn is not None:
        out.grad_fn.origin = origin
    if GradMode.detect_anomaly and _produced_non_finite(out.data, [t.data for t in inputs]):
        raise AnomalyError(f"{name}: produced {_what(out.data)} in forward (output shape "
                           f"{out.shape}, input shapes {[t.shape for t in inputs]}); "
                           f"created at {origin}")


def check_backward(node: GradNode, upstream: Any, grads: list[Any]) -> None:
    """Under detect_anomaly: fail when a node's rule turns a finite gradient into NaN/inf."""
    for i, g in enumerate(grads):
        if g is not None and _produced_non_finite(_array(g), [_array(upstream)]):
            where = (f"was created at {node.origin}" if node.origin is not None else
                     "was created outside detect_anomaly, which records where ops are made")
            raise AnomalyError(f"{node.name}: its gradient rule produced {_what(_array(g))} in "
                               f"backward for input {i} (shape {np.shape(_array(g))}); the op "
                               f"{where}")


class detect_anomaly(set_modes):
    """Context manager (and decorator): a NaN or inf produced in forward or backward raises
    AnomalyError naming the op and the line of user code that created it (as PyTorch's).
    NumPy's own divide/invalid/overflow warnings are silenced inside: the error says it all."""

    def __init__(self) -> None:
        super().__init__(detect_anomaly=True, record_origins=True)

    def __enter__(self) -> detect_anomaly:
        super().__enter__()
        quiet = np.errstate(divide="ignore", invalid="ignore", over="ignore")
        quiet.__enter__()
        self._saved.stack[-1]["_errstate"] = quiet  # left on exit, with the flags
        return self

    def __exit__(self, *exc: object) -> None:
        self._saved.stack[-1].pop("_errstate").__exit__(*exc)
        super().__exit__(*exc)


def _array(x: Any) -> np.ndarray:
    return np.asarray(getattr(x, "data", x))


def _produced_non_finite(out: np.ndarray, inputs: list[np.ndarray]) -> bool:
    """True when `out` has NaN/inf and the inputs (floating ones) had none."""
    if out.dtype.kind not in "fc" or np.isfinite(out).all():
        return False
    return all(np.isfinite(a).all() for a in inputs if a.dtype.kind in "fc")


def _what(a: np.ndarray) -> str:
    return "nan" if np.isnan(a).any() else "inf"
