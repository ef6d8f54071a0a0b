"""Tools for property-based gradient tests (needs hypothesis: ``pip install autodiff[testing]``)."""

from autodiff.testing.strategies import (
                                         arrays,
                                         broadcastable_shapes,
                                         dims,
                                         distinct_arrays,
                                         floats,
                                         matmul_shapes,
                                         shapes,
                                         tensors,
)

__all__ = ["arrays", "broadcastable_shapes", "dims", "distinct_arrays", "floats",
           "matmul_shapes", "shapes", "tensors"]
