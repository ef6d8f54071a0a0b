"""The tutorial catches the notebook's softmax, shrunk to a small input, and names it."""

from demos import test_your_op


def test_the_correct_softmax_passes_and_the_notebooks_is_caught_and_named():
    reports = test_your_op.main()
    assert reports["Softmax"] is None
    report = reports["NotebookSoftmax"]
    assert "Failing test case" in report and "x=tensor([[0.]]" in report  # shrunk to 1×1
    assert "the first op whose own gradient is wrong: NotebookSoftmax" in report
