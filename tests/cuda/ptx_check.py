"""Compile every kernel of fastann.kernels.cuda to PTX without a GPU, and check it with ``ptxas -v``.

The CUDA simulator runs kernels as Python, so it cannot catch code that the
real CUDA target would refuse to compile, nor code that would be slow on it.
This script compiles each kernel, for float32 and float64 and for each
compute capability asked for, with NVVM only (no driver, no GPU), then
assembles the PTX with ``ptxas -v`` (the CUDA toolkit's assembler, when it is
on ``PATH``) and prints one row per kernel: registers per thread, spill
stores/loads in bytes, shared memory, and the number of float64 instructions
(float32 kernels should have only the loads and conversions of the float64
plan table and the loss/correct counters' additions)::

    pip install nvidia-nvvm nvidia-cuda-nvrtc     # or "fastann[cuda13]", or a CUDA toolkit
    python tests/cuda/ptx_check.py [--cc 8.0 9.0] [--no-ptxas]

Exits non-zero when a kernel does not compile or when ``ptxas`` reports a
spill. Without ``ptxas`` it says so and still checks that the PTX compiles.
Not collected by pytest (no ``test_`` prefix); ``.ci/run`` runs it, and
``test_cuda_cache.py`` imports :func:`kernels_to_check`.
"""
import argparse
import concurrent.futures
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

os.environ["NUMBA_ENABLE_CUDASIM"] = "0"

#: Dense launch shapes compiled by default, ``(tile, per_thread[, depth])``: the hardware
#: default of kernels/cuda/_launch.py (16, 1) and the register-blocked and deeper-slab shapes
#: benchmarks/gpu_compare.py tries (a depth other than 1 changes the forward kernels only).
TILES = ((16, 1), (16, 2), (8, 4), (16, 1, 4))
ROWS_PER_BLOCK = (8,)


def pretend_device(cc):
    """Make device-function compilation see a device of compute capability ``cc`` (no GPU)."""
    import numba.cuda.dispatcher as dispatcher

    class _Device:
        compute_capability = tuple(cc)

    dispatcher.get_current_device = lambda: _Device()


def kernels_to_check(tiles=TILES, rows_per_block=ROWS_PER_BLOCK, lanes=32):
    """Every CUDA kernel with the argument types fastann launches it with.

    Returns
    -------
    list of (name, dispatcher, signature)
        ``signature`` is a tuple of Numba types, as :func:`numba.cuda.compile_ptx` takes.
    """
    from numba import float32, float64, int32, int64, uint8
    from numba.core.types import Array

    from fastann.kernels.cuda import batching, blas, dense, epoch, loss
    from fastann.kernels.cuda import optimizers as opt

    def A(dtype, ndim):
        return Array(dtype, ndim, "C")

    plan, cursor = A(float64, 2), A(int64, 1)  # the per-step plan table and its cursor
    out = []
    for nb in (float32, float64):
        dt = "float32" if nb is float32 else "float64"
        for tile, per_thread, *deep in tiles:
            depth = deep[0] if deep else 1
            k = dense.dense_kernels(tile, dt, per_thread, depth)
            shape = f"t{tile}x{per_thread}" + (f"d{depth}" if depth != 1 else "")
            tail = (A(nb, 2), A(nb, 1), int64, A(nb, 2), plan, cursor)  # W, b, code, out, ...
            split = (A(nb, 2), A(int64, 1))  # split-K's partials and arrival counts
            split_tail = tail[:4] + split + tail[4:]
            out.append((f"dense forward {shape} {dt}", k.forward, (A(nb, 2),) + tail))
            out.append((f"dense forward split-K {shape} {dt}", k.forward_split,
                        (A(nb, 2),) + split_tail))
            for raw in (uint8, nb):
                source = (A(raw, 2), A(int32, 1), A(int64, 1), A(nb, 1), A(nb, 1), A(nb, 2),
                          A(int32, 1))
                out.append((f"first forward {shape} {dt} from {raw}", k.forward_gather,
                            source + tail))
                out.append((f"first forward split-K {shape} {dt} from {raw}",
                            k.forward_gather_split, source + split_tail))
                out.append((f"first forward rows {shape} {dt} from {raw}", k.forward_rows,
                            (A(raw, 2), A(nb, 1), A(nb, 1)) + tail))
            head = (A(nb, 2), A(nb, 2), A(nb, 1), A(int32, 1), A(float64, 1), A(nb, 2))
            out.append((f"last forward + softmax {shape} {dt}", k.forward_softmax,
                        head + (plan, cursor)))
            out.append((f"last forward + softmax split-K {shape} {dt}",
                        k.forward_softmax_split, head + split + (plan, cursor)))
            if depth != 1:
                continue  # the backward kernels do not depend on the depth
            out.append((f"dense backward {shape} {dt}", k.backward,
                        (A(nb, 2),) * 4 + (A(nb, 1), A(nb, 2), int64, plan, cursor, int64,
                                           int64)))
            for name in ("sgd", "adam"):  # the lightest and the heaviest update fused in
                out.append((f"first backward + {name} {shape} {dt}",
                            dense.backward_update_kernel(tile, dt, per_thread, name),
                            (A(nb, 2), A(nb, 2)) + (A(nb, 1),) * 4 + (plan, cursor)
                            + (nb,) * 6 + (int64,) * 3))
        for rows in rows_per_block:
            xent, log_softmax, evaluate = loss.loss_kernels(rows, dt, lanes)
            out.append((f"softmax cross-entropy r{rows} {dt}", xent,
                        (A(nb, 2), A(int32, 1), A(nb, 2), A(float64, 1), plan, cursor)))
            out.append((f"log-softmax r{rows} {dt}", log_softmax,
                        (A(nb, 2), A(nb, 2), plan, cursor)))
            out.append((f"evaluate r{rows} {dt}", evaluate,
                        (A(nb, 2), A(int32, 1), A(float64, 1), plan, cursor)))
        k = opt.optimizer_kernels(dt)
        head = (A(nb, 1), A(nb, 1))
        out.append((f"sgd {dt}", k["sgd"], head + (plan, cursor, nb, nb, int64)))
        out.append((f"momentum {dt}", k["momentum"],
                    head + (A(nb, 1), plan, cursor) + (nb,) * 3 + (int64,)))
        out.append((f"nesterov {dt}", k["nesterov"],
                    head + (A(nb, 1), plan, cursor) + (nb,) * 4 + (int64,)))
        out.append((f"adam {dt}", k["adam"],
                    head + (A(nb, 1), A(nb, 1), plan, cursor) + (nb,) * 6 + (int64,)))
        for raw in (uint8, nb):
            out.append((f"gather {dt} from {raw}", batching._gather,
                        (A(raw, 2), A(int32, 1), A(int64, 1), plan, cursor, A(nb, 1), A(nb, 1),
                         A(nb, 2), A(int32, 1))))
            out.append((f"gather rows {dt} from {raw}", batching._gather_rows,
                        (A(raw, 2), plan, cursor, A(nb, 1), A(nb, 1), A(nb, 2))))
        out.append((f"all finite {dt}", epoch._any_nonfinite, (A(nb, 1), A(int32, 1))))
        bias_activation, column_sums, derivative_times = blas.epilogue_kernels(dt)
        out.append((f"GEMM epilogue bias+activation {dt}", bias_activation,
                    (A(nb, 2), A(nb, 1), int64, plan, cursor)))
        out.append((f"GEMM epilogue column sums {dt}", column_sums,
                    (A(nb, 2), A(nb, 1), A(nb, 2), plan, cursor)))
        out.append((f"GEMM epilogue derivative {dt}", derivative_times,
                    (A(nb, 2), A(nb, 2), int64, plan, cursor)))
    out.append(("reset counters", epoch._reset, (A(float64, 1), cursor)))
    out.append(("reset cursor", epoch._reset, (cursor, cursor)))
    return out


_PTXAS_USED = re.compile(r"Used (\d+) registers")
_PTXAS_SPILL = re.compile(r"(\d+) bytes spill stores, (\d+) bytes spill loads")
_PTXAS_SMEM = re.compile(r"(\d+) bytes smem")
_PTXAS_STACK = re.compile(r"(\d+) bytes stack frame")


def ptxas_report(ptxas, ptx, cc):
    """Registers, spill stores, spill loads, shared and stack bytes of one kernel, from ``ptxas -v``.

    A stack frame means local memory: a ``cuda.local.array`` that was not
    promoted to registers (its indices not constant after unrolling).

    Raises
    ------
    RuntimeError
        ``ptxas`` failed (its message is included).
    """
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "kernel.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        result = subprocess.run([ptxas, f"-arch=sm_{cc[0]}{cc[1]}", "-v", src,
                                 "-o", os.path.join(tmp, "kernel.cubin")],
                                capture_output=True, text=True, timeout=300)
    text = result.stdout + result.stderr
    if result.returncode != 0:
        if "Unsupported .version" in text:
            text += ("\n(NVVM is newer than this ptxas: install the NVVM of ptxas's CUDA "
                     "release, e.g. pip install \"nvidia-nvvm==13.0.*\" for CUDA 13.0)")
        raise RuntimeError(f"ptxas failed:\n{text}")
    regs = max((int(m) for m in _PTXAS_USED.findall(text)), default=0)
    spills = _PTXAS_SPILL.findall(text)
    stores = sum(int(s) for s, _ in spills)
    loads = sum(int(ld) for _, ld in spills)
    smem = max((int(m) for m in _PTXAS_SMEM.findall(text)), default=0)
    stack = max((int(m) for m in _PTXAS_STACK.findall(text)), default=0)
    return regs, stores, loads, smem, stack


def find_ptxas():
    """``ptxas`` on ``PATH``, else where ``cuda.pathfinder`` finds it (CUDA_HOME, wheels), or None."""
    found = shutil.which("ptxas")
    if found:
        return found
    try:
        from cuda import pathfinder
        return pathfinder.find_nvidia_binary_utility("ptxas")
    except Exception:  # an older cuda-pathfinder without binary lookup
        return None


def _sm(cc):
    return f"{cc[0]}{cc[1]}"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cc", nargs="+", default=["8.0", "9.0"],
                        help="compute capabilities (default: 8.0 9.0, A100 and H100/H200)")
    parser.add_argument("--no-ptxas", action="store_true", help="compile to PTX only")
    parser.add_argument("--jobs", type=int, default=os.cpu_count() or 1,
                        help="parallel ptxas processes")
    args = parser.parse_args(argv)
    ccs = [tuple(int(p) for p in cc.split(".")) for cc in args.cc]
    ptxas = None if args.no_ptxas else find_ptxas()
    if ptxas is None and not args.no_ptxas:
        print("ptxas not found (on PATH, or by cuda.pathfinder: it comes with a CUDA toolkit or "
              "the nvidia-cuda-nvcc wheel): checking that the PTX compiles, without register "
              "counts or spills")
    elif ptxas:
        print(f"ptxas: {ptxas}")
    from numba import cuda

    failures = []
    start = time.perf_counter()
    print(f"{'kernel':38s} {'cc':>4s} {'PTX':>7s} {'f64':>5s} {'regs':>5s} {'spill st/ld':>12s} "
          f"{'smem':>6s} {'stack':>6s}")
    with concurrent.futures.ThreadPoolExecutor(max(1, args.jobs)) as pool:
        for cc in ccs:
            pretend_device(cc)
            jobs = []
            for name, kernel, sig in kernels_to_check():
                try:
                    ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=cc)
                except Exception as exc:  # report every kernel, then fail
                    failures.append(f"{name} sm_{cc[0]}{cc[1]}: {type(exc).__name__}: {exc}")
                    print(f"{name:38s} {_sm(cc):>4s} COMPILE FAILED: {exc}")
                    continue
                f64 = len(re.findall(r"[.]f64", ptx))
                future = pool.submit(ptxas_report, ptxas, ptx, cc) if ptxas else None
                jobs.append((name, len(ptx), f64, future))
            for name, size, f64, future in jobs:
                row = f"{name:38s} {_sm(cc):>4s} {size:7d} {f64:5d}"
                if future is None:
                    print(row)
                    continue
                try:
                    regs, stores, loads, smem, stack = future.result()
                except RuntimeError as exc:
                    failures.append(f"{name} sm_{cc[0]}{cc[1]}: {exc}")
                    print(f"{row} PTXAS FAILED")
                    continue
                print(f"{row} {regs:5d} {stores:5d}/{loads:<6d} {smem:6d} {stack:6d}")
                if stores or loads:
                    failures.append(f"{name} sm_{cc[0]}{cc[1]}: spills {stores} B stores, "
                                    f"{loads} B loads")
                if stack:
                    failures.append(f"{name} sm_{cc[0]}{cc[1]}: {stack} B stack frame (local "
                                    f"memory: a local array not in registers)")
    n = len(kernels_to_check()) * len(ccs)
    print(f"{n} kernel compilations in {time.perf_counter() - start:.1f} s"
          f"{' (ptxas -v checked)' if ptxas else ' (PTX only)'}")
    if failures:
        print("FAILED:\n  " + "\n  ".join(failures))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
