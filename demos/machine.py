"""What a stored run records of the machine it ran on (the notebook reproduction's and the
benchmark's)."""

from __future__ import annotations

import os
import platform


def cpu_name() -> str:
    """The processor's model name, where Linux tells it; else what the platform says."""
    if os.path.exists("/proc/cpuinfo"):
        with open("/proc/cpuinfo") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()
