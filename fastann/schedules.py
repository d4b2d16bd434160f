"""Learning-rate schedules: the learning rate to use in a given epoch.

Every rate is a pure function of the epoch number, the run's length and the
losses of the epochs already completed (the ``history_`` records), so a
resumed run (:meth:`fastann.MLPClassifier.resume`) recomputes exactly the
rates of an uninterrupted one: no schedule keeps state of its own.
"""
import math

SCHEDULES = ("constant", "step", "exponential", "cosine", "plateau")


def scheduled_learning_rate(schedule, base_rate, epoch, n_epochs, decay, step_size, *,
                            losses=(), patience=3, tol=1e-4, min_lr=0.0, warmup_epochs=0):
    """Learning rate for 0-based ``epoch``.

    Parameters
    ----------
    schedule : {"constant", "step", "exponential", "cosine", "plateau"}
        ``step``: ``base * decay ** (epoch // step_size)``;
        ``exponential``: ``base * decay ** epoch``;
        ``cosine``: ``base * (1 + cos(pi * epoch / n_epochs)) / 2`` (Loshchilov &
        Hutter 2017, "SGDR", eq. 5 with one cycle and ``eta_min = 0``);
        ``plateau``: multiplied by ``decay`` whenever the monitored loss has
        not improved by ``tol`` for ``patience`` epochs, never below
        ``min_lr`` (:func:`plateau_learning_rate`, Keras's ``ReduceLROnPlateau``).
    base_rate : float
    epoch : int
    n_epochs : int
        Length of the run (for ``cosine``).
    decay : float
        Multiplicative factor in ``(0, 1]`` for ``step``, ``exponential`` and ``plateau``.
    step_size : int
        Epochs between decays for ``step``.
    losses : sequence of float, optional
        The monitored loss of each completed epoch, in order
        (:func:`monitored_losses` of the history); ``plateau`` reads the first
        ``epoch`` of them.
    patience : int, default=3
        ``plateau``: epochs without improvement before the rate is reduced.
    tol : float, default=1e-4
        ``plateau``: an epoch improves when its loss is below the best so far by more than ``tol``.
    min_lr : float, default=0.0
        ``plateau``: the rate is never reduced below this.
    warmup_epochs : int, default=0
        Linear warm-up, composed with any schedule: the rate of epoch ``e <
        warmup_epochs`` is multiplied by ``(e + 1) / (warmup_epochs + 1)``,
        so it rises from about 0 to the scheduled rate, reached at epoch
        ``warmup_epochs`` (Goyal et al. 2017, per epoch instead of per step).

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Unknown schedule name, or ``plateau`` with fewer than ``epoch`` losses.
    """
    if schedule == "constant":
        rate = base_rate
    elif schedule == "step":
        rate = base_rate * decay ** (epoch // step_size)
    elif schedule == "exponential":
        rate = base_rate * decay ** epoch
    elif schedule == "cosine":
        rate = base_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / max(n_epochs, 1)))
    elif schedule == "plateau":
        if len(losses) < epoch:
            raise ValueError(f"the plateau schedule needs the losses of the {epoch} epochs "
                             f"before epoch {epoch}, got {len(losses)}")
        rate = plateau_learning_rate(base_rate, losses[:epoch], decay, patience, tol, min_lr)
    else:
        raise ValueError(f"unknown lr_schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    return rate * warmup_factor(epoch, warmup_epochs)


def warmup_factor(epoch, warmup_epochs):
    """``(epoch + 1) / (warmup_epochs + 1)`` during the warm-up, 1 afterwards."""
    if epoch >= warmup_epochs:
        return 1.0
    return (epoch + 1) / (warmup_epochs + 1)


def plateau_learning_rate(base_rate, losses, factor, patience, tol, min_lr):
    """The rate after the epochs whose monitored ``losses`` are given (Keras's ``ReduceLROnPlateau``).

    Replays the callback over ``losses``: an epoch improves when its loss is
    below the best so far minus ``tol`` (the first finite one always does);
    after ``patience`` epochs in a row without improvement the rate, if above
    ``min_lr``, becomes ``max(rate * factor, min_lr)`` and the count restarts.
    No cooldown.

    Parameters
    ----------
    base_rate : float
    losses : sequence of float
        One per completed epoch.
    factor : float
    patience : int
    tol : float
    min_lr : float

    Returns
    -------
    float
    """
    rate, best, wait = base_rate, math.inf, 0
    for loss in losses:
        if loss < best - tol:
            best, wait = loss, 0
            continue
        wait += 1
        if wait >= patience:
            if rate > min_lr:
                rate = max(rate * factor, min_lr)
            wait = 0
    return rate


def monitored_losses(history):
    """Per ``history_`` record, the validation loss, or the training loss without validation."""
    return [r["train_loss"] if r.get("val_loss") is None else r["val_loss"] for r in history]


def learning_rate_schedule(params):
    """The schedule of an estimator's parameters as ``rate(epoch, n_epochs, history)``.

    Parameters
    ----------
    params : dict
        ``MLPClassifier.get_params()``: ``lr_schedule``, ``learning_rate``,
        ``lr_decay``, ``lr_step_size``, ``lr_patience``, ``tol``, ``min_lr``
        and ``warmup_epochs`` are read.

    Returns
    -------
    callable ``(epoch, n_epochs, history) -> float``
        ``history`` is the list of ``history_`` records of the completed epochs.
    """
    schedule, base, decay, step = (params["lr_schedule"], params["learning_rate"],
                                   params["lr_decay"], params["lr_step_size"])
    options = dict(patience=params["lr_patience"], tol=params["tol"], min_lr=params["min_lr"],
                   warmup_epochs=params["warmup_epochs"])

    def rate(epoch, n_epochs, history):
        losses = monitored_losses(history) if schedule == "plateau" else ()
        return scheduled_learning_rate(schedule, base, epoch, n_epochs, decay, step,
                                       losses=losses, **options)
    return rate
