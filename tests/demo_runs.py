"""Running a demo as its users do, ``python -m demos.NAME ...``, from the checkout."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_demo(name: str, *args: str) -> str:
    """Run ``python -m demos.NAME ARGS`` at the repository's root; its output, or the failure."""
    result = subprocess.run([sys.executable, "-m", f"demos.{name}", *args], cwd=ROOT,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout
