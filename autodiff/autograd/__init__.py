"""PyTorch's ``torch.autograd`` names: `Function`, `grad`, `backward` and the `functional`
transforms, so ``torch.autograd.Function`` resolves after ``import autodiff as torch``."""

from collections.abc import Sequence
from typing import Any

from autodiff.autograd import functional
from autodiff.backward import grad
from autodiff.function import Function
from autodiff.tensor import Tensor


def backward(tensors: Tensor | Sequence[Tensor], grad_tensors: Any = None,
             retain_graph: bool = False, create_graph: bool = False) -> None:
    """``tensors[i].backward(grad_tensors[i])`` for each (as torch.autograd.backward)."""
    roots = [tensors] if isinstance(tensors, Tensor) else list(tensors)
    seeds = grad_tensors if isinstance(grad_tensors, (list, tuple)) else [grad_tensors] * len(roots)
    for i, (root, seed) in enumerate(zip(roots, seeds)):
        keep = retain_graph or create_graph or i < len(roots) - 1
        root.backward(seed, retain_graph=keep, create_graph=create_graph)


__all__ = ["Function", "backward", "functional", "grad"]
