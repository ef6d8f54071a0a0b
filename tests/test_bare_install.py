"""With only the required dependency (numpy), every subpackage imports, and what needs an
extra says which one: tried in a fresh interpreter in which the optional packages cannot be
imported."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROBE = """
import sys
for name in ("graphviz", "hypothesis", "sklearn", "matplotlib", "tqdm", "playwright"):
    sys.modules[name] = None  # as if not installed
import autodiff, autodiff.nn, autodiff.optim, autodiff.autograd, autodiff.cuda
from autodiff import viz
x = autodiff.tensor([1.0, 2.0], requires_grad=True)
loss = (x * x).sum()
print(viz.explore(loss, path=sys.argv[1]).name)  # the explorer needs no graphviz
for call, extra in ((lambda: viz.to_dot(loss), "autodiff[viz]"),
                    (lambda: viz.backward_steps(loss), "autodiff[viz]"),
                    (lambda: __import__("autodiff.testing"), "autodiff[testing]"),
                    (lambda: __import__("models").load_digits(), "autodiff[models]")):
    try:
        call()
    except ImportError as error:
        print("ImportError:", error)
"""


def test_every_subpackage_imports_without_the_extras_and_says_which_extra_is_missing(tmp_path):
    result = subprocess.run([sys.executable, "-c", PROBE, str(tmp_path / "graph.html")],
                            cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "graph.html"
    assert lines[1:3] == ["ImportError: autodiff.viz needs the graphviz Python package: "
                          "pip install 'autodiff[viz]' (or pip install graphviz)"] * 2
    assert lines[3] == ("ImportError: autodiff.testing needs hypothesis: "
                        "pip install 'autodiff[testing]'")
    assert lines[4] == ("ImportError: load_digits needs scikit-learn: "
                        "pip install 'autodiff[models]' (or pip install scikit-learn)")
