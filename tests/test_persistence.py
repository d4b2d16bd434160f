"""Saving and loading models: exact round trips, no pickle, clear errors, atomic writes."""
import json
import os
import pickle
import signal
import zipfile

import numpy as np
import pytest

import fastann
from fastann import MLPClassifier, ModelFileError, NotFittedError
from fastann.persistence import FORMAT_VERSION


def blobs(n=90, n_features=5, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, (n_classes, n_features))
    y = np.arange(n) % n_classes
    return centers[y] + rng.standard_normal((n, n_features)), y


def fitted(labels=None, **params):
    X, y = blobs()
    if labels is not None:
        y = np.asarray(labels)[y]
    defaults = dict(hidden_layer_sizes=(8, 4), epochs=3, batch_size=16, random_state=0)
    defaults.update(params)
    return MLPClassifier(**defaults).fit(X, y), X


def saved(tmp_path, name="model.npz", **params):
    model, X = fitted(**params)
    path = tmp_path / name
    model.save(path)
    return model, X, path


def rewrite(path, **changes):
    """Re-save the archive at ``path`` with entries replaced (None deletes one)."""
    with np.load(path, allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    for name, value in changes.items():
        if value is None:
            del arrays[name]
        else:
            arrays[name] = value
    with open(path, "wb") as f:
        np.savez(f, **arrays)


def edit_header(path, **changes):
    with np.load(path, allow_pickle=False) as archive:
        header = json.loads(str(archive["header"]))
    header.update(changes)
    rewrite(path, header=np.array(json.dumps(header)))


# ----------------------------------------------------------------- round trip
@pytest.mark.parametrize("labels,dtype", [
    (None, "float32"),
    ([3, 7, 10], "float32"),
    (["cat", "dog", "emu"], "float32"),
    (None, "float64"),
    (["cat", "dog", "emu"], "float64"),
])
def test_save_load_predicts_identically(tmp_path, labels, dtype):
    model, X, path = saved(tmp_path, labels=labels, dtype=dtype)
    loaded = fastann.load(path)
    assert isinstance(loaded, MLPClassifier)
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_array_equal(loaded.classes_, model.classes_)
    assert loaded.classes_.dtype == model.classes_.dtype
    for a, b in zip(loaded.coefs_ + loaded.intercepts_, model.coefs_ + model.intercepts_):
        assert a.dtype == np.dtype(dtype)
        np.testing.assert_array_equal(a, b)
    assert loaded.get_params() == model.get_params()
    assert loaded.n_features_in_ == model.n_features_in_
    assert loaded.n_iter_ == model.n_iter_ and loaded.t_ == model.t_
    assert loaded.history_ == model.history_


def test_uint8_labels_and_images_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (40, 12), dtype=np.uint8)
    y = (X[:, 0] > 127).astype(np.uint8)
    model = MLPClassifier(hidden_layer_sizes=(4,), epochs=2, random_state=0).fit(X, y)
    model.save(tmp_path / "m.npz")
    loaded = fastann.load(tmp_path / "m.npz")
    assert loaded.classes_.dtype == np.uint8
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_softmax_regression_round_trips(tmp_path):
    model, X, path = saved(tmp_path, hidden_layer_sizes=())
    np.testing.assert_array_equal(fastann.load(path).predict_proba(X), model.predict_proba(X))


def test_numpy_typed_hyper_parameters_round_trip(tmp_path):
    model, X, path = saved(tmp_path, dtype=np.float64, learning_rate=np.float64(0.01),
                           random_state=np.random.default_rng(0))
    loaded = fastann.load(path)
    assert loaded.dtype == "float64" and loaded.learning_rate == 0.01
    assert loaded.random_state is None
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


def test_loaded_model_can_continue_training(tmp_path):
    model, X, path = saved(tmp_path)
    loaded = fastann.load(path)
    y = blobs()[1]
    loaded.partial_fit(X, y)
    assert loaded.n_iter_ == model.n_iter_ + 1


def test_file_loads_without_pickle(tmp_path):
    model, _, path = saved(tmp_path)
    with np.load(path, allow_pickle=False) as archive:
        names = set(archive.files)
        assert {"header", "classes", "normalization_scale", "normalization_shift",
                "coef_0", "coef_1", "coef_2", "intercept_0", "intercept_2"} <= names
        header = json.loads(str(archive["header"]))
        for name in names:
            assert archive[name].dtype != object
    assert header["format"] == "fastann-mlp"
    assert header["format_version"] == FORMAT_VERSION
    assert header["layer_sizes"] == [5, 8, 4, 3]


def test_save_before_fit_raises(tmp_path):
    with pytest.raises(NotFittedError):
        MLPClassifier().save(tmp_path / "m.npz")
    assert not os.listdir(tmp_path)


def test_save_overwrites_an_existing_file(tmp_path):
    _, X, path = saved(tmp_path)
    other, _ = fitted(random_state=1)
    other.save(path)
    np.testing.assert_array_equal(fastann.load(path).predict_proba(X), other.predict_proba(X))
    assert os.listdir(tmp_path) == ["model.npz"]


# --------------------------------------------------------------- bad files
def assert_model_file_error(path, match=None):
    with pytest.raises(ModelFileError) as info:
        fastann.load(path)
    assert str(path) in str(info.value)
    if match is not None:
        assert match in str(info.value)
    return info.value


def test_missing_file_raises_file_not_found(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        fastann.load(tmp_path / "nope.npz")


@pytest.mark.parametrize("keep", [0, 3, 100, 0.5, -10])
def test_truncated_file(tmp_path, keep):
    _, _, path = saved(tmp_path)
    data = path.read_bytes()
    keep = int(len(data) * keep) if isinstance(keep, float) else keep
    path.write_bytes(data[:keep])
    assert_model_file_error(path)


def test_random_bytes_file(tmp_path):
    path = tmp_path / "noise.npz"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    assert_model_file_error(path)


def test_corrupted_archive_member(tmp_path):
    _, _, path = saved(tmp_path)
    data = bytearray(path.read_bytes())
    # Flip bytes in the middle of the stored arrays: the zip CRC check fails.
    middle = len(data) // 2
    data[middle:middle + 16] = bytes(255 - b for b in data[middle:middle + 16])
    path.write_bytes(bytes(data))
    assert_model_file_error(path)


def test_foreign_npz_without_header(tmp_path):
    path = tmp_path / "foreign.npz"
    np.savez(path, weights=np.ones((3, 3)))
    assert_model_file_error(path, "no header")


def test_foreign_npy_file(tmp_path):
    path = tmp_path / "array.npy"
    np.save(path, np.arange(10))
    assert_model_file_error(path)


def test_pickled_object_array_is_not_executed(tmp_path):
    path = tmp_path / "objects.npz"
    np.savez(path, header=np.array([{"format": "fastann-mlp"}], dtype=object))
    assert_model_file_error(path)


def test_a_zip_that_is_not_npz(tmp_path):
    path = tmp_path / "archive.npz"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("readme.txt", "hello")
    assert_model_file_error(path)


@pytest.mark.parametrize("header", ["not json {", "[1, 2, 3]", '{"format": "other"}'])
def test_bad_header(tmp_path, header):
    _, _, path = saved(tmp_path)
    rewrite(path, header=np.array(header))
    assert_model_file_error(path)


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_wrong_format_version(tmp_path, version):
    _, _, path = saved(tmp_path)
    edit_header(path, format_version=version)
    assert_model_file_error(path, "format version")


def test_header_layer_sizes_do_not_match_arrays(tmp_path):
    _, _, path = saved(tmp_path)
    edit_header(path, layer_sizes=[5, 9, 4, 3])
    assert_model_file_error(path, "shapes do not match")


def test_array_shape_does_not_match_header(tmp_path):
    _, _, path = saved(tmp_path)
    rewrite(path, coef_1=np.zeros((8, 5), np.float32))
    assert_model_file_error(path, "shapes do not match")


def test_classes_do_not_match_output_layer(tmp_path):
    _, _, path = saved(tmp_path)
    rewrite(path, classes=np.arange(4))
    assert_model_file_error(path, "shapes do not match")


def test_missing_array(tmp_path):
    _, _, path = saved(tmp_path)
    rewrite(path, intercept_1=None)
    assert_model_file_error(path, "intercept_1")


def test_parameter_dtype_does_not_match_header(tmp_path):
    _, _, path = saved(tmp_path)
    rewrite(path, coef_0=np.zeros((5, 8), np.float64))
    assert_model_file_error(path, "float32")


@pytest.mark.parametrize("params", [
    {"activation": "softplus"},
    {"dtype": "int8"},
    {"no_such_parameter": 1},
    {"hidden_layer_sizes": "abc"},
])
def test_malformed_hyper_parameters(tmp_path, params):
    model, _, path = saved(tmp_path)
    edit_header(path, params={**model.get_params(), **params})
    assert_model_file_error(path)


# ---------------------------------------------------------------- atomicity
def test_interrupted_save_leaves_no_file(tmp_path, monkeypatch):
    model, _ = fitted()
    real_savez = np.savez

    def savez_then_crash(file, **arrays):
        real_savez(file, **arrays)  # the temp file is complete...
        file.write(b"partial")
        raise KeyboardInterrupt("simulated crash while writing")  # ...but never renamed

    monkeypatch.setattr(np, "savez", savez_then_crash)
    with pytest.raises(KeyboardInterrupt):
        model.save(tmp_path / "model.npz")
    assert os.listdir(tmp_path) == []


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    model, X, path = saved(tmp_path)
    before = path.read_bytes()

    def savez_fails(file, **arrays):
        file.write(b"PK\x03\x04 half a zip")
        raise OSError("No space left on device")

    monkeypatch.setattr(np, "savez", savez_fails)
    other, _ = fitted(random_state=1)
    with pytest.raises(OSError, match="No space"):
        other.save(path)
    assert os.listdir(tmp_path) == ["model.npz"]
    assert path.read_bytes() == before
    monkeypatch.undo()
    np.testing.assert_array_equal(fastann.load(path).predict_proba(X), model.predict_proba(X))


# ------------------------------------------------------- header schema
@pytest.mark.parametrize("changes,field", [
    ({"layer_sizes": []}, "layer_sizes"),
    ({"layer_sizes": [5]}, "layer_sizes"),
    ({"layer_sizes": "5,8,4,3"}, "layer_sizes"),
    ({"layer_sizes": [5, 8.0, 4, 3]}, "layer_sizes"),
    ({"layer_sizes": [5, -8, 4, 3]}, "layer_sizes"),
    ({"layer_sizes": [5, True, 4, 3]}, "layer_sizes"),
    ({"layer_sizes": [5, 8, 4, 1]}, "layer_sizes"),
    ({"layer_sizes": [[5], 8, 4, 3]}, "layer_sizes"),
    ({"n_iter": "3"}, "n_iter"),
    ({"n_iter": -1}, "n_iter"),
    ({"n_iter": 1.5}, "n_iter"),
    ({"n_iter": [3]}, "n_iter"),
    ({"t": None}, "'t'"),
    ({"t": True}, "'t'"),
    ({"params": [1, 2]}, "params"),
    ({"params": "adam"}, "params"),
    ({"history": "none"}, "history"),
    ({"history": [1]}, "history[0]"),
    ({"history": [{"epoch": 1}]}, "history[0]"),
    ({"fastann_version": 3}, "fastann_version"),
])
def test_malformed_header_fields_name_the_file_and_the_field(tmp_path, changes, field):
    _, _, path = saved(tmp_path)
    edit_header(path, **changes)
    error = assert_model_file_error(path)
    assert field in str(error)


@pytest.mark.parametrize("params,field", [
    ({"learning_rate": [0.1]}, "params.learning_rate"),
    ({"l1": {"a": 1}}, "params.l1"),
    ({"dtype": "int8"}, "params.dtype"),
    ({"hidden_layer_sizes": [9, 4]}, "params.hidden_layer_sizes"),
    ({"hidden_layer_sizes": ["8", "4"]}, "params.hidden_layer_sizes"),
    ({"epochs": 10**30}, "params.epochs"),
    ({"learning_rate": "fast"}, "learning_rate"),     # the estimator names it
    ({"early_stopping": "no"}, "early_stopping"),
    ({"n_threads": 10**12}, "n_threads"),
])
def test_malformed_hyper_parameters_are_named(tmp_path, params, field):
    model, _, path = saved(tmp_path)
    edit_header(path, params={**model.get_params(), **params})
    assert field in str(assert_model_file_error(path))


def test_non_finite_hyper_parameters_are_refused(tmp_path):
    model, _, path = saved(tmp_path)
    with np.load(path, allow_pickle=False) as archive:
        text = str(archive["header"])
    header = json.loads(text)
    header["params"]["l2"] = "NAN_HERE"
    rewrite(path, header=np.array(json.dumps(header).replace('"NAN_HERE"', "NaN")))
    assert "params.l2" in str(assert_model_file_error(path))


def test_a_history_record_of_the_wrong_type_is_named(tmp_path):
    model, _, path = saved(tmp_path)
    history = [dict(record) for record in model.history_]
    history[1]["train_loss"] = "low"
    edit_header(path, history=history)
    assert "history[1].train_loss" in str(assert_model_file_error(path))


def test_a_missing_params_field_takes_the_hidden_sizes_from_layer_sizes(tmp_path):
    model, X, path = saved(tmp_path)
    params = model.get_params()
    del params["hidden_layer_sizes"], params["activation"]
    edit_header(path, params=params)
    loaded = fastann.load(path)
    assert loaded.hidden_layer_sizes == (8, 4) and loaded.activation == "relu"
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))


# ------------------------------------------------------- loaded values
@pytest.mark.parametrize("name,value,message", [
    ("coef_1", np.nan, "'coef_1' contains NaN"),
    ("intercept_0", np.inf, "'intercept_0' contains infinity"),
    ("normalization_scale", np.nan, "'normalization_scale' contains NaN"),
    ("normalization_shift", -np.inf, "'normalization_shift' contains infinity"),
])
def test_non_finite_arrays_are_refused(tmp_path, name, value, message):
    _, _, path = saved(tmp_path)
    with np.load(path, allow_pickle=False) as archive:
        array = archive[name].copy()
    array.flat[0] = value
    rewrite(path, **{name: array})
    assert_model_file_error(path, message)


@pytest.mark.parametrize("classes,message", [
    ([0, 0, 2], "duplicate"),
    (["b", "a", "c"], "unsorted"),
    ([0.0, np.nan, 2.0], "NaN"),
])
def test_bad_classes_are_refused(tmp_path, classes, message):
    _, _, path = saved(tmp_path)
    rewrite(path, classes=np.array(classes))
    assert_model_file_error(path, message)


def test_an_extra_member_is_ignored(tmp_path):
    model, X, path = saved(tmp_path)
    rewrite(path, unexpected=np.arange(5))
    np.testing.assert_array_equal(fastann.load(path).predict_proba(X), model.predict_proba(X))


# ------------------------------------------------ what is not a model file
def test_a_directory_is_not_a_model(tmp_path):
    assert_model_file_error(tmp_path, "directory")


def test_a_fifo_is_refused_at_once(tmp_path):
    fifo = tmp_path / "model.npz"
    os.mkfifo(fifo)

    def hung(signum, frame):
        raise AssertionError("fastann.load blocked on a FIFO")

    previous = signal.signal(signal.SIGALRM, hung)
    signal.alarm(20)
    try:
        assert_model_file_error(fifo, "FIFO")
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("content", [b"hello, not a model", pickle.dumps({"a": 1}),
                                     b"\x93NUMPY\x01\x00garbage"])
def test_files_that_are_not_archives_get_no_unsafe_advice(tmp_path, content):
    path = tmp_path / "model.npz"
    path.write_bytes(content)
    message = str(assert_model_file_error(path, "not a fastann model file"))
    assert "pickle" not in message and "unsafe" not in message


def test_a_model_trained_on_cuda_predicts_on_the_cpu(tmp_path):
    """The device is a training choice: a file saying device="cuda" loads and predicts anywhere."""
    model, X, path = saved(tmp_path)
    edit_header(path, params={**model.get_params(), "device": "cuda"})
    loaded = fastann.load(path)
    assert loaded.device == "cuda"
    np.testing.assert_array_equal(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
