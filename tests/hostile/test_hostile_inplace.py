"""In-place edits after an op used a tensor: backward refuses, naming the op, where its gradient
needs the old values; it computes, as PyTorch does, where the gradient does not read them."""

from __future__ import annotations

import numpy as np
import pytest
from functions import cube

import autodiff as ad


def leaf(values):
    return ad.tensor(np.array(values, dtype=float), requires_grad=True)


@pytest.mark.parametrize(("build", "which"), [
    (lambda a, b: (a * b).sum(), r"mul's input 1"),
    (lambda a, b: (a @ b), r"matmul's input 1"),
    (lambda a, b: (a / b).sum(), r"div's input 1"),
    (lambda a, b: (a ** b).sum(), r"pow's input 1"),
    (lambda a, b: b.log().sum() + a.sum(), r"log's input 0"),
    (lambda a, b: b.relu().sum() + a.sum(), r"relu's input 0"),
    (lambda a, b: b.abs().sum() + a.sum(), r"abs's input 0"),
    (lambda a, b: b.clamp(min=0.5).sum() + a.sum(), r"clamp's input 0"),
    (lambda a, b: b.max() + a.sum(), r"max's input 0"),
])
def test_a_saved_input_modified_in_place_is_refused(build, which):
    a, b = leaf([1.0, 2.0]), ad.tensor([3.0, 4.0], requires_grad=True)
    y = build(a, b)
    with ad.no_grad():
        b.zero_()
    with pytest.raises(RuntimeError, match=which + r" \(shape \(2,\)\) was modified in place "
                                                   r"after it was used"):
        y.backward()


@pytest.mark.parametrize(("op", "which"), [
    (lambda x: x.exp(), "exp"), (lambda x: x.sqrt(), "sqrt"), (lambda x: x.sigmoid(), "sigmoid"),
    (lambda x: x.tanh(), "tanh"), (lambda x: x.softmax(0), "softmax"),
    (lambda x: x.log_softmax(0), "log_softmax"),
])
def test_an_output_modified_in_place_is_refused_where_the_rule_reads_it(op, which):
    x = leaf([1.0, 2.0])
    y = op(x)
    loss = (y + 1.0).sum()  # add reads neither operand: the error is the op's own
    with ad.no_grad():
        y.zero_()
    with pytest.raises(RuntimeError, match=rf"{which}'s output .* was modified in place"):
        loss.backward()


def test_an_input_modified_after_use_by_add_is_fine_as_in_pytorch():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = (a + b).sum()
    with ad.no_grad():  # a leaf that requires grad is changed in place only so, as in PyTorch
        b.zero_()
    y.backward()
    assert a.grad.tolist() == [1.0, 1.0] and b.grad.tolist() == [1.0, 1.0]


def test_modified_before_use_is_fine():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    with ad.no_grad():
        b.zero_()
    (a * b).sum().backward()
    assert a.grad.tolist() == [0.0, 0.0]


def test_every_in_place_method_bumps_the_version():
    t = leaf([1.0])
    with ad.no_grad():
        for change in (t.zero_, lambda: t.fill_(2.0), t.exp_, lambda: t.add_(1.0),
                       lambda: t.mul_(2.0), lambda: t.copy_(ad.tensor([3.0])),
                       lambda: t.clamp_(max=1.0), lambda: t.__setitem__(0, 5.0)):
            before = t._version
            change()
            assert t._version > before
    assert t.tolist() == [5.0]


def test_a_leaf_that_requires_grad_is_not_changed_in_place_while_recording_as_pytorch():
    t = leaf([1.0])
    with pytest.raises(RuntimeError, match=r"zero_: a leaf tensor that requires grad cannot "
                                           r"be changed in place while gradients are recorded"):
        t.zero_()


def test_writing_to_data_is_not_tracked_as_in_pytorch():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = (a * b).sum()
    b.data[...] = 0  # documented: .data is the raw array, edits to it are not seen
    y.backward()
    assert a.grad.tolist() == [0.0, 0.0]


def test_a_function_whose_saved_tensor_was_modified_is_refused():
    x = leaf([1.0, 2.0])
    y = cube().apply(x).sum()
    with ad.no_grad():
        x.zero_()
    with pytest.raises(RuntimeError, match=r"Cube's saved tensor 0 .* modified in place"):
        y.backward()


def test_save_for_backward_takes_tensors_only():
    class Bad(ad.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.save_for_backward(x.data)
            return x.data

    with pytest.raises(TypeError, match=r"save_for_backward: argument 0 must be a Tensor"):
        Bad.apply(leaf([1.0]))


def test_a_hand_written_sgd_step_updates_the_weights_themselves():
    """PyTorch's `with no_grad(): for p in params: p -= lr * p.grad`: Python rebinds only the
    loop's name unless -= changes the tensor in place, and then nothing ever trains."""
    w1, w2 = leaf([1.0, 2.0]), leaf([[3.0], [4.0]])
    ((w1 @ w2) ** 2).sum().backward()
    expected = [w.data - 0.1 * w.grad.data for w in (w1, w2)]
    params = [w1, w2]
    with ad.no_grad():
        for p in params:
            p -= 0.1 * p.grad
    for w, e in zip((w1, w2), expected):
        np.testing.assert_array_equal(w.data, e)
        assert w._version > 0 and w.requires_grad


@pytest.mark.parametrize("symbol", ["+=", "-=", "*=", "/=", "**="])
def test_each_augmented_assignment_changes_the_array_in_place(symbol):
    t = ad.tensor([[2.0, 4.0], [6.0, 8.0]])
    array, before = t.data, t.data.copy()
    other = np.array([2.0, 0.5])
    namespace = {"t": t, "other": ad.tensor(other)}
    exec(f"t {symbol} other", namespace)
    assert namespace["t"] is t and t.data is array  # the same tensor, the same array
    expected = {"+=": before + other, "-=": before - other, "*=": before * other,
                "/=": before / other, "**=": before ** other}[symbol]
    np.testing.assert_array_equal(t.data, expected)


def test_a_leaf_that_requires_grad_is_not_changed_in_place_while_recording():
    """PyTorch's rule too: it catches a hand-written SGD step that forgot no_grad."""
    w = leaf([1.0, 2.0])
    with pytest.raises(RuntimeError, match=r"-=: a leaf tensor that requires grad cannot be "
                                           r"changed in place while gradients are recorded; "
                                           r".*no_grad"):
        w -= 1.0
    assert w.tolist() == [1.0, 2.0] and w._version == 0


def test_an_update_that_must_be_recorded_changes_the_tensor_and_records_the_op():
    """total += loss in a loop, as in PyTorch: total itself takes each sum (every reference
    sees it) and a node whose input is its old self, so its gradient is right."""
    w = leaf([1.0, 2.0])
    total = ad.tensor(0.0)
    first = total
    for k in (1.0, 2.0):
        total += (w * k).sum()
    total.backward()
    assert total is first and first.item() == 9.0 and w.grad.tolist() == [3.0, 3.0]


def test_plus_equals_on_a_non_leaf_changes_it_for_every_reference_as_pytorch():
    w = leaf([1.0, 2.0])
    h = w * 3
    h2 = h
    h += 1  # was: a new tensor bound to h, h2 left unchanged
    assert h2 is h and h2.tolist() == [4.0, 7.0]
    (h * h).sum().backward()
    assert w.grad.tolist() == [24.0, 42.0]  # d/dw (3w + 1)² = 6(3w + 1)


def test_a_rule_that_saved_a_tensor_changed_by_plus_equals_is_refused_as_pytorch():
    w = leaf([1.0, 2.0])
    h = w * 1
    y = (h * h).sum()  # mul saves h
    h += 1
    with pytest.raises(RuntimeError, match=r"mul's input 0 .* was changed by an in-place op "
                                           r"after mul used it"):
        y.backward()


@pytest.mark.parametrize("change", [
    lambda h: h.__imul__(2.0), lambda h: h.__setitem__(0, 7.0), lambda h: h.add_(1.0),
    lambda h: h.exp_(),
])
def test_a_node_that_used_a_tensor_before_an_in_place_op_recorded_on_it_is_refused(change):
    """sum saves nothing, so no version check would see it; the walker would follow the new
    node (the gradient of h *= 2 doubled), a silent wrong answer: refused instead."""
    w = leaf([1.0, 2.0])
    h = w * 1
    y = h.sum()
    change(h)
    with pytest.raises(RuntimeError, match=r"sum's input 0 .* was changed by an in-place op"):
        y.backward()
    x = ad.zeros(2)  # a constant that takes a node: its earlier users did not need its gradient
    z = (x * w).sum()
    x += w
    with pytest.raises(RuntimeError, match=r"mul's input 0 .* was changed by an in-place op"):
        z.backward()


def test_in_place_methods_record_their_gradients_as_pytorch():
    w = leaf([1.0, 2.0, 3.0])
    v = leaf(10.0)
    h = w * 2
    h[1] = v * 3  # the gradient goes to v where it was written, to w elsewhere
    h.exp_()
    h.add_(w, alpha=2.0)
    h.sum().backward()
    e = np.exp([2.0, 30.0, 6.0])
    np.testing.assert_allclose(w.grad.data, [2 * e[0] + 2, 2, 2 * e[2] + 2])
    np.testing.assert_allclose(v.grad.data, 3 * e[1])


def test_an_in_place_change_of_an_output_whose_rule_saved_it_keeps_the_old_values_for_it():
    w = leaf([0.5, 1.0])
    h = w.exp()  # exp's rule reads its output
    h *= 2
    h.sum().backward()
    np.testing.assert_allclose(w.grad.data, 2 * np.exp([0.5, 1.0]))


def test_a_saved_tensor_changed_by_minus_equals_is_refused_in_backward():
    a, b = leaf([1.0, 2.0]), leaf([3.0, 4.0])
    y = (a * b).sum()
    with ad.no_grad():
        b -= 1.0
    with pytest.raises(RuntimeError, match=r"mul's input 1 .* was modified in place"):
        y.backward()


def test_in_place_keeps_the_tensors_shape_and_dtype_or_says_why_not():
    with pytest.raises(ad.ShapeError, match=r"\+=: cannot update a tensor of shape \(2,\) in place "
                                            r"with one of shape \(3, 2\)"):
        t = ad.tensor([1.0, 2.0])
        t += ad.tensor(np.ones((3, 2)))
    counts = ad.tensor([1, 2])
    counts += 1
    assert counts.tolist() == [2, 3] and counts.dtype == np.int64
    with pytest.raises(TypeError, match=r"\+=: a result of dtype float64 cannot be written into "
                                        r"this tensor's int64"):
        counts += 0.5
