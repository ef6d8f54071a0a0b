"""Reverse mode: walk the graph from the outputs back to the leaves, applying each node's VJP.

The walker knows tensors only through the few fields it reads (``requires_grad``, ``grad_fn``,
``data``, ``_grad``) and nodes only through `graph.GradNode`; it makes new tensors with the
class of the ones it is given. So it sits below `autodiff.tensor`, which calls it.

The walk is iterative (no Python recursion, so a chain of 100,000 ops is fine) and in topological
order by consumer counting: a tensor's gradient is passed on only once every op that used it has
sent its share, and then it is dropped. Gradients are summed back to each input's shape here,
in one place, so no rule has to undo broadcasting.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from autodiff import anomaly
from autodiff.errors import ShapeError, as_numeric_array
from autodiff.graph import GradMode, freed_error, refuse_while_tracing
from autodiff.primitive import Dispatch, sum_to

Tensor = Any  # an autodiff.Tensor: this module sits below it and only reads its fields


def is_tensor(x: object) -> bool:
    return isinstance(x, Dispatch.tensor_type)  # type: ignore[arg-type]


RETAINED: dict[int, weakref.ref[Any]] = {}  # id -> the non-leaves whose .grad is kept


def retain(t: Tensor) -> None:
    """Keep t's gradient in its ``.grad`` at every backward through it (``t.retain_grad()``)."""
    key = id(t)
    RETAINED[key] = weakref.ref(t, lambda _: RETAINED.pop(key, None))


def _retained(t: Tensor) -> bool:
    ref = RETAINED.get(id(t))
    return ref is not None and ref() is t


def backward(root: Tensor, gradient: Any, *, retain_graph: bool, create_graph: bool) -> None:
    """``root.backward(...)`` (its defaults are there): accumulate into the ``.grad`` of every
    leaf that requires grad."""
    if GradMode.effects is not None:  # compile is tracing a whole step: it notes the effect
        GradMode.effects.backward(root, gradient, create_graph,
                                  lambda: _backward(root, None, retain_graph, False))
    else:
        _backward(root, gradient, retain_graph, create_graph)


def _backward(root: Tensor, gradient: Any, retain_graph: bool, create_graph: bool) -> None:
    seed = _seed("backward", root, gradient, create_graph)
    shortcut = not (create_graph or GradMode.observers or GradMode.detect_anomaly or RETAINED)
    if not (shortcut and _into_leaves(root, seed, retain_graph)):
        _walk([root], [seed], retain_graph or create_graph, create_graph, targets=None)


def _into_leaves(root: Tensor, seed: Any, retain: bool) -> bool:
    """The shortcut for a graph of one node whose inputs are distinct leaves (a compiled step,
    ``(x * w).sum()`` is not: two nodes): there is no order to work out, so its gradients go
    straight into the leaves, as the walk would put them. False, doing nothing, for any other
    graph."""
    node = root.grad_fn
    if node is None or node.inputs is None:
        return False
    inputs = node.inputs
    for t in inputs:
        if t.grad_fn is not None:
            return False
    if len(set(inputs)) < len(inputs):
        return False
    into_leaves(inputs, node.vjp(seed, False))
    if not retain:
        node.release()
    return True


def into_leaves(leaves: Sequence[Tensor], grads: list[Any]) -> None:
    """Accumulate each gradient (None: none) into its leaf's ``.grad``, as the walk does; where
    a rule handed one array to two leaves, each gets its own."""
    if len(grads) > 1 and _shares(grads):
        grads = _unshared(grads)
    for t, g in zip(leaves, grads):
        if g is not None and t.requires_grad:
            _accumulate_into_leaf(t, _fitted(g, t.data, False), False)


def grad(outputs: Tensor | Sequence[Tensor], inputs: Tensor | Sequence[Tensor],
         grad_outputs: Any = None, retain_graph: bool | None = None, create_graph: bool = False,
         allow_unused: bool = False) -> tuple[Tensor | None, ...]:
    """d(outputs)/d(inputs) · grad_outputs, as a tuple of Tensors; ``.grad`` is left untouched."""
    refuse_while_tracing("a gradient taken (autodiff.grad, a function transform)",
                         "differentiate the compiled function from outside, or run it uncompiled")
    outputs = _tensors("outputs", outputs)
    inputs = _tensors("inputs", inputs)
    if grad_outputs is None:
        grad_outputs = [None] * len(outputs)
    elif is_tensor(grad_outputs) or isinstance(grad_outputs, np.ndarray):
        grad_outputs = [grad_outputs]
    else:
        grad_outputs = list(grad_outputs)
    if len(grad_outputs) != len(outputs):
        raise RuntimeError(f"grad: got {len(outputs)} output tensor(s) and {len(grad_outputs)} "
                           "grad_outputs; give one gradient per output (None for an output of "
                           "one element)")
    seeds = [_seed("grad", out, g, create_graph) for out, g in zip(outputs, grad_outputs)]
    for i, t in enumerate(inputs):
        if not t.requires_grad:
            raise RuntimeError(f"grad: input {i} (shape {t.shape}) does not require grad")
    # the graph is kept when asked, and always for create_graph (a gradient of the gradient
    # walks it again); retain_graph=None is PyTorch's default of create_graph
    found = _walk(outputs, seeds, bool(retain_graph) or create_graph, create_graph,
                  targets=inputs)
    result = []
    for i, t in enumerate(inputs):
        g = found.get(t)
        if g is None and not allow_unused:
            raise RuntimeError(f"grad: input {i} (shape {t.shape}) was not used to compute the "
                               "outputs; pass allow_unused=True to get None for it")
        result.append(g if g is None or create_graph else type(t)._wrap(g))
    return tuple(result)


def _tensors(argument: str, value: Any) -> list[Tensor]:
    """A Tensor or a sequence of Tensors, as a list; anything else is a TypeError."""
    tensors = list(value) if isinstance(value, (list, tuple)) else [value]
    if not tensors or not all(is_tensor(t) for t in tensors):
        raise TypeError(f"grad: {argument} must be a Tensor or a non-empty sequence of Tensors, "
                        f"got {value!r:.80}")
    return tensors


def _seed(caller: str, root: Tensor, gradient: Any, create_graph: bool) -> Any:
    if not root.requires_grad:
        raise RuntimeError(f"{caller}: the tensor does not require grad and has no grad_fn (was it "
                           "computed under no_grad, or from tensors without requires_grad?)")
    if gradient is None:
        if root.data.size != 1:
            raise RuntimeError(f"{caller}: a gradient can be implied only for a tensor of one "
                               f"element; this one has shape {root.shape}: pass gradient=")
        g = np.empty(root.data.shape, root.data.dtype)
        g.fill(1)  # np.ones, without its Python wrapper (a third of this function's cost)
    else:
        if create_graph and is_tensor(gradient):
            g = gradient  # a recorded backward keeps the seed's own graph
        else:  # the user's array is copied: the walker may hand it to a leaf as its .grad
            g = np.array(as_numeric_array(f"{caller}: gradient", gradient), dtype=root.dtype)
        if g.shape != root.shape:
            raise ShapeError(f"{caller}: gradient of shape {g.shape} does not match the "
                             f"tensor's shape {root.shape}")
    return type(root)._wrap(g) if create_graph and not is_tensor(g) else g


def _count_consumers(roots: list[Tensor]) -> dict[Tensor, int]:
    """For each tensor needing a gradient, how many recorded op inputs it is (edges, not ops).

    Tensors are dict keys by identity (their hash is the object's; == is never called)."""
    pending: dict[Tensor, int] = {}
    stack = list({t: None for t in roots if t.requires_grad})  # a root given twice: once
    seen = set(stack)
    while stack:
        node = stack.pop().grad_fn
        if node is None:
            continue
        if node.inputs is None:
            raise freed_error(node)
        for t in node.inputs:
            if t.requires_grad:
                pending[t] = pending.get(t, 0) + 1
                if t not in seen:
                    seen.add(t)
                    stack.append(t)
    return pending


def _walk(roots: list[Tensor], seeds: list[Any], retain: bool, create_graph: bool,
          targets: list[Tensor] | None) -> dict[Tensor, Any]:
    """Backpropagate; accumulate into leaves, or (given targets) return {tensor: gradient}."""
    wanted = None if targets is None else set(targets)
    pending = _count_consumers(roots)
    grads: dict[Tensor, Any] = {}
    for root, seed in zip(roots, seeds):
        grads[root] = seed if root not in grads else grads[root] + seed
    ready = list({r: None for r in roots if pending.get(r, 0) == 0})
    found = {}
    observers, anomalies = GradMode.observers, GradMode.detect_anomaly
    recording, GradMode.enabled = GradMode.enabled, create_graph  # a recorded backward is a graph
    try:
        while ready:
            t = ready.pop()
            g = grads.pop(t)
            for observer in observers:
                observer.observe(t, g)
            if wanted is not None and t in wanted:
                found[t] = g
            node = t.grad_fn
            if wanted is None and node is None:
                _accumulate_into_leaf(t, g, create_graph)
            elif wanted is None and RETAINED and _retained(t):  # a copy: the walk passes g on
                _accumulate_into_leaf(t, g if create_graph else np.array(g), create_graph)
            if node is None:
                continue
            input_grads = node.vjp(g, create_graph)
            if anomalies:
                anomaly.check_backward(node, g, input_grads)
            _pass_on(node.inputs, input_grads, grads, pending, ready, create_graph)
            if not retain:
                node.release()
    finally:
        GradMode.enabled = recording
    return found


def _pass_on(inputs: tuple[Tensor, ...], input_grads: list[Any], grads: dict[Tensor, Any],
             pending: dict[Tensor, int], ready: list[Tensor], create_graph: bool) -> None:
    """Add each input's share to the gradient it has received so far (summed back to its shape,
    in its dtype); an input whose every consumer has sent its share is ready."""
    if len(input_grads) > 1 and not create_graph and _shares(input_grads):
        input_grads = _unshared(input_grads)
    for inp, g_inp in zip(inputs, input_grads):
        if not inp.requires_grad:
            continue
        if g_inp is not None:
            g_inp = _fitted(g_inp, inp.data, create_graph)
            grads[inp] = g_inp if inp not in grads else grads[inp] + g_inp
        pending[inp] -= 1
        if pending[inp] == 0 and inp in grads:
            ready.append(inp)


def _fitted(g: Any, data: np.ndarray, create_graph: bool) -> Any:
    """A rule's result summed back to its input's shape (undoing broadcasting), in its dtype."""
    if g.shape != data.shape:
        g = sum_to(g, data.shape)
    if not create_graph and g.dtype is not data.dtype and g.dtype != data.dtype:
        g = g.astype(data.dtype)
    return g


def _shares(grads: list[Any]) -> bool:
    """Whether a rule handed one array to two inputs (add passes g to both)."""
    if len(grads) == 2:  # the common case, checked without building a set
        return grads[0] is grads[1] and grads[0] is not None
    arrays = [id(g) for g in grads if g is not None]
    return len(set(arrays)) < len(arrays)


def _unshared(grads: list[Any]) -> list[Any]:
    """Copies where a rule handed one array to two inputs, so no two tensors hold the same one."""
    seen: set[int] = set()
    result = []
    for g in grads:
        if g is not None and id(g) in seen:
            g = g.copy()
        seen.add(id(g))
        result.append(g)
    return result


def _accumulate_into_leaf(t: Tensor, g: Any, create_graph: bool) -> None:
    """Add g into t.grad. Only an array that backward made itself is added into in place: a
    tensor the user assigned to .grad, or the seed, is never changed (a new one replaces it)."""
    current = t._grad
    if create_graph:  # g is a recorded Tensor, perhaps the user's seed: never add into it
        t._grad, t._grad_owned = (g if current is None else current + g), False
    elif current is None:
        # keep the array itself when the walker owns it alone: a fresh, writeable array
        # (a rule's result, never the user's seed); copy a view or a read-only one (g is in
        # t's dtype already: `_fitted`)
        owned = type(g) is np.ndarray and g.base is None and g.flags.writeable
        t._grad, t._grad_owned = type(t)._wrap(g if owned else np.array(g)), True
    elif t._grad_owned and current.data.flags.writeable:
        current.data += g
    else:
        t._grad, t._grad_owned = type(t)._wrap(current.data + g), True
