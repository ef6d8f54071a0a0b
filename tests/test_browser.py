"""The pages people open, opened in headless Chromium: the notebook report, the backward-steps
page, the exported walkthrough, and the documentation site's home and a topic page. Each must
load every image, log no console error, send no request off this machine, and have no local
link that leads nowhere; on the steps page, moving the slider must change the step shown and
the node outlined. Two pages broken on purpose show that these checks can fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from browser import CHROMIUM, INSTALL, problems, served, visible_step
from demo_runs import ROOT, run_demo

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason=INSTALL)
needs_dot = pytest.mark.skipif(shutil.which("dot") is None,
                               reason="Graphviz's dot is missing: sudo apt-get install graphviz")


@pytest.fixture(scope="module")
def report(notebook_quick_run) -> Path:
    return notebook_quick_run / "index.html"


@pytest.fixture(scope="module")
def steps_page(tmp_path_factory) -> Path:
    if shutil.which("dot") is None:
        pytest.skip("Graphviz's dot is missing: sudo apt-get install graphviz")
    out = tmp_path_factory.mktemp("graph")
    run_demo("graph", "--out", str(out))
    return out / "steps.html"


@pytest.fixture(scope="module")
def walkthrough(tmp_path_factory) -> Path:
    """The walkthrough notebook executed and exported as `make notebook` does."""
    out = tmp_path_factory.mktemp("walkthrough")
    subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", "--execute",
                    "demos/walkthrough.ipynb", "--TemplateExporter.extra_template_basedirs="
                    "demos/templates", "--template", "offline", "--output-dir", str(out),
                    "--output", "walkthrough"], cwd=ROOT, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)})
    return out / "walkthrough.html"


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The documentation site, built as `make docs` builds it (strict)."""
    out = tmp_path_factory.mktemp("site")
    result = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
                             str(out)], cwd=ROOT, capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT),
                                 "NO_MKDOCS_2_WARNING": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_the_notebook_report_shows_every_figure_and_its_links_resolve(page, report):
    assert problems(page, report.as_uri()) == []
    assert page.locator("figure img").count() >= 10


@needs_dot
def test_the_steps_page_loads_and_its_slider_moves_the_outlined_node(page, steps_page):
    assert problems(page, steps_page.as_uri()) == []
    first = visible_step(page)
    page.focus("#slider")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowRight")
    second = visible_step(page)
    assert second[0] == first[0] + 2 and page.inner_text("#number") == str(second[0] + 1)
    assert second[1] and second[1] != first[1]  # another op's rule, outlined


def test_the_exported_walkthrough_loads_offline_with_its_steps_inline(page, walkthrough):
    assert problems(page, walkthrough.as_uri()) == []
    text = page.inner_text("body")
    assert "largest gradient difference" in text and "Traceback" not in text
    if shutil.which("dot"):  # the steps page is inline, in an iframe of its own, and moves
        frame = page.frame_locator("iframe[title='backward steps']")
        frame.locator("#slider").focus()
        frame.locator("#slider").press("ArrowRight")
        assert frame.locator("#number").inner_text() == "2"


@pytest.mark.parametrize("path", ["", "operations/", "graphs/", "walkthrough/"])
def test_the_documentation_site_pages_load_with_their_images_and_links(page, site, path):
    with served(site) as url:
        assert problems(page, url + path) == []
        if path == "operations/":  # the generated op table is there
            assert page.locator("table code", has_text="softmax").count() >= 1
        if path == "graphs/":  # the gallery, rendered at build
            assert page.locator("img[src*='gallery/']").count() >= 5


def test_a_missing_image_and_a_dead_link_are_caught(page, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text('<!DOCTYPE html><html><body><img src="missing.png" alt="gone">'
                      '<a href="nowhere.html">a dead link</a><a href="#nothing">an anchor</a>'
                      '<script>undefinedFunction()</script></body></html>')
    found = problems(page, broken.as_uri())
    assert any(p.startswith("image did not load: missing.png") for p in found)
    assert any("nowhere.html" in p for p in found) and any("#nothing" in p for p in found)
    assert any("undefinedFunction" in p for p in found)


@needs_dot
def test_a_slider_that_does_nothing_is_caught(page, steps_page, tmp_path):
    stuck = tmp_path / "stuck.html"
    stuck.write_text(steps_page.read_text().replace("slider.addEventListener",
                                                    "slider.removeEventListener"))
    assert problems(page, stuck.as_uri()) == []
    first = visible_step(page)
    page.focus("#slider")
    page.keyboard.press("ArrowRight")
    assert visible_step(page) == first  # what the slider test above would catch
