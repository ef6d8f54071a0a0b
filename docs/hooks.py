"""Build hooks of the documentation site (``make docs``): what the pages show that comes from
the code or from a stored run is generated here, never typed by hand.

- ``<!-- generated: operations -->``: the op table, from `autodiff.ops.OPS` (each primitive's
  rules as their formulas, its kink and its domain).
- ``<!-- generated: benchmarks -->``: the benchmark table, from the stored run
  `benchmarks/results.json` (with the machine and date it came from).
- ``<!-- generated: notebook -->``: the notebook reproduction's numbers, from its stored full
  run, `docs/notebook-run/results.json` (whose figures sit beside it).
- ``gallery/``: the notebook network's graph views and the backward-steps page, rendered by
  `demos.graph` at build time (needs Graphviz's dot).
- ``walkthrough.ipynb``: `demos/walkthrough.ipynb`, executed here (mkdocs-jupyter renders it)
  without storing its widgets' state, which would make the page load a widget manager from
  another host: the site loads nothing from the network.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

from mkdocs.plugins import event_priority
from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results.json"
NOTEBOOK_RUN = ROOT / "docs" / "notebook-run" / "results.json"


def operations_table() -> str:
    from autodiff.ops import OPS

    rows = ["| op | gradient rules | kink | domain |", "|---|---|---|---|"]
    for op in OPS.values():
        rules = "<br>".join(f"`{f}`" for f in op.formulas() if f) or "none (piecewise constant)"
        kink = op.kink.describe() if op.kink else ""
        domain = op.domain.describe(op.input_names)
        rows.append(f"| `{op.name}` | {rules} | {kink} | {domain} |")
    return "\n".join(rows)


def loop_forms_table() -> str:
    """Each op's loop form (`primitive.Loop`), as the fused backend writes it."""
    from autodiff.ops import OPS

    def shown(recipe: object) -> str:
        if recipe is None:
            return "no gradient"
        if callable(recipe):  # a function of the params: the source of its one expression
            return f"from its params: `{recipe.__name__}`"
        return f"`{recipe}`"

    rows = ["| op | forward, in a loop | gradient rules, in a loop |", "|---|---|---|"]
    for op in OPS.values():
        if op.loop is not None:
            rules = "<br>".join(f"{name}: {shown(r)}" for name, r in zip(op.input_names,
                                                                          op.loop.vjps))
            rows.append(f"| `{op.name}` | {shown(op.loop.forward)} | {rules} |")
    missing = ", ".join(f"`{name}`" for name, op in OPS.items() if op.loop is None)
    return "\n".join(rows) + f"\n\nWithout a loop form (they run as NumPy calls): {missing}."


def benchmarks_table() -> str:
    from benchmarks.markdown import table

    return table(json.loads(RESULTS.read_text()))


def notebook_table() -> str:
    r = json.loads(NOTEBOOK_RUN.read_text())
    m, s, gap, p = r["machine"], r["settings"], r["gradient_gap"], r["practitioner"]
    lines = [f"The stored full run (`python -m demos.notebook`, seed {s['seed']}, "
             f"{s['batches']} batches × {s['steps']} steps, lr {s['lr']:g}), made on "
             f"{m['date']} on {m['cpu']} with Python {m['python']} and NumPy {m['numpy']}:", "",
             "| training path | test accuracy | final batch loss | µs per step |",
             "|---|---|---|---|"]
    lines += [f"| {run['name']} | {run['test_accuracy']:.3f} | {run['final_loss']:.3f} | "
              f"{run['us_per_step']:.1f} |" for run in r["runs"]]
    lines += [f"| practitioner: biases, cross-entropy, Adam ({p['epochs']} epochs) | "
              f"{p['test_accuracy']:.3f} | | |", "",
              f"Over all {s['batches'] * s['steps']:,} steps the engine's loss curve differs from "
              f"the correct NumPy backprop's by at most "
              f"{r['max_loss_gap_engine_vs_numpy']:.1e} (compiled: "
              f"{r['max_loss_gap_compiled_vs_numpy']:.1e}). At the initial weights the "
              f"notebook's gradient is {gap['relative_error_median']:.1f}× the true one's size "
              f"away from it and {gap['angle_degrees_median']:.0f}° from it in direction "
              f"(medians over the {gap['batches']} batches). The µs per step of one run vary "
              "with the machine's load: compare the rows of one run, not runs."]
    return "\n".join(lines)


GENERATED = {"<!-- generated: operations -->": operations_table,
             "<!-- generated: loop forms -->": loop_forms_table,
             "<!-- generated: benchmarks -->": benchmarks_table,
             "<!-- generated: notebook -->": notebook_table}


def on_page_markdown(markdown: str, **kwargs: object) -> str:
    for marker, make in GENERATED.items():
        if marker in markdown:
            markdown = markdown.replace(marker, make())
    return markdown


@event_priority(100)  # before mkdocs-jupyter's, which makes the notebook a page
def on_files(files: Files, config: dict, **kwargs: object) -> Files:
    """Add the generated files: the gallery and the executed walkthrough notebook."""
    if shutil.which("dot") is None:
        raise SystemExit("docs: the gallery needs Graphviz's dot: sudo apt-get install graphviz")
    from demos.graph import render_all

    folder = Path(tempfile.mkdtemp(prefix="autodiff-docs-"))
    render_all(folder / "gallery")
    generated = [f"gallery/{path.name}" for path in sorted((folder / "gallery").iterdir())]
    executed_walkthrough(folder / "walkthrough.ipynb")
    for name in [*generated, "walkthrough.ipynb"]:
        files.append(File(name, str(folder), config["site_dir"], config["use_directory_urls"]))
    return files


def executed_walkthrough(path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(ROOT / "demos" / "walkthrough.ipynb", as_version=4)
    NotebookClient(notebook, timeout=600, kernel_name="python3", store_widget_state=False,
                   resources={"metadata": {"path": str(ROOT)}}).execute()
    nbformat.write(notebook, path)
