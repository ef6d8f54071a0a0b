"""The compiler's records (`program.Line`) say what each line is, for the tape, `viz.tape_to_dot`
and the fused backend's passes: its kind, the shape of what it binds, the array it changes."""

import typing

import numpy as np
import pytest
from functions import step_by_hand, step_with

import autodiff as ad
from autodiff import optim, viz
from autodiff.program import Line

KINDS = set(typing.get_args(typing.get_type_hints(Line)["kind"]))


def _weights(rng):
    return [ad.tensor(rng.standard_normal(shape), requires_grad=True) for shape in [(4, 5), (5, 3)]]


def _loss(ws, x, y):
    return (((x @ ws[0]).relu() @ ws[1]).softmax(dim=1) - y).pow(2).sum()


def _loss_of(ws):
    return lambda x, y: _loss(ws, x, y)


def _accumulating(ws):
    def step(x, y):
        loss = _loss(ws, x, y)
        loss.backward()  # .grad grows call after call
        return loss
    return step


def _labelled(ws):
    def step(x, labels):
        loss = ad.nn.functional.cross_entropy((x @ ws[0]).relu() @ ws[1], labels)
        loss.backward()
        return loss
    return step


STEPS = {
    "by hand, .grad set to None": lambda ws: step_by_hand(ws, _loss_of(ws), 0.1),
    "the PyTorch cell: .grad zeroed in place": lambda ws: step_by_hand(
        ws, _loss_of(ws), 0.1, zero_first=True, keep_grad=True),
    "SGD": lambda ws: step_with(optim.SGD(ws, lr=0.1), _loss_of(ws)),
    "Adam": lambda ws: step_with(optim.Adam(ws, lr=0.1), _loss_of(ws)),
    "gradients accumulated": _accumulating,
    "the loss alone": lambda ws: lambda x, y: _loss(ws, x, y),
    "cross entropy on integer labels": _labelled,
}


def _compiled(name: str):
    rng = np.random.default_rng(0)
    x = ad.tensor(rng.standard_normal((6, 4)))
    labels = rng.integers(0, 3, 6)
    y = ad.tensor(labels) if "labels" in name else ad.tensor(np.eye(3)[labels])
    step = ad.compile(STEPS[name](_weights(rng)))
    step(x, y), step(x, y)  # the trace, then a replay: .grad exists from the second on
    return step, (x, y)


@pytest.mark.parametrize("name", list(STEPS))
def test_every_line_is_of_a_known_kind_and_drawn_in_its_colour(name):
    step, args = _compiled(name)
    lines = step.program(*args).lines
    assert {line.kind for line in lines} <= KINDS
    source = viz.tape_to_dot(step, *args).source
    drawn = [line for line in lines if line.function is not None and line.kind != "check"]
    assert source.count("fillcolor=") >= len(drawn)
    for kind in {line.kind for line in drawn}:
        assert f'fillcolor="{viz.tape.COLOURS[kind]}"' in source


@pytest.mark.parametrize("name", list(STEPS))
def test_the_tape_shows_the_shape_of_every_value_a_call_binds(name):
    step, args = _compiled(name)
    program = step.program(*args)
    tape = step.tape(*args)
    for line in program.lines:
        if line.function is None or line.out is None or "," in line.out:
            continue  # a name bound again, or a backward's several gradients
        assert line.shape is not None, line
        shape, dtype = line.shape
        assert any(text.strip().startswith(f"{line.out} = {line.function}(")
                   and text.rstrip().endswith(f"{shape} {dtype}") for text in tape.splitlines())


CHANGES = {"clear_grad": "a .grad set to None", "copyto": "an array written into",
           "update_param": "a parameter an optimizer updates"}


@pytest.mark.parametrize("name", list(STEPS))
def test_an_effect_names_what_it_changes_and_the_drawing_points_there(name):
    step, args = _compiled(name)
    lines = step.program(*args).lines
    source = viz.tape_to_dot(step, *args).source
    for k, line in enumerate(lines):
        if line.kind == "effect" and line.into is not None and not line.lent:
            assert line.target == line.into, line
        if line.function in CHANGES:
            assert line.target is not None, line
        if line.target is not None:
            assert f"line{k} -> {line.target}" in source
        if line.function == "grad_array":  # reads a .grad's array: changes nothing
            assert line.target is None and line.into is None, line


def test_an_index_read_from_a_tensor_is_checked_once_before_it_is_used():
    step, args = _compiled("cross entropy on integer labels")
    checks = [line for line in step.program(*args).lines if line.function == "non_negative"]
    assert [(line.kind, line.read) for line in checks] == [("check", ["a1"])]


def test_a_masks_count_is_checked_by_a_check_line_that_the_drawing_leaves_out():
    step = ad.compile(lambda x: (x[x > 1] * 2).sum())
    x = ad.tensor([0.0, 2.0, 3.0])
    step(x)
    lines = step.program(x).lines
    [check] = [line for line in lines if line.function == "same_shape"]
    picked = next(line for line in lines if line.function == "index")
    assert (check.kind, check.read) == ("check", [picked.out, "(2,)"])
    assert "same_shape" not in viz.tape_to_dot(step, x).source


def test_a_gradient_added_into_a_kept_grad_is_an_add_of_the_op_table():
    """The fused backend writes that add into a loop from the op's loop form."""
    step, args = _compiled("the PyTorch cell: .grad zeroed in place")
    adds = [line for line in step.program(*args).lines if line.function == "add"]
    assert len(adds) == 2 and all(line.op is ad.ops.ADD for line in adds)


@pytest.mark.parametrize("join", ["cat", "stack"])
def test_a_compiled_backward_through_cat_and_stack_gives_eagers_gradients(join):
    """A variadic op has one rule for all its inputs, told which input by ``which``."""
    rng = np.random.default_rng(1)
    values = [rng.standard_normal((2, 3)) for _ in range(3)]

    def f(a, b, c):
        return (getattr(ad, join)([a, b * 2, c.exp()], dim=0) ** 2).sum()

    compiled = ad.compile(f)
    compiled(*[ad.tensor(v, requires_grad=True) for v in values])  # the trace
    results = []
    for run in (compiled, f):
        tensors = [ad.tensor(v, requires_grad=True) for v in values]
        run(*tensors).backward()
        results.append([t.grad.data for t in tensors])
    for got, expected in zip(*results):
        assert np.array_equal(got, expected)
    assert "which=2" in compiled.tape(*[ad.tensor(v, requires_grad=True) for v in values])


@pytest.mark.parametrize("dims, label", [
    ((1, 0), ".T"), ((2, 1, 0), ".T"), ((1, 0, 2), "transpose(0, 1)"),
    ((0, 2, 1), "transpose(1, 2)"), ((1, 2, 0), "permute(1, 2, 0)"), ((0,), "permute(0,)"),
])
def test_a_permute_is_drawn_as_it_would_be_written(dims, label):
    x = ad.tensor(np.ones((2, 3, 4)[:len(dims)]), requires_grad=True)
    assert x.permute(*dims).grad_fn.label == label


MUST_RETURN = ("compile: the function must return a Tensor computed by the engine, or a tuple "
               "of them, or nothing when it changes state (a backward, an update)")


OUTSIDE = ad.tensor([1.0])


@pytest.mark.parametrize("fn", [lambda x: 3, lambda x: ((x * x).sum().backward(), 3)[1],
                                lambda x: None, lambda x: OUTSIDE])
def test_returning_something_else_is_refused_in_full(fn):
    """A function that changes state (a whole step, an update) may also return nothing; a
    tensor no op of the call computed or read is no output a trace can give."""
    with pytest.raises(TypeError) as info:
        ad.compile(fn)(ad.tensor(np.ones(3), requires_grad=True))
    assert str(info.value) == MUST_RETURN

