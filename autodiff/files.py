"""Writing a file so that nothing the user saved is lost or overwritten half-way.

`write_atomically` writes into a temporary file of a fresh, unique name, created exclusively
(never through a link planted in its place) in the target's own directory, then renames it over
the target in one step. A crash or an error leaves the old file as it was and no temporary
behind. The new file gets the permissions a plain ``open(path, "w")`` would give: an existing
file's own, else 0o666 less the umask. `viz.render` and `models.Module.save` write through it.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(f)`` on a temporary file beside `path`, then rename it to `path`."""
    path = Path(path)
    mode = _mode_for(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
            os.fchmod(f.fileno(), mode)
        os.replace(tmp, path)  # a link at `path` is replaced, never followed
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def _mode_for(path: Path) -> int:
    """The permissions open() would leave: an existing regular file keeps its own."""
    with contextlib.suppress(FileNotFoundError):
        info = os.lstat(path)
        if stat.S_ISREG(info.st_mode):
            return stat.S_IMODE(info.st_mode)
    return 0o666 & ~_umask()


def _umask() -> int:
    """The process's umask, read without changing it where the system allows (Linux)."""
    with contextlib.suppress(OSError, ValueError, StopIteration):
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("Umask:"))
            return int(line.split()[1], 8)
    mask = os.umask(0o022)  # elsewhere: set and restore it at once
    os.umask(mask)
    return mask
