"""Forward against reverse mode, measured: ``python -m demos.modes [--out DIR] [--quick]``.

A full Jacobian of f: Rⁿ → Rᵐ takes n forward passes (one JVP per input element) or m backward
passes (one VJP per output element). f here is a small MLP, m outputs of tanh(W₁x) through W₂;
the demo times `autodiff.jacobian` with both strategies as n grows (m fixed) and as m grows
(n fixed), and counts the rule applications (passes × the program's ops). Then the notebook's
loss: 3,700 weights in, one number out: one backward pass against 3,700 forward passes, the
reason training uses backprop.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from tqdm.auto import tqdm  # noqa: E402

import autodiff as ad  # noqa: E402
from autodiff.forward import forward_mode, tangent_of  # noqa: E402
from models import load_digits, one_hot, squared_error  # noqa: E402
from models.training import initial_weights  # noqa: E402

HIDDEN = 32
OPS_PER_PASS = 3  # matmul, tanh, matmul
STRATEGIES = ("forward-mode", "reverse-mode")


def mlp(n: int, m: int, seed: int = 0):
    """f(x) = W₂ tanh(W₁ x): Rⁿ → Rᵐ."""
    rng = np.random.default_rng(seed)
    w1 = ad.tensor(rng.standard_normal((HIDDEN, n)) / np.sqrt(n))
    w2 = ad.tensor(rng.standard_normal((m, HIDDEN)) / np.sqrt(HIDDEN))
    return lambda x: w2 @ (w1 @ x).tanh()


def jacobian_seconds(f, x: ad.Tensor, strategy: str, repeats: int) -> float:
    """The best of `repeats` timings of the full Jacobian (the least disturbed by the machine)."""
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        ad.jacobian(f, x, strategy=strategy)
        best = min(best, time.perf_counter() - start)
    return best


def sweep(sizes: list[int], fixed: int, vary: str, repeats: int) -> dict:
    """Jacobian times and rule counts of both strategies as n (or m) takes each size."""
    rows = {strategy: {"seconds": [], "rules": []} for strategy in STRATEGIES}
    for size in tqdm(sizes, desc=f"Jacobians, {vary} varies", unit="size", leave=False,
                     disable=None):
        n, m = (size, fixed) if vary == "n" else (fixed, size)
        f, x = mlp(n, m), ad.tensor(np.random.default_rng(1).standard_normal(n))
        for strategy in STRATEGIES:
            rows[strategy]["seconds"].append(jacobian_seconds(f, x, strategy, repeats))
            passes = n if strategy == "forward-mode" else m
            rows[strategy]["rules"].append(passes * OPS_PER_PASS)
    return {"sizes": sizes, "fixed": fixed, "vary": vary, **rows}


def notebook_gradient(rows: int = 100) -> dict:
    """The notebook loss's gradient w.r.t. its 3,700 weights: one backward pass, or one forward
    pass per weight (each with a one-hot tangent); both timed, and checked to agree."""
    data = load_digits()
    x, y = ad.tensor(data.x_train[:rows]), ad.tensor(one_hot(data.labels_train[:rows]))
    w1, w2 = (ad.tensor(w, requires_grad=True) for w in initial_weights(0, 0.1))

    def loss(a, b):
        return squared_error((x @ a).relu() @ b, y)

    start = time.perf_counter()
    loss(w1, w2).backward()
    reverse = time.perf_counter() - start
    forward_grads = [np.zeros(w.shape) for w in (w1, w2)]
    start = time.perf_counter()
    with ad.no_grad():
        for w, into in zip((w1, w2), forward_grads):
            for index in tqdm(list(np.ndindex(w.shape)), desc="3,700 forward passes",
                              unit="pass", leave=False, disable=None):
                direction = np.zeros(w.shape)
                direction[index] = 1
                with forward_mode({w: direction}) as table:
                    into[index] = float(tangent_of(table, loss(w1, w2)))
    forward = time.perf_counter() - start
    agree = max(float(np.abs(f - w.grad.data).max()) for f, w in zip(forward_grads, (w1, w2)))
    return {"weights": w1.size + w2.size, "reverse_seconds": reverse,
            "forward_seconds": forward, "max_difference": agree}


def figure(by_n: dict, by_m: dict, notebook: dict, path: Path) -> Path:
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, sweep_ in zip(axes[:2], (by_n, by_m)):
        for strategy, style in zip(STRATEGIES, ("o-", "s--")):
            ax.loglog(sweep_["sizes"], np.array(sweep_[strategy]["seconds"]) * 1e3, style,
                      label=f"{strategy}: {sweep_[strategy]['rules'][-1]} rules at the right")
        other = "m" if sweep_["vary"] == "n" else "n"
        ax.set(xlabel=f"{sweep_['vary']} ({'inputs' if sweep_['vary'] == 'n' else 'outputs'})",
               ylabel="full Jacobian, ms",
               title=f"f: Rⁿ → Rᵐ, {other} = {sweep_['fixed']}: grows with "
                     f"{sweep_['vary']} in {'forward' if sweep_['vary'] == 'n' else 'reverse'}"
                     " mode")
        ax.legend(fontsize=8)
    ax = axes[2]
    bars = [notebook["reverse_seconds"], notebook["forward_seconds"]]
    ax.bar(["1 backward pass", f"{notebook['weights']:,} forward passes"], bars,
           color=["#2ca02c", "#d62728"])
    ax.set_yscale("log")
    ax.set(ylabel="seconds", title="notebook loss: 3,700 weights → 1 number")
    for i, value in enumerate(bars):
        ax.text(i, value, f"{value:.3g} s", ha="center", va="bottom")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def run(out: Path, quick: bool = False) -> dict:
    """The two sweeps, the notebook comparison and the figure (``out/modes.png``)."""
    out.mkdir(parents=True, exist_ok=True)
    sizes = [1, 4, 16, 64] if quick else [1, 2, 4, 8, 16, 32, 64, 128]
    repeats = 1 if quick else 3
    by_n, by_m = sweep(sizes, 8, "n", repeats), sweep(sizes, 8, "m", repeats)
    notebook = notebook_gradient(rows=20 if quick else 100)
    results = {"n varies": by_n, "m varies": by_m, "notebook": notebook,
               "figure": str(figure(by_n, by_m, notebook, out / "modes.png"))}
    print_results(results)
    return results


def print_results(results: dict) -> None:
    for key in ("n varies", "m varies"):
        s = results[key]
        print(f"\nfull Jacobian of f: Rⁿ → Rᵐ, {key} ({'m' if key[0] == 'n' else 'n'} = "
              f"{s['fixed']}), ms:")
        print(f"{s['vary']:>6}" + "".join(f"{size:>9}" for size in s["sizes"]))
        for strategy in STRATEGIES:
            print(f"{strategy[:7]:>6}" + "".join(f"{1e3 * t:9.2f}" for t in s[strategy]["seconds"]))
    n = results["notebook"]
    print(f"\nnotebook loss gradient ({n['weights']} weights): 1 backward pass "
          f"{1e3 * n['reverse_seconds']:.2f} ms, {n['weights']} forward passes "
          f"{n['forward_seconds']:.2f} s ({n['forward_seconds'] / n['reverse_seconds']:.0f}× "
          f"slower); they agree to {n['max_difference']:.1e}")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m demos.modes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("out/modes"),
                        help="folder for modes.png (default: out/modes)")
    parser.add_argument("--quick", action="store_true", help="fewer sizes, one timing each")
    args = parser.parse_args(argv)
    return run(args.out, args.quick)


if __name__ == "__main__":
    main()
