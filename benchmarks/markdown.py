"""The benchmark results as Markdown, for the documentation site's performance page (from the
stored run, `benchmarks/results.json`, written by ``python -m benchmarks --json``)."""

from __future__ import annotations

from benchmarks.targets import (
    FIRST_CALL_TARGETS,
    FUSED_RUN_TARGET,
    KINDS,
    NOTEBOOK_RUN_TARGET,
    PER_OP_TARGET,
    TARGETS,
)


def step_rows(results: dict) -> list[tuple[str, float, float, float, float, str, str, str]]:
    """Per training step and way of running it: label, µs, NumPy µs, ratio, target, met, peak
    memory (eager rows), PyTorch's ratio (eager rows)."""
    rows = []
    for name, r in results["steps"].items():
        for kind, target in TARGETS[name].items():
            if kind not in r:  # a stored run from before the kind was measured
                continue
            eager = kind == "engine"
            memory = f"{r['peak memory ratio']:.2f}×" if eager else ""
            torch = f"{r['pytorch']['ratio']:.2f}×" if eager and "pytorch" in r else ""
            rows.append((f"{name}, {KINDS[kind]}", r[kind]["us"], r["numpy"]["us"],
                         r[kind]["ratio"], target, "yes" if r[kind]["ratio"] <= target else "no",
                         memory, torch))
    return rows


def table(results: dict) -> str:
    m = results["machine"]
    lines = [f"Measured on {m.get('date', 'an unrecorded date')}: {m['cpu']}, {m['cores']} cores, "
             f"Python {m['python']}, NumPy {m['numpy']}, {m['blas']} on {m['blas threads']} "
             f"thread, glibc's malloc thresholds "
             f"{'fixed' if m['malloc thresholds fixed'] else 'at their defaults'}"
             f"{' (a --quick run)' if results.get('quick') else ''}.", "",
             "| training step | µs | hand-written NumPy µs | ratio | target | met | peak memory |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {label} | {us:,.1f} | {numpy_us:,.1f} | {ratio:.2f}× | {target:.2f}× | {met} | "
              f"{memory} |"
              for label, us, numpy_us, ratio, target, met, memory, _ in step_rows(results)]
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
              f"engine {n['seconds']:.1f} s, whole step compiled {n['compiled seconds']:.1f} s "
              f"(tracing included), NumPy {n['numpy seconds']:.1f} s (compiled / NumPy "
              f"{ratio:.2f}×, target ≤ {NOTEBOOK_RUN_TARGET:.2f}×: "
              f"{'met' if ratio <= NOTEBOOK_RUN_TARGET else 'not met'})."]
    if "fused seconds" in n:
        fused = n["fused seconds"] / n["numpy seconds"]
        lines.append(f"- The same training fused (`backend=\"numba\"`): "
                     f"{n['fused seconds']:.1f} s, numba's compile included ({fused:.2f}×, "
                     f"target ≤ {FUSED_RUN_TARGET:.2f}×: "
                     f"{'met' if fused <= FUSED_RUN_TARGET else 'not met'}).")
    lines += [f"- The fused notebook step's first call ({name}: numba's import, the trace and "
              f"the kernels' compile) in a new process: {seconds:.2f} s (target ≤ "
              f"{FIRST_CALL_TARGETS[name]:g} s: "
              f"{'met' if seconds <= FIRST_CALL_TARGETS[name] else 'not met'})."
              for name, seconds in results.get("first fused call s", {}).items()]
    opened = results.get("explorer open s")
    lines += [f"- The graph explorer's page (`viz.explore`), {name}: opens in {seconds:.2f} s "
              "in headless Chromium." for name, seconds in (opened or {}).items()]
    return "\n".join(lines)
