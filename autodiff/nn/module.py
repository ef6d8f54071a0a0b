"""`Module` and `Parameter`: parameters found by walking attributes, state dicts, saving as .npz."""

from __future__ import annotations

import os
import zipfile
import zlib
from collections.abc import Iterator
from typing import Any, BinaryIO

import numpy as np
from numpy.typing import ArrayLike

from autodiff.files import write_atomically
from autodiff.tensor import Tensor, zero_grads


class Parameter(Tensor):
    """A tensor that is a module's parameter (as torch.nn.Parameter): it requires grad unless
    told otherwise, and made from a tensor it shares that tensor's array."""

    __slots__ = ()

    def __init__(self, data: ArrayLike | None = None, requires_grad: bool = True) -> None:
        shared = data.data if isinstance(data, Tensor) else None
        super().__init__(np.zeros(0) if data is None else shared if shared is not None else data,
                         requires_grad=requires_grad)
        if shared is not None:
            self.data = shared

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class of layers and networks: ``__call__`` runs ``forward``.

    Parameters are the attributes that are `Parameter`s, or Tensors that required grad when they
    were assigned (so a layer frozen later with ``p.requires_grad = False`` keeps its parameter,
    as in PyTorch), found in definition order, with those of sub-modules (attributes, or lists of
    them) under dotted names.
    """

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.forward(*args, **kwargs)

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, Parameter) or isinstance(value, Tensor) and value.requires_grad:
            self.__dict__.setdefault("_parameter_names", set()).add(name)
        object.__setattr__(self, name, value)

    def _is_parameter(self, name: str, value: Any) -> bool:
        return isinstance(value, Tensor) and (
            isinstance(value, Parameter) or value.requires_grad
            or name in self.__dict__.get("_parameter_names", ()))

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        """This module (named `prefix`) and every sub-module (attributes, or lists and tuples of
        them) under dotted names, each once, in definition order, depth first; a module that
        refers back to its parent or itself is walked once."""
        stack: list[tuple[str, Module]] = [(prefix, self)]
        seen = {id(self)}
        while stack:  # iterative: deep nesting cannot overflow the stack
            path, module = stack.pop()
            yield path, module
            children: list[tuple[str, Module]] = []
            for name, value in vars(module).items():
                full = f"{path}.{name}" if path else name
                if isinstance(value, Module):
                    children.append((full, value))
                elif isinstance(value, (list, tuple)):
                    children += [(f"{full}.{i}", m) for i, m in enumerate(value)
                                 if isinstance(m, Module)]
            fresh = []
            for child in children:  # in definition order, so the first name wins
                if id(child[1]) not in seen:
                    seen.add(id(child[1]))
                    fresh.append(child)
            stack.extend(reversed(fresh))

    def modules(self) -> list[Module]:
        return [m for _, m in self.named_modules()]

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Tensor]]:
        """Each parameter once, under the first name it is found by (a shared one is not listed
        twice, as in PyTorch)."""
        seen: set[int] = set()
        for path, module in self.named_modules(prefix):
            for name, value in vars(module).items():
                if module._is_parameter(name, value) and id(value) not in seen:
                    seen.add(id(value))
                    yield (f"{path}.{name}" if path else name), value

    def parameters(self) -> list[Tensor]:
        return [p for _, p in self.named_parameters()]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear every parameter's gradient: set it to None, or (``set_to_none=False``) zero it
        in place."""
        zero_grads(self.parameters(), set_to_none)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        """Freeze (False) or unfreeze every parameter; returns the module."""
        for p in self.parameters():
            p.requires_grad = requires_grad
        return self

    def to(self, *args: Any, **kwargs: Any) -> Module:
        """Each parameter converted as ``Tensor.to`` converts (a dtype, or "cpu"), in place."""
        for p in self.parameters():
            converted = p.to(*args, **kwargs)
            if converted is not p:
                p.data, p.grad = converted.data, None
        return self

    def double(self) -> Module:
        """Every parameter in float64, in place (as PyTorch's)."""
        return self.to(np.float64)

    def float(self) -> Module:
        """Every parameter in float32, in place (as PyTorch's)."""
        return self.to(np.float32)

    def cpu(self) -> Module:
        return self

    def train(self, mode: bool = True) -> Module:
        """Accepted for PyTorch code; no layer here behaves differently in training."""
        return self

    def eval(self) -> Module:
        return self

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

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the state dict as .npz (no pickle), atomically: a crash leaves the old file."""
        state = self.state_dict()

        def write(f: BinaryIO) -> None:
            with zipfile.ZipFile(f, "w") as archive:  # np.savez's format, any parameter name
                for name, value in state.items():
                    with archive.open(name + ".npy", "w", force_zip64=True) as entry:
                        np.lib.format.write_array(entry, value, allow_pickle=False)

        write_atomically(path, write)

    def load(self, path: str | os.PathLike[str]) -> None:
        """Read a file written by `save`. Each entry's header (shape, dtype) is checked against
        the module before its data is read; a foreign, corrupted or mismatched file fails with
        an error naming the file and the entry, and changes nothing."""
        params = dict(self.named_parameters())
        try:
            archive = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError) as error:
            raise ValueError(f"load: {path} is not a state dict saved by Module.save: it is not "
                             f"a .npz (zip) archive ({error})") from None
        with archive:
            names = archive.namelist()
            _check_names(params, {n.removesuffix(".npy"): n for n in names}, str(path))
            state = {name: _read_entry(archive, path, name, p) for name, p in params.items()}
        self.load_state_dict(state)


def _check_names(params: dict[str, Tensor], found: dict[str, Any], where: str) -> None:
    missing, unexpected = sorted(set(params) - set(found)), sorted(set(found) - set(params))
    if missing or unexpected:
        raise KeyError(f"load: missing keys {missing}, unexpected keys {unexpected} in {where}")


def _check_entry(name: str, shape: tuple[int, ...], dtype: np.dtype, p: Tensor, where: str) -> None:
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
    except (zipfile.BadZipFile, OSError, EOFError, ValueError, NotImplementedError,
            zlib.error) as error:
        if str(error).startswith("load: "):
            raise
        raise ValueError(f"load: {path} is not a state dict saved by Module.save: entry "
                         f"{name!r} cannot be read ({error})") from None
    if len(data) != nbytes:
        raise ValueError(f"load: {path} is not a state dict saved by Module.save: entry "
                         f"{name!r} is truncated ({len(data)} of {nbytes} bytes)")
    return np.frombuffer(data, dtype).reshape(shape, order="F" if fortran_order else "C")
