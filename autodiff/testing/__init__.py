"""Tools for property-based gradient tests (needs hypothesis: ``pip install 'autodiff[testing]'``).

Strategies for tensors, shapes, dims and whole random programs; `assert_grad_close` with its
oracles; `localize`, which names the op whose gradient is wrong.
"""

try:
    import hypothesis  # noqa: F401
except ImportError as error:  # pragma: no cover
    raise ImportError("autodiff.testing needs hypothesis: pip install 'autodiff[testing]'") \
        from error

from autodiff.testing.checks import TOLERANCES, assert_grad_close, complex_step_vjp
from autodiff.testing.localize import Finding, localize
from autodiff.testing.programs import Program, programs
from autodiff.testing.strategies import (
    arrays,
    broadcastable_shapes,
    dims,
    distinct_arrays,
    floats,
    matmul_shapes,
    safe_floats,
    shapes,
    tensors,
)

__all__ = ["TOLERANCES", "Finding", "Program", "arrays", "assert_grad_close",
           "broadcastable_shapes", "complex_step_vjp", "dims", "distinct_arrays", "floats",
           "localize", "matmul_shapes", "programs", "safe_floats", "shapes", "tensors"]
