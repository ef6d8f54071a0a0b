"""The fused backend, ``autodiff.compile(fn, backend="numba")``: each op's loop form gives
eager's result (forward and gradient, broadcasting and reductions included), random programs
and training steps agree with eager to the backend's tolerance, float32 stays float32, the
kernels are readable loops, cached on disk, and a replay flushes subnormal results to zero.
What compile promises besides is tested on both backends in test_compile.py and
test_compile_step.py."""

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from functions import step_by_hand, step_with
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff as ad
from autodiff import flush, fusion, optim, viz
from autodiff.flush import FLUSH_TO_ZERO, X86_64, flushing_subnormals, mxcsr
from autodiff.fusion import TOLERANCE, agree, cache_folder
from autodiff.testing import arrays, distinct_arrays, programs, safe_floats

UNARY = {
    "exp": lambda x: x.exp(), "log": lambda x: x.log(), "sqrt": lambda x: x.sqrt(),
    "abs": lambda x: x.abs(), "sign": lambda x: x.sign() * x, "relu": lambda x: x.relu(),
    "sigmoid": lambda x: x.sigmoid(), "tanh": lambda x: x.tanh(), "sin": lambda x: x.sin(),
    "cos": lambda x: x.cos(), "clone": lambda x: x.clone(), "neg": lambda x: -x,
    "clamp": lambda x: x.clamp(min=-0.5, max=0.5),
}
BINARY = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b,
    "div": lambda a, b: a / b, "pow": lambda a, b: a ** b,
    "maximum": lambda a, b: ad.maximum(a, b), "minimum": lambda a, b: ad.minimum(a, b),
}
REDUCTIONS = {  # (op, fn, fused: along the last dim, over all, or a sum over all but the last)
    "sum over all": ("sum", lambda x: x.sum(), True),
    "sum along the last dim": ("sum", lambda x: x.sum(dim=-1), True),
    "sum along the last dim, kept": ("sum", lambda x: x.sum(dim=-1, keepdim=True), True),
    "sum along the first dim": ("sum", lambda x: x.sum(dim=0), True),  # one sum per column
    "amax along the first dim": ("max", lambda x: x.amax(dim=0), False),
    "amax along the last dim": ("max", lambda x: x.amax(dim=-1), True),
    "amin along the last dim, kept": ("min", lambda x: x.amin(dim=-1, keepdim=True), True),
    "amax over all": ("max", lambda x: x.amax() * 2, True),
    "softmax along the last dim": ("softmax", lambda x: x.softmax(dim=-1), True),
    "softmax along the first dim": ("softmax", lambda x: x.softmax(dim=0), False),
    "log_softmax along the last dim": ("log_softmax", lambda x: x.log_softmax(dim=1), True),
    "squared": ("pow", lambda x: x ** 2, True),
}


def fused_matches_eager(fn, inputs: list[np.ndarray], op: str, fused: bool = True) -> None:
    """fn on tensors of these values, compiled with backend="numba" and replayed, gives eager's
    output and every input's gradient (for a random upstream gradient), to the tolerance; the
    op's line is in a kernel when `fused`."""
    upstream = None
    results = []
    for compiled in (False, True):
        tensors = [ad.tensor(a, requires_grad=True) for a in inputs]
        run = ad.compile(fn, backend="numba") if compiled else fn
        if compiled:
            run(*[ad.tensor(a, requires_grad=True) for a in inputs])  # the trace
        out = run(*tensors)
        if upstream is None:
            upstream = np.random.default_rng(0).standard_normal(out.shape)
        out.backward(upstream)
        results.append([out.data, *[t.grad.data for t in tensors]])
    for got, expected in zip(results[1], results[0]):
        assert agree(got, expected), (got, expected)
    kernels = "\n".join(run.programs[0].kernels)
    assert (f"= {op}(" in kernels) == fused, kernels


@pytest.mark.parametrize("shape", [(7,), (3, 5)])
@pytest.mark.parametrize("name", list(UNARY))
@settings(max_examples=5)
@given(data=st.data())
def test_each_unary_ops_loop_form_gives_the_eager_result(name, shape, data):
    x = data.draw(arrays(shape, elements=safe_floats(name, params={"min": -0.5, "max": 0.5})))
    fused_matches_eager(UNARY[name], [x], name)



@pytest.mark.parametrize("bounds", [dict(max=0.5), dict(min=-0.25), dict(min=-np.inf, max=np.inf),
                                    dict(min=-np.inf, max=0.0), dict(min=0.0, max=np.inf)])
def test_clamps_loop_form_takes_each_bound_only_where_given_infinite_ones_too(bounds):
    inputs = [np.linspace(-2, 2, 15).reshape(3, 5)]
    fused_matches_eager(lambda x: x.clamp(**bounds) * 1.5, inputs, "clamp")

@pytest.mark.parametrize("shapes", [((3, 5), (5,)), ((3, 5), (3, 1)), ((2, 3, 4), ())])
@pytest.mark.parametrize("name", list(BINARY))
@settings(max_examples=5)
@given(data=st.data())
def test_each_binary_ops_loop_form_gives_the_eager_result_broadcasting(name, shapes, data):
    a = data.draw(distinct_arrays(shapes[0]) if name in ("maximum", "minimum")
                  else arrays(shapes[0], elements=safe_floats(name, 0)))
    b = data.draw(arrays(shapes[1], elements=safe_floats(name, 1)))
    fused_matches_eager(BINARY[name], [a, b], name)


@pytest.mark.parametrize("case", list(REDUCTIONS))
@settings(max_examples=5)
@given(data=st.data())
def test_each_reductions_loop_form_gives_the_eager_result(case, data):
    op, fn, fused = REDUCTIONS[case]
    x = data.draw(distinct_arrays((4, 6)))  # no ties: max's gradient is then one element's
    fused_matches_eager(fn, [x], op, fused)


@settings(max_examples=25)
@given(program=st.sampled_from(["float64", "float32"]).flatmap(lambda d: programs(dtype=d)),
       seed=st.integers(0, 2**32 - 1))
def test_fused_and_eager_agree_on_random_programs(program, seed):
    upstream = np.random.default_rng(seed).standard_normal(program(*program.tensors()).shape)
    step = ad.compile(program, backend="numba")
    for _ in range(2):  # the trace, then a replay
        inputs, eager_inputs = program.tensors(), program.tensors()
        out, expected = step(*inputs), program(*eager_inputs)
        out.backward(upstream)
        expected.backward(upstream)
        assert agree(out.data, expected.data)
        for t, e in zip(inputs, eager_inputs):
            assert (t.grad is None) == (e.grad is None)
            if e.grad is not None:
                assert agree(t.grad.data, e.grad.data)


def notebook_problem(dtype: str, seed: int = 0):
    """The notebook's network, small: inputs, one-hot targets and two copies of the weights."""
    rng = np.random.default_rng(seed)
    x = ad.tensor((rng.random((20, 8)) * 4).astype(dtype))
    y = ad.tensor(np.eye(3, dtype=dtype)[rng.integers(0, 3, 20)])
    weights = [(rng.standard_normal(s) * 0.5).astype(dtype) for s in [(8, 6), (6, 3)]]
    return x, y, [[ad.tensor(w.copy(), requires_grad=True) for w in weights] for _ in range(2)]


def notebook_step(ws, optimizer=None, lr=0.05):
    """One training step as the notebook's PyTorch cell, with an optimizer or by hand."""
    def loss(x, y):
        return ((x.mm(ws[0]).clamp(min=0).mm(ws[1]).softmax(dim=1) - y) ** 2).sum()

    return step_by_hand(ws, loss, lr) if optimizer is None else step_with(optimizer, loss)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("optimizer", ["by hand", "SGD", "Adam"])
def test_twenty_five_training_steps_agree_with_eager(optimizer, dtype):
    """Weights, loss and the optimizer's state; an optimizer's update (its `loop_update`) is
    loops in a kernel like the rest."""
    x, y, (mine, theirs) = notebook_problem(dtype)
    make = {"by hand": lambda ws: None, "SGD": lambda ws: optim.SGD(ws, lr=0.05, momentum=0.9),
            "Adam": lambda ws: optim.Adam(ws, lr=0.01)}[optimizer]
    optimizers = [make(mine), make(theirs)]
    fused = ad.compile(notebook_step(mine, optimizers[0]), backend="numba")
    eager = notebook_step(theirs, optimizers[1])
    for _ in range(25):
        got, expected = fused(x, y), eager(x, y)
        assert got.dtype == np.dtype(dtype) and agree(got.data, expected.data)
    for w, v in zip(mine, theirs):
        assert w.dtype == np.dtype(dtype) and agree(w.data, v.data)
        if optimizers[0] is not None:
            state, eager_state = optimizers[0].state[w], optimizers[1].state[v]
            assert state.keys() == eager_state.keys()
            assert all(agree(state[k], eager_state[k]) for k in state)
    assert len(fused.programs) == 1
    updates = [line for line in fused.tape(x, y).splitlines() if "expression=" in line]
    assert all(line.lstrip().startswith("# ") for line in updates)  # each inside a kernel
    assert len(updates) == {"by hand": 0, "SGD": 4, "Adam": 6}[optimizer]


def test_the_tape_shows_the_kernels_loops_and_the_region_that_calls_them():
    x, y, (ws, _) = notebook_problem("float64")
    step = ad.compile(notebook_step(ws), backend="numba")
    before = [w.data.copy() for w in ws]
    tape = step.tape(x, y)
    assert all(np.array_equal(b, w.data) for b, w in zip(before, ws))  # looking takes no step
    assert "region0(" in tape.split("def forward")[1].split("\n\n")[0]  # one call from Python
    assert "# t3 = softmax(t2, dim=1)" in tape and "for j in range(3):" in tape
    assert "np.dot(a0, c0)" in tape  # a matmul, and the update in the product's BLAS call:
    assert "matmul_add(a0.T, g_t0, c0, -c3[()])" in tape  # c0 += −lr · a0ᵀ g_t0
    assert tape == tape.rstrip()  # no blank line after the last kernel
    dot = viz.tape_to_dot(step, x, y)
    assert "region0" in dot.source


def test_float32_stays_float32_inside_the_kernels():
    x, y, (ws, _) = notebook_problem("float32")
    tape = ad.compile(notebook_step(ws), backend="numba").tape(x, y)
    assert "np.float32(" in tape and "np.float64" not in tape


def test_an_update_that_reads_its_own_weight_through_a_view_is_not_fused_into_a_write():
    """``w -= lr * w.T``: NumPy reads the old values; a loop writing w while reading w.T would
    read some new ones, so the write stays a NumPy call."""
    rng = np.random.default_rng(4)
    start = rng.standard_normal((4, 4))
    ws = [ad.tensor(start.copy(), requires_grad=True) for _ in range(2)]

    def step_of(weight):
        def step(x):
            loss = (x @ weight).tanh().sum()
            loss.backward()
            with ad.no_grad():
                for w in [weight]:
                    w -= 0.1 * (w.grad + w.T)
                    w.grad = None
            return loss
        return step

    x = ad.tensor(rng.standard_normal((3, 4)))
    fused, eager = ad.compile(step_of(ws[0]), backend="numba"), step_of(ws[1])
    for _ in range(3):
        fused(x), eager(x)
        assert agree(ws[0].data, ws[1].data)
    assert "sub(c0, t5, out=c0)" in fused.tape(x)  # a NumPy call: it buffers the overlap



LAYOUTS = {"C": np.ascontiguousarray, "F": np.asfortranarray,
           "strided": lambda a: np.repeat(a, 2, axis=-1)[..., ::2]}


@pytest.mark.filterwarnings("ignore::numba.NumbaPerformanceWarning")  # strided: np.dot copies
@settings(max_examples=40, deadline=None)
@given(sizes=st.tuples(*[st.integers(0, 5)] * 3), dtype=st.sampled_from(["float64", "float32"]),
       layouts=st.tuples(*[st.sampled_from(list(LAYOUTS))] * 3),
       alpha=st.floats(-4, 4, allow_subnormal=False),
       seed=st.integers(0, 2**16))
def test_matmul_add_adds_the_scaled_product_into_c_in_place(sizes, dtype, layouts, alpha, seed):
    from autodiff.blas import matmul_add

    m, k, n = sizes
    rng = np.random.default_rng(seed)
    a, b, c = (LAYOUTS[layout](rng.standard_normal(shape).astype(dtype))
               for layout, shape in zip(layouts, [(m, k), (k, n), (m, n)]))
    expected = c + np.asarray(alpha, dtype) * (a @ b)
    assert matmul_add(a, b, c, alpha) is c and agree(c, expected)
    with pytest.raises(ValueError, match="matmul_add: shapes do not fit a @ b into c"):
        matmul_add(a, b, np.zeros((m + 1, n), dtype), alpha)


@pytest.mark.parametrize("keeps_grad", [False, True])
def test_an_update_of_a_gradient_nothing_else_reads_is_one_blas_call_into_the_weight(keeps_grad):
    """``w -= lr * w.grad; w.grad = None``: w's gradient is a product read only by the update,
    so BLAS adds −lr times it into w; a .grad the step keeps is made and stored as before. A
    weight given a Fortran-ordered array between calls is updated all the same."""
    x, y, (ws, eager_ws) = notebook_problem("float64")

    def step_of(ws):
        return step_by_hand(ws, lambda x, y: ((x @ ws[0]).relu() @ ws[1]).tanh().sum(), 0.05,
                            keep_grad=keeps_grad)

    fused, eager = ad.compile(step_of(ws), backend="numba"), step_of(eager_ws)
    tape = fused.tape(x, y)
    assert ("matmul_add(a0.T, g_t0, c0, -c2[()])" in tape) != keeps_grad, tape
    assert ("matmul_add(t1.T, g_t2, c1, -c2[()])" in tape) != keeps_grad
    for call in range(4):
        if call == 2:
            for w in (ws[1], eager_ws[1]):
                w.data = np.asfortranarray(w.data)
        assert agree(fused(x, y).data, eager(x, y).data)
        for w, v in zip(ws, eager_ws):
            assert agree(w.data, v.data)
            assert (w.grad is None) == (v.grad is None) == (not keeps_grad)


def test_a_product_that_reads_the_weight_it_updates_is_not_added_into_it():
    """x a view of w: BLAS would write w while it reads x, so the update stays a loop, which
    refuses the overlap as well and leaves it to NumPy."""
    rng = np.random.default_rng(5)
    ws = [ad.tensor(rng.standard_normal((4, 4)), requires_grad=True) for _ in range(2)]
    ws[1].data[...] = ws[0].data

    def step_of(weight):
        def step(x):
            loss = (x @ weight).tanh().sum()
            loss.backward()
            with ad.no_grad():
                weight.sub_(0.1 * weight.grad)
                weight.grad = None
            return loss
        return step

    fused, eager = ad.compile(step_of(ws[0]), backend="numba"), step_of(ws[1])
    for _ in range(3):
        fused(ws[0].detach()), eager(ws[1].detach())
        assert agree(ws[0].data, ws[1].data)
    assert "matmul_add" not in fused.tape(ws[0].detach())


@pytest.mark.parametrize("name", ["SGD", "Adam"])
def test_each_parameter_group_is_updated_with_its_own_numbers(name):
    """Two groups, two learning rates: each weight's loops read its own group's."""
    x, y, (ws, eager_ws) = notebook_problem("float64")
    make = getattr(optim, name)
    optimizers = [make([{"params": [w0]}, {"params": [w1], "lr": 0.002}], lr=0.05)
                  for w0, w1 in (ws, eager_ws)]
    fused = ad.compile(notebook_step(ws, optimizers[0]), backend="numba")
    eager = notebook_step(eager_ws, optimizers[1])
    for _ in range(4):
        fused(x, y), eager(x, y)
        for w, v in zip(ws, eager_ws):
            assert agree(w.data, v.data)
    assert "group=1" in fused.tape(x, y)

def test_an_unknown_backend_and_a_missing_numba_are_clear_errors(monkeypatch):
    with pytest.raises(ValueError, match="compile: unknown backend 'jax'; expected one of "
                                         "'numpy', 'numba'"):
        ad.compile(lambda x: x, backend="jax")
    monkeypatch.setitem(sys.modules, "numba", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"pip install 'autodiff\[fast\]'"):
        ad.compile(lambda x: x, backend="numba")


def test_kernels_are_written_to_the_cache_folder_and_work_without_one(tmp_path, monkeypatch):
    monkeypatch.setattr(fusion, "COMPILED", {})  # as a new process: nothing compiled yet
    monkeypatch.setenv("AUTODIFF_CACHE", str(tmp_path / "kernels"))
    assert cache_folder() == tmp_path / "kernels"
    w = ad.tensor(np.linspace(-1, 1, 12).reshape(3, 4), requires_grad=True)
    step = ad.compile(lambda x: (x * w).tanh().sum() * 1.25, backend="numba")
    x = ad.tensor(np.full((3, 4), 0.5))
    step(x), step(x)
    files = list((tmp_path / "kernels").glob("autodiff_kernels_*.py"))
    assert len(files) == 2 and not list((tmp_path / "kernels").glob(".*.tmp"))  # fwd, bwd
    assert any(step.programs[0].kernels[0] in f.read_text() for f in files)
    (tmp_path / "blocked").write_text("a file where the folder would be")
    monkeypatch.setenv("AUTODIFF_CACHE", str(tmp_path / "blocked"))
    other = ad.compile(lambda x: (x * w).sin().sum() * 0.75, backend="numba")
    other(x)
    assert agree(other(x).data, ((x * w).sin().sum() * 0.75).data)  # compiled in memory



CACHED_STEP = """
import numpy as np, autodiff as ad
from autodiff import fusion
w = ad.tensor(np.linspace(-1, 1, 12).reshape(4, 3), requires_grad=True)
step = ad.compile(lambda x: (x @ w).relu().sum(), backend="numba")
x = ad.tensor(np.full((2, 4), 0.5))
step(x), step(x)
stats = [f.stats for m in fusion.COMPILED.values() for f in vars(m).values()
         if hasattr(f, "stats")]
print(sum(len(s.cache_hits) for s in stats), sum(len(s.cache_misses) for s in stats))
"""


def test_a_new_process_loads_kernels_and_regions_from_the_disk_cache(tmp_path):
    """A region calls BLAS (np.dot) between kernels: numba caches it too, so a second
    process compiles nothing."""
    env = {**os.environ, "AUTODIFF_CACHE": str(tmp_path)}
    root = Path(__file__).resolve().parents[1]
    runs = [subprocess.run([sys.executable, "-c", CACHED_STEP], env=env, cwd=root, text=True,
                           capture_output=True, check=True).stdout.split() for _ in range(2)]
    assert any("region" in f.name for f in tmp_path.glob("__pycache__/*.nbi"))
    (hits_first, misses_first), (hits_second, misses_second) = runs
    assert hits_first == "0" and int(misses_first) >= 2  # at least a kernel and a region
    assert int(hits_second) >= 1 and misses_second == "0"  # a kernel comes inside its region

def test_the_tolerance_is_the_documented_one():
    assert TOLERANCE[8] == 1e-12 and TOLERANCE[4] == 1e-5
    assert agree(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-12]))
    assert not agree(np.array([1.0, 2.0]), np.array([1.0, 2.0 + 1e-10]))
    assert not agree(np.array([1.0, np.nan]), np.array([1.0, 2.0]))
    assert not agree(np.array([1.0], np.float32), np.array([1.0]))
    assert agree(np.array([2e-17, 0.0]), np.zeros(2))  # 0 by cancelling, in NumPy's order
    assert not agree(np.array([1e-13, 0.0]), np.zeros(2))


def test_the_fusion_page_shows_the_kernel_and_the_region_its_example_writes():
    page = (Path(__file__).resolve().parents[1] / "docs" / "fusion.md").read_text()
    example = re.search(r"```python\n(.*?)```", page, re.S)
    shown = re.findall(r"```\n(def .*?)```", page, re.S)
    assert example is not None and len(shown) == 2
    names: dict = {}
    exec(example.group(1).replace("print(", "str("), names)
    assert all(code in names["tape"] + "\n" for code in shown)


def test_a_temporary_that_nothing_reads_is_never_written_out_even_with_a_buffer():
    """``w -= lr * w.grad`` on a 256 KiB weight whose .grad the step keeps: the NumPy backend
    writes ``lr * w.grad`` into a buffer it keeps; fused, that product stays in a register and
    only w is written."""
    rng = np.random.default_rng(5)
    w = ad.tensor(rng.standard_normal((64, 512)), requires_grad=True)

    def step(x):
        loss = (x @ w).tanh().sum()
        loss.backward()
        with ad.no_grad():
            for v in [w]:
                v -= 0.1 * v.grad
        return loss

    x = ad.tensor(rng.standard_normal((8, 64)))
    assert "out=t" in ad.compile(step).tape(x)  # the NumPy backend's buffer for the product
    tape = ad.compile(step, backend="numba").tape(x)
    update = tape[tape.rindex("def kernel"):].split("\n\n")[0]
    assert update.startswith("def kernel1(c1, grad_c0, c0):")  # no buffer to write t3 into
    assert "c0[i0, j] = " in update and "np.empty" not in update


def test_a_view_of_a_weight_read_after_the_run_wrote_the_weight_is_not_read_in_the_loop():
    """``wt = w.T`` taken before the update, read after it: eager reads the new values through
    the view. A loop that wrote w element by element could not, so that read leaves the run."""
    rng = np.random.default_rng(6)
    start = rng.standard_normal((3, 3))
    ws = [ad.tensor(start.copy(), requires_grad=True) for _ in range(2)]

    def step_of(weight):
        def step(x):
            loss = (x @ weight).sin().sum()
            loss.backward()
            with ad.no_grad():
                transposed = weight.T
                for w in [weight]:
                    w -= 0.1 * w.grad
                    w.grad = None
                after = transposed * 2.0
            return loss, after
        return step

    x = ad.tensor(rng.standard_normal((2, 3)))
    fused, eager = ad.compile(step_of(ws[0]), backend="numba"), step_of(ws[1])
    for _ in range(3):
        (_, got), (_, expected) = fused(x), eager(x)
        assert agree(got.data, expected.data) and agree(ws[0].data, ws[1].data)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_a_bias_gradient_is_a_column_sum_inside_the_loop(dtype):
    """``x @ w + b``: b's gradient sums the rows back (``sum_to``); fused, each column's sum
    is kept while the loop walks the rows, and ``sum(dim=0)`` is the same."""
    rng = np.random.default_rng(7)
    x = ad.tensor(rng.standard_normal((8, 3)).astype(dtype))
    start = [rng.standard_normal(s).astype(dtype) for s in [(3, 4), (4,)]]
    params = [[ad.tensor(a.copy(), requires_grad=True) for a in start] for _ in range(2)]

    def step_of(w, b):
        def step(x):
            h = (x @ w + b).tanh()
            loss = (h * h).sum() + h.sum(dim=0).sum()
            loss.backward()
            with ad.no_grad():
                for p in (w, b):
                    p -= 0.1 * p.grad
                    p.grad = None
            return loss
        return step

    fused, eager = ad.compile(step_of(*params[0]), backend="numba"), step_of(*params[1])
    for _ in range(4):
        assert agree(fused(x).data, eager(x).data)
        assert all(agree(p.data, q.data) for p, q in zip(*params))
    tape = fused.tape(x)
    assert "_sum[j] += " in tape and ".reshape((4,))" in tape


def test_an_optimizers_loops_are_guarded_and_one_without_loops_runs_its_own_update():
    """SGD's update has other loops with momentum than without: setting it traces again. An
    optimizer that declares no `loop_update` is called as on the NumPy backend."""

    class Halving(optim.Optimizer):  # no loop form: its update runs as Python
        def __init__(self, params):
            super().__init__(params, {"lr": 1.0})

        def update(self, p, g, group, state):
            p.data -= 0.5 * group["lr"] * g

    x = ad.tensor(np.linspace(0.1, 1.2, 8).reshape(2, 4))
    for make, changes in ((lambda ws: optim.SGD(ws, lr=0.1), True), (Halving, False)):
        ws = [ad.tensor(np.linspace(-1, 1, 12).reshape(3, 4), requires_grad=True)
              for _ in range(2)]
        optimizers = [make([w]) for w in ws]

        def step_of(w, optimizer):
            return step_with(optimizer, lambda x: (x @ w.T).tanh().sum())

        fused, eager = ad.compile(step_of(ws[0], optimizers[0]), backend="numba"), \
            step_of(ws[1], optimizers[1])
        for call in range(6):
            if call == 3 and changes:
                for optimizer in optimizers:
                    optimizer.param_groups[0]["momentum"] = 0.5
            fused(x), eager(x)
            assert agree(ws[0].data, ws[1].data)
        assert len(fused.programs) == (2 if changes else 1)
        assert ("loop_state(" in fused.tape(x)) == changes


def test_a_gradient_that_cancels_to_zero_agrees_and_passes_check():
    """softmax's outputs sum to 1 whatever x is, so the gradient is 0: exactly in NumPy's
    order of summing, a rounding error in a row loop's."""
    x = ad.tensor(np.full((3, 3, 3), 1.0625), requires_grad=True)
    checked = ad.compile(lambda x: x.log_softmax(dim=1).softmax(dim=-1).sum(dim=-1).sum(),
                         backend="numba", check=True)
    for _ in range(4):
        x.grad = None
        checked(x).backward()
        assert np.abs(x.grad.data).max() < 1e-15


TINY = np.float32(1e-20)  # its square, 1e-40, is subnormal in float32


def test_a_fused_replay_flushes_subnormal_results_to_zero_and_reads_subnormal_inputs_as_given():
    def scaled(x, y):
        return x * x, (y.relu() * 3).sum()

    values = np.full((2, 3), TINY, dtype=np.float32)
    subnormal = values * TINY
    fused = ad.compile(scaled, backend="numba")
    fused(ad.tensor(values), ad.tensor(subnormal, requires_grad=True))  # the trace: eager
    x = ad.tensor(subnormal, requires_grad=True)
    product, total = fused(ad.tensor(values), x)
    total.backward()
    # the product 1e-40 is made inside a kernel: 0 on x86-64 (the processor's flush-to-zero)
    expected = np.zeros_like(subnormal) if X86_64 else subnormal
    np.testing.assert_array_equal(product.data, expected)
    assert np.all(subnormal > 0)
    # a subnormal input is read as it is: relu's gradient there is 1, as in eager
    np.testing.assert_array_equal(x.grad.data, np.full((2, 3), 3, dtype=np.float32))


@pytest.mark.skipif(not X86_64, reason="flush-to-zero is an x86-64 register: elsewhere a no-op")
def test_the_flush_to_zero_mode_is_put_back_after_a_replay_and_after_an_error():
    def flushing() -> bool:
        return bool(mxcsr() & FLUSH_TO_ZERO)

    assert not flushing()
    fused = ad.compile(lambda x: x * 2, backend="numba")
    for _ in range(3):
        fused(ad.tensor(np.ones(4)))
    assert not flushing() and TINY * TINY > 0  # NumPy outside a replay keeps subnormals

    def fails() -> None:
        assert flushing()
        raise ZeroDivisionError("inside")

    with pytest.raises(ZeroDivisionError, match="inside"):
        flushing_subnormals(fails)()
    assert not flushing()


def test_off_x86_64_a_function_runs_as_it_is(monkeypatch):
    monkeypatch.setattr(flush, "X86_64", False)
    assert flushing_subnormals(len) is len
