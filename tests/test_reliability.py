"""Hardened training: checkpoints, resume after a kill, SIGINT, input fuzzing, fetch locking."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
import tracemalloc
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
from fastann.training import deferred_interrupt

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


# --------------------------------------------------------------------------
# Atomic writes: leftovers of killed writes are cleaned on the next write
# --------------------------------------------------------------------------

def part_files(directory):
    return sorted(p.name for p in Path(directory).iterdir() if p.name.endswith(".part"))


def test_sigkill_during_a_write_leaves_a_part_file_that_the_next_write_removes(tmp_path):
    target = tmp_path / "model.npz"
    script = ("import sys, time\n"
              "from fastann.files import atomic_write\n"
              f"with atomic_write({str(target)!r}) as f:\n"
              "    f.write(b'half a model')\n"
              "    print('writing', flush=True)\n"
              "    time.sleep(120)\n")
    process = subprocess.Popen([sys.executable, "-c", script], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert process.stdout.readline().strip() == b"writing", process.stderr.read()
    finally:
        process.kill()
        process.wait()
    leftovers = part_files(tmp_path)
    assert len(leftovers) == 1 and leftovers[0].startswith(f".model.npz.{process.pid}-")
    X, y = np.random.default_rng(0).random((30, 4)), np.arange(30) % 2
    MLPClassifier(hidden_layer_sizes=(3,), epochs=1).fit(X, y).save(target)
    assert part_files(tmp_path) == [] and load(target).n_iter_ == 1


def test_only_stale_part_files_of_the_same_target_are_removed(tmp_path):
    from fastann.files import STALE_PART_SECONDS, atomic_write
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        live = tmp_path / f".data.bin.{sleeper.pid}-0123abcd.part"      # a live writer
        old = tmp_path / f".data.bin.{sleeper.pid}-89abcdef.part"       # live PID, but old
        mine = tmp_path / f".data.bin.{os.getpid()}-00000000.part"      # a reused PID: ours
        other_target = tmp_path / f".other.bin.{99999999}-0123abcd.part"
        not_ours = [tmp_path / ".data.bin.123.part", tmp_path / "data.bin.part",
                    tmp_path / ".data.bin.12-xyz.part"]
        for path in [live, old, mine, other_target, *not_ours]:
            path.write_bytes(b"x")
        past = time.time() - STALE_PART_SECONDS - 60
        os.utime(old, (past, past))
        with atomic_write(tmp_path / "data.bin") as f:
            f.write(b"new")
        assert live.exists() and other_target.exists() and all(p.exists() for p in not_ours)
        assert not old.exists() and not mine.exists()
        assert (tmp_path / "data.bin").read_bytes() == b"new"
    finally:
        sleeper.kill()
        sleeper.wait()


def test_concurrent_writes_in_one_process_never_remove_each_others_files(tmp_path):
    from fastann.files import atomic_write
    target, errors = tmp_path / "shared.bin", []

    def writer(i):
        try:
            for _ in range(20):
                with atomic_write(target) as f:
                    f.write(bytes([i]) * 1000)
                    time.sleep(0.001)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(set(target.read_bytes())) == 1 and part_files(tmp_path) == []


# --------------------------------------------------------------------------
# Tampered checkpoints: CheckpointError naming the field, never a traceback
# --------------------------------------------------------------------------

def edit_checkpoint(path, **changes):
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    header = json.loads(str(arrays["header"]))
    for key, value in changes.items():
        if value is DELETE:
            del header[key]
        else:
            header[key] = value
    arrays["header"] = np.array(json.dumps(header))
    with open(path, "wb") as f:
        np.savez(f, **arrays)


DELETE = object()
TAMPERED = [
    ({"params": []}, "params"),
    ({"params": {"solver": ["adam"]}}, "params.solver"),
    ({"n_iter": "2"}, "n_iter"),
    ({"t": DELETE}, "'t'"),
    ({"finished": "yes"}, "finished"),
    ({"history": [{}]}, "history[0]"),
    ({"data": [1, 2]}, "data"),
    ({"best_loss": "low"}, "best_loss"),
    ({"stale": -1}, "stale"),
    ({"rng_state": {"bit_generator": "seed"}}, "rng_state"),
    ({"rng_state": {"bit_generator": "PCG64", "state": {"state": "x", "inc": 1},
                    "has_uint32": 0, "uinteger": 0}}, "rng_state"),
    ({"initial_rng_state": {"bit_generator": "MT19937",
                            "state": {"key": {"__ndarray__": [1],
                                              "dtype": "(100000000,)u4"}, "pos": 0}}},
     "initial_rng_state"),
    ({"layer_sizes": [784, 4, 10, 3]}, "shapes do not match"),
]


@pytest.fixture(scope="module")
def small_checkpoint(tmp_path_factory, train_data):
    directory = tmp_path_factory.mktemp("ck")
    X, y = train_data[0][:200], train_data[1][:200]
    MLPClassifier(hidden_layer_sizes=(4,), epochs=2, random_state=0, n_threads=1).fit(
        X, y, checkpoint=directory / "checkpoint.npz")
    return (directory / "checkpoint.npz").read_bytes(), X, y


@pytest.mark.parametrize("changes,field", TAMPERED)
def test_tampered_checkpoints_raise_checkpoint_error_naming_the_field(tmp_path, small_checkpoint,
                                                                     changes, field):
    data, X, y = small_checkpoint
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(data)
    edit_checkpoint(path, **changes)
    for attempt in (lambda: read_checkpoint(path), lambda: MLPClassifier.resume(path, X, y)):
        with pytest.raises(CheckpointError) as info:
            attempt()
        assert str(path) in str(info.value) and field in str(info.value)


@pytest.mark.parametrize("changes,field", TAMPERED[:4] + TAMPERED[9:10])
def test_cli_resume_of_a_tampered_checkpoint_is_one_line(tmp_path, small_checkpoint, capsys,
                                                         changes, field):
    (tmp_path / "checkpoint.npz").write_bytes(small_checkpoint[0])
    edit_checkpoint(tmp_path / "checkpoint.npz", **changes)
    assert main(["train", "--dataset", DATA, "--checkpoint-dir", str(tmp_path), "--resume",
                 "--quiet"]) == 2
    err = capsys.readouterr().err
    assert field in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_checkpoint_without_its_optimizer_state_is_refused(tmp_path, small_checkpoint):
    path = tmp_path / "checkpoint.npz"
    path.write_bytes(small_checkpoint[0])
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["m"] = arrays["m"][:0]
    with open(path, "wb") as f:
        np.savez(f, **arrays)
    with pytest.raises(CheckpointError, match="optimizer state 'm'"):
        read_checkpoint(path)


# --------------------------------------------------------------------------
# Hyper-parameters: a type and a range each; memory estimated before allocating
# --------------------------------------------------------------------------

@pytest.mark.parametrize("params,name", [
    ({"early_stopping": "no"}, "early_stopping"),
    ({"early_stopping": 1}, "early_stopping"),
    ({"lr_decay": "x"}, "lr_decay"),
    ({"validation_fraction": None}, "validation_fraction"),
    ({"verbose": "x"}, "verbose"),
    ({"n_threads": 10**20}, "n_threads"),
    ({"batch_size": 2.5}, "batch_size"),
    ({"learning_rate": float("nan")}, "learning_rate"),
])
def test_every_hyper_parameter_is_type_and_range_checked(params, name):
    X, y = np.random.default_rng(0).random((20, 3)), np.arange(20) % 2
    with pytest.raises(ValueError, match=f"The '{name}' parameter of MLPClassifier must be"):
        MLPClassifier(hidden_layer_sizes=(2,), epochs=1, **params).fit(X, y)


@pytest.mark.parametrize("hidden", [(10**9,), (10**19,), (100_000, 100_000, 100_000)])
def test_an_impossible_network_fails_with_the_estimate_before_allocating(hidden):
    X, y = np.random.default_rng(0).random((20, 3)), np.arange(20) % 2
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"needs about [\d.e+]+ [KMGTP]iB of memory"):
            MLPClassifier(hidden_layer_sizes=hidden, epochs=1).fit(X, y)
        assert tracemalloc.get_traced_memory()[1] < 50 * 2**20
    finally:
        tracemalloc.stop()


def test_the_memory_estimate_counts_parameters_optimizer_state_and_buffers(monkeypatch):
    from fastann import hyperparameters
    sizes, n_params = [784, 256, 10], 784 * 256 + 256 + 256 * 10 + 10
    sgd = hyperparameters.training_memory(sizes, "float32", "sgd", 128, 50000)
    adam = hyperparameters.training_memory(sizes, "float32", "adam", 128, 50000)
    double = hyperparameters.training_memory(sizes, "float64", "adam", 128, 50000)
    early = hyperparameters.training_memory(sizes, "float32", "adam", 128, 50000, True)
    assert 4 * 4 * n_params < sgd < 10 * 4 * n_params   # params, snapshot, grads, buffers
    assert adam - sgd == 4 * 4 * n_params          # m and v, and their epoch snapshot
    assert early - adam == 4 * n_params            # early stopping's best weights
    assert 1.5 * adam < double < 2 * adam           # float buffers double, int ones do not
    # fit refuses what does not fit, naming both numbers
    monkeypatch.setattr(hyperparameters, "available_memory", lambda: sgd // 2)
    X, y = np.zeros((50, 784), np.uint8), np.arange(50) % 10
    with pytest.raises(ValueError, match="but only .* is available"):
        MLPClassifier(hidden_layer_sizes=(256,), solver="sgd", epochs=1).fit(X, y)


def test_cli_impossible_network_is_one_line(capsys):
    assert main(["train", "--dataset", DATA, "--hidden", "1000000000", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "needs about" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


# --------------------------------------------------------------------------
# Input that used to train silently on garbage
# --------------------------------------------------------------------------

@pytest.mark.parametrize("X", [
    np.arange(40).astype("datetime64[s]").reshape(20, 2),
    np.arange(40).astype("timedelta64[s]").reshape(20, 2),
    np.array([[np.datetime64("2020-01-01"), 1.0]] * 20, dtype=object),
])
def test_dates_and_times_are_not_features(X):
    with pytest.raises(ValueError, match="dates or times|time differences"):
        MLPClassifier(hidden_layer_sizes=(2,), epochs=1).fit(X, np.arange(20) % 2)


@pytest.mark.parametrize("y", [
    np.array([1, "a"] * 10, dtype=object),
    [1, "a"] * 10,
    np.array([None, "a"] * 10, dtype=object),
])
def test_labels_mixing_numbers_and_strings_are_refused(y):
    X = np.random.default_rng(0).random((20, 2))
    with pytest.raises(ValueError, match="Mix of label input types|Unknown label type"):
        MLPClassifier(hidden_layer_sizes=(2,), epochs=1).fit(X, y)


def test_generators_get_a_clear_message():
    X, y = np.random.default_rng(0).random((20, 2)), np.arange(20) % 2
    model = MLPClassifier(hidden_layer_sizes=(2,), epochs=1).fit(X, y)
    for call in (lambda: model.score((row for row in X), y), lambda: model.predict(iter(X)),
                 lambda: model.fit(X, (label for label in y))):
        with pytest.raises(TypeError, match="generator|iterator"):
            call()


# --------------------------------------------------------------------------
# A cache entry that is not a file
# --------------------------------------------------------------------------

@pytest.mark.parametrize("entry", ["mnist.npz", "mnist.json", ".mnist.lock"])
def test_a_cache_entry_that_is_a_directory_is_reported_without_downloading(tmp_path, monkeypatch,
                                                                          entry):
    monkeypatch.setattr(datasets.fetch, "_fetch_mnist_from_mirrors",
                        lambda workdir: pytest.fail("downloaded"))
    monkeypatch.setattr(datasets.fetch, "_fetch_mnist_from_pip",
                        lambda workdir: pytest.fail("downloaded"))
    (tmp_path / entry).mkdir()
    with pytest.raises(datasets.DatasetError, match=f"{entry} is a directory"):
        load_mnist("train", data_dir=tmp_path)


def test_a_data_directory_that_is_a_file_is_reported(tmp_path):
    (tmp_path / "data").write_text("not a directory")
    with pytest.raises(datasets.DatasetError, match="not a directory"):
        load_mnist("train", data_dir=tmp_path / "data")


# ------------------------------------------------ Ctrl-C while kernels compile
def test_a_sigint_while_kernels_load_is_held_and_raised_after():
    """Numba calls back into Python from LLVM; an interrupt raised there would be lost."""
    reached_end = []
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt):
        with deferred_interrupt():
            os.kill(os.getpid(), signal.SIGINT)     # delivered here, held
            reached_end.append(True)
    assert reached_end == [True]
    assert signal.getsignal(signal.SIGINT) is previous


def test_deferred_interrupt_without_a_sigint_raises_nothing():
    with deferred_interrupt():
        pass
