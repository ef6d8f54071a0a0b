"""detect_anomaly: NaN or inf in forward or backward names the op and the user's line."""

import numpy as np
import pytest

import autodiff as ad


def test_a_nan_in_forward_names_the_op_and_the_line():
    x = ad.tensor([1.0, -1.0], requires_grad=True)
    with ad.detect_anomaly(), pytest.raises(ad.AnomalyError) as info:
        y = x * 2
        y.sqrt()  # sqrt of a negative number
    message = str(info.value)
    assert message.startswith("sqrt: produced nan in forward")
    assert "test_anomaly.py" in message and "y.sqrt()  # sqrt of a negative number" in message


def test_an_inf_in_backward_names_the_op_that_made_it():
    x = ad.tensor([0.0, 4.0], requires_grad=True)
    with ad.detect_anomaly():
        y = (x * 1.0).sqrt().sum()  # finite forward; the gradient 1/(2√x) is inf at 0
        with pytest.raises(ad.AnomalyError, match=r"sqrt: its gradient rule produced inf in "
                                                  r"backward for input 0 \(shape \(2,\)\)") as info:
            y.backward()
    assert "(x * 1.0).sqrt().sum()" in str(info.value)


def test_an_inf_in_the_backward_of_a_graph_of_one_op_is_caught_too(nothing_retained):
    """x.sqrt() alone: the one node's gradients could go straight into x.grad, but under
    detect_anomaly its rule is checked as in any walk."""
    x = ad.tensor([0.0, 4.0], requires_grad=True)
    with ad.detect_anomaly(), pytest.raises(ad.AnomalyError, match="sqrt: its gradient rule "
                                                                   "produced inf"):
        x.sqrt().backward(np.ones(2))
    assert x.grad is None


@pytest.mark.parametrize("compiled", [False, True])
def test_an_op_made_before_detect_anomaly_was_on_is_said_to_be(compiled):
    x = ad.tensor([0.0, 4.0], requires_grad=True)
    root = ad.compile(lambda x: x.sqrt().sum()) if compiled else lambda x: x.sqrt().sum()
    root(x)  # a compiled function's trace; the next call replays
    y = root(x)
    with ad.detect_anomaly(), pytest.raises(ad.AnomalyError) as info:
        y.backward()
    assert str(info.value).endswith("was created outside detect_anomaly, which records where "
                                    "ops are made")


def test_only_the_op_that_produced_the_nan_is_blamed():
    x = ad.tensor([np.nan, 1.0], requires_grad=True)  # the nan comes from the user
    with ad.detect_anomaly():
        (x.exp() * 2).sum()  # no op produced it: no error


def test_a_non_finite_gradient_the_caller_gave_blames_no_op():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    with ad.detect_anomaly():
        (x * 3).backward(np.array([np.inf, 1.0]))  # the inf comes from the user's gradient
    assert x.grad.tolist() == [np.inf, 3.0]


def test_works_as_a_decorator_and_switches_off_afterwards():
    @ad.detect_anomaly()
    def bad(x):
        return x.log()

    with pytest.raises(ad.AnomalyError, match="log: produced"):
        bad(ad.tensor([-1.0]))
    with np.errstate(invalid="ignore"):
        assert np.isnan(ad.tensor([-1.0]).log().data).all()  # outside: plain NumPy behaviour


def test_custom_functions_are_named_too():
    class Bad(ad.Function):
        @staticmethod
        def forward(ctx, x):
            return x.data / 0.0

        @staticmethod
        def backward(ctx, g):
            return g

    with ad.detect_anomaly(), pytest.raises(ad.AnomalyError, match="Bad: produced inf"), \
            np.errstate(divide="ignore"):
        Bad.apply(ad.tensor([1.0], requires_grad=True))
