"""`to_dot` and `render`: the compute graph as a graphviz Digraph, and as a file."""

from __future__ import annotations

import html
import os
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from autodiff.files import write_atomically
from autodiff.tensor import Tensor
from autodiff.viz.collapse import collapse_chains, module_clusters
from autodiff.viz.snapshot import OpInfo, Snapshot, TensorInfo, snapshot

try:
    import graphviz
except ImportError:  # pragma: no cover - exercised by a test that hides the package
    graphviz = None

INSTALL_DOT = ("install Graphviz's dot program: 'sudo apt-get install graphviz' on Debian or "
               "Ubuntu, 'brew install graphviz' on macOS, 'conda install graphviz' in conda")
# gradient-norm bands, from vanishing to exploding: (upper bound, colour, legend text)
GRAD_BANDS = [(1e-6, "#6a51a3", "‖g‖ < 1e-6 (vanishing)"), (1e-3, "#9ecae1", "1e-6 … 1e-3"),
              (1.0, "#c7e9c0", "1e-3 … 1"), (1e3, "#fdd49e", "1 … 1e3"),
              (np.inf, "#ef3b2c", "‖g‖ ≥ 1e3 (exploding)")]
MAX_LABEL = 200  # characters of a name drawn; dot fails on labels of over 16,384
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
LARGE = 2000  # nodes; above this, a leaf used by many ops is drawn once per use (see build)
STYLE = {
    "op": dict(shape="ellipse", style="filled", fillcolor="#eeeeee", fontname="Helvetica"),
    "tensor": dict(shape="box", style="rounded", fontname="Helvetica"),
    "input": dict(shape="box", style="rounded,dashed", fontname="Helvetica"),
    "param": dict(shape="box", style="rounded,filled", fillcolor="#cfe2ff",
                  fontname="Helvetica"),
    "output": dict(shape="box", style="rounded,filled,bold", fillcolor="#d4edda", peripheries="2",
                   fontname="Helvetica"),
}


def to_dot(*roots: Tensor | Snapshot, params: dict[str, Tensor] | None = None,
           show_values: bool = False, show_grads: bool = False, show_rules: bool = False,
           rankdir: str = "TB", collapse: bool = False,
           tangents: dict[Tensor, Any] | None = None) -> graphviz.Digraph:
    """The graph behind `roots` (Tensors, or a `snapshot`) as a graphviz Digraph.

    One node per op and per tensor, edges in the direction data flows. Inputs (dashed),
    parameters (blue, named by their key in `params`) and outputs (green, doubled) stand apart.
    `show_values` prints small tensors and summarises large ones; `show_grads` shows each
    gradient's summary and norm and colours tensors by it; `show_rules` writes each op's
    gradient rule; `collapse` folds each stretch of a chain that repeats a pattern of up to
    8 ops (``tanh``, or ``matmul → add → relu``) into a single node. When `params`
    come from ``Module.named_parameters()``, each module's ops sit in a cluster. `tangents`
    (the table of a forward-mode pass) writes each tensor's tangent beside its value.
    """
    _require_graphviz()
    snap = roots[0] if len(roots) == 1 and isinstance(roots[0], Snapshot) else \
        snapshot(*[r for r in roots if isinstance(r, Tensor)], params=params, tangents=tangents)
    return build(snap, show_values=show_values, show_grads=show_grads, show_rules=show_rules,
                 rankdir=rankdir, collapse=collapse)


NodeSpec = tuple[str, str, dict[str, str]]  # node id, label, style
Groups = dict[str | None, list[NodeSpec]]  # the nodes of each module's cluster (None: no cluster)


def build(snap: Snapshot, *, show_values: bool = False, show_grads: bool = False,
          show_rules: bool = False, rankdir: str = "TB", collapse: bool = False,
          highlight: int | None = None, title: str | None = None) -> graphviz.Digraph:
    """`to_dot` on a snapshot; `highlight` outlines one op in red, `title` labels the graph."""
    _require_graphviz()
    ops, hidden = collapse_chains(snap) if collapse else (snap.ops, set())
    dot = Digraph("autodiff", graph_attr=dict(rankdir=rankdir, fontname="Helvetica"))
    if title:
        dot.attr(label=graphviz.nohtml(_escape(title)), labelloc="t", fontsize="16")
    clusters = module_clusters(snap, ops)
    uses: dict[int, int] = {}
    for op in ops:
        for i in op.inputs:
            uses[i] = uses.get(i, 0) + 1
    # In a large graph, edges from one leaf to ops far apart make dot's layout quadratic (each
    # long edge becomes a chain of virtual nodes); drawing such a leaf beside each use avoids it.
    split = {i for i, n in uses.items() if n > 4 and snap.tensors[i].is_leaf} \
        if len(snap.tensors) + len(ops) > LARGE else set()
    groups: Groups = {}
    _add_tensor_nodes(groups, snap, hidden, split, uses, clusters, show_values, show_grads)
    for op in ops:
        style = STYLE["op"] if op.index != highlight else dict(
            STYLE["op"], color="#d62728", penwidth="3", fillcolor="#fde0dd")
        groups.setdefault(clusters.get(("op", op.index)), []).append(
            (f"op{op.index}", _op_label(op, show_rules), style))
    _draw_groups(dot, groups)
    _draw_edges(dot, ops, split)
    if show_grads:
        _legend(dot)
    return dot


def _add_tensor_nodes(groups: Groups, snap: Snapshot, hidden: set[int], split: set[int],
                      uses: dict[int, int], clusters: dict[tuple[str, int], str],
                      show_values: bool, show_grads: bool) -> None:
    """One node per tensor drawn (one per use for a split leaf), in its module's group."""
    for info in snap.tensors:
        if info.index in hidden:
            continue
        label = _tensor_label(info, show_values, show_grads)
        style = _tensor_style(info, show_grads)
        copies = [f"t{info.index}"] if info.index not in split else \
            [f"t{info.index}_{k}" for k in range(uses[info.index])]
        for node_id in copies:
            groups.setdefault(clusters.get(("t", info.index)), []).append(
                (node_id, label if len(copies) == 1 else
                 f"{label}\\n(one of {len(copies)} uses)", style))


def _draw_groups(dot: graphviz.Digraph, groups: Groups) -> None:
    """The nodes, each module's in a cluster labelled with its path (clusters in name order)."""
    for number, (module, nodes) in enumerate(sorted(groups.items(), key=lambda kv: kv[0] or "")):
        if module is None:
            _add_nodes(dot, nodes)
            continue
        with dot.subgraph(name=f"cluster_{number}") as cluster:
            cluster.attr(label=graphviz.nohtml(_escape(module)), style="rounded", color="#7f7f7f",
                         fontname="Helvetica")
            _add_nodes(cluster, nodes)


def _draw_edges(dot: graphviz.Digraph, ops: list[OpInfo], split: set[int]) -> None:
    """Inputs to each op and the op to its output; a split leaf's copies are used in turn."""
    drawn_uses: dict[int, int] = {}
    for op in ops:
        for i in op.inputs:
            if i in split:
                dot.edge(f"t{i}_{drawn_uses.setdefault(i, 0)}", f"op{op.index}")
                drawn_uses[i] += 1
            else:
                dot.edge(f"t{i}", f"op{op.index}")
        dot.edge(f"op{op.index}", f"t{op.output}")


def render(*roots: Tensor | Snapshot, path: str | os.PathLike[str], format: str | None = None,
           **kwargs: Any) -> Path:
    """Draw the graph (as `to_dot`, same keywords) into `path`, written atomically. The format
    is the path's extension (``g.png`` is PNG; svg without one); a `format` that contradicts
    the extension is refused."""
    suffix = Path(path).suffix.lstrip(".").lower()
    if format is None:
        format = suffix or "svg"
    elif suffix and suffix != format.lower():
        raise ValueError(f"render: the path {os.fspath(path)!r} ends in .{suffix} but "
                         f"format={format!r}; drop format= to write {suffix}, or name the file "
                         f"….{format}")
    dot = to_dot(*roots, **kwargs)
    if shutil.which("dot") is None:
        raise RuntimeError(f"render: Graphviz's dot program was not found on PATH; "
                           f"{INSTALL_DOT} (to_dot works without it)")
    data = dot.pipe(format=format)
    return write_atomically(path, lambda f: f.write(data))


Digraph: Any = None  # without the graphviz package: every function here says how to get it
if graphviz is not None:
    class Digraph(graphviz.Digraph):  # type: ignore[misc, no-redef]
        """graphviz's Digraph, except that shown in Jupyter without the dot program it shows
        the install command and its DOT source, not graphviz's bare ExecutableNotFound."""

        def _repr_mimebundle_(self, include: Any = None, exclude: Any = None,
                              **kwargs: Any) -> dict[str, str]:
            try:
                bundle: dict[str, str] = super()._repr_mimebundle_(include, exclude, **kwargs)
            except graphviz.ExecutableNotFound:
                message = (f"Graphviz's dot program was not found, so the graph is shown as "
                           f"its DOT source: {INSTALL_DOT}")
                return {"text/plain": f"{message}\n\n{self.source}",
                        "text/html": f"<p>{html.escape(message)}</p>"
                                     f"<pre>{html.escape(self.source)}</pre>"}
            return bundle


def _require_graphviz() -> None:
    if graphviz is None:
        raise ImportError("autodiff.viz needs the graphviz Python package: "
                          "pip install 'autodiff[viz]' (or pip install graphviz)")


def _add_nodes(graph: graphviz.Digraph, nodes: list[NodeSpec]) -> None:
    for node_id, label, style in nodes:
        graph.node(node_id, graphviz.nohtml(label), **style)


def _escape(text: str) -> str:
    """Make any text safe inside a DOT label and shown as written: backslashes and ``&`` kept
    (dot would read ``&amp;`` as ``&``), other control characters shown as ``\\xNN``, newlines
    as line breaks; a text longer than MAX_LABEL characters is cut with an ellipsis."""
    if len(text) > MAX_LABEL:
        text = text[:MAX_LABEL - 1] + "…"
    text = text.replace("\\", "\\\\").replace("&", "&amp;").replace("\r", "")
    text = CONTROL.sub(lambda m: f"\\\\x{ord(m.group()):02x}", text)
    return text.replace("\n", "\\n")


def _summary(a: np.ndarray) -> str:
    if a.size == 0:
        return "empty"
    if a.size <= 6:
        return np.array2string(np.asarray(a), precision=3, separator=", ", threshold=6)
    return f"min {a.min():.3g}  mean {a.mean():.3g}  max {a.max():.3g}"


def _tensor_label(info: TensorInfo, show_values: bool, show_grads: bool) -> str:
    t = info.tensor
    lines = [_escape(info.label)] if info.label else []
    lines.append(f"{t.shape} {t.dtype}")
    if (show_values or t.size == 1) and t.dtype.kind in "fiub":  # a constant's value, always
        lines.append(_escape(_summary(t.data)).replace("\\n", " "))
    if show_grads and t.requires_grad:
        g = info.grad
        lines.append("grad: not computed" if g is None else f"grad {_summary(g)}" if g.size == 1
                     else f"grad ‖g‖ {np.linalg.norm(g):.3g}: " + _summary(g).replace("\n", " "))
    if info.tangent is not None:
        lines.append("tangent: " + _escape(_summary(info.tangent)).replace("\\n", " "))
    return "\\n".join(lines)


def _tensor_style(info: TensorInfo, show_grads: bool) -> dict[str, str]:
    style = dict(STYLE[info.kind])
    g = info.grad if show_grads else None
    if g is not None:
        norm = float(np.linalg.norm(g))
        style.update(style=style["style"] + ",filled" if "filled" not in style["style"]
                     else style["style"],
                     fillcolor=next(color for bound, color, _ in GRAD_BANDS if norm < bound))
    return style


def _op_label(op: OpInfo, show_rules: bool) -> str:
    lines = [_escape(op.label or op.name)]
    if show_rules:
        lines += [_escape(formula) for formula in op.formulas]
    return "\\n".join(lines)


def _legend(dot: graphviz.Digraph) -> None:
    with dot.subgraph(name="cluster_legend") as legend:
        legend.attr(label="gradient norm", style="rounded", color="#7f7f7f", fontname="Helvetica")
        for i, (_, color, text) in enumerate(GRAD_BANDS):
            legend.node(f"legend{i}", text, shape="box", style="filled", fillcolor=color,
                        fontname="Helvetica", fontsize="10")
