"""`autodiff.testing.conformance`: a correct engine passes; each classic bug planted in a tiny
engine is caught, with the op named and a program of a few lines; an engine that raises, returns
a wrong shape or a NaN is reported the same way; micrograd (from PyPI) passes, and PyTorch does
where it is installed."""

from __future__ import annotations

import importlib.util
import re

import numpy as np
import pytest

from autodiff.testing import adapters, conformance
from autodiff.testing.conformance import EngineMismatch, check_engine, conformance_tests
from demos.tiny_engine import BUGS, TinyEngine

# the suite as a user runs it on their engine: one test per declared op, one of programs
test_the_tiny_engine_conforms = conformance_tests(TinyEngine, max_examples=40)

WHERE = {"tanh rule": r"the first op whose own gradient is wrong: tanh",
         "broadcast": r"the first op whose own gradient is wrong: add",
         "overwrite": r"x\d is used 2 times \(by (add|mul)\)[^\n]*accumulated",
         "sum dim": r"the first op whose own gradient is wrong: sum"}


@pytest.mark.parametrize("bug", BUGS)
def test_each_planted_bug_is_caught_with_the_op_named_in_a_short_program(bug):
    with pytest.raises(EngineMismatch) as caught:
        check_engine(TinyEngine(bug), max_examples=100)
    message = str(caught.value)
    assert re.search(WHERE[bug], message), message
    program = message.split("\n", 1)[1].split("\nthe ")[0]
    assert program.count("\n") <= 7, program  # shrunk: a few lines
    assert "backward(out)" in program and "leaf(" in program


def test_the_report_prints_the_program_as_code_in_the_adapters_terms():
    with pytest.raises(EngineMismatch) as caught:
        check_engine(TinyEngine("tanh rule"), max_examples=100)
    message = str(caught.value)
    assert message.startswith("tiny disagrees with autodiff on this program:")
    assert "apply('tanh', x0)" in message and "out = apply('sum'" in message
    assert re.search(r"expected array\([-\d.]+\), got array\([-\d.]+\)", message)


class Broken(TinyEngine):
    """The tiny engine, broken in ways that are not wrong gradients."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how

    def apply(self, op, *xs, **params):
        out = super().apply(op, *xs, **params)
        if op == "tanh" and self.how == "raises":
            raise ZeroDivisionError("tanh exploded")
        if op == "tanh" and self.how == "shape":
            out.data = out.data.reshape(-1)
        if op == "tanh" and self.how == "nan":
            out.data = out.data * np.nan
        return out


@pytest.mark.parametrize(("how", "said"), [
    ("raises", r"at tanh \(v\d = apply\('tanh', x\d\)\), tiny raised ZeroDivisionError: tanh "
               r"exploded"),
    ("shape", r"the first op whose value differs: the value of v\d, made by tanh: shape \(\d,?\), "
              r"expected \(\)"),
    ("nan", r"made by tanh: NaN where autodiff has none"),
])
def test_an_engine_that_raises_or_returns_a_wrong_shape_or_nan_is_reported_by_op(how, said):
    with pytest.raises(EngineMismatch, match=said):
        check_engine(Broken(how), max_examples=100)


def test_an_op_outside_the_vocabulary_or_no_sum_is_a_value_error():
    engine = TinyEngine()
    engine.ops = ["add", "sum", "convolve"]
    with pytest.raises(ValueError, match=r"declares ops outside the vocabulary: \['convolve'\]"):
        check_engine(engine)
    engine.ops = ["add", "mul"]
    with pytest.raises(ValueError, match="must implement 'sum'"):
        check_engine(engine)
    assert {"add", "mul", "matmul", "sum", "softmax", "pow"} <= set(conformance.OPS)
    assert conformance.OPS["sum"].params == ("dim", "keepdim")


@pytest.mark.skipif(importlib.util.find_spec("micrograd") is None,
                    reason="micrograd is not installed (pip install micrograd)")
def test_micrograd_conforms_on_the_ops_it_has():
    from micrograd.engine import Value

    engine = adapters.scalar(Value)
    assert set(engine.ops) == {"add", "sub", "mul", "div", "neg", "pow", "relu", "sum", "mean",
                               "matmul"}
    check_engine(engine, max_examples=60)


class Scalar:
    """A micrograd-style scalar with tanh and exp too, written here."""

    def __init__(self, data, parents=(), local=()):
        self.data, self.grad, self.parents, self.local = data, 0.0, parents, local

    def _wrap(self, other):
        return other if isinstance(other, Scalar) else Scalar(other)

    def __add__(self, other):
        other = self._wrap(other)
        return Scalar(self.data + other.data, (self, other), (1.0, 1.0))

    __radd__ = __add__

    def __mul__(self, other):
        other = self._wrap(other)
        return Scalar(self.data * other.data, (self, other), (other.data, self.data))

    __rmul__ = __mul__

    def __neg__(self):
        return self * -1

    def __sub__(self, other):
        return self + -self._wrap(other)

    def __rsub__(self, other):
        return self._wrap(other) + -self

    def __pow__(self, p):
        return Scalar(self.data ** p, (self,), (p * self.data ** (p - 1),))

    def __truediv__(self, other):
        return self * self._wrap(other) ** -1

    def __rtruediv__(self, other):
        return self._wrap(other) * self ** -1

    def tanh(self):
        t = np.tanh(self.data)
        return Scalar(t, (self,), (1 - t * t,))

    def exp(self):
        e = np.exp(self.data)
        return Scalar(e, (self,), (e,))

    def backward(self):
        order, seen = [], set()
        stack = [(self, False)]
        while stack:
            node, done = stack.pop()
            if done:
                order.append(node)
            elif id(node) not in seen:
                seen.add(id(node))
                stack.append((node, True))
                stack += [(p, False) for p in node.parents]
        self.grad = 1.0
        for node in reversed(order):
            for parent, local in zip(node.parents, node.local):
                parent.grad += local * node.grad


def test_a_scalar_engine_with_tanh_and_exp_conforms_softmax_included():
    engine = adapters.scalar(Scalar, name="Scalar")
    assert {"tanh", "exp", "softmax"} <= set(engine.ops)
    check_engine(engine, max_examples=60)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None,
                    reason="PyTorch is not installed (not a dependency; pip install torch)")
def test_pytorch_conforms():
    check_engine(adapters.torch(), max_examples=100)


def test_the_torch_adapter_says_how_to_install_torch_when_it_is_missing(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_torch(name, *args, **kwargs):
        if name == "torch":
            raise ImportError("No module named 'torch'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_torch)
    with pytest.raises(ImportError, match=r"adapters.torch\(\) needs PyTorch: pip install torch"):
        adapters.torch()
