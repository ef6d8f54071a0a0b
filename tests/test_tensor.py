"""Tensor construction, attributes, dtypes and repr, as the contract fixes them."""

import numpy as np

import autodiff as ad


def test_construction_follows_np_asarray():
    assert ad.tensor(1.5).dtype == np.float64
    assert ad.tensor(np.ones(2, np.float32)).dtype == np.float32
    assert ad.tensor([1, 2]).dtype == np.int64
    assert ad.tensor([1, 2], dtype=np.float32).dtype == np.float32
    a = np.ones(3)
    copied, shared = ad.tensor(a), ad.from_numpy(a)
    a[0] = 5.0  # torch.tensor copies the array, torch.from_numpy shares it
    assert copied.tolist() == [1.0, 1.0, 1.0] and ad.Tensor(a).data is not a
    assert shared.data is a and shared.tolist() == [5.0, 1.0, 1.0]


def test_attributes():
    x = ad.Tensor(np.zeros((2, 3)), requires_grad=True, name="x")
    assert (x.shape, x.ndim, x.size, x.name) == ((2, 3), 2, 6, "x")
    assert x.is_leaf and x.grad is None and x.grad_fn is None
    y = x * 2
    assert not y.is_leaf and y.requires_grad and repr(y.grad_fn) == "<MulBackward>"
    assert x.T.shape == (3, 2)


def test_python_scalars_keep_float32():
    x = ad.tensor(np.ones(2, np.float32), requires_grad=True)
    for y in (x * 2.0, 2.0 * x, x / 3, 1 - x, x ** 2, 2 ** x):
        assert y.dtype == np.float32


def test_integer_tensors_index_other_tensors():
    x = ad.tensor(np.arange(6.0).reshape(3, 2), requires_grad=True)
    rows = ad.tensor([2, 0, 2])
    x[rows].sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[1, 1], [0, 0], [2, 2]])  # repeats accumulate


def test_repr_looks_like_pytorch():
    assert repr(ad.tensor([1.0, 2.0], requires_grad=True)) == \
        "tensor([1., 2.], requires_grad=True)"
    assert repr(ad.tensor([1.0]) * ad.tensor([2.0], requires_grad=True)) == \
        "tensor([2.], grad_fn=<MulBackward>)"
    assert "dtype=float32" in repr(ad.tensor(np.ones(1, np.float32)))


def test_item_numpy_tolist():
    x = ad.tensor([[1.5]])
    assert x.item() == 1.5 and x.tolist() == [[1.5]] and x.numpy() is x.data


def test_numpy_arrays_on_the_left_defer_to_tensor():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    y = np.array([3.0, 4.0]) * x
    assert isinstance(y, ad.Tensor) and y.grad_fn is not None


def test_functions_mirror_methods():
    x = ad.tensor([[0.5, -1.0], [2.0, 0.1]])
    for fn, method in [(ad.exp, x.exp), (ad.relu, x.relu), (ad.sigmoid, x.sigmoid),
                       (ad.tanh, x.tanh)]:
        np.testing.assert_array_equal(fn(x).data, method().data)
    np.testing.assert_array_equal(ad.softmax(x, 1).data, x.softmax(1).data)
    np.testing.assert_array_equal(ad.sum(x, 0).data, x.sum(0).data)
    np.testing.assert_array_equal(ad.matmul(x, x).data, (x @ x).data)
    np.testing.assert_array_equal(ad.clamp(x, min=0).data, x.clamp(min=0).data)


def test_iterating_gives_rows_that_carry_gradients():
    x = ad.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    rows = list(x)
    assert [r.tolist() for r in rows] == [[1.0, 2.0], [3.0, 4.0]]
    (rows[0] * rows[1]).sum().backward()
    np.testing.assert_array_equal(x.grad.data, [[3.0, 4.0], [1.0, 2.0]])


def test_a_python_number_is_wrapped_once_read_only_and_its_zero_keeps_its_sign():
    """x * 3 in a loop wraps 3 once (a cache); nobody can change the shared constant, and 0.0
    and -0.0, equal as keys, are not cached: each keeps its sign."""
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    three, three_again = (x * 3.0).grad_fn.inputs[1], (x * 3).grad_fn.inputs[1]
    assert three is three_again and not three.data.flags.writeable
    assert (x * 3).tolist() == [3.0, 6.0] and (x.float() * 3).dtype == np.float32
    assert np.signbit((x * -0.0).data).all() and not np.signbit((x * 0.0).data).any()
