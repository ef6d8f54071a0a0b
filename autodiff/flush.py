"""Flush-to-zero for the fused backend's replays (`autodiff.fusion`): a result too small for
the dtype's normal range (below about 1.2e-38 in float32, 2.2e-308 in float64) is 0.

Such a *subnormal* number costs an x86 processor a slow microcode path for each operation
that makes one: a float32 softmax whose logits span more than about 87 makes them, its
gradient carries them into the matrix products, and BLAS then runs several times slower. The
processor's flush-to-zero mode (the FTZ bit of the MXCSR register, per thread) gives 0 for such
results instead, at full speed; XLA's CPU backend runs `jax.jit` code so. Inputs are read as
they are (the denormals-are-zero bit stays off): a subnormal value a caller passes in still
compares greater than 0.

`flushing_subnormals(function)` runs `function` in that mode and puts back the register as it
found it, when the function returns or raises. On processors other than x86-64 it returns the
function unchanged. Imported by the fused backend only: it needs numba.
"""

from __future__ import annotations

import functools
import platform
from collections.abc import Callable
from typing import Any

import numba
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

FLUSH_TO_ZERO = 1 << 15  # the MXCSR bit: a subnormal result is written as 0
X86_64 = platform.machine().lower() in ("x86_64", "amd64")


def _mxcsr_instruction(builder: Any, name: str) -> Any:
    """LLVM's x86 intrinsic that stores MXCSR to (stmxcsr) or loads it from (ldmxcsr) memory."""
    signature = ir.FunctionType(ir.VoidType(), [cgutils.voidptr_t])
    return cgutils.get_or_insert_function(builder.module, signature, f"llvm.x86.sse.{name}")


@intrinsic
def _read_mxcsr(typingctx: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        word = cgutils.alloca_once(builder, ir.IntType(32))
        builder.call(_mxcsr_instruction(builder, "stmxcsr"),
                     [builder.bitcast(word, cgutils.voidptr_t)])
        return builder.zext(builder.load(word), ir.IntType(64))

    return types.int64(), codegen


@intrinsic
def _write_mxcsr(typingctx: Any, value: Any) -> Any:
    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        word = cgutils.alloca_once_value(builder, builder.trunc(args[0], ir.IntType(32)))
        builder.call(_mxcsr_instruction(builder, "ldmxcsr"),
                     [builder.bitcast(word, cgutils.voidptr_t)])
        return context.get_dummy_value()

    return types.none(types.int64), codegen


@numba.njit(cache=True)
def flush_to_zero() -> int:
    """Switch this thread's flush-to-zero mode on; the register as it was, to put back."""
    found: int = _read_mxcsr()  # type: ignore[call-arg]  # numba passes the typing context
    _write_mxcsr(found | FLUSH_TO_ZERO)
    return found


@numba.njit(cache=True)
def set_mxcsr(value: int) -> None:
    """Put this thread's MXCSR register back to `value` (what `flush_to_zero` returned)."""
    _write_mxcsr(value)  # type: ignore[call-arg]


@numba.njit(cache=True)
def mxcsr() -> int:
    """This thread's MXCSR register, as a number."""
    return _read_mxcsr()  # type: ignore[call-arg]


def flushing_subnormals(function: Callable[..., Any]) -> Callable[..., Any]:
    """`function` run with subnormal results flushed to zero (on x86-64; elsewhere as it is)."""
    if not X86_64:
        return function

    @functools.wraps(function)
    def run(*args: Any) -> Any:
        found = flush_to_zero()
        try:
            return function(*args)
        finally:
            set_mxcsr(found)

    return run
