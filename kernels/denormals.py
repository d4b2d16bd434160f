"""Flush denormal floats to zero while a training kernel runs (x86-64).

Denormal (subnormal) floats, below 1.2e-38 in float32, take a microcode
assist on every arithmetic instruction that reads or writes one: tens to a
hundred cycles instead of one. Training produces them steadily (Adam's second
moment ``v`` holds squared gradients; small gradients times small
activations), and on the 2-core Xeon of ``benchmarks/README.md`` they made
workload T's epoch 2.2x slower (0.80 s against 0.37 s on one thread, later
epochs of one fit) and the BLAS epoch of S 1.2x slower.

Setting the FTZ (flush to zero, bit 15) and DAZ (denormals are zero, bit 6)
bits of the SSE control register MXCSR makes the CPU treat them as zeros. The
register belongs to each thread, so a kernel sets it on entry and restores
the caller's value on exit, on the calling thread and, inside ``prange``
bodies, on each worker: Python code and other libraries never see the change.
XLA (JAX's compiler) does the same around its CPU computations. Values that
would have been denormal become 0, so results can differ from a run without
the flush in the last bits of some weights; they remain deterministic.
LLVM does not treat MXCSR as state that floating-point instructions depend on,
so it may schedule an operation just across the switch: the flush is a speed
measure for the bulk of a kernel, not a promise about each operation.

On other architectures :func:`flush_denormals` and :func:`restore_denormals`
do nothing.
"""
import platform

import numpy as np

from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

#: MXCSR bits: FTZ (bit 15) and DAZ (bit 6).
FLUSH_BITS = 0x8040

X86_64 = platform.machine().lower() in ("x86_64", "amd64")


def _mxcsr_call(builder, name, slot):
    pointer = ir.PointerType(ir.IntType(8))
    function = builder.module.declare_intrinsic(
        name, fnty=ir.FunctionType(ir.VoidType(), [pointer]))
    builder.call(function, [builder.bitcast(slot, pointer)])


@intrinsic
def _read_mxcsr(typingctx):
    """The calling thread's MXCSR (``stmxcsr``)."""
    def codegen(context, builder, signature, args):
        slot = builder.alloca(ir.IntType(32))
        _mxcsr_call(builder, "llvm.x86.sse.stmxcsr", slot)
        return builder.load(slot)
    return types.uint32(), codegen


@intrinsic
def _write_mxcsr(typingctx, value):
    """Load ``value`` into the calling thread's MXCSR (``ldmxcsr``)."""
    def codegen(context, builder, signature, args):
        slot = builder.alloca(ir.IntType(32))
        builder.store(args[0], slot)
        _mxcsr_call(builder, "llvm.x86.sse.ldmxcsr", slot)
        return context.get_dummy_value()
    return types.void(types.uint32), codegen


if X86_64:
    @njit(cache=True, inline="always")
    def flush_denormals():
        """Set FTZ and DAZ on the calling thread; return its previous MXCSR.

        Returns
        -------
        numpy.uint32
            The value to hand to :func:`restore_denormals`.
        """
        previous = _read_mxcsr()
        _write_mxcsr(previous | np.uint32(FLUSH_BITS))
        return previous

    @njit(cache=True, inline="always")
    def restore_denormals(previous):
        """Restore the MXCSR saved by :func:`flush_denormals` on this thread."""
        _write_mxcsr(previous)
else:
    @njit(cache=True, inline="always")
    def flush_denormals():
        """Nothing to do off x86-64; returns 0."""
        return np.uint32(0)

    @njit(cache=True, inline="always")
    def restore_denormals(previous):
        """Nothing to do off x86-64."""
        return None
