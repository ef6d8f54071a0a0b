"""Construction: what is not numbers is refused at once, by name; Tensors inside NumPy or lists
become numbers."""

from __future__ import annotations

import numpy as np
import pytest
from probes import assert_fails_clearly, probe

import autodiff as ad

PROBES = [
    probe(lambda: ad.tensor("abc"), TypeError, r"Tensor: expected numbers.*'abc'", "string"),
    probe(lambda: ad.tensor(None), TypeError, r"Tensor: expected numbers.*None", "none"),
    probe(lambda: ad.tensor([1, "a"]), TypeError, r"Tensor: expected numbers", "mixed list"),
    probe(lambda: ad.tensor(np.array([object()])), TypeError, r"Tensor: .*dtype object",
          "object array"),
    probe(lambda: ad.tensor([1 + 2j]), TypeError, r"Tensor: .*dtype complex128", "complex"),
    probe(lambda: ad.tensor(np.array(["x"])), TypeError, r"Tensor: .*dtype <U1", "str array"),
    probe(lambda: ad.tensor({"a": 1}), TypeError, r"Tensor: expected numbers.*dict", "dict"),
    probe(lambda: ad.tensor([[1, 2], [3]]), TypeError, r"Tensor: expected numbers.*list",
          "ragged"),
    probe(lambda: ad.tensor(np.array(["2020-01-01"], dtype="M8[D]")), TypeError,
          r"Tensor: .*datetime64", "datetime"),
    probe(lambda: ad.tensor([1, 2], requires_grad=True), TypeError,
          r"only floating-point tensors can require gradients, got dtype int64", "int grad"),
    probe(lambda: ad.tensor([True], requires_grad=True), TypeError,
          r"floating-point.*bool", "bool grad"),
    probe(lambda: ad.tensor("1.5", dtype=np.float64), TypeError, r"Tensor: expected numbers",
          "numeric string with dtype"),
    probe(lambda: ad.tensor([1.0], dtype="complex64"), TypeError, r"dtype complex64",
          "complex dtype="),
    probe(lambda: ad.tensor(1.0) + None, TypeError, r"add: expected numbers.*None", "add None"),
    probe(lambda: None + ad.tensor(1.0), TypeError, r"add: expected numbers.*None", "radd None"),
    probe(lambda: ad.tensor(1.0) * "x", TypeError, r"mul: expected numbers.*'x'", "mul str"),
    probe(lambda: ad.tensor([1.0]) @ "ab", TypeError, r"matmul: expected numbers", "matmul str"),
    probe(lambda: ad.tensor(2.0) ** 1j, TypeError, r"pow: .*complex", "pow complex"),
    probe(lambda: ad.tensor(1.0) - [1, "a"], TypeError, r"sub: expected numbers", "sub list"),
    probe(lambda: ad.tensor(1.0) / object(), TypeError, r"div: .*object", "div object"),
    probe(lambda: ad.tensor(1.0) < "a", TypeError, r"lt: expected numbers", "compare str"),
    probe(lambda: ad.tensor(1.0) == None, TypeError, r"eq: expected numbers",  # noqa: E711
          "eq None"),
    probe(lambda: ad.where(ad.tensor([True]), ad.tensor([1.0]), "b"), TypeError,
          r"where: expected numbers", "where str"),
    probe(lambda: ad.tensor([1.0]).mm("a"), TypeError, r"mm: expected numbers", "mm str"),
]


@pytest.mark.parametrize(("call", "error", "message"), PROBES)
def test_construction_refuses_what_is_not_numbers(call, error, message):
    assert_fails_clearly(call, error, message)


def test_numpy_sees_a_tensor_as_its_numbers():
    t = ad.tensor([1.0, 2.0], requires_grad=True)
    a = np.asarray(t)
    assert a.dtype == np.float64 and a.tolist() == [1.0, 2.0]
    assert np.asarray(t, dtype=np.float32).dtype == np.float32
    assert np.array(t, copy=True) is not t.data


def test_a_list_of_scalar_tensors_becomes_a_tensor_of_their_values():
    t = ad.tensor([ad.tensor(1.0), ad.tensor(2.5)])
    assert t.dtype == np.float64 and t.tolist() == [1.0, 2.5]


def test_a_list_of_equal_shaped_tensors_stacks_them():
    t = ad.tensor([ad.tensor([1.0, 2.0]), ad.tensor([3.0, 4.0])])
    assert t.shape == (2, 2) and t.tolist() == [[1.0, 2.0], [3.0, 4.0]]


def test_numpy_functions_on_a_tensor_give_numbers():
    assert np.sum(np.asarray(ad.tensor([1.0, 2.0]))) == 3.0
    assert np.concatenate([ad.tensor([1.0]), ad.tensor([2.0])]).tolist() == [1.0, 2.0]
