"""How long `viz.explore`'s page takes to open in headless Chromium: a chain of 10⁴ nodes drawn
whole, and a stack of small layers of 10⁵ nodes, which opens collapsed by module (one box per
layer, with its count). Timed from navigation until the page has drawn (``body[data-ready]``)."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

import autodiff as ad
from autodiff import nn, viz
from benchmarks.browser import CHROMIUM, launch


def chain_page(folder: Path, nodes: int) -> Path:
    x = ad.tensor([1.0], requires_grad=True)
    y = x
    for _ in range(nodes // 2):
        y = y * 1.0001
    return viz.explore(y, path=folder / "chain.html", collapse=False)


def layers_page(folder: Path, nodes: int) -> Path:
    rng = np.random.default_rng(0)
    layers = [nn.Linear(2, 2, rng=rng) for _ in range(nodes // 9)]  # 9 nodes a layer
    x = ad.tensor(np.ones((1, 2)))
    for layer in layers:
        x = layer(x)
    model = nn.Sequential(*layers)
    return viz.explore(x.sum(), path=folder / "layers.html", collapse=True,
                       params=dict(model.named_parameters()))


def open_seconds(quick: bool) -> dict[str, float] | None:
    """Seconds to open each page (the best of three), or None without Chromium or playwright."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return None
    if CHROMIUM is None:
        return None
    scale = 10 if quick else 1
    with tempfile.TemporaryDirectory() as folder:
        pages = {f"{10_000 // scale:,}-node chain, drawn whole": chain_page(Path(folder),
                                                                              10_000 // scale),
                 f"{100_000 // scale:,}-node stack of layers, collapsed by module":
                     layers_page(Path(folder), 100_000 // scale)}
        times: dict[str, float] = {}
        with sync_playwright() as playwright:
            browser = launch(playwright)
            for name, path in pages.items():
                best = float("inf")
                for _ in range(3):
                    page = browser.new_page()
                    start = time.perf_counter()
                    page.goto(path.as_uri())
                    page.wait_for_selector("body[data-ready]", timeout=120_000)
                    best = min(best, time.perf_counter() - start)
                    page.close()
                times[name] = best
            browser.close()
    return times
