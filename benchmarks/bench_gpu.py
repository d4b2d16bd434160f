"""asv benchmarks: training epochs on an NVIDIA GPU (``device="cuda"``).

Skipped (asv's NotImplementedError convention) where no usable GPU and
numba-cuda are present, which includes CI and this project's CPU machines.
Workloads S and W as in ``benchmarks/common.py``; full 60,000-image epochs.
"""
from .common import WORKLOADS, load_data

_STATE = {}


def _warm(name):
    from fastann.backends.cuda import cuda_available
    ok, reason = cuda_available()
    if not ok:
        raise NotImplementedError(f"no CUDA GPU: {reason}")
    if _STATE.get("name") == name:
        return
    from fastann import MLPClassifier
    w = WORKLOADS[name]
    X, y, _ = load_data("train", None)
    model = MLPClassifier(hidden_layer_sizes=w.hidden, activation=w.activation,
                          solver=w.optimizer, learning_rate=w.lr, momentum=w.momentum,
                          batch_size=w.batch_size, epochs=1, random_state=0,
                          device="cuda").fit(X, y)
    _STATE.update(name=name, X=X, y=y, model=model)


def _epoch():
    _STATE["model"].partial_fit(_STATE["X"], _STATE["y"])


def time_epoch_S_cuda():
    _epoch()


def time_epoch_W_cuda():
    _epoch()


for _func, _name in ((time_epoch_S_cuda, "S"), (time_epoch_W_cuda, "W")):
    _func.setup = (lambda name: lambda: _warm(name))(_name)
    _func.number = 1
    _func.repeat = (1, 5, 60.0)
