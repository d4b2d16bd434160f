"""Compile every kernel of fastann.kernels.cuda to PTX without a GPU: a check for the real target.

The CUDA simulator runs kernels as Python, so it cannot catch code that the
real CUDA target would refuse to compile. This script compiles each kernel,
for float32 and float64, with NVVM only (no driver, no GPU) and reports the
PTX size and how many float64 instructions each has (float32 kernels should
have none, apart from the float64 loss/correct counters of the softmax)::

    pip install nvidia-nvvm nvidia-cuda-nvrtc     # or a CUDA toolkit
    python tests/cuda/ptx_check.py [MAJOR.MINOR]  # default 9.0 (H100/H200)

Not collected by pytest (no ``test_`` prefix); exits non-zero on failure.
(If the NVIDIA libraries are not found, put their ``lib`` folder on
``LD_LIBRARY_PATH``.)
"""
import os
import re
import sys

os.environ["NUMBA_ENABLE_CUDASIM"] = "0"


def main(cc=(9, 0)):
    import numba.cuda.dispatcher as dispatcher
    from numba import cuda, float32, float64, int32, int64, uint8
    from numba.core.types import Array

    class _Device:  # device functions ask the current device for its cc
        compute_capability = cc

    dispatcher.get_current_device = lambda: _Device()

    from fastann.kernels.cuda import batching, dense, epoch, loss
    from fastann.kernels.cuda import optimizers as opt

    def A(dtype, ndim):
        return Array(dtype, ndim, "C")

    def compile_one(name, kernel, sig):
        ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
        f64_ops = len(re.findall(r"[.]f64", ptx))
        print(f"{name:34s} {len(ptx):7d} chars of PTX, {f64_ops:4d} f64 ops")

    for nb in (float32, float64):
        dt = "float32" if nb is float32 else "float64"
        fwd, bwd = dense.dense_kernels(16, dt)
        compile_one(f"dense forward {dt}", fwd,
                    (A(nb, 2), A(nb, 2), A(nb, 1), int64, A(nb, 2), int64))
        compile_one(f"dense backward {dt}", bwd,
                    (A(nb, 2),) * 4 + (A(nb, 1), A(nb, 2)) + (int64,) * 5)
        xent, log_softmax = loss.loss_kernels(8, dt)
        compile_one(f"softmax cross-entropy {dt}", xent,
                    (A(nb, 2), A(int32, 1), nb, A(nb, 2), A(float64, 1), int64))
        compile_one(f"log-softmax {dt}", log_softmax, (A(nb, 2), A(nb, 2), int64, int64))
        compile_one(f"sgd {dt}", opt._sgd, (A(nb, 1), A(nb, 1), nb, nb, nb, int64))
        compile_one(f"momentum {dt}", opt._momentum, (A(nb, 1),) * 3 + (nb,) * 4 + (int64,))
        compile_one(f"nesterov {dt}", opt._nesterov, (A(nb, 1),) * 3 + (nb,) * 5 + (int64,))
        compile_one(f"adam {dt}", opt._adam, (A(nb, 1),) * 4 + (nb,) * 9 + (int64,))
        for raw in (uint8, nb):
            compile_one(f"gather {dt} from {raw}", batching._gather,
                        (A(raw, 2), A(int32, 1), A(int64, 1), int64, int64, A(nb, 1), A(nb, 1),
                         A(nb, 2), A(int32, 1)))
            compile_one(f"gather rows {dt} from {raw}", batching._gather_rows,
                        (A(raw, 2), int64, int64, A(nb, 1), A(nb, 1), A(nb, 2)))
    compile_one("zero counters", epoch._zero, (A(float64, 1),))


if __name__ == "__main__":
    cc = tuple(int(p) for p in sys.argv[1].split(".")) if len(sys.argv) > 1 else (9, 0)
    main(cc)
