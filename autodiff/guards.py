"""The guard of a compiled program (`autodiff.compile`): what a call must share with the traced
one to replay its program, written out as Python source, as `torch.compile`'s guards are.

Grad mode; each Tensor argument's shape, dtype and requires_grad (also the tensors inside a
list, tuple or dict argument, as jax.jit takes a pytree's leaves); other arguments by value, or
by identity where they have no value to compare (a list, a function, a module); the captured
tensors' facts; and the names the function's own code reads from its closure and globals, still
bound to what they were when traced.
"""

from __future__ import annotations

import keyword
import math
import re
import types
from collections.abc import Callable
from typing import Any

from autodiff.graph import GradMode
from autodiff.tensor import Tensor


def guard_source(args: tuple[Any, ...], kwargs: dict[str, Any], captured: list[Tensor],
                 names: list[tuple[str, str, Any]], unread: set[str],
                 namespace: dict[str, Any], identity: set[str] | None = None,
                 extra: list[str] | None = None) -> list[str]:
    """The guard's source: what a call must share with the traced one to replay its program.
    Grad mode; Tensor arguments by shape, dtype and requires_grad; other arguments by value
    (unhashable ones by identity), a list, tuple or dict holding tensors part by part; the
    captured tensors by the same facts as arguments; the names fn reads from its closure and
    globals (`names_read`), still bound to what they were.

    An argument that fn also reaches by name (``step(w)`` where fn reads ``w`` too) is one slot
    in the trace, though fn reads it two ways: that program holds only while the same tensor
    is passed, so the guard asks for it by identity. So it does for a Tensor argument that no
    op read (`unread` slots), and for its array: fn used its values some other way (``.data``,
    NumPy), which the trace froze. The `identity` slots too (a whole step changes their state:
    a parameter it updates), and the `extra` conditions hold (a whole step's .grad states)."""
    checks = [f"GradMode.enabled is {GradMode.enabled}",
              f"len(args) == {len(args)}", f"len(kwargs) == {len(kwargs)}"]
    reachable = {id(t) for _, _, value in names for _, _, t in tensors_in(value)}
    for i, a in enumerate(args):
        checks += _checks(f"args[{i}]", a, f"arg{i}", namespace)
    first: dict[int, str] = {}  # id of a Tensor argument -> where it was first
    for slot, expression, _, t in tensor_arguments(args):
        if id(t) in first:  # traced as one slot, so it must be one tensor again
            checks.append(f"{expression} is {first[id(t)]}")
            continue
        first[id(t)] = expression
        if id(t) in reachable or slot in unread or slot in (identity or ()):
            checks.append(f"{expression} is {named(namespace, f'traced_{slot}', t)}")
        if slot in unread:  # and its array: a new one (t.data = ...) has new values
            checks.append(f"{expression}.data is {named(namespace, f'{slot}_data', t.data)}")
    for key, value in sorted(kwargs.items()):
        checks += _checks(f"kwargs.get({key!r}, missing)", value, f"kwarg_{key}", namespace)
    for i, t in enumerate(captured):  # the same objects every call: their facts may change
        checks += _checks(f"captured[{i}]", t, "", namespace)[1:]
    for expression, name, value in names:  # rebinding a name (a new tensor, a new lr) retraces;
        # the tensors it reaches were captured, so they must be the very same ones
        checks += _checks(expression, value, name, namespace, same_tensors=True)
    checks += extra or []
    return ["def guard(args, kwargs):", "    return (" + "\n            and ".join(checks) + ")"]


def tensor_arguments(args: tuple[Any, ...]) -> list[tuple[str, str, str, Tensor]]:
    """Every Tensor among the arguments, also inside their lists, tuples and dicts: its slot
    (``a1``, or ``a1_0`` for the first tensor inside argument 1), where it is in args
    (``args[1][0]``), that in words (``argument 1[0]``), the tensor. A tensor passed twice is
    listed twice: the trace gives it its first slot."""
    return [(f"a{i}" if t is a else f"a{i}_{k}", expression, words, t)
            for i, a in enumerate(args)
            for k, (expression, words, t) in enumerate(tensors_in(a, f"args[{i}]",
                                                                   f"argument {i}"))]


def _parts(value: Any) -> list[tuple[Any, Any]] | None:
    """The items of a list, tuple or dict (whose keys read as source: strings, numbers, tuples
    of them) that holds a Tensor somewhere: a trace takes those tensors as arguments, as jax.jit
    does a pytree's leaves. None for anything else."""
    if isinstance(value, dict) and all(literal(k) for k in value):
        parts = list(value.items())
    elif isinstance(value, (list, tuple)):
        parts = list(enumerate(value))
    else:
        return None
    return parts if any(tensors_in(part) for _, part in parts) else None


def tensors_in(value: Any, expression: str = "", words: str = "") -> list[tuple[str, str, Tensor]]:
    """The tensors of an argument (itself, or inside the lists, tuples and dicts it is made
    of): where each is (``args[1][0]``), that in words (``argument 1[0]``), the tensor."""
    if isinstance(value, Tensor):
        return [(expression, words, value)]
    parts = _parts(value) if isinstance(value, (list, tuple, dict)) else None
    return [found for key, part in parts or ()
            for found in tensors_in(part, f"{expression}[{key!r}]", f"{words}[{key!r}]")]


def names_read(fn: Callable[..., Any], namespace: dict[str, Any]) -> list[tuple[str, str, Any]]:
    """What fn's own code reads from its closure and its globals (not what the functions it calls
    read): (the expression by which the guard reads it again, its name, its value now)."""
    function = getattr(fn, "__func__", fn)  # a bound method's function
    code = getattr(function, "__code__", None)
    if code is None:  # a Module or another callable object: its attributes are not looked at
        return []
    names = []
    cells = named(namespace, "cells", function.__closure__ or ())
    for k, (name, cell) in enumerate(zip(code.co_freevars, function.__closure__ or ())):
        try:
            names.append((f"{cells}[{k}].cell_contents", name, cell.cell_contents))
        except ValueError:  # not bound yet: fn did not read it
            continue
    globals_ = named(namespace, "fn_globals", function.__globals__)
    names += [(f"{globals_}.get({name!r}, missing)", name, function.__globals__[name])
              for name in dict.fromkeys(_global_names(code)) if name in function.__globals__]
    return names


def _global_names(code: types.CodeType) -> list[str]:
    """The global names a code object reads, and those its lambdas, nested functions and
    comprehensions read (their code objects sit among its constants). A nested function's
    closure variables are the outer function's own, or pass through its free variables."""
    names = list(code.co_names)
    for constant in code.co_consts:
        if isinstance(constant, types.CodeType):
            names += _global_names(constant)
    return names


def _checks(expression: str, value: Any, name: str, namespace: dict[str, Any],
            same_tensors: bool = False) -> list[str]:
    """The conditions under which `expression` may stand for the traced `value`: a tensor's
    facts (or, with `same_tensors`, the tensor itself: one the trace captured, not read
    anew), a container's parts, another value's own self or (when hashable) an equal value."""
    if isinstance(value, Tensor) and same_tensors:
        return [f"{expression} is {named(namespace, name, value)}"]
    if isinstance(value, Tensor):
        dtype = named(namespace, value.dtype.name, value.dtype)
        return [f"isinstance({expression}, Tensor)", f"{expression}.data.shape == {value.shape}",
                f"{expression}.data.dtype == {dtype}",
                f"{expression}.requires_grad is {value.requires_grad}"]
    parts = _parts(value)
    if parts is not None:  # a list, tuple or dict holding tensors: the same shape, part by part
        kind = named(namespace, type(value).__name__, type(value))
        checks = [f"type({expression}) is {kind}", f"len({expression}) == {len(parts)}"]
        if isinstance(value, dict):
            checks.append(f"list({expression}) == {list(value)!r}")
        for key, part in parts:
            checks += _checks(f"{expression}[{key!r}]", part, f"{name}_{key}", namespace,
                              same_tensors)
        return checks
    name = named(namespace, name, value)
    if type(value).__eq__ is object.__eq__:  # type: ignore[comparison-overlap]
        # a function, a module, a Module: only itself equals it
        return [f"{expression} is {name}"]
    try:
        hash(value)
    except TypeError:  # a list, an array: it may change, so only itself will do
        return [f"{expression} is {name}"]
    kind = named(namespace, type(value).__name__, type(value))
    return [f"type({expression}) is {kind}", f"({expression} is {name} or {expression} == {name})"]


def literal(value: Any) -> bool:
    """Whether repr(value) is Python source for value: not for inf or nan (they read as names),
    nor for NumPy's scalars (``np.float64(0.1)`` is a float whose repr names the module)."""
    if type(value) is float:
        return math.isfinite(value)
    if value is None or type(value) in (bool, int, str):
        return True
    return isinstance(value, tuple) and all(literal(v) for v in value)


def named(namespace: dict[str, Any], name: str, value: Any) -> str:
    """The name the generated code knows `value` (a function, a dtype, a constant) by: `name`
    made an identifier, unless something else has it already."""
    name = re.sub(r"\W", "_", name)
    if not name.isidentifier() or keyword.iskeyword(name):
        name = f"v_{name}"
    while namespace.get(name, value) is not value:
        name += "_"
    namespace[name] = value
    return name
