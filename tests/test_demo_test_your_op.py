"""The tutorial catches the notebook's softmax, shrunk to a small input, and names it."""

from demo_runs import run_demo


def test_the_correct_softmax_passes_and_the_notebooks_is_caught_and_named():
    output = run_demo("test_your_op")
    correct, notebook = output.split("=== NotebookSoftmax: ")
    assert "=== Softmax: the property holds (200 examples)" in correct
    assert "caught" in notebook and "Failing test case" in notebook
    assert "x=tensor([[0.]]" in notebook  # shrunk to 1×1
    assert "the first op whose own gradient is wrong: NotebookSoftmax" in notebook
