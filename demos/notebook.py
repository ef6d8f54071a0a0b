"""The notebook, reproduced end to end: ``python -m demos.notebook [--quick] [--out DIR]``.

Trains the notebook's network (64 → 50 → ReLU → 10 → softmax → squared error, no biases; plain
SGD on 200 random batches of 100 rows, 500 steps each, lr 1e-6) three ways from the same initial
weights on the same batches: with the engine, with the correct hand-derived NumPy backprop, and
with the notebook's own backprop (softmax Jacobian dropped). Then a practitioner's version of the
same network, the notebook's figures, and one self-contained index.html.
"""

from __future__ import annotations

import argparse
import html
import json
import platform
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np

from autodiff.viz import INSTALL_DOT
from demos import conformance, figures, modes
from demos.embeddings import six_embeddings
from demos.gradient_gap import gradient_gap
from demos.graph import render_all, section_html
from demos.machine import cpu_name
from demos.report import write_report
from models import Digits, load_digits, random_batches
from models.numpy_backprop import loss_and_grads, notebook_loss_and_grads
from models.training import (
    PractitionerRun,
    Run,
    initial_weights,
    train_engine,
    train_numpy,
    train_practitioner,
)

T = TypeVar("T")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demos.notebook", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/notebook"),
                        help="folder for the figures and index.html (default: out/notebook)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the initial weights and the batches (default: 0)")
    parser.add_argument("--lr", type=float, default=1e-6, help="SGD learning rate (1e-6)")
    parser.add_argument("--batches", type=int, default=200, help="number of batches (200)")
    parser.add_argument("--steps", type=int, default=500, help="SGD steps per batch (500)")
    parser.add_argument("--init-scale", type=float, default=0.1,
                        help="initial weights are N(0, scale²) (0.1)")
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 10 batches × 20 steps, slow embeddings on 300 digits")
    args = parser.parse_args(argv)
    if args.quick:
        args.batches, args.steps = min(args.batches, 10), min(args.steps, 20)
    args.subsample = 300 if args.quick else None
    return args


class Timer:
    """Runs each stage, saying what it does first, and notes how long it took, for the report's
    "Where the time went"."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}

    def __call__(self, label: str, work: Callable[[], T]) -> T:
        print(f"{label} ...", flush=True)
        start = time.perf_counter()
        result = work()
        self.timings[label] = time.perf_counter() - start
        return result


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    timed = Timer()
    data = timed("load digits", load_digits)
    batches = random_batches(len(data.x_train), args.batches, 100, seed=args.seed)
    w1, w2 = initial_weights(args.seed, args.init_scale)
    runs = _train_three_ways(timed, data, batches, w1, w2, args)
    practitioner = timed("train: practitioner", lambda: train_practitioner(data, args.seed))
    gap = timed("gradient gap", lambda: gradient_gap(data, batches, w1, w2))
    results = _results(runs, practitioner, gap, data, args)
    _print_results(results)
    pngs = _figures(timed, data, batches, (w1, w2), runs, args)
    graph_html = timed("compute graph", lambda: _graph_section(args.out))
    engines = timed("conformance: micrograd, and an engine with a planted bug",
                    lambda: conformance.main(max_examples=30 if args.quick else 100))
    report = timed("report", lambda: write_report(args.out / "index.html", pngs, results,
                                                   timed.timings, graph_html, engines))
    (args.out / "results.json").write_text(json.dumps(results, indent=2))
    _print_timings(timed.timings)
    print(f"\nWrote {len(pngs)} figures, results.json and {report}")
    return results


def _train_three_ways(timed: Timer, data: Digits, batches: list[np.ndarray], w1: np.ndarray,
                      w2: np.ndarray, args: argparse.Namespace) -> list[Run]:
    """The engine, the correct NumPy backprop and the notebook's, from the same start."""
    train = (data, batches, w1, w2, args.lr, args.steps)
    return [
        timed("train: engine", lambda: train_engine(*train)),
        timed("train: engine, compiled", lambda: train_engine(*train, compiled=True)),
        timed("train: NumPy, correct", lambda: train_numpy("NumPy (correct)", loss_and_grads,
                                                            *train)),
        timed("train: NumPy, notebook's", lambda: train_numpy(
            "notebook's backprop", notebook_loss_and_grads, *train)),
    ]


def _results(runs: list[Run], practitioner: PractitionerRun, gap: dict, data: Digits,
             args: argparse.Namespace) -> dict:
    engine, compiled, correct, _ = runs
    return {
        "runs": [{"name": r.name, "test_accuracy": r.accuracy(data.x_test, data.labels_test),
                  "final_loss": float(r.losses[-1, -1]), "us_per_step": r.us_per_step,
                  "seconds": r.seconds} for r in runs],
        "practitioner": {"test_accuracy": practitioner.accuracy,
                         "seconds": practitioner.seconds, "epochs": practitioner.epochs},
        "max_loss_gap_engine_vs_numpy": float(np.abs(engine.losses - correct.losses).max()),
        "max_loss_gap_compiled_vs_numpy": float(np.abs(compiled.losses - correct.losses).max()),
        "gradient_gap": gap,
        "settings": {"batches": args.batches, "steps": args.steps, "lr": args.lr,
                     "seed": args.seed, "init_scale": args.init_scale},
        "machine": {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(),
                    "python": platform.python_version(), "numpy": np.__version__},
    }



def _figures(timed: Timer, data: Digits, batches: list[np.ndarray],
             initial: tuple[np.ndarray, np.ndarray], runs: list[Run],
             args: argparse.Namespace) -> dict[str, Path]:
    """The notebook's figures, and the 2-D embeddings of the digits."""
    engine, _, correct, notebook = runs
    out, first = args.out, batches[0]
    x_all = np.concatenate([data.x_train, data.x_test])
    labels_all = np.concatenate([data.labels_train, data.labels_test])
    pngs = timed("figures", lambda: {
        "digits": figures.digits_grid(x_all, labels_all, out / "digits.png"),
        "batch": figures.batch_images(data.x_train[first], data.y_train[first], 0,
                                      len(batches), out / "batch.png"),
        "activations": figures.activations(data.x_train[first], data.y_train[first], engine.w1,
                                           engine.w2, out / "activations.png"),
        "first_update": figures.first_update(initial, _one_update(data, first, initial, args.lr),
                                             args.lr, out / "first_update.png"),
        "loss_by_batch": figures.loss_curves_by_batch(engine, out / "loss_by_batch.png"),
        "loss_compare": figures.compare_loss_curves(engine, correct, notebook,
                                                    out / "loss_compare.png"),
        "weights": figures.weights_before_after(initial, [engine, correct, notebook],
                                                out / "weights.png"),
        "pixel_pca": figures.digits_on_pixel_pca(
            x_all, labels_all, {"initial": initial[0], "after, engine": engine.w1,
                                "after, notebook's": notebook.w1}, out / "pixel_pca.png"),
    })
    points, point_labels, embed_seconds = six_embeddings(
        x_all, labels_all, engine.w1, engine.w2, args.subsample, args.seed)
    for title, seconds in embed_seconds.items():
        timed.timings[f"embedding: {title}"] = seconds
    pngs["embeddings"] = timed("figure: embeddings", lambda: figures.embeddings(
        points, point_labels, out / "embeddings.png"))
    modes_results = timed("forward against reverse mode", lambda: modes.run(out, args.quick))
    pngs["modes"] = Path(modes_results["figure"])
    return pngs


def _one_update(data: Digits, rows: np.ndarray, initial: tuple[np.ndarray, np.ndarray],
                lr: float) -> tuple[np.ndarray, np.ndarray]:
    """The weights after a single SGD step on one batch, from the initial ones (true gradient)."""
    _, dw1, dw2 = loss_and_grads(data.x_train[rows], data.y_train[rows], *initial)
    return initial[0] - lr * dw1, initial[1] - lr * dw2


def _graph_section(out: Path) -> str:
    """The compute-graph pictures for the report, or why there are none."""
    if shutil.which("dot") is None:
        message = f"Graphviz's dot program is missing, so no graph was drawn: {INSTALL_DOT}."
        print(message)
        return f"<p>{html.escape(message)}</p>"
    return section_html(render_all(out / "graph"), "graph")


def _print_results(results: dict) -> None:
    s = results["settings"]
    print(f"\nThe notebook's network, {s['batches']} batches × {s['steps']} steps, lr {s['lr']:g}")
    print(f"{'training path':<24}{'test accuracy':>15}{'final loss':>12}{'µs/step':>10}")
    for r in results["runs"]:
        print(f"{r['name']:<24}{r['test_accuracy']:>15.3f}{r['final_loss']:>12.4f}"
              f"{r['us_per_step']:>10.1f}")
    p = results["practitioner"]
    print(f"{'practitioner (Adam, CE)':<24}{p['test_accuracy']:>15.3f}")
    print(f"engine vs NumPy loss curves: max gap {results['max_loss_gap_engine_vs_numpy']:.2e}; "
          f"compiled engine vs NumPy: {results['max_loss_gap_compiled_vs_numpy']:.2e}")
    g = results["gradient_gap"]
    print(f"notebook's gradient vs the true one (initial weights, {g['batches']} batches): "
          f"relative error {g['relative_error_median']:.2f} (median), "
          f"angle {g['angle_degrees_median']:.1f}° (median)")


def _print_timings(timings: dict[str, float]) -> None:
    print("\nWhere the time went:")
    for label, seconds in sorted(timings.items(), key=lambda kv: -kv[1]):
        print(f"  {seconds:8.2f} s  {label}")
    print(f"  {sum(timings.values()):8.2f} s  in all")


if __name__ == "__main__":
    main()
