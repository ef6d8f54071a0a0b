"""The core of autodiff imports in one direction: no module imports one that imports it back."""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "autodiff"
# each may import only those before it
LAYERS = ["cuda", "devices", "primitive", "ops", "errors", "graph", "effects", "anomaly",
          "recording",
          "forward", "backward", "tensor", "creation", "function", "gradcheck", "functional",
          "transforms", "guards", "program", "loops", "blas", "flush", "fusion", "compile", "files"]


def imports_of(module: str) -> set[str]:
    """The autodiff core modules `module` imports, anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse((PACKAGE / f"{module}.py").read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("autodiff"):
            parts = node.module.split(".")
            found |= {a.name for a in node.names} if len(parts) == 1 else {parts[1]}
    return found & set(LAYERS)


def test_every_core_module_is_in_a_layer():
    core = {p.stem for p in PACKAGE.glob("*.py")} - {"__init__"}
    assert core == set(LAYERS)


def test_each_module_imports_only_modules_of_the_layers_before_it():
    for i, module in enumerate(LAYERS):
        later = imports_of(module) - set(LAYERS[:i])
        assert not later, f"{module} imports {sorted(later)}, which come after it"
