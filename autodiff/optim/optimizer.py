"""Optimizers: they read ``.grad`` and update each parameter's array in place, as torch.optim.

The hyperparameters live in ``param_groups`` (a list of dicts, each with its "params"), so a
scheduler or the user can change a group's "lr" between steps, as in PyTorch; ``optimizer.lr``
reads the first group's and sets every group's. Per-parameter state (momentum buffers, Adam's
moments and step count) lives in ``optimizer.state[p]``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from autodiff.graph import GradMode
from autodiff.tensor import Tensor, zero_grads

Group = dict[str, Any]


@dataclass(frozen=True)
class LoopUpdate:
    """An optimizer's update of one parameter as a fused loop writes it (``compile(...,
    backend="numba")``): the numbers and the state arrays `Optimizer.loop_state` gives at each
    step, then each array written, as scalar Python on one element of ``p`` and ``g``."""

    numbers: tuple[str, ...]
    state: tuple[str, ...]
    writes: tuple[tuple[str, str], ...]  # (the array written: "p" or a state's, expression)


class Optimizer:
    """Base class: keeps the parameter groups and steps every parameter that has a .grad."""

    def __init__(self, params: Iterable[Tensor] | Iterable[Group], defaults: Group) -> None:
        self.defaults = defaults
        self.param_groups: list[Group] = []
        self.state: dict[Tensor, dict[str, Any]] = {}  # tensors hash by identity
        given: list[Any] = list(params)
        if not given:
            raise ValueError(f"{type(self).__name__}: got an empty parameter list")
        groups = given if all(isinstance(g, dict) for g in given) else [{"params": given}]
        for group in groups:
            self.add_param_group(group)

    def add_param_group(self, group: Group) -> None:
        """Add a group: its "params" and any hyperparameter that differs from the defaults."""
        name = type(self).__name__
        params = group.get("params")
        params = [params] if isinstance(params, Tensor) else list(params or [])
        known = {id(p) for g in self.param_groups for p in g["params"]}
        unique = list({id(p): p for p in params}.values())  # a shared one moves once
        for i, p in enumerate(unique):
            if not isinstance(p, Tensor) or p.dtype.kind != "f":
                raise TypeError(f"{name}: parameter {i} must be a floating-point Tensor, "
                                f"got {p!r:.60}")
            if id(p) in known:
                raise ValueError(f"{name}: parameter {i} (shape {p.shape}) is already in "
                                 "another parameter group")
        unknown = set(group) - set(self.defaults) - {"params"}
        if unknown:
            raise TypeError(f"{name}: unknown hyperparameters {sorted(unknown)} (it takes "
                            f"{sorted(self.defaults)})")
        full = {**self.defaults, **group, "params": unique}
        self.check(full)
        self.param_groups.append(full)

    def check(self, group: Group) -> None:
        """Refuse a group whose hyperparameters are out of range (each optimizer's own)."""
        group["lr"] = check_number(type(self).__name__, "lr", group["lr"], low=0.0,
                                   low_open=True)

    @property
    def lr(self) -> float:
        """The first group's learning rate; setting it sets every group's."""
        return float(self.param_groups[0]["lr"])

    @lr.setter
    def lr(self, value: float) -> None:
        value = check_number(type(self).__name__, "lr", value, low=0.0, low_open=True)
        for group in self.param_groups:
            group["lr"] = value

    @property
    def params(self) -> list[Tensor]:
        """Every parameter, group after group."""
        return [p for group in self.param_groups for p in group["params"]]

    def zero_grad(self, set_to_none: bool = True) -> None:
        """Clear the gradients: set them to None, or (``set_to_none=False``) zero them."""
        zero_grads(self.params, set_to_none)

    def step(self) -> None:
        """Update every parameter that has a gradient (those without one, frozen or unused,
        are left as they are)."""
        effects = GradMode.effects  # compile is tracing a step: it notes each update
        for k, group in enumerate(self.param_groups):
            for i, p in enumerate(group["params"]):
                if p.grad is None:
                    continue
                if not p.data.flags.writeable:
                    raise ValueError(f"{type(self).__name__}.step: parameter {i} (shape "
                                     f"{p.shape}) holds a read-only array; give it a writeable "
                                     "copy (p.data = p.data.copy())")
                if effects is None:
                    self.update_parameter(p, p.grad.data, group)
                else:  # noted before the state is touched, so that it can be put back
                    effects.update(self, k, p, functools.partial(
                        self.update_parameter, p, p.grad.data, group))

    def update_parameter(self, p: Tensor, g: np.ndarray, group: Group) -> None:
        """Update one parameter from its gradient's array, with its group's hyperparameters
        and its own state (what a compiled step calls at each replay)."""
        self.update(p, g, group, self.state.setdefault(p, {}))

    def update(self, p: Tensor, g: np.ndarray, group: Group, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def loop_update(self, group: Group) -> LoopUpdate | None:
        """The update as loops (None: an optimizer without one runs its `update` instead)."""
        return None

    def loop_state(self, p: Tensor, group: Group) -> tuple[Any, ...]:
        """What `loop_update`'s loops read this step, its numbers then its state arrays, with
        the state advanced as `update` advances it."""
        raise NotImplementedError


class SGD(Optimizer):
    """p ← p − lr·v with v ← momentum·v + g (plain SGD when momentum is 0)."""

    def __init__(self, params: Iterable[Tensor] | Iterable[Group], lr: float,
                 momentum: float = 0.0) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum})

    def check(self, group: Group) -> None:
        super().check(group)
        group["momentum"] = check_number("SGD", "momentum", group["momentum"], low=0.0, high=1.0)

    def update(self, p: Tensor, g: np.ndarray, group: Group, state: dict[str, Any]) -> None:
        if group["momentum"]:
            v = state.get("momentum_buffer")
            g = state["momentum_buffer"] = g.copy() if v is None else group["momentum"] * v + g
        p.data -= group["lr"] * g

    def loop_update(self, group: Group) -> LoopUpdate:
        if group["momentum"]:  # the first buffer is g itself: momentum · 0 + g
            return LoopUpdate(("lr", "momentum"), ("momentum_buffer",), (
                ("momentum_buffer", "momentum * momentum_buffer + g"),
                ("p", "p - lr * momentum_buffer")))
        return LoopUpdate(("lr",), (), (("p", "p - lr * g"),))

    def loop_state(self, p: Tensor, group: Group) -> tuple[Any, ...]:
        if not group["momentum"]:
            return (group["lr"],)
        state = self.state.setdefault(p, {})
        buffer = state.setdefault("momentum_buffer", np.zeros_like(p.data))
        return group["lr"], group["momentum"], buffer


class Adam(Optimizer):
    """Adam (Kingma & Ba): steps by bias-corrected running means of g and g²."""

    def __init__(self, params: Iterable[Tensor] | Iterable[Group], lr: float = 1e-3,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        super().__init__(params, {"lr": lr, "betas": betas, "eps": eps})

    def check(self, group: Group) -> None:
        super().check(group)
        betas = group["betas"]
        if not isinstance(betas, (tuple, list)) or len(betas) != 2:
            raise TypeError(f"Adam: betas must be a pair of numbers, got {betas!r}")
        group["betas"] = tuple(check_number("Adam", f"betas[{i}]", b, low=0.0, high=1.0)
                               for i, b in enumerate(betas))
        group["eps"] = check_number("Adam", "eps", group["eps"], low=0.0, low_open=True)

    def update(self, p: Tensor, g: np.ndarray, group: Group, state: dict[str, Any]) -> None:
        b1, b2 = group["betas"]
        step = self._count_step(p, state)
        state["exp_avg"] = m = b1 * state["exp_avg"] + (1 - b1) * g
        state["exp_avg_sq"] = v = b2 * state["exp_avg_sq"] + (1 - b2) * g * g
        m_hat = m / (1 - b1 ** step)
        v_hat = v / (1 - b2 ** step)
        p.data -= group["lr"] * m_hat / (np.sqrt(v_hat) + group["eps"])

    @staticmethod
    def _count_step(p: Tensor, state: dict[str, Any]) -> int:
        """This step's number, counted in p's state (made, with zero moments, at the first)."""
        if not state:
            state.update(step=0, exp_avg=np.zeros_like(p.data), exp_avg_sq=np.zeros_like(p.data))
        state["step"] += 1
        return state["step"]

    def loop_update(self, group: Group) -> LoopUpdate:
        return LoopUpdate(("lr", "b1", "b2", "eps", "bc1", "bc2"), ("exp_avg", "exp_avg_sq"), (
            ("exp_avg", "b1 * exp_avg + (1 - b1) * g"),
            ("exp_avg_sq", "b2 * exp_avg_sq + (1 - b2) * g * g"),
            ("p", "p - lr * (exp_avg / bc1) / (np.sqrt(exp_avg_sq / bc2) + eps)")))

    def loop_state(self, p: Tensor, group: Group) -> tuple[Any, ...]:
        b1, b2 = group["betas"]
        state = self.state.setdefault(p, {})
        step = self._count_step(p, state)
        return (group["lr"], b1, b2, group["eps"], 1 - b1 ** step, 1 - b2 ** step,
                state["exp_avg"], state["exp_avg_sq"])


def check_number(optimizer: str, name: str, value: object, low: float, high: float = math.inf,
                 low_open: bool = False) -> float:
    """A finite real in [low, high) (or (low, high) with low_open); anything else is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{optimizer}: {name} must be a number, got {value!r}")
    value = float(value)
    above = value > low if low_open else value >= low
    if not (math.isfinite(value) and above and value < high):
        bounds = f"{'(' if low_open else '['}{low:g}, {high:g})"
        raise ValueError(f"{optimizer}: {name} must be a finite number in {bounds}, got {value}")
    return value
