"""`Tensor`: a NumPy array that records the ops applied to it, and its methods.

Every differentiable method is one call to `apply` with a primitive from `autodiff.ops`
(or a few such calls: ``mean`` is a sum divided by a count).
"""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, NamedTuple, TypeAlias

import numpy as np
from numpy.typing import ArrayLike, DTypeLike

from autodiff import ops
from autodiff.backward import backward, retain
from autodiff.devices import CPU, Device, check_device
from autodiff.errors import (
    ShapeError,
    as_numeric_array,
    explain,
    normalize_dim,
    normalize_dims,
    reduced_dims,
)
from autodiff.graph import GradMode, GradNode, InPlace, Node, no_grad, refuse_while_tracing
from autodiff.primitive import Dispatch
from autodiff.recording import record

Operand: TypeAlias = "Tensor | ArrayLike"  # a Tensor, an array, a number, a list of numbers
Dims: TypeAlias = int | Sequence[int] | None  # a dim, negative counting from the end; None: all


def apply(op: ops.Op, *inputs: Tensor, **params: Any) -> Tensor:
    """Run a primitive's forward on the inputs' arrays; record a node when a gradient is needed."""
    try:
        data = op.forward(*[t.data for t in inputs], **params)
    except (ValueError, IndexError, TypeError) as error:
        raise explain(op, inputs, params, error) from None
    out = record(op.name, inputs, Tensor._wrap(data), Node, op, inputs, params)
    for hook in GradMode.op_hooks:  # forward mode, a trace: they see every op (rarely any)
        hook(op, inputs, params, out)
    return out


def constant(op: ops.Op, *inputs: Tensor, **params: Any) -> Tensor:
    """Apply an op that passes no gradient (a comparison, detach): its result is a constant,
    never recorded, though what watches every op (a trace, forward mode) sees it."""
    with no_grad():
        return apply(op, *inputs, **params)


class ValuesIndices(NamedTuple):
    """What ``max(dim)`` and ``min(dim)`` return, as torch.return_types.max: the values and
    the index of each along the dim (``v, i = t.max(dim=1)``, or ``.values``, ``.indices``)."""

    values: Tensor
    indices: Tensor


def binary(run: Callable[..., Tensor], op: ops.Op, a: Tensor, b: Tensor) -> Tensor:
    """Run a two-operand op after PyTorch's type promotion (see `promoted`)."""
    if a.data.dtype is not b.data.dtype:
        a, b = promoted(a, b)
    return run(op, a, b)


def promoted(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """PyTorch's promotion, where it differs from NumPy's: a 0-d tensor beside a dimensioned one
    of the same category (bool, integer, floating) takes the dimensioned one's dtype, so float32
    weights times a float64 scalar tensor stay float32. A 0-d tensor of a higher category (an
    integer tensor times a float one) promotes, as in both."""
    if (a.ndim == 0) == (b.ndim == 0):
        return a, b
    category = {"b": 0, "i": 1, "u": 1, "f": 2}
    scalar, full = (a, b) if a.ndim == 0 else (b, a)
    if category.get(scalar.dtype.kind) != category.get(full.dtype.kind):
        return a, b
    scalar = scalar.to(full.dtype)  # recorded: the gradient goes back in the scalar's dtype
    return (scalar, full) if a.ndim == 0 else (full, scalar)


class Tensor:
    """An n-dimensional array (``.data``) with an optional gradient (``.grad``)."""

    __slots__ = ("data", "_grad", "_grad_owned", "requires_grad", "grad_fn", "name", "_version",
                 "__weakref__")
    __array_ufunc__ = None  # NumPy defers to us: ndarray * Tensor calls Tensor.__rmul__

    def __init__(self, data: ArrayLike, requires_grad: bool = False, dtype: DTypeLike | None = None,
                 name: str | None = None) -> None:
        """A tensor of a copy of `data` (use `autodiff.from_numpy` to share an array)."""
        if isinstance(data, Tensor):  # a copy of its values now: a trace would keep them
            refuse_while_tracing("a Tensor made from another one's values",
                                 "use t.detach(), which a trace records")
            data = data.data
        array = as_numeric_array("Tensor", data, dtype)
        if isinstance(data, np.ndarray) and np.may_share_memory(array, data):
            array = array.copy()  # as torch.tensor: the caller's array stays the caller's
        self.data: np.ndarray = array
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"Tensor: only floating-point tensors can require gradients, "
                            f"got dtype {self.data.dtype}")
        self.requires_grad = bool(requires_grad)
        self._grad: Tensor | None = None
        self._grad_owned = False  # whether backward made .grad's array (and may add into it)
        self.grad_fn: GradNode | None = None
        self.name = name
        self._version = 0  # raised by every in-place method (see graph.InPlace)

    @staticmethod
    def _wrap(data: Any) -> Tensor:
        """A constant tensor around an array, without __init__'s checks (the hot path)."""
        t = Tensor.__new__(Tensor)
        t.data = data if type(data) is np.ndarray else np.asarray(data)
        t.requires_grad = t._grad_owned = False
        t._grad = t.grad_fn = t.name = None
        t._version = 0
        return t

    def _operand(self, other: Operand, op_name: str) -> Tensor:
        """Wrap a scalar or array operand; a Python number takes this tensor's float dtype."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (int, float)) and self.data.dtype.kind == "f":
            if other:  # 0.0 and -0.0 are equal keys to a cache, and differ: made each time
                return _number(other, self.data.dtype)
            return Tensor._wrap(np.asarray(other, dtype=self.data.dtype))
        return Tensor._wrap(as_numeric_array(op_name, other))

    # ------------------------------------------------------------ .grad
    @property
    def grad(self) -> Tensor | None:
        """The gradient accumulated by backward: None, or a Tensor of this tensor's shape and
        dtype."""
        if GradMode.effects is not None:  # compile is tracing: this is t's gradient
            GradMode.effects.read_grad(self)
        return self._grad

    @grad.setter
    def grad(self, value: Tensor | None) -> None:
        if GradMode.effects is not None:
            if value is not None:
                refuse_while_tracing("setting .grad to a tensor", "set it to None (as "
                                     "zero_grad() does), or set it outside the function")
            GradMode.effects.clear_grad(self)
            return
        if value is not None:
            if not isinstance(value, Tensor):
                raise TypeError(f"grad: can only be set to None or a Tensor, got "
                                f"{type(value).__name__} (wrap an array: autodiff.tensor(a))")
            if self.dtype.kind != "f" or value.dtype != self.dtype:
                raise TypeError(f"grad: a gradient of dtype {value.dtype} cannot be assigned to "
                                f"a tensor of dtype {self.dtype} (they must be the same "
                                "floating dtype)")
            if value.shape != self.shape:
                raise ShapeError(f"grad: a gradient of shape {value.shape} cannot be assigned "
                                 f"to a tensor of shape {self.shape}")
        self._grad = value
        self._grad_owned = False  # the user's: backward adds into a copy, never into it

    # ------------------------------------------------------------ attributes
    shape = property(lambda self: self.data.shape)
    ndim = property(lambda self: self.data.ndim)
    dtype = property(lambda self: self.data.dtype)
    size = property(lambda self: Size(self.data.size, self.data.shape))

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def __array__(self, dtype: DTypeLike | None = None, copy: bool | None = None) -> np.ndarray:
        """NumPy sees the data: ``np.asarray(t)``, and Tensors inside lists, become numbers."""
        if copy:
            return np.array(self.data, dtype=dtype)
        return self.data if dtype is None else self.data.astype(dtype, copy=False)

    def item(self) -> float | int | bool:
        refuse_while_tracing("item() (a tensor's value as a Python number, which a trace "
                             "would freeze)", "return the tensor and call .item() on what the "
                             "compiled function returns")
        if self.data.size != 1:
            raise ValueError(f"item: only a tensor of one element has an item, "
                             f"got shape {self.shape}")
        return self.data.item()

    def numpy(self) -> np.ndarray:
        return self.data

    def tolist(self) -> Any:
        return self.data.tolist()

    def detach(self) -> Tensor:
        """The same data, cut from the graph."""
        return constant(ops.DETACH, self)

    def zero_(self) -> Tensor:
        """Set every element to 0, in place (bumps the version: see `backward`)."""
        return self.fill_(0, "zero_")

    def fill_(self, value: float, _name: str = "fill_") -> Tensor:
        """Set every element to `value`, in place."""
        filler = self._operand(value, _name)
        return self._in_place(_name, filler, lambda out: np.copyto(out, filler.data),
                              lambda before: filler.broadcast_to(self.shape),
                              "make a new tensor with autodiff.full or zeros_like")

    def copy_(self, src: Operand) -> Tensor:
        """Copy src's values (broadcast to this tensor's shape) into it, in place; the gradient
        goes to src, as PyTorch's."""
        source = self._operand(src, "copy_")
        return self._in_place("copy_", source,
                              lambda out: np.copyto(out, source.data, casting="same_kind"),
                              lambda before: source.to(self.dtype).broadcast_to(self.shape),
                              "use src.clone()")

    def add_(self, other: Operand, alpha: float = 1) -> Tensor:
        """x += alpha·other, in place (as PyTorch's add_)."""
        return self.__iadd__(other if alpha == 1 else self._operand(other, "add_") * alpha)

    def sub_(self, other: Operand, alpha: float = 1) -> Tensor:
        """x −= alpha·other, in place."""
        return self.__isub__(other if alpha == 1 else self._operand(other, "sub_") * alpha)

    def mul_(self, other: Operand) -> Tensor:
        return self.__imul__(other)

    def div_(self, other: Operand) -> Tensor:
        return self.__itruediv__(other)

    def exp_(self) -> Tensor:
        """exp of every element, in place."""
        return self._in_place("exp_", None, lambda out: np.exp(out, out=out),
                              lambda before: before.exp())

    def clamp_(self, min: float | None = None, max: float | None = None) -> Tensor:
        """clamp, in place."""
        return self._in_place("clamp_", None, lambda out: np.copyto(out, self.clamp(min, max).data),
                              lambda before: before.clamp(min, max))

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        """Set requires_grad in place (a leaf's only, as PyTorch's); returns the tensor."""
        if self.grad_fn is not None and not requires_grad:
            raise RuntimeError("requires_grad_: only a leaf's flag can be cleared (this tensor "
                               "was computed; use detach() for a tensor cut from the graph)")
        if requires_grad and self.dtype.kind != "f":
            raise TypeError(f"requires_grad_: only floating-point tensors can require "
                            f"gradients, got dtype {self.dtype}")
        self.requires_grad = bool(requires_grad) or self.grad_fn is not None
        return self

    def retain_grad(self) -> None:
        """Keep this non-leaf's gradient in ``.grad`` at the next backward (as PyTorch's)."""
        if self.grad_fn is None:
            return  # a leaf keeps its gradient anyway
        retain(self)

    def clone(self) -> Tensor:
        """A copy with its own array, recorded: the gradient flows back (as PyTorch's)."""
        return apply(ops.CLONE, self)

    def contiguous(self) -> Tensor:
        """Itself: NumPy arrays need no contiguous copy for any op here."""
        return self

    def numel(self) -> int:
        """The number of elements."""
        return int(self.data.size)

    def dim(self) -> int:
        """The number of dims (as PyTorch's ``t.dim()``; also ``t.ndim``)."""
        return int(self.data.ndim)

    def cpu(self) -> Tensor:
        """Itself: every tensor lives in the CPU's memory."""
        return self

    @property
    def device(self) -> Device:
        return CPU

    is_cuda = False

    def backward(self, gradient: Operand | None = None, retain_graph: bool = False,
                 create_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf)·gradient into ``.grad`` of every leaf that requires grad."""
        backward(self, gradient, retain_graph=retain_graph, create_graph=create_graph)

    def __len__(self) -> int:
        return len(self.data)

    def __iter__(self) -> Iterator[Tensor]:
        """The sub-tensors along dim 0, each recorded like ``t[i]``."""
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(len(self)))

    def __bool__(self) -> bool:
        refuse_while_tracing("bool() of a tensor (an if or a while on its values)",
                             "use autodiff.where, or pass the condition as an argument, or run "
                             "the function uncompiled")
        return bool(self.data)

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    __hash__ = object.__hash__  # == is elementwise, so identity hashes

    def __repr__(self) -> str:
        body = np.array2string(self.data, separator=", ", prefix="tensor(")
        extras = []
        if self.data.dtype not in (np.float64, np.int64, np.bool_):
            extras.append(f"dtype={self.data.dtype}")
        if self.grad_fn is not None:
            extras.append(f"grad_fn={self.grad_fn!r}")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        if self.name:
            extras.append(f"name={self.name!r}")
        return "tensor(" + ", ".join([body] + extras) + ")"

    # ------------------------------------------------------------ arithmetic
    def __add__(self, other: Operand) -> Tensor:
        return binary(apply, ops.ADD, self, self._operand(other, "add"))

    def __radd__(self, other: Operand) -> Tensor:
        return binary(apply, ops.ADD, self._operand(other, "add"), self)

    def __sub__(self, other: Operand) -> Tensor:
        return binary(apply, ops.SUB, self, self._operand(other, "sub"))

    def __rsub__(self, other: Operand) -> Tensor:
        return binary(apply, ops.SUB, self._operand(other, "sub"), self)

    def __mul__(self, other: Operand) -> Tensor:
        return binary(apply, ops.MUL, self, self._operand(other, "mul"))

    def __rmul__(self, other: Operand) -> Tensor:
        return binary(apply, ops.MUL, self._operand(other, "mul"), self)

    def __truediv__(self, other: Operand) -> Tensor:
        return binary(apply, ops.DIV, self, self._operand(other, "div"))

    def __rtruediv__(self, other: Operand) -> Tensor:
        return binary(apply, ops.DIV, self._operand(other, "div"), self)

    def __pow__(self, exponent: Operand) -> Tensor:
        return binary(apply, ops.POW, self, self._operand(exponent, "pow"))

    def __rpow__(self, base: Operand) -> Tensor:
        return binary(apply, ops.POW, self._operand(base, "pow"), self)

    def __neg__(self) -> Tensor:
        return apply(ops.NEG, self)

    def pow(self, exponent: Operand) -> Tensor:
        return self ** exponent

    # ------------------------------------------------------------ in place: x -= y, as PyTorch
    def __iadd__(self, other: Operand) -> Tensor:
        return self._binary_in_place(np.add, ops.ADD, "+=", other)

    def __isub__(self, other: Operand) -> Tensor:
        return self._binary_in_place(np.subtract, ops.SUB, "-=", other)

    def __imul__(self, other: Operand) -> Tensor:
        return self._binary_in_place(np.multiply, ops.MUL, "*=", other)

    def __itruediv__(self, other: Operand) -> Tensor:
        return self._binary_in_place(np.true_divide, ops.DIV, "/=", other)

    def __ipow__(self, other: Operand) -> Tensor:
        return self._binary_in_place(np.power, ops.POW, "**=", other)

    def _binary_in_place(self, ufunc: np.ufunc, op: ops.Op, symbol: str,
                         other: Operand) -> Tensor:
        operand = self._operand(other, op.name)
        return self._in_place(
            symbol, operand, lambda out: ufunc(out, operand.data, out=out, casting="same_kind"),
            lambda before: binary(apply, op, before, operand))

    def _in_place(self, what: str, operand: Tensor | None,
                  write: Callable[[np.ndarray], object],
                  compute: Callable[[Tensor], Tensor], instead: str | None = None) -> Tensor:
        """An in-place op (``x -= y``, ``x.exp_()``, ``x[i] = v``) as in PyTorch: x's own array
        takes the result (every reference to x sees it) and its version is bumped. Under
        ``no_grad``, or where no tensor requires grad, `write` does that, and that is all:
        ``p -= lr * p.grad`` updates the weight. Where the change must be recorded (``h += 1``
        on a non-leaf, ``total += loss``), x also takes the node of ``compute(old x)``, whose
        input is x's old self (a tensor of the old values and node). A node that used x before
        would follow x's new node, and a rule that saved x would read its new values: backward
        refuses both (`graph.check_rebound`, and the version check, as in PyTorch). A leaf that
        requires grad cannot be changed while recording (PyTorch's error too)."""
        given = operand is not None and operand.requires_grad
        if not (GradMode.enabled and (self.requires_grad or given)) and (
                GradMode.tangents is None):
            if GradMode.effects is not None:  # compile traces the write as its ops' result
                GradMode.effects.write(self, what, compute,
                                       lambda: self._write(what, operand, write))
            else:
                self._write(what, operand, write)
            return self
        instead = instead or (f"write x = x {what[:-1]} y" if what.endswith("=") else
                              f"use the out-of-place {what.rstrip('_')}")
        if GradMode.tangents is not None:
            raise RuntimeError(f"{what}: in-place ops are not supported in forward mode; "
                               f"{instead}")
        refuse_while_tracing(f"an in-place {what} while recording", instead)
        if self.requires_grad and self.grad_fn is None:
            raise RuntimeError(
                f"{what}: a leaf tensor that requires grad cannot be changed in place "
                "while gradients are recorded; update a weight under autodiff.no_grad() "
                f"(as an optimizer does), or {instead} for a new tensor")
        result = compute(self._old_self())
        self._write(what, operand, lambda out: np.copyto(out, result.data, casting="same_kind"))
        if result.dtype != self.dtype:  # float32 x += float64 y: x keeps its dtype
            result = result.to(self.dtype)
        node = result.grad_fn
        if isinstance(node, Node):
            node._out = weakref.ref(self)
            node.recorded_at = InPlace.count  # after _write's bump: its rules read x's new values
        self.grad_fn, self.requires_grad = node, node is not None
        InPlace.rebind(self)
        return self

    def _write(self, symbol: str, operand: Tensor | None,
               write: Callable[[np.ndarray], object]) -> None:
        """Write an in-place op's result (of ``self <symbol> operand``) into this tensor's own
        array (it must keep the shape and dtype) and bump the version."""
        if not self.data.flags.writeable:  # a read-only array (from_numpy of one) is copied
            self.data = self.data.copy()
        try:
            write(self.data)
        except TypeError:  # NumPy's casting error
            dtype = self.dtype if operand is None else np.result_type(self.data, operand.data)
            raise TypeError(f"{symbol}: a result of dtype {dtype} cannot be written into this "
                            f"tensor's {self.dtype}") from None
        except ValueError:
            shape = () if operand is None else operand.shape
            raise ShapeError(f"{symbol}: cannot update a tensor of shape {self.shape} in place "
                             f"with one of shape {shape} (the result must keep the "
                             "tensor's shape)") from None
        InPlace.bump(self)

    def _old_self(self) -> Tensor:
        """A tensor of this one's current values and node, standing in for it in the graph
        before an in-place change (its node now makes this tensor)."""
        old = Tensor._wrap(self.data.copy())
        old.requires_grad, old.grad_fn, old.name = self.requires_grad, self.grad_fn, self.name
        if isinstance(self.grad_fn, Node):
            self.grad_fn._out = weakref.ref(old)
        return old

    def __matmul__(self, other: Operand) -> Tensor:
        return apply(ops.MATMUL, self, self._operand(other, "matmul"))

    def __rmatmul__(self, other: Operand) -> Tensor:
        return apply(ops.MATMUL, self._operand(other, "matmul"), self)

    def matmul(self, other: Operand) -> Tensor:
        """Matrix product as np.matmul: 1-D operands are a row/column, ≥3-D ones batches."""
        return self @ other

    def mm(self, other: Operand) -> Tensor:
        """Matrix product of two 2-D tensors (as torch.mm)."""
        other = self._operand(other, "mm")
        if self.ndim != 2 or other.ndim != 2:
            raise ShapeError(f"mm: expected two 2-D tensors, got {self.shape} and {other.shape}")
        return self @ other

    # ------------------------------------------------------------ comparisons (no gradient)
    def __lt__(self, other: Operand) -> Tensor:
        return binary(constant, ops.LT, self, self._operand(other, "lt"))

    def __le__(self, other: Operand) -> Tensor:
        return binary(constant, ops.LE, self, self._operand(other, "le"))

    def __gt__(self, other: Operand) -> Tensor:
        return binary(constant, ops.GT, self, self._operand(other, "gt"))

    def __ge__(self, other: Operand) -> Tensor:
        return binary(constant, ops.GE, self, self._operand(other, "ge"))

    def __eq__(self, other: Operand) -> Tensor:  # type: ignore[override]
        return binary(constant, ops.EQ, self, self._operand(other, "eq"))

    def __ne__(self, other: Operand) -> Tensor:  # type: ignore[override]
        return binary(constant, ops.NE, self, self._operand(other, "ne"))

    def sign(self) -> Tensor:
        """-1, 0 or 1 per element; piecewise constant, so no gradient flows through it."""
        return apply(ops.SIGN, self)

    # ------------------------------------------------------------ elementwise
    def exp(self) -> Tensor:
        return apply(ops.EXP, self)

    def log(self) -> Tensor:
        return apply(ops.LOG, self)

    def sqrt(self) -> Tensor:
        return apply(ops.SQRT, self)

    def abs(self) -> Tensor:
        return apply(ops.ABS, self)

    def relu(self) -> Tensor:
        return apply(ops.RELU, self)

    def sigmoid(self) -> Tensor:
        return apply(ops.SIGMOID, self)

    def tanh(self) -> Tensor:
        return apply(ops.TANH, self)

    def sin(self) -> Tensor:
        return apply(ops.SIN, self)

    def cos(self) -> Tensor:
        return apply(ops.COS, self)

    def to(self, *args: Any, dtype: DTypeLike | None = None, device: Any = None,
           **ignored: Any) -> Tensor:
        """This tensor in another dtype (as ``.to(dtype)`` in PyTorch): itself if it has that
        dtype already; its gradient flows back in its own dtype. To an integer or bool dtype it is
        a constant (no gradient), as in PyTorch. A device ("cpu", ``autodiff.device("cpu")``) is
        accepted, positionally or as ``device=``, and another tensor stands for its dtype;
        ``non_blocking=`` and ``copy=`` are accepted and change nothing."""
        for arg in args:
            if isinstance(arg, (str, Device)):
                check_device(arg)
            elif isinstance(arg, Tensor):
                dtype = arg.dtype
            else:
                dtype = arg
        if device is not None:
            check_device(device)
        if dtype is None:
            return self
        target = np.dtype(dtype)
        if target == self.dtype:
            return self
        if target.kind not in "biuf":
            raise TypeError(f"to: expected a bool, integer or floating dtype, got {target}")
        if target.kind != "f":
            return constant(ops.CAST, self, dtype=target)
        return apply(ops.TO, self, dtype=target)

    def type(self, dtype: DTypeLike | None = None) -> Tensor | str:
        """``.to(dtype)``; with no dtype, the name of this tensor's dtype (as PyTorch's)."""
        return str(self.dtype) if dtype is None else self.to(dtype)

    def double(self) -> Tensor:
        """This tensor in float64 (``.to(autodiff.float64)``)."""
        return self.to(np.float64)

    def clamp(self, min: float | None = None, max: float | None = None) -> Tensor:
        """Limit each element to [min, max]; at least one bound is needed."""
        if min is None and max is None:
            raise ValueError("clamp: give min, max or both")
        for bound, value in (("min", min), ("max", max)):
            if value is not None and (not isinstance(value, (int, float, np.integer, np.floating))
                                      or isinstance(value, bool)):
                raise TypeError(f"clamp: {bound} must be a number, got {type(value).__name__} "
                                "(for a tensor bound use autodiff.where(x < m, m, x))")
        return apply(ops.CLAMP, self, min=min, max=max)

    # ------------------------------------------------------------ reductions
    def sum(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        return apply(ops.SUM, self, dim=reduced_dims("sum", self.shape, dim), keepdim=keepdim)

    def mean(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        dims = reduced_dims("mean", self.shape, dim)
        return apply(ops.SUM, self, dim=dims, keepdim=keepdim) / self._count(dims)

    def _count(self, dims: tuple[int, ...] | None) -> int:
        """How many elements a reduction over `dims` (None: all) takes into each result."""
        return self.data.size if dims is None else int(np.prod([self.shape[d] for d in dims]))

    def _refuse_empty(self, op_name: str, dims: tuple[int, ...] | None, dim: Any) -> None:
        """A max, min or arg-extremum over a dim of size 0 has no answer (as in PyTorch)."""
        if any(self.shape[d] == 0 for d in (range(self.ndim) if dims is None else dims)):
            raise ShapeError(f"{op_name}: cannot reduce over a dim of size 0 (shape "
                             f"{self.shape}, dim {dim})")

    def max(self, dim: int | Tensor | None = None, keepdim: bool = False) -> Any:
        """The largest value; with an int `dim`, ``(values, indices)`` along it (a named tuple,
        as torch.max); with a tensor, the elementwise maximum (as torch.max(a, b))."""
        return self._extremum(ops.MAX, ops.ARGMAX, dim, keepdim)

    def min(self, dim: int | Tensor | None = None, keepdim: bool = False) -> Any:
        """The smallest value; with an int `dim`, ``(values, indices)`` (as torch.min)."""
        return self._extremum(ops.MIN, ops.ARGMIN, dim, keepdim)

    def amax(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """The largest values over `dim` (an int or a tuple; values only, as torch.amax)."""
        return self._reduce_extremum(ops.MAX, dim, keepdim)

    def amin(self, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """The smallest values over `dim` (an int or a tuple; values only, as torch.amin)."""
        return self._reduce_extremum(ops.MIN, dim, keepdim)

    def argmax(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        """The index of the largest value (the first, on ties), over the flattened tensor or
        along `dim`; an int64 tensor, no gradient (as torch.argmax)."""
        return self._arg_extremum(ops.ARGMAX, dim, keepdim)

    def argmin(self, dim: int | None = None, keepdim: bool = False) -> Tensor:
        """The index of the smallest value (the first, on ties), as torch.argmin."""
        return self._arg_extremum(ops.ARGMIN, dim, keepdim)

    def _extremum(self, op: ops.Op, arg_op: ops.Op, dim: int | Tensor | None,
                  keepdim: bool) -> Any:
        if isinstance(dim, Tensor):
            return (maximum if op is ops.MAX else minimum)(self, dim)
        if dim is None:
            return self._reduce_extremum(op, None, keepdim)
        if isinstance(dim, (tuple, list)):
            raise TypeError(f"{op.name}: dim must be a single int (PyTorch's {op.name} takes "
                            f"one); for several dims use a{op.name}(dim={tuple(dim)})")
        d = normalize_dim(op.name, self.shape, dim)
        indices = self._arg_extremum(arg_op, d, keepdim=True)
        values = self.gather(d, indices)  # the gradient goes to that element, as in PyTorch
        if not keepdim:
            values, indices = values.squeeze(d), indices.squeeze(d)
        return ValuesIndices(values, indices)

    def _reduce_extremum(self, op: ops.Op, dim: Dims, keepdim: bool) -> Tensor:
        dims = reduced_dims(op.name, self.shape, dim)
        self._refuse_empty(op.name, dims, dim)
        return apply(op, self, dim=dims, keepdim=keepdim)

    def _arg_extremum(self, op: ops.Op, dim: int | None, keepdim: bool) -> Tensor:
        axis = None if dim is None else normalize_dim(op.name, self.shape, dim)
        self._refuse_empty(op.name, None if axis is None else (axis,), dim)
        return constant(op, self, dim=axis, keepdim=keepdim)

    def var(self, dim: Dims = None, unbiased: bool = True, keepdim: bool = False, *,
            correction: int | None = None) -> Tensor:
        """Σ (x − mean)² / (n − correction) over `dim`; correction is 1 unless told (Bessel's,
        PyTorch's default, where NumPy's var divides by n)."""
        dims = reduced_dims("var", self.shape, dim)
        c = (1 if unbiased else 0) if correction is None else correction
        centred = self - self.mean(dims, keepdim=True)
        return (centred * centred).sum(dims, keepdim) / max(self._count(dims) - c, 0)

    def std(self, dim: Dims = None, unbiased: bool = True, keepdim: bool = False, *,
            correction: int | None = None) -> Tensor:
        """√var (Bessel's correction by default, as PyTorch)."""
        return self.var(dim, unbiased, keepdim, correction=correction).sqrt()

    def norm(self, p: float | str = 2, dim: Dims = None, keepdim: bool = False) -> Tensor:
        """The p-norm over `dim` (all elements by default): p = 2 ("fro"), 1, or any p > 0."""
        if p in (2, "fro"):
            squares = (self * self).sum(dim, keepdim)
            # at the zero vector the gradient is 0, as PyTorch's (√ has none at 0): the square
            # root is taken of 1 there, and `where` passes it no gradient
            nonzero = squares > 0
            return where(nonzero, where(nonzero, squares, 1.0).sqrt(), 0.0)
        if p == 1:
            return self.abs().sum(dim, keepdim)
        if isinstance(p, str) or not p > 0:
            raise ValueError(f"norm: p must be a positive number or 'fro', got {p!r}")
        return (self.abs() ** p).sum(dim, keepdim) ** (1 / p)

    def allclose(self, other: Operand, rtol: float = 1e-05, atol: float = 1e-08,
                 equal_nan: bool = False) -> bool:
        """Whether every element is close to other's (as torch.allclose)."""
        return bool(np.allclose(self.data, np.asarray(other), rtol=rtol, atol=atol,
                                equal_nan=equal_nan))

    def equal(self, other: Operand) -> bool:
        """Whether the shapes and every element are equal (as torch.equal)."""
        return self.shape == np.shape(other) and bool(np.array_equal(self.data, np.asarray(other)))

    def softmax(self, dim: int) -> Tensor:
        return apply(ops.SOFTMAX, self, dim=normalize_dim("softmax", self.shape, dim))

    def log_softmax(self, dim: int) -> Tensor:
        return apply(ops.LOG_SOFTMAX, self, dim=normalize_dim("log_softmax", self.shape, dim))

    # ------------------------------------------------------------ shape
    def reshape(self, *shape: int | Sequence[int]) -> Tensor:
        shape = _unpack(shape)
        return apply(ops.RESHAPE, self, shape=shape)

    view = reshape  # NumPy reshapes copy when they must, so view never fails on layout

    def permute(self, *dims: int | Sequence[int]) -> Tensor:
        order = _unpack(dims)
        if sorted(normalize_dims("permute", self.shape, order) or ()) != list(range(self.ndim)):
            raise ShapeError(f"permute: {order} is not a permutation of the {self.ndim} dims "
                             f"of shape {self.shape}")
        return apply(ops.PERMUTE, self, dims=tuple(int(d) % self.ndim for d in order))

    def transpose(self, dim0: int, dim1: int) -> Tensor:
        dims = list(range(self.ndim))
        d0, d1 = (normalize_dim("transpose", self.shape, d) for d in (dim0, dim1))
        dims[d0], dims[d1] = d1, d0
        return apply(ops.PERMUTE, self, dims=tuple(dims))

    swapaxes = transpose

    @property
    def T(self) -> Tensor:
        """All dims reversed (the transpose of a matrix)."""
        return apply(ops.PERMUTE, self, dims=tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> Tensor:
        """The last two dims swapped (a batch of transposed matrices)."""
        if self.ndim < 2:
            raise ShapeError(f"mT: needs at least 2 dims, got shape {self.shape}")
        return self.transpose(-2, -1)

    def unsqueeze(self, dim: int) -> Tensor:
        """Insert a dim of size 1 at `dim` (in [-ndim-1, ndim])."""
        d = normalize_dim("unsqueeze", self.shape + (1,), dim)
        return self.reshape(self.shape[:d] + (1,) + self.shape[d:])

    def squeeze(self, dim: Dims = None) -> Tensor:
        """Drop dims of size 1 (all, or those in `dim` that have size 1, as PyTorch)."""
        dims = normalize_dims("squeeze", self.shape, dim)
        keep = [n for i, n in enumerate(self.shape)
                if n != 1 or (dims is not None and i not in dims)]
        return self.reshape(tuple(keep))

    def broadcast_to(self, *shape: int | Sequence[int]) -> Tensor:
        """This tensor repeated along new or size-1 dims (as torch.broadcast_to; read-only)."""
        sizes = _unpack(shape)
        if not all(isinstance(n, (int, np.integer)) and not isinstance(n, bool) for n in sizes):
            raise TypeError(f"broadcast_to: the shape must be ints, got {sizes!r}")
        return apply(ops.BROADCAST_TO, self, shape=tuple(int(n) for n in sizes))

    def t(self) -> Tensor:
        """The transpose of a matrix (a 0-d or 1-D tensor is itself), as PyTorch's t()."""
        if self.ndim > 2:
            raise ShapeError(f"t: expects a tensor of at most 2 dims, got shape {self.shape} "
                             "(use transpose(dim0, dim1) or .mT)")
        return self.T

    def flatten(self, start_dim: int = 0, end_dim: int = -1) -> Tensor:
        """Dims start_dim..end_dim joined into one."""
        if self.ndim == 0:
            return self.reshape(1)
        first, last = (normalize_dim("flatten", self.shape, d) for d in (start_dim, end_dim))
        if first > last:
            raise ShapeError(f"flatten: start_dim {start_dim} comes after end_dim {end_dim} "
                             f"for shape {self.shape}")
        joined = int(np.prod(self.shape[first:last + 1]))
        return self.reshape(self.shape[:first] + (joined,) + self.shape[last + 1:])

    def expand(self, *sizes: int | Sequence[int]) -> Tensor:
        """broadcast_to, where -1 keeps a dim's size (as PyTorch's expand)."""
        wanted = _unpack(sizes)
        lead = len(wanted) - self.ndim
        shape = tuple(self.shape[i - lead] if n == -1 and i >= lead else n
                      for i, n in enumerate(wanted))
        return self.broadcast_to(shape)

    def repeat(self, *sizes: int | Sequence[int]) -> Tensor:
        """The tensor tiled `sizes` times along each dim (as PyTorch's repeat, NumPy's tile)."""
        reps = _unpack(sizes)
        if len(reps) < self.ndim:
            raise ShapeError(f"repeat: give at least {self.ndim} repeats for shape {self.shape},"
                             f" got {reps}")
        x = self.reshape((1,) * (len(reps) - self.ndim) + self.shape)
        # each dim n becomes (r, n), broadcast, then joined: r copies of the whole dim
        spread = tuple(k for n in x.shape for k in (1, n))
        tiled = tuple(k for r, n in zip(reps, x.shape) for k in (r, n))
        return x.reshape(spread).broadcast_to(tiled).reshape(
            tuple(r * n for r, n in zip(reps, x.shape)))

    def gather(self, dim: int, index: Operand) -> Tensor:
        """``out[i][j] = self[i][index[i][j]]`` for dim 1 (and so on for any dim), as torch.gather;
        the gradient goes back to the gathered elements."""
        d = normalize_dim("gather", self.shape, dim)
        picks = index if isinstance(index, Tensor) else Tensor(index)
        if picks.dtype.kind not in "iu" or picks.ndim != self.ndim:
            raise ShapeError(f"gather: index must be an integer tensor with as many dims as the "
                             f"input {self.shape}, got {picks.shape} of {picks.dtype}")
        where: list[Any] = list(np.indices(picks.shape, sparse=True))
        where[d] = picks
        return self[tuple(where)]

    def __getitem__(self, index: Any) -> Tensor:
        return apply(ops.INDEX, self, index=_as_index(index))

    def __setitem__(self, index: Any, value: Operand) -> None:
        """``t[index] = v`` in place, as PyTorch (recorded where it must be: the gradient goes to
        v where it was written and to the old t elsewhere)."""
        where = _as_index(index)
        v = self._operand(value, "index_put")

        def put(before: Tensor) -> Tensor:
            written = ops.index_add_forward(np.ones(before.data[where].shape), self.shape, where)
            if written.max(initial=0) > 1:  # only the last write stays: v's gradient is ill-posed
                raise ValueError(f"index_put: the index names an element of shape {self.shape} "
                                 "more than once; while recording, write each element once")
            return apply(ops.INDEX_PUT, before, v, index=where)

        self._in_place("index_put", v, lambda out: out.__setitem__(where, v.data), put,
                       "make a new tensor with autodiff.where(mask, v, t) or autodiff.cat")

    def __floordiv__(self, other: Operand) -> Tensor:
        return self._no_gradient("//", ops.FLOOR_DIVIDE, self, self._operand(other, "//"))

    def __rfloordiv__(self, other: Operand) -> Tensor:
        return self._no_gradient("//", ops.FLOOR_DIVIDE, self._operand(other, "//"), self)

    def __mod__(self, other: Operand) -> Tensor:
        return self._no_gradient("%", ops.REMAINDER, self, self._operand(other, "%"))

    def __rmod__(self, other: Operand) -> Tensor:
        return self._no_gradient("%", ops.REMAINDER, self._operand(other, "%"), self)

    @staticmethod
    def _no_gradient(symbol: str, op: ops.Op, a: Tensor, b: Tensor) -> Tensor:
        """// and % on values: piecewise, and given no gradient here; refused where a gradient
        would be recorded, never a silent zero."""
        if GradMode.enabled and (a.requires_grad or b.requires_grad):
            raise RuntimeError(f"{symbol}: no gradient is defined for it here; apply it to "
                               "values (under autodiff.no_grad() or on t.detach())")
        return binary(constant, op, a, b)

    def __format__(self, spec: str) -> str:
        """f"{t:.3f}" formats the number of a one-element tensor, as PyTorch's."""
        if self.data.size == 1:
            return format(self.data.item(), spec)
        if spec:
            raise TypeError(f"format: a format spec ({spec!r}) needs a one-element tensor, got "
                            f"shape {self.shape}")
        return str(self)

    def long(self) -> Tensor:
        """This tensor in int64 (a constant, as PyTorch's .long())."""
        return self.to(np.int64)

    def float(self) -> Tensor:  # last in the class: the name would hide the builtin above
        """This tensor in float32 (``.to(autodiff.float32)``, as PyTorch's ``.float()``)."""
        return self.to(np.float32)

    def int(self) -> Tensor:  # likewise
        """This tensor in int32 (a constant, as PyTorch's .int())."""
        return self.to(np.int32)


class Size(int):
    """``t.size``: the number of elements (NumPy's meaning) that can also be called as
    PyTorch's ``t.size()`` (the shape) and ``t.size(dim)`` (one dim's length)."""

    shape: tuple[int, ...]

    def __new__(cls, count: int, shape: tuple[int, ...]) -> Size:
        size = super().__new__(cls, count)
        size.shape = shape
        return size

    def __call__(self, dim: int | None = None) -> Any:
        if dim is None:
            return self.shape
        return self.shape[normalize_dim("size", self.shape, dim)]


@functools.lru_cache(maxsize=256)
def _number(value: float, dtype: np.dtype) -> Tensor:
    """The constant tensor of a nonzero Python number in a floating dtype, made once: ``x * 2``
    in a loop wraps 2 once (numbers equal as keys, 1 and 1.0, give equal arrays). Its array is
    read-only, so no one can change it under the ops that share it."""
    data = np.asarray(value, dtype=dtype)
    data.flags.writeable = False
    return Tensor._wrap(data)


def _unpack(sizes: tuple[Any, ...]) -> tuple[Any, ...]:
    """reshape(2, 3) and reshape((2, 3)) both mean (2, 3), as in PyTorch."""
    return tuple(sizes[0]) if len(sizes) == 1 and isinstance(sizes[0], (tuple, list)) else sizes


def _as_index(index: Any) -> Any:
    """Tensors, lists and arrays in an index become arrays of their own (so repeated indices
    can be accumulated, and editing the caller's array later cannot move the gradient)."""
    def convert(part: Any) -> Any:
        source = part  # a trace reads the index from here at each replay (see compile)
        if isinstance(part, Tensor):
            part = part.data.copy()
        elif isinstance(part, (list, np.ndarray)):
            part = np.array(part)
            if part.size == 0:
                part = part.astype(np.intp)  # [] selects nothing, as in NumPy and PyTorch
        if GradMode.tracing and isinstance(source, (Tensor, np.ndarray)):
            GradMode.index_sources[id(part)] = source
        if isinstance(part, np.ndarray) and part.dtype.kind in "biu" or \
                part is None or part is Ellipsis or isinstance(part, (int, np.integer, slice)):
            return part
        raise TypeError(f"index: expected ints, slices, ..., None, or integer or boolean "
                        f"arrays, got {part!r:.60} ({type(part).__name__})")

    return tuple(convert(p) for p in index) if isinstance(index, tuple) else convert(index)


def zero_grads(tensors: Iterable[Tensor], set_to_none: bool = True) -> None:
    """Clear each tensor's gradient: set it to None, or (``set_to_none=False``) zero it in
    place (what ``Module.zero_grad`` and ``Optimizer.zero_grad`` do)."""
    for t in tensors:
        if set_to_none:
            t.grad = None
        elif t.grad is not None:
            t.grad.zero_()


def where(condition: Operand, a: Operand, b: Operand) -> Tensor:
    """Elementwise `a` where `condition` holds, else `b` (broadcasting); gradients reach a and b."""
    a, b = _pair("where", a, b)
    condition = condition if isinstance(condition, Tensor) else Tensor(condition)
    if condition.dtype != np.bool_:
        raise TypeError(f"where: the condition must be boolean, got dtype {condition.dtype}")
    return apply(ops.WHERE, condition, a, b)


def maximum(a: Operand, b: Operand) -> Tensor:
    """The larger of a and b, elementwise (broadcasting); where they tie, each gets half the
    gradient (as max), where PyTorch sends it all to one."""
    return apply(ops.MAXIMUM, *_pair("maximum", a, b))


def minimum(a: Operand, b: Operand) -> Tensor:
    """The smaller of a and b, elementwise (broadcasting); ties share the gradient (as min)."""
    return apply(ops.MINIMUM, *_pair("minimum", a, b))


def cat(tensors: Sequence[Operand], dim: int = 0) -> Tensor:
    """The tensors joined along an existing dim (as torch.cat); the other dims must match."""
    parts = _tensor_list("cat", tensors)
    return apply(ops.CAT, *parts, dim=normalize_dim("cat", parts[0].shape, dim))


def stack(tensors: Sequence[Operand], dim: int = 0) -> Tensor:
    """The tensors, all of one shape, joined along a new dim (as torch.stack)."""
    parts = _tensor_list("stack", tensors)
    return apply(ops.STACK, *parts, dim=normalize_dim("stack", parts[0].shape + (1,), dim))


def _tensor_list(op_name: str, tensors: Sequence[Operand]) -> list[Tensor]:
    """A non-empty list or tuple of tensors (arrays and numbers become tensors)."""
    if not isinstance(tensors, (list, tuple)) or not tensors:
        raise TypeError(f"{op_name}: expected a non-empty list or tuple of tensors, got "
                        f"{tensors!r:.60}")
    return [t if isinstance(t, Tensor) else Tensor(t) for t in tensors]


def _pair(op_name: str, a: Operand, b: Operand) -> tuple[Tensor, Tensor]:
    """Two operands as Tensors, promoted as PyTorch does; a Python number takes the other one's
    float dtype."""
    if isinstance(a, Tensor):
        first, second = a, a._operand(b, op_name)
    elif isinstance(b, Tensor):
        first, second = b._operand(a, op_name), b
    else:
        first = Tensor(a)
        second = first._operand(b, op_name)
    return promoted(first, second) if first.dtype != second.dtype else (first, second)


def tensor(data: ArrayLike, requires_grad: bool = False, dtype: DTypeLike | None = None,
           name: str | None = None, device: Any = None) -> Tensor:
    """Make a Tensor of a copy of `data` (as torch.tensor; `from_numpy` shares an array)."""
    check_device(device)
    return Tensor(data, requires_grad=requires_grad, dtype=dtype, name=name)


def _record_on_tensors(op: ops.Op, *args: Any, **params: Any) -> Tensor:
    """How ``prim.NAME`` runs a primitive when a rule computes with Tensors: arrays and Python
    numbers among the arguments become constants (numbers take the first tensor's float dtype)."""
    tensors = [a for a in args if isinstance(a, Tensor)]
    first = next((t for t in tensors if t.dtype.kind == "f"), tensors[0])
    return apply(op, *[first._operand(a, op.name) for a in args], **params)


Dispatch.connect(Tensor, _record_on_tensors)
