"""`Module`: parameters found by walking attributes, state dicts, and saving as .npz."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from autodiff import Tensor


class Module:
    """Base class of layers and networks: ``__call__`` runs ``forward``.

    Parameters are the attributes that are Tensors with ``requires_grad=True``, found in
    definition order, with those of sub-modules (attributes, or lists of them) under dotted names.
    """

    def forward(self, *args, **kwargs) -> Tensor:
        raise NotImplementedError

    def __call__(self, *args, **kwargs) -> Tensor:
        return self.forward(*args, **kwargs)

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        stack = [(prefix, self)]
        while stack:  # iterative: deep nesting cannot overflow the stack
            path, module = stack.pop()
            children = []
            for name, value in vars(module).items():
                full = f"{path}{name}"
                if isinstance(value, Tensor) and value.requires_grad:
                    yield full, value
                elif isinstance(value, Module):
                    children.append((full + ".", value))
                elif isinstance(value, (list, tuple)):
                    children += [(f"{full}.{i}.", m) for i, m in enumerate(value)
                                 if isinstance(m, Module)]
            stack.extend(reversed(children))

    def parameters(self) -> list[Tensor]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter's array, by name."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy arrays into the parameters; every key must match in name and shape first."""
        params = dict(self.named_parameters())
        missing, unexpected = sorted(set(params) - set(state)), sorted(set(state) - set(params))
        if missing or unexpected:
            raise KeyError(f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}")
        for name, p in params.items():
            if np.shape(state[name]) != p.shape:
                raise ValueError(f"load_state_dict: {name!r} has shape {np.shape(state[name])} in "
                                 f"the state dict but {p.shape} in the module")
        for name, p in params.items():  # only once all keys are known to fit
            p.data = np.array(state[name], dtype=p.dtype)

    def save(self, path: str | os.PathLike) -> None:
        """Write the state dict as .npz (no pickle), atomically: a crash leaves the old file."""
        path = Path(path)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, **self.state_dict())
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
        except BaseException:
            os.unlink(tmp)
            raise

    def load(self, path: str | os.PathLike) -> None:
        """Read a file written by `save`; a foreign or mismatched file fails and changes nothing."""
        try:
            with np.load(path, allow_pickle=False) as archive:
                state = {name: archive[name] for name in archive.files}
        except (ValueError, OSError, zipfile.BadZipFile) as error:
            raise ValueError(f"load: {path} is not a state dict saved by Module.save "
                             f"({error})") from None
        self.load_state_dict(state)
