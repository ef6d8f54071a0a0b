"""Drawing the compute graph with graphviz (``pip install 'autodiff[viz]'``; the ``dot`` program
is needed only to render files)."""

from autodiff.viz.dot import INSTALL_DOT, render, to_dot
from autodiff.viz.explore import explore
from autodiff.viz.snapshot import Snapshot, snapshot
from autodiff.viz.steps import backward_steps
from autodiff.viz.tape import tape_to_dot

__all__ = ["INSTALL_DOT", "Snapshot", "backward_steps", "explore", "render", "snapshot",
           "tape_to_dot", "to_dot"]
