"""`make mutation` runs the tests in a copy of the repository that holds mutmut's `source_paths`
and `also_copy`: every top-level package or file the tests import must be among them, or the
mutation run fails before it mutates anything."""

import ast
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parents[1]


def test_every_top_level_package_the_tests_import_is_copied_for_mutation_testing():
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mutmut"]
    copied = {Path(p).parts[0] for p in config["also_copy"] + config["source_paths"]}
    local = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    imported = set()
    for test in (ROOT / "tests").glob("*.py"):
        for node in ast.walk(ast.parse(test.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                imported.add(node.module.split(".")[0])
    assert imported & local, "the tests import the project's packages"
    assert imported & local <= copied, f"not copied for mutmut: {sorted(imported & local - copied)}"
    ignored = [a.removeprefix("--ignore=") for a in config["pytest_add_cli_args"]
               if a.startswith("--ignore=")]
    assert all((ROOT / path).exists() for path in ignored), "an ignored test file was renamed"
