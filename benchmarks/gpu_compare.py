"""fastann on an NVIDIA GPU vs PyTorch CUDA eager: the measurements of issue 11, in one command.

Run on a machine with a GPU, from the repository root::

    pip install -e ".[cuda13,test]" torch      # or .[cuda12]; torch with CUDA
    python benchmarks/gpu_compare.py            # -> out/gpu_compare/results.json, results.md

What it measures, on the same GPU in one process (each part in a subprocess
where a fresh process matters):

* **Epoch times**, workloads S (784-128-10, Adam, batch 128) and W
  (784-1024-1024-10, Adam, batch 256) of ``benchmarks/common.py``, 60,000
  MNIST rows (random rows of the same shape when MNIST cannot be loaded;
  timings stay meaningful): the median of ``--repeat`` epochs after one
  warm-up epoch.

  - fastann: :class:`fastann.backends.cuda.CudaBackend` trained directly (one
    ``train`` call per epoch, timed with the host shuffle before it: the
    order and the plan uploaded, the loss and correct count read back), for
    each ``--variants`` entry:
    ``default`` (the shipped launch shapes), ``graphs`` (CUDA-graph replay),
    ``prepared`` (eager launches with the arguments converted once),
    ``fused`` / ``fused+graphs`` (the optimizer inside the first layer's
    backward launch, ``fuse_update=True``: one launch fewer per step),
    ``cublas`` / ``cublas+fused`` / ``cublas+graphs`` / ``cublas+fused+graphs``
    (hidden layers at least 64 wide through cuBLAS, ``gemm="cublas"``, the
    GEMMs captured in the graph with ``+graphs``; needs CuPy: ``pip install
    cupy-cuda13x``),
    ``split`` / ``split+fused+graphs`` (forward launches with fewer blocks than
    the GPU has SMs split their reduction, ``split_k="auto"``),
    ``d4`` / ``split+d4+fused+graphs`` (forward slabs 4 tile edges deep,
    ``depth=4``: a quarter of the rounds of loads, each with 4x more in flight),
    ``t8`` (8x8-thread tiles: 4x the blocks, to fill more SMs at batch 128),
    ``pt2`` / ``pt4`` (2x2 / 4x4 outputs per thread in the dense tiles), and
    ``model`` (``MLPClassifier.partial_fit``: shuffle, train, divergence
    check, as the CLI runs an epoch).
  - PyTorch CUDA eager: ``nn.Sequential`` of ``nn.Linear`` + ReLU,
    ``torch.optim.Adam(fused=True)``, ``CrossEntropyLoss``, float32 with TF32 off
    (``torch.backends.cuda.matmul.allow_tf32 = False``, cuDNN too), the data
    already on the GPU as float32 in [0, 1], a GPU ``randperm`` per epoch,
    ``torch.cuda.synchronize()`` before each clock read.

* **Launch time**: host time per launch of a small kernel (1,000 launches,
  synchronized once), and per training micro-step of S (epoch / steps).
* **Compile time**: the first 1-epoch fit on 2,048 rows in a fresh process
  with an empty ``NUMBA_CACHE_DIR``, then again with that cache filled
  (``cache=True``), minus a warm epoch.
* **End to end**: ``fastann train --device cuda`` wall time (``--cli-dataset``,
  default the MNIST subset in tests/data; ``mnist`` for the full set).

Each peer and each fastann variant runs in a process of its own (its own CUDA
context and allocator; a sticky CUDA error ends that measurement only), with
``--child`` in the command line. Results are written after every measurement
(``results.json`` and
``results.md``, replaced atomically), PyTorch first in each workload, so a run
cut short keeps what it measured; ``--time-limit`` stops starting new
measurements after that many seconds (the rest is recorded as skipped).

The targets of issue 11 are checked in the Markdown table: S <= 20 ms/epoch
and >= 5x faster than PyTorch; W >= 1.5x faster than PyTorch. Correctness on
the hardware is ``pytest tests/cuda`` (``--with-tests`` runs it here too and
records the summary line). Nothing here runs without a GPU: it says why and
exits 2.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

if __package__ in (None, ""):  # run as a file: make ``benchmarks`` importable
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VARIANTS = {
    "default": {"graphs": False},
    "graphs": {"graphs": True},
    "prepared": {"prepared": True, "graphs": False},
    "fused": {"fuse_update": True, "graphs": False},
    "fused+graphs": {"fuse_update": True, "graphs": True},
    "cublas": {"gemm": "cublas", "graphs": False},
    "cublas+fused": {"gemm": "cublas", "fuse_update": True, "graphs": False},
    "cublas+graphs": {"gemm": "cublas", "graphs": True},
    "cublas+fused+graphs": {"gemm": "cublas", "fuse_update": True, "graphs": True},
    "split": {"split_k": "auto", "graphs": False},
    "split+fused+graphs": {"split_k": "auto", "fuse_update": True, "graphs": True},
    "d4": {"depth": 4, "graphs": False},
    "split+d4+fused+graphs": {"split_k": "auto", "depth": 4, "fuse_update": True,
                              "graphs": True},
    "t8": {"tile": 8, "graphs": False},
    "pt2": {"per_thread": 2, "graphs": False},
    "pt4": {"per_thread": 4, "tile": 8, "graphs": False},
    "model": {},  # MLPClassifier: graphs as FASTANN_CUDA_GRAPHS says
}
TARGETS = {"S": {"max_ms": 20.0, "min_speedup": 5.0}, "W": {"min_speedup": 1.5}}


def _median_ms(times):
    return 1000.0 * statistics.median(times)


def _sync():
    from numba import cuda
    cuda.synchronize()


# ------------------------------------------------------------------- fastann
def fastann_epochs(workload, X, y, repeat, variant):
    """Median epoch of fastann on the GPU for one workload and variant (see module doc)."""
    from fastann import MLPClassifier, kernels
    w = workload
    if variant == "model":
        model = MLPClassifier(hidden_layer_sizes=w.hidden, activation=w.activation,
                              solver=w.optimizer, learning_rate=w.lr, batch_size=w.batch_size,
                              epochs=1, random_state=0, device="cuda")
        t0 = time.perf_counter()
        model.partial_fit(X, y)
        warm = time.perf_counter() - t0
        times = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            model.partial_fit(X, y)
            times.append(time.perf_counter() - t0)
        return {"median_ms": _median_ms(times), "epochs_ms": [1000 * t for t in times],
                "first_epoch_s": warm, "train_loss": model.history_[-1]["train_loss"]}
    from fastann.backends.cuda import CudaBackend
    options = VARIANTS[variant]
    sizes = np.array(w.layer_sizes, np.int64)
    rng = np.random.default_rng(0)
    w_off, b_off = kernels.parameter_offsets(sizes)
    params = np.zeros(b_off[-1], np.float32)
    for layer in range(sizes.size - 1):
        params[w_off[layer]:w_off[layer + 1]] = rng.standard_normal(
            w_off[layer + 1] - w_off[layer]) * np.sqrt(2.0 / sizes[layer])
    norm = kernels.Normalization(np.full(sizes[0], 1 / 255, np.float32),
                                 np.zeros(sizes[0], np.float32))
    backend = CudaBackend(sizes, kernels.ACTIVATIONS[w.activation],
                          kernels.OPTIMIZERS[w.optimizer], norm, params, **options)
    y_codes = y.astype(np.int32)
    backend.load_data(X, y_codes, w.batch_size)
    hyper = kernels.hyperparameters(learning_rate=w.lr, momentum=w.momentum, beta_1=0.9,
                                    beta_2=0.999, epsilon=1e-8)
    order = np.arange(X.shape[0], dtype=np.int64)
    step = 0
    t0 = time.perf_counter()
    kernels.shuffle_inplace(order, 0)
    loss, _, step = backend.train(order, hyper, step)  # compiles (or loads the cache)
    warm = time.perf_counter() - t0
    times = []
    for epoch in range(repeat):
        t0 = time.perf_counter()  # the shuffle counts, as PyTorch's randperm does
        kernels.shuffle_inplace(order, epoch + 1)
        loss, _, step = backend.train(order, hyper, step)  # returns after the counters' copy
        times.append(time.perf_counter() - t0)
    steps_per_epoch = -(-X.shape[0] // w.batch_size)
    return {"median_ms": _median_ms(times), "epochs_ms": [1000 * t for t in times],
            "first_epoch_s": warm, "train_loss": loss / X.shape[0],
            "us_per_step": 1000 * _median_ms(times) / steps_per_epoch,
            # kernel launches and host GEMMs of one micro-step, as built
            "launches_per_step": len(backend._program.calls),
            "options": options}


# ------------------------------------------------------------------- PyTorch
def torch_epochs(workload, X, y, repeat):
    """Median epoch of PyTorch CUDA eager, fp32, TF32 off, data on the GPU."""
    import torch
    from torch import nn
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.manual_seed(0)
    dev = torch.device("cuda")
    w = workload
    act = {"relu": nn.ReLU, "sigmoid": nn.Sigmoid, "tanh": nn.Tanh}[w.activation]
    sizes = w.layer_sizes
    layers = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(act())
    model = nn.Sequential(*layers).to(dev)
    # PyTorch's fastest eager optimizers on CUDA: the fused Adam (one kernel for all
    # parameters) and the multi-tensor SGD.
    opt = torch.optim.Adam(model.parameters(), lr=w.lr, fused=True) if w.optimizer == "adam" \
        else torch.optim.SGD(model.parameters(), lr=w.lr, momentum=w.momentum, foreach=True)
    loss_fn = nn.CrossEntropyLoss()
    Xt = torch.from_numpy(np.ascontiguousarray(X, np.float32) / np.float32(255)).to(dev)
    yt = torch.from_numpy(y.astype(np.int64)).to(dev)
    n, bs = Xt.shape[0], w.batch_size

    def epoch():
        perm = torch.randperm(n, device=dev)
        for lo in range(0, n, bs):
            idx = perm[lo:lo + bs]
            opt.zero_grad(set_to_none=True)
            loss = loss_fn(model(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
        torch.cuda.synchronize()

    t0 = time.perf_counter()
    epoch()
    warm = time.perf_counter() - t0
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        epoch()
        times.append(time.perf_counter() - t0)
    return {"median_ms": _median_ms(times), "epochs_ms": [1000 * t for t in times],
            "first_epoch_s": warm, "version": torch.__version__,
            "tf32": bool(torch.backends.cuda.matmul.allow_tf32),
            "optimizer": f"{type(opt).__name__} ({'fused' if w.optimizer == 'adam' else 'foreach'})"}


# ------------------------------------------------------ launch and compile
def launch_time(n=1000):
    """Host microseconds per launch of a tiny kernel (constant arguments, no sync between)."""
    from numba import cuda

    from fastann.kernels.cuda import epoch
    counters = cuda.device_array(2, np.float64)
    cursor = cuda.device_array(2, np.int64)
    epoch._reset[1, 4](counters, cursor)
    _sync()
    t0 = time.perf_counter()
    for _ in range(n):
        epoch._reset[1, 4](counters, cursor)
    host = time.perf_counter() - t0
    _sync()
    total = time.perf_counter() - t0
    return {"host_us_per_launch": 1e6 * host / n, "wall_us_per_launch": 1e6 * total / n}


_COMPILE_CODE = """
import json, sys, time
import numpy as np
from fastann import MLPClassifier
rng = np.random.default_rng(0)
X = rng.integers(0, 256, (2048, 784), dtype=np.uint8)
y = rng.integers(0, 10, 2048)
m = MLPClassifier(hidden_layer_sizes=(128,), batch_size=128, epochs=1, random_state=0,
                  device="cuda")
t0 = time.perf_counter(); m.fit(X, y); first = time.perf_counter() - t0
t0 = time.perf_counter(); m.partial_fit(X, y); warm = time.perf_counter() - t0
print(json.dumps({"first_fit_s": first, "warm_epoch_s": warm}))
"""


def compile_time():
    """First fit in a fresh process: empty kernel cache, then the filled one."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold_cache", "warm_cache"):
            t0 = time.perf_counter()
            result = subprocess.run([sys.executable, "-c", _COMPILE_CODE], env=env, cwd=ROOT,
                                    capture_output=True, text=True, timeout=1800)
            if result.returncode:
                out[label] = {"error": result.stderr[-2000:]}
                continue
            got = json.loads(result.stdout.strip().splitlines()[-1])
            got["process_s"] = time.perf_counter() - t0
            got["compile_s"] = got["first_fit_s"] - got["warm_epoch_s"]
            out[label] = got
    return out


def cli_end_to_end(dataset, epochs, graphs=False):
    """``fastann train --device cuda`` wall time, in its own process (``FASTANN_CUDA_GRAPHS``)."""
    cmd = [sys.executable, "-m", "fastann.cli", "train", "--device", "cuda", "--dataset",
           dataset, "--epochs", str(epochs), "--hidden", "128", "--batch-size", "128"]
    env = dict(os.environ, FASTANN_CUDA_GRAPHS="1" if graphs else "0")
    t0 = time.perf_counter()
    result = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True,
                            timeout=3600)
    return {"command": f"FASTANN_CUDA_GRAPHS={env['FASTANN_CUDA_GRAPHS']} fastann "
                       + " ".join(cmd[3:]),
            "wall_s": time.perf_counter() - t0, "returncode": result.returncode,
            "tail": (result.stdout + result.stderr)[-1500:]}


def run_tests():
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "tests/cuda"], cwd=ROOT,
                            capture_output=True, text=True, timeout=3600)
    lines = (result.stdout + result.stderr).strip().splitlines()
    return {"returncode": result.returncode, "summary": lines[-1] if lines else ""}


# ------------------------------------------------- one measurement, one process
def measure_in_child(spec, timeout=None):
    """One measurement (``spec``: what :func:`child_main` takes) in a fresh process.

    Each peer and each fastann variant gets its own process and CUDA context,
    as peers are compared in this project, so that neither's allocator or
    loaded kernels weigh on the other, and a sticky CUDA error (an illegal
    address, say) ends one measurement, not the run. Returns the child's
    result, or ``{"error": ...}`` with the end of its output.
    """
    cmd = [sys.executable, os.path.abspath(__file__), "--child", json.dumps(spec)]
    try:
        result = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    lines = result.stdout.strip().splitlines()
    if result.returncode or not lines:
        tail = (result.stdout + result.stderr).strip()[-1500:]
        return {"error": f"exit status {result.returncode}: {tail}"}
    return json.loads(lines[-1])


def child_main(spec):
    """Run one measurement of :func:`measure_in_child` and print its result as JSON."""
    spec = json.loads(spec)
    if spec["part"] == "launch":
        got = launch_time()
    else:
        from benchmarks.common import WORKLOADS, load_data
        X, y, _ = load_data("train", spec["subset"])
        X = np.ascontiguousarray(X)
        w = WORKLOADS[spec["workload"]]
        if spec["part"] == "torch":
            got = torch_epochs(w, X, y, spec["repeat"])
        else:
            got = fastann_epochs(w, X, y, spec["repeat"], spec["variant"])
    print(json.dumps(got))
    return 0


# ------------------------------------------------------------------ report
def markdown(results):
    env = results["environment"]
    lines = [f"# fastann vs PyTorch CUDA eager on {env['device']}", "",
             f"numba-cuda {env['numba_cuda']}, torch {env.get('torch', '-')}, driver "
             f"{env.get('driver', '?')}, data: {env['data']}, median of {env['repeat']} "
             f"epochs after a warm-up, fp32, TF32 off"
             f"{'; ' + env['processes'] if 'processes' in env else ''}.", "",
             "| workload | fastann variant | fastann ms/epoch | PyTorch ms/epoch | speed-up | "
             "target | met |", "| --- | --- | ---: | ---: | ---: | --- | --- |"]
    for name, per in results["workloads"].items():
        torch_ms = per.get("torch", {}).get("median_ms")
        target = TARGETS.get(name, {})
        for variant, got in per["fastann"].items():
            if "median_ms" not in got:
                lines.append(f"| {name} | {variant} | {'skipped' if 'skipped' in got else 'error'}"
                             " | | | | |")
                continue
            ms = got["median_ms"]
            speedup = torch_ms / ms if torch_ms else None
            want, ok = [], True
            if "max_ms" in target:
                want.append(f"<= {target['max_ms']:g} ms")
                ok &= ms <= target["max_ms"]
            if "min_speedup" in target and speedup is not None:
                want.append(f">= {target['min_speedup']:g}x")
                ok &= speedup >= target["min_speedup"]
            lines.append(f"| {name} | {variant} | {ms:.1f} | "
                         f"{'-' if torch_ms is None else f'{torch_ms:.1f}'} | "
                         f"{'-' if speedup is None else f'{speedup:.2f}x'} | {', '.join(want)} | "
                         f"{'yes' if ok else 'no'} |")
    launch = results.get("launch", {})
    if "host_us_per_launch" in launch:
        lines += ["", f"Launch: {launch['host_us_per_launch']:.1f} µs host time per launch "
                      f"({launch['wall_us_per_launch']:.1f} µs with the GPU's time)."]
    for name, per in results["workloads"].items():
        got = per["fastann"].get("default", {})
        if "us_per_step" in got:
            lines.append(f"{name}: {got['us_per_step']:.1f} µs per training step "
                         f"({got['launches_per_step']} launches).")
    comp = results.get("compile", {})
    for label, got in comp.items():
        if isinstance(got, dict) and "compile_s" in got:
            lines.append(f"Compile ({label.replace('_', ' ')}): {got['compile_s']:.2f} s "
                         f"(first fit {got['first_fit_s']:.2f} s, process {got['process_s']:.1f} s).")
    for cli in results.get("cli", []):
        if "command" not in cli:
            continue
        lines.append(f"End to end: `{cli['command']}`: {cli['wall_s']:.1f} s "
                     f"(exit {cli['returncode']}).")
    if "summary" in results.get("tests", {}):
        lines.append(f"`pytest tests/cuda`: {results['tests']['summary']}")
    missing = [f"{part}: {got.get('error') or got.get('skipped')}" for part, got in
               _parts(results) if "error" in got or "skipped" in got]
    if missing:
        lines += ["", "Not measured:"] + [f"- {line}" for line in missing]
    return "\n".join(lines) + "\n"


def _parts(results):
    """``(label, result)`` of every measurement in ``results``."""
    for part in ("tests", "launch", "compile"):
        if part in results:
            yield part, results[part]
    for name, per in results["workloads"].items():
        if "torch" in per:
            yield f"{name} torch", per["torch"]
        for variant, got in per["fastann"].items():
            yield f"{name} {variant}", got
    for cli in results.get("cli", []):
        yield "cli", cli


def save(results, out):
    """Write ``results.json`` and ``results.md`` under ``out``, each replaced atomically."""
    os.makedirs(out, exist_ok=True)
    for name, text in (("results.json", json.dumps(results, indent=2, default=str)),
                       ("results.md", markdown(results))):
        path = os.path.join(out, name)
        with open(path + ".tmp", "w") as f:
            f.write(text)
        os.replace(path + ".tmp", path)


def main(argv=None):
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--child":
        return child_main(sys.argv[2])
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", nargs="+", default=["S", "W"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--subset", type=int, default=None, help="training rows (default all)")
    parser.add_argument("--out", default=os.path.join(ROOT, "out", "gpu_compare"))
    parser.add_argument("--skip-torch", action="store_true")
    parser.add_argument("--skip-compile", action="store_true")
    parser.add_argument("--cli-dataset", default=os.path.join(ROOT, "tests", "data"))
    parser.add_argument("--cli-epochs", type=int, default=5)
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--with-tests", action="store_true", help="also run pytest tests/cuda")
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                        help="start no new measurement after this many seconds")
    parser.add_argument("--allow-simulator", action="store_true",
                        help="run under NUMBA_ENABLE_CUDASIM=1 (a smoke test of this script: "
                             "use --subset 64 --skip-torch --skip-compile --skip-cli)")
    args = parser.parse_args(argv)

    from fastann.backends.cuda import cuda_available
    ok, reason = cuda_available()
    if not ok or ("simulator" in reason.lower() and not args.allow_simulator):
        print(f"no CUDA GPU: {reason}", file=sys.stderr)
        return 2
    import numba_cuda

    from benchmarks.common import WORKLOADS, load_data
    X, y, source = load_data("train", args.subset)
    env = {"device": reason, "numba_cuda": numba_cuda.__version__, "python":
           platform.python_version(), "data": f"{source}, {X.shape[0]} rows",
           "repeat": args.repeat, "processes": "each measurement in a process of its own"}
    del X, y  # each measurement loads the data in its own process
    try:
        from numba import cuda
        env["driver"] = ".".join(map(str, cuda.cudadrv.driver.driver.get_version()))
    except Exception:  # pragma: no cover - informational only
        pass
    results = {"environment": env, "workloads": {}}
    started = time.perf_counter()

    def measure(label, function, *function_args):
        """``function(*function_args)``, its error, or a skip past ``--time-limit``; saved."""
        if args.time_limit is not None and time.perf_counter() - started > args.time_limit:
            got = {"skipped": f"--time-limit {args.time_limit:g} s reached"}
        else:
            try:
                got = function(*function_args)
            except Exception as exc:  # record and go on: one failed part is a result
                got = {"error": f"{type(exc).__name__}: {exc}"}
        print(label, got.get("median_ms", got) if isinstance(got, dict) else got, flush=True)
        return got

    def in_child(spec):
        spec = dict(spec, subset=args.subset, repeat=args.repeat)
        left = None
        if args.time_limit is not None:  # a measurement started in time may finish after it
            left = max(60.0, args.time_limit - (time.perf_counter() - started) + 300.0)
        return measure_in_child(spec, left)

    if args.with_tests:
        results["tests"] = measure("tests", run_tests)
        save(results, args.out)
    results["launch"] = measure("launch", in_child, {"part": "launch"})
    for name in args.workloads:
        w = WORKLOADS[name]
        per = results["workloads"][name] = {"workload": w.to_dict(), "fastann": {}}
        if not args.skip_torch:
            per["torch"] = measure(f"{name} torch", in_child, {"part": "torch", "workload": name})
            if "version" in per["torch"]:
                env["torch"] = per["torch"]["version"]
            save(results, args.out)
        for variant in args.variants:
            per["fastann"][variant] = measure(
                f"{name} {variant}", in_child,
                {"part": "fastann", "workload": name, "variant": variant})
            save(results, args.out)
    if not args.skip_compile:
        results["compile"] = measure("compile", compile_time)
        save(results, args.out)
    if not args.skip_cli:
        results["cli"] = [measure("cli", cli_end_to_end, args.cli_dataset, args.cli_epochs,
                                  graphs) for graphs in (False, True)]
    save(results, args.out)
    print(markdown(results))
    print(f"written to {args.out}/results.json and results.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
