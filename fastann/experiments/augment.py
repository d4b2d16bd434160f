"""Random-shift augmentation: every epoch sees the training images moved a little.

:meth:`MLPClassifier.fit` trains on fixed data, so a run whose images change
every epoch calls :meth:`~fastann.MLPClassifier.partial_fit` once per epoch.
``partial_fit`` trains one epoch at a time and cannot know the run's length,
which a cosine schedule needs; the rate of each epoch is therefore computed by
:func:`fastann.schedules.learning_rate_schedule` (as ``fit`` does, the
``plateau`` schedule and the warm-up from this run's own records) and set with
``set_params``. The monitoring set is scored by the runner into
its own per-epoch records: ``model.history_`` is only read.
"""
import time

import numpy as np

from ..schedules import learning_rate_schedule

__all__ = ["fit_with_shifts", "random_shifts"]


def random_shifts(X, rng, max_shift, image_shape=(28, 28)):
    """Each image of ``X`` moved by a random whole-pixel offset in ``[-max_shift, max_shift]``
    along each axis, filling with zeros (the cheapest MNIST augmentation)."""
    n = len(X)
    images = X.reshape(n, *image_shape)
    out = np.zeros_like(images)
    rows, cols = image_shape
    dy = rng.integers(-max_shift, max_shift + 1, n)
    dx = rng.integers(-max_shift, max_shift + 1, n)
    for a in range(-max_shift, max_shift + 1):
        for b in range(-max_shift, max_shift + 1):
            idx = np.flatnonzero((dy == a) & (dx == b))
            out[idx, max(a, 0):rows + min(a, 0), max(b, 0):cols + min(b, 0)] = \
                images[idx, max(-a, 0):rows + min(-a, 0), max(-b, 0):cols + min(-b, 0)]
    return out.reshape(X.shape)


def fit_with_shifts(model, X, y, X_eval, y_eval, *, max_shift, seed):
    """Train ``model`` for its ``epochs``, each epoch on freshly shifted copies of ``X``.

    Returns
    -------
    seconds : float
        Time spent shifting and training (the evaluation excluded).
    history : list of dict
        Per epoch, a copy of the epoch's ``model.history_`` record with
        ``val_loss``, ``val_accuracy`` and ``n_validation`` of ``(X_eval, y_eval)``.
    """
    params = model.get_params()
    schedule, base, epochs = params["lr_schedule"], params["learning_rate"], params["epochs"]
    rate_at, warmup = learning_rate_schedule(params), params["warmup_epochs"]
    rng = np.random.default_rng([seed, 1])
    classes = np.unique(y)
    history, seconds = [], 0.0
    try:
        for epoch in range(epochs):
            rate = rate_at(epoch, epochs, history)
            model.set_params(learning_rate=rate, lr_schedule="constant", warmup_epochs=0)
            n_before = getattr(model, "n_iter_", 0)
            start = time.perf_counter()
            model.partial_fit(random_shifts(X, rng, max_shift), y, classes=classes)
            seconds += time.perf_counter() - start
            if model.n_iter_ == n_before:  # diverged: partial_fit rolled the epoch back
                break
            eval_index = np.searchsorted(model.classes_, y_eval)
            log_proba = model.predict_log_proba(X_eval)
            history.append(dict(
                model.history_[-1],
                val_loss=float(-log_proba[np.arange(len(y_eval)), eval_index].mean()),
                val_accuracy=float(np.mean(log_proba.argmax(axis=1) == eval_index)),
                n_validation=int(len(y_eval))))
    finally:
        model.set_params(learning_rate=base, lr_schedule=schedule, warmup_epochs=warmup)
    return seconds, history
