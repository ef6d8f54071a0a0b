"""`python -m demos.modes` times both Jacobian strategies as n and m vary, and the notebook
loss's gradient by one backward pass and by 3,700 forward ones (timings are the demo's to show,
not the test's to assert: it checks what the demo computes)."""

import re

from demo_runs import run_demo
from PIL import Image


def test_both_sweeps_and_the_notebook_comparison_are_reported(tmp_path):
    output = run_demo("modes", "--quick", "--out", str(tmp_path))
    with Image.open(tmp_path / "modes.png") as image:
        image.verify()
    tables = re.findall(r"\n\s+([nm])\s+([\d ]+)\nforward\s+([\d. ]+)\nreverse\s+([\d. ]+)",
                        output)
    assert [t[0] for t in tables] == ["n", "m"]
    for _, sizes, forward, reverse in tables:
        assert len(sizes.split()) == len(forward.split()) == len(reverse.split()) == 4
    weights, gap = re.search(r"\((\d+) weights\).*they agree to ([\d.e+-]+)", output).groups()
    assert int(weights) == 64 * 50 + 50 * 10 and float(gap) < 1e-10
