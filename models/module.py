"""`Module`: parameters found by walking attributes, state dicts, and saving as .npz."""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Iterator
from typing import BinaryIO

import numpy as np

from autodiff import Tensor
from autodiff.files import write_atomically


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
        """Each parameter once, under the first name it is found by (a shared one is not listed
        twice, as in PyTorch); a module that refers back to its parent or itself is walked once."""
        stack: list[tuple[str, Module]] = [(prefix, self)]
        seen_modules, seen_params = {id(self)}, set()
        while stack:  # iterative: deep nesting cannot overflow the stack
            path, module = stack.pop()
            children = []
            for name, value in vars(module).items():
                full = f"{path}{name}"
                if isinstance(value, Tensor) and value.requires_grad:
                    if id(value) not in seen_params:
                        seen_params.add(id(value))
                        yield full, value
                elif isinstance(value, Module):
                    children.append((full + ".", value))
                elif isinstance(value, (list, tuple)):
                    children += [(f"{full}.{i}.", m) for i, m in enumerate(value)
                                 if isinstance(m, Module)]
            fresh = []
            for child in children:  # in definition order, so the first name wins
                if id(child[1]) not in seen_modules:
                    seen_modules.add(id(child[1]))
                    fresh.append(child)
            stack.extend(reversed(fresh))

    def parameters(self) -> list[Tensor]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self) -> None:
        for p in self.parameters():
            p.grad = None

    def state_dict(self) -> dict[str, np.ndarray]:
        """A copy of every parameter's array, by name."""
        return {name: p.data.copy() for name, p in self.named_parameters()}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None:
        """Copy arrays into the parameters: all of them, or (on any mismatch of name, shape or
        dtype) none."""
        params = dict(self.named_parameters())
        _check_names(params, state, "the state dict")
        converted = {}
        for name, p in params.items():
            value = np.asarray(state[name])
            _check_entry(name, value.shape, value.dtype, p, "the state dict")
            converted[name] = np.array(value, dtype=p.dtype)
        for name, p in params.items():  # only once every entry is known to fit
            p.data = converted[name]

    def save(self, path: str | os.PathLike) -> None:
        """Write the state dict as .npz (no pickle), atomically: a crash leaves the old file."""
        state = self.state_dict()

        def write(f: BinaryIO) -> None:
            with zipfile.ZipFile(f, "w") as archive:  # np.savez's format, any parameter name
                for name, value in state.items():
                    with archive.open(name + ".npy", "w", force_zip64=True) as entry:
                        np.lib.format.write_array(entry, value, allow_pickle=False)

        write_atomically(path, write)

    def load(self, path: str | os.PathLike) -> None:
        """Read a file written by `save`. Each entry's header (shape, dtype) is checked against
        the module before its data is read; a foreign, corrupted or mismatched file fails with
        an error naming the file and the entry, and changes nothing."""
        params = dict(self.named_parameters())
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError) as error:
            raise ValueError(f"load: {path} is not a state dict saved by Module.save: it is not "
                             f"a .npz (zip) archive ({error})") from None
        with archive:
            names = archive.namelist()
            _check_names(params, {n.removesuffix(".npy"): n for n in names}, str(path))
            state = {name: _read_entry(archive, path, name, p) for name, p in params.items()}
        self.load_state_dict(state)


def _check_names(params: dict, found: dict, where: str) -> None:
    missing, unexpected = sorted(set(params) - set(found)), sorted(set(found) - set(params))
    if missing or unexpected:
        raise KeyError(f"load: missing keys {missing}, unexpected keys {unexpected} in {where}")


def _check_entry(name: str, shape: tuple, dtype: np.dtype, p: Tensor, where: str) -> None:
    if dtype.kind not in "biuf":
        raise TypeError(f"load: {name!r} holds dtype {dtype} in {where}; a parameter needs "
                        "numbers")
    if tuple(shape) != p.shape:
        raise ValueError(f"load: {name!r} has shape {tuple(shape)} in {where} but {p.shape} "
                         "in the module")


def _read_entry(archive: zipfile.ZipFile, path: object, name: str, p: Tensor) -> np.ndarray:
    """One .npy entry: its header checked against the parameter, then exactly its data."""
    try:
        with archive.open(name + ".npy") as f:
            version = np.lib.format.read_magic(f)
            read_header = {(1, 0): np.lib.format.read_array_header_1_0,
                           (2, 0): np.lib.format.read_array_header_2_0}.get(version)
            if read_header is None:
                raise ValueError(f"unsupported .npy format version {version}")
            shape, fortran_order, dtype = read_header(f)
            _check_entry(name, shape, dtype, p, str(path))
            nbytes = int(np.prod(shape)) * dtype.itemsize
            data = f.read(nbytes)
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, zlib.error) as error:
        if str(error).startswith("load: "):
            raise
        raise ValueError(f"load: {path} is not a state dict saved by Module.save: entry "
                         f"{name!r} cannot be read ({error})") from None
    if len(data) != nbytes:
        raise ValueError(f"load: {path} is not a state dict saved by Module.save: entry "
                         f"{name!r} is truncated ({len(data)} of {nbytes} bytes)")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran_order else "C")
