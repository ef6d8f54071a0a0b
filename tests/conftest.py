"""Hypothesis profiles: `quick` for local runs (default), `ci` (HYPOTHESIS_PROFILE=ci) for CI;
the quick run of the notebook reproduction, shared by the tests that read its output; and a
headless Chromium page for the browser tests."""

import importlib
import os

import pytest
from browser import CHROMIUM, INSTALL, launch
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


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium, headless (the tests that use it skip, saying how to install it,
    without it or without playwright)."""
    sync_api = pytest.importorskip("playwright.sync_api", reason=INSTALL)
    if CHROMIUM is None:
        pytest.skip(INSTALL)
    with sync_api.sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh page; `page.dialogs` lists the messages of any alert a page raised."""
    context = browser.new_context(viewport={"width": 1300, "height": 800})
    page = context.new_page()
    page.dialogs = []
    page.on("dialog", lambda d: (page.dialogs.append(d.message), d.dismiss()))
    yield page
    context.close()


@pytest.fixture
def nothing_retained(monkeypatch):
    """No tensor anywhere has its .grad retained (one another test made may still be alive),
    so the walker's shortcut for a graph of one node is open unless the test closes it."""
    monkeypatch.setattr(importlib.import_module("autodiff.backward"), "RETAINED", {})
