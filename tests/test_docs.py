"""The Python examples of the README and of every documentation page run as written."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
EXAMPLES = [(page, code) for page in PAGES
            for code in re.findall(r"```python\n(.*?)```", page.read_text(), re.S)]


@pytest.mark.parametrize(("page", "code"), EXAMPLES,
                         ids=[f"{p.name}-{i}" for i, (p, _) in enumerate(EXAMPLES)])
def test_a_documented_example_runs(page, code):
    exec(compile(code, str(page), "exec"), {})


def test_every_page_has_examples_that_are_run():
    assert {p.name for p, _ in EXAMPLES} >= {"README.md", "getting-started.md", "engine.md",
                                             "compiler.md", "graphs.md", "models.md"}
