"""The ``fastann`` command line, end to end on the committed MNIST subset."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fastann import load
from fastann.cli import main

DATA = str(Path(__file__).parent / "data")


def test_train_on_subset_saves_a_model_that_evaluate_reads(tmp_path, capsys):
    model_path = tmp_path / "model.npz"
    status = main(["train", "--dataset", DATA, "--epochs", "8", "--hidden", "64",
                   "--seed", "1", "--save", str(model_path), "--quiet"])
    out = capsys.readouterr().out
    assert status == 0
    assert "1667 training, 333 validation, 500 test samples" in out
    accuracy = float(out.split("test accuracy: ")[1].split("%")[0])
    assert accuracy >= 85.0
    model = load(model_path)
    assert model.coefs_[0].shape == (784, 64) and len(model.history_) == 8

    status = main(["evaluate", str(model_path), "--dataset", DATA])
    out = capsys.readouterr().out
    assert status == 0
    assert f"accuracy: {accuracy:.2f}%" in out
    assert "confusion matrix" in out and "macro avg" in out


def test_train_prints_one_line_per_epoch_with_validation(capsys):
    assert main(["train", "--dataset", DATA, "--epochs", "2", "--hidden", "none",
                 "--solver", "momentum", "--learning-rate", "0.1"]) == 0
    lines = [l for l in capsys.readouterr().out.splitlines() if l.startswith("epoch")]
    assert len(lines) == 2
    assert all("val loss" in l and " s" in l for l in lines)


@pytest.mark.parametrize("argv,message", [
    (["train", "--dataset", "/no/such/dir"], "no/such/dir"),
    (["train", "--dataset", DATA, "--learning-rate", "-1"], "learning_rate"),
    (["evaluate", "/no/such/model.npz", "--dataset", DATA], "model file not found"),
])
def test_errors_are_one_line_with_nonzero_status(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_evaluate_rejects_a_file_that_is_not_a_model(tmp_path, capsys):
    bogus = tmp_path / "bogus.npz"
    np.savez(bogus, a=np.arange(3))
    assert main(["evaluate", str(bogus), "--dataset", DATA]) == 2
    assert "not a fastann model" in capsys.readouterr().err


@pytest.mark.parametrize("flag", ["--hidden=12,x", "--batch-size=0", "--activation=swish",
                                  "--validation=1.5"])
def test_bad_flag_values_exit_with_usage_error(flag):
    with pytest.raises(SystemExit) as info:
        main(["train", flag])
    assert info.value.code == 2


def test_console_script_runs_in_a_new_process():
    result = subprocess.run([sys.executable, "-m", "fastann.cli", "train", "--help"],
                            capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert result.returncode == 0 and "--learning-rate" in result.stdout
