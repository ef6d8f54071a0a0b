"""Ops given operands they cannot take: each error names the op, the operands and what was
expected; a type problem is a TypeError, a shape problem a ShapeError, never "cannot broadcast"
for what is not broadcasting."""

from __future__ import annotations

import numpy as np
import pytest
from probes import assert_fails_clearly, probe

import autodiff as ad
from autodiff import ShapeError


def t(*shape, dtype=np.float64):
    return ad.tensor(np.ones(shape, dtype=dtype))


PROBES = [
    probe(lambda: ad.tensor([2]) ** -1, ValueError,
          r"pow: cannot apply to operands \(1,\) int64 and \(\) int64: Integers to negative",
          "int to negative power"),
    probe(lambda: t(2, 3) + t(4), ShapeError, r"add: cannot broadcast shapes \(2, 3\) and \(4,\)",
          "add shapes"),
    probe(lambda: t(2, 3) * t(3, 2), ShapeError, r"mul: cannot broadcast", "mul shapes"),
    probe(lambda: t(100, 64) @ t(50, 10), ShapeError,
          r"matmul: cannot multiply \(100, 64\) by \(50, 10\)", "matmul inner"),
    probe(lambda: t() @ t(2), ShapeError, r"matmul: both operands need at least 1 dimension",
          "matmul 0-d"),
    probe(lambda: t(2, 2).mm(t(2)), ShapeError, r"mm: expected two 2-D tensors", "mm 1-d"),
    probe(lambda: t(2, 3).reshape(4), ShapeError, r"reshape: cannot reshape .*\(2, 3\)",
          "reshape size"),
    probe(lambda: t(2, 3).sum(dim=2), ShapeError, r"sum: dim 2 is out of range", "sum dim"),
    probe(lambda: t(2, 3).sum(dim=1.0), TypeError, r"sum: dim must be an int", "sum float dim"),
    probe(lambda: t(2, 3).sum(dim=(0, 0)), ShapeError, r"sum: dim \(0, 0\) names the same",
          "sum repeated dim"),
    probe(lambda: t(2, 3).mean(dim=-3), ShapeError, r"mean: dim -3 is out of range",
          "mean dim"),
    probe(lambda: t(2, 3).max(dim=5), ShapeError, r"max: dim 5 is out of range", "max dim"),
    probe(lambda: t(0, 3).max(dim=0), ShapeError, r"max: cannot reduce over a dim of size 0",
          "max over empty dim"),
    probe(lambda: t(0).max(), ShapeError, r"max: cannot reduce over a dim of size 0",
          "max of empty"),
    probe(lambda: t(2, 3).softmax(dim=None), TypeError, r"softmax: dim must be a single int",
          "softmax None"),
    probe(lambda: t(2, 3).softmax(dim=(0, 1)), TypeError, r"softmax: dim must be a single int",
          "softmax tuple"),
    probe(lambda: t(2, 3).log_softmax(dim=2), ShapeError, r"log_softmax: dim 2 is out of range",
          "log_softmax dim"),
    probe(lambda: t(2, 3).transpose(0, 2), ShapeError, r"transpose: dim 2 is out of range",
          "transpose"),
    probe(lambda: t(2, 3).permute(0, 0), ShapeError, r"permute: dim \(0, 0\) names the same",
          "permute repeated"),
    probe(lambda: t(2, 3).permute(0), ShapeError, r"permute: \(0,\) is not a permutation",
          "permute short"),
    probe(lambda: t(2).mT, ShapeError, r"mT: needs at least 2 dims", "mT 1-d"),
    probe(lambda: t(2).unsqueeze(3), ShapeError, r"unsqueeze: dim 3 is out of range",
          "unsqueeze"),
    probe(lambda: t(2).squeeze(1), ShapeError, r"squeeze: dim 1 is out of range", "squeeze"),
    probe(lambda: t(3).broadcast_to(2), ShapeError, r"broadcast_to: cannot broadcast shape \(3,\) "
          r"to \(2,\)", "broadcast_to int"),
    probe(lambda: t(3).broadcast_to("ab"), TypeError, r"broadcast_to: the shape must be ints",
          "broadcast_to str"),
    probe(lambda: t(3).broadcast_to((2, 3.5)), TypeError, r"broadcast_to: the shape must be ints",
          "broadcast_to float"),
    probe(lambda: t(3)[5], ShapeError, r"index: .*out of bounds.*shape \(3,\)", "index bounds"),
    probe(lambda: t(3)[np.array([0, 7])], ShapeError, r"index: .*\(3,\)", "array index bounds"),
    probe(lambda: t(3)["a"], TypeError, r"index: expected ints, .*got .a. \(str\)", "str index"),
    probe(lambda: t(3)[1.5], TypeError, r"index: expected ints, .*\(float\)", "float index"),
    probe(lambda: t(3)[[0.5]], TypeError, r"index: expected ints, .*\(ndarray\)", "float list"),
    probe(lambda: t(3).clamp(), ValueError, r"clamp: give min, max or both", "clamp none"),
    probe(lambda: t(3).clamp(min=t(3)), TypeError, r"clamp: min must be a number, got Tensor",
          "clamp tensor min"),
    probe(lambda: t(3).clamp(max="1"), TypeError, r"clamp: max must be a number, got str",
          "clamp str max"),
    probe(lambda: ad.where(t(3), t(3), t(3)), TypeError, r"where: the condition must be boolean",
          "where float condition"),
    probe(lambda: t(2).item(), ValueError, r"item: only a tensor of one element", "item"),
    probe(lambda: iter(t()), TypeError, r"iteration over a 0-d tensor", "iter 0-d"),
]


@pytest.mark.parametrize(("call", "error", "message"), PROBES)
def test_ops_refuse_bad_operands_by_name(call, error, message):
    assert_fails_clearly(call, error, message)


def test_broadcast_to_takes_an_int_as_torch_does():
    assert ad.tensor([1.0]).broadcast_to(3).shape == (3,)
    assert ad.tensor([1.0]).broadcast_to(2, 3).shape == (2, 3)


def test_max_over_a_nonempty_dim_of_an_empty_tensor_is_empty_as_in_pytorch():
    x = ad.tensor(np.zeros((0, 3)), requires_grad=True)
    out, indices = x.max(dim=1)
    assert out.shape == (0,) and indices.shape == (0,)
    out.sum().backward()
    assert x.grad.shape == (0, 3)


@pytest.mark.parametrize("reduction", ["sum", "mean", "amax"])
def test_an_empty_dim_tuple_reduces_every_dim_as_in_pytorch(reduction):
    data = np.arange(6.0).reshape(2, 3)
    out = getattr(ad.tensor(data), reduction)(dim=())
    assert out.shape == () and out.item() == getattr(data, reduction.removeprefix("a"))()


def test_integer_powers_of_integer_tensors_still_work():
    assert (ad.tensor([2, 3]) ** 2).tolist() == [4, 9]


def test_broadcast_to_and_expand_are_views_that_allocate_nothing():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    big = x.broadcast_to((10**6, 10**6, 2))  # 16 TB if it were copied
    assert big.shape == (10**6, 10**6, 2) and np.shares_memory(big.data, x.data)
    assert x.expand(10**9, -1).data.strides[0] == 0
    small = x.broadcast_to((3, 2))
    (small * ad.tensor([[1.0], [2.0], [3.0]])).sum().backward()
    assert x.grad.tolist() == [6.0, 6.0]  # gradients as before: summed back to x's shape
