"""The walkthrough notebook runs top to bottom in a fresh kernel, and is kept without outputs."""

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK = ROOT / "demos" / "walkthrough.ipynb"


def test_the_notebook_is_stored_without_outputs():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, cell.source[:60]


@pytest.fixture(scope="module")
def executed():
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    NotebookClient(notebook, timeout=300, kernel_name="python3",
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    return notebook


def text_of(notebook) -> str:
    """Every output's text; a stream's pieces are joined as printed (the kernel may split one
    print across two outputs), the results of cells one a line."""
    parts = []
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            parts.append(output.get("text", ""))
            if "data" in output:
                parts.append(str(output["data"].get("text/plain", "")) + "\n")
    return "".join(parts)


def test_the_notebook_runs_and_tells_its_story(executed):
    text = text_of(executed)
    assert "largest gradient difference" in text  # the engine matches the hand-derived backprop
    assert "the notebook's gradient is" in text and "°" in text
    assert "=== Softmax: the property holds" in text
    assert "=== NotebookSoftmax: caught" in text and "x=tensor([[0.]]" in text  # shrunk to 1×1
    assert "steps" in text
    assert "def guard(args, kwargs):" in text and "def backward0(g" in text  # the traced step
    assert "replayed: <CompiledBackward>" in text
    assert "compiled and eager gradients are the same bits: True" in text
    assert "µs per step: eager" in text
    assert "step_backward0(ones((), float64)" in text and "out=c0)" in text  # the whole step
    assert "three compiled steps and three eager ones leave the same bits: True" in text
    assert "through its .data array after backward" in text  # w.data -= ... refused
    assert "t0 = gt(a0, c0)" in text
    assert "a new input's mask, replayed as eager computes it: True" in text
    assert "t0 = matmul(a0, c0, out=t0_buffer)" in text and "into=g_t1_buffer" in text
    assert "the first loss's gradient, after a second call: True" in text
    images = [o for c in executed.cells for o in c.get("outputs", [])
              if "image/png" in o.get("data", {})]
    assert images, "the loss curve is drawn"
