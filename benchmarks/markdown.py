"""The benchmark results as Markdown, for the documentation site's performance page (from the
stored run, `benchmarks/results.json`, written by ``python -m benchmarks --json``)."""

from __future__ import annotations

from benchmarks.targets import PER_OP_TARGET, TARGETS


def table(results: dict) -> str:
    m = results["machine"]
    lines = [f"Measured on {m.get('date', 'an unrecorded date')}: {m['cpu']}, {m['cores']} cores, "
             f"Python {m['python']}, NumPy {m['numpy']}, {m['blas']} on {m['blas threads']} "
             f"thread, glibc's malloc thresholds "
             f"{'fixed' if m['malloc thresholds fixed'] else 'at their defaults'}"
             f"{' (a --quick run)' if results.get('quick') else ''}.", "",
             "| training step | µs | hand-written NumPy µs | ratio | target | met | peak memory |",
             "|---|---|---|---|---|---|---|"]
    for name, r in results["steps"].items():
        for kind, target in zip(("engine", "compiled"), TARGETS[name]):
            met = "yes" if r[kind]["ratio"] <= target else "no"
            memory = f"{r['peak memory ratio']:.2f}×" if kind == "engine" else ""
            label = f"{name}, {'eager' if kind == 'engine' else 'compiled'}"
            lines.append(f"| {label} | {r[kind]['us']:,.1f} | {r['numpy']['us']:,.1f} | "
                         f"{r[kind]['ratio']:.2f}× | {target:.2f}× | {met} | {memory} |")
    o = results["per-op overhead us"]
    f = results["fan-out backward us"]
    n = results["notebook run s"]
    ratio = n["compiled seconds"] / n["numpy seconds"]
    per_op_met = "met" if o["forward+backward"] <= PER_OP_TARGET else "not met"
    lines += ["",
              f"- Per-op overhead (a chain of `y * 1.0001`, minus NumPy doing the same): "
              f"{o['forward']:.2f} µs forward, {o['forward+backward']:.2f} µs forward + backward "
              f"(target ≤ {PER_OP_TARGET:g} µs: {per_op_met}).",
              f"- Fan-out: one tensor used by {f['width']:,} ops backpropagates in "
              f"{f['us'] / 1000:.1f} ms.",
              f"- The notebook's whole training ({n['batches']} batches × {n['steps']} steps): "
              f"engine {n['seconds']:.1f} s, compiled {n['compiled seconds']:.1f} s, NumPy "
              f"{n['numpy seconds']:.1f} s (compiled / NumPy {ratio:.2f}×, target ≤ 1.00×: "
              f"{'met' if ratio <= 1 else 'not met'})."]
    opened = results.get("explorer open s")
    lines += [f"- The graph explorer's page (`viz.explore`), {name}: opens in {seconds:.2f} s "
              "in headless Chromium." for name, seconds in (opened or {}).items()]
    return "\n".join(lines)
