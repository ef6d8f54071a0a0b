"""`python -m demos.notebook --quick` writes every figure and an index.html that shows them all."""

import json
import re
import shutil

import pytest
from PIL import Image

FIGURES = ["digits", "batch", "activations", "first_update", "loss_by_batch", "loss_compare",
           "weights", "pixel_pca", "embeddings", "modes"]


@pytest.fixture(scope="module")
def quick_run(notebook_quick_run):
    out = notebook_quick_run
    return out, json.loads((out / "results.json").read_text())


@pytest.mark.parametrize("name", FIGURES)
def test_every_figure_is_a_valid_non_empty_png(quick_run, name):
    out, _ = quick_run
    path = out / f"{name}.png"
    assert path.stat().st_size > 10_000
    with Image.open(path) as image:
        image.verify()
        assert image.format == "PNG" and min(image.size) > 200


def test_index_html_links_and_embeds_every_figure(quick_run):
    out, _ = quick_run
    page = (out / "index.html").read_text()
    for name in FIGURES:
        assert f'href="{name}.png"' in page
    assert len(re.findall(r'src="data:image/png;base64,', page)) == len(FIGURES)
    assert "test accuracy" in page and "Where the time went" in page and 'id="graph"' in page
    assert 'id="conformance"' in page and "=== micrograd: conforms" in page
    assert "=== tiny: caught" in page and "the first op whose own gradient is wrong: tanh" in page
    if shutil.which("dot"):  # the four views of demos.graph inline, the steps page linked
        assert page.count("<svg") >= 5 and 'href="graph/steps.html"' in page


def test_results_report_every_training_path(quick_run):
    _, results = quick_run
    assert [r["name"] for r in results["runs"]] == ["engine", "engine, compiled",
                                                    "NumPy (correct)", "notebook's backprop"]
    engine, compiled, correct, _ = results["runs"]
    assert engine["final_loss"] == pytest.approx(correct["final_loss"], rel=1e-9)
    assert results["max_loss_gap_engine_vs_numpy"] == 0  # the same operations in the same order
    assert results["max_loss_gap_compiled_vs_numpy"] == 0  # the compiled replay too
    assert results["gradient_gap"]["angle_degrees_median"] > 10
    assert all(0 <= r["test_accuracy"] <= 1 for r in results["runs"])


def test_every_stage_says_what_it_does_before_it_runs(quick_run):
    out, _ = quick_run
    printed = (out / "stdout.txt").read_text()
    for stage in ["load digits ...", "train: engine ...", "train: engine, compiled ...",
                  "gradient gap ...", "embedding: MDS of the raw pixels", "embedding: t-SNE",
                  "forward against reverse mode ...", "report ..."]:
        assert stage in printed, stage
    assert printed.index("embedding: MDS") < printed.index("embedding: t-SNE")
