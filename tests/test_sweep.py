"""``fastann sweep``: spaces, results files, and sweeps on real dask clusters on 127.0.0.1."""
import csv
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fastann import MLPClassifier, load
from fastann.cli import main
from fastann.datasets import load_dataset
from fastann.sweep import SpaceError, load_data, parse_space, trial_key
from fastann.sweep.results import ResultsFile, SweepLockedError, best_row, read_rows
from fastann.sweep.runner import make_trials
from fastann.sweep.trial import run_trial

DATA = str(Path(__file__).parent / "data")
REPO = str(Path(__file__).parent.parent)
KNOWN = MLPClassifier().get_params()
# Passes every parameter check but cannot be allocated (784 * 10**12 weights).
UNALLOCATABLE = [10**12]


def results_of(directory):
    with open(Path(directory) / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def write_space(tmp_path, space):
    path = tmp_path / "space.json"
    path.write_text(json.dumps(space))
    return str(path)


# ------------------------------------------------------------------------ spaces
def test_a_grid_is_the_cartesian_product_in_the_spaces_order():
    space = parse_space({"hidden_layer_sizes": [[32], [64, 32]], "learning_rate": [1e-3, 1e-2],
                         "solver": ["adam"]}, KNOWN)
    assert space.is_grid and space.grid_size() == 4
    assert space.configurations() == [
        {"hidden_layer_sizes": (32,), "learning_rate": 1e-3, "solver": "adam"},
        {"hidden_layer_sizes": (32,), "learning_rate": 1e-2, "solver": "adam"},
        {"hidden_layer_sizes": (64, 32), "learning_rate": 1e-3, "solver": "adam"},
        {"hidden_layer_sizes": (64, 32), "learning_rate": 1e-2, "solver": "adam"}]


def test_distributions_are_drawn_with_a_seed():
    spec = {"learning_rate": {"low": 1e-4, "high": 1e-1, "log": True},
            "batch_size": {"low": 16, "high": 64, "int": True},
            "l2": {"low": 0.0, "high": 0.5}, "activation": {"choice": ["relu", "tanh"]},
            "hidden_layer_sizes": [[16], [32]]}
    space = parse_space(spec, KNOWN)
    first = space.configurations(200, seed=1)
    assert first == space.configurations(200, seed=1)
    assert first != space.configurations(200, seed=2)
    rates = np.array([c["learning_rate"] for c in first])
    assert rates.min() >= 1e-4 and rates.max() < 1e-1
    # log-uniform: about as many draws in each decade
    decades = np.histogram(np.log10(rates), bins=[-4, -3, -2, -1])[0]
    assert decades.min() > 40
    assert all(isinstance(c["batch_size"], int) and 16 <= c["batch_size"] <= 64 for c in first)
    assert {c["activation"] for c in first} == {"relu", "tanh"}
    assert {c["hidden_layer_sizes"] for c in first} == {(16,), (32,)}
    assert all(0.0 <= c["l2"] < 0.5 for c in first)


def test_a_discrete_space_is_drawn_without_replacement():
    space = parse_space({"learning_rate": [1e-3, 2e-3, 3e-3], "batch_size": {"choice": [32, 64]}},
                        KNOWN)
    drawn = space.configurations(4, seed=0)
    assert len(drawn) == 4 and len({tuple(sorted(c.items())) for c in drawn}) == 4
    assert len(space.configurations(50, seed=0)) == 6  # the whole grid, no repeats


@pytest.mark.parametrize("spec,message", [
    ({"learning_rat": [0.1]}, "not an MLPClassifier parameter"),
    ({"learning_rate": []}, "empty"),
    ({"learning_rate": {"low": 0.1}}, "distribution"),
    ({"learning_rate": {"low": 0.1, "high": 0.01}}, "low < high"),
    ({"learning_rate": {"low": 0.0, "high": 0.1, "log": True}}, "low > 0"),
    ({"batch_size": {"low": 1.5, "high": 8, "int": True}}, "integer bounds"),
    ({"learning_rate": 0.1}, "expected a list"),
    ([1, 2], "JSON object"),
])
def test_malformed_spaces_are_rejected_with_the_parameters_name(spec, message):
    with pytest.raises(SpaceError, match=message):
        parse_space(spec, KNOWN)


def test_a_distribution_needs_a_number_of_trials():
    space = parse_space({"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True}}, KNOWN)
    with pytest.raises(SpaceError, match="--trials"):
        space.configurations()


def test_trials_combine_fixed_and_varied_parameters_and_have_stable_keys():
    space = parse_space({"learning_rate": [1e-3, 1e-2], "epochs": [1]}, KNOWN)
    fixed = dict(epochs=5, random_state=0, hidden_layer_sizes=(8,))
    trials = make_trials(space, fixed, data={"dataset": "x"})
    assert [t.params for t in trials] == [dict(fixed, learning_rate=1e-3, epochs=1),
                                          dict(fixed, learning_rate=1e-2, epochs=1)]
    assert trials[0].varied == {"learning_rate": 1e-3, "epochs": 1}
    assert trials[0].key == trial_key(dict(fixed, learning_rate=1e-3, epochs=1), {"dataset": "x"})
    assert trials[0].key != trial_key(trials[0].params, {"dataset": "y"})
    assert len({t.key for t in trials}) == 2
    bad = parse_space({"learning_rate": [1e-3, -1.0]}, KNOWN)
    with pytest.raises(SpaceError, match="learning_rate=-1.0.*learning_rate"):
        make_trials(bad, fixed)


# ----------------------------------------------------------------- results file
def test_results_file_drops_a_row_cut_short_and_locks_the_directory(tmp_path):
    row = {"trial": "a1", "status": "ok", "val_accuracy": 0.5, "val_loss": 1.25,
           "epochs": 2, "seconds": 0.5, "worker": "tcp://127.0.0.1:1", "threads": 1,
           "params": {"hidden_layer_sizes": (8,)}, "varied": {"learning_rate": 0.1}}
    with ResultsFile(tmp_path, ["learning_rate"]) as results:
        results.append(row)
        with pytest.raises(SweepLockedError):
            ResultsFile(tmp_path, ["learning_rate"]).__enter__()
    with open(tmp_path / "results.csv", "a") as f:
        f.write("b2,ok,0.9")  # a crash in the middle of a row
    assert [r["trial"] for r in read_rows(tmp_path / "results.csv")] == ["a1"]
    with ResultsFile(tmp_path, ["other_name"]) as results:  # the file keeps its header
        results.append(dict(row, trial="c3", val_accuracy=0.75))
    rows = read_rows(tmp_path / "results.csv")
    assert [r["trial"] for r in rows] == ["a1", "c3"]
    assert rows[0]["params"] == {"hidden_layer_sizes": [8]} and rows[0]["learning_rate"] == "0.1"
    assert rows[1]["val_accuracy"] == 0.75 and rows[1]["threads"] == 1
    assert best_row(rows)["trial"] == "c3" and best_row(rows, {"a1"})["trial"] == "a1"


def test_a_trial_reports_its_failure_instead_of_raising():
    X, y = load_dataset(DATA, "train")
    data = (X[:200], y[:200], X[200:300], y[200:300])
    ok = run_trial({"key": "k", "params": dict(hidden_layer_sizes=(8,), epochs=2)}, data)
    assert ok["status"] == "ok" and ok["epochs"] == 2 and ok["error"] is None
    assert ok["val_accuracy"] == ok["model"].history_[-1]["val_accuracy"]
    assert ok["worker"] == "local"
    failed = run_trial({"key": "k", "params": dict(hidden_layer_sizes=UNALLOCATABLE)}, data)
    assert failed["status"] == "failed" and failed["model"] is None
    assert "ValueError" in failed["error"] and "of memory" in failed["error"]
    assert "\n" not in failed["error"]


def test_without_dask_the_error_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "distributed", None)
    monkeypatch.delitem(sys.modules, "fastann.sweep.engine", raising=False)
    space = write_space(tmp_path, {"learning_rate": [1e-3]})
    assert main(["sweep", "--space", space, "--out", str(tmp_path / "out"), "--dataset", DATA,
                 "--epochs", "1", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert 'pip install "fastann[sweep]"' in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("extra,message", [
    (["--validation", "0"], "validation split"),
    (["--scheduler", "tcp://127.0.0.1:9", "--workers", "2"], "--workers"),
])
def test_sweep_usage_errors_are_one_line(tmp_path, capsys, extra, message):
    space = write_space(tmp_path, {"learning_rate": [1e-3]})
    assert main(["sweep", "--space", space, "--out", str(tmp_path / "o"), "--dataset", DATA,
                 *extra]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


# ------------------------------------------------------------ on a LocalCluster
def test_sweep_on_a_local_cluster_records_failures_and_resumes(tmp_path, capsys):
    pytest.importorskip("distributed")
    space = write_space(tmp_path, {"hidden_layer_sizes": [[16], [32], UNALLOCATABLE],
                                   "learning_rate": [1e-3, 3e-3]})
    out = tmp_path / "sweep"
    argv = ["sweep", "--space", space, "--out", str(out), "--dataset", DATA, "--epochs", "2",
            "--workers", "2", "--quiet"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "6 trials, 0 already in" in text and "6 to run" in text
    rows = results_of(out)
    assert len(rows) == 6 and len({r["trial"] for r in rows}) == 6
    failed = [r for r in rows if r["status"] == "failed"]
    assert len(failed) == 2 and all("of memory" in r["error"] for r in failed)
    ok = [r for r in rows if r["status"] == "ok"]
    assert all(r["worker"].startswith("tcp://127.0.0.1:") for r in ok)
    assert {r["threads"] for r in ok} == {"1"}  # one BLAS thread per worker
    assert {r["hidden_layer_sizes"] for r in rows} == {"[16]", "[32]", json.dumps(UNALLOCATABLE)}
    assert all(json.loads(r["params"])["epochs"] == 2 for r in rows)
    # best.json names the best validation accuracy; only its model sees the test set.
    best = json.loads((out / "best.json").read_text())
    top = max(ok, key=lambda r: (float(r["val_accuracy"]), -float(r["val_loss"])))
    assert best["trial"] == top["trial"] and best["val_accuracy"] == float(top["val_accuracy"])
    X_test, y_test = load_dataset(DATA, "test")
    model = load(out / best["model"])
    assert best["test_accuracy"] == model.score(X_test, y_test) and best["n_test"] == 500
    assert f"test accuracy {100 * best['test_accuracy']:.2f}%" in text
    assert sorted(p.name for p in out.glob("best-*.npz")) == [best["model"]]
    # The same command again runs nothing; with two rows gone, exactly those two.
    assert main(argv) == 0
    assert "6 already in" in capsys.readouterr().out and len(results_of(out)) == 6
    lines = (out / "results.csv").read_text().splitlines(keepends=True)
    removed = [lines[1], lines[4]]
    (out / "results.csv").write_text("".join(line for line in lines if line not in removed))
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "4 already in" in text and "2 to run" in text
    again = results_of(out)
    assert len(again) == 6 and {r["trial"] for r in again} == {r["trial"] for r in rows}


# ------------------------------------------- a scheduler and two workers by hand
@pytest.fixture(scope="module")
def dask_cluster(tmp_path_factory):
    """``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1; stopped afterwards."""
    pytest.importorskip("distributed")
    directory = tmp_path_factory.mktemp("dask")
    scheduler_file = directory / "scheduler.json"
    processes = [subprocess.Popen(
        [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
         "--port", "0", "--no-dashboard", "--scheduler-file", str(scheduler_file)],
        cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        deadline = time.monotonic() + 60
        while not scheduler_file.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        for _ in range(2):
            processes.append(subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address,
                 "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard",
                 "--local-directory", str(directory)],
                cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        from distributed import Client
        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=120)
            yield address, client
    finally:
        for process in reversed(processes):
            process.terminate()
        for process in reversed(processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def test_killing_a_worker_mid_sweep_still_finishes_every_trial_once(tmp_path, dask_cluster,
                                                                     capsys):
    address, client = dask_cluster
    # 8 trials of about a second each on one thread.
    space = write_space(tmp_path, {"learning_rate": [1e-3, 2e-3, 3e-3, 4e-3],
                                   "batch_size": [16, 17]})
    out = tmp_path / "sweep"
    argv = ["sweep", "--space", space, "--out", str(out), "--dataset", DATA, "--epochs", "12",
            "--hidden", "512", "--scheduler", address, "--quiet"]
    status = []
    sweeper = threading.Thread(target=lambda: status.append(main(argv)))
    sweeper.start()
    killed = None
    deadline = time.monotonic() + 180
    try:
        while killed is None and sweeper.is_alive() and time.monotonic() < deadline:
            if (out / "results.csv").exists() and len(results_of(out)) >= 1:
                busy = {w: keys for w, keys in client.processing().items() if keys}
                if busy:
                    worker, keys = next(iter(busy.items()))
                    pid = client.run(os.getpid, workers=[worker])[worker]
                    os.kill(pid, signal.SIGKILL)
                    killed = (worker, str(keys[0]).split("-")[2])
            time.sleep(0.05)
    finally:
        sweeper.join(timeout=240)
    assert not sweeper.is_alive(), "the sweep did not finish"
    assert killed is not None, "no trial was running to kill a worker under"
    assert status == [0]
    rows = results_of(out)
    assert len(rows) == 8 and len({r["trial"] for r in rows}) == 8
    assert {r["status"] for r in rows} == {"ok"}
    # The trial that ran on the killed worker was run again elsewhere.
    worker, key = killed
    rerun = next(r for r in rows if r["trial"] == key)
    assert rerun["worker"] != worker
    assert json.loads((out / "best.json").read_text())["test_accuracy"] > 0.5
    capsys.readouterr()


def test_trials_are_drawn_with_the_seed_and_fixed_options_reach_every_trial(tmp_path,
                                                                             dask_cluster):
    address, _ = dask_cluster
    spec = {"learning_rate": {"low": 1e-4, "high": 1e-2, "log": True},
            "hidden_layer_sizes": {"choice": [[8], [16]]}}
    space = write_space(tmp_path, spec)
    out = tmp_path / "sweep"
    assert main(["sweep", "--space", space, "--out", str(out), "--dataset", DATA,
                 "--trials", "3", "--seed", "5", "--threads", "1", "--epochs", "1",
                 "--solver", "momentum", "--scheduler", address, "--quiet"]) == 0
    rows = results_of(out)
    drawn = parse_space(spec, KNOWN).configurations(3, seed=5)
    assert sorted(float(r["learning_rate"]) for r in rows) == \
        sorted(c["learning_rate"] for c in drawn)
    for row in rows:
        params = json.loads(row["params"])
        assert (params["random_state"], params["n_threads"], params["epochs"],
                params["solver"]) == (5, 1, 1, "momentum")
        assert row["status"] == "ok" and row["threads"] == "1"


def test_experiments_run_on_the_same_engine(tmp_path, dask_cluster, capsys):
    pytest.importorskip("matplotlib")
    from fastann import experiments
    address, _ = dask_cluster
    out = tmp_path / "report"
    assert experiments.main(["--quick", "--only", "002,004", "--dataset", DATA,
                             "--out", str(out), "--scheduler", address]) == 0
    report = (out / "REPORT.md").read_text()
    assert "dask.distributed" in report and address in report
    rows = [line for line in report.splitlines() if line.startswith("| ") and " 002 " in line]
    assert rows
    assert "wrote" in capsys.readouterr().out


def test_data_is_split_like_train():
    data = load_data(DATA)
    assert (len(data.y_train), len(data.y_val), len(data.y_test)) == (1667, 333, 500)
    assert data.description == {"dataset": DATA, "n_train": 1667, "n_validation": 333}
