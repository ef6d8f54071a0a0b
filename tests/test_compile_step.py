"""`autodiff.compile` of a whole training step: forward, ``backward()``, the update and
``zero_grad()`` traced into one program, which leaves exactly the eager step's state."""

import re
from pathlib import Path

import numpy as np
import pytest
from functions import step_by_hand, step_with
from hypothesis import example, given
from hypothesis import strategies as st

import autodiff as ad
from autodiff import nn, optim
from autodiff.fusion import agree
from models import MLP, cross_entropy

BACKENDS = ["numpy", "numba"]  # the fused backend keeps every promise, to its tolerance

OPTIMIZERS = {
    "SGD": lambda params: optim.SGD(params, lr=0.1),
    "SGD(momentum=0.9)": lambda params: optim.SGD(params, lr=0.1, momentum=0.9),
    "Adam": lambda params: optim.Adam(params, lr=0.01),
}


def _problem(dtype: str, seed: int = 0):
    """Inputs, targets and two copies of the notebook network's weights."""
    rng = np.random.default_rng(seed)
    x = ad.tensor(rng.standard_normal((6, 4)).astype(dtype))
    y = ad.tensor(np.eye(3, dtype=dtype)[rng.integers(0, 3, 6)])
    weights = [rng.standard_normal(shape).astype(dtype) for shape in [(4, 5), (5, 3)]]
    copies = [[ad.tensor(w.copy(), requires_grad=True) for w in weights] for _ in range(2)]
    return x, y, copies


def _loss(ws, x, y):
    return (((x @ ws[0]).relu() @ ws[1]).softmax(dim=1) - y).pow(2).sum()


def _update_by_hand(ws, lr):
    """PyTorch's idiom for SGD: ``w -= lr * w.grad`` under no_grad, then ``w.grad = None``."""
    with ad.no_grad():
        for w in ws:
            w -= lr * w.grad
            w.grad = None


def _same(a, b, backend="numpy"):
    """Bit for bit and the same dtype on the NumPy backend; on the fused one, within its
    tolerance (`autodiff.fusion.agree`: its sums run in another order)."""
    if backend == "numba":
        return agree(a, b)
    return np.asarray(a).dtype == np.asarray(b).dtype and np.array_equal(a, b)


def _same_state(compiled, eager, optimizers=(None, None), backend="numpy"):
    """Parameters, .grad and the optimizer's state of the two runs, bit for bit (`_same`)."""
    for p, q in zip(compiled, eager):
        assert _same(p.data, q.data, backend)
        assert (p.grad is None) == (q.grad is None)
        if p.grad is not None:
            assert _same(p.grad.data, q.grad.data, backend)
        if optimizers[0] is not None:
            mine, theirs = optimizers[0].state.get(p, {}), optimizers[1].state.get(q, {})
            assert mine.keys() == theirs.keys()
            for key in mine:
                assert _same(mine[key], theirs[key], backend), key


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("name", list(OPTIMIZERS))
def test_a_compiled_step_leaves_the_eager_steps_state_bit_for_bit(name, dtype, backend):
    x, y, (mine, theirs) = _problem(dtype)
    optimizers = [OPTIMIZERS[name](ws) for ws in (mine, theirs)]

    def step_of(ws, optimizer):
        def step(x, y):
            loss = _loss(ws, x, y)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            return loss
        return step

    compiled = ad.compile(step_of(mine, optimizers[0]), backend=backend)
    eager = step_of(theirs, optimizers[1])
    for call in range(8):
        scale = 1.0 + call / 4  # a new batch each call: values are read at every replay
        a, b = compiled(x * scale, y), eager(x * scale, y)
        assert _same(a.data, b.data, backend)
        _same_state(mine, theirs, optimizers, backend)
    assert len(compiled.programs) == 1  # zero_grad() first: what .grad held does not matter
    if name == "Adam":
        assert optimizers[0].state[mine[0]]["step"] == 8  # read and counted at each replay


@pytest.mark.parametrize("backend", BACKENDS)
def test_the_pytorch_idiom_under_no_grad_writes_into_the_weights_arrays(backend):
    x, y, (mine, theirs) = _problem("float64")

    def step_of(ws):
        def step(x, y):
            loss = _loss(ws, x, y)
            loss.backward()
            _update_by_hand(ws, 0.05)
            return loss
        return step

    compiled, eager = ad.compile(step_of(mine), backend=backend), step_of(theirs)
    arrays = [w.data for w in mine]
    for _ in range(5):
        compiled(x, y), eager(x, y)
        _same_state(mine, theirs, backend=backend)
    assert all(w.data is a for w, a in zip(mine, arrays))  # updated in place, as eager
    tape = compiled.tape(x, y)
    written = (r"= matmul_add\(a0\.T, g_t0, c0, " if backend == "numba"  # BLAS adds into c0
               else r"= sub\(c0, t\d+, out=c0\)")
    assert re.search(written, tape) and "copyto" not in tape
    # nobody can see those gradients in .grad: they stay local arrays, never stored
    assert "into_leaves" not in tape and "._grad" not in tape.split("def guard")[1].split(
        "def forward")[1]


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_zeroed_in_place_are_accumulated_into_the_kept_arrays(backend):
    """The notebook's PyTorch cell: ``w.grad.zero_()`` before backward, .grad kept."""
    x, y, (mine, theirs) = _problem("float32")

    def step_of(ws):
        def cell_loss(x, y):
            return ((x.mm(ws[0]).clamp(min=0).mm(ws[1]).softmax(dim=1) - y) ** 2).sum()
        return step_by_hand(ws, cell_loss, 0.05, zero_first=True, keep_grad=True)

    compiled, eager = ad.compile(step_of(mine), backend=backend), step_of(theirs)
    for _ in range(5):
        compiled(x, y), eager(x, y)
        _same_state(mine, theirs, backend=backend)
    kept = mine[0].grad
    compiled(x, y)
    assert mine[0].grad is kept  # accumulated into, as eager does


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradients_accumulate_over_calls_without_zero_grad(backend):
    x, y, (mine, theirs) = _problem("float64")

    def step_of(ws):
        def step(x, y):
            loss = _loss(ws, x, y)
            loss.backward()
            return loss
        return step

    compiled, eager = ad.compile(step_of(mine), backend=backend), step_of(theirs)
    for _ in range(4):
        compiled(x, y), eager(x, y)
        _same_state(mine, theirs, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_learning_rate_a_scheduler_sets_is_read_at_each_replay_without_retracing(backend):
    x, y, (mine, theirs) = _problem("float64")
    optimizers = [optim.SGD(ws, lr=0.1, momentum=0.5) for ws in (mine, theirs)]
    schedules = [optim.lr_scheduler.StepLR(o, step_size=2, gamma=0.5) for o in optimizers]

    def step_of(ws, optimizer):
        return step_with(optimizer, lambda x, y: _loss(ws, x, y))

    compiled = ad.compile(step_of(mine, optimizers[0]), backend=backend)
    eager = step_of(theirs, optimizers[1])
    for _ in range(7):
        compiled(x, y), eager(x, y)
        for schedule in schedules:
            schedule.step()
        _same_state(mine, theirs, optimizers, backend)
    # zero_grad() comes first, so what .grad held before does not matter: one program
    assert optimizers[0].lr == 0.1 * 0.5 ** 3 and len(compiled.programs) == 1


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_models_module_with_cross_entropy_and_adam(backend):
    rng = np.random.default_rng(0)
    x, labels = ad.tensor(rng.standard_normal((16, 4))), ad.tensor(rng.integers(0, 3, 16))
    models = [MLP([4, 8, 3], rng=np.random.default_rng(1)) for _ in range(2)]
    optimizers = [optim.Adam(m.parameters(), lr=1e-2) for m in models]

    def step_of(model, optimizer):
        return step_with(optimizer, lambda x, labels: cross_entropy(model(x), labels))

    compiled = ad.compile(step_of(models[0], optimizers[0]), check=True, backend=backend)
    eager = step_of(models[1], optimizers[1])
    for _ in range(6):
        assert _same(compiled(x, labels).data, eager(x, labels).data, backend)
        _same_state(models[0].parameters(), models[1].parameters(), optimizers, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_nn_module_step_that_returns_nothing(backend):
    rng = np.random.default_rng(2)
    x, y = ad.tensor(rng.standard_normal((8, 3))), ad.tensor(rng.standard_normal((8, 2)))
    models = [nn.Sequential(nn.Linear(3, 4), nn.Tanh(), nn.Linear(4, 2)) for _ in range(2)]
    models[1].load_state_dict(models[0].state_dict())
    optimizers = [optim.SGD(m.parameters(), lr=0.1) for m in models]

    def step_of(model, optimizer):
        def step(x, y):
            optimizer.zero_grad()
            nn.functional.mse_loss(model(x), y).backward()
            optimizer.step()
        return step

    compiled = ad.compile(step_of(models[0], optimizers[0]), backend=backend)
    eager = step_of(models[1], optimizers[1])
    for _ in range(4):
        assert compiled(x, y) is None and eager(x, y) is None
        _same_state(models[0].parameters(), models[1].parameters(), optimizers, backend)


def test_an_update_through_data_is_refused_and_undone():
    """``w.data -= lr * w.grad.data`` changes the array behind the engine's back: a replay
    would skip it. Refused on the first call, with what to write instead; the call changes
    nothing."""
    x, y, (ws, _) = _problem("float64")

    def step(x, y):
        loss = _loss(ws, x, y)
        loss.backward()
        for w in ws:
            w.data -= 0.1 * w.grad.data
            w.grad = None
        return loss

    before = [w.data.copy() for w in ws]
    with pytest.raises(RuntimeError, match=re.escape(
            "compile: step changed a tensor of shape (4, 5) through its .data array after "
            "backward (as w.data -= lr * w.grad.data does), which a trace cannot see: a replay "
            "would skip the update. Update it as a tensor, `with autodiff.no_grad(): w -= lr * "
            "w.grad`, or use an optimizer from autodiff.optim")):
        ad.compile(step)(x, y)
    assert all(np.array_equal(b, w.data) and w.grad is None for b, w in zip(before, ws))
    step(x, y)  # uncompiled, it runs


def test_a_branch_on_item_is_refused_and_the_step_undone():
    x, y, (ws, _) = _problem("float64")
    optimizer = optim.SGD(ws, lr=0.1)

    def step(x, y):
        loss = _loss(ws, x, y)
        loss.backward()
        optimizer.step()
        if loss.item() > 1:  # decided once, while tracing
            optimizer.zero_grad()
        return loss

    before = [w.data.copy() for w in ws]
    with pytest.raises(RuntimeError, match=r"item\(\) .* return the tensor"):
        ad.compile(step)(x, y)
    assert all(np.array_equal(b, w.data) and w.grad is None for b, w in zip(before, ws))
    assert optimizer.state == {}


def test_looking_at_the_tape_takes_no_step():
    x, y, (ws, _) = _problem("float64")
    optimizer = optim.Adam(ws, lr=0.01)

    def step(x, y):
        optimizer.zero_grad()
        loss = _loss(ws, x, y)
        loss.backward()
        optimizer.step()
        return loss

    before = [w.data.copy() for w in ws]
    tape = ad.compile(step).tape(x, y)
    assert all(np.array_equal(b, w.data) and w.grad is None for b, w in zip(before, ws))
    assert optimizer.state == {}
    assert "step_backward0(ones((), float64)" in tape and "update_param(optimizer, T[" in tape
    # the loss it returns is a value: its backward ran inside, so it gets none of its own
    program = ad.compile(step).program(x, y)
    assert program.leaves == [] and program.backwards == [] and "def backward" not in tape
    assert "    return (t6,)\n" in tape  # no intermediate values kept for a backward


@example(hidden=np.nextafter(1.0, 2.0))  # one ulp more: the NumPy backend's replay is exact
@given(hidden=st.floats(1.5, 3.0))
def test_check_compares_the_state_a_step_leaves(hidden):
    """A step that scales its update by a NumPy array it reads (frozen in the trace): check=True
    sees the weights differ, bit for bit, though the returned loss is the same."""
    x, y, (ws, _) = _problem("float64")
    scale = np.array(1.0)

    def step(x, y):
        loss = _loss(ws, x, y)
        loss.backward()
        with ad.no_grad():
            for w in ws:
                w -= ad.tensor(scale * 0.1) * w.grad
                w.grad = None
        return loss

    checked = ad.compile(step, check=True)
    checked(x, y)
    checked(x, y)  # the same: passes
    scale[...] = hidden
    with pytest.raises(ad.CompileCheckError, match=r"its values of a tensor of shape \((4, 5|5, 3)"
                                                   r"\) after the replayed step differs"):
        checked(x, y)


def test_the_compiler_page_shows_the_tape_of_the_step_written_by_hand():
    page = (Path(__file__).resolve().parents[1] / "docs" / "compiler.md").read_text()
    section = page[page.index("## The whole training step"):]
    example = re.search(r"```python\n(.*?)```", section, re.S)
    shown = re.search(r"```\n(    t6 = sum.*?)```", section, re.S)
    assert example is not None and shown is not None
    names: dict = {}
    exec(example.group(1).replace("print(", "str("), names)
    tape = ad.compile(names["by_hand"]).tape(names["x"], names["y"])
    assert shown.group(1) in tape + "\n"


def test_backward_with_a_gradient_inside_a_step_is_refused():
    x, y, (ws, _) = _problem("float64")

    def step(x, y):
        out = (x @ ws[0]).relu() @ ws[1]
        out.backward(ad.ones_like(out))
        return out

    with pytest.raises(RuntimeError, match=re.escape(
            "compile: backward() inside a compiled step takes no gradient= and no "
            "create_graph=; call backward() on a tensor of one element, or run the step "
            "uncompiled")):
        ad.compile(step)(x, y)
    assert all(w.grad is None for w in ws)


def test_an_in_place_update_that_rounds_unlike_its_out_of_place_form_is_refused():
    """float32 w *= a float64 number held in a 0-d tensor: the in-place ufunc computes in
    float64 and rounds once; the out-of-place op (PyTorch's promotion) rounds the number to
    float32 first. A replay would write the second: refused while tracing."""
    ws = [ad.tensor(np.random.default_rng(0).random(1000).astype("float32") + 1,
                    requires_grad=True)]
    third = ad.tensor(np.float64(1 / 3))

    def step():
        (ws[0] * ws[0]).sum().backward()
        with ad.no_grad():
            ws[0] *= third
            ws[0].grad = None

    with pytest.raises(RuntimeError, match=re.escape(
            "compile: the in-place *= on a tensor of shape (1000,) float32 rounds differently "
            "from its out-of-place form, which a trace replays; write the update out of place "
            "in the tensor's dtype")):
        ad.compile(step)()


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_step_that_returns_a_weight_returns_the_weight_itself(backend):
    w = ad.tensor([1.0, 2.0], requires_grad=True)
    weights = [w]

    def step(x):
        loss = (weights[0] * x).sum()
        loss.backward()
        with ad.no_grad():
            weights[0] -= 0.5 * weights[0].grad
            weights[0].grad = None
        return loss, weights[0]

    compiled = ad.compile(step, backend=backend)
    x = ad.tensor([2.0, 4.0])
    for expected_loss, expected_w in ((10.0, [0.0, 0.0]), (0.0, [-1.0, -2.0])):
        loss, returned = compiled(x)  # the trace, then a replay
        assert returned is w and w.tolist() == expected_w and loss.item() == expected_loss


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_float64_value_added_in_place_into_float32_is_replayed_as_eager(backend):
    """total (float32) += x * 3 (float64 arrays): eager adds in float64 and rounds once, as the
    out-of-place sum cast to float32 does, so the step traces, and replays the same."""
    totals = [ad.tensor(np.zeros(3, np.float32)) for _ in range(2)]

    def step(x, total):
        with ad.no_grad():
            total.add_(x * 3)
        return x.sum()

    compiled = ad.compile(step, backend=backend)
    for x in ([0.1, 0.2, 1e-9], [1 / 3, 2.5, -7.0], [1e10, 1.0, 0.3]):
        compiled(ad.tensor(x), totals[0])
        step(ad.tensor(x), totals[1])
    assert totals[0].dtype == np.float32 and _same(totals[0].data, totals[1].data, backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_value_copied_out_and_read_again_keeps_its_own_array(backend):
    """h is copied into a kept buffer and then read by the loss; the buffer is scaled before
    backward, which reads h's values, not the buffer's new ones."""
    w = ad.tensor([0.5, -1.5, 2.0], requires_grad=True)
    kept = [ad.tensor(np.zeros(3)) for _ in range(2)]

    def step(x, kept):
        h = x * w
        with ad.no_grad():
            kept.copy_(h)
        loss = (h * h).sum()
        with ad.no_grad():
            kept.mul_(0.5)
        loss.backward()
        return loss

    compiled = ad.compile(step, backend=backend)
    for x in ([1.0, 2.0, 3.0], [-1.0, 0.5, 4.0], [2.0, 2.0, -3.0]):
        compiled(ad.tensor(x), kept[0])
        replayed, w.grad = w.grad.data, None
        step(ad.tensor(x), kept[1])
        assert _same(replayed, w.grad.data, backend) and _same(kept[0].data, kept[1].data, backend)
        w.grad = None


def test_check_replays_a_step_with_keywords_tuples_and_nan_as_eager():
    """check=True calls the eager step as it was called (keywords too), compares tuple outputs
    part by part and takes NaN as equal to NaN."""
    x, y, (ws, _) = _problem("float64")

    def step(x, y, *, scale=1.0):
        loss = _loss(ws, x, y) * scale
        loss.backward()
        _update_by_hand(ws, 0.01)
        return loss, (loss - loss.detach()).log()  # log(0) = -inf, and nan below
    def nan_step(x):
        return (x - x).log() * 0.0  # -inf * 0 = nan, every call

    checked, checked_nan = ad.compile(step, check=True), ad.compile(nan_step, check=True)
    with np.errstate(divide="ignore", invalid="ignore"):
        for _ in range(4):
            loss, odd = checked(x, y, scale=3.0)
            assert np.isnan(checked_nan(x).data).all()
    assert np.isfinite(loss.item()) and np.isneginf(odd.data)


def test_saved_state_tells_what_differs():
    from autodiff.effects import Saved

    w = ad.tensor([1.0, np.nan], requires_grad=True)
    optimizer = optim.SGD([w], lr=0.1, momentum=0.9)
    (w * 2).sum().backward()
    optimizer.step()
    saved, start = Saved(w, optimizer), w.data.copy()
    assert saved.difference() is None  # NaN equals NaN
    optimizer.state[w]["momentum_buffer"] = optimizer.state[w]["momentum_buffer"] * 2
    assert saved.difference() == "its SGD state"
    saved.restore()
    assert saved.difference() is None
    del optimizer.state[w]
    assert saved.difference() == "its SGD state"
    saved.restore()
    w.grad.data[0] = 5.0
    assert saved.difference() == "its .grad"
    saved.restore()
    w.grad = None
    assert saved.difference() == ".grad (None in one run only)"
    saved.restore()
    w.data[0] = 7.0
    assert saved.difference() == "its values"
    saved.restore()
    assert np.array_equal(w.data, start, equal_nan=True) and saved.difference() is None
    fresh = ad.tensor([1.0], requires_grad=True)
    unstepped = Saved(fresh, optimizer)
    optimizer.state[fresh] = {"momentum_buffer": np.zeros(1)}
    assert unstepped.difference() == "its SGD state"
    unstepped.restore()
    assert fresh not in optimizer.state


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_diamond_graph_reaches_every_leaf(backend):
    """Leaves reached through an intermediate used twice, and after it: the step stores
    every leaf's gradient as eager does."""
    rng = np.random.default_rng(3)
    copies = [[ad.tensor(rng.standard_normal(3), requires_grad=True) for _ in range(4)]
              for _ in range(1)]
    mine = copies[0]
    theirs = [ad.tensor(t.data.copy(), requires_grad=True) for t in mine]

    def step_of(ts):
        def step():
            a, b, c, d = ts
            h = a * b
            (h * h + h * c + (d * c).exp()).sum().backward()
        return step

    compiled, eager = ad.compile(step_of(mine), backend=backend), step_of(theirs)
    for _ in range(3):
        compiled(), eager()
        _same_state(mine, theirs, backend=backend)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_grad_the_walker_adds_into_is_added_into_by_the_program_and_guarded(backend):
    """The PyTorch cell keeps .grad: backward adds into its array, and so does the program
    (``add(grad_c0, g_c0, out=grad_c0)``), as long as backward still owns that array. A .grad
    the user set (``w.grad = t``) is never added into, by eager or by a replay: backward gives
    the tensor a new .grad, and the guard sees the difference and traces again."""
    x, y, (mine, theirs) = _problem("float64")

    def step_of(ws):
        def step(x, y):
            loss = _loss(ws, x, y)
            for w in ws:
                if w.grad is not None:
                    w.grad.zero_()
            loss.backward()
            return loss
        return step

    compiled, eager = ad.compile(step_of(mine), backend=backend), step_of(theirs)
    for _ in range(3):
        compiled(x, y), eager(x, y)
        _same_state(mine, theirs, backend=backend)
    tape = compiled.tape(x, y)
    assert "store_gradients" not in tape and "._grad_owned is True" in tape
    if backend == "numpy":
        assert "grad_c0 = add(grad_c0, g_c0, out=grad_c0)" in tape
    users = [ad.tensor(np.ones((4, 5))) for _ in range(2)]
    for ws, user in zip((mine, theirs), users):
        ws[0].grad = user
    compiled(x, y), eager(x, y)
    _same_state(mine, theirs, backend=backend)
    # the step zeroes the user's tensor, then backward replaces it rather than add into it
    assert all(not u.data.any() and ws[0].grad is not u for ws, u in zip((mine, theirs), users))
    assert len(compiled.programs) == 3  # .grad None, .grad backward's, .grad the user's
