"""A tiny tensor autograd engine in NumPy, the kind people write after studying one, used to
test `autodiff.testing.conformance`: correct by default, with one of four classic bugs planted
on request (a wrong rule, a broadcast not summed back, a gradient overwritten instead of
accumulated, a wrong `sum(dim=...)` rule)."""

from __future__ import annotations

import numpy as np

BUGS = ("tanh rule", "broadcast", "overwrite", "sum dim")


class Node:
    def __init__(self, data, parents=(), rule=None):
        self.data = np.asarray(data, dtype=np.float64)
        self.parents, self.rule = parents, rule  # rule(g) -> one gradient per parent
        self.grad = np.zeros_like(self.data)


class TinyEngine:
    name = "tiny"
    ops = ["add", "mul", "tanh", "sum"]

    def __init__(self, bug: str | None = None) -> None:
        assert bug in (None, *BUGS), bug
        self.bug = bug

    def leaf(self, array):
        return Node(array)

    def _fit(self, g, shape):
        if self.bug == "broadcast":
            return g  # planted: the gradient keeps the broadcast shape
        while g.ndim > len(shape):
            g = g.sum(axis=0)
        for i, n in enumerate(shape):
            if n == 1 and g.shape[i] != 1:
                g = g.sum(axis=i, keepdims=True)
        return g

    def apply(self, op, *xs, **params):
        if op == "add":
            a, b = xs
            return Node(a.data + b.data, (a, b),
                        lambda g: [self._fit(g, a.data.shape), self._fit(g, b.data.shape)])
        if op == "mul":
            a, b = xs
            return Node(a.data * b.data, (a, b), lambda g: [
                self._fit(g * b.data, a.data.shape), self._fit(g * a.data, b.data.shape)])
        if op == "tanh":
            (a,) = xs
            y = np.tanh(a.data)
            slope = (1 - y) if self.bug == "tanh rule" else (1 - y * y)  # planted: 1 − y
            return Node(y, (a,), lambda g: [g * slope])
        if op == "sum":
            (a,) = xs
            dim, keepdim = params.get("dim"), params.get("keepdim", False)

            def rule(g):
                if dim is not None and not keepdim and self.bug != "sum dim":
                    g = np.expand_dims(g, dim)  # planted bug: this line skipped
                return [np.broadcast_to(g, a.data.shape).copy()]
            return Node(a.data.sum(axis=dim, keepdims=keepdim), (a,), rule)
        raise ValueError(op)

    def backward(self, out):
        order, seen = [], set()

        def visit(node):
            if id(node) not in seen:
                seen.add(id(node))
                for p in node.parents:
                    visit(p)
                order.append(node)
        visit(out)
        out.grad = np.ones_like(out.data)
        for node in reversed(order):
            if node.rule is None:
                continue
            for parent, g in zip(node.parents, node.rule(node.grad)):
                if self.bug == "overwrite":
                    parent.grad = g  # planted: a second use replaces the first's gradient
                else:
                    parent.grad = parent.grad + g

    def grad(self, leaf):
        return leaf.grad

    def value(self, node):
        return node.data
