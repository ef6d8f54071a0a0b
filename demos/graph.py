"""The notebook network's compute graph: ``python -m demos.graph [--out DIR]``.

Writes, into --out (default out/graph/): the forward graph, the graph after backward with every
gradient, the gradient rules, the network built from `models.MLP` with its layers as clusters
(each as SVG and PNG), steps.html, a page with a slider through the backward pass, and the
interactive explorer (`viz.explore`) of the notebook's step (explore.html) and of a deeper MLP
(explore_mlp.html).
"""

from __future__ import annotations

import argparse
import html
import re
import shutil
from pathlib import Path

import numpy as np

import autodiff as ad
from autodiff import viz
from autodiff.forward import forward_mode
from models import MLP, squared_error

VIEWS = {
    "forward": "The forward graph: data (dashed), weights (blue), the loss (green).",
    "backward": "After backward: each tensor's gradient, coloured by its norm.",
    "rules": "Each op with its gradient rule, from the op table.",
    "modules": "The same network built with models.MLP (with biases): each layer in a cluster.",
    "forward_mode": "A forward-mode pass: each tensor's tangent beside its value, for a random "
                    "direction of w1 (forward mode carries it from the inputs to the loss, "
                    "where the backward view carries gradients the other way).",
}


def notebook_graph(seed: int = 0, params: dict | None = None, rows: int = 4):
    """The notebook's loss on a few digits-like rows, and its weights by name (new ones, or
    `params` again)."""
    rng = np.random.default_rng(seed)
    x = ad.tensor(rng.integers(0, 17, (rows, 64)).astype(float), name="x (pixels)")
    y = ad.tensor(np.eye(10)[rng.integers(0, 10, rows)], name="y (one-hot)")
    w1 = ad.tensor(rng.standard_normal((64, 50)) * 0.1, requires_grad=True)
    w2 = ad.tensor(rng.standard_normal((50, 10)) * 0.1, requires_grad=True)
    if params is not None:
        w1, w2 = params["w1"], params["w2"]
    loss = squared_error((x @ w1).relu() @ w2, y)
    loss.name = "loss"
    return loss, {"w1": w1, "w2": w2}


def render_all(out: Path, seed: int = 0) -> dict[str, Path]:
    """Render every view into `out`; returns {view: svg path} plus "steps": the HTML page."""
    out.mkdir(parents=True, exist_ok=True)
    loss, params = notebook_graph(seed)
    paths = {"forward": _both(out / "forward", loss, params=params)}
    with viz.snapshot(loss, params=params) as snap:
        loss.backward()
    paths["backward"] = _both(out / "backward", snap, show_grads=True)
    paths["rules"] = _both(out / "rules", snap, show_rules=True)
    model = MLP([64, 50, 10], rng=np.random.default_rng(seed))
    x = ad.tensor(np.random.default_rng(seed).random((4, 64)), name="x")
    paths["modules"] = _both(out / "modules", model(x).softmax(dim=1),
                             params=dict(model.named_parameters()))
    paths["forward_mode"] = _forward_mode_view(out / "forward_mode", seed)
    fresh_loss, fresh_params = notebook_graph(seed)  # the graph above was freed by backward
    steps = [svg_markup(step.pipe(format="svg").decode())
             for step in viz.backward_steps(fresh_loss, params=fresh_params)]
    paths["steps"] = out / "steps.html"
    paths["steps"].write_text(steps_page(steps), encoding="utf-8")
    paths.update(explorers(out, seed))
    return paths


def explorers(out: Path, seed: int = 0) -> dict[str, Path]:
    """The explorer of the notebook's step (after backward: every gradient), and of a deeper
    MLP whose layers are modules."""
    loss, params = notebook_graph(seed)
    with viz.snapshot(loss, params=params) as snap:
        loss.backward()
    notebook = viz.explore(snap, path=out / "explore.html", title="the notebook's step")
    model = MLP([64, 128, 128, 128, 64, 10], rng=np.random.default_rng(seed))
    deep_loss = model(ad.tensor(np.random.default_rng(seed).random((32, 64)))).softmax(dim=1)
    deep_loss = deep_loss.pow(2).sum()
    with viz.snapshot(deep_loss, params=dict(model.named_parameters())) as deep:
        deep_loss.backward()
    mlp = viz.explore(deep, path=out / "explore_mlp.html", title="a deeper MLP", collapse=True)
    return {"explore": notebook, "explore_mlp": mlp}


def _forward_mode_view(stem: Path, seed: int) -> Path:
    """The notebook's graph run again inside forward mode, w1 given a random tangent."""
    _, params = notebook_graph(seed)
    direction = np.random.default_rng(seed + 1).standard_normal(params["w1"].shape)
    with forward_mode({params["w1"]: direction}) as tangents:
        loss, params = notebook_graph(seed, params)
    return _both(stem, loss, params=params, show_values=True, tangents=tangents)


def _both(stem: Path, *roots, **kwargs) -> Path:
    viz.render(*roots, path=stem.with_suffix(".png"), format="png", **kwargs)
    return viz.render(*roots, path=stem.with_suffix(".svg"), format="svg", **kwargs)


def svg_markup(svg: str) -> str:
    """An SVG document as markup to inline in HTML (without its XML prolog and doctype)."""
    return re.sub(r"^.*?(?=<svg)", "", svg, flags=re.S)


def section_html(paths: dict[str, Path], folder: str) -> str:
    """The compute-graph section of the notebook report: the views inline, the steps linked."""
    parts = [f"<figure><div class=\"graph\">{svg_markup(paths[view].read_text())}</div>"
             f"<figcaption>{html.escape(caption)} "
             f"(<a href=\"{folder}/{paths[view].name}\">SVG</a>)</figcaption></figure>"
             for view, caption in VIEWS.items()]
    parts.append(f"<p>Step through the backward pass, one rule at a time: "
                 f"<a href=\"{folder}/steps.html\">{folder}/steps.html</a>. Explore the graph "
                 f"(click a node for its values, gradient and rule; search; expand modules): "
                 f"<a href=\"{folder}/explore.html\">the notebook's step</a>, "
                 f"<a href=\"{folder}/explore_mlp.html\">a deeper MLP</a>.</p>")
    return "\n".join(parts)


def steps_page(steps: list[str]) -> str:
    frames = "\n".join(f'<div class="step" {"" if i == 0 else "hidden"}>{svg}</div>'
                       for i, svg in enumerate(steps))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>The backward pass, step by step</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 1em; }}
input {{ width: 60%; }} svg {{ max-width: 100%; height: auto; }}</style></head>
<body><h1>The backward pass, step by step</h1>
<p>Each step applies one op's gradient rule (outlined in red); tensors whose gradient is known
are coloured by its norm. Use the slider or the arrow keys.</p>
<p><input type="range" id="slider" min="1" max="{len(steps)}" value="1" autofocus>
step <span id="number">1</span> of {len(steps)}</p>
{frames}
<script>
const slider = document.getElementById("slider"), steps = document.querySelectorAll(".step");
slider.addEventListener("input", () => {{
  steps.forEach((s, i) => s.hidden = i !== slider.value - 1);
  document.getElementById("number").textContent = slider.value;
}});
</script></body></html>
"""


def main(argv: list[str] | None = None) -> dict[str, Path]:
    parser = argparse.ArgumentParser(prog="python -m demos.graph", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/graph"),
                        help="folder for the SVG and PNG views and steps.html "
                             "(default: out/graph)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the weights and the rows drawn (default: 0)")
    args = parser.parse_args(argv)
    if shutil.which("dot") is None:
        raise SystemExit(f"demos.graph: Graphviz's dot program is missing; {viz.INSTALL_DOT}")
    paths = render_all(args.out, args.seed)
    for view, path in paths.items():
        print(f"{view:>9}: {path}")
    return paths


if __name__ == "__main__":
    main()
