"""`python -m demos.graph` writes every view and a step-through page."""

import os
import shutil

import pytest
from PIL import Image

from demos import graph

pytestmark = pytest.mark.skipif(shutil.which("dot") is None and not os.environ.get("CI"),
                                reason="Graphviz's dot is not installed (make test installs it)")


def test_every_view_is_written(tmp_path):
    paths = graph.main(["--out", str(tmp_path)])
    for view in graph.VIEWS:
        assert paths[view].read_text().lstrip().startswith(("<?xml", "<svg"))
        with Image.open(paths[view].with_suffix(".png")) as image:
            image.verify()
    page = paths["steps"].read_text()
    steps = page.count('class="step"')
    assert steps >= 8 and page.count("<svg") == steps
    assert f'max="{steps}"' in page
    assert ">w1</text>" in page and ">w2</text>" in page  # the weights are named in every step


def test_section_html_inlines_the_views(tmp_path):
    paths = graph.render_all(tmp_path)
    section = graph.section_html(paths, "graph")
    assert section.count("<svg") == len(graph.VIEWS)
    assert 'href="graph/steps.html"' in section
