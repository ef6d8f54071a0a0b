"""Devices, as PyTorch code names them: this engine runs on NumPy, so "cpu" is the one device.
Code that picks its device (``"cuda" if torch.cuda.is_available() else "cpu"``) runs; any other
device is an error that names it."""

from __future__ import annotations

from typing import Any


class Device:
    """``autodiff.device("cpu")``: the one device."""

    type = "cpu"

    def __init__(self, name: Any = "cpu") -> None:
        check_device(name)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Device) or other == "cpu"

    __hash__ = object.__hash__

    def __repr__(self) -> str:
        return "device(type='cpu')"

    def __str__(self) -> str:
        return "cpu"


def check_device(device: Any) -> None:
    """Accept "cpu" (or "cpu:0", or a Device); refuse any other device by name."""
    if device is None or isinstance(device, Device):
        return
    if not (isinstance(device, str) and device.split(":")[0] == "cpu"):
        raise ValueError(f"device: only 'cpu' is available (this engine runs on NumPy), got "
                         f"{device!r}")


CPU = Device()
