"""Fuzzing the model-file and checkpoint readers: hostile files fail fast, small and clean.

Every case starts from a valid file (a model written by ``save``, a checkpoint
written by ``fit(..., checkpoint=...)``) and damages it: random truncations,
byte flips and spliced chunks; header mutations (wrong types, out-of-range
values, missing and extra fields, deep nesting); ``.npy`` members whose
headers declare enormous shapes or odd dtypes; extra members (a deflate bomb
among them). Each case must either raise ``ModelFileError`` (``CheckpointError``
for checkpoints) or load a model identical to the original (same arrays;
for header mutations, same arrays and a model that predicts), within a few
seconds and with less than :data:`MAX_GROWTH` bytes of memory traced by
``tracemalloc``. ``FASTANN_FUZZ_EXAMPLES`` sets the number of examples per
test (default 250, derandomized); ``FASTANN_LONG_FUZZ=1`` adds a variant with
10x as many examples from random seeds.
"""
import io
import json
import os
import struct
import time
import tracemalloc
import warnings
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastann
from fastann import MLPClassifier, ModelFileError
from fastann.callbacks import Callback
from fastann.checkpoint import CheckpointError, read_checkpoint

MAX_GROWTH = 200 * 2**20      # bytes of traced memory a single case may add
MAX_SECONDS = 10.0            # per case, on a loaded 2-core machine
EXAMPLES = int(os.environ.get("FASTANN_FUZZ_EXAMPLES", "250"))
STATS = {"cases": 0, "seconds": 0.0, "max_growth": 0, "outcomes": {}}


# ----------------------------------------------------------------- fixtures
def blobs(n=60, n_features=5, n_classes=3, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 4, (n_classes, n_features))
    y = np.arange(n) % n_classes
    return centers[y] + rng.standard_normal((n, n_features)), y


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """Bytes of a valid model file and of a valid checkpoint, and the data they were made with."""
    directory = tmp_path_factory.mktemp("originals")
    X, y = blobs()
    params = dict(hidden_layer_sizes=(4,), epochs=3, batch_size=16, random_state=0, n_threads=1,
                  early_stopping=True, n_iter_no_change=2)
    model = MLPClassifier(**params).fit(X, y, checkpoint=directory / "ck.npz")
    model.save(directory / "model.npz")
    return {"model": (directory / "model.npz").read_bytes(),
            "checkpoint": (directory / "ck.npz").read_bytes(), "X": X, "y": y}


def entries(data):
    """``(header, arrays)`` of a valid archive's bytes (test-side reader of trusted files)."""
    with np.load(io.BytesIO(data), allow_pickle=False) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return json.loads(str(arrays.pop("header"))), arrays


def archive(header_text, arrays):
    """An archive with the JSON text ``header_text`` and ``arrays``, as np.savez writes it."""
    buffer = io.BytesIO()
    np.savez(buffer, header=np.array(header_text), **arrays)
    return buffer.getvalue()


def npy_member(shape, descr, data=b"", fortran=False):
    """A ``.npy`` member with any header NumPy's parser accepts, whatever its data."""
    text = "{'descr': %r, 'fortran_order': %r, 'shape': %r, }" % (descr, fortran, shape)
    text += " " * ((64 - (10 + len(text) + 1) % 64) % 64) + "\n"
    return b"\x93NUMPY\x01\x00" + struct.pack("<H", len(text)) + text.encode("latin1") + data


def with_members(data, members, compress=None):
    """``data`` with members replaced or added: ``{name.npy: bytes}`` (CRCs stay correct)."""
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(data)) as source, zipfile.ZipFile(out, "w") as target:
        for info in source.infolist():
            if info.filename not in members:
                target.writestr(info.filename, source.read(info.filename))
        for name, content in members.items():
            target.writestr(name, content, compress_type=compress or zipfile.ZIP_STORED)
    return out.getvalue()


# ------------------------------------------------------------ the oracle
def same_model(a, b):
    return (a.get_params() == b.get_params() and a.history_ == b.history_
            and (a.n_iter_, a.t_) == (b.n_iter_, b.t_) and same_arrays(a, b))


def same_arrays(a, b):
    pairs = list(zip(a.coefs_ + a.intercepts_, b.coefs_ + b.intercepts_))
    pairs += [(a.classes_, b.classes_), (a.normalization_scale_, b.normalization_scale_),
              (a.normalization_shift_, b.normalization_shift_)]
    return (len(a.coefs_) == len(b.coefs_)
            and all(p.dtype == q.dtype and np.array_equal(p, q) for p, q in pairs))


def same_state(a, b):
    arrays = ["classes", "normalization_scale", "normalization_shift", "parameters"]
    if any(not np.array_equal(getattr(a, n), getattr(b, n)) for n in arrays):
        return False
    if any(not np.array_equal(a.optimizer_state[k], b.optimizer_state[k])
           for k in a.optimizer_state):
        return False
    fields = ["hyperparameters", "layer_sizes", "n_iter", "t", "history", "finished",
              "rng_state", "initial_rng_state", "data", "best_loss", "stale"]
    return all(getattr(a, f) == getattr(b, f) for f in fields)


class StopAfterOneEpoch(Callback):
    def on_epoch_end(self, epoch, logs=None):
        self.model.stop_training = True


def measured(function):
    """Run ``function()``; record its time and traced memory growth, and check both bounds."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        start_memory = tracemalloc.get_traced_memory()[0]
        start = time.perf_counter()
        outcome = function()
        seconds = time.perf_counter() - start
        growth = tracemalloc.get_traced_memory()[1] - start_memory
    finally:
        tracemalloc.stop()
    STATS["cases"] += 1
    STATS["seconds"] += seconds
    STATS["max_growth"] = max(STATS["max_growth"], growth)
    STATS["outcomes"][outcome] = STATS["outcomes"].get(outcome, 0) + 1
    assert growth < MAX_GROWTH, f"{growth / 2**20:.0f} MiB traced"
    assert seconds < MAX_SECONDS, f"{seconds:.1f} s"
    return outcome


def check_model_file(path, reference, damaged_header=False):
    """Raise ModelFileError or load an identical model (header damage: same arrays, predicts)."""
    def attempt():
        try:
            loaded = fastann.load(path)
        except ModelFileError as exc:
            assert str(path) in str(exc)
            return "rejected"
        if damaged_header:
            assert same_arrays(loaded, reference)
            proba = loaded.predict_proba(np.zeros((2, reference.n_features_in_)))
            assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1)
        else:
            assert same_model(loaded, reference)
        return "loaded"
    return measured(attempt)


def check_checkpoint_file(path, reference, data, damaged_header=False):
    """Raise CheckpointError, or read the same state (header damage: then resume cleanly)."""
    def attempt():
        try:
            state = read_checkpoint(path)
        except CheckpointError as exc:
            assert str(path) in str(exc)
            return "rejected"
        if not damaged_header:
            assert same_state(state, reference)
            return "loaded"
        for name in ("parameters", "classes", "normalization_scale"):
            assert np.array_equal(getattr(state, name), getattr(reference, name))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                model = MLPClassifier.resume(path, data["X"], data["y"],
                                             callbacks=[StopAfterOneEpoch()])
            except CheckpointError as exc:
                assert str(path) in str(exc)
                return "resume rejected"
            except ValueError:  # e.g. a validation_fraction that leaves no training rows
                return "resume refused the data"
            except RuntimeError as exc:
                assert state.hyperparameters.get("device") == "cuda", exc
                return "resume: no GPU"
        assert all(np.isfinite(c).all() for c in model.coefs_)
        return "resumed"
    return measured(attempt)


# ----------------------------------------------------------- strategies
@st.composite
def byte_damage(draw, data):
    """Truncate, flip bytes or splice a chunk somewhere in ``data``."""
    kind = draw(st.sampled_from(["truncate", "flip", "splice"]))
    if kind == "truncate":
        return data[:draw(st.integers(0, len(data) - 1))]
    damaged = bytearray(data)
    if kind == "flip":
        for _ in range(draw(st.integers(1, 8))):
            position = draw(st.integers(0, len(data) - 1))
            damaged[position] ^= draw(st.integers(1, 255))
        return bytes(damaged)
    start = draw(st.integers(0, len(data)))
    stop = draw(st.integers(start, min(len(data), start + 64)))
    return bytes(damaged[:start]) + draw(st.binary(max_size=64)) + bytes(damaged[stop:])


json_scalars = (st.none() | st.booleans() | st.integers(-2**70, 2**70)
                | st.sampled_from([0, 1, -1, 2, 2**31, 2**63, 10**30])
                | st.floats(allow_nan=True, allow_infinity=True)
                | st.text(max_size=12) | st.sampled_from(["float64", "cuda", "relu", "1"]))
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=6), inner, max_size=4),
                           max_leaves=8)
DEEP = "\x00deep\x00"


def paths(value, prefix=()):
    """Every path (tuple of keys and indices) in a parsed JSON value."""
    found = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            found += paths(item, prefix + (key,))
    elif isinstance(value, list):
        for i, item in enumerate(value[:6]):
            found += paths(item, prefix + (i,))
    return found


@st.composite
def header_mutation(draw, header):
    """JSON text of ``header`` with one value replaced, deleted, added or nested deeply."""
    header = json.loads(json.dumps(header))
    path = draw(st.sampled_from(paths(header)[1:]))
    *parents, last = path
    container = header
    for key in parents:
        container = container[key]
    action = draw(st.sampled_from(["replace", "replace", "delete", "add", "deep"]))
    depth = draw(st.integers(2, 100_000))
    if action == "delete":
        del container[last]
    elif action == "add" and isinstance(container, dict):
        container[draw(st.text(max_size=6))] = draw(json_values)
    elif action == "deep":
        container[last] = DEEP
    else:
        container[last] = draw(json_values)
    text = json.dumps(header)
    return text.replace(json.dumps(DEEP), "[" * depth + "]" * depth)


OVERSIZED_SHAPES = [(10**12,), (10**6, 10**6), (2**62,), (2**40, 2**40), (-1,), (0,), (),
                    (3, -3), (1, 1, 1)]
ODD_DESCRS = ["<f4", "<f8", ">f4", "|O", "<U1000000", "|V8", "<c16", "<M8[s]", "|b1", "<i8",
              [("a", "<f4")], ("<f4", (10**6,))]


# ------------------------------------------------------------------ tests
def fuzz_settings(factor=1):
    return settings(max_examples=EXAMPLES * factor, deadline=None, derandomize=factor == 1,
                    suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module")
def references(originals, tmp_path_factory):
    directory = tmp_path_factory.mktemp("references")
    (directory / "model.npz").write_bytes(originals["model"])
    (directory / "ck.npz").write_bytes(originals["checkpoint"])
    return fastann.load(directory / "model.npz"), read_checkpoint(directory / "ck.npz")


def _fuzz_bytes(originals, references, tmp_path, data, kind):
    path = tmp_path / f"{kind}.npz"
    source = originals[kind]
    path.write_bytes(data.draw(byte_damage(source)))
    if kind == "model":
        check_model_file(path, references[0])
    else:
        check_checkpoint_file(path, references[1], originals)


def _fuzz_header(originals, references, tmp_path, data, kind):
    path = tmp_path / f"{kind}.npz"
    header, arrays = entries(originals[kind])
    path.write_bytes(archive(data.draw(header_mutation(header)), arrays))
    if kind == "model":
        check_model_file(path, references[0], damaged_header=True)
    else:
        check_checkpoint_file(path, references[1], originals, damaged_header=True)


def _fuzz_members(originals, references, tmp_path, data, kind):
    path = tmp_path / f"{kind}.npz"
    _, arrays = entries(originals[kind])
    name = data.draw(st.sampled_from(sorted(arrays) + ["header", "extra"]))
    member = npy_member(data.draw(st.sampled_from(OVERSIZED_SHAPES)),
                        data.draw(st.sampled_from(ODD_DESCRS)),
                        data.draw(st.binary(max_size=128)), data.draw(st.booleans()))
    compress = data.draw(st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]))
    path.write_bytes(with_members(originals[kind], {f"{name}.npy": member}, compress))
    if kind == "model":
        outcome = check_model_file(path, references[0])
    else:
        outcome = check_checkpoint_file(path, references[1], originals)
    assert outcome == "rejected" or name == "extra"


@pytest.mark.parametrize("kind", ["model", "checkpoint"])
@fuzz_settings()
@given(data=st.data())
def test_fuzz_bytes(originals, references, tmp_path_factory, data, kind):
    _fuzz_bytes(originals, references, tmp_path_factory.mktemp("f"), data, kind)


@pytest.mark.parametrize("kind", ["model", "checkpoint"])
@fuzz_settings()
@given(data=st.data())
def test_fuzz_header(originals, references, tmp_path_factory, data, kind):
    _fuzz_header(originals, references, tmp_path_factory.mktemp("f"), data, kind)


@pytest.mark.parametrize("kind", ["model", "checkpoint"])
@fuzz_settings()
@given(data=st.data())
def test_fuzz_member_headers(originals, references, tmp_path_factory, data, kind):
    _fuzz_members(originals, references, tmp_path_factory.mktemp("f"), data, kind)


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("FASTANN_LONG_FUZZ"),
                    reason="10x longer, random seeds: set FASTANN_LONG_FUZZ=1")
@pytest.mark.parametrize("kind", ["model", "checkpoint"])
@pytest.mark.parametrize("fuzz", [_fuzz_bytes, _fuzz_header, _fuzz_members])
def test_fuzz_longer(originals, references, tmp_path_factory, kind, fuzz):
    @fuzz_settings(factor=10)
    @given(data=st.data())
    def run(data):
        fuzz(originals, references, tmp_path_factory.mktemp("f"), data, kind)
    run()


def test_fuzz_statistics_are_reported(capsys):
    """Prints what the fuzz tests above did (run them first: pytest runs files in order)."""
    if not STATS["cases"]:
        pytest.skip("no fuzz case ran in this session")
    with capsys.disabled():
        print(f"\nfuzz: {STATS['cases']} cases in {STATS['seconds']:.1f} s, max traced memory "
              f"growth {STATS['max_growth'] / 2**20:.1f} MiB, outcomes {STATS['outcomes']}")
    assert STATS["max_growth"] < MAX_GROWTH


# ------------------------------------------------- named attacks, one each
def test_a_deflate_bomb_member_that_is_not_expected_is_never_read(originals, references,
                                                                  tmp_path):
    """An extra member inflating to 256 MiB (a few hundred KB in the file) is ignored."""
    n_bytes = 256 * 2**20
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    zeros = bytes(2**20)
    body = npy_member((n_bytes // 4,), "<f4")
    deflated = compressor.compress(body) + b"".join(compressor.compress(zeros)
                                                    for _ in range(n_bytes // 2**20))
    deflated += compressor.flush()
    crc = zlib.crc32(body)
    for _ in range(n_bytes // 2**20):
        crc = zlib.crc32(zeros, crc)
    path = tmp_path / "bomb.npz"
    path.write_bytes(_zip_with_raw_member(originals["model"], "bomb.npy", deflated, crc,
                                          len(body) + n_bytes))
    assert len(path.read_bytes()) < 2 * 2**20
    with zipfile.ZipFile(path) as z:
        assert z.getinfo("bomb.npy").file_size == len(body) + n_bytes
    assert check_model_file(path, references[0]) == "loaded"


def _zip_with_raw_member(data, name, compressed, crc, file_size):
    """``data`` plus member ``name`` holding already-deflated bytes (zip written by hand)."""
    with zipfile.ZipFile(io.BytesIO(data)) as source:
        members = [(info.filename, source.read(info.filename)) for info in source.infolist()]
    out, central = bytearray(), bytearray()
    entries_ = [(n, zlib.crc32(c), len(c), len(c), 0, c) for n, c in members]
    entries_.append((name, crc, len(compressed), file_size, 8, compressed))
    for filename, crc_, csize, usize, method, content in entries_:
        encoded, offset = filename.encode(), len(out)
        out += struct.pack("<4s2B4HL2L2H", b"PK\x03\x04", 20, 0, 0, method, 0, 0, crc_,
                           csize, usize, len(encoded), 0) + encoded + content
        central += struct.pack("<4s4B4HL2L5H2L", b"PK\x01\x02", 20, 0, 20, 0, 0, method, 0, 0,
                               crc_, csize, usize, len(encoded), 0, 0, 0, 0, 0,
                               offset) + encoded
    end = struct.pack("<4s4H2LH", b"PK\x05\x06", 0, 0, len(entries_), len(entries_),
                      len(central), len(out), 0)
    return bytes(out + central + end)


def test_an_expected_member_claiming_a_trillion_floats_is_refused_unread(originals, tmp_path):
    path = tmp_path / "huge.npz"
    path.write_bytes(with_members(originals["model"],
                                  {"coef_0.npy": npy_member((10**6, 10**6), "<f4", b"x" * 64)}))
    tracemalloc.start()
    try:
        with pytest.raises(ModelFileError, match="coef_0"):
            fastann.load(path)
        assert tracemalloc.get_traced_memory()[1] < MAX_GROWTH
    finally:
        tracemalloc.stop()


def test_members_larger_than_the_available_memory_are_refused(originals, tmp_path,
                                                              monkeypatch):
    import fastann.container
    path = tmp_path / "model.npz"
    path.write_bytes(originals["model"])
    monkeypatch.setattr(fastann.container, "available_memory", lambda: 64)
    with pytest.raises(ModelFileError, match="more than the 64 bytes available"):
        fastann.load(path)


@pytest.mark.parametrize("depth", [40, 100_000])
def test_deeply_nested_headers_are_refused(originals, tmp_path, depth):
    header, arrays = entries(originals["model"])
    text = json.dumps({**header, "history": DEEP}).replace(json.dumps(DEEP),
                                                           "[" * depth + "]" * depth)
    path = tmp_path / "deep.npz"
    path.write_bytes(archive(text, arrays))
    with pytest.raises(ModelFileError, match="nested"):
        fastann.load(path)


def test_an_oversized_header_is_refused_before_it_is_parsed(originals, tmp_path, monkeypatch):
    import fastann.container
    header, arrays = entries(originals["model"])
    path = tmp_path / "big.npz"
    path.write_bytes(archive(json.dumps({**header, "note": "x" * 5000}), arrays))
    monkeypatch.setattr(fastann.container, "MAX_HEADER_CHARS", 1000)
    with pytest.raises(ModelFileError, match="header"):
        fastann.load(path)
    monkeypatch.undo()
    assert fastann.load(path).n_iter_ > 0  # an unknown header field alone is harmless
