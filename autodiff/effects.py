"""What a compiled training step does besides ops, noted while `autodiff.compile` traces it.

A whole training step (the forward, ``loss.backward()``, ``optimizer.step()``, ``zero_grad()``)
changes state that no op returns: the leaves' ``.grad``, parameters' arrays written in place,
an optimizer's per-parameter state. While a trace runs, ``GradMode.effects`` is an `Effects`,
and the code that makes those changes tells it before and after it acts (the walker, the
``.grad`` property, in-place methods, `Optimizer.step`). It notes one record per change, in
order with the ops (``at``: how many ops came before it), for `program.build` to write into the
program. It keeps what each change overwrote, so that a trace made only to be looked at
(``step.tape()``) is undone, and each parameter's values as last written by the engine, so that
a write behind its back (``w.data -= ...``), which a replay would skip, is refused.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from autodiff.graph import tensors_in_order

Tensor = Any  # an autodiff.Tensor: this module sits below it and only reads its fields


@dataclass
class Backward:
    """``root.backward()``: each leaf it reached accumulates its gradient into ``.grad``."""

    at: int
    root: Tensor
    leaves: list[Tensor]  # the leaves that require grad, in the order the walk found them
    fresh: list[bool]  # whether each one's .grad was None before it
    grads: list[Tensor | None]  # their .grad after it
    # whether the walker added into each one's .grad array in place (backward's own array,
    # writeable): a program may then do the same, guarded to find it so again
    in_place: list[bool] = field(default_factory=list)


@dataclass
class GradCleared:
    """``t.grad = None`` (``zero_grad()``)."""

    at: int
    tensor: Tensor


@dataclass
class Write:
    """An in-place op outside recording (``w -= lr * w.grad`` under no_grad, ``g.zero_()``):
    the target's array takes the values of `value`, which the traced ops computed."""

    at: int
    target: Tensor
    value: Tensor


@dataclass
class Update:
    """``optimizer.step()`` on one parameter: the optimizer's own update, run at replay on the
    parameter, its gradient, its group (read then: a learning rate set since) and its state."""

    at: int
    optimizer: Any
    group: int
    param: Tensor
    grad: Tensor


Record = Backward | GradCleared | Write | Update


class Saved:
    """A tensor's values and gradient, and an optimizer's state for it, as they were:
    `restore` puts them back, `difference` says how they differ from now (or None)."""

    def __init__(self, t: Tensor, optimizer: Any = None) -> None:
        self.t, self.optimizer = t, optimizer
        self.data, self.values = t.data, t.data.copy()
        self.grad, self.owned = t._grad, t._grad_owned
        self.grad_values = None if t._grad is None else t._grad.data.copy()
        state = optimizer.state.get(t) if optimizer is not None else None
        self.state = None if state is None else {
            key: value.copy() if isinstance(value, np.ndarray) else value
            for key, value in state.items()}

    def restore(self) -> None:
        t = self.t
        t.data = self.data
        if self.data.flags.writeable:
            np.copyto(self.data, self.values)
        t._grad, t._grad_owned = self.grad, self.owned
        if self.grad_values is not None and self.grad.data.flags.writeable:
            np.copyto(self.grad.data, self.grad_values)
        if self.optimizer is not None:
            if self.state is None:
                self.optimizer.state.pop(t, None)
            else:
                self.optimizer.state[t] = dict(self.state)

    def difference(self, same: Callable[[Any, Any], bool] | None = None) -> str | None:
        """What differs between the state saved and the tensor's now, in words, or None;
        `same` tells whether two values are the same (by default: bit for bit)."""
        same = same or identical
        t = self.t
        if not same(self.values, t.data):
            return "its values"
        if (self.grad_values is None) != (t._grad is None):
            return ".grad (None in one run only)"
        if t._grad is not None and not same(self.grad_values, t._grad.data):
            return "its .grad"
        if self.optimizer is not None:
            now = self.optimizer.state.get(t)
            if (now is None) != (self.state is None) or now is not None and (
                    now.keys() != self.state.keys() or  # type: ignore[union-attr]
                    not all(same(self.state[k], now[k]) for k in now)):  # type: ignore[index]
                return f"its {type(self.optimizer).__name__} state"
        return None


def identical(a: Any, b: Any) -> bool:
    """The same dtype and the same values, bit for bit (NaN where NaN)."""
    return bool(np.array_equal(a, b, equal_nan=True)) and np.asarray(a).dtype == np.asarray(b).dtype


@dataclass
class Effects:
    """The records of one trace, and what it needs to undo them or to check them."""

    entries: list[Any]  # the ops noted so far (program.Entry): a record's `at` counts them
    records: list[Record] = field(default_factory=list)
    owners: dict[Tensor, Tensor] = field(default_factory=dict)  # a .grad tensor -> its owner
    # each .grad's state when the trace began, where the program depends on it (guarded);
    # None where the step clears it before anything reads it
    grad_was_none: dict[Tensor, bool | None] = field(default_factory=dict)
    saved: dict[tuple[int, int], Saved] = field(default_factory=dict)  # first touch: undo
    expected: dict[Tensor, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)

    def _save(self, t: Tensor, optimizer: Any = None) -> None:
        self.grad_was_none.setdefault(t, t._grad is None)
        key = (id(t), id(optimizer))  # the Saved keeps both alive
        if key not in self.saved:
            self.saved[key] = Saved(t, optimizer)

    def _written(self, t: Tensor) -> None:
        """t's values as the engine left them: the only ones it may hold at the trace's end."""
        self.expected[t] = (t.data, t.data.copy())

    def read_grad(self, t: Tensor) -> None:
        """``t.grad`` was read: its None-ness is guarded, and its tensor is ``t``'s gradient."""
        self.grad_was_none.setdefault(t, t._grad is None)
        if t._grad is not None:
            self.owners.setdefault(t._grad, t)

    def backward(self, root: Tensor, gradient: Any, create_graph: bool,
                 run: Callable[[], None]) -> None:
        if gradient is not None or create_graph:
            raise RuntimeError("compile: backward() inside a compiled step takes no gradient= "
                               "and no create_graph=; call backward() on a tensor of one "
                               "element, or run the step uncompiled")
        leaves = _leaves(root)
        for leaf in leaves:
            self._save(leaf)
        fresh = [leaf._grad is None for leaf in leaves]
        in_place = [leaf._grad is not None and leaf._grad_owned
                    and leaf._grad.data.flags.writeable for leaf in leaves]
        run()
        for leaf in leaves:
            self._written(leaf)
        self.records.append(Backward(len(self.entries), root, leaves, fresh,
                                     [leaf._grad for leaf in leaves], in_place))

    def transient(self) -> set[Tensor]:
        """The leaves whose gradient nobody can see in .grad: one backward gave it to a .grad
        that was None, and it is None again when the step ends (``zero_grad()`` there), never
        written in place. A program keeps such a gradient in a local array, never stored."""
        backwards = Counter(leaf for r in self.records if isinstance(r, Backward)
                            for leaf in r.leaves)
        fresh = {leaf for r in self.records if isinstance(r, Backward)
                 for leaf, was_none in zip(r.leaves, r.fresh) if was_none}
        written = {self.owners.get(r.target) for r in self.records if isinstance(r, Write)}
        return {leaf for leaf, n in backwards.items()
                if n == 1 and leaf in fresh and leaf._grad is None and leaf not in written}

    def clear_grad(self, t: Tensor) -> None:
        self.grad_was_none.setdefault(t, None)
        self._save(t)
        t._grad, t._grad_owned = None, False
        self.records.append(GradCleared(len(self.entries), t))

    def write(self, target: Tensor, what: str, compute: Callable[[Tensor], Tensor],
              write: Callable[[], None]) -> None:
        """An in-place op outside recording: its value computed by traced ops, then written as
        eager writes it; both must agree to the bit, or the replay would differ."""
        value = compute(target)
        self._save(self.owners.get(target, target))
        write()
        written = np.asarray(value.data, dtype=target.dtype)
        if not identical(target.data, np.broadcast_to(written, target.shape)):
            raise RuntimeError(f"compile: the in-place {what} on a tensor of shape "
                               f"{target.shape} {target.dtype} rounds differently from its "
                               "out-of-place form, which a trace replays; write the update out "
                               "of place in the tensor's dtype")
        self.records.append(Write(len(self.entries), target, value))
        if target in self.expected:
            self._written(target)

    def update(self, optimizer: Any, group: int, param: Tensor, run: Callable[[], None]) -> None:
        self._save(param, optimizer)
        run()
        self.records.append(Update(len(self.entries), optimizer, group, param, param._grad))
        self._written(param)

    def undo(self) -> None:
        """Put back everything the traced step changed (a trace made only to be looked at)."""
        for saved in reversed(list(self.saved.values())):
            saved.restore()

    def refuse_hidden_writes(self, fn_name: str) -> None:
        """A parameter whose values changed after backward other than through the engine
        (``w.data -= lr * w.grad.data``): a replay would not change it. Refused."""
        for t, (array, values) in self.expected.items():
            if t.data is not array or not identical(t.data, values):
                raise RuntimeError(
                    f"compile: {fn_name} changed a tensor of shape {t.shape} through its .data "
                    "array after backward (as w.data -= lr * w.grad.data does), which a trace "
                    "cannot see: a replay would skip the update. Update it as a tensor, "
                    "`with autodiff.no_grad(): w -= lr * w.grad`, or use an optimizer from "
                    "autodiff.optim")


def _leaves(root: Tensor) -> list[Tensor]:
    """The tensors that require grad and have no node, reached from root's node: where
    backward will accumulate."""
    return [t for t in tensors_in_order([root]) if t.grad_fn is None and t.requires_grad]
