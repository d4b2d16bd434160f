"""The benchmark tooling: the JAX peer, compare.py's table and OpenBLAS settings,
the same-process ratio benchmarks, and the CI gate's choice of base commit.

Timings are not checked (the machine may be busy); what is checked is that the
tools run, record what they claim to record, and that the JAX peer trains.
"""
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # ``benchmarks`` is a folder of the repository, not installed
    sys.path.append(ROOT)

from benchmarks import compare, peers  # noqa: E402
from benchmarks.common import WORKLOADS, Workload, load_data  # noqa: E402


def _has(*modules):
    import importlib.util
    return all(importlib.util.find_spec(m) is not None for m in modules)


needs_jax = pytest.mark.skipif(not _has("jax", "optax"), reason="jax/optax not installed")


# ----------------------------------------------------------------- JAX peer
@needs_jax
@pytest.mark.slow
def test_jax_peer_trains_S_to_90_percent_in_one_epoch():
    X, y, source = load_data("train")
    if not source.startswith("mnist"):
        pytest.skip(f"MNIST not available ({source})")
    Xt, yt, _ = load_data("test")
    trainer = peers.JaxTrainer(WORKLOADS["S"], X, y)
    trainer.epoch()
    assert trainer.score(Xt, yt) > 0.90


@needs_jax
@pytest.mark.parametrize("name", ["S", "seed"])
def test_run_jax_result_and_last_short_batch(name):
    # 300 rows, batch 128: two scanned steps and one step of 44 rows.
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (300, 784), dtype=np.uint8)
    y = rng.integers(0, 10, 300).astype(np.uint8)
    out = peers.run_jax(WORKLOADS[name], X, y, repeat=2, threads=1)
    assert len(out["epochs"]) == 2 and out["median"] > 0
    assert out["threads"].startswith("XLA default") and out["threads_requested"] == 1
    assert out["version"].startswith("jax ")
    assert 0.0 <= out["train_accuracy"] <= 1.0


@needs_jax
def test_jax_trainer_learns_a_separable_toy_problem():
    # Momentum SGD + sigmoid (the seed workload's path) on two well-separated classes.
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, 512).astype(np.uint8)
    X = np.where(y[:, None] == 1, 200, 20).astype(np.uint8) * np.ones((1, 784), np.uint8)
    X = (X + rng.integers(0, 30, X.shape)).clip(0, 255).astype(np.uint8)
    w = Workload("toy", (16,), "sigmoid", "momentum", 0.1, 32)
    trainer = peers.JaxTrainer(w, X, y)
    for _ in range(3):
        trainer.epoch()
    assert trainer.score(X, y) > 0.95


def test_run_jax_without_jax_is_unavailable(monkeypatch):
    monkeypatch.setitem(sys.modules, "jax", None)    # import jax -> ImportError
    with pytest.raises(peers.PeerUnavailable):
        peers.run_jax(WORKLOADS["S"], np.zeros((4, 784), np.uint8), np.zeros(4, np.uint8))


def test_peers_cli_reports_a_missing_jax_as_skipped():
    code = ("import sys; sys.modules['jax'] = None; import numpy as np; "
            "from benchmarks import peers; "
            "peers.load_data = lambda split, subset=None: "
            "(np.zeros((256, 784), np.uint8), np.zeros(256, np.uint8), 'zeros'); "
            "sys.exit(peers.main(['--peer', 'jax', '--subset', '256', '--repeat', '1']))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    import json
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["peer"] == "jax" and "skipped" in out


def test_default_repeat_is_five():
    assert peers.DEFAULT_REPEAT == 5
    assert "jax" in peers.PEERS and "jax" in peers.RUNNERS


def test_sgemm_reports_blas_and_respects_threads():
    assert peers.sgemm_gflops(n=128, repeat=2, threads=1) > 0
    info = peers.blas_info()
    assert info and all("architecture" in b for b in info)


# ----------------------------------------------------------------- compare.py
def test_openblas_env_settings():
    base = {"PATH": "/bin", "OPENBLAS_CORETYPE": "Haswell", "OPENBLAS_L2_SIZE": "1048576"}
    unset = compare.openblas_env("unset", base)
    assert "OPENBLAS_CORETYPE" not in unset and "OPENBLAS_L2_SIZE" not in unset
    assert unset["PATH"] == "/bin"
    assert compare.openblas_env("haswell", {})["OPENBLAS_CORETYPE"] == "Haswell"
    assert compare.openblas_env("inherit", base) == base
    with pytest.raises(ValueError):
        compare.openblas_env("skylake", base)


def test_openblas_settings_drop_an_inherit_equal_to_unset():
    assert compare.parse_openblas_settings("unset,inherit", {}) == ["unset"]
    assert compare.parse_openblas_settings("unset,inherit",
                                           {"OPENBLAS_CORETYPE": "Haswell"}) == ["unset", "inherit"]
    assert compare.parse_openblas_settings("haswell,inherit",
                                           {"OPENBLAS_CORETYPE": "Haswell"}) == ["haswell"]
    with pytest.raises(ValueError):
        compare.parse_openblas_settings("unset,bogus", {})


def _fake(peer, workload, median, flops=6e9):
    return {"peer": peer, "workload": workload, "median": median, "gflops": flops / median / 1e9,
            "n_samples": 1000, "data": "mnist"}


def test_markdown_columns_with_and_without_jax():
    rows = [_fake("fastann", "S", 0.2), _fake("numpy", "S", 0.4), _fake("jax", "S", 0.5),
            {"peer": "torch", "workload": "S", "skipped": "torch not installed"}]
    table = compare.markdown(rows, sgemm=60.0, header="H", peak=430.0)
    lines = table.splitlines()
    head = next(line for line in lines if line.startswith("| workload"))
    assert "vs JAX" in head and "% of 430 GFLOP/s peak" in head and "% of sgemm" in head
    n_cols = head.count("|")
    assert all(line.count("|") == n_cols for line in lines if line.startswith("| S"))
    fastann = next(line for line in lines if line.startswith("| S | fastann"))
    # 30 GFLOP/s: 7% of 430 and 50% of sgemm; fastann takes 0.40x JAX's time.
    assert "| 0.40x |" in fastann and "| 30.0 | 7% | 50% |" in fastann
    assert "vs JAX" not in compare.markdown(rows[:2], 60.0, "H")


def test_compare_main_runs_every_peer_under_each_openblas_setting(monkeypatch, tmp_path, capsys):
    calls = []

    def fake_run(args, timeout, env=None):
        calls.append((args, {v: (env or {}).get(v) for v in compare.OPENBLAS_VARS}))
        peer = args[args.index("--peer") + 1]
        if peer == "sgemm":
            return {"gflops": 100.0, "blas": [{"architecture": "Haswell" if env.get(
                "OPENBLAS_CORETYPE") else "SkylakeX"}]}
        workload = args[args.index("--workload") + 1]
        return _fake(peer, workload, {"fastann": 0.1, "jax": 0.2}.get(peer, 0.3))

    monkeypatch.setattr(compare, "run_subprocess", fake_run)
    monkeypatch.delenv("OPENBLAS_CORETYPE", raising=False)
    out_json = tmp_path / "r.json"
    assert compare.main(["--workloads", "S,seed", "--peers", "fastann,jax", "--repeat", "2",
                         "--openblas-env", "unset,haswell", "--threads", "1",
                         "--json", str(out_json)]) == 0
    text = capsys.readouterr().out
    assert text.count("| workload | peer |") == 2
    assert "OPENBLAS_CORETYPE unset" in text and "OPENBLAS_CORETYPE=Haswell" in text
    assert "OpenBLAS kernels in use: SkylakeX" in text and "kernels in use: Haswell" in text
    assert compare.cpu_model() in text and "median of 2 epochs" in text
    # sgemm + 2 workloads x 2 peers, per setting; every call carries --threads.
    assert len(calls) == 2 * (1 + 4)
    assert all("--threads" in args for args, _ in calls)
    assert {env["OPENBLAS_CORETYPE"] for _, env in calls} == {None, "Haswell"}
    import json
    saved = json.loads(out_json.read_text())
    assert [r["openblas_env"] for r in saved["runs"]] == ["unset", "haswell"]


def test_compare_rejects_unknown_names():
    with pytest.raises(SystemExit):
        compare.main(["--peers", "fastann,caffe"])
    with pytest.raises(SystemExit):
        compare.main(["--openblas-env", "icelake"])


# ------------------------------------------------------------- ratio benchmarks
def test_alternating_ratio_interleaves_and_takes_medians():
    from benchmarks import bench_ratios
    order = []
    ratio = bench_ratios.alternating_ratio(lambda: order.append("f"),
                                           lambda: order.append("r"), rounds=3)
    assert order == ["f", "r"] * 4          # warm-up pair + 3 timed pairs
    assert ratio > 0


def test_ratio_benchmarks_are_named_and_configured_for_asv():
    from benchmarks import bench_ratios
    names = [n for n in dir(bench_ratios) if n.startswith("track_")]
    assert {"track_ratio_epoch_S_to_numpy_reference", "track_ratio_epoch_S_to_sgemm"} <= set(names)
    for n in names:
        func = getattr(bench_ratios, n)
        assert func.unit == "ratio" and callable(func.setup)


def test_ratio_benchmark_runs_on_a_small_subset(monkeypatch):
    pytest.importorskip("fastann")
    from benchmarks import bench_ratios
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (1024, 784), dtype=np.uint8)
    y = rng.integers(0, 10, 1024).astype(np.uint8)
    # Random data: no MNIST download (or cache) needed.
    monkeypatch.setattr(bench_ratios, "load_data", lambda split, n=None: (X[:n], y[:n], "random"))
    monkeypatch.setenv("FASTANN_BENCH_N", "1024")
    monkeypatch.setenv("FASTANN_BENCH_THREADS", "1")
    monkeypatch.setattr(bench_ratios, "ROUNDS", 2)
    monkeypatch.setattr(bench_ratios, "_STATE", {})
    for name in ("track_ratio_epoch_seed_to_numpy_reference", "track_ratio_epoch_S_to_sgemm"):
        func = getattr(bench_ratios, name)
        func.setup()
        assert 0 < func() < 1000


# ------------------------------------------------------------------ CI gate base
needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def _git(repo, *args):
    return subprocess.run(["git", "-C", str(repo), *args], check=True, capture_output=True,
                          text=True).stdout.strip()


@pytest.fixture
def repo(tmp_path):
    """A small repository with this checkout's gate_base.sh and four commits."""
    r = tmp_path / "repo"
    (r / "benchmarks").mkdir(parents=True)
    shutil.copy(os.path.join(ROOT, "benchmarks", "gate_base.sh"), r / "benchmarks")
    _git(r, "init", "-q")
    _git(r, "config", "user.email", "t@example.com")
    _git(r, "config", "user.name", "t")
    for i in range(4):
        (r / "f.txt").write_text(str(i))
        _git(r, "add", "-A")
        _git(r, "commit", "-q", "-m", f"c{i}")
    return r


def _resolve(repo, head="HEAD", **env):
    return subprocess.run(["bash", "benchmarks/gate_base.sh", "resolve", head], cwd=repo,
                          capture_output=True, text=True,
                          env={**os.environ, "ASV_GATE_BASE": "", **env})


@needs_git
def test_gate_base_falls_back_to_the_parent(repo):
    proc = _resolve(repo)
    assert proc.returncode == 0
    assert proc.stdout.strip() == _git(repo, "rev-parse", "HEAD~1")
    assert "falling back to the parent" in proc.stderr


@needs_git
def test_gate_base_mark_then_resolve_spans_several_commits(repo):
    landed = _git(repo, "rev-parse", "HEAD~2")
    subprocess.run(["bash", "benchmarks/gate_base.sh", "mark", landed], cwd=repo, check=True,
                   capture_output=True)
    assert _git(repo, "log", "-1", "--format=%s").startswith("benchmarks/gate-base:")
    (repo / "g.txt").write_text("more work")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "more")
    proc = _resolve(repo)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == landed
    assert "4 commit(s) before HEAD" in proc.stderr


@needs_git
@pytest.mark.parametrize("content", ["", "# only a comment\n", "0123456789abcdef\n",
                                     "HEAD\n"])
def test_gate_base_ignores_an_invalid_record(repo, content):
    (repo / "benchmarks" / "gate-base").write_text(content)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "record")
    proc = _resolve(repo)
    assert proc.returncode == 0
    assert proc.stdout.strip() == _git(repo, "rev-parse", "HEAD~1")


@needs_git
def test_gate_base_ignores_a_commit_that_is_not_an_ancestor(repo):
    _git(repo, "checkout", "-q", "-b", "side", "HEAD~1")
    (repo / "s.txt").write_text("side")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "side")
    side = _git(repo, "rev-parse", "HEAD")
    _git(repo, "checkout", "-q", "-")
    (repo / "benchmarks" / "gate-base").write_text(side + "\n")
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "-m", "record")
    assert _resolve(repo).stdout.strip() == _git(repo, "rev-parse", "HEAD~1")


@needs_git
def test_gate_base_env_override_and_root_commit(repo):
    first = _git(repo, "rev-list", "--max-parents=0", "HEAD")
    proc = _resolve(repo, ASV_GATE_BASE=first)
    assert proc.stdout.strip() == first and "ASV_GATE_BASE" in proc.stderr
    proc = _resolve(repo, head=first)
    assert proc.returncode == 3 and proc.stdout == ""


# --------------------------------------------------------- gpu_compare.py
def test_gpu_compare_table_marks_targets_errors_and_skips():
    """The GPU report from a partial run: met and missed targets, a failed variant, skips."""
    from benchmarks import gpu_compare
    results = {
        "environment": {"device": "a GPU", "numba_cuda": "0.30", "data": "mnist, 10 rows",
                        "repeat": 5},
        "launch": {"host_us_per_launch": 9.0, "wall_us_per_launch": 11.0},
        "workloads": {
            "S": {"torch": {"median_ms": 100.0}, "fastann": {
                "default": {"median_ms": 40.0, "us_per_step": 85.3, "launches_per_step": 5},
                "graphs": {"median_ms": 10.0},
                "split": {"error": "CudaAPIError: launch failed"}}},
            "W": {"torch": {"skipped": "--time-limit 60 s reached"},
                  "fastann": {"default": {"skipped": "--time-limit 60 s reached"}}}},
        "compile": {"skipped": "--time-limit 60 s reached"}}
    table = gpu_compare.markdown(results)
    assert "| S | default | 40.0 | 100.0 | 2.50x | <= 20 ms, >= 5x | no |" in table
    assert "| S | graphs | 10.0 | 100.0 | 10.00x | <= 20 ms, >= 5x | yes |" in table
    assert "| S | split | error |" in table and "| W | default | skipped |" in table
    assert "- S split: CudaAPIError: launch failed" in table
    assert "- W torch: --time-limit 60 s reached" in table
    assert "- compile: --time-limit 60 s reached" in table
    assert "S: 85.3 µs per training step (5 launches)." in table


@pytest.mark.skipif(not _has("numba_cuda"), reason="numba-cuda not installed")
def test_gpu_compare_saves_what_it_measured_within_its_time_limit(tmp_path):
    """Under the simulator with --time-limit 0 nothing is measured, and the files say so."""
    import json
    env = dict(os.environ, NUMBA_ENABLE_CUDASIM="1")
    out = tmp_path / "gpu"
    result = subprocess.run(
        [sys.executable, "benchmarks/gpu_compare.py", "--allow-simulator", "--time-limit", "0",
         "--subset", "8", "--variants", "default", "split", "--out", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    saved = json.loads((out / "results.json").read_text())
    parts = [saved["launch"], saved["compile"], *saved["cli"]]
    for per in saved["workloads"].values():
        parts += [per["torch"], *per["fastann"].values()]
    assert len(parts) == 2 + 2 + 2 * 3 and all("skipped" in part for part in parts)
    assert "Not measured:" in (out / "results.md").read_text()
    assert not list(out.glob("*.tmp"))


@pytest.mark.skipif(not _has("numba_cuda"), reason="numba-cuda not installed")
def test_gpu_compare_measures_each_part_in_a_process_of_its_own(monkeypatch):
    """A measurement runs in a child process (here under the simulator); a child that fails
    gives an error with the end of its output, not an exception in the run."""
    from benchmarks import gpu_compare
    monkeypatch.setenv("NUMBA_ENABLE_CUDASIM", "1")
    got = gpu_compare.measure_in_child({"part": "launch"}, timeout=300)
    assert got["host_us_per_launch"] > 0 and got["wall_us_per_launch"] >= got["host_us_per_launch"]
    got = gpu_compare.measure_in_child({"part": "fastann", "workload": "S", "variant": "nope",
                                        "subset": 8, "repeat": 1}, timeout=300)
    assert got["error"].startswith("exit status 1") and "KeyError: 'nope'" in got["error"]
