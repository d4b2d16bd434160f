"""Same seed, same weights: final-weight hashes of short runs, pinned across refactorings.

The runs use OpenBLAS's Haswell kernels on one or two threads in a child
process (``OPENBLAS_CORETYPE=Haswell``), so the bits do not depend on which
kernels OpenBLAS would pick for this CPU. The hashes were recorded with the
code before the one-way redesign; a change that alters any of them changes the
arithmetic (order of operations, a kernel, the random stream) and must say so.
They pin the BLAS epoch (``cpu_kernel="blas"``); the parallel epoch's results
do not depend on BLAS or the thread count (``tests/test_parallel_epoch.py``).
"""
import json
import os
import platform
import subprocess
import sys

import pytest

SCRIPT = r"""
import hashlib, json, sys, warnings
import numpy as np
from fastann import MLPClassifier
from fastann.datasets import load_dataset

X, y = load_dataset(sys.argv[1], "train")
X, y = X[:1500], y[:1500]
configs = {
    "adam_relu_sparse_1thread": dict(hidden_layer_sizes=(32,), batch_size=64, epochs=2,
                                     n_threads=1),
    "adam_relu_dense_2threads": dict(hidden_layer_sizes=(32,), batch_size=64, epochs=2,
                                     n_threads=2, normalization="standard"),
    "momentum_sigmoid_penalties_step": dict(hidden_layer_sizes=(16, 16), activation="sigmoid",
                                            solver="momentum", learning_rate=0.05, l1=1e-5,
                                            l2=1e-4, lr_schedule="step", lr_step_size=1,
                                            batch_size=100, epochs=3, n_threads=1),
    "gd_float64_microbatches": dict(hidden_layer_sizes=(8,), solver="gd", learning_rate=0.5,
                                    dtype="float64", epochs=3, n_threads=2),
    "nesterov_tanh": dict(hidden_layer_sizes=(12,), activation="tanh", solver="nesterov",
                          learning_rate=0.02, batch_size=32, epochs=1, n_threads=2),
    "adamw_early_stopping": dict(hidden_layer_sizes=(24,), solver="adamw", l2=1e-3,
                                 early_stopping=True, n_iter_no_change=1, epochs=4,
                                 batch_size=128, n_threads=1),
    "softmax_regression_sgd": dict(hidden_layer_sizes=(), solver="sgd", learning_rate=0.1,
                                   batch_size=50, epochs=2, n_threads=1),
}
out = {}
for name, params in configs.items():
    model = MLPClassifier(random_state=0, cpu_kernel="blas", **params).fit(X, y)
    h = hashlib.sha256()
    for a in list(model.coefs_) + list(model.intercepts_):
        h.update(np.ascontiguousarray(a).tobytes())
    out[name] = h.hexdigest()[:16]
print(json.dumps(out))
"""

# Recorded on x86-64 with scipy 1.17.1's OpenBLAS (Haswell kernels), before the redesign.
PINNED = {
    "adam_relu_sparse_1thread": "a0dbb710a96c48c8",
    "adam_relu_dense_2threads": "844f37607714a2b7",
    "momentum_sigmoid_penalties_step": "daf61353c63bf5a0",
    "gd_float64_microbatches": "b51b22e5b88c1b1f",
    "nesterov_tanh": "7c6dd86fb9cff543",
    "adamw_early_stopping": "bc707969b6e7efc2",
    "softmax_regression_sgd": "2e3ebceb8ed2a8b5",
}

DATA = os.path.join(os.path.dirname(__file__), "data")


def _hashes():
    env = dict(os.environ, OPENBLAS_CORETYPE="Haswell", OPENBLAS_NUM_THREADS="2",
               NUMBA_NUM_THREADS="2")
    result = subprocess.run([sys.executable, "-c", SCRIPT, DATA], capture_output=True, text=True,
                            env=env, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="hashes pinned for OpenBLAS's x86-64 Haswell kernels")
def test_same_seed_gives_the_pinned_weights():
    assert _hashes() == PINNED
