"""Tutorial: test your own op. ``python -m demos.test_your_op``

1. Write the op as an `autodiff.Function`: forward and backward.
2. Property-test it: hypothesis draws inputs, `assert_grad_close` compares its gradient with
   finite differences.
3. Read the failure report: the shrunk input, the worst element, and which op is wrong.

The worked example is the notebook's mistake: a softmax whose backward passes the gradient
straight through, as if softmax were the identity. Its correct twin passes.
"""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings

import autodiff as ad
from autodiff.testing import assert_grad_close, shapes, tensors


class Softmax(ad.Function):
    """softmax over dim 1, with the true backward."""

    @staticmethod
    def forward(ctx, x):
        s = x.softmax(dim=1)
        ctx.save_for_backward(s)
        return s

    @staticmethod
    def backward(ctx, grad_output):
        (s,) = ctx.saved_tensors  # dx = s·(g − Σ g·s): the softmax Jacobian, transposed
        return s * (grad_output - (grad_output * s).sum(dim=1, keepdim=True))


class NotebookSoftmax(ad.Function):
    """softmax over dim 1, with the notebook's backward: the Jacobian dropped."""

    @staticmethod
    def forward(ctx, x):
        return x.softmax(dim=1)

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


def property_test(op: type[ad.Function], examples: int = 200) -> str | None:
    """Run the property on `op`; None when it holds, else hypothesis's report."""

    @settings(max_examples=examples, database=None, deadline=None)
    @given(x=tensors(shapes(min_dims=2, max_dims=2)))
    def gradient_is_right(x):
        assert_grad_close(op.apply, [x])

    try:
        gradient_is_right()
    except AssertionError as failure:
        return "\n".join([*getattr(failure, "__notes__", []), str(failure)])
    return None


def main() -> dict[str, str | None]:
    reports = {op.__name__: property_test(op) for op in (Softmax, NotebookSoftmax)}
    for name, report in reports.items():
        print(f"\n=== {name}: " + ("the property holds (200 examples)" if report is None
                                   else "caught\n" + report))
    return reports


if __name__ == "__main__":
    np.set_printoptions(precision=4)
    main()
