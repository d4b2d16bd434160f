"""Design benchmark: the first dense layer on real MNIST batches, BLAS vs the sparse kernels.

Times forward (``f(XW + b)``) plus weight gradient (``X^T dZ``) of the first
layer for several widths and batch sizes, with BLAS on 1 and on all threads,
against :mod:`fastann.kernels.sparse` (one thread), and prints a Markdown table of
medians. Run: ``python benchmarks/dense_vs_sparse.py``.
"""
import argparse
import time

import numpy as np
from threadpoolctl import threadpool_limits

from fastann import kernels


def median_us(fn, repeat):
    fn()
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1e6 * float(np.median(times))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args(argv)
    from fastann.datasets import load_mnist
    X, y = load_mnist("train")
    y = y.astype(np.int32)
    scale = np.full(784, 1 / 255, np.float32)
    shift = np.zeros(784, np.float32)
    print(f"MNIST density: {np.count_nonzero(X[:10000]) / X[:10000].size:.3f}")
    print("| batch | width | BLAS 1 thread (us) | BLAS all threads (us) | sparse (us) | best |")
    print("|---|---|---|---|---|---|")
    rng = np.random.default_rng(0)
    order = rng.permutation(X.shape[0])
    for batch in (32, 128, 256):
        for width in (64, 128, 256, 1024):
            W = (0.05 * rng.standard_normal((784, width))).astype(np.float32)
            b = np.zeros(width, np.float32)
            dZ = rng.standard_normal((batch, width)).astype(np.float32)
            dense = np.zeros((batch, 784), np.float32)
            labels = np.zeros(batch, np.int32)
            out = np.zeros((batch, width), np.float32)
            dW, db = np.zeros_like(W), np.zeros(width, np.float32)
            row_ptr = np.zeros(batch + 1, np.int64)
            index, value = np.zeros(batch * 784, np.int32), np.zeros(batch * 784, np.float32)
            empty = np.zeros((0, 0), np.float32)

            def blas():
                kernels.gather_batch(X, y, order, 0, batch, scale, shift, dense, labels)
                kernels.dense_forward(dense, W, b, kernels.RELU, out)
                kernels.dense_backward(dense, W, dZ, dW, db, empty, kernels.RELU)

            def sparse():
                kernels.gather_sparse_batch(X, y, order, 0, batch, scale, labels, row_ptr, index, value)
                kernels.sparse_dense_forward(row_ptr, index, value, batch, W, b, kernels.RELU, out)
                kernels.sparse_dense_backward(row_ptr, index, value, batch, dZ, dW, db)

            with threadpool_limits(1, "blas"):
                one = median_us(blas, args.repeat)
                sp = median_us(sparse, args.repeat)
            every = median_us(blas, args.repeat)
            best = min((one, "BLAS 1"), (every, "BLAS all"), (sp, "sparse"))[1]
            print(f"| {batch} | {width} | {one:.0f} | {every:.0f} | {sp:.0f} | {best} |", flush=True)


if __name__ == "__main__":
    main()
