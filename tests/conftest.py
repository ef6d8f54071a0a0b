"""Hypothesis profiles: `quick` for local runs (default), `ci` (HYPOTHESIS_PROFILE=ci) for CI;
and the quick run of the notebook reproduction, shared by the tests that read its output."""

import os

import pytest
from demo_runs import run_demo
from hypothesis import HealthCheck, Phase, settings

_common = dict(deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                      HealthCheck.data_too_large,
                                                      HealthCheck.filter_too_much])
settings.register_profile("quick", max_examples=30, **_common)
# derandomized: CI runs the same 1,000 examples per test every time, so it cannot flake
settings.register_profile("ci", max_examples=1000, print_blob=True, derandomize=True, **_common)
settings.register_profile("measure", max_examples=100, **_common)  # for timing the suite
# mutation testing runs the suite once per mutant: a failure need not be shrunk, only found
settings.register_profile("mutation", max_examples=30, database=None,
                          phases=[Phase.explicit, Phase.generate], **_common)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "quick"))


def scaled(fraction: float) -> settings:
    """Settings running a fraction of the profile's examples (for the costly checks)."""
    return settings(max_examples=max(10, int(settings().max_examples * fraction)))


@pytest.fixture(scope="session")
def notebook_quick_run(tmp_path_factory):
    """``python -m demos.notebook --quick`` once per session: its output folder (with the
    report, index.html, and what it printed, stdout.txt)."""
    out = tmp_path_factory.mktemp("notebook")
    output = run_demo("notebook", "--quick", "--out", str(out), "--seed", "1")
    (out / "stdout.txt").write_text(output)
    return out
