"""Autograd misuse: backward and grad given the wrong things, .grad assigned the wrong things,
and no user object ever aliased into .grad or changed by accumulation."""

from __future__ import annotations

import re

import numpy as np
import pytest
from probes import assert_fails_clearly, probe

import autodiff as ad
from autodiff import ShapeError


def leaf(*shape):
    return ad.tensor(np.arange(1.0, 1.0 + np.prod(shape, dtype=int)).reshape(shape),
                     requires_grad=True)


def assign_grad(t, value):
    t.grad = value


x2 = leaf(2)
PROBES = [
    probe(lambda: (leaf(2) * 2).backward("abc"), TypeError,
          r"backward: gradient: expected numbers.*'abc'", "string seed"),
    probe(lambda: (leaf(2) * 2).backward([None, 1]), TypeError,
          r"backward: gradient: expected numbers", "object seed"),
    probe(lambda: (leaf(2) * 2).backward(np.ones(3)), ShapeError,
          r"backward: gradient of shape \(3,\) does not match the tensor's shape \(2,\)",
          "wrong seed shape"),
    probe(lambda: (leaf(2) * 2).backward(), RuntimeError,
          re.escape("backward: a gradient can be implied only for a tensor of one element; "
                    "this one has shape (2,): pass gradient="), "no seed"),
    probe(lambda: ad.tensor(1.0).backward(), RuntimeError,
          re.escape("backward: the tensor does not require grad and has no grad_fn (was it "
                    "computed under no_grad, or from tensors without requires_grad?)"),
          "no graph"),
    probe(lambda: ad.grad([x2 * 2, x2 * 3], x2, grad_outputs=[np.ones(2)]), RuntimeError,
          re.escape("grad: got 2 output tensor(s) and 1 grad_outputs; give one gradient per "
                    "output (None for an output of one element)"), "fewer grad_outputs"),
    probe(lambda: ad.grad((x2 * 2).sum(), x2, grad_outputs=[None, None]), RuntimeError,
          r"grad: got 1 output tensor\(s\) and 2 grad_outputs", "more grad_outputs"),
    probe(lambda: ad.grad([x2 * 2, x2 * 3], x2, grad_outputs=np.ones(2)), RuntimeError,
          r"grad: got 2 output tensor\(s\) and 1 grad_outputs", "one array for two"),
    probe(lambda: ad.grad(x2 * 2, x2, grad_outputs=np.ones(3)), ShapeError,
          r"grad: gradient of shape \(3,\) does not match the tensor's shape \(2,\)",
          "grad_outputs shape"),
    probe(lambda: ad.grad("y", x2), TypeError, r"grad: outputs must be a Tensor", "str outputs"),
    probe(lambda: ad.grad((x2 * 2).sum(), [x2, 3]), TypeError,
          r"grad: inputs must be a Tensor or a non-empty sequence of Tensors, got \[tensor\(",
          "int input"),
    probe(lambda: ad.grad([], x2), TypeError, r"grad: outputs must be .*non-empty", "empty"),
    probe(lambda: ad.grad((x2 * 2).sum(), ad.tensor([1.0])), RuntimeError,
          r"grad: input 0 \(shape \(1,\)\) does not require grad", "input without grad"),
    probe(lambda: ad.grad((x2 * 2).sum(), leaf(2)), RuntimeError,
          re.escape("grad: input 0 (shape (2,)) was not used to compute the outputs; pass "
                    "allow_unused=True to get None for it"), "unused input"),
    probe(lambda: assign_grad(leaf(2), np.ones(2)), TypeError,
          r"grad: can only be set to None or a Tensor, got ndarray", "grad ndarray"),
    probe(lambda: assign_grad(leaf(2), 1.0), TypeError, r"grad: .*got float", "grad float"),
    probe(lambda: assign_grad(leaf(2), ad.tensor([1, 2])), TypeError,
          r"grad: a gradient of dtype int64 cannot be assigned to a tensor of dtype float64",
          "grad int tensor"),
    probe(lambda: assign_grad(leaf(2), ad.tensor(np.ones(2, np.float32))), TypeError,
          r"grad: a gradient of dtype float32 .* float64", "grad other float"),
    probe(lambda: assign_grad(leaf(2), ad.tensor(np.ones(3))), ShapeError,
          r"grad: a gradient of shape \(3,\) cannot be assigned to a tensor of shape \(2,\)",
          "grad wrong shape"),
    probe(lambda: assign_grad(leaf(2), ad.tensor(np.ones((1, 2)))), ShapeError,
          r"grad: a gradient of shape \(1, 2\)", "grad broadcastable shape"),
    probe(lambda: assign_grad(ad.tensor([1, 2]), ad.tensor([1, 2])), TypeError,
          r"cannot be assigned to a tensor of dtype int64", "grad on int tensor"),
]


@pytest.mark.parametrize(("call", "error", "message"), PROBES)
def test_autograd_misuse_fails_clearly(call, error, message):
    assert_fails_clearly(call, error, message)


def test_independent_outputs_each_get_their_grad_output():
    a, b = leaf(2), leaf(2)
    ga, gb = ad.grad([a * 2, b * 3], [a, b], grad_outputs=[np.array([1.0, 2.0]), np.ones(2)])
    assert ga.tolist() == [2.0, 4.0] and gb.tolist() == [3.0, 3.0]


def test_a_seed_passed_with_create_graph_is_never_changed_by_a_later_backward():
    x = leaf(2)
    seed = ad.tensor([1.0, 1.0])
    (x + 0).backward(seed, create_graph=True)
    (x * 3).sum().backward()
    assert seed.tolist() == [1.0, 1.0]
    assert x.grad.tolist() == [4.0, 4.0]


def test_a_seed_given_to_a_leaf_itself_is_not_aliased_into_its_grad():
    x = leaf(2)
    seed = ad.tensor([1.0, 2.0])
    x.backward(seed, create_graph=True)
    x.backward(seed)
    assert seed.tolist() == [1.0, 2.0] and x.grad.tolist() == [2.0, 4.0]


def test_a_grad_the_user_assigned_is_not_added_into():
    x = leaf(2)
    mine = ad.tensor([10.0, 10.0])
    x.grad = mine
    (x * 2).sum().backward()
    assert mine.tolist() == [10.0, 10.0] and x.grad.tolist() == [12.0, 12.0]


def test_an_array_passed_as_seed_is_not_aliased():
    x = leaf(2)
    seed = np.array([1.0, 1.0])
    (x + 0).backward(seed)
    (x + 0).backward(seed)
    assert seed.tolist() == [1.0, 1.0] and x.grad.tolist() == [2.0, 2.0]


def test_grad_zero_then_backward_accumulates_into_the_same_tensor_as_pytorch():
    x = leaf(2)
    (x * 2).sum().backward()
    g = x.grad
    g.zero_()
    (x * 3).sum().backward()
    assert x.grad is g and g.tolist() == [3.0, 3.0]


def test_a_no_grad_object_is_reusable_and_nestable():
    guard = ad.no_grad()
    x = leaf(2)
    with guard:
        with guard:
            assert not ad.is_grad_enabled()
        assert not ad.is_grad_enabled()
    assert ad.is_grad_enabled()
    with guard:
        assert not (x * 2).requires_grad
    assert (x * 2).requires_grad


def test_no_grad_as_a_decorator_restores_the_mode_after_an_error():
    @ad.no_grad()
    def failing():
        raise KeyError("boom")

    with pytest.raises(KeyError):
        failing()
    with pytest.raises(KeyError):
        failing()
    assert ad.is_grad_enabled()


@pytest.mark.parametrize("x0", [0.0, 2.0, -3.0])
def test_the_gradient_of_x_to_the_zero_is_zero_everywhere_as_in_pytorch(x0):
    x = ad.tensor(x0, requires_grad=True)
    (x ** 0).backward()
    assert x.grad.item() == 0.0


def test_the_gradient_of_x_to_an_array_of_exponents_with_zeros():
    x = ad.tensor([0.0, 0.0, 2.0], requires_grad=True)
    (x ** ad.tensor([0.0, 2.0, 0.0])).sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0]


def test_an_index_array_edited_after_use_does_not_move_the_gradient():
    x = leaf(3)
    index = np.array([0, 0])
    y = x[index].sum()
    index[:] = 2
    y.backward()
    assert x.grad.tolist() == [2.0, 0.0, 0.0]


def test_an_index_tensor_edited_after_use_does_not_move_the_gradient():
    x = leaf(3)
    index = ad.tensor([1])
    y = x[index].sum()
    index.data[:] = 2
    y.backward()
    assert x.grad.tolist() == [0.0, 1.0, 0.0]


def test_an_empty_list_index_selects_nothing():
    x = leaf(3)
    assert x[[]].shape == (0,)


def test_a_snapshots_gradients_stay_as_recorded_after_a_later_backward():
    from autodiff import viz

    x = leaf(2)
    y = (x * 2).sum()
    with viz.snapshot(y) as snap:
        y.backward()
    recorded = [None if info.grad is None else info.grad.copy() for info in snap.tensors]
    (x * 5).sum().backward()
    for info, before in zip(snap.tensors, recorded):
        if before is not None:
            np.testing.assert_array_equal(info.grad, before)


def test_gradients_recorded_with_create_graph_accumulate_over_two_backwards():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    for _ in range(2):
        (x * x).sum().backward(create_graph=True)
    assert x.grad.tolist() == [4.0, 8.0] and x.grad.requires_grad


def test_a_root_given_twice_to_grad_gets_its_seeds_summed():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    y = x * 3
    (g,) = ad.grad([y, y], [x], grad_outputs=[ad.tensor([1.0, 1.0]), ad.tensor([2.0, 5.0])])
    assert g.tolist() == [9.0, 18.0]


def test_retain_grad_keeps_only_the_retained_non_leafs_gradient_and_only_in_backward():
    w = ad.tensor([1.0, 2.0], requires_grad=True)
    h = w * 2
    other = h * 3
    h.retain_grad()
    (grad_w,) = ad.grad((other * other).sum(), [w], retain_graph=True)
    assert h.grad is None and grad_w.tolist() == [72.0, 144.0]  # autodiff.grad fills no .grad
    (other * other).sum().backward()
    assert h.grad.tolist() == [36.0, 72.0] and other.grad is None
    assert w.grad.tolist() == [72.0, 144.0]


def test_a_retained_gradient_is_its_own_array_across_two_backwards():
    """The retained non-leaf's gradient is a copy: adding the next backward into the leaf's
    .grad must not change it (add passes the same array on to both)."""
    w = ad.tensor([1.0, 2.0], requires_grad=True)
    h = w + 0.0
    h.retain_grad()
    y = h.sum()
    y.backward(retain_graph=True)
    y.backward()
    assert h.grad.tolist() == [2.0, 2.0] and w.grad.tolist() == [2.0, 2.0]
    assert not np.shares_memory(h.grad.data, w.grad.data)


def test_retain_grad_with_create_graph_keeps_a_recorded_gradient():
    w = ad.tensor([1.0, 2.0], requires_grad=True)
    h = w * w
    h.retain_grad()
    (h * h).sum().backward(create_graph=True)
    assert isinstance(h.grad, ad.Tensor) and h.grad.requires_grad  # 2h: recorded, as PyTorch
    assert h.grad.tolist() == [2.0, 8.0]
    assert w.grad.requires_grad and w.grad.tolist() == [4.0, 32.0]  # d(w⁴)/dw = 4w³
