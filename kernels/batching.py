"""Mini-batch preparation: a seeded in-place shuffle and a gather that normalizes.

Images stay in their compact storage dtype (uint8 for MNIST: 47 MB for 60,000
images instead of 188 MB as float32); each mini-batch is gathered into a small
float buffer and normalized on the way with a per-feature affine map
``x = raw * scale + shift``, which covers "simple" (``scale = 1/255``,
``shift = 0``) and "standard" (``scale = 1/std``, ``shift = -mean/std``)
normalization alike.
"""
import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy", inline="always")
def _splitmix64(state):
    # Steele, Lea & Flood (2014), "Fast splittable pseudorandom number
    # generators"; the constants are those of the published SplitMix64.
    state = (state + np.uint64(0x9E3779B97F4A7C15)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = state
    z = ((z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    z = ((z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    return state, z ^ (z >> np.uint64(31))


#: The SplitMix64 step ``(state, output) = splitmix64(state)`` for other kernels
#: (per-row random streams: :mod:`fastann.kernels.streams`).
splitmix64 = _splitmix64


@njit(cache=True, error_model="numpy")
def shuffle_inplace(order, seed):
    """Fisher-Yates shuffle of ``order`` driven by SplitMix64 from ``seed``.

    The same ``seed`` gives the same permutation on every platform and in
    every process, independent of NumPy's or Numba's global random state
    (Knuth, *TAOCP* vol. 2, Algorithm 3.4.2 P).

    Parameters
    ----------
    order : ndarray, shape (n,), int64
        Permuted in place.
    seed : int
        Any integer in ``[0, 2**63)``.
    """
    state = np.uint64(seed)
    for i in range(order.size - 1, 0, -1):
        state, r = _splitmix64(state)
        j = np.int64(r % np.uint64(i + 1))
        tmp = order[i]
        order[i] = order[j]
        order[j] = tmp


@njit(cache=True, error_model="numpy")
def gather_batch(X, y, order, start, stop, scale, shift, out, labels_out):
    """Copy rows ``order[start:stop]`` of ``X`` into ``out``, normalized.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_features), uint8 or float, C-contiguous
        Raw features.
    y : ndarray, shape (n_samples,), int32
        Encoded labels.
    order : ndarray, shape (n_samples,), int64
        Row order (a permutation, or ``arange`` for inference).
    start, stop : int
        Half-open range of positions in ``order``.
    scale, shift : ndarray, shape (n_features,), float (dtype of ``out``)
        ``out[i, j] = X[order[start + i], j] * scale[j] + shift[j]``.
    out : ndarray, shape (>= stop - start, n_features), float, written in place
    labels_out : ndarray, shape (>= stop - start,), int32, written in place
    """
    d = X.shape[1]
    for i in range(stop - start):
        row = order[start + i]
        labels_out[i] = y[row]
        for j in range(d):
            out[i, j] = X[row, j] * scale[j] + shift[j]
