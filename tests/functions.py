"""User-defined Functions the tests share."""

from __future__ import annotations

import autodiff as ad


def cube(rule_factor: float = 3.0, differentiable: bool = True) -> type[ad.Function]:
    """x ↦ x³ as a Function whose backward returns G·rule_factor·x² (3 is right). With
    ``differentiable=False`` the rule reads ``x.data``, so it is constant to a second backward."""

    class Cube(ad.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x)
            return x.data ** 3

        @staticmethod
        def backward(ctx, grad_output):
            (x,) = ctx.saved_tensors
            return grad_output * rule_factor * (x if differentiable else x.data) ** 2

    return Cube
