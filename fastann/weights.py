"""The flat parameter vector of the kernels, seen as per-layer arrays.

The kernels keep every parameter in one flat vector, all weight matrices
first, then all bias vectors (:mod:`fastann.kernels.network`). Users see
``coefs_[l]`` of shape ``(d_l, d_{l+1})`` and ``intercepts_[l]`` of shape
``(d_{l+1},)`` (scikit-learn's names), or Keras's ``get_weights()`` list
``[W_0, b_0, W_1, b_1, ...]``.
"""
import numpy as np

from . import kernels


def layer_views(flat, layer_sizes):
    """``(coefs, intercepts)``: lists of views into ``flat`` (no copy).

    Parameters
    ----------
    flat : ndarray, shape (n_params,)
    layer_sizes : array-like of int, ``[d_0, ..., d_L]``
    """
    sizes = np.asarray(layer_sizes, np.int64)
    w_off, b_off = kernels.parameter_offsets(sizes)
    coefs, intercepts = [], []
    for layer in range(sizes.size - 1):
        shape = (int(sizes[layer]), int(sizes[layer + 1]))
        coefs.append(flat[w_off[layer]:w_off[layer + 1]].reshape(shape))
        intercepts.append(flat[b_off[layer]:b_off[layer + 1]])
    return coefs, intercepts


def flatten(coefs, intercepts, dtype):
    """The flat vector (kernel layout) of per-layer ``coefs`` and ``intercepts``, as ``dtype``."""
    parts = [np.asarray(c, dtype).ravel() for c in coefs]
    parts += [np.asarray(b, dtype).ravel() for b in intercepts]
    return np.concatenate(parts)


def keras_order(flat, layer_sizes):
    """Copies ``[W_0, b_0, W_1, b_1, ...]`` (Keras's ``get_weights`` order)."""
    coefs, intercepts = layer_views(flat, layer_sizes)
    return [a.copy() for pair in zip(coefs, intercepts) for a in pair]


def from_keras_order(weights, dtype):
    """The flat vector of a ``[W_0, b_0, W_1, b_1, ...]`` list."""
    return flatten(weights[0::2], weights[1::2], dtype)


def layer_sizes_of(coefs):
    """``[d_0, ..., d_L]`` from the weight matrices' shapes, int64."""
    return np.array([coefs[0].shape[0]] + [c.shape[1] for c in coefs], np.int64)
