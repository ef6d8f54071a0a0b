"""The function transforms of ``torch.autograd.functional``: vjp, jvp, jacobian, hessian, hvp.

Same signatures and semantics: a Tensor in gives a Tensor out, a tuple in gives a tuple out (a
tuple of tuples for the Jacobian of several outputs by several inputs). `jvp` runs forward mode
(one pass, tangents beside the values); `vjp` runs reverse mode (one backward pass). `jacobian`
builds the whole matrix either way: one VJP per output element (``"reverse-mode"``) or one JVP
per input element (``"forward-mode"``). `hvp` is forward-over-reverse: the tangent of the
gradient, that is one forward pass through a recorded backward pass.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from autodiff.backward import grad
from autodiff.forward import forward_mode, tangent_of
from autodiff.graph import set_modes
from autodiff.tensor import Tensor, stack

Func = Callable[..., Any]  # tensors in, a Tensor or a tuple of Tensors out
Tensors = Tensor | tuple[Tensor, ...]


def vjp(func: Func, inputs: Tensors, v: Tensors | None = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Tensors, Tensors]:
    """(func(inputs), vᵀ J): the vector-Jacobian product, by reverse mode."""
    xs, inputs_tuple = _tensors("vjp", "inputs", inputs)
    xs = _leaves(xs, create_graph)
    with set_modes(enabled=True):
        outs, outputs_tuple = _tensors("vjp", "the outputs of func", func(*xs))
    vs = _vectors("vjp", "v", v, outs)
    products = _reverse(outs, xs, vs, create_graph, strict, "vjp")
    return _pack(_results(outs, create_graph), outputs_tuple), _pack(products, inputs_tuple)


def jvp(func: Func, inputs: Tensors, v: Tensors | None = None, create_graph: bool = False,
        strict: bool = False) -> tuple[Tensors, Tensors]:
    """(func(inputs), J v): the Jacobian-vector product, by forward mode (no graph is built)."""
    xs, inputs_tuple = _tensors("jvp", "inputs", inputs)
    xs = _leaves(xs, create_graph, requires_grad=create_graph)
    vs = _vectors("jvp", "v", v, xs)
    outs, outputs_tuple, products = _forward(func, xs, vs, create_graph, strict, "jvp")
    return _pack(_results(outs, create_graph), outputs_tuple), _pack(products, outputs_tuple)


def jacobian(func: Func, inputs: Tensors, create_graph: bool = False, strict: bool = False,
             strategy: str = "reverse-mode") -> Any:
    """d func / d inputs: for output i and input j a Tensor of shape out_i.shape + in_j.shape,
    built with one VJP per output element or one JVP per input element."""
    if strategy not in ("reverse-mode", "forward-mode"):
        raise ValueError(f"jacobian: strategy must be 'reverse-mode' or 'forward-mode', got "
                         f"{strategy!r}")
    xs, inputs_tuple = _tensors("jacobian", "inputs", inputs)
    xs = _leaves(xs, create_graph)
    if strategy == "reverse-mode":
        blocks, outputs_tuple = _jacobian_by_rows(func, xs, create_graph, strict)
    else:
        blocks, outputs_tuple = _jacobian_by_columns(func, xs, create_graph, strict)
    rows = [_pack(row, inputs_tuple) for row in blocks]
    return _pack(rows, outputs_tuple)


def hessian(func: Func, inputs: Tensors, create_graph: bool = False,
            strict: bool = False) -> Any:
    """The second derivatives of a function with one output element: the Jacobian, in forward
    mode, of its gradient (forward-over-reverse)."""
    xs, inputs_tuple = _tensors("hessian", "inputs", inputs)

    def gradient(*values: Tensor) -> Tensors:
        return _pack(_gradient("hessian", func, values, strict), inputs_tuple)

    return jacobian(gradient, _pack(xs, inputs_tuple), create_graph, strict, "forward-mode")


def hvp(func: Func, inputs: Tensors, v: Tensors, create_graph: bool = False,
        strict: bool = False) -> tuple[Tensor, Tensors]:
    """(func(inputs), H v) for a function with one output element: the tangent, along v, of its
    gradient (forward-over-reverse: one forward pass through a recorded backward pass)."""
    xs, inputs_tuple = _tensors("hvp", "inputs", inputs)
    xs = _leaves(xs, create_graph)
    vs = _vectors("hvp", "v", v, xs)
    with forward_mode(dict(zip(xs, vs)), create_graph) as table:
        out = _scalar("hvp", func(*xs))
        grads = _reverse([out], xs, [None], create_graph=True, strict=strict, caller="hvp")
        products = [_as_tensor(tangent_of(table, g)) for g in grads]
    return _results([out], create_graph)[0], _pack(products, inputs_tuple)


# ---------------------------------------------------------------- the two modes
def _reverse(outs: list[Tensor], xs: list[Tensor], vs: list[Any], create_graph: bool,
             strict: bool, caller: str) -> list[Tensor]:
    """Σ_i v_iᵀ J_i for each input: one backward pass."""
    used = [(o, v) for o, v in zip(outs, vs) if o.requires_grad]
    found = grad([o for o, _ in used], xs, grad_outputs=[v for _, v in used],
                 retain_graph=True, create_graph=create_graph, allow_unused=True) if used \
        else (None,) * len(xs)
    return [_zeros_unless(g, x, strict, caller, i) for i, (g, x) in enumerate(zip(found, xs))]


def _forward(func: Func, xs: list[Tensor], vs: list[Any], create_graph: bool, strict: bool,
             caller: str) -> tuple[list[Tensor], bool, list[Tensor]]:
    """func's outputs and Σ_j J_j v_j for each output: one forward pass with tangents."""
    with forward_mode(dict(zip(xs, vs)), create_graph) as table:
        outs, outputs_tuple = _tensors(caller, "the outputs of func", func(*xs))
        if strict and (missing := [i for i, o in enumerate(outs) if o not in table]):
            raise RuntimeError(f"{caller}: output {missing[0]} of func does not depend on the "
                               "inputs (strict=True)")
        products = [_as_tensor(tangent_of(table, o)) for o in outs]
    return outs, outputs_tuple, products


def _jacobian_by_rows(func: Func, xs: list[Tensor], create_graph: bool,
                      strict: bool) -> tuple[list[list[Tensor]], bool]:
    """J[i][j] from one VJP per element of each output i."""
    with set_modes(enabled=True):
        outs, outputs_tuple = _tensors("jacobian", "the outputs of func", func(*xs))
    blocks = []
    for out in outs:
        rows: list[list[Tensor]] = [[] for _ in xs]
        for k in range(out.size):
            onehot = np.zeros(out.size, out.dtype)
            onehot[k] = 1
            products = _reverse([out], xs, [onehot.reshape(out.shape)], create_graph, strict,
                                "jacobian")
            for j, product in enumerate(products):
                rows[j].append(product)
        blocks.append([_stacked(r, out.shape + x.shape, x) for r, x in zip(rows, xs)])
    return blocks, outputs_tuple


def _jacobian_by_columns(func: Func, xs: list[Tensor], create_graph: bool,
                         strict: bool) -> tuple[list[list[Tensor]], bool]:
    """J[i][j] from one JVP per element of each input j."""
    columns: list[list[list[Tensor]]] = []  # [input j][element k][output i]
    outputs_tuple, shapes = False, []
    for j, x in enumerate(xs):
        per_element = []
        for k in range(x.size):
            vs = [np.zeros(other.shape, other.dtype) for other in xs]
            vs[j].reshape(-1)[k] = 1
            outs, outputs_tuple, products = _forward(func, xs, vs, create_graph, strict,
                                                     "jacobian")
            shapes = [o.shape for o in outs]
            per_element.append(products)
        columns.append(per_element)
    blocks = []
    for i, shape in enumerate(shapes):
        blocks.append([_moved(_stacked([col[i] for col in columns[j]], x.shape + shape, x),
                              x.ndim) for j, x in enumerate(xs)])
    return blocks, outputs_tuple


# ---------------------------------------------------------------- arguments and results
def _tensors(caller: str, what: str, value: Any) -> tuple[list[Tensor], bool]:
    """A Tensor or a tuple of Tensors as a list, and whether it was a tuple."""
    is_tuple = isinstance(value, tuple)
    items = list(value) if is_tuple else [value]
    if not items or not all(isinstance(t, Tensor) for t in items):
        raise TypeError(f"{caller}: {what} must be a Tensor or a tuple of Tensors, got "
                        f"{type(value).__name__}")
    return items, is_tuple


def _leaves(xs: list[Tensor], create_graph: bool, requires_grad: bool = True) -> list[Tensor]:
    """The inputs as func will see them: fresh leaves, or (create_graph) the inputs themselves
    passed through a reshape, so the results stay differentiable with respect to them."""
    for i, x in enumerate(xs):
        if x.dtype.kind != "f":
            raise TypeError(f"input {i} must be a floating tensor, got dtype {x.dtype}")
    if create_graph:
        return [x.reshape(x.shape) if x.requires_grad else
                Tensor(x.data, requires_grad=requires_grad) for x in xs]
    return [Tensor(x.data, requires_grad=requires_grad) for x in xs]


def _vectors(caller: str, name: str, v: Any, like: list[Tensor]) -> list[Any]:
    """v as one array (or Tensor) per tensor of `like`, each of its shape; None means ones, for a
    single one-element tensor only (as PyTorch)."""
    if v is None:
        if len(like) != 1 or like[0].size != 1:
            raise RuntimeError(f"{caller}: {name} can be left out only for a single tensor of "
                               "one element; give one vector per tensor")
        return [np.ones(like[0].shape, like[0].dtype)]
    vs = list(v) if isinstance(v, tuple) else [v]
    if len(vs) != len(like):
        raise RuntimeError(f"{caller}: got {len(vs)} tensors in {name} for {len(like)} tensors")
    for i, (u, t) in enumerate(zip(vs, like)):
        if np.shape(getattr(u, "data", u)) != t.shape:
            raise RuntimeError(f"{caller}: {name}[{i}] has shape "
                               f"{np.shape(getattr(u, 'data', u))}, expected {t.shape}")
    return [u if isinstance(u, Tensor) else np.asarray(u, dtype=t.dtype) for u, t in zip(vs, like)]


def _scalar(caller: str, out: Any) -> Tensor:
    if not isinstance(out, Tensor) or out.size != 1:
        raise RuntimeError(f"{caller}: func must return a Tensor of one element, got "
                           f"{getattr(out, 'shape', type(out).__name__)}")
    return out


def _gradient(caller: str, func: Func, xs: Sequence[Tensor], strict: bool) -> list[Tensor]:
    """d func / d xs, recorded (so it can be differentiated again)."""
    return _reverse([_scalar(caller, func(*xs))], list(xs), [None], create_graph=True,
                    strict=strict, caller=caller)


def _zeros_unless(g: Tensor | None, x: Tensor, strict: bool, caller: str, i: int) -> Tensor:
    if g is not None:
        return g
    if strict:
        raise RuntimeError(f"{caller}: the output of func does not depend on input {i} "
                           "(strict=True)")
    return Tensor._wrap(np.zeros(x.shape, x.dtype))


def _stacked(parts: list[Tensor], shape: tuple[int, ...], like: Tensor) -> Tensor:
    """Equal-shaped parts stacked and reshaped (recorded when they are, so create_graph holds)."""
    if any(p.requires_grad for p in parts):
        return stack(parts).reshape(shape)
    return Tensor._wrap(np.stack([p.data for p in parts]).reshape(shape).astype(like.dtype))


def _moved(t: Tensor, lead: int) -> Tensor:
    """Dims (input…, output…) reordered to (output…, input…)."""
    order = tuple(range(lead, t.ndim)) + tuple(range(lead))
    return t.permute(*order) if t.requires_grad else Tensor._wrap(np.transpose(t.data, order))


def _as_tensor(value: Any) -> Tensor:
    return value if isinstance(value, Tensor) else Tensor._wrap(np.asarray(value))


def _results(outs: list[Tensor], create_graph: bool) -> list[Tensor]:
    return outs if create_graph else [o.detach() for o in outs]


def _pack(items: list[Any], as_tuple: bool) -> Any:
    return tuple(items) if as_tuple else items[0]
