"""Which op is wrong: re-check each recorded op's VJP on its own, along the graph."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autodiff.gradcheck import GradcheckError, Mismatch, gradcheck, outputs_of
from autodiff.graph import set_modes, tensors_in_order
from autodiff.tensor import Tensor


@dataclass(frozen=True)
class Finding:
    """The first op, in the order the program ran them, whose own gradient is wrong."""

    op: str
    origin: str  # the line of user code that created it
    input_shapes: list[tuple[int, ...]]
    mismatch: Mismatch

    def message(self) -> str:
        m = self.mismatch
        return (f"the first op whose own gradient is wrong: {self.op}, created at "
                f"{self.origin}, inputs of shapes {self.input_shapes}; its input {m.input} is "
                f"worst at index {m.index}: analytical {m.analytical:.6g}, numerical "
                f"{m.expected:.6g}")


def localize(fn: Callable[..., Any], inputs: list[Any], *, eps: float = 1e-6,
             atol: float = 1e-5, rtol: float = 1e-3) -> Finding | None:
    """Run `fn`, then gradcheck every recorded op alone at the values it saw, in the order they
    ran; return the first that fails (or None when every op's VJP is right)."""
    with set_modes(record_origins=True):
        outputs = outputs_of(fn(*inputs))
    for node in [t.grad_fn for t in tensors_in_order(outputs) if t.grad_fn is not None]:
        values = [Tensor(t.data.copy(), requires_grad=t.requires_grad) for t in node.inputs]
        try:
            gradcheck(node.replay(), values, eps=eps, atol=atol, rtol=rtol)
        except GradcheckError as error:
            return Finding(node.name, node.origin or "<unknown>",
                           [t.shape for t in node.inputs], error.mismatch)
    return None
