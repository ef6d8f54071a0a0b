"""`python -m demos.graph` writes every view, a step-through page and the explorers."""

import os
import shutil

import pytest
from demo_runs import run_demo
from PIL import Image

pytestmark = pytest.mark.skipif(shutil.which("dot") is None and not os.environ.get("CI"),
                                reason="Graphviz's dot is not installed (make test installs it)")
VIEWS = ["forward", "backward", "rules", "modules", "forward_mode"]


def test_every_view_is_written(tmp_path):
    output = run_demo("graph", "--out", str(tmp_path))
    for view in VIEWS:
        assert f"{view:>9}: {tmp_path / view}.svg" in output
        assert (tmp_path / f"{view}.svg").read_text().lstrip().startswith(("<?xml", "<svg"))
        with Image.open(tmp_path / f"{view}.png") as image:
            image.verify()
    page = (tmp_path / "steps.html").read_text()
    steps = page.count('class="step"')
    assert steps >= 8 and page.count("<svg") == steps
    assert f'max="{steps}"' in page
    assert ">w1</text>" in page and ">w2</text>" in page  # the weights are named in every step
    for explorer in ("explore", "explore_mlp"):  # the interactive pages (tests/test_explore.py)
        assert f"{explorer:>9}: {tmp_path / explorer}.html" in output
        assert 'id="graph-data"' in (tmp_path / f"{explorer}.html").read_text()


def test_the_forward_mode_view_shows_tangents_beside_values(tmp_path):
    run_demo("graph", "--out", str(tmp_path))
    svg = (tmp_path / "forward_mode.svg").read_text()
    assert svg.count("tangent: ") >= 7  # w1, every tensor computed from it, and the loss
