"""Where training runs: one interface, a CPU and a CUDA implementation.

A backend owns everything of one ``fit`` that lives on its device: the
training data, the parameters and optimizer state, and the work buffers,
allocated once. The training loop (:mod:`fastann.training`) drives it through
these methods and never asks which device it is:

``load_data(X, y, batch_size)``
    Take the training rows (uint8 or float) and encoded labels; allocate the
    epoch's buffers. Data already loaded (the same arrays) is not copied again.
``train(order, hyper, step)``
    Run the mini-batches of ``order`` (int64 row indices) with the
    :class:`~fastann.kernels.Hyperparameters` ``hyper``; return
    ``(loss_sum, n_correct, step)``.

Only the CPU backend has the training options (sample weights, dropout,
augmentation): ``load_data(..., sample_weight=w)``, ``train(..., noise=(seed,
offset))`` and ``configure(dropout, augment, image_shape)``; the model refuses
them with ``device="cuda"``, so the CUDA backend is never asked.
``predict_log_proba(X)``
    Log-probabilities with the current parameters, as a host array.
``evaluate(X, y)``
    ``(loss, accuracy)`` on rows ``X`` with class codes ``y``: the mean of
    ``-log p(y)`` and the share of rows whose first arg-max is ``y`` (the
    validation scores of each epoch). The CUDA backend copies back only these.
``outputs_finite(X)``
    Whether every log-probability on ``X`` is finite (the divergence check).
``get_parameters()`` / ``set_parameters(params)``
    The flat parameter vector (layout of :mod:`fastann.kernels.network`) as a
    host copy, and its replacement.
``get_optimizer_state()`` / ``set_optimizer_state(state)``
    ``{"velocity", "m", "v"}`` host copies, and their replacement.
``snapshot()`` / ``restore(snapshot)``
    Copy parameters and optimizer state on the device, and put such a copy
    back (rolling back a diverged or interrupted epoch).
``parameters_finite()``
    Whether every parameter is finite.
``release()``
    Drop the data and buffers (parameters stay readable).
"""
from .cpu import CpuBackend

DEVICES = ("cpu", "cuda")


def backend_class(device):
    """The backend class for ``device`` ("cpu" or "cuda"); CUDA is imported only when asked.

    Raises
    ------
    ValueError
        Unknown device.
    """
    if device == "cpu":
        return CpuBackend
    if device == "cuda":
        from .cuda import CudaBackend
        return CudaBackend
    raise ValueError(f"unknown device {device!r}; choose one of: {', '.join(DEVICES)}")
