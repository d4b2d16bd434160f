"""Learning-rate schedules: the learning rate to use in a given epoch."""
import math

SCHEDULES = ("constant", "step", "exponential", "cosine")


def scheduled_learning_rate(schedule, base_rate, epoch, n_epochs, decay, step_size):
    """Learning rate for 0-based ``epoch``.

    Parameters
    ----------
    schedule : {"constant", "step", "exponential", "cosine"}
        ``step``: ``base * decay ** (epoch // step_size)``;
        ``exponential``: ``base * decay ** epoch``;
        ``cosine``: ``base * (1 + cos(pi * epoch / n_epochs)) / 2`` (Loshchilov &
        Hutter 2017, "SGDR", eq. 5 with one cycle and ``eta_min = 0``).
    base_rate : float
    epoch : int
    n_epochs : int
        Length of the run (for ``cosine``).
    decay : float
        Multiplicative factor in ``(0, 1]`` for ``step`` and ``exponential``.
    step_size : int
        Epochs between decays for ``step``.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        Unknown schedule name.
    """
    if schedule == "constant":
        return base_rate
    if schedule == "step":
        return base_rate * decay ** (epoch // step_size)
    if schedule == "exponential":
        return base_rate * decay ** epoch
    if schedule == "cosine":
        return base_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / max(n_epochs, 1)))
    raise ValueError(f"unknown lr_schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
