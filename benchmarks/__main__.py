"""Benchmarks: ``python -m benchmarks [--quick] [--json PATH]``.

Engine against hand-written NumPy, measured in the same run: the two sides alternate, each
repetition times a block of steps of both, and the ratio is taken pair by pair (median), so
drift and noise on the machine cancel. BLAS runs on one thread for every figure.

glibc moves its mmap threshold as a process frees large blocks, so one process of the large-MLP
step gave ~8 MB back to the kernel every step and faulted it in again (10.0 or 15.3 ms for the
same code, depending on which arrays came first). Run as a program, the benchmark fixes both
thresholds for itself (MALLOC_MMAP_THRESHOLD_ and MALLOC_TRIM_THRESHOLD_, 64 MiB) by
re-executing itself once with them set; the figures say whether they were.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_info, threadpool_limits

from benchmarks import explorer
from benchmarks.cases import adam_steps, elementwise_chain, fan_out, training_steps
from benchmarks.markdown import step_rows
from benchmarks.targets import (
    FIRST_CALL_TARGETS,
    FUSED_RUN_TARGET,
    NOTEBOOK_RUN_TARGET,
    PER_OP_TARGET,
    TARGETS,
)
from demos.machine import cpu_name

MALLOC = {"MALLOC_MMAP_THRESHOLD_": str(64 << 20), "MALLOC_TRIM_THRESHOLD_": str(64 << 20)}


def block_time(fn: Callable[[], object], steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
        fn()
    return (time.perf_counter() - start) / steps


def paired(fns: dict[str, Callable], baseline: str, steps: int, repeats: int) -> dict:
    """Median seconds per call of each function, and the median of the per-repetition ratios
    to `baseline`. The order alternates between repetitions."""
    for fn in fns.values():  # warm up: caches, allocator, BLAS
        block_time(fn, max(steps // 5, 1))
    times: dict[str, list[float]] = {name: [] for name in fns}
    names = list(fns)
    for r in range(repeats):
        for name in (names if r % 2 == 0 else names[::-1]):
            times[name].append(block_time(fns[name], steps))
    result = {name: {"us": 1e6 * statistics.median(t)} for name, t in times.items()}
    for name in fns:
        if name != baseline:
            result[name]["ratio"] = statistics.median(
                a / b for a, b in zip(times[name], times[baseline]))
    return result


def peak_memory(fn: Callable[[], object]) -> int:
    """Peak bytes allocated (tracemalloc sees NumPy's buffers) during one call, after a warm-up."""
    fn()
    tracemalloc.start()
    tracemalloc.reset_peak()
    base = tracemalloc.get_traced_memory()[0]
    fn()
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return peak


def machine() -> dict:
    blas = [f"{i.get('internal_api')} {i.get('version')}" for i in threadpool_info()
            if i.get("user_api") == "blas"]
    return {"date": time.strftime("%Y-%m-%d"), "cpu": cpu_name(), "cores": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__, "blas": ", ".join(blas) or "unknown", "blas threads": 1,
            "malloc thresholds fixed": all(os.environ.get(k) == v for k, v in MALLOC.items())}


def stage(name: str) -> None:
    """Say what is being measured (to stderr: the report on stdout stays clean)."""
    print(f"benchmarks: {name} ...", file=sys.stderr, flush=True)


def run(quick: bool) -> dict:
    steps, repeats = (50, 5) if quick else (400, 15)
    results: dict = {"machine": machine(), "quick": quick, "steps": {}}
    # first: the eager engine's per-op figures, before numba and its kernels fill the heap
    # that Python's garbage collector walks
    chain_length = 200 if quick else 2000
    stage(f"per-op overhead, a chain of {chain_length} ops")
    chain = paired(elementwise_chain(chain_length), "numpy", 5 if quick else 20, repeats)
    numpy_us = chain["numpy"]["us"]
    results["per-op overhead us"] = {
        "forward": (chain["engine forward"]["us"] - numpy_us) / chain_length,
        "forward+backward": (chain["engine forward+backward"]["us"] - numpy_us) / chain_length}
    width = 100 if quick else 1000
    stage(f"fan-out over {width} uses")
    results["fan-out backward us"] = {"width": width, "us": 1e6 * block_time(fan_out(width), 5)}
    notebook = (100, (64, 50, 10))
    for name in TARGETS:
        stage(name)
        dtype = np.float32 if name.endswith("float32") else np.float64
        rows, sizes = (256, (784, 512, 10)) if name.startswith("large MLP") else notebook
        n = max(steps // 10, 5) if name.startswith("large MLP") else steps
        if "Adam" in name:
            fns = adam_steps(rows, sizes, dtype)
        else:
            fns = training_steps(rows, sizes, dtype, pytorch_cell="PyTorch" in name)
        results["steps"][name] = paired(fns, "numpy", n, repeats)
        results["steps"][name]["peak memory ratio"] = (
            peak_memory(fns["engine"]) / peak_memory(fns["numpy"]))
    stage("the fused step's first call, in a new process: with an empty kernel cache, then again")
    results["first fused call s"] = _first_fused_calls()
    stage("the notebook's whole training with the engine")
    results["notebook run s"] = _notebook_run(quick)
    stage("the graph explorer's page, opened in Chromium")
    results["explorer open s"] = explorer.open_seconds(quick)
    return results


def _first_fused_calls() -> dict[str, float]:
    """`cases.first_fused_call` in a new process with an empty kernel cache folder ("cold"),
    then in another that finds the kernels the first left there ("disk cache")."""
    seconds = {}
    with tempfile.TemporaryDirectory() as folder:
        for name in FIRST_CALL_TARGETS:
            out = subprocess.run(
                [sys.executable, "-c",
                 "from benchmarks.cases import first_fused_call; print(first_fused_call())"],
                env={**os.environ, "AUTODIFF_CACHE": folder}, capture_output=True, text=True,
                check=True, cwd=Path(__file__).resolve().parents[1])
            seconds[name] = float(out.stdout.split()[-1])
    return seconds


def _notebook_run(quick: bool) -> dict:
    """The notebook's whole training with the engine (200 batches × 500 steps by default)."""
    from models import load_digits, random_batches
    from models.numpy_backprop import loss_and_grads
    from models.training import initial_weights, train_engine, train_numpy

    data = load_digits()
    batches, steps = (10, 50) if quick else (200, 500)
    train = (data, random_batches(len(data.x_train), batches, 100), *initial_weights(0, 0.1),
             1e-6, steps)
    return {"batches": batches, "steps": steps, "seconds": train_engine(*train).seconds,
            "compiled seconds": train_engine(*train, compiled=True).seconds,
            "fused seconds": train_engine(*train, compiled=True, backend="numba").seconds,
            "numpy seconds": train_numpy("NumPy", loss_and_grads, *train).seconds}


def report(results: dict) -> None:
    m = results["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores; Python {m['python']}, NumPy {m['numpy']} "
          f"({m['blas']}), BLAS on 1 thread; glibc's malloc thresholds "
          f"{'fixed' if m['malloc thresholds fixed'] else 'not fixed'}"
          f"{'; QUICK run' if results['quick'] else ''}\n")
    print(f"{'training step':<66}{'µs':>9}{'NumPy µs':>10}{'ratio':>8}{'target':>8}"
          f"{'met':>5}{'peak mem':>10}{'PyTorch':>9}")
    for label, us, numpy_us, ratio, target, met, memory, torch in step_rows(results):
        print(f"{label:<66}{us:>9.1f}{numpy_us:>10.1f}{ratio:>7.2f}×{target:>7.2f}×{met:>5}"
              f"{memory:>10}{torch:>9}")
    o = results["per-op overhead us"]
    met = "met" if o["forward+backward"] <= PER_OP_TARGET else "not met"
    print(f"\nper-op overhead: {o['forward']:.2f} µs forward, {o['forward+backward']:.2f} µs "
          f"forward + backward (target ≤ {PER_OP_TARGET:g}: {met})")
    f = results["fan-out backward us"]
    print(f"fan-out: one tensor used by {f['width']} ops, backward in {f['us']:.0f} µs")
    n = results["notebook run s"]
    ratio = n["compiled seconds"] / n["numpy seconds"]
    fused = n["fused seconds"] / n["numpy seconds"]
    print(f"notebook training, {n['batches']} batches × {n['steps']} steps: engine "
          f"{n['seconds']:.1f} s, whole step compiled {n['compiled seconds']:.1f} s (tracing "
          f"included), NumPy {n['numpy seconds']:.1f} s (compiled / NumPy {ratio:.2f}×, target "
          f"≤ {NOTEBOOK_RUN_TARGET:.2f}: {'met' if ratio <= NOTEBOOK_RUN_TARGET else 'not met'})"
          f"; fused {n['fused seconds']:.1f} s, numba's compile included ({fused:.2f}×, target ≤ "
          f"{FUSED_RUN_TARGET:.2f}: {'met' if fused <= FUSED_RUN_TARGET else 'not met'})")
    for name, seconds in results["first fused call s"].items():
        target = FIRST_CALL_TARGETS[name]
        print(f"the fused notebook step's first call ({name}): {seconds:.2f} s, numba's import, "
              f"the trace and the compile (target ≤ {target:g} s: "
              f"{'met' if seconds <= target else 'not met'})")
    opened = results["explorer open s"]
    for name, seconds in (opened or {}).items():
        print(f"explorer page, {name}: opens in {seconds:.2f} s")
    if opened is None:
        print("explorer page: not measured (needs Chromium and playwright)")


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="a short run that shows it works")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    import scipy.linalg  # noqa: F401  the BLAS a fused step's matmuls call, loaded to be limited
    with threadpool_limits(limits=1, user_api="blas"):
        results = run(args.quick)
    report(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    if not all(os.environ.get(k) == v for k, v in MALLOC.items()):  # once: fix glibc's thresholds
        os.execve(sys.executable, [sys.executable, "-m", "benchmarks", *sys.argv[1:]],
                  {**os.environ, **MALLOC})
    main()
