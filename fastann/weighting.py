"""Sample and class weights: the per-row weights of the weighted mean loss.

``MLPClassifier.fit(X, y, sample_weight=...)`` and ``class_weight`` follow
scikit-learn's definitions: row ``i`` gets ``w_i = sample_weight[i] *
class_weight[y_i]``, with ``class_weight="balanced"`` meaning
``n_samples / (n_classes * bincount(y))``
(:func:`sklearn.utils.class_weight.compute_class_weight`). The kernels then
minimize, per mini-batch ``B``, the weighted mean ``sum_{i in B} w_i loss_i /
sum_{i in B} w_i`` (:mod:`fastann.kernels.epoch_options`).
"""
import numbers

import numpy as np
from sklearn.utils.class_weight import compute_class_weight


def check_sample_weight(sample_weight, n_samples):
    """Validate ``sample_weight`` and return it as a new float64 array (or None).

    Parameters
    ----------
    sample_weight : None, float or array-like, shape (n_samples,)
        A single number weights every row alike.
    n_samples : int

    Returns
    -------
    ndarray, shape (n_samples,), float64, C-contiguous, or None

    Raises
    ------
    ValueError
        Not 1-D, a length other than ``n_samples``, NaN or infinity, a
        negative weight, or all weights zero.
    TypeError
        Values that are not numbers.
    """
    if sample_weight is None:
        return None
    if isinstance(sample_weight, numbers.Number):
        weights = np.full(n_samples, float(sample_weight))
    else:
        try:
            weights = np.array(sample_weight, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"sample_weight must be numbers, got {exc}") from exc
    if weights.ndim != 1:
        raise ValueError(f"sample_weight must be 1-D with one weight per sample, got shape "
                         f"{weights.shape}")
    if weights.shape[0] != n_samples:
        raise ValueError(f"sample_weight has {weights.shape[0]} weights but X has {n_samples} "
                         f"samples")
    if not np.all(np.isfinite(weights)):
        raise ValueError("sample_weight contains NaN or infinity")
    if np.any(weights < 0):
        raise ValueError("sample_weight must be non-negative")
    if not np.any(weights > 0):
        raise ValueError("Sample weights must contain at least one non-zero number "
                         "(sample_weight is all zero)")
    return np.ascontiguousarray(weights)


def row_weights(y, y_idx, classes, class_weight, sample_weight):
    """``sample_weight * class_weight[y]`` per row, or None when neither is given.

    Parameters
    ----------
    y : ndarray, shape (n_samples,)
        The labels, as given (for ``"balanced"``).
    y_idx : ndarray, shape (n_samples,), int
        Their codes (indices into ``classes``).
    classes : ndarray, shape (n_classes,)
        All classes, sorted.
    class_weight : None, "balanced" or dict {label: weight}
        Labels missing from a dict weigh 1.
    sample_weight : ndarray, shape (n_samples,), float64, or None
        Already checked by :func:`check_sample_weight`.

    Returns
    -------
    ndarray, shape (n_samples,), float64, or None

    Raises
    ------
    ValueError
        A dict with labels that are not classes or with negative or
        non-finite weights, or class weights that leave every row at 0.
    """
    if class_weight is None:
        return sample_weight
    if isinstance(class_weight, dict):
        values = np.array(list(class_weight.values()), dtype=np.float64)
        if not np.all(np.isfinite(values)) or np.any(values < 0):
            raise ValueError(f"class_weight values must be finite and non-negative, got "
                             f"{class_weight!r}")
    per_class = compute_class_weight(class_weight, classes=classes, y=y)
    weights = np.asarray(per_class, np.float64)[np.asarray(y_idx)]
    if sample_weight is not None:
        weights = weights * sample_weight
    if not np.any(weights > 0):
        raise ValueError("class_weight and sample_weight leave every sample with weight 0")
    return weights
