"""autodiff.viz: DOT structure, determinism, labels, clusters, collapsing, escaping, rendering."""

import os
import re
import shutil
import subprocess
from xml.etree import ElementTree

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import autodiff as ad
from autodiff import viz
from autodiff.viz import dot as viz_dot
from models import MLP

# CI installs Graphviz, so there these tests always run; elsewhere they need `dot` on PATH.
requires_dot = pytest.mark.skipif(shutil.which("dot") is None and not os.environ.get("CI"),
                                  reason="Graphviz's dot is not installed (make test installs it)")


def program():
    x = ad.tensor(np.arange(6.0).reshape(2, 3), name="x")
    w = ad.tensor(np.ones((3, 2)) * 0.5, requires_grad=True)
    h = (x @ w).relu()
    loss = (h * h + h.exp()).sum()
    return loss, {"w": w}


def node_ids(source: str) -> list[str]:
    return re.findall(r"^\s*((?:t|op)\d+(?:_\d+)?) \[", source, re.M)


def test_one_node_per_op_and_tensor_and_one_edge_per_data_flow():
    loss, params = program()
    snap = viz.snapshot(loss, params=params)
    source = viz.to_dot(loss, params=params).source
    ids = node_ids(source)
    assert len(ids) == len(set(ids)) == len(snap.tensors) + len(snap.ops)
    expected_edges = sum(len(op.inputs) + 1 for op in snap.ops)
    assert source.count(" -> ") == expected_edges
    # x @ w: x, w, matmul, its output; relu and output; h*h (2 edges in); exp; add; sum
    assert [op.name for op in snap.ops] == ["matmul", "relu", "mul", "exp", "add", "sum"]


def test_the_same_program_gives_the_same_dot_text():
    assert viz.to_dot(program()[0]).source == viz.to_dot(program()[0]).source


def test_kinds_of_tensor_are_drawn_apart():
    loss, params = program()
    source = viz.to_dot(loss, params=params).source
    assert re.search(r'label="x\\n\(2, 3\) float64".*dashed', source)  # input
    assert re.search(r'label="w\\n\(3, 2\) float64".*fillcolor="#cfe2ff"', source)  # parameter
    assert re.search(r'peripheries=2', source)  # the output


def test_values_small_in_full_and_large_summarised():
    small = ad.tensor([1.5, -2.0], requires_grad=True)
    large = ad.tensor(np.arange(100.0), requires_grad=True)
    source = viz.to_dot((small * 2).sum() + large.sum(), show_values=True).source
    assert "[ 1.5, -2. ]" in source
    assert "min 0  mean 49.5  max 99" in source


def test_gradients_after_backward_with_a_snapshot():
    loss, params = program()
    with viz.snapshot(loss, params=params) as snap:
        loss.backward()
    source = viz.to_dot(snap, show_grads=True).source
    n_with_grad = sum(1 for t in snap.tensors if t.tensor.requires_grad)
    grads_shown = source.count("grad ‖g‖") + source.count("grad 1.")  # the loss's reads "grad 1."
    assert grads_shown == n_with_grad  # intermediates too, though the graph is freed
    assert "gradient norm" in source and "vanishing" in source and "exploding" in source
    w_norm = np.linalg.norm(params["w"].grad.data)
    assert f"grad ‖g‖ {w_norm:.3g}" in source


def test_a_snapshot_sees_the_backward_of_a_graph_of_one_op(nothing_retained):
    """x.sum() alone: the walker's shortcut for one node is not taken while a snapshot
    watches, so it is sent both gradients, the output's first."""
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    y = x.sum()
    with viz.snapshot(y) as snap:
        y.backward()
    assert [snap.tensors[i].tensor for i in snap.backward_order] == [y, x]
    assert snap.tensors[snap.backward_order[1]].grad.tolist() == [1.0, 1.0]


def test_a_freed_graph_asks_for_a_snapshot():
    loss, _ = program()
    loss.backward()
    with pytest.raises(RuntimeError, match="take a viz.snapshot before backward"):
        viz.to_dot(loss)


def test_rules_come_from_the_op_table():
    a = ad.tensor(np.ones((2, 2)), requires_grad=True)
    source = viz.to_dot((a @ a).softmax(1), show_rules=True).source
    assert "dA = G·Bᵀ\\ndB = Aᵀ·G" in source
    assert ad.ops.SOFTMAX.formulas()[0] in source


def test_module_parameters_group_their_ops_in_clusters():
    model = MLP([4, 3, 2], rng=np.random.default_rng(0))
    out = model(ad.tensor(np.ones((1, 4)))).relu()
    source = viz.to_dot(out, params=dict(model.named_parameters())).source
    clusters = re.findall(r"subgraph (cluster_\d+) \{\s*[^\n]*label=\"?([\w.]+)", source)
    assert sorted(label for _, label in clusters) == ["layers.0", "layers.1"]
    layer0 = source[source.index('label="layers.0"'):].split("}")[0]
    assert "label=matmul" in layer0 and "label=add" in layer0 and "label=relu" not in layer0


def test_collapse_folds_a_repeated_chain_and_says_so():
    x = ad.tensor(np.ones(2), requires_grad=True, name="x")
    y = x
    for _ in range(30):
        y = (y * 1.5).tanh() + x
    source = viz.to_dot(y, collapse=True).source
    assert "[mul → tanh → add] ×30" in source and "collapsed: 90 ops" in source
    assert len(node_ids(source)) < 10


def test_a_100000_node_chain_converts_to_dot():
    x = ad.tensor(1.0, requires_grad=True)
    y = x
    for _ in range(50_000):
        y = y.tanh()
    assert len(node_ids(viz.to_dot(y).source)) == 100_001


@requires_dot
def test_a_10000_node_graph_renders_to_svg(tmp_path):
    x = ad.tensor(np.ones(2), requires_grad=True)
    y = x
    for _ in range(5_000):
        y = y.tanh()
    path = viz.render(y, path=tmp_path / "big.svg")
    assert path.read_text().count('class="node"') == 10_001


HOSTILE = st.text(alphabet=st.sampled_from(list('"<>{}|\\\n\r &;:.é€字🙂\'abcn[]')),
                  min_size=1, max_size=12)


def _svg_texts(svg: bytes) -> list[str]:
    root = ElementTree.fromstring(svg)
    return [" ".join((e.text or "").split()) for e in root.iter("{http://www.w3.org/2000/svg}text")]


@requires_dot
@settings(max_examples=40, deadline=None)
@given(name=HOSTILE, module=HOSTILE)
def test_any_name_renders_as_written(name, module):
    """Quotes, <, >, {, }, |, backslashes, newlines and non-ASCII go through dot unchanged."""
    x = ad.tensor([1.0, 2.0], requires_grad=True, name=name)
    w = ad.tensor([3.0, 4.0], requires_grad=True)
    key = f"{module}.weight"  # a dotted key: its module path labels a cluster
    source = viz.to_dot((x * w).sum(), params={key: w}, show_values=True).source
    result = subprocess.run(["dot", "-Tsvg"], input=source.encode(), capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    texts = _svg_texts(result.stdout)
    for text in [*name.replace("\r", "").split("\n"), *module.replace("\r", "").split("\n")]:
        if text.strip():
            assert " ".join(text.split()) in texts


def test_render_without_dot_says_how_to_install_it(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", "")
    loss, _ = program()
    with pytest.raises(RuntimeError, match="apt-get install graphviz"):
        viz.render(loss, path=tmp_path / "g.svg")
    assert not (tmp_path / "g.svg").exists()
    assert viz.to_dot(loss).source.startswith("digraph")  # to_dot needs no dot


def test_without_the_graphviz_package_the_error_names_the_extra(monkeypatch):
    monkeypatch.setattr(viz_dot, "graphviz", None)
    with pytest.raises(ImportError, match=r"pip install 'autodiff\[viz\]'"):
        viz.to_dot(program()[0])


@requires_dot
def test_the_digraph_displays_inline_in_jupyter():
    """Jupyter asks for a mime bundle and shows its SVG: the graph itself, drawn by dot."""
    bundle = viz.to_dot(program()[0])._repr_mimebundle_(include=["image/svg+xml"])
    texts = _svg_texts(bundle["image/svg+xml"].encode())
    assert "mul" in texts and "sum" in texts


def test_backward_steps_walk_every_gradient_and_leave_grad_alone():
    loss, params = program()
    steps = list(viz.backward_steps(loss, params=params))
    n_with_grad = sum(1 for t in viz.snapshot(loss).tensors if t.tensor.requires_grad)
    assert len(steps) == n_with_grad
    assert params["w"].grad is None  # .grad untouched; the graph is still usable
    assert "step 1/" in steps[0].source and "sum's rule" in steps[0].source
    assert steps[0].source.count("grad 1.") == 1  # only the loss's gradient is known at first
    assert steps[0].source.count("grad ‖g‖") == 0
    assert steps[-1].source.count("grad ‖g‖") + 1 == n_with_grad
    assert 'color="#d62728"' in steps[1].source  # the op being applied is outlined
    loss.backward()


def test_collapse_folds_the_repeated_layers_of_a_deep_mlp_once():
    model = MLP([8] * 12 + [2], rng=np.random.default_rng(0))
    out = model(ad.tensor(np.ones((3, 8)), name="x")).sum()
    source = viz.to_dot(out, collapse=True).source
    folded = re.findall(r"\[matmul → add → relu\] ×(\d+)", source)
    assert folded == ["11"]  # each layer's ops are folded into one node, once
    assert source.count('label=".T"') == 12  # each weight's transpose still feeds it


def test_a_forward_mode_pass_shows_each_tangent_beside_its_value():
    from autodiff.forward import forward_mode

    x = ad.tensor([1.0, 2.0], requires_grad=True, name="x")
    with forward_mode({x: np.array([1.0, 0.0])}) as tangents:
        y = (x * x).sum()
    source = viz.to_dot(y, tangents=tangents, show_values=True).source
    assert "tangent: [1., 0.]" in source and "tangent: [2., 0.]" in source  # x, then x·x
    assert "tangent: 2." in source  # d(x₀² + x₁²) along (1, 0) at (1, 2)


@requires_dot
@pytest.mark.parametrize(("name", "magic"), [("g.png", b"\x89PNG"), ("g.svg", b"<?xml"),
                                             ("g.pdf", b"%PDF"), ("g", b"<?xml")])
def test_render_writes_the_format_its_extension_names(tmp_path, name, magic):
    path = viz.render(program()[0], path=tmp_path / name)
    assert path.read_bytes().startswith(magic)


def test_render_refuses_a_format_that_contradicts_the_extension(tmp_path):
    with pytest.raises(ValueError, match=r"ends in \.png but format='svg'"):
        viz.render(program()[0], path=tmp_path / "g.png", format="svg")
    assert list(tmp_path.iterdir()) == []


def test_without_dot_jupyter_shows_the_install_command_and_the_dot_source(monkeypatch):
    monkeypatch.setenv("PATH", "")
    dot = viz.to_dot(program()[0])
    bundle = dot._repr_mimebundle_()
    assert "apt-get install graphviz" in bundle["text/plain"]
    assert dot.source in bundle["text/plain"] and "&lt;" not in bundle["text/plain"]
    assert "<pre>" in bundle["text/html"] and "apt-get install graphviz" in bundle["text/html"]


def test_a_scalar_constant_shows_its_value_and_a_transpose_its_name():
    w = ad.tensor(np.ones((3, 2)), requires_grad=True, name="w")
    x = ad.tensor(np.ones((1, 2)), name="x")
    source = viz.to_dot(((x @ w.T) ** 2).sum()).source
    assert "() float64\\n2." in source  # the exponent of ** 2
    assert 'label=".T"' in source and "permute" not in source
    assert 'label="transpose(0, 1)"' in viz.to_dot(
        ad.tensor(np.ones((2, 3, 4)), requires_grad=True).transpose(0, 1)).source


def test_a_scalar_gradient_reads_as_a_number():
    loss, params = program()
    with viz.snapshot(loss, params=params) as snap:
        loss.backward()
    source = viz.to_dot(snap, show_grads=True).source
    assert "grad 1." in source and "‖g‖ 1: 1." not in source


def test_backward_steps_is_a_list_of_digraphs():
    steps = viz.backward_steps(program()[0])
    assert isinstance(steps, list) and len(steps) >= 5
    assert all(step.source.startswith("digraph") for step in steps)


def test_rules_drawn_include_the_kink_and_domain_the_table_declares():
    x = ad.tensor([1.0, 2.0], requires_grad=True)
    source = viz.to_dot(x.relu().log().sum(), show_rules=True).source
    assert "at x = 0 the gradient is 0.0" in source  # relu's kink
    assert "defined for x &gt; 0" in source or "defined for x > 0" in source  # log's domain


def test_the_compiled_tape_draws_forward_ops_backward_rules_and_shaped_slots():
    w = ad.tensor(np.ones((3, 2)), requires_grad=True)
    step = ad.compile(lambda x: (x @ w).tanh().sum())
    source = viz.tape_to_dot(step, ad.tensor(np.ones((4, 3)))).source
    assert 'label=matmul fillcolor="#eeeeee"' in source  # the forward line
    assert 'label=tanh_vjp fillcolor="#fdd49e"' in source  # a backward rule
    assert 'label="c0\\n(3, 2) float64"' in source and 'label="g_c0\\n(3, 2) float64"' in source
    assert "t0 -> line" in source  # the backward reads the forward's values


def test_the_tape_of_a_whole_step_draws_its_effects_and_takes_no_step():
    w = ad.tensor(np.ones((3, 2)), requires_grad=True)
    optimizer = ad.optim.SGD([w], lr=0.1, momentum=0.9)

    def step(x):
        optimizer.zero_grad()
        (x @ w).tanh().sum().backward()
        optimizer.step()

    source = viz.tape_to_dot(ad.compile(step), ad.tensor(np.ones((4, 3)))).source
    assert 'label=update_param fillcolor="#c7e9c0"' in source  # the optimizer's update
    assert 'label=store_gradients fillcolor="#c7e9c0"' in source  # g_c0 stored into w.grad
    assert 'label="grad_c0\\n(3, 2) float64"' in source and "grad_c0 -> line" in source
    assert np.array_equal(w.data, np.ones((3, 2))) and w.grad is None and not optimizer.state
