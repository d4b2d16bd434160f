"""A software prefetch hint for compiled loops that read rows in shuffled order.

An epoch visits the training rows in a random order, so each row's first
cache lines miss in every cache level (about 100 ns each from DRAM); the
hardware prefetchers only follow sequential or strided streams. Workload S's
parallel epoch took 0.193 s per epoch over shuffled rows against 0.164 s over
rows in order (2-core Xeon, ``benchmarks/README.md``). :func:`prefetch` lets a
kernel ask for the rows of the next mini-batches while it computes on this one.

It emits LLVM's ``llvm.prefetch`` intrinsic (read, moderate temporal
locality: kept in L2, data cache), which is a no-op on CPUs without a prefetch
instruction and never faults, so an out-of-bounds index is harmless; the
compiled code computes the address without bounds checks.
"""
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic


@intrinsic
def prefetch(typingctx, array, index):
    """Hint that ``array[index]`` (a 1-D array, integer index) will be read soon.

    Usable in ``@njit`` code only. Returns nothing and changes no value.
    """
    if not (isinstance(array, types.Array) and array.ndim == 1
            and isinstance(index, types.Integer)):
        return None

    def codegen(context, builder, signature, args):
        array_type = signature.args[0]
        view = context.make_array(array_type)(context, builder, args[0])
        position = context.cast(builder, args[1], signature.args[1], types.intp)
        pointer = cgutils.get_item_pointer(context, builder, array_type, view, [position],
                                           wraparound=False)
        byte_pointer = ir.PointerType(ir.IntType(8))
        i32 = ir.IntType(32)
        function = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte_pointer, i32, i32, i32]),
            "llvm.prefetch.p0")
        # (address, 0 = read, 2 = moderate locality, 1 = data cache)
        builder.call(function, [builder.bitcast(pointer, byte_pointer), ir.Constant(i32, 0),
                                ir.Constant(i32, 2), ir.Constant(i32, 1)])
        return context.get_dummy_value()

    return types.void(array, index), codegen
