"""`viz.explore`: the graph as one interactive page. Its data first (what the page is given),
then the page itself in headless Chromium: it opens offline with no console error; a click
shows a tensor's values, gradient and rule; expanding a module adds its nodes; search centres a
tensor; the slider walks the backward pass; hostile names stay text; a 10⁴-node page opens. A
page whose script is removed fails the same checks."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from browser import CHROMIUM, INSTALL, problems

import autodiff as ad
from autodiff import nn, viz
from autodiff.viz.explore import graph_data
from demos.graph import notebook_graph

HOSTILE = ["<img src=x onerror=alert(1)>", "</script><script>alert(2)</script>", "<!-- & -->"]


def notebook_snapshot():
    loss, params = notebook_graph(seed=0)
    with viz.snapshot(loss, params=params) as snap:
        loss.backward()
    return snap


def mlp_snapshot():
    model = nn.Sequential(nn.Linear(6, 5, rng=np.random.default_rng(0)), nn.ReLU(),
                          nn.Linear(5, 4, rng=np.random.default_rng(1)), nn.ReLU(),
                          nn.Linear(4, 2, rng=np.random.default_rng(2)))
    loss = model(ad.tensor(np.ones((3, 6)))).sum()
    with viz.snapshot(loss, params=dict(model.named_parameters())) as snap:
        loss.backward()
    return snap


def page_data(path):
    text = re.search(r'id="graph-data">(.*?)</script>', path.read_text(), re.S).group(1)
    return json.loads(text)


def test_the_data_names_every_tensor_op_edge_and_module():
    data = graph_data(mlp_snapshot(), "mlp")
    tensors = [n for n in data["nodes"] if n["kind"] == "tensor"]
    ops = [n for n in data["nodes"] if n["kind"] == "op"]
    assert len(data["edges"]) == sum(1 for e in data["edges"] if e[0].startswith("op")) + \
        sum(1 for e in data["edges"] if e[0].startswith("t"))
    assert {g["label"] for g in data["groups"] if g["kind"] == "module"} == {"0", "2", "4"}
    weight = next(n for n in tensors if n["name"] == "0.weight")
    assert weight["role"] == "param" and weight["shape"] == [5, 6] and weight["group"] == \
        "module 0" and weight["grad"]["hist"] and len(weight["grad"]["hist"]) == 8
    assert all(op["formulas"] for op in ops if op["name"] != "relu") and data["backward"]


def test_a_long_chain_is_a_group_and_a_big_graph_opens_collapsed(tmp_path):
    x = ad.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(300):
        y = (y * 1.001).tanh()
    path = viz.explore(y, path=tmp_path / "chain.html")
    data = page_data(path)
    chain = [g for g in data["groups"] if g["kind"] == "chain"]
    assert chain and chain[0]["size"] > 1000 and data["collapsed"] == [chain[0]["id"]]


def test_hostile_names_are_escaped_data_in_the_page(tmp_path):
    tensors = [ad.tensor([1.0], requires_grad=True, name=name) for name in HOSTILE]
    path = viz.explore(sum(t * 2 for t in tensors), path=tmp_path / "hostile.html")
    text = path.read_text()
    assert "<img src=x" not in text and text.count("</script>") == 2  # the page's own two
    assert {n["name"] for n in page_data(path)["nodes"]} >= set(HOSTILE)


# ---------------------------------------------------------------- in the browser
browser_only = pytest.mark.skipif(CHROMIUM is None, reason=INSTALL)


def node_id(path, name):
    return next(n["id"] for n in page_data(path)["nodes"] if n["name"] == name)


@browser_only
def test_a_click_on_w1_shows_its_values_gradient_and_the_rule_of_each_op(page, tmp_path):
    path = viz.explore(notebook_snapshot(), path=tmp_path / "step.html")
    assert problems(page, path.as_uri()) == []
    page.click(f"g.node[data-id='{node_id(path, 'w1')}']")
    details = page.inner_text("#details")
    assert "w1" in details and "values: min" in details and "gradient: min" in details
    page.click("g.node.op >> nth=0")  # an op: its rule
    assert "rule: " in page.inner_text("#details")


@browser_only
def test_an_op_made_under_detect_anomaly_shows_the_line_that_made_it(page, tmp_path):
    w = ad.tensor([1.0, 2.0], requires_grad=True, name="w")
    with ad.detect_anomaly():
        loss = (w.exp() * 3).sum()
    path = viz.explore(loss, path=tmp_path / "origin.html")
    page.goto(path.as_uri())
    page.click("g.node.op >> nth=0")
    assert "made at: " in page.inner_text("#details")
    assert "test_explore.py" in page.inner_text("#details")


@browser_only
def test_expanding_a_module_adds_its_nodes(page, tmp_path):
    path = viz.explore(mlp_snapshot(), path=tmp_path / "mlp.html", collapse=True)
    assert problems(page, path.as_uri()) == []
    before = page.locator("g.node").count()
    page.click("g.node.group >> nth=0")  # select the module's box, then open it
    page.click("g.node.group >> nth=0")
    assert page.locator("g.node").count() > before
    page.click("#groups button >> nth=1")  # and from the list of groups
    assert page.locator("g.node").count() > before + 1


@browser_only
def test_search_centres_the_named_tensor(page, tmp_path):
    path = viz.explore(mlp_snapshot(), path=tmp_path / "mlp.html", collapse=True)
    page.goto(path.as_uri())
    page.fill("#search", "2.weight")
    page.press("#search", "Enter")
    found = page.locator(f"g.node[data-id='{node_id(path, '2.weight')}']")
    assert "selected" in found.get_attribute("class")
    box, canvas = found.bounding_box(), page.locator("#canvas").bounding_box()
    assert abs(box["x"] + box["width"] / 2 - (canvas["x"] + canvas["width"] / 2)) < 2
    assert abs(box["y"] + box["height"] / 2 - (canvas["y"] + canvas["height"] / 2)) < 2


@browser_only
def test_the_slider_walks_the_backward_pass(page, tmp_path):
    path = viz.explore(notebook_snapshot(), path=tmp_path / "step.html")
    page.goto(path.as_uri())
    currents = []
    for step in (1, 2, 5):
        page.eval_on_selector("#steps", f"s => {{ s.value = {step}; "
                                        "s.dispatchEvent(new Event('input')); }")
        currents.append(page.get_attribute("g.node.current", "data-id"))
        assert page.locator("g.node.known").count() == step
    assert len(set(currents)) == 3 and "gradient: min" in page.inner_text("#details")


@browser_only
def test_hostile_names_show_as_text_and_run_nothing(page, tmp_path):
    tensors = [ad.tensor([1.0], requires_grad=True, name=name) for name in HOSTILE]
    path = viz.explore(sum(t * 2 for t in tensors), path=tmp_path / "hostile.html")
    assert problems(page, path.as_uri()) == []
    for name in HOSTILE:
        page.click(f"g.node[data-id='{node_id(path, name)}']")
        assert page.inner_text("#details h3") == name
    assert page.dialogs == [] and page.locator("img").count() == 0


@browser_only
def test_a_page_of_ten_thousand_nodes_opens(page, tmp_path):
    x = ad.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(5000):
        y = y * 1.0001
    path = viz.explore(y, path=tmp_path / "big.html", collapse=False)
    assert problems(page, path.as_uri()) == []
    shown = int(page.inner_text("#count").split()[0])
    assert shown == page.locator("g.node").count() >= 10_000


@browser_only
def test_without_its_script_the_page_does_none_of_this(page, tmp_path):
    path = viz.explore(notebook_snapshot(), path=tmp_path / "step.html")
    dead = tmp_path / "dead.html"
    dead.write_text(re.sub(r"<script>.*?</script>", "", path.read_text(), flags=re.S))
    page.goto(dead.as_uri())
    assert page.locator("g.node").count() == 0  # nothing drawn, so nothing to click
    page.fill("#search", "w1")
    page.press("#search", "Enter")
    assert "values: min" not in page.inner_text("#details")
