"""Drawing what `autodiff.compile` replays: its straight-line program as a graph."""

from __future__ import annotations

from typing import Any

from autodiff.compile import Compiled
from autodiff.viz.dot import STYLE, Digraph, _escape, _require_graphviz

# forward ops grey, backward rules orange, a whole step's effects (storing gradients, writing
# into tensors, clearing .grad, optimizer updates) green
COLOURS = {"forward": "#eeeeee", "backward": "#fdd49e", "effect": "#c7e9c0",
           "kernel": "#c6dbef"}


def tape_to_dot(step: Compiled, *args: Any, rankdir: str = "TB", **kwargs: Any) -> Digraph:
    """The program `step` replays for these arguments (traced if need be, taking no step): each
    slot a box with its shape, each line of the forward an op (grey), each line of the backward
    the VJP rule it calls (orange), each effect of a whole training step (green), each call of
    a fused kernel or region (blue, ``backend="numba"``), edges from the slots a line reads to
    the slot it writes."""
    _require_graphviz()
    program = step.program(*args, **kwargs)
    dot = Digraph("tape", graph_attr=dict(rankdir=rankdir, fontname="Helvetica"))
    slots: set[str] = set()
    for k, line in enumerate(program.lines):
        if line.function is None or line.kind == "check":  # a name bound again, a check
            continue
        read = [x for x in line.read if x in program.shapes]
        # an effect changes its target; a call of a backward binds one name per gradient
        written = [line.target] if line.target else [
            name.strip(",") for name in (line.out or "").split(", ") if name]
        dot.node(f"line{k}", _escape(line.function),
                 **dict(STYLE["op"], fillcolor=COLOURS[line.kind]))
        for slot in [*read, *written]:
            if slot not in slots:
                slots.add(slot)
                shape = program.shapes.get(slot)
                label = slot if shape is None else f"{slot}\\n{shape[0]} {shape[1]}"
                dot.node(slot, _escape(label).replace("\\\\n", "\\n"), **STYLE["tensor"])
        for slot in read:
            dot.edge(slot, f"line{k}")
        for slot in written:
            dot.edge(f"line{k}", slot)
    return dot
