"""Denormals are flushed to zero inside the training kernels, never outside them."""
import platform

import numpy as np
import pytest
from numba import njit

from fastann import MLPClassifier
from fastann.datasets import load_dataset
from fastann.kernels.denormals import FLUSH_BITS, flush_denormals, restore_denormals

DATA = __import__("pathlib").Path(__file__).parent / "data"
x86 = pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"),
                         reason="MXCSR is x86-64's")


@njit
def _flush():
    return flush_denormals()


@njit
def _restore(saved):
    restore_denormals(saved)


@x86
def test_flush_zeroes_denormals_on_this_thread_until_restored():
    tiny, factor = np.float32(1e-38), np.float32(0.01)   # the product, 1e-40, is denormal
    before = tiny * factor
    saved = _flush()
    try:
        inside = tiny * factor                           # NumPy, on the flushed thread
    finally:
        _restore(saved)
    assert before > 0 and inside == 0 and tiny * factor == before
    assert FLUSH_BITS == (1 << 15) | (1 << 6)


@pytest.mark.parametrize("cpu_kernel", ["blas", "parallel"])
def test_training_leaves_the_callers_floating_point_mode_alone(cpu_kernel):
    X, y = load_dataset(DATA, "train")
    MLPClassifier(hidden_layer_sizes=(8,), epochs=1, random_state=0, cpu_kernel=cpu_kernel,
                  n_threads=1).fit(X[:300], y[:300])
    assert np.float32(1e-38) * np.float32(0.01) > 0     # still gradual underflow here
