"""One self-contained index.html: every figure (embedded, and linked to its PNG), every number."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path

from autodiff.files import write_atomically

CAPTIONS = {
    "digits": "The first 25 of sklearn's 1797 digits (8×8 pixels, values 0–16).",
    "batch": "One training batch as the network sees it: 100 rows of 64 pixels, one-hot targets.",
    "loss_by_batch": "The engine's run: each batch's squared-error loss over its SGD steps, "
                     "coloured by batch index.",
    "loss_compare": "Left: the engine's and the correct hand-derived NumPy backprop's loss curves "
                    "overlaid; they coincide. Right: the notebook's own backprop, which drops the "
                    "softmax Jacobian, from the same weights on the same batches.",
    "weights": "w1 and w2 before training and after each of the three runs.",
    "activations": "The first batch through the trained network: the hidden pre-activations "
                   "h = x·w1, their ReLU, the softmax output beside the one-hot targets, and "
                   "one row's prediction against its target.",
    "first_update": "The weights before and after a single SGD update on the first batch, and "
                    "the update itself on its own colour scale: at lr 1e-6 one step barely moves "
                    "them.",
    "pixel_pca": "Digits 3 and 4 on the 8×8 pixel grid, and on the plane of the PCA of w1's rows "
                 "(each pixel is placed by its 50 outgoing weights; the lines are the grid's "
                 "edges, so you see how the first layer deforms the lattice).",
    "modes": "Forward against reverse mode: the full Jacobian of f: Rⁿ → Rᵐ takes n forward "
             "passes or m backward passes, so forward mode wins when n < m and reverse mode "
             "when m < n; the notebook's loss (3,700 weights, one number) needs one backward "
             "pass, or 3,700 forward passes (python -m demos.modes).",
    "embeddings": "Six 2-D embeddings, coloured by digit: PCA of the raw data, of x·w1 and of the "
                  "label encoding w2·onehot (engine's trained weights), MDS, Isomap and t-SNE.",
}

def write_report(path: Path, pngs: dict[str, Path], results: dict, timings: dict[str, float],
                 graph_html: str, engines: dict[str, str] | None = None) -> Path:
    """Write index.html next to the PNGs, atomically (a half-written page never replaces one)."""
    sections = [_numbers(results)]
    for key, png in pngs.items():
        data = base64.b64encode(png.read_bytes()).decode("ascii")
        sections.append(
            f'<figure id="{key}"><a href="{html.escape(png.name)}">'
            f'<img src="data:image/png;base64,{data}" alt="{html.escape(key)}"></a>'
            f"<figcaption>{html.escape(CAPTIONS.get(key, key))}</figcaption></figure>")
    sections.append(f'<section id="graph"><h2>Compute graph</h2>'
                    f"{graph_html}</section>")
    if engines:
        sections.append('<section id="conformance"><h2>Testing other engines</h2>'
                        "<p>autodiff.testing.conformance run on micrograd and on a tiny engine "
                        "with a planted bug (python -m demos.conformance):</p>"
                        + "".join(f"<pre>{html.escape(text)}</pre>" for text in engines.values())
                        + "</section>")
    sections.append(_timings(timings))
    page = _PAGE.format(body="\n".join(sections))
    return write_atomically(path, lambda f: f.write(page.encode("utf-8")))


def _numbers(results: dict) -> str:
    s = results["settings"]
    rows = "".join(
        f"<tr><td>{html.escape(r['name'])}</td><td>{r['test_accuracy']:.3f}</td>"
        f"<td>{r['final_loss']:.4f}</td><td>{r['us_per_step']:.1f}</td></tr>"
        for r in results["runs"])
    p, g = results["practitioner"], results["gradient_gap"]
    return (
        f"<h2>Results</h2><p>{s['batches']} batches × {s['steps']} SGD steps, lr {s['lr']:g}, "
        f"seed {s['seed']}, initial weights N(0, {s['init_scale']:g}²).</p>"
        "<table><tr><th>training path</th><th>test accuracy</th><th>final batch loss</th>"
        f"<th>µs per step</th></tr>{rows}"
        f"<tr><td>practitioner: biases, cross-entropy, Adam ({p['epochs']} epochs)</td>"
        f"<td>{p['test_accuracy']:.3f}</td><td></td><td></td></tr></table>"
        f"<p>Engine against correct NumPy backprop: loss curves differ by at most "
        f"{results['max_loss_gap_engine_vs_numpy']:.2e} (eager) and "
        f"{results['max_loss_gap_compiled_vs_numpy']:.2e} (autodiff.compile).</p>"
        f"<p>The notebook's gradient against the true one, at the initial weights on each of "
        f"{g['batches']} batches: relative error {g['relative_error_median']:.3f} (median; "
        f"range {g['relative_error_range'][0]:.3f}–{g['relative_error_range'][1]:.3f}), angle "
        f"{g['angle_degrees_median']:.1f}° (median; range {g['angle_degrees_range'][0]:.1f}–"
        f"{g['angle_degrees_range'][1]:.1f}°).</p>"
        f"<details><summary>All numbers (JSON)</summary><pre>"
        f"{html.escape(json.dumps(results, indent=2))}</pre></details>")


def _timings(timings: dict[str, float]) -> str:
    rows = "".join(f"<tr><td>{html.escape(label)}</td><td>{seconds:.2f} s</td></tr>"
                   for label, seconds in sorted(timings.items(), key=lambda kv: -kv[1]))
    return f"<h2>Where the time went</h2><table>{rows}</table>"


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>autodiff: the notebook, reproduced</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto; padding: 0 1em;
       color: #222; }}
figure {{ margin: 2em 0; }} img {{ max-width: 100%; border: 1px solid #ddd; }}
figcaption {{ color: #555; margin-top: .4em; }}
.graph svg {{ max-width: 100%; height: auto; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ccc; padding: .3em .7em; }}
pre {{ background: #f6f6f6; padding: 1em; overflow-x: auto; }}
</style></head>
<body><h1>The notebook, reproduced with autodiff</h1>
{body}
</body></html>
"""
