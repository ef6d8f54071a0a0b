"""gradcheck, Function and detect_anomaly misused: errors name the function and the argument;
reports give the gradient itself for a scalar output; anomaly blames the user's line."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from functions import cube
from probes import assert_fails_clearly, probe

import autodiff as ad
from autodiff import ShapeError


def x3():
    return ad.tensor([1.0, 2.0, 3.0], requires_grad=True)


def make_function(forward_result=None, backward_result=None, inputs=1):
    """A Function whose forward returns forward_result(x) and backward backward_result(g, x)."""
    class Broken(ad.Function):
        @staticmethod
        def forward(ctx, *args):
            ctx.save_for_backward(args[0])
            return forward_result(args[0]) if forward_result else args[0].data * 2

        @staticmethod
        def backward(ctx, g):
            (x,) = ctx.saved_tensors
            return backward_result(g, x)
    return Broken


def run_backward(function, *args):
    function.apply(*args).sum().backward()


PROBES = [
    probe(lambda: ad.gradcheck(lambda x: 3.0, [x3()]), TypeError,
          r"gradcheck: the function must return a Tensor or a sequence of Tensors, got float",
          "returns float"),
    probe(lambda: ad.gradcheck(lambda x: None, [x3()]), TypeError,
          r"gradcheck: the function must return .*got NoneType", "returns None"),
    probe(lambda: ad.gradcheck(lambda x: [x.data], [x3()]), TypeError,
          r"gradcheck: the function must return .*got list", "returns list of arrays"),
    probe(lambda: ad.gradcheck(lambda x: x.sum(), [x3()], eps=0), ValueError,
          r"gradcheck: eps must be a finite number > 0, got 0", "eps zero"),
    probe(lambda: ad.gradcheck(lambda x: x.sum(), [x3()], eps=-1e-6), ValueError,
          r"gradcheck: eps must be", "eps negative"),
    probe(lambda: ad.gradcheck(lambda x: x.sum(), [x3()], eps=float("nan")), ValueError,
          r"gradcheck: eps must be", "eps nan"),
    probe(lambda: ad.gradcheck(lambda x: x.sum(), [x3()], atol=-1), ValueError,
          r"gradcheck: atol must be a finite number ≥ 0", "atol negative"),
    probe(lambda: ad.gradcheck(lambda x: x.sum(), [ad.tensor([1.0])]), ValueError,
          r"gradcheck: no input Tensor has requires_grad=True", "no grad inputs"),
    probe(lambda: ad.gradgradcheck(lambda x: x.sum(), [x3()], eps=0), ValueError,
          r"gradcheck: eps must be", "gradgrad eps zero"),
    probe(lambda: make_function(forward_result=lambda x: None).apply(x3()), TypeError,
          r"Broken.forward returned NoneType; it must return a Tensor or an array", "fwd None"),
    probe(lambda: make_function(forward_result=lambda x: "abc").apply(x3()), TypeError,
          r"Broken.forward returned str", "fwd str"),
    probe(lambda: make_function(forward_result=lambda x: {"a": 1}).apply(x3()), TypeError,
          r"Broken.forward returned dict", "fwd dict"),
    probe(lambda: make_function(forward_result=lambda x: np.array(["a"])).apply(x3()), TypeError,
          r"Broken.forward's result: expected numbers", "fwd str array"),
    probe(lambda: run_backward(make_function(backward_result=lambda g, x: (g, g)), x3()),
          TypeError, r"Broken.backward returned 2 gradient\(s\) for the 1 argument\(s\) of "
          r"forward", "too many grads"),
    probe(lambda: run_backward(make_function(backward_result=lambda g, x: (g,)), x3(), 2.0),
          TypeError, r"Broken.backward returned 1 gradient\(s\) for the 2 argument", "too few"),
    probe(lambda: run_backward(make_function(backward_result=lambda g, x: np.ones(4)), x3()),
          ShapeError, r"Broken.backward: gradient of shape \(4,\) does not match its input's "
          r"shape \(3,\)", "wrong shape"),
    probe(lambda: run_backward(make_function(backward_result=lambda g, x: "g"), x3()),
          TypeError, r"Broken.backward's gradient: expected numbers", "str grad"),
    probe(lambda: make_function(backward_result=lambda g, x: np.ones(4)).apply(x3()).sum()
          .backward(create_graph=True), ShapeError, r"Broken.backward: gradient of shape \(4,\)",
          "wrong shape create_graph"),
]


@pytest.mark.parametrize(("call", "error", "message"), PROBES)
def test_checks_and_functions_misused_fail_clearly(call, error, message):
    assert_fails_clearly(call, error, message)


def test_gradcheck_of_a_scalar_reports_the_gradient_itself():
    """A Function whose backward is twice too large, summed: the report gives d sum / dx."""
    Cube = cube(rule_factor=6)  # the true rule is 3x²
    x = ad.tensor([0.5, 1.5], requires_grad=True)
    with pytest.raises(ad.GradcheckError) as caught:
        ad.gradcheck(lambda t: Cube.apply(t).sum(), [x])
    mismatch = caught.value.mismatch
    assert mismatch.index == (1,)
    assert mismatch.analytical == pytest.approx(13.5) and mismatch.expected == pytest.approx(6.75)
    assert "Jᵀu" not in str(caught.value)


def test_gradcheck_of_a_non_scalar_says_the_values_are_projected():
    double = make_function(backward_result=lambda g, x: g * 3)  # forward 2x: rule off by 1.5
    with pytest.raises(ad.GradcheckError, match=r"the values are Jᵀu, the gradient of <u, "
                                                r"output> for a random upstream u"):
        ad.gradcheck(double.apply, [x3()])


def test_anomaly_blames_a_user_file_whose_name_starts_like_the_package(tmp_path):
    user_file = tmp_path / "autodiff_train.py"
    user_file.write_text("def step(x):\n    return x.log()\n")
    namespace: dict = {}
    exec(compile(user_file.read_text(), str(user_file), "exec"), namespace)
    x = ad.tensor([-1.0], requires_grad=True)
    with ad.detect_anomaly(), pytest.raises(ad.AnomalyError) as caught:
        namespace["step"](x)
    assert f"{user_file}:2: return x.log()" in str(caught.value)


def test_anomaly_mode_silences_numpys_own_warnings():
    x = ad.tensor([-1.0, 0.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a RuntimeWarning would fail here
        with ad.detect_anomaly(), pytest.raises(ad.AnomalyError, match=r"log: produced nan"):
            x.log()
    with pytest.warns(RuntimeWarning):  # and outside it, NumPy warns as usual
        x.log()


def test_a_detect_anomaly_object_is_reusable_and_nestable():
    guard = ad.detect_anomaly()
    x = ad.tensor([-1.0], requires_grad=True)
    for _ in range(2):
        with guard, guard, pytest.raises(ad.AnomalyError):
            x.log()
    with np.errstate(invalid="ignore"):
        assert np.isnan(x.log().item())  # off again afterwards
