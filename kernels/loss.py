"""Softmax + cross-entropy loss and its gradient in one numerically stable pass."""
import numpy as np
from numba import njit


@njit(cache=True, error_model="numpy")
def softmax_cross_entropy(logits, labels, grad_scale, grad):
    """Softmax cross-entropy of a batch: summed loss, correct count and gradient.

    For each row ``z`` with true class ``y``: ``loss = logsumexp(z) - z[y]``,
    computed after subtracting ``max(z)`` so ``exp`` never overflows, and
    ``dL/dz = (softmax(z) - onehot(y)) * grad_scale`` (Bishop, *Pattern
    Recognition and Machine Learning*, 2006, eq. 4.109). Each logit is read
    once and its gradient written once.

    Parameters
    ----------
    logits : ndarray, shape (n_samples, n_classes), float32 or float64
    labels : ndarray, shape (n_samples,), integer, values in ``[0, n_classes)``
    grad_scale : float
        Multiplies the gradient; ``1 / batch_size`` gives the gradient of the
        mean loss.
    grad : ndarray, shape (n_samples, n_classes), same dtype as ``logits``
        Written in place; may be ``logits`` itself.

    Returns
    -------
    loss_sum : float
        Sum (not mean) of the per-sample losses, in nats, accumulated in float64.
    n_correct : int
        Number of rows whose arg-max equals the label (ties: first index).
    """
    n, k = logits.shape
    loss_sum = 0.0
    n_correct = 0
    scale = logits.dtype.type(grad_scale)
    for i in range(n):
        best = 0
        zmax = logits[i, 0]
        for j in range(1, k):
            if logits[i, j] > zmax:
                zmax = logits[i, j]
                best = j
        y = labels[i]
        if best == y:
            n_correct += 1
        zy = logits[i, y]
        total = logits.dtype.type(0.0)
        for j in range(k):
            e = np.exp(logits[i, j] - zmax)
            grad[i, j] = e
            total += e
        loss_sum += np.log(total) - (zy - zmax)
        inv = scale / total
        for j in range(k):
            grad[i, j] *= inv
        grad[i, y] -= scale
    return loss_sum, n_correct


@njit(cache=True, error_model="numpy")
def log_softmax_inplace(logits):
    """``logits <- logits - logsumexp(logits, axis=1)`` (stable), shape (n, k)."""
    n, k = logits.shape
    for i in range(n):
        zmax = logits[i, 0]
        for j in range(1, k):
            if logits[i, j] > zmax:
                zmax = logits[i, j]
        total = 0.0
        for j in range(k):
            total += np.exp(logits[i, j] - zmax)
        shift = zmax + np.log(total)
        for j in range(k):
            logits[i, j] -= shift


@njit(cache=True, error_model="numpy")
def weighted_softmax_cross_entropy(logits, labels, weights, grad_scale, grad):
    """:func:`softmax_cross_entropy` with a weight per row.

    Row ``i``'s gradient is ``(softmax(z_i) - onehot(y_i)) * weights[i] *
    grad_scale``; with ``grad_scale = 1 / sum(weights of the mini-batch)``
    that is the gradient of the weighted mean loss
    ``sum_i w_i loss_i / sum_i w_i``. The arithmetic is that of
    :func:`softmax_cross_entropy` with ``grad_scale`` replaced by
    ``weights[i] * grad_scale``, so unit weights give identical bits.

    Parameters
    ----------
    logits : ndarray, shape (n_samples, n_classes), float32 or float64
    labels : ndarray, shape (n_samples,), integer
    weights : ndarray, shape (n_samples,), float64, >= 0
    grad_scale : float
    grad : ndarray, shape (n_samples, n_classes), same dtype as ``logits``
        Written in place; may be ``logits`` itself.

    Returns
    -------
    loss_sum : float
        ``sum_i weights[i] * loss_i`` (nats), accumulated in float64.
    n_correct : int
        Rows whose arg-max equals the label (not weighted).
    """
    n, k = logits.shape
    loss_sum = 0.0
    n_correct = 0
    for i in range(n):
        scale = logits.dtype.type(weights[i] * grad_scale)
        best = 0
        zmax = logits[i, 0]
        for j in range(1, k):
            if logits[i, j] > zmax:
                zmax = logits[i, j]
                best = j
        y = labels[i]
        if best == y:
            n_correct += 1
        zy = logits[i, y]
        total = logits.dtype.type(0.0)
        for j in range(k):
            e = np.exp(logits[i, j] - zmax)
            grad[i, j] = e
            total += e
        loss_sum += weights[i] * (np.log(total) - (zy - zmax))
        inv = scale / total
        for j in range(k):
            grad[i, j] *= inv
        grad[i, y] -= scale
    return loss_sum, n_correct
