"""`explore`: the compute graph as one self-contained, interactive HTML page.

The page holds the graph as JSON (every tensor's shape, dtype, a summary of its values and
gradient, every op's rule and where it was made), the explorer's script (`explore.js`) and its
style: nothing is loaded from anywhere, so it opens offline. The script lays the graph out in
layers and draws it as SVG: pan by dragging, zoom with the wheel, click a node for its details,
search a name, expand and collapse modules and chains, and walk the backward pass with a slider.
Names and values are data: the script sets them as text, never as markup.
"""

from __future__ import annotations

import html
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from autodiff.files import write_atomically
from autodiff.tensor import Tensor
from autodiff.viz.collapse import chains, module_clusters
from autodiff.viz.snapshot import Snapshot, TensorInfo, snapshot

COLLAPSE_ABOVE = 400  # nodes: a larger graph opens with its modules and chains collapsed
CHAIN_AT_LEAST = 6  # ops: a shorter chain is not offered as a group
SCRIPT = Path(__file__).with_name("explore.js")


def explore(*roots: Tensor | Snapshot, path: str | os.PathLike[str] = "graph.html",
            params: dict[str, Tensor] | None = None, title: str = "compute graph",
            collapse: bool | None = None) -> Path:
    """Write the graph behind `roots` (Tensors, or a `snapshot` taken around ``backward()`` to
    show every gradient) as one interactive page; returns its path. `params` names the
    parameters (``dict(model.named_parameters())``): their modules become groups. `collapse`:
    open with every group collapsed (True), expanded (False), or collapsed when the graph has
    more than `COLLAPSE_ABOVE` nodes (None)."""
    snap = roots[0] if len(roots) == 1 and isinstance(roots[0], Snapshot) else \
        snapshot(*[r for r in roots if isinstance(r, Tensor)], params=params)
    data = graph_data(snap, title)
    if collapse is None:
        collapse = len(data["nodes"]) > COLLAPSE_ABOVE
    data["collapsed"] = [g["id"] for g in data["groups"]] if collapse else []
    page = PAGE.format(title=html.escape(title), style=STYLE, data=_json_in_html(data),
                       script=SCRIPT.read_text(encoding="utf-8"))
    return write_atomically(path, lambda f: f.write(page.encode("utf-8")))


def graph_data(snap: Snapshot, title: str) -> dict[str, Any]:
    """The graph as the page's JSON: nodes, edges, groups (modules and long chains) and the
    order in which backward completed each tensor's gradient."""
    clusters = module_clusters(snap, snap.ops)
    group_of: dict[str, str] = {f"{kind}{i}": f"module {m}" for (kind, i), m in clusters.items()}
    groups: dict[str, dict[str, Any]] = {
        m: {"id": m, "label": m.removeprefix("module "), "kind": "module", "size": 0}
        for m in sorted(set(group_of.values()))}
    for k, chain in enumerate(c for c in chains(snap) if len(c) >= CHAIN_AT_LEAST):
        members = [f"op{op.index}" for op in chain] + [f"t{op.output}" for op in chain[:-1]]
        if any(m in group_of for m in members):
            continue  # inside a module already
        name = f"chain {k}"
        groups[name] = {"id": name, "label": f"{chain[0].name} … {chain[-1].name}",
                        "kind": "chain", "size": 0}
        group_of.update({m: name for m in members})
    nodes = [_tensor_node(info, group_of.get(f"t{info.index}")) for info in snap.tensors]
    nodes += [{"id": f"op{op.index}", "kind": "op", "name": op.label or op.name,
               "formulas": op.formulas, "origin": op.origin, "output": f"t{op.output}",
               "group": group_of.get(f"op{op.index}")} for op in snap.ops]
    for node in nodes:
        if node["group"]:
            groups[node["group"]]["size"] += 1
    edges = [[f"t{i}", f"op{op.index}"] for op in snap.ops for i in op.inputs]
    edges += [[f"op{op.index}", f"t{op.output}"] for op in snap.ops]
    return {"title": title, "nodes": nodes, "edges": edges, "groups": list(groups.values()),
            "backward": [f"t{i}" for i in snap.backward_order]}


def _tensor_node(info: TensorInfo, group: str | None) -> dict[str, Any]:
    t = info.tensor
    return {"id": f"t{info.index}", "kind": "tensor", "name": info.label or "",
            "shape": list(t.shape), "dtype": str(t.dtype), "role": info.kind, "group": group,
            "value": _summary(t.data), "grad": None if info.grad is None else _summary(info.grad)}


def _summary(a: np.ndarray) -> dict[str, Any] | None:
    """min, max, mean, norm, an 8-bin histogram and the first values, as text and counts."""
    if a.size == 0 or a.dtype.kind not in "biuf":
        return None
    values = np.asarray(a, dtype=np.float64).ravel()
    finite = values[np.isfinite(values)]
    hist = np.histogram(finite, bins=8)[0].tolist() if finite.size else [0] * 8
    return {"min": _number(values.min()), "max": _number(values.max()),
            "mean": _number(values.mean()), "norm": _number(np.linalg.norm(values)),
            "hist": hist, "preview": [_number(v) for v in values[:6]]}


def _number(value: float | np.floating[Any]) -> str:
    return f"{value:.4g}"  # NaN and inf as text: JSON has no such numbers


def _json_in_html(data: dict[str, Any]) -> str:
    """JSON to put inside a <script> element: ``<``, ``>`` and ``&`` as JSON escapes, so no name
    (``</script>``, ``<!--``) can end the element or start markup: it stays data."""
    text = json.dumps(data, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


STYLE = """
body { margin: 0; font: 14px system-ui, sans-serif; display: grid;
       grid-template-columns: 1fr min(340px, 40%); grid-template-rows: auto 1fr; height: 100vh; }
header { grid-column: 1 / 3; padding: 6px 10px; background: #37474f; color: white;
         display: flex; gap: 14px; align-items: center; flex-wrap: wrap; }
header input[type=search] { width: 16em; }
#canvas { width: 100%; height: 100%; background: #fafafa; cursor: grab; }
aside { overflow: auto; padding: 8px 12px; border-left: 1px solid #ccc; }
aside h3 { margin: 4px 0; word-break: break-all; }
#details div { margin: 2px 0; word-break: break-all; }
.edge { stroke: #999; stroke-width: 1; }
.node rect { fill: white; stroke: #555; }
.node text { text-anchor: middle; font: 12px monospace; pointer-events: none; }
.node.op rect { fill: #eeeeee; }
.node.param rect { fill: #cfe2ff; }
.node.input rect { stroke-dasharray: 4 3; }
.node.output rect { fill: #d4edda; stroke-width: 2; }
.node.group rect { fill: #fff3cd; stroke: #7f7f7f; stroke-width: 2; }
.node.known rect { fill: #fdd49e; }
.node.current rect { stroke: #d62728; stroke-width: 3; }
.node.selected rect { stroke: #1565c0; stroke-width: 3; }
"""

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>{style}</style></head>
<body>
<header><strong>{title}</strong>
<label>search <input type="search" id="search" placeholder="a tensor's name, or an op"></label>
<span id="found"></span>
<label>backward steps <input type="range" id="steps" min="0" max="0" value="0"></label>
<span id="step"></span> <span id="count"></span></header>
<svg id="canvas" role="img" aria-label="the compute graph"><g id="viewport"></g></svg>
<aside><div id="details">Click a node for its shape, values, gradient and rule; drag to pan,
the wheel zooms.</div><h4>Groups</h4><ul id="groups"></ul></aside>
<script type="application/json" id="graph-data">{data}</script>
<script>{script}</script>
</body></html>
"""
