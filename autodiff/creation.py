"""Making tensors as PyTorch does: ``randn``, ``zeros``, ``full``, ``eye``, ``arange``,
``linspace``, ``from_numpy``, ... and the dtype names ``autodiff.float32``, ``autodiff.float64``
(and PyTorch's aliases ``autodiff.float``, ``double``, ``long``, ``int``). Each takes
``device="cpu"`` (the only device) as PyTorch code passes it.

One difference, written down: the default floating dtype is NumPy's, float64 (PyTorch's is
float32), so that tensors made here and tensors made from Python floats or NumPy arrays agree;
pass ``dtype=autodiff.float32`` for PyTorch's. The random functions draw from one generator,
reseeded by `manual_seed` (as ``torch.manual_seed``).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from autodiff.devices import check_device
from autodiff.errors import as_numeric_array
from autodiff.graph import refuse_while_tracing
from autodiff.tensor import Tensor

float32 = np.dtype(np.float32)
float64 = np.dtype(np.float64)
int32 = np.dtype(np.int32)
int64 = np.dtype(np.int64)
bool_ = np.dtype(np.bool_)
ALIASES = {"float": float32, "double": float64, "long": int64, "int": int32, "bool": bool_}
DEFAULT = float64


class _Generator:
    """The generator behind the random functions (one, as PyTorch's default generator)."""

    rng = np.random.default_rng()


def manual_seed(seed: int) -> np.random.Generator:
    """Reseed the generator of `randn` and `rand`; returns it (as torch.manual_seed)."""
    _Generator.rng = np.random.default_rng(seed)
    return _Generator.rng


def _shape(size: tuple[int | tuple[int, ...], ...]) -> tuple[int, ...]:
    """randn(2, 3) and randn((2, 3)) both mean (2, 3), as in PyTorch."""
    if len(size) == 1 and isinstance(size[0], (tuple, list)):
        size = tuple(size[0])
    if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) and n >= 0
               for n in size):
        raise TypeError(f"expected sizes as non-negative ints, got {size!r}")
    return tuple(int(n) for n in size)  # type: ignore[arg-type]


def _made(data: np.ndarray, dtype: DTypeLike | None, requires_grad: bool,
          device: object = None) -> Tensor:
    """A new tensor of the data (float64 unless told: see the module's note)."""
    check_device(device)
    return Tensor(data, dtype=DEFAULT if dtype is None else dtype, requires_grad=requires_grad)


def randn(*size: int | tuple[int, ...], dtype: DTypeLike | None = None,
          requires_grad: bool = False, device: object = None) -> Tensor:
    """Samples of the standard normal distribution, of the given shape."""
    _not_traced("randn")
    return _made(_Generator.rng.standard_normal(_shape(size)), dtype, requires_grad, device)


def rand(*size: int | tuple[int, ...], dtype: DTypeLike | None = None,
         requires_grad: bool = False, device: object = None) -> Tensor:
    """Samples of the uniform distribution on [0, 1), of the given shape."""
    _not_traced("rand")
    return _made(_Generator.rng.random(_shape(size)), dtype, requires_grad, device)


def _not_traced(name: str) -> None:
    """A trace would keep the numbers drawn while tracing, the same at every replay."""
    refuse_while_tracing(f"autodiff.{name} (a random draw)",
                         "draw the numbers outside and pass them as an argument")


def zeros(*size: int | tuple[int, ...], dtype: DTypeLike | None = None,
          requires_grad: bool = False, device: object = None) -> Tensor:
    return _made(np.zeros(_shape(size)), dtype, requires_grad, device)


def ones(*size: int | tuple[int, ...], dtype: DTypeLike | None = None,
         requires_grad: bool = False, device: object = None) -> Tensor:
    return _made(np.ones(_shape(size)), dtype, requires_grad, device)


def zeros_like(t: Tensor, dtype: DTypeLike | None = None, requires_grad: bool = False,
               device: object = None) -> Tensor:
    """Zeros of t's shape and (unless given) dtype."""
    return _made(np.zeros(t.shape), t.dtype if dtype is None else dtype, requires_grad, device)


def ones_like(t: Tensor, dtype: DTypeLike | None = None, requires_grad: bool = False,
              device: object = None) -> Tensor:
    """Ones of t's shape and (unless given) dtype."""
    return _made(np.ones(t.shape), t.dtype if dtype is None else dtype, requires_grad, device)


def full(size: int | tuple[int, ...], fill_value: float, *, dtype: DTypeLike | None = None,
         requires_grad: bool = False, device: object = None) -> Tensor:
    """A tensor of `size` holding fill_value everywhere (float64 for a float, as the other
    creation functions; int64 for an int, bool for a bool, as PyTorch)."""
    kind = np.asarray(fill_value).dtype
    chosen = dtype if dtype is not None else (kind if kind.kind in "biu" else DEFAULT)
    return _made(np.full(_shape((size,)), fill_value), chosen, requires_grad, device)


def eye(n: int, m: int | None = None, *, dtype: DTypeLike | None = None,
        requires_grad: bool = False, device: object = None) -> Tensor:
    """The n×m identity matrix (n×n unless m is given)."""
    rows, columns = _shape((n, n if m is None else m))
    return _made(np.eye(rows, columns), dtype, requires_grad, device)


def linspace(start: float, end: float, steps: int, *, dtype: DTypeLike | None = None,
             requires_grad: bool = False, device: object = None) -> Tensor:
    """`steps` evenly spaced values from start to end, both included."""
    (count,) = _shape((steps,))
    return _made(np.linspace(start, end, count), dtype, requires_grad, device)


def arange(start: float, end: float | None = None, step: float = 1, *,
           dtype: DTypeLike | None = None, requires_grad: bool = False,
           device: object = None) -> Tensor:
    """start, start + step, ... below end (``arange(n)`` counts from 0); integer arguments give
    an int64 tensor, as in PyTorch."""
    check_device(device)
    data = np.arange(start, end, step) if end is not None else np.arange(start)
    return Tensor(data, dtype=dtype, requires_grad=requires_grad)


def from_numpy(array: ArrayLike) -> Tensor:
    """A tensor sharing the array's memory and dtype (as torch.from_numpy)."""
    if not isinstance(array, np.ndarray):
        raise TypeError(f"from_numpy: expected a numpy.ndarray, got {type(array).__name__}")
    return Tensor._wrap(as_numeric_array("from_numpy", array))
