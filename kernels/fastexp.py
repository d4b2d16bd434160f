"""``exp(x)`` for float32 ``x <= 0`` in a form LLVM vectorizes (for the sigmoid).

Numba compiles ``np.exp`` on float32 to a call of the C library's ``expf`` per
element (its SVML vector routines need an SVML-patched LLVM, which
llvmlite's is not), so the sigmoid activation of 7.7 million values (workload
seed's two 64-unit layers over one epoch) took 54 ms against 2 ms for ReLU.
:func:`exp_nonpositive_f32` is straight-line arithmetic that LLVM turns into
vector instructions: the same sigmoid takes 15 ms (2-core Xeon, one thread).

Method (Cody & Waite 1980 range reduction, as in Moshier's Cephes ``expf``):
``x = n ln2 + r`` with ``n = round(x / ln2)`` and ``ln2`` split in two parts so
that ``r`` is exact, ``exp(r)`` on ``|r| <= ln2 / 2`` from a degree-5 minimax
polynomial (Cephes's coefficients), and ``2^n`` built from its IEEE-754 bits.
Relative error at most 8e-8 (about one unit in the last place) on
``[-87, 0]``; below -87 it returns 0 (the exact result is below float32's
smallest normal number, 1.2e-38, which the training kernels flush to zero
anyway, see :mod:`fastann.kernels.denormals`).
"""
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

LOG2E = np.float32(1.4426950408889634)
LN2_HIGH = np.float32(0.693359375)       # ln 2 = LN2_HIGH + LN2_LOW, LN2_HIGH exact in 9 bits
LN2_LOW = np.float32(-2.12194440e-4)
LOWEST = np.float32(-87.0)
P0, P1, P2, P3, P4, P5 = (np.float32(c) for c in (
    1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1,
    5.0000001201e-1))


@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose IEEE-754 bit pattern is the int32 ``bits``."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        value = context.cast(builder, args[0], signature.args[0], types.int32)
        return builder.bitcast(value, ir.FloatType())

    return types.float32(bits), codegen


@njit(cache=True, error_model="numpy", fastmath={"contract"}, inline="always")
def exp_nonpositive_f32(x):
    """``exp(x)`` for float32 ``x <= 0`` (0 below -87); see the module docstring.

    Parameters
    ----------
    x : float32
        At most 0 (larger values are not range-checked: ``2^n`` overflows
        above about 88).

    Returns
    -------
    float32
    """
    tiny = x < LOWEST
    x = max(x, LOWEST)
    n = np.floor(x * LOG2E + np.float32(0.5))
    r = x - n * LN2_HIGH
    r = r - n * LN2_LOW
    p = (((((P0 * r + P1) * r + P2) * r + P3) * r + P4) * r + P5) * (r * r) + r + np.float32(1.0)
    value = p * _float32_from_bits((np.int32(n) + np.int32(127)) << 23)
    return np.float32(0.0) if tiny else value
