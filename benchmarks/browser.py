"""Debian's Chromium, driven by playwright's Python package through ``executable_path``
(nothing downloads a browser build): shared by the browser tests and the explorer benchmark."""

from __future__ import annotations

import shutil

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
INSTALL = ("the browser tests need Debian's Chromium: run 'sudo apt-get install chromium' "
           "(make test installs it where it runs as root)")
# as root, without a sandbox; no background traffic (this machine reaches no other host)
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
def launch(playwright):  # -> playwright Browser
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
