"""Where the parallel epoch's time goes: its parts timed one at a time, on one thread.

    python benchmarks/parallel_epoch_parts.py [--workload S] [--threads 1]

Runs the pieces of :func:`fastann.kernels.train_epoch_parallel` over one
epoch of shuffled MNIST rows, each piece alone in a loop over all
mini-batches (serially, or with ``--threads`` in a ``prange`` like the
kernel), and prints milliseconds per epoch with the first layer's achieved
GFMA/s: the sparse first-layer forward (rows' nonzeros times ``W_0``), the rest
of region 1 (later layers, loss, back-propagation), the first layer's weight
gradient with a plain SGD step (rate 0) and with an Adam step, and the whole epoch for
reference. The pieces call the kernel's own functions, so what is timed is
what trains. Arithmetic bound: each multiply-add of the first layer reads one
float of ``W_0`` (forward) or of its gradient block (backward); ``W_0`` (784 x
128 float32, 401 KB) does not fit a core's L1 cache.
"""
import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __package__ in (None, ""):
    sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

from benchmarks.common import WORKLOADS, load_data  # noqa: E402


def _parts():
    from fastann.kernels import fused
    from fastann.kernels.network import activation_offsets, parameter_offsets
    from fastann.kernels.optimizers import step_scalars

    @njit(parallel=True)
    def first_layer_forward(X, csr, order, net, scale, acts, batch):
        params, sizes, _ = net
        w_off, _ = parameter_offsets(sizes)
        W = params[w_off[0]:w_off[1]].reshape((sizes[0], sizes[1]))
        out = acts[:batch * sizes[1]].reshape((batch, sizes[1]))
        for start in range(0, order.size - batch + 1, batch):
            for r in prange(batch):
                g = order[start + r]
                out[r, :] = 0
                fused._first_layer_sparse(out[r], W, csr[1], csr[2], csr[0][g], csr[0][g + 1],
                                          scale)

    @njit(parallel=True)
    def region1(X, csr, order, norm, net, buffers, wt, t_off, batch, chunks):
        _, sizes, _ = net
        w_off, b_off = parameter_offsets(sizes)
        offsets = (w_off, b_off, activation_offsets(sizes, buffers.labels.shape[0]))
        per_chunk = (batch + chunks - 1) // chunks
        for start in range(0, order.size - batch + 1, batch):
            rows = order[start:start + batch]
            for c in prange(chunks):
                lo, hi = min(c * per_chunk, batch), min((c + 1) * per_chunk, batch)
                fused._rows_forward_backward(lo, hi, rows, X, csr, norm, buffers.inputs, True,
                                             net, offsets, wt, t_off, buffers.acts,
                                             buffers.deltas, buffers.labels, 1.0 / batch)

    @njit(parallel=True)
    def first_layer_gradient(csr, order, scale, net, buffers, optimizer, state, hyper, batch,
                             blocks):
        _, sizes, _ = net
        w_off, b_off = parameter_offsets(sizes)
        offsets = (w_off, b_off, activation_offsets(sizes, buffers.labels.shape[0]))
        scalars = step_scalars(optimizer, 10, hyper)
        for start in range(0, order.size - batch + 1, batch):
            rows = order[start:start + batch]
            for b in prange(blocks):
                fused._first_layer_gradient_sparse(b, blocks, rows, csr, scale, net, offsets,
                                                   buffers.deltas, buffers.grads,
                                                   optimizer, state, scalars, hyper)

    return first_layer_forward, region1, first_layer_gradient


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workload", default="S", choices=["S", "T"])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    import numba
    from fastann import kernels
    from fastann.backends.cpu import CpuBackend, allocate
    numba.set_num_threads(args.threads)
    w = WORKLOADS[args.workload]
    X, y, _ = load_data("train", None)
    y = y.astype(np.int32)
    sizes = np.array([X.shape[1], *w.hidden, 10], np.int64)
    w_off, b_off = kernels.parameter_offsets(sizes)
    rng = np.random.default_rng(0)
    params = (0.05 * rng.standard_normal(b_off[-1])).astype(np.float32)
    net = kernels.Network(params, sizes, kernels.RELU)
    norm = kernels.Normalization(np.full(sizes[0], 1 / 255, np.float32),
                                 np.zeros(sizes[0], np.float32))
    csr = kernels.compressed_rows(X)
    buffers = kernels.ParallelBuffers(**allocate(
        kernels.parallel_buffer_shapes(sizes, w.batch_size, True), np.float32))
    buffers.labels[:] = 0
    state = kernels.OptimizerState(np.zeros(0, np.float32), np.zeros(params.size, np.float32),
                                   np.zeros(params.size, np.float32))
    hyper = kernels.hyperparameters(1e-3, 0.9, 0.9, 0.999, 1e-8)
    sgd = kernels.hyperparameters(0.0)
    order = rng.permutation(X.shape[0]).astype(np.int64)
    n_later = sum(int(sizes[i] * sizes[i + 1]) for i in range(1, sizes.size - 1))
    wt = np.zeros(n_later, np.float32)
    t_off = np.zeros(sizes.size, np.int64)
    for l in range(1, sizes.size - 1):
        t_off[l + 1] = t_off[l] + sizes[l] * sizes[l + 1]
    forward, region1, gradient = _parts()
    batch, chunks = w.batch_size, kernels.structs.ROW_CHUNKS
    blocks = kernels.structs.COLUMN_BLOCKS
    scale = norm.scale
    backend = CpuBackend(sizes, kernels.RELU, kernels.ADAM, norm, params.copy(),
                         n_threads=args.threads, kernel="parallel")
    backend.load_data(X, y, batch)

    def whole_epoch():
        with backend.running():
            backend.train(order, hyper, 0)

    def timed(run):
        run()
        times = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            run()
            times.append(time.perf_counter() - start)
        return float(np.median(times))

    nnz = sum(int(csr[0][g + 1] - csr[0][g]) for g in order[:(X.shape[0] // batch) * batch])
    fma = nnz * int(sizes[1])
    cases = [
        ("first layer forward (sparse)", lambda: forward(X, csr, order, net, scale, buffers.acts,
                                                         batch), fma),
        ("region 1: rows forward, loss, backward", lambda: region1(
            X, csr, order, norm, net, buffers, wt, t_off, batch, chunks), None),
        ("first layer weight gradient + SGD step", lambda: gradient(
            csr, order, scale, net, buffers, kernels.SGD, state, sgd, batch, blocks), fma),
        ("first layer weight gradient + Adam step", lambda: gradient(
            csr, order, scale, net, buffers, kernels.ADAM, state, hyper, batch, blocks), None),
        ("whole epoch (train_epoch_parallel)", whole_epoch, None),
    ]
    print(f"workload {w.name}, {args.threads} thread(s), shuffled rows, median of {args.repeat};"
          f" first layer: {fma / 1e9:.2f} GFMA per epoch ({nnz / len(order):.0f} nonzeros/row)")
    for name, run, work in cases:
        seconds = timed(run)
        rate = f", {work / seconds / 1e9:.1f} GFMA/s" if work else ""
        print(f"  {name:40s} {1e3 * seconds:7.1f} ms/epoch{rate}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
