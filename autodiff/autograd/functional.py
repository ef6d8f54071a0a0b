"""``torch.autograd.functional``: the function transforms."""

from autodiff.transforms import hessian, hvp, jacobian, jvp, vjp

__all__ = ["hessian", "hvp", "jacobian", "jvp", "vjp"]
