"""MLPClassifier(device="cuda") end to end, against the CPU backend."""
import os

import numpy as np
import pytest

from fastann import MLPClassifier

SIMULATOR = os.environ.get("NUMBA_ENABLE_CUDASIM", "0") not in ("", "0")


def _data(n=48, d=12, k=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 3, (k, d))
    y = rng.integers(0, k, n)
    X = centers[y] + rng.normal(0, 1, (n, d))
    return X.astype(np.float32), y


@pytest.mark.cudasim
def test_cuda_device_matches_cpu():
    X, y = _data(n=32)
    params = dict(hidden_layer_sizes=(7,), solver="adam", learning_rate=0.01, batch_size=16,
                  epochs=2, random_state=3)
    cpu = MLPClassifier(**params).fit(X, y, validation_data=(X, y))
    gpu = MLPClassifier(device="cuda", **params).fit(X, y, validation_data=(X, y))
    from fastann.backends.cuda import CudaBackend
    assert isinstance(gpu._backend, CudaBackend)
    assert len(gpu.history_) == len(cpu.history_) == 2
    for a, b in zip(cpu.history_, gpu.history_):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
        assert b["val_loss"] == pytest.approx(a["val_loss"], rel=1e-4)
    assert gpu.t_ == cpu.t_ == 4
    for a, b in zip(cpu.coefs_, gpu.coefs_):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(gpu.predict_proba(X), cpu.predict_proba(X), rtol=1e-4, atol=1e-6)


@pytest.mark.cudasim
def test_cuda_device_uploads_training_and_validation_data_once(monkeypatch):
    """Epochs and partial_fit calls reuse the device copies of X and of the validation set."""
    from numba import cuda
    X, y = _data(n=12)
    X_val, y_val = _data(n=5, seed=1)
    uploads = []
    real_to_device = cuda.to_device

    def to_device(array, *args, **kwargs):
        uploads.append(array)
        return real_to_device(array, *args, **kwargs)

    def count(array):  # float32 C-contiguous input is not copied on its way to the backend
        return sum(a is array for a in uploads)

    monkeypatch.setattr(cuda, "to_device", to_device)
    model = MLPClassifier(device="cuda", hidden_layer_sizes=(4,), batch_size=12, epochs=2,
                          random_state=0)
    model.fit(X, y, validation_data=(X_val, y_val))
    assert len(model.history_) == 2
    assert count(X) == 1
    assert count(X_val) == 1  # evaluated after every epoch, between divergence checks
    model.partial_fit(X, y)  # fit released its data: uploaded again
    uploads.clear()
    model.partial_fit(X, y)  # the labels are encoded anew each call; X stays on the device
    assert model.n_iter_ == 4
    assert count(X) == 0


def test_cuda_device_without_gpu_raises_clear_error(monkeypatch):
    from fastann.backends import cuda as cuda_backend
    ok, reason = cuda_backend.cuda_available()
    if ok:
        pytest.skip("a CUDA device (or the simulator) is available")
    X, y = _data()
    with pytest.raises(RuntimeError, match="CUDA|cuda"):
        MLPClassifier(device="cuda", epochs=1).fit(X, y)


def test_unknown_device_lists_choices():
    X, y = _data()
    with pytest.raises(ValueError, match="'device' parameter") as info:
        MLPClassifier(device="tpu").fit(X, y)
    assert "'cpu'" in str(info.value) and "'cuda'" in str(info.value)


@pytest.mark.cudasim
@pytest.mark.slow
def test_model_fit_in_the_simulator_takes_under_two_minutes():
    """Issue 11's model-level check: 256x64 uint8, one hidden layer of 16, batch 32, 2 epochs,
    then predict_proba, through the simulator in < 2 minutes (over 15 before launches were
    sized by the work, see kernels/cuda/_launch.py), and the same numbers as the CPU."""
    import time
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (256, 64), dtype=np.uint8)
    y = rng.integers(0, 10, 256)
    params = dict(hidden_layer_sizes=(16,), batch_size=32, epochs=2, random_state=0)
    start = time.perf_counter()
    gpu = MLPClassifier(device="cuda", **params).fit(X, y)
    proba = gpu.predict_proba(X)
    seconds = time.perf_counter() - start
    if SIMULATOR:
        assert seconds < 120, f"{seconds:.0f} s"
    cpu = MLPClassifier(**params).fit(X, y)
    assert gpu.t_ == cpu.t_ == 16
    for a, b in zip(cpu.history_, gpu.history_):
        assert b["train_loss"] == pytest.approx(a["train_loss"], rel=1e-4)
    np.testing.assert_allclose(proba, cpu.predict_proba(X), rtol=1e-3, atol=1e-5)
    print(f"\nsimulator fit + predict_proba: {seconds:.1f} s")
