"""The walker: order, accumulation, freeing, no_grad, detach, long chains, grad(), create_graph."""

import gc
import tracemalloc
import weakref

import numpy as np
import pytest

import autodiff as ad


def test_diamond_x_plus_x_times_x():
    x = ad.tensor(3.0, requires_grad=True)
    ((x + x) * x).backward()  # d/dx 2x² = 4x
    assert x.grad.item() == 12.0


def test_tensor_used_by_many_ops_gets_every_share():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    y = x * 2 + x.exp() + x @ x  # x @ x is 0-d, broadcast over both elements of y
    y.sum().backward()
    np.testing.assert_allclose(x.grad.data, 2 + np.exp([1.0, 2.0]) + 2 * 2 * np.array([1.0, 2.0]))


def test_gradients_accumulate_over_two_backward_calls():
    x = ad.tensor([1.0, -2.0], requires_grad=True)
    (x * 3).sum().backward()
    (x * x).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [3 + 2.0, 3 - 4.0])


def test_zero_grad_in_place():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    (x * 3).sum().backward()
    x.grad.zero_()
    (x * 2).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 2.0])


def test_leaf_gradients_do_not_alias_each_other():
    a = ad.tensor([1.0], requires_grad=True)
    b = ad.tensor([1.0], requires_grad=True)
    (a + b).sum().backward()  # add passes the same upstream array to both
    a.grad.data += 10
    assert b.grad.item() == 1.0


def test_second_backward_through_a_freed_graph_fails_clearly():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward()
    with pytest.raises(ad.GraphFreedError, match=r"the graph through <SumBackward> was freed "
                                                  r"by an earlier backward; .*retain_graph=True"):
        y.backward()


def test_retain_graph_allows_a_second_backward():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    y = (x.exp() * 2).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.data, 4 * np.exp([1.0, 2.0]))


def test_no_grad_records_nothing_as_context_and_decorator():
    x = ad.tensor([1.0], requires_grad=True)
    with ad.no_grad():
        y = x * 2
    assert not y.requires_grad and y.grad_fn is None

    @ad.no_grad()
    def double(t):
        return t * 2

    assert double(x).grad_fn is None
    assert (x * 2).grad_fn is not None  # recording is back on


def test_detach_cuts_the_graph_and_shares_data():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    d = (x * 2).detach()
    assert d.grad_fn is None and not d.requires_grad
    y = (d * x).sum()
    y.backward()
    np.testing.assert_array_equal(x.grad.data, [2.0, 4.0])  # d is a constant


def test_a_chain_of_100000_ops_backpropagates_without_recursion():
    x = ad.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(100_000):
        y = y * 1.0
    y.backward()
    assert x.grad.item() == 1.0
    repr(y)  # no recursion in repr either


def test_intermediates_are_garbage_after_backward_and_del():
    x = ad.tensor(np.ones(3), requires_grad=True)
    hidden = x.exp()
    probe = weakref.ref(hidden)
    loss = (hidden * 2).sum()
    del hidden
    loss.backward()
    del loss
    assert probe() is None  # freed by reference counting alone: no cycles
    gc.collect()
    assert probe() is None


def test_grad_returns_gradients_without_touching_dot_grad():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    w = ad.tensor([3.0, 4.0], requires_grad=True)
    gx, gw = ad.grad((x * w).sum(), [x, w])
    np.testing.assert_array_equal(gx.data, [3.0, 4.0])
    np.testing.assert_array_equal(gw.data, [1.0, 2.0])
    assert x.grad is None and w.grad is None


def test_grad_of_an_unused_input():
    x = ad.tensor([1.0], requires_grad=True)
    unused = ad.tensor([1.0], requires_grad=True)
    with pytest.raises(RuntimeError, match="not used"):
        ad.grad((x * 2).sum(), [x, unused])
    assert ad.grad((x * 2).sum(), [x, unused], allow_unused=True)[1] is None


def test_hessian_vector_product_with_create_graph():
    rng = np.random.default_rng(1)
    x = ad.tensor(rng.standard_normal(4), requires_grad=True)
    v = rng.standard_normal(4)
    (g,) = ad.grad((x ** 3).sum(), x, create_graph=True)
    (hv,) = ad.grad((g * v).sum(), x)
    np.testing.assert_allclose(hv.data, 6 * x.data * v)


def test_backward_create_graph_makes_a_differentiable_grad():
    x = ad.tensor(2.0, requires_grad=True)
    (x ** 4).backward(create_graph=True)
    g = x.grad  # 4x³, recorded
    assert g.grad_fn is not None
    (g2,) = ad.grad(g, x)
    assert g2.item() == pytest.approx(12 * 2.0 ** 2)


def test_plain_backward_records_no_graph():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    (x.exp() * x).sum().backward()
    assert x.grad.grad_fn is None and not x.grad.requires_grad


def test_data_is_assignable_for_sgd_updates():
    w = ad.tensor([1.0, 2.0], requires_grad=True)
    (w * w).sum().backward()
    w.data -= 0.1 * w.grad.data
    np.testing.assert_allclose(w.data, [0.8, 1.6])


def test_a_leaf_gradient_never_aliases_the_seed_or_another_leaf():
    seed = np.ones(3)
    x = ad.tensor(np.ones(3), requires_grad=True)
    (x + 0).backward(seed)  # add passes the seed straight through
    x.grad.data += 1
    np.testing.assert_array_equal(seed, np.ones(3))
    a = ad.tensor(np.ones((2, 2)), requires_grad=True)
    b = ad.tensor(np.ones((2, 2)), requires_grad=True)
    (a.reshape(4) + b.reshape(4)).backward(np.arange(4.0))  # views of one array reach both
    a.grad.zero_()
    np.testing.assert_array_equal(b.grad.data, np.arange(4.0).reshape(2, 2))


@pytest.mark.parametrize("shape_of_a", [(2, 3), (6,)])
@pytest.mark.parametrize("ops", ["a + c", "a + c + 0", "a + (c + 0)"])
def test_two_leaves_given_one_gradient_array_each_keep_their_own(shape_of_a, ops):
    """add hands its upstream gradient to both inputs (and reshape a view of it): each leaf's
    .grad is its own array, so the next backward, which adds in place, adds once to each. One
    node of two leaves is backpropagated by a shortcut, more by the walk: both are checked."""
    a = ad.tensor(np.zeros(shape_of_a), requires_grad=True)
    c = ad.tensor(np.zeros((2, 3)), requires_grad=True)
    for calls in (1, 2):
        eval(ops, {"a": a.reshape(2, 3) if shape_of_a != (2, 3) else a, "c": c}).backward(
            np.ones((2, 3)))
        assert a.grad.tolist() == np.full(shape_of_a, calls).tolist()
        assert c.grad.tolist() == np.full((2, 3), calls).tolist()
    assert not np.shares_memory(a.grad.data, c.grad.data)


def test_a_retained_tensor_is_forgotten_when_it_is_collected():
    from autodiff.backward import RETAINED

    before = len(RETAINED)
    x = ad.tensor(np.ones(3), requires_grad=True)
    y = x * 2
    y.retain_grad()
    assert len(RETAINED) == before + 1
    del y
    gc.collect()
    assert len(RETAINED) == before


@pytest.mark.parametrize("given", [np.ones, lambda n: ad.tensor(np.ones(n))],
                         ids=["array", "tensor"])
def test_a_gradient_given_to_backward_is_cast_to_the_tensors_dtype(given):
    x = ad.tensor(np.ones(3, np.float32), requires_grad=True)
    (x * 2).backward(given(3))  # float64 ones
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [2.0, 2.0, 2.0]
    x.grad = None
    x.backward(given(3))  # the leaf itself: the seed is its .grad
    assert x.grad.dtype == np.float32 and x.grad.tolist() == [1.0, 1.0, 1.0]


def test_a_tensor_given_as_the_gradient_with_create_graph_keeps_its_own_graph():
    """x.grad = 2x·v is recorded as a function of v too: its gradient reaches v."""
    x = ad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    v = ad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (x * x).backward(v, create_graph=True)
    assert x.grad.tolist() == [2.0, 8.0, 18.0]
    x.grad.sum().backward()
    assert v.grad.tolist() == [2.0, 4.0, 6.0]


def test_a_retained_gradient_is_a_copy_that_later_backwards_leave_alone():
    """y = a + 1 passes y's gradient on to a as it is; a.grad, owned by backward, is added into
    in place by the next backward: y.grad must not be that array."""
    a = ad.tensor([1.0, 2.0], requires_grad=True)
    y = a + 1.0
    y.retain_grad()
    (y * 3).sum().backward()
    (a * 5).sum().backward()
    assert y.grad.tolist() == [3.0, 3.0] and a.grad.tolist() == [8.0, 8.0]


def test_grad_returns_constants_unless_asked_for_a_graph():
    """As torch.autograd.grad: create_graph=False by default, so the result has no graph."""
    x = ad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (g,) = ad.grad((x * x).sum(), x)
    assert g.tolist() == [2.0, 4.0, 6.0] and not g.requires_grad and g.grad_fn is None
    (g,) = ad.grad((x * x).sum(), x, create_graph=True)
    assert g.requires_grad and g.grad_fn is not None


def test_grad_takes_a_tensor_as_the_gradient_of_one_output():
    x = ad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    (g,) = ad.grad(x * x, x, grad_outputs=ad.tensor([1.0, 0.0, 2.0]))
    assert g.tolist() == [2.0, 0.0, 12.0]


def test_grad_of_two_outputs_one_computed_from_the_other_sums_both_into_it():
    """z = 2y: d(y + z)/dy is 1 + 2, so y waits for z's share before its gradient is final."""
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    y = x * x
    z = y * 2
    gy, gx = ad.grad([y, z], [y, x], grad_outputs=[np.ones(2), np.ones(2)])
    assert gy.tolist() == [3.0, 3.0] and gx.tolist() == [6.0, 12.0]


def peak_bytes(run) -> int:
    """The most memory (NumPy's arrays included) allocated at once while run() runs."""
    tracemalloc.start()
    try:
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_backward_keeps_the_arrays_the_rules_made_as_grad_without_copying_them():
    """(a * b).sum(): the rules make a·1 and b·1, an array each, and those arrays become the
    leaves' .grad: the walk itself allocates nothing more (a copy would double the peak)."""
    n = 500
    a = ad.tensor(np.ones((n, n)), requires_grad=True)
    b = ad.tensor(np.ones((n, n)), requires_grad=True)
    loss = (a * b).sum()
    assert peak_bytes(loss.backward) < 2.5 * a.data.nbytes
    assert a.grad.tolist() == b.grad.tolist() == np.ones((n, n)).tolist()


def test_a_grad_backward_made_is_added_into_in_place_even_after_a_user_assigned_one():
    """The user's .grad is never written into: the first backward after it stores a new array,
    which the next backward adds into in place (allocating only its rule's array)."""
    a = ad.tensor(np.ones((500, 500)), requires_grad=True)
    a.grad = ad.tensor(np.ones((500, 500)))  # the user's
    users = a.grad
    (a * 2).sum().backward()  # a new array: the user's stays as it was
    kept = a.grad
    loss = (a * 2).sum()
    assert peak_bytes(loss.backward) < 1.5 * a.data.nbytes and a.grad is kept
    assert users.tolist()[0][:2] == [1.0, 1.0] and a.grad.tolist()[0][:2] == [5.0, 5.0]
