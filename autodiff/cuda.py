"""``torch.cuda``'s questions, answered for an engine on NumPy: no GPU is available, so a script
that picks its device (``"cuda" if torch.cuda.is_available() else "cpu"``) runs on the CPU."""


def is_available() -> bool:
    return False


def device_count() -> int:
    return 0
