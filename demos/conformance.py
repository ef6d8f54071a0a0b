"""Testing other autograd engines: ``python -m demos.conformance``.

Runs `autodiff.testing.conformance` on micrograd from PyPI (the ops it has: + − × ÷, powers,
ReLU, and sums, means and matrix products of arrays of its scalars), then on a tiny tensor engine
with a bug planted in it (tanh's rule written as 1 − y instead of 1 − y²), and prints what the
suite reports: the shrunk program, and the op whose gradient is wrong.
"""

from __future__ import annotations

from autodiff.testing import adapters
from autodiff.testing.conformance import EngineMismatch, check_engine
from demos.tiny_engine import TinyEngine


def report(engine: object, max_examples: int = 100) -> str:
    """What the suite says of `engine`: that it conforms, or the shrunk mismatch."""
    try:
        check_engine(engine, max_examples=max_examples)
    except EngineMismatch as mismatch:
        return f"=== {engine.name}: caught\n{mismatch}"
    return f"=== {engine.name}: conforms ({max_examples} programs of {', '.join(engine.ops)})"


def main(max_examples: int = 100) -> dict[str, str]:
    reports = {}
    try:
        from micrograd.engine import Value
    except ImportError:
        reports["micrograd"] = "=== micrograd: not installed (pip install micrograd)"
    else:
        reports["micrograd"] = report(adapters.scalar(Value, name="micrograd"), max_examples)
    reports["tiny, with a wrong tanh rule"] = report(TinyEngine("tanh rule"), max_examples)
    for text in reports.values():
        print(text, end="\n\n")
    return reports


if __name__ == "__main__":
    main()
