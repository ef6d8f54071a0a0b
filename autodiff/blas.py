"""``c += alpha · a @ b`` as one BLAS call, for the fused backend (`autodiff.fusion`).

A step that ends ``w -= lr * (x.T @ g)`` makes the product, reads it once more to scale it, and
once more to subtract it from the weight. BLAS's general matrix product computes
``C = alpha · A B + beta · C`` in one pass over C; with ``beta = 1`` and ``alpha = −lr`` it is the
whole update. numba's ``np.dot`` calls that same routine with alpha 1 and beta 0; this module
calls it with ours, through the symbol numba's helper library gives its own ``np.dot``
(``numba_xxgemm``, which finds SciPy's BLAS in each process), so functions that call it can be
cached on disk as ``np.dot``'s callers are. Imported only by the kernels' modules: it needs
numba.
"""

from __future__ import annotations

from typing import Any

import numba
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, overload
from numba.np.linalg import check_blas_return, ensure_blas, get_blas_kind


@numba.njit(cache=True)
def matmul_add(a: np.ndarray, b: np.ndarray, c: np.ndarray, alpha: float) -> np.ndarray:
    """``c += alpha · (a @ b)`` in place, and c returned: one BLAS call where c is
    C-contiguous and a and b are C- or F-contiguous (as a matrix and its ``.T`` are) of c's
    float dtype; otherwise the product made, scaled and added."""
    if a.shape[1] != b.shape[0] or c.shape != (a.shape[0], b.shape[1]):
        raise ValueError("matmul_add: shapes do not fit a @ b into c")
    _add_product(a, b, c, alpha)
    return c


def _add_product(a: Any, b: Any, c: Any, alpha: Any) -> None:
    """What `matmul_add` does, chosen by numba from the arrays' types (below)."""
    raise NotImplementedError("called from numba only")


@overload(_add_product)
def _add_product_for(a: Any, b: Any, c: Any, alpha: Any) -> Any:
    # numba compares these signatures with _add_product's, annotations included
    def one_blas_call(a: Any, b: Any, c: Any, alpha: Any) -> None:
        _gemm(a, b, c, alpha)  # type: ignore[call-arg]  # numba passes the typing context

    def made_scaled_added(a: Any, b: Any, c: Any, alpha: Any) -> None:
        c += alpha * np.dot(a, b)

    return one_blas_call if _blas_can_take(a, b, c, alpha) else made_scaled_added


def _blas_can_take(a: Any, b: Any, c: Any, alpha: Any) -> bool:
    return (all(isinstance(t, types.Array) and t.ndim == 2 and t.dtype == c.dtype
                for t in (a, b, c))
            and c.layout == "C" and a.layout in "CF" and b.layout in "CF"
            and isinstance(alpha, types.Float) and c.dtype in (types.float32, types.float64))


@intrinsic
def _gemm(typingctx: Any, a: Any, b: Any, c: Any, alpha: Any) -> Any:
    arrays = (a, b, c)
    if not _blas_can_take(a, b, c, alpha):
        return None
    ensure_blas()

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> None:
        # BLAS is column-major, so it sees each C-ordered matrix as its transpose: it computes
        # cᵀ = bᵀ aᵀ, reading an F-ordered operand (a .T view) transposed once more
        a_, b_, c_ = (context.make_array(t)(context, builder, v) for t, v in zip(arrays, args))
        intp = context.get_value_type(types.intp)
        m, k = cgutils.unpack_tuple(builder, a_.shape)
        n = cgutils.unpack_tuple(builder, b_.shape)[1]

        def operand(layout: str, array: Any, rows: Any, cols: Any) -> tuple[Any, ...]:
            trans = ir.Constant(ir.IntType(8), ord("n" if layout == "C" else "t"))
            lead = cols if layout == "C" else rows
            one = ir.Constant(intp, 1)  # BLAS wants a leading dim of at least 1
            lead = builder.select(builder.icmp_signed("<", lead, one), one, lead)
            return trans, lead, builder.bitcast(array.data, cgutils.voidptr_t)

        trans_b, ld_b, data_b = operand(b.layout, b_, k, n)
        trans_a, ld_a, data_a = operand(a.layout, a_, m, k)
        _, ld_c, data_c = operand("C", c_, m, n)
        dtype = context.get_value_type(c.dtype)
        scale = cgutils.alloca_once_value(builder, context.cast(builder, args[3], alpha, c.dtype))
        keep = cgutils.alloca_once_value(builder, ir.Constant(dtype, 1.0))  # beta: C kept
        voidptr, char = cgutils.voidptr_t, ir.IntType(8)
        signature_ = ir.FunctionType(ir.IntType(32), [char, char, char, intp, intp, intp,
                                                      voidptr, voidptr, intp, voidptr, intp,
                                                      voidptr, voidptr, intp])
        gemm = cgutils.get_or_insert_function(builder.module, signature_, "numba_xxgemm")
        kind = ir.Constant(char, ord(get_blas_kind(c.dtype)))
        result = builder.call(gemm, (kind, trans_b, trans_a, n, m, k,
                                     builder.bitcast(scale, voidptr), data_b, ld_b, data_a,
                                     ld_a, builder.bitcast(keep, voidptr), data_c, ld_c))
        check_blas_return(context, builder, result)

    return types.none(a, b, c, alpha), codegen
