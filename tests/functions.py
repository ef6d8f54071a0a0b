"""User-defined Functions, a loss and a training step the tests share."""

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


class NotebookSoftmax(ad.Function):
    """Softmax over dim 1 with the notebook's backward: the gradient passed straight through,
    the softmax Jacobian dropped."""

    @staticmethod
    def forward(ctx, x):
        return x.softmax(dim=1).data

    @staticmethod
    def backward(ctx, grad_output):
        return grad_output


def notebook_loss(x, y, w1, w2, softmax=lambda z: z.softmax(dim=1)):
    """The notebook's network and loss: Σ (softmax(relu(x @ w1) @ w2) − y)²."""
    return (softmax((x @ w1).relu() @ w2) - y).pow(2).sum()


def step_by_hand(ws, loss_of, lr: float, *, zero_first: bool = False, keep_grad: bool = False):
    """A training step as PyTorch users write it: ``loss_of(*inputs)``; each existing .grad
    zeroed in place first when `zero_first` (the notebook's PyTorch cell); backward; then
    ``w -= lr * w.grad`` under no_grad and, unless `keep_grad`, ``w.grad = None``."""
    def step(*inputs):
        loss = loss_of(*inputs)
        if zero_first:
            for w in ws:
                if w.grad is not None:
                    w.grad.zero_()
        loss.backward()
        with ad.no_grad():
            for w in ws:
                w -= lr * w.grad
                if not keep_grad:
                    w.grad = None
        return loss
    return step


def step_with(optimizer, loss_of):
    """A training step with an optimizer: ``zero_grad()`` (.grad set to None), the loss
    ``loss_of(*inputs)``, backward, ``step()``."""
    def step(*inputs):
        optimizer.zero_grad()
        loss = loss_of(*inputs)
        loss.backward()
        optimizer.step()
        return loss
    return step
