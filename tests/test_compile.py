"""autodiff.compile: a traced, replayed function gives what the eager one gives, forward and
backward; it traces again on a new signature; check=True catches what a tracer cannot see."""

import importlib
import re
import traceback
import warnings
from collections import namedtuple
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
from conftest import scaled
from hypothesis import given
from hypothesis import strategies as st

import autodiff as ad
from autodiff.fusion import agree
from autodiff.graph import GradMode
from autodiff.testing import programs
from models import MLP, SGD, Adam, cross_entropy, squared_error

COMPILE = importlib.import_module("autodiff.compile")  # the module (ad.compile: the function)
PROGRAM = importlib.import_module("autodiff.program")
BACKENDS = ["numpy", "numba"]  # the tests of what compile promises run on both


def same_for(step):
    """How a replay of `step` agrees with eager: bit for bit, or to the fused backend's
    tolerance on numba (its sums run in another order)."""
    return agree if step.fuse is not None else np.array_equal


def replays_as_eager(step, fn, weight, *args):
    """step(*args) is a replay: its loss and weight's gradient are eager fn's, bit for bit (to
    the fused backend's tolerance on numba)."""
    same = same_for(step)
    replayed = step(*args)
    replayed.backward()
    replayed_grad, weight.grad = weight.grad, None
    eager = fn(*args)
    eager.backward()
    assert same(replayed.data, eager.data)
    assert same(replayed_grad.data, weight.grad.data)
    weight.grad = None


def notebook_problem(dtype=np.float64, seed=0):
    rng = np.random.default_rng(seed)
    x = ad.tensor((rng.random((100, 64)) * 16).astype(dtype))
    y = ad.tensor(np.eye(10, dtype=dtype)[rng.integers(0, 10, 100)])
    w1 = ad.tensor((rng.standard_normal((64, 50)) * 0.1).astype(dtype), requires_grad=True)
    w2 = ad.tensor((rng.standard_normal((50, 10)) * 0.1).astype(dtype), requires_grad=True)
    return x, y, w1, w2


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_the_notebook_training_is_bit_identical_to_eager(dtype):
    """Replays run the same ufuncs in the same order as eager: the same bits, step after step."""
    x, y, w1, w2 = notebook_problem(dtype)
    eager_weights = [w.data.copy() for w in (w1, w2)]
    step = ad.compile(lambda x, y: squared_error((x @ w1).relu() @ w2, y))
    losses, eager_losses = [], []
    for _ in range(5):
        loss = step(x, y)
        loss.backward()
        for w in (w1, w2):
            w.data -= 1e-4 * w.grad.data
            w.grad = None
        losses.append(loss.item())
    e1, e2 = (ad.tensor(w, requires_grad=True) for w in eager_weights)
    for _ in range(5):
        loss = squared_error((x @ e1).relu() @ e2, y)
        loss.backward()
        for w in (e1, e2):
            w.data -= 1e-4 * w.grad.data
            w.grad = None
        eager_losses.append(loss.item())
    assert losses == eager_losses
    assert np.array_equal(w1.data, e1.data) and np.array_equal(w2.data, e2.data)
    assert w1.dtype == dtype


@scaled(0.2)
@pytest.mark.parametrize("lend_from", ["default", 0])  # 0: buffers for every array
@given(program=programs(), seed=st.integers(0, 2**32 - 1))
def test_compiled_and_eager_agree_on_random_programs(lend_from, program, seed):
    upstream = np.random.default_rng(seed).standard_normal(program(*program.tensors()).shape)
    step = ad.compile(program)
    with mock.patch.object(PROGRAM, "LEND_FROM", PROGRAM.LEND_FROM if lend_from else 0):
        for _ in range(3):  # the trace, then two replays (the second into the first's buffers)
            inputs = program.tensors()
            out = step(*inputs)
            out.backward(upstream)
            eager_inputs = program.tensors()
            expected = program(*eager_inputs)
            expected.backward(upstream)
            np.testing.assert_allclose(out.data, expected.data, rtol=1e-12, atol=1e-12)
            for t, e in zip(inputs, eager_inputs):
                assert (t.grad is None) == (e.grad is None)  # an unused input gets none either way
                if e.grad is not None:
                    np.testing.assert_allclose(t.grad.data, e.grad.data, rtol=1e-10, atol=1e-12)
    # replayed, not traced again; but an input no op read is guarded by identity (its values
    # may have been read outside the engine), so each new tensor there is traced again
    assert len(step.programs) == (3 if step.programs[0].unread else 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_new_shape_traces_again_and_the_old_one_is_kept(backend):
    w = ad.tensor(np.ones(3), requires_grad=True)
    step = ad.compile(lambda x: (x * w).sum(), backend=backend)
    step(ad.tensor(np.ones((2, 3))))
    step(ad.tensor(np.ones((4, 3))))
    step(ad.tensor(np.ones((2, 3))))
    assert len(step.programs) == 2
    out = step(ad.tensor(np.full((4, 3), 2.0)))
    out.backward()
    assert out.item() == 24.0 and w.grad.tolist() == [8.0, 8.0, 8.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_catches_a_value_dependent_branch(backend):
    def step(x):
        if x.data.sum() > 0:  # Python control flow on the array's values: invisible to a tracer
            return x * 2
        return x * 3

    checked = ad.compile(step, check=True, backend=backend)
    checked(ad.tensor([1.0, 2.0]))  # traced with the first branch
    assert checked(ad.tensor([3.0, 4.0])).tolist() == [6.0, 8.0]  # same branch: fine
    with pytest.raises(ad.CompileCheckError) as info:
        checked(ad.tensor([-1.0, -2.0]))
    assert str(info.value) == (
        "compile: output 0 after the replayed step differs from the eager run: the trace froze "
        "something that changed, which a tracer cannot see (Python control flow on tensor "
        "values, an array computed outside the engine, a name rebound that a function it calls "
        "reads, a model's layer replaced); call it without compile")


@pytest.mark.parametrize("backend", BACKENDS)
def test_check_runs_the_eager_function_with_the_calls_own_keywords(backend):
    def scaled(x, scale=1.0):
        return x * scale

    checked = ad.compile(scaled, check=True, backend=backend)
    for _ in range(3):  # the trace, then checked replays: each eager run gets scale=2.0 too
        assert checked(ad.tensor([1.0, 2.0]), scale=2.0).tolist() == [2.0, 4.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_kept_by_the_caller_are_never_overwritten(backend):
    w = ad.tensor([1.0, 2.0], requires_grad=True)
    step = ad.compile(lambda x: x * w, backend=backend)
    kept = [step(ad.tensor([float(i), 1.0])) for i in range(4)]
    assert [k.tolist() for k in kept] == [[0.0, 2.0], [1.0, 2.0], [2.0, 2.0], [3.0, 2.0]]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_module_and_its_optimizer_work_unchanged(backend):
    rng = np.random.default_rng(0)
    x, labels = ad.tensor(rng.standard_normal((16, 4))), rng.integers(0, 3, 16)
    models = [MLP([4, 8, 3], rng=np.random.default_rng(1)) for _ in range(2)]
    optimizers = [Adam(m.parameters(), lr=1e-2) for m in models]
    step = ad.compile(lambda x: cross_entropy(models[0](x), labels), backend=backend)
    for _ in range(4):
        for loss_of, optimizer in ((step, optimizers[0]),
                                   (lambda x: cross_entropy(models[1](x), labels),
                                    optimizers[1])):
            optimizer.zero_grad()
            loss_of(x).backward()
            optimizer.step()
    for a, b in zip(models[0].parameters(), models[1].parameters()):
        np.testing.assert_allclose(a.data, b.data, rtol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_no_grad_inside_the_step_is_respected(backend):
    w = ad.tensor([2.0], requires_grad=True)

    def step(x):
        with ad.no_grad():
            scale = w * 10  # no gradient through here, as in eager
        return (x * w * scale).sum()

    compiled = ad.compile(step, backend=backend)
    for _ in range(2):
        w.grad = None
        compiled(ad.tensor([1.0])).backward()
        assert w.grad.tolist() == [20.0]  # d(x·w·scale)/dw with scale constant


@pytest.mark.parametrize("backend", BACKENDS)
def test_create_graph_and_functions_are_refused_clearly(backend):
    w = ad.tensor([2.0], requires_grad=True)
    step = ad.compile(lambda x: (x * w * w).sum(), backend=backend)
    step(ad.tensor([1.0]))
    with pytest.raises(RuntimeError, match=re.escape(
            "backward: create_graph=True through an autodiff.compile'd function is not "
            "supported; call the function uncompiled to differentiate its gradients")):
        step(ad.tensor([1.0])).backward(create_graph=True)

    class Double(ad.Function):
        @staticmethod
        def forward(ctx, x):
            return x.data * 2

    with pytest.raises(TypeError, match="Double: autodiff.compile cannot trace"):
        ad.compile(lambda x: Double.apply(x), backend=backend)(ad.tensor([1.0]))


def test_the_tape_prints_one_line_per_op_with_shapes():
    x, y, w1, w2 = notebook_problem()
    w1.name = "w1"
    step = ad.compile(lambda x, y: squared_error((x @ w1).relu() @ w2, y))
    tape = step.tape(x, y)
    assert "# a0: argument 0, (100, 64) float64" in tape
    assert "# c0: captured w1 (64, 50) float64, requires grad" in tape
    assert "t0 = matmul(a0, c0)" in tape and "(100, 50) float64" in tape
    assert "def backward0(" in tape and "softmax_vjp(" in tape and "return [g_c0, g_c1]" in tape
    assert len([line for line in tape.splitlines() if " = " in line and "t" in line]) >= 14


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_sgd_optimizer_on_float32_parameters(backend):
    x, y, w1, w2 = notebook_problem(np.float32)
    optimizer = SGD([w1, w2], lr=1e-4)
    step = ad.compile(lambda x, y: squared_error((x @ w1).relu() @ w2, y), backend=backend)
    first = None
    for _ in range(10):
        optimizer.zero_grad()
        loss = step(x, y)
        loss.backward()
        optimizer.step()
        first = first if first is not None else loss.item()
    assert loss.dtype == np.float32 and loss.item() < first


@pytest.mark.parametrize("backend", BACKENDS)
def test_inside_forward_mode_or_anomaly_mode_the_function_runs_eagerly(backend):
    w = ad.tensor([1.5, 2.0], requires_grad=True)
    step = ad.compile(lambda x: (x * w).sin().sum(), backend=backend)
    x = ad.tensor([0.3, 0.4])
    step(x)  # traced
    step(x)  # replayed
    _, jv = ad.jvp(step, x, ad.tensor([1.0, 0.0]))  # tangents need every op: eager
    assert jv.item() == pytest.approx(np.cos(0.3 * 1.5) * 1.5)
    with ad.detect_anomaly(), pytest.raises(ad.AnomalyError, match="log: produced nan"):
        ad.compile(lambda t: t.log(), backend=backend)(ad.tensor([-1.0]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tensor_given_by_keyword_is_an_argument_read_at_each_replay(backend):
    step = ad.compile(lambda x, scale, shift=0.0: x * scale + shift, backend=backend)
    x = ad.tensor([1.0, 2.0])
    for value in (2.0, 3.0, 4.0):  # traced once, then replayed with each call's own scale
        scale = ad.tensor(value, requires_grad=True)
        out = step(x, scale=scale, shift=1.0)
        assert out.tolist() == [value + 1.0, 2 * value + 1.0]
        out.sum().backward()
        assert scale.grad.item() == 3.0
    assert len(step.programs) == 1
    assert step(x=x, scale=ad.tensor(5.0)).tolist() == [5.0, 10.0]  # every tensor by keyword


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_keyword_only_tensor_is_refused(backend):
    def scaled(x, *, scale):
        return x * scale

    step = ad.compile(scaled, backend=backend)
    with pytest.raises(TypeError) as info:
        step(ad.tensor([1.0]), scale=ad.tensor(2.0))
    assert str(info.value) == ("compile: scaled takes a Tensor as a keyword-only argument, which "
                               "a trace would freeze; make it a positional parameter")


def test_a_gradient_taken_inside_a_compiled_function_is_refused_in_full():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError) as info:
        ad.compile(lambda x: ad.grad((x * x).sum(), [x])[0])(x)
    assert str(info.value) == (
        "compile: a gradient taken (autodiff.grad, a function transform) inside a compiled "
        "function would run once, while it is traced, and never when it is replayed; "
        "differentiate the compiled function from outside, or run it uncompiled")


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_tape_traces_with_the_calls_own_keywords(backend):
    step = ad.compile(lambda x, scale=1.0: (x * scale).sum(), backend=backend)
    tape = step.tape(ad.tensor([1.0, 2.0]), scale=3.0)
    assert "= 3.0" in tape and "= 1.0" not in tape
    if backend == "numba":
        assert "\n\n# a fused kernel, compiled by numba\ndef kernel0(" in tape


def test_under_anomaly_detection_a_compiled_function_runs_as_written():
    """Anomaly detection watches every op, which a replay does not run: the function runs
    eagerly, with the call's keywords."""
    step = ad.compile(lambda x, scale=1.0: x * scale)
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    step(x, scale=2.0), step(x, scale=2.0)
    with ad.detect_anomaly():
        out = step(x, scale=3.0)
    assert out.tolist() == [3.0, 6.0] and out.grad_fn.name == "mul"


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_argument_modified_in_place_before_backward_is_refused_as_in_eager(backend):
    w = ad.tensor([1.0, 2.0], requires_grad=True)
    step = ad.compile(lambda x: (x * w).sum(), backend=backend)
    step(ad.tensor([3.0, 4.0]))  # traced
    x = ad.tensor([3.0, 4.0])
    loss = step(x)  # replayed: its backward reads x (d/dw = x)
    x.zero_()
    with pytest.raises(RuntimeError, match="modified in place after it ran"):
        loss.backward()


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_guard_retraces_on_what_the_trace_was_specialised_to(backend):
    w = ad.tensor(np.ones(3), requires_grad=True)
    step = ad.compile(lambda x, scale, *, power=1: ((x * w) * scale) ** power, backend=backend)
    x = ad.tensor(np.arange(3.0))
    assert step(x, 2.0).tolist() == [0.0, 2.0, 4.0]
    assert step(x, 3.0).tolist() == [0.0, 3.0, 6.0]  # another value: traced again
    assert step(x, 3.0, power=2).tolist() == [0.0, 9.0, 36.0]  # a keyword argument too
    assert step(x, 3).tolist() == [0.0, 3.0, 6.0]  # 3 is not 3.0: an int traces again
    assert len(step.programs) == 4
    with ad.no_grad():  # grad mode is part of the guard
        assert not step(x, 2.0).requires_grad
    assert step(x, 2.0).requires_grad
    w.requires_grad = False  # a captured tensor's facts are guarded as well
    assert not step(x, 2.0).requires_grad
    assert len(step.programs) == 6
    guard = step.tape(x, 2.0).split("def forward")[0]
    assert "args[0].data.shape == (3,)" in guard and "captured[0].requires_grad is False" in guard


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_unhashable_argument_is_guarded_by_identity(backend):
    step = ad.compile(lambda x, factors: x * factors[0], backend=backend)
    factors = [2.0]
    x = ad.tensor([1.0, 2.0])
    assert step(x, factors).tolist() == [2.0, 4.0]
    assert step(x, [5.0]).tolist() == [5.0, 10.0]  # another list: traced again
    assert len(step.programs) == 2


def test_the_backward_fits_a_contribution_only_where_the_walker_would():
    """The rules run once at trace time: a broadcast input's contribution gets sum_to, one of
    another dtype gets astype, and nothing else is wrapped."""
    b = ad.tensor(np.ones(3, np.float32), requires_grad=True)
    w = ad.tensor(np.ones((2, 3)), requires_grad=True)
    step = ad.compile(lambda x: ((x * w) * b).sum())
    x = ad.tensor(np.ones((2, 3)))
    backward = step.tape(x).split("def backward0")[1].splitlines()
    fitted = [line for line in backward if "sum_to(" in line or "astype(" in line]
    assert len(fitted) == 1, backward
    assert fitted[0].strip().startswith("g_c1 = sum_to(mul_db(")
    assert ".astype('float32')" in fitted[0]
    out = step(x)
    out.backward()
    assert b.grad.dtype == np.float32 and b.grad.tolist() == [2.0, 2.0, 2.0]
    assert w.grad.tolist() == [[1.0] * 3] * 2


def test_the_compiler_page_shows_the_tape_of_the_notebook_step():
    readme = (Path(__file__).resolve().parents[1] / "docs" / "compiler.md").read_text()
    shown = re.search(r"```\n(# a0: argument 0.*?)```", readme, re.S)
    x, y, w1, w2 = notebook_problem()
    w1.name, w2.name = "w1", "w2"
    # written at a module's top level, as the page's reader would: w1 and w2 are globals
    module = {"squared_error": squared_error, "w1": w1, "w2": w2}
    step = ad.compile(eval("lambda x, y: squared_error((x @ w1).relu() @ w2, y)", module))
    assert shown is not None and shown.group(1) == step.tape(x, y) + "\n"


def test_a_gradient_array_the_backward_owns_is_added_into_in_place():
    """w feeds four products: its first contribution is g_t1 itself (add passes its gradient
    on), so the second makes a new array; the later ones are added into that one in place.
    The gradients are eager's, bit for bit."""
    w = ad.tensor([0.5, -1.5, 2.0], requires_grad=True)
    step = ad.compile(lambda x: (x * w + w * w + (w + x)).sum())
    x = ad.tensor([1.0, 2.0, 3.0])
    backward = step.tape(x).split("def backward0")[1]
    assert backward.count("g_c0 += ") == 2 and backward.count("g_c0 = g_c0 + ") == 1, backward
    step(x).backward()
    compiled = w.grad.data.copy()
    w.grad = None
    (x * w + w * w + (w + x)).sum().backward()
    np.testing.assert_array_equal(compiled, w.grad.data)


def test_a_trace_puts_back_the_tracing_state_it_found():
    """trace() inside trace(): the outer one notes every op, the inner one's too, and goes on
    tracing into its own effects after the inner one ends; both are off once it ends."""
    x = ad.tensor([1.0, 2.0])
    during = []

    def outer(x):
        COMPILE.trace(lambda x: x * 2, (x,), {})
        during.append((GradMode.tracing, GradMode.effects))
        return x + 1

    _, entries, _, effects = COMPILE.trace(outer, (x,), {})
    assert during == [(True, effects)] and [e.op.name for e in entries] == ["mul", "add"]
    assert GradMode.tracing is False and GradMode.effects is None


def test_a_gradient_array_a_rule_made_is_added_into_in_place():
    """w's first contribution is a new array mul's rule made: the backward owns it, so the
    second is added into it (``+=``), as the walker adds into a .grad it made."""
    w = ad.tensor([0.5, -1.5, 2.0], requires_grad=True)
    step = ad.compile(lambda x: (w * x + w * 3.0).sum())
    x = ad.tensor([1.0, 2.0, 3.0])
    backward = step.tape(x).split("def backward0")[1]
    assert "    g_c0 = mul_da(" in backward and "    g_c0 += mul_da(" in backward, backward
    replays_as_eager(step, lambda x: (w * x + w * 3.0).sum(), w, x)


def test_one_gradient_array_the_backward_returns_for_two_leaves_becomes_two_grads():
    """b * 2 + (a + c) * x: add hands a and c the one new array mul's rule made, the second
    and third of the three the compiled backward returns. Each leaf keeps its own .grad, so a
    second backward adds into each once."""
    a, b, c = (ad.tensor([1.0, 2.0], requires_grad=True) for _ in range(3))
    step = ad.compile(lambda x: (b * 2 + (a + c) * x).sum())
    x = ad.tensor([1.0, 3.0])
    step(x)  # the trace (eager, no backward)
    for _ in range(2):
        step(x).backward()
    assert a.grad.data is not c.grad.data
    assert a.grad.tolist() == c.grad.tolist() == [2.0, 6.0] and b.grad.tolist() == [4.0, 4.0]


def test_an_expression_computed_twice_is_computed_once():
    """(x * w).exp() written twice: the tape computes it once, and the one backward it gets
    passes on both consumers' gradients summed (within 4 ulp of eager, which sums after)."""
    w = ad.tensor([0.5, -1.5, 2.0], requires_grad=True)

    def f(x):
        return ((x * w).exp() + (x * w).exp() * 2).sum()

    step = ad.compile(f)
    x = ad.tensor([1.0, 2.0, 3.0])
    tape = step.tape(x)
    assert tape.count("= exp(") == 1 and tape.count("= mul(") == 2 and tape.count("exp_vjp(") == 1
    out = step(x)
    out.backward()
    compiled = w.grad.data.copy()
    w.grad = None
    expected = f(x)
    expected.backward()
    assert out.item() == expected.item()
    np.testing.assert_array_max_ulp(compiled, w.grad.data, maxulp=4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_and_ops_under_another_grad_mode_are_never_merged(backend):
    w = ad.tensor([1.0, 2.0], requires_grad=True)

    def f(x):
        with ad.no_grad():
            frozen = (x * w).sum()
        return (x * w).sum() * frozen, x.exp(), x.exp()

    step = ad.compile(f, backend=backend)
    x = ad.tensor([0.0, 1.0])
    step(x)
    loss, e1, e2 = step(x)
    assert e1.data is not e2.data and e1.tolist() == e2.tolist()
    loss.backward()
    assert w.grad.tolist() == [0.0, 2.0]  # d/dw (x·w)·frozen = x·frozen, and frozen = 2


def test_a_parameter_that_is_not_a_python_literal_is_held_as_a_constant():
    """clamp(min=-inf): repr gives 'inf', which is no Python literal, so the source names it."""
    w = ad.tensor([1.0, -2.0], requires_grad=True)
    step = ad.compile(lambda x: (x * w).clamp(min=float("-inf"), max=1.0).sum())
    x = ad.tensor([1.0, 2.0])
    step(x)
    out = step(x)
    out.backward()
    assert out.item() == -3.0 and w.grad.tolist() == [1.0, 2.0]


def test_a_tensor_passed_twice_is_traced_as_one_and_guarded_as_one():
    step = ad.compile(lambda a, b: (a * 2 + b).sum())
    x, z = ad.tensor([1.0, 2.0]), ad.tensor([10.0, 20.0])
    assert step(x, x).item() == step(x, x).item() == 9.0
    assert step(x, z).item() == 36.0  # two tensors now: the one-slot program does not apply
    assert len(step.programs) == 2


def test_an_argument_the_function_also_reads_by_name_is_guarded_by_identity():
    """step(w) where the function multiplies its argument by the global-like w: traced, both
    are one slot; called with another tensor, the guard fails and the trace is redone."""
    w = ad.tensor([1.0, 1.0], requires_grad=True)

    def f(a):
        return (a * w).sum()

    step = ad.compile(f)
    x = ad.tensor([1.0, 2.0], requires_grad=True)  # the same facts as w: only identity differs
    assert step(w).item() == step(w).item() == 2.0
    assert step(x).item() == f(x).item() == 3.0
    assert step(x).item() == 3.0 and len(step.programs) == 2

    weights = {"params": [w]}  # the same, reached through a list the function reads by name
    by_list = ad.compile(eval("lambda a: (a * params[0]).sum()", weights))
    assert by_list(w).item() == by_list(w).item() == 2.0
    assert by_list(x).item() == 3.0


def test_compile_refuses_what_it_cannot_use_by_name():
    with pytest.raises(TypeError, match=r"compile: expected a function to trace, got Tensor"):
        ad.compile(ad.tensor([1.0]))
    for size in [0, True, 2.0]:
        with pytest.raises(ValueError, match=rf"compile: cache_size must be an int ≥ 1 .* got "
                                             rf"{size!r}"):
            ad.compile(lambda x: x * 2, cache_size=size)


def _set_grad(x):
    x.grad = ad.ones_like(x)  # a gradient the program would have to make up
    return x * 2


def _forward_mode(x):
    return ad.jvp(lambda t: t * t, x, ad.ones_like(x))[1]


ACTING_OUTSIDE_THE_OPS = {  # what each does, in the refusal's words: work a replay would skip
    r"a gradient taken \(autodiff.grad": lambda x: ad.grad((x * x).sum(), x),
    r"setting \.grad to a tensor": _set_grad,
    r"an in-place zero_ while recording": lambda x: (x * 2).zero_(),
    r"item\(\) \(a tensor's value as a Python number": lambda x: x * x.sum().item(),
    r"autodiff.randn \(a random draw\)": lambda x: x + ad.randn(3),
    r"autodiff.rand \(a random draw\)": lambda x: x + ad.rand(3),
    "a Tensor made from another one's values": lambda x: ad.tensor(x * 2),
    "forward mode": _forward_mode,
    r"bool\(\) of a tensor \(an if or a while on its values\)":
        lambda x: x * 2 if x.sum() > 0 else x * 3,
}


@pytest.mark.parametrize("what", list(ACTING_OUTSIDE_THE_OPS))
@pytest.mark.parametrize("backend", BACKENDS)
def test_work_a_replay_would_not_repeat_is_refused_while_tracing(what, backend):
    """A trace records ops; these act on .grad, a random generator or values outside them, so
    a replay would silently skip them. Uncompiled, the same function runs."""
    fn = ACTING_OUTSIDE_THE_OPS[what]
    x = ad.tensor([1.0, 2.0, 3.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=rf"compile: {what}.* inside a compiled function would "
                                           "run once, while it is traced, and never when it is "
                                           "replayed; "):
        ad.compile(fn, backend=backend)(x)
    fn(x)


@given(first=st.lists(st.floats(-3, 3), min_size=4, max_size=4),
       second=st.lists(st.floats(-3, 3), min_size=4, max_size=4))
@pytest.mark.parametrize("backend", BACKENDS)
def test_values_that_pass_no_gradient_are_replayed_not_frozen(backend, first, second):
    """detach, comparisons and a cast to integers make constants, yet they depend on the input:
    a replay computes them again (they were frozen at the trace before they were ops)."""
    w = ad.tensor([0.5, -1.0, 2.0, 1.5], requires_grad=True)

    def f(x):
        mask = (x > 0).to(ad.float64) + (x <= -1).to(ad.float64) * (x != 2).to(ad.float64)
        count = ((x >= 1).to(ad.int64) + (x < 0.5).to(ad.int64)).sum().to(ad.float64)
        return (w * x.detach() * mask).sum() + count * (x == x).to(ad.float64).sum()

    step = ad.compile(f, backend=backend)
    step(ad.tensor(first))  # the trace
    replays_as_eager(step, f, w, ad.tensor(second))


@pytest.mark.parametrize("backend", BACKENDS)
def test_rebinding_a_name_the_function_reads_traces_again(backend):
    """A new tensor, a new number under a global or closure name: the guard sees the name
    bound to something else and traces again, so the new value is used (and gets .grad)."""
    module = {"w": ad.tensor([1.0, 1.0], requires_grad=True), "scale": 2.0}
    step = ad.compile(eval("lambda x: (x * w).sum() * scale", module), backend=backend)
    x = ad.tensor([1.0, 2.0])
    assert step(x).item() == step(x).item() == 6.0
    module["w"] = ad.tensor([10.0, 10.0], requires_grad=True)  # a notebook cell run again
    step(x).backward()
    assert module["w"].grad.tolist() == [2.0, 4.0]
    module["scale"] = 3.0
    assert step(x).item() == 90.0
    module["scale"] = 3.0  # an equal number: no new trace
    assert step(x).item() == 90.0 and len(step.programs) == 3

    weights = {"params": [ad.tensor([1.0, 1.0], requires_grad=True)]}
    by_list = ad.compile(eval("lambda x: (x * params[0]).sum()", weights), backend=backend)
    assert by_list(x).item() == by_list(x).item() == 3.0
    weights["params"][0] = ad.tensor([5.0, 5.0], requires_grad=True)  # replaced in the list
    assert by_list(x).item() == 15.0
    layers = {"layers": {("fc", "weight"): ad.tensor([1.0, 1.0], requires_grad=True)}}
    by_key = ad.compile(eval("lambda x: (x * layers[('fc', 'weight')]).sum()", layers),
                        backend=backend)
    assert by_key(x).item() == by_key(x).item() == 3.0
    layers["layers"][("fc", "weight")] = ad.tensor([2.0, 2.0], requires_grad=True)
    assert by_key(x).item() == 6.0

    bias = ad.tensor(1.0)

    def with_bias(x):
        return (x + bias).sum()

    closure_step = ad.compile(with_bias, backend=backend)
    assert closure_step(x).item() == closure_step(x).item() == 5.0
    bias = ad.tensor(5.0)  # noqa: F841 (read by with_bias, through its closure)
    assert closure_step(x).item() == 13.0


@given(first=st.lists(st.integers(0, 2), min_size=5, max_size=5),
       second=st.lists(st.integers(0, 2), min_size=5, max_size=5))
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_index_from_a_tensor_argument_is_read_at_each_call(backend, first, second):
    """Labels passed as a Tensor: an index (x[labels], cross_entropy's pick) reads them from
    their slot at every replay, forward and backward, so the new labels are used."""
    logits = ad.tensor(np.random.default_rng(0).standard_normal((5, 3)), requires_grad=True)

    def loss(logits, labels):
        return cross_entropy(logits, labels) + logits[labels].sum() + logits[:, 0][labels].sum()

    step = ad.compile(loss, backend=backend)
    step(logits, ad.tensor(first))  # the trace
    labels = ad.tensor(second)
    replays_as_eager(step, loss, logits, logits, labels)
    assert "index=(p1_index_0, a1)" in step.tape(logits, labels) and len(step.programs) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_index_tensor_the_function_reads_by_name_is_read_at_each_call(backend):
    """Labels the step reads from outside (not an argument), changed in place between calls:
    the replay indexes by their values now, as eager does."""
    logits = ad.tensor(np.arange(12.0).reshape(4, 3), requires_grad=True)
    labels = ad.tensor([0, 1, 2, 0])

    def loss(logits):
        return cross_entropy(logits, labels) + logits[:, 0][labels].sum()

    step = ad.compile(loss, backend=backend)
    step(logits)  # the trace
    labels.data[:] = [2, 2, 1, 0]
    replays_as_eager(step, loss, logits, logits)
    assert step.tape(logits).count("non_negative(c0)") == 1  # read twice, checked once


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_index_by_an_arguments_array_is_read_at_each_call(backend):
    """x[i.data]: the index is the argument's own array, read from its slot at every replay."""
    x = ad.tensor(np.arange(5.0), requires_grad=True)

    def picked(x, i):
        return (x[i.data] * 2).sum()

    step = ad.compile(picked, backend=backend)
    step(x, ad.tensor([0, 1]))  # the trace
    replays_as_eager(step, picked, x, x, ad.tensor([4, 2]))
    assert "index=a1" in step.tape(x, ad.tensor([4, 2]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_index_tuple_of_tensor_arguments_is_read_at_each_call(backend):
    """x[i, j] and x[(i,)], both parts and the only part arguments: the index tuple is written
    from their slots, so each replay picks by the new values."""
    x = ad.tensor(np.arange(12.0).reshape(3, 4), requires_grad=True)

    def picked(x, i, j):
        return (x[i, j] * 2).sum() + x[(i,)].sum()

    step = ad.compile(picked, backend=backend)
    step(x, ad.tensor([0, 1]), ad.tensor([1, 3]))  # the trace
    replays_as_eager(step, picked, x, x, ad.tensor([2, 2]), ad.tensor([0, 2]))
    tape = step.tape(x, ad.tensor([2, 2]), ad.tensor([0, 2]))
    assert "index=(a1, a2)" in tape and "index=(a1,)" in tape


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_function_that_asks_whether_a_grad_is_none_is_traced_again_when_it_changes(backend):
    """Reading w.grad guards its None-ness: the branch taken is the one eager takes."""
    w = ad.tensor([1.0, 2.0], requires_grad=True)

    def scaled(x):
        return (x * (2.0 if w.grad is None else 3.0)).sum()

    step = ad.compile(scaled, backend=backend)
    x = ad.tensor([1.0, 4.0])
    assert step(x).item() == step(x).item() == 10.0  # the trace, then a replay
    w.grad = ad.tensor([0.0, 0.0])
    assert step(x).item() == 15.0 and len(step.programs) == 2


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_ops_indexing_by_constant_arrays_each_keep_their_own(backend):
    """Two picks by index arrays the function holds: each op (and each rule) is given its own
    constant, never the other's."""
    x = ad.tensor(np.arange(5.0), requires_grad=True)

    def picked(x):
        return x[np.array([0, 2])].sum() + (x[np.array([1, 1, 4])] * 3).sum()

    step = ad.compile(picked, backend=backend)
    step(x)  # the trace
    x.grad = None
    replays_as_eager(step, picked, x, x)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_value_returned_and_copied_out_is_not_the_copys_array(backend):
    """h is returned and copied into kept: the output has its own array, so changing kept
    afterwards leaves it as it was."""
    kept = ad.tensor(np.zeros(3))

    def step(x):
        h = x * 2
        with ad.no_grad():
            kept.copy_(h)
        return h

    compiled = ad.compile(step, backend=backend)
    compiled(ad.tensor([1.0, 2.0, 3.0]))  # the trace
    out = compiled(ad.tensor([4.0, 5.0, 6.0]))
    assert kept.tolist() == [8.0, 10.0, 12.0]
    kept.data[:] = 0
    assert out.tolist() == [8.0, 10.0, 12.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_index_negative_when_traced_may_be_negative_at_a_replay(backend):
    """x[i] with i < 0 counts from the end, in eager and in a replay: the non-negative check
    guards only indices that were all ≥ 0 when traced (labels)."""
    x = ad.tensor(np.arange(5.0), requires_grad=True)
    step = ad.compile(lambda x, i: (x[i] * x[i]).sum(), backend=backend)
    step(x, ad.tensor([-1, 0]))  # the trace
    replays_as_eager(step, lambda x, i: (x[i] * x[i]).sum(), x, x, ad.tensor([-2, 3]))
    assert "non_negative" not in step.tape(x, ad.tensor([-2, 3]))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tensor_argument_no_op_reads_is_guarded_by_identity(backend):
    """Its values were used some other way (through .data here), which the trace froze: a new
    tensor there traces again."""
    def scaled(x, t):
        return (x * float(t.data.sum())).sum()

    step = ad.compile(scaled, backend=backend)
    x = ad.tensor([1.0, 2.0])
    assert step(x, ad.tensor([1.0, 1.0])).item() == 6.0
    assert step(x, ad.tensor([2.0, 2.0])).item() == 12.0 and len(step.programs) == 2
    t = ad.tensor([2.0, 2.0])
    assert step(x, t).item() == 12.0
    t.data = np.array([3.0, 3.0])  # the same tensor, a new array
    assert step(x, t).item() == 18.0
    assert "argument 1, (2,) float64, read by no op: guarded by identity" in step.tape(x, x * 1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_mask_that_selects_another_count_is_refused_at_replay(backend):
    """x[x > 1]: the trace knows how many elements the mask picked; a replay that picks as many
    is right, one that picks another count raises (the shape depends on values)."""
    step = ad.compile(lambda x: (x[x > 1] * 2).sum(), backend=backend)
    assert step(ad.tensor([0.0, 2.0, 3.0])).item() == 10.0
    assert step(ad.tensor([5.0, 0.0, 4.0])).item() == 18.0
    with pytest.raises(ad.CompileCheckError, match=r"compile: indexing by a boolean mask gave "
                                                   r"shape \(3,\) where the traced call's gave "
                                                   r"\(2,\); .* use autodiff.where") as info:
        step(ad.tensor([5.0, 6.0, 7.0]))
    frames = traceback.extract_tb(info.tb)  # the generated code names itself in a traceback
    assert any(frame.filename == "<autodiff.compile>" for frame in frames)


Batch = namedtuple("Batch", "x y")


@pytest.mark.parametrize("pack", [
    lambda x, y: ([x, y],), lambda x, y: ((x, y),), lambda x, y: ({"x": x, "y": y},),
    lambda x, y: (Batch(x, y),), lambda x, y: ({"pair": [x, y]},)], ids=[
    "list", "tuple", "dict", "namedtuple", "nested"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_tensors_inside_a_list_tuple_or_dict_argument_are_arguments(pack, backend):
    """As jax.jit takes a pytree's leaves: each tensor inside is a slot, read from where it
    stands at every call, so a new batch in the same container (or a mutated list) is used."""
    w = ad.tensor([1.0, -1.0], requires_grad=True)

    def loss(batch):
        parts = list(batch.values())[0] if isinstance(batch, dict) and "pair" in batch else batch
        x, y = (parts["x"], parts["y"]) if isinstance(parts, dict) else parts
        return ((x * w - y) ** 2).sum()

    step = ad.compile(loss, backend=backend)
    rng = np.random.default_rng(0)
    container = None
    for _ in range(3):
        x, y = ad.tensor(rng.standard_normal(2)), ad.tensor(rng.standard_normal(2))
        container, = pack(x, y)
        replays_as_eager(step, loss, w, container)
    assert len(step.programs) == 1
    if isinstance(container, list):  # the same list, its tensors replaced
        container[0] = ad.tensor([5.0, 5.0])
        assert step(container).item() == loss(container).item()
    assert "# a0_0: argument 0" in step.tape(container)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tensor_inside_a_keyword_argument_is_an_argument_too(backend):
    step = ad.compile(lambda x, extra=None: (x * extra[0]).sum(), backend=backend)
    for value in (2.0, 7.0):
        assert step(ad.tensor([1.0]), extra=[ad.tensor([value])]).item() == value
    assert len(step.programs) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_negative_label_at_a_replay_is_refused_as_cross_entropy_refuses_it_eagerly(backend):
    """cross_entropy checks its labels in Python, which a replay does not run again; NumPy
    would take -1 as the last class. The replay checks the index read from the labels' slot."""
    logits = ad.tensor(np.zeros((3, 4)), requires_grad=True)
    step = ad.compile(cross_entropy, backend=backend)
    step(logits, ad.tensor([0, 1, 2]))
    assert step(logits, ad.tensor([3, 3, 0])).item() == pytest.approx(np.log(4))
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\]"):
        cross_entropy(logits, ad.tensor([-1, 1, 2]))
    with pytest.raises(ad.CompileCheckError) as info:
        step(logits, ad.tensor([-1, 1, 2]))
    assert str(info.value) == (
        "compile: an index read from a tensor holds -1 where the traced call's held no negative "
        "value; the checks the function made on it in Python (as cross_entropy's on its labels) "
        "are not run again by a replay, and NumPy would count it from the end; call the "
        "function uncompiled to have them checked")
    assert "    non_negative(a1)\n" in step.tape(logits, ad.tensor([0, 1, 2]))


# ---------------------------------------------------------------- buffers lent to a call
@pytest.fixture
def lend_every_array(monkeypatch):
    """Buffers for arrays of any size, so the notebook's small step has them."""
    monkeypatch.setattr(PROGRAM, "LEND_FROM", 0)


def notebook_step():
    x, y, w1, w2 = notebook_problem()
    loss = lambda x, y: squared_error((x @ w1).relu() @ w2, y)  # noqa: E731
    return ad.compile(loss), loss, (w1, w2), (x, y)


def gradients(loss, weights):
    """loss.backward(); the weights' gradients, taken off them."""
    loss.backward()
    found = [w.grad.data for w in weights]
    for w in weights:
        w.grad = None
    return found


@pytest.mark.parametrize("extra", [0, 1])
def test_an_array_gets_a_buffer_from_lend_from_bytes_on(monkeypatch, extra):
    """g_t1 and t0 are 100×50 float64, 40,000 bytes: lent a buffer when that is LEND_FROM,
    not when LEND_FROM is a byte more."""
    monkeypatch.setattr(PROGRAM, "LEND_FROM", 100 * 50 * 8 + extra)
    step, _, _, (x, y) = notebook_step()
    step(x, y)
    tape = step.tape(x, y)
    assert ("into=g_t1_buffer" in tape) == ("out=t0_buffer" in tape) == (extra == 0), tape


def test_the_forward_and_backward_write_into_buffers_reused_once_backward_has_run(lend_every_array):
    step, _, weights, (x, y) = notebook_step()
    step(x, y)  # traced
    program = step.program(x, y)
    tape = step.tape(x, y)
    assert "t0 = matmul(a0, c0, out=t0_buffer)" in tape
    assert "g_t1 = matmul_da(g_t2, t2, t1, c1, into=g_t1_buffer)" in tape
    [line] = [line for line in program.lines if line.out == "g_t1"]
    assert (line.into, line.lent) == ("g_t1_buffer", True)  # the record says whose array
    loss = step(x, y)
    lent = loss.grad_fn.buffers
    assert lent and not program.buffers.free  # the call's values, lent until its backward
    gradients(loss, weights)
    assert program.buffers.free == [lent] and len(program.gradient_buffers[0].free) == 1
    assert step(x, y).grad_fn.buffers is lent  # the next call writes into the same arrays


def test_a_second_call_before_the_first_backward_gets_buffers_of_its_own(lend_every_array):
    """loss1's backward reads loss1's forward values, though loss2 was computed after it."""
    step, loss_of, weights, (x, y) = notebook_step()
    other_x = ad.tensor(x.data[::-1].copy())
    step(x, y)  # traced
    first, second = step(x, y), step(other_x, y)
    assert first.grad_fn.buffers is not second.grad_fn.buffers
    for replayed, inputs in [(first, (x, y)), (second, (other_x, y))]:
        expected = gradients(loss_of(*inputs), weights)
        for g, e in zip(gradients(replayed, weights), expected):
            np.testing.assert_array_equal(g, e)


def test_a_retained_graph_keeps_its_values_while_the_step_runs_again(lend_every_array):
    step, loss_of, weights, (x, y) = notebook_step()
    step(x, y)  # traced
    kept = step(x, y)
    kept.backward(retain_graph=True)  # its values stay lent to it
    for w in weights:
        w.grad = None
    step(ad.tensor(x.data * 0.5), y).backward()
    for w in weights:
        w.grad = None
    expected = gradients(loss_of(x, y), weights)
    for g, e in zip(gradients(kept, weights), expected):
        np.testing.assert_array_equal(g, e)


def test_a_gradient_the_caller_keeps_is_never_a_buffer(lend_every_array):
    """relu's rule could write into a buffer, but add passes that gradient on to b as it is:
    b.grad would be the buffer, overwritten by the next call. The trace sees it."""
    rng = np.random.default_rng(0)
    w = ad.tensor(rng.standard_normal((4, 3)), requires_grad=True)
    b = ad.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    step = ad.compile(lambda x: (x @ w + b).relu().sum())
    x = ad.tensor(rng.standard_normal((5, 4)))
    assert "relu_vjp(g_t2, t2, t1)" in step.tape(x)  # no into=
    [line] = [line for line in step.program(x).lines if line.function == "relu_vjp"]
    assert (line.into, line.lent) == (None, False)
    step(x).backward()
    kept, b.grad = b.grad, None
    before = kept.data.copy()
    step(ad.tensor(-x.data)).backward()
    np.testing.assert_array_equal(kept.data, before)


def test_tracing_at_a_point_where_a_gradient_is_infinite_warns_nothing():
    """sqrt at 0: the trace works the backward out on the traced values (for shapes) without
    NumPy's divide-by-zero warning; only a backward the caller runs computes it."""
    step = ad.compile(lambda x: x.sqrt().sum())
    x = ad.tensor([0.0, 4.0], requires_grad=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert step(x).item() == step(x).item() == 2.0


@pytest.mark.parametrize("backend", BACKENDS)
def test_outputs_that_need_no_gradient_are_replayed_without_one(backend):
    """A loss, a number computed without w, the argument and the weight themselves: only the
    loss requires grad in a replay, and the tensors returned as given are those tensors, as
    in eager."""
    w = ad.tensor([1.0, 2.0], requires_grad=True)
    step = ad.compile(lambda x: ((x * w).sum(), (x * 2).sum(), x, w), backend=backend)
    x = ad.tensor([1.0, 3.0])
    for outputs in (step(x), step(x)):  # the trace, then a replay
        assert [out.requires_grad for out in outputs] == [True, False, False, True]
        assert [out.item() for out in outputs[:2]] == [7.0, 8.0]
        assert outputs[2] is x and outputs[3] is w and w.grad_fn is None


def test_two_outputs_with_gradients_lend_no_forward_buffers(lend_every_array):
    """Two outputs' backwards run separately: neither can tell when the other's has run."""
    w = ad.tensor([1.0, -2.0, 3.0], requires_grad=True)
    step = ad.compile(lambda x: ((x * w).relu().sum(), (x * w).exp().sum()))
    x = ad.tensor([0.5, 1.0, 1.5])
    assert "out=" not in step.tape(x).split("def backward")[0]
    step(x)  # traced
    first, second = step(x)
    first.backward()
    step(ad.tensor([4.0, 5.0, 6.0]))
    second.backward()  # reads the first call's x * w
    np.testing.assert_allclose(w.grad.data, (x.data * (x.data * w.data > 0)
                                             + x.data * np.exp(x.data * w.data)), rtol=1e-15)


def test_under_no_grad_the_buffers_are_given_back_at_once(lend_every_array):
    step, _, _, (x, y) = notebook_step()
    with ad.no_grad():
        step(x, y)  # traced
        step(x, y)
        assert len(step.program(x, y).buffers.free) == 1


def test_an_output_that_views_an_intermediate_is_not_overwritten_by_the_next_call(
        lend_every_array):
    """(x * 2).reshape(-1) returns a view of the product: the product gets no buffer, which
    the next call would write into under the first call's output."""
    step = ad.compile(lambda x: (x * 2).reshape(-1))
    x = ad.tensor([[1.0, 2.0], [3.0, 4.0]])
    step(x)  # traced
    first = step(x)
    step(ad.tensor(np.zeros((2, 2))))
    assert first.tolist() == [2.0, 4.0, 6.0, 8.0]


def test_a_graph_walked_twice_in_a_step_lends_each_buffer_once(lend_every_array):
    """backward(retain_graph=True), then backward: both walks write g_t1 into one buffer,
    which the program takes once, and the gradients are eager's."""
    x, y, w1, w2 = notebook_problem()

    def step(x, y):
        loss = squared_error((x @ w1).relu() @ w2, y)
        loss.backward(retain_graph=True)
        loss.backward()
        return loss

    compiled = ad.compile(step)
    compiled(x, y)  # traced
    w1.grad = w2.grad = None
    tape = compiled.tape(x, y)
    [forward] = [line for line in tape.splitlines() if line.startswith("def forward")]
    assert tape.count("into=g_t1_buffer") == 2 and forward.count("g_t1_buffer") == 1, tape
    for _ in range(2):  # the second call writes into the buffer the first gave back
        compiled(x, y)
        replayed = [w.grad.data for w in (w1, w2)]
        w1.grad = w2.grad = None
        step(x, y)
        for g, w in zip(replayed, (w1, w2)):
            np.testing.assert_array_equal(g, w.grad.data)
        w1.grad = w2.grad = None


def test_float32_buffers_hold_float32_and_replay_as_eager(lend_every_array):
    x, y, w1, w2 = notebook_problem(np.float32)
    loss = lambda x, y: squared_error((x @ w1).relu() @ w2, y)  # noqa: E731
    step = ad.compile(loss)
    step(x, y)  # traced
    for _ in range(2):  # the second writes into the buffers the first gave back
        replayed = step(x, y)
        assert replayed.dtype == np.float32
        expected = gradients(loss(x, y), (w1, w2))
        for g, e in zip(gradients(replayed, (w1, w2)), expected):
            assert g.dtype == np.float32
            np.testing.assert_array_equal(g, e)


def test_buffers_given_back_by_many_calls_are_kept_only_up_to_a_bound(lend_every_array):
    """Four calls' values lent at once, then their backwards: the program keeps KEPT sets of
    buffers for the next calls and lets the rest go."""
    step, _, weights, (x, y) = notebook_step()
    step(x, y)  # traced
    for loss in [step(x, y) for _ in range(4)]:
        gradients(loss, weights)
    assert len(step.program(x, y).buffers.free) == PROGRAM.Buffers.KEPT


def test_arrays_smaller_than_a_mallocs_mmap_threshold_are_not_lent():
    """Below 128 KiB malloc's free lists are faster than NumPy's out= (the notebook step)."""
    step, _, _, (x, y) = notebook_step()
    assert "out=" not in step.tape(x, y) and "into=" not in step.tape(x, y)
    rng = np.random.default_rng(0)
    w = ad.tensor(rng.standard_normal((64, 512)), requires_grad=True)  # x @ w: 256 KiB
    big = ad.compile(lambda x: (x @ w).relu().sum())
    assert "t0 = matmul(a0, c0, out=t0_buffer)" in big.tape(ad.tensor(rng.random((64, 64))))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_numpy_scalar_parameter_is_replayed_as_a_constant(backend):
    lo = np.float64(0.1)  # a float subclass whose repr, np.float64(0.1), is no source here
    step = ad.compile(lambda x: x.clamp(min=lo).sum(), backend=backend)
    x = ad.tensor([0.0, 1.0], requires_grad=True)
    for _ in range(2):  # traced, then replayed
        loss = step(x)
        assert loss.item() == 1.1


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_global_read_inside_a_lambda_of_the_step_is_guarded(backend):
    module = {"w": ad.tensor([3.0])}
    step = ad.compile(eval("lambda x: (lambda: x * w)().sum()", module), backend=backend)
    x = ad.tensor([1.0])
    assert step(x).item() == 3.0
    module["w"] = ad.tensor([15.0])  # rebound between calls: traced again, not replayed stale
    assert step(x).item() == 15.0
    module["w"] = ad.tensor([5.0])
    assert sum(step(x).item() for _ in range(2)) == 10.0


def test_the_cache_keeps_eight_programs_by_default_and_one_when_asked():
    traced = []

    def tripled(x):
        traced.append(x.shape)  # runs only when traced
        return (x * 3).sum()

    step = ad.compile(lambda x: (x * 2).sum())
    single = ad.compile(tripled, cache_size=1)
    for n in range(1, 11):
        step(ad.ones(n)), single(ad.ones(n))
    assert len(step.programs) == 8 and len(single.programs) == 1
    assert single(ad.ones(10)).item() == 30.0 and len(traced) == 10  # the one it kept replays


def test_the_program_used_least_recently_is_the_one_dropped():
    traced = []

    def doubled(x):
        traced.append(len(x))  # runs only when traced
        return (x * 2).sum()

    step = ad.compile(doubled, cache_size=2)
    for n in [1, 2, 1, 3, 1, 2]:  # 3 drops 2 (1 was used after it); then 2 drops 3
        step(ad.ones(n))
    assert traced == [1, 2, 3, 2]


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_eager_function_runs_only_to_trace_and_to_check(backend):
    calls = []

    def loss(x):
        calls.append(1)
        return (x * x).sum()

    plain = ad.compile(loss, backend=backend)
    checked = ad.compile(loss, check=True, backend=backend)
    for _ in range(10):
        plain(ad.ones(3))
    assert len(calls) == 1  # traced once, then replayed
    calls.clear()
    for _ in range(10):
        checked(ad.ones(3))
    assert len(calls) == 1 + 3  # traced, then the first three replays beside an eager run


def test_a_callable_object_is_named_by_its_type_in_messages():
    class Step:
        def __init__(self, w):
            self.w = w

        def __call__(self, x):
            loss = (x * self.w).sum()
            loss.backward()
            self.w.data -= 0.1 * self.w.grad.data
            return loss

    with pytest.raises(RuntimeError, match=r"compile: Step changed a tensor of shape \(3,\)"):
        ad.compile(Step(ad.tensor([1.0, 2.0, 3.0], requires_grad=True)))(ad.ones(3))


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tensor_changed_in_place_before_the_call_is_no_reason_to_refuse_backward(backend):
    w = ad.tensor([1.0, 2.0], requires_grad=True)
    step = ad.compile(lambda x: (x * w).sum(), backend=backend)
    step(ad.ones(2)).backward()
    with ad.no_grad():
        w -= 0.5 * w.grad  # a version before this call's: the call reads the new values
    w.grad = None
    step(ad.ones(2)).backward()
    np.testing.assert_array_equal(w.grad.data, [1.0, 1.0])


def test_a_whole_step_of_large_arrays_lends_its_buffers_call_after_call():
    """Intermediates of 128 KiB or more are buffers the step keeps; each call takes the set
    and gives it back, and the weights are eager's."""
    rng = np.random.default_rng(0)
    x = ad.tensor(rng.standard_normal((256, 100)))
    weights = [rng.standard_normal((100, 200)) * 0.1, rng.standard_normal((200, 10)) * 0.1]
    mine = [ad.tensor(w.copy(), requires_grad=True) for w in weights]
    theirs = [ad.tensor(w.copy(), requires_grad=True) for w in weights]

    def step_of(ws):
        def step(x):
            loss = ((x @ ws[0]).relu() @ ws[1]).pow(2).sum()
            loss.backward()
            with ad.no_grad():
                for w in ws:
                    w -= 1e-4 * w.grad
                    w.grad = None
            return loss
        return step

    compiled, eager = ad.compile(step_of(mine)), step_of(theirs)
    assert "out=t0_buffer" in compiled.tape(x)
    for _ in range(4):
        assert np.array_equal(compiled(x).data, eager(x).data)
        assert all(np.array_equal(p.data, q.data) for p, q in zip(mine, theirs))
    assert len(compiled.programs[0].buffers.free) == 1  # given back after each call


def test_a_replayed_output_is_one_node_that_a_drawing_shows_and_points_to_the_tape():
    from autodiff import viz

    w = ad.tensor([1.0, 2.0], requires_grad=True)
    f = ad.compile(lambda x: (x * w).sum())
    x = ad.tensor([3.0, 4.0])
    f(x)
    out = f(x)  # a replay: one node where eager recorded two
    [op] = viz.snapshot(out).ops
    assert (op.name, op.label, repr(out.grad_fn)) == ("compiled", "compiled",
                                                       "<CompiledBackward>")
    assert op.formulas == ["the compiled backward (see step.tape())"]
    with pytest.raises(TypeError, match="^a compiled node cannot be replayed op by op$"):
        out.grad_fn.replay()


@pytest.mark.parametrize("by", ["hand", "copy", "optimizer"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_an_op_written_again_after_a_step_changed_its_operand_is_computed_again(by, backend):
    """The same op on the same slots is computed once, unless what it reads was written in
    between: w.grad * 2 before and after a backward added into w.grad, w * x before and after
    w's update (in place by hand, copied in, or by an optimizer)."""
    w = ad.tensor([1.0, 2.0], requires_grad=True)
    optimizer = SGD([w], lr=0.5)

    def step(x):
        (w * x).sum().backward()
        doubled = (w.grad * 2).sum()
        (w * x).sum().backward()
        again = (w.grad * 2).sum()
        before = (w * x).sum()
        with ad.no_grad():
            if by == "hand":
                w.sub_(0.5 * w.grad)
            elif by == "copy":
                w.copy_(w - 0.5 * w.grad)
            else:
                optimizer.step()
        after = (w * x).sum()
        w.grad = None
        return doubled, again, before, after

    compiled = ad.compile(step, backend=backend)
    x = ad.tensor([3.0, 4.0])
    for _ in range(3):  # the trace, then replays
        old = w.data.copy()
        outputs = [t.item() for t in compiled(x)]
        assert outputs == [14.0, 28.0, old @ x.data, (old - x.data) @ x.data]  # w.grad = 2x


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_intermediate_changed_in_place_is_read_with_its_new_values(backend):
    w = ad.tensor([1.0, 2.0], requires_grad=True)

    def step(x):
        with ad.no_grad():
            scale = x * 2
            scale += 1
        return (w * scale).sum()

    compiled = ad.compile(step, backend=backend)
    x = ad.tensor([3.0, 4.0])
    for _ in range(2):  # the trace, then a replay
        loss = compiled(x)
        loss.backward()
        assert loss.item() == 25.0 and w.grad.tolist() == [7.0, 9.0]
        w.grad = None


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_empty_index_tensor_is_traced_and_replayed(backend):
    """An empty batch of labels: nothing picked, a loss of 0 and a gradient of zeros."""
    x = ad.tensor(np.arange(6.0).reshape(2, 3), requires_grad=True)
    compiled = ad.compile(lambda x, i: x[i].sum(), backend=backend)
    for _ in range(2):  # the trace, then a replay
        loss = compiled(x, ad.tensor(np.array([], dtype=np.int64)))
        loss.backward()
        assert loss.item() == 0.0 and x.grad.tolist() == [[0.0] * 3] * 2
        x.grad = None


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_step_that_walks_its_graph_twice_keeps_it_the_first_time(backend):
    """backward(retain_graph=True), then backward again: twice the gradient, in each call."""
    w = ad.tensor([1.0, 2.0], requires_grad=True)

    def step(x):
        loss = (w * x).sum()
        loss.backward(retain_graph=True)
        loss.backward()
        return loss

    compiled = ad.compile(step, backend=backend)
    x = ad.tensor([3.0, 4.0])
    for _ in range(3):  # the trace, then replays
        assert compiled(x).item() == 11.0
        np.testing.assert_array_equal(w.grad.data, 2 * x.data)
        w.grad = None


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_tensor_argument_whose_state_the_step_changes_is_guarded_by_identity(backend):
    """The step updates its argument through an optimizer that holds w1: given w2 instead,
    eager updates nothing (w2 is not the optimizer's) and w2 keeps its .grad. The program
    was traced for w1's state, so another tensor there is traced again."""
    w1, w2 = ad.tensor([1.0, 2.0], requires_grad=True), ad.tensor([1.0, 2.0], requires_grad=True)
    optimizer = SGD([w1], lr=0.5)

    def step(w, x):
        (w * x).sum().backward()
        optimizer.step()
        optimizer.zero_grad()

    compiled = ad.compile(step, backend=backend)
    x = ad.tensor([3.0, 4.0])
    compiled(w1, x)  # the trace
    compiled(w1, x)  # a replay
    assert w1.tolist() == [-2.0, -2.0] and w1.grad is None
    compiled(w2, x)
    assert w2.tolist() == [1.0, 2.0] and w2.grad.tolist() == [3.0, 4.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_cast_to_another_dtype_is_replayed_in_that_dtype(backend):
    w = ad.tensor(np.array([1.0, 2.0], np.float32), requires_grad=True)
    compiled = ad.compile(lambda x: (x.to(ad.float32) * w).sum(), backend=backend)
    x = ad.tensor([3.0, 4.0])  # float64
    for _ in range(2):  # the trace, then a replay
        loss = compiled(x)
        loss.backward()
        assert loss.dtype == np.float32 and loss.item() == 11.0
        assert w.grad.dtype == np.float32 and w.grad.tolist() == [3.0, 4.0]
        w.grad = None


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_value_the_step_returns_and_copies_into_a_weight_is_an_array_of_its_own(backend):
    """new = w − lr·w.grad, copied into w and returned: the caller's tensor is not w's array
    (which the next call changes), as in eager."""
    w = ad.tensor([1.0, 2.0], requires_grad=True)

    def step(x):
        (w * x).sum().backward()
        with ad.no_grad():
            new = w - 0.5 * w.grad
            w.copy_(new)
        w.grad = None
        return new

    compiled = ad.compile(step, backend=backend)
    x = ad.tensor([2.0, 2.0])
    compiled(x)  # the trace
    kept = compiled(x)
    assert kept.tolist() == w.tolist() == [-1.0, 0.0]
    compiled(x)
    assert kept.tolist() == [-1.0, 0.0] and w.tolist() == [-2.0, -1.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_gradient_scaled_in_place_inside_the_step_is_stored_scaled(backend):
    """Clipping-style: w.grad.mul_(0.5) after backward, the .grad kept across calls (each
    backward adds into it): the same .grad as eager after every call."""
    w = ad.tensor([1.0, 2.0], requires_grad=True)

    def step(x):
        (w * x).sum().backward()
        with ad.no_grad():
            w.grad.mul_(0.5)
        return w.grad.sum()

    compiled = ad.compile(step, backend=backend)
    x = ad.tensor([4.0, 8.0])
    expected = np.zeros(2)
    for _ in range(3):  # the trace, then replays
        total = compiled(x)
        expected = (expected + x.data) * 0.5
        assert w.grad.tolist() == expected.tolist() and total.item() == expected.sum()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_compiled_loss_called_inside_a_compiled_step(backend):
    """The loss traces inside the step's trace; the step goes on tracing after it (its
    backward, its update, what a trace refuses) and replays as eager."""
    x, y, w1, w2 = notebook_problem()
    optimizer = SGD([w1, w2], lr=0.1)
    loss_of = ad.compile(lambda x, y: squared_error((x @ w1).relu() @ w2, y), backend=backend)

    def step(x, y):
        optimizer.zero_grad()
        loss = loss_of(x, y)
        loss.backward()
        optimizer.step()
        return loss

    compiled = ad.compile(step, backend=backend)
    start = [w.data.copy() for w in (w1, w2)]
    compiled_losses = [compiled(x, y).item() for _ in range(3)]
    compiled_weights = [w.data.copy() for w in (w1, w2)]
    for w, s in zip((w1, w2), start):
        w.data[...] = s
    eager_losses = [step(x, y).item() for _ in range(3)]
    same = same_for(compiled)
    assert same(np.array(compiled_losses), np.array(eager_losses))
    assert all(same(c, w.data) for c, w in zip(compiled_weights, (w1, w2)))

    fresh = ad.compile(lambda x, y: squared_error((x @ w1).relu() @ w2, y), backend=backend)

    def refused(x, y):
        loss = fresh(x, y)  # traced inside the outer trace
        return ad.tensor(loss)  # a Tensor made from another's values: refused while tracing

    with pytest.raises(RuntimeError, match="a Tensor made from another one's values"):
        ad.compile(refused, backend=backend)(x, y)


def test_a_replayed_outputs_graph_freed_by_its_backward_says_so():
    w = ad.tensor([1.0, 2.0], requires_grad=True)
    step = ad.compile(lambda x: (x * w).sum())
    x = ad.tensor([3.0, 4.0])
    step(x)  # the trace
    loss = step(x)
    loss.backward()
    with pytest.raises(ad.GraphFreedError, match="the graph through <CompiledBackward> was freed"):
        loss.backward()


def test_an_argument_modified_in_place_before_the_call_is_no_obstacle_to_backward():
    w = ad.tensor([1.0, 2.0], requires_grad=True)
    step = ad.compile(lambda x: (x * w).sum())
    x, other = ad.tensor([3.0, 4.0]), ad.tensor([0.0])
    step(x)  # the trace
    x.add_(1.0)  # before the call: its values are the ones the call reads
    loss = step(x)
    other.add_(1.0)  # an in-place op elsewhere after it
    loss.backward()
    assert w.grad.tolist() == [4.0, 5.0]


def test_a_compiled_function_keeps_its_name_and_docstring():
    def loss(x):
        """The loss."""
        return (x * 2).sum()

    compiled = ad.compile(loss)
    assert (compiled.__name__, compiled.__doc__, compiled.__wrapped__) == ("loss", "The loss.",
                                                                          loss)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_step_that_never_clears_grad_adds_into_it_at_every_call(backend):
    """The first call finds .grad None and stores; the next find a .grad and add into it: the
    guard tells them apart (a program for each)."""
    w = ad.tensor([1.0, 2.0], requires_grad=True)
    step = ad.compile(lambda x: (w * x).sum().backward(), backend=backend)
    x = ad.tensor([3.0, 4.0])
    for calls in range(1, 5):
        step(x)
        assert w.grad.tolist() == [3.0 * calls, 4.0 * calls]


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_update_reads_the_grad_that_backward_outside_the_step_left(backend):
    """The gradient is computed eagerly, the update compiled: each call reads the .grad of
    that moment (a new tensor after each backward outside), never the traced one."""
    w = ad.tensor([1.0, 2.0], requires_grad=True)

    def update():
        with ad.no_grad():
            w.sub_(0.5 * w.grad)

    step = ad.compile(update, backend=backend)
    for scale in [1.0, 2.0, 3.0]:
        w.grad = None
        (w * scale).sum().backward()
        before = w.data.copy()
        step()
        assert (w.data == before - 0.5 * scale).all()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_grad_the_caller_assigned_is_replaced_by_the_sum_never_added_into(backend):
    """As the walker: a .grad the user set is the user's array; backward stores a new one."""
    w = ad.tensor([1.0, 2.0], requires_grad=True)
    step = ad.compile(lambda x: (w * x).sum().backward(), backend=backend)
    x = ad.tensor([3.0, 4.0])
    for _ in range(3):  # the trace, then replays
        mine = ad.tensor([10.0, 10.0])
        w.grad = mine
        step(x)
        assert w.grad.tolist() == [13.0, 14.0] and mine.tolist() == [10.0, 10.0]


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_optimizers_step_compiled_alone_matches_eager(backend):
    """As torch.compile(optimizer.step): the gradients come from an eager backward, the
    update (Adam's moments and step count included) is replayed."""
    compiled_w, eager_w = (ad.tensor([1.0, -2.0, 3.0], requires_grad=True) for _ in range(2))
    compiled_opt, eager_opt = Adam([compiled_w], lr=0.1), Adam([eager_w], lr=0.1)
    step = ad.compile(compiled_opt.step, backend=backend)
    same = same_for(step)
    x = ad.tensor([0.5, 1.5, -1.0])
    for _ in range(4):
        for w, take_step in [(compiled_w, step), (eager_w, eager_opt.step)]:
            w.grad = None
            ((w * x) ** 2).sum().backward()
            assert take_step() is None
        assert same(compiled_w.data, eager_w.data)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_gradient_scaled_in_place_then_used_and_cleared_matches_eager(backend):
    """backward, w.grad.mul_(0.5) (clipping's pattern), optimizer.step(), zero_grad(): nobody
    sees the .grad after the call, and the update reads the scaled one."""
    weights = [ad.tensor([1.0, -2.0], requires_grad=True) for _ in range(2)]
    optimizers = [SGD([w], lr=0.1, momentum=0.9) for w in weights]
    x = ad.tensor([3.0, 4.0])

    def step_of(w, optimizer):
        def step(x):
            loss = ((w * x) ** 2).sum()
            loss.backward()
            with ad.no_grad():
                w.grad.mul_(0.5)
            optimizer.step()
            optimizer.zero_grad()
            return loss
        return step

    compiled = ad.compile(step_of(weights[0], optimizers[0]), backend=backend)
    eager = step_of(weights[1], optimizers[1])
    same = same_for(compiled)
    for _ in range(4):
        assert same(compiled(x).data, eager(x).data)
        assert same(weights[0].data, weights[1].data) and weights[0].grad is None
