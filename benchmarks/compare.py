"""Side-by-side epoch timings of fastann and its peers, as a Markdown table.

    python benchmarks/compare.py [--workloads S,T,W,seed] [--repeat 5]
                                 [--peers fastann,numpy,torch,sklearn,jax]
                                 [--openblas-env unset,inherit] [--subset N]
                                 [--threads K] [--json PATH]

Every (workload, peer) pair runs in a fresh subprocess
(``python -m benchmarks.peers ...``), so one peer's thread pools and BLAS
settings cannot leak into another's. Each subprocess trains one warm-up epoch
(JIT compilation, allocation) and then ``--repeat`` timed epochs; the table
shows their median. GFLOP/s counts ``6 * n * sum(d_in * d_out)`` per epoch and
is compared with the machine's FMA peak (``--peak``, 430 GFLOP/s) and with
float32 ``np.matmul`` on 2048 x 2048 measured in the same run, with the same
threads and OpenBLAS environment.

``--openblas-env`` runs every subprocess (sgemm included) with
``OPENBLAS_CORETYPE`` / ``OPENBLAS_L2_SIZE`` as follows: ``unset`` removes
both, ``haswell`` sets ``OPENBLAS_CORETYPE=Haswell``, ``inherit`` keeps this
shell's values. A comma-separated list runs the whole comparison once per
setting and prints one table each (``inherit`` is dropped when it is the same
as ``unset``); the default, ``unset,inherit``, gives the two tables the README
reports. Each table's header names the CPU, the variables' values and the
OpenBLAS kernel set (core type) the BLAS libraries actually chose.

Import-safe for asv (everything happens in ``main``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if __package__ in (None, ""):
    sys.path.insert(0, ROOT)

from benchmarks.common import WORKLOADS  # noqa: E402
from benchmarks.peers import DEFAULT_REPEAT, PEERS  # noqa: E402

# Single-precision FMA peak of the reference machine (2 cores x 2 AVX-512 FMA
# units x 16 lanes x 2 flops x ~3.4 GHz): the README's "% of peak" column.
PEAK_GFLOPS = 430.0
OPENBLAS_VARS = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")
OPENBLAS_SETTINGS = ("unset", "haswell", "inherit")


def cpu_model():
    """The CPU's model name (from /proc/cpuinfo on Linux)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def versions():
    from importlib import metadata
    out = {"python": platform.python_version()}
    for dist in ("fastann", "numpy", "numba", "scipy", "torch", "scikit-learn", "jax",
                 "jaxlib", "optax"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def openblas_env(setting, base=None):
    """The environment for the peer subprocesses under ``setting``."""
    env = dict(os.environ if base is None else base)
    if setting == "unset":
        for var in OPENBLAS_VARS:
            env.pop(var, None)
    elif setting == "haswell":
        env["OPENBLAS_CORETYPE"] = "Haswell"
    elif setting != "inherit":
        raise ValueError(f"unknown OpenBLAS setting {setting!r}")
    return env


def parse_openblas_settings(text, base=None):
    """``"unset,inherit"`` -> ``["unset", "inherit"]``, without duplicates.

    ``inherit`` is dropped when it yields the same variables as a setting
    already in the list (e.g. when this shell sets neither variable).
    """
    base = dict(os.environ if base is None else base)
    settings, seen = [], []
    for s in (x.strip().lower() for x in text.split(",") if x.strip()):
        if s not in OPENBLAS_SETTINGS:
            raise ValueError(f"unknown --openblas-env {s!r} (choose from "
                             f"{', '.join(OPENBLAS_SETTINGS)})")
        key = {v: openblas_env(s, base).get(v) for v in OPENBLAS_VARS}
        if key in seen:
            continue
        seen.append(key)
        settings.append(s)
    return settings


def describe_openblas(setting, env):
    values = ", ".join(f"{v}={env[v]}" if v in env else f"{v} unset" for v in OPENBLAS_VARS)
    return f"{values} (--openblas-env {setting})"


def run_subprocess(args, timeout, env=None):
    """Run ``python -m benchmarks.peers ARGS``; return its JSON (or an error dict)."""
    cmd = [sys.executable, "-m", "benchmarks.peers", *args,
           "--launch-time", repr(time.time())]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                              env=env)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}


def fmt(x, spec, suffix=""):
    return "—" if x is None else format(x, spec) + suffix


def _find(results, workload, peer):
    return next((q for q in results if q["workload"] == workload and q["peer"] == peer
                 and "median" in q), None)


def markdown(results, sgemm, header, peak=PEAK_GFLOPS):
    """The table: one row per (workload, peer); a "vs JAX" column when JAX ran."""
    with_jax = any(r["peer"] == "jax" and "median" in r for r in results)
    cols = ["workload", "peer", "epoch seconds (median)", "ratio vs fastann"]
    if with_jax:
        cols.append("vs JAX")
    cols += ["GFLOP/s", f"% of {peak:g} GFLOP/s peak", "% of sgemm"]
    lines = [header, "", "| " + " | ".join(cols) + " |",
             "|---|---|" + "---:|" * (len(cols) - 2)]
    for r in results:
        if "median" not in r:
            why = r.get("skipped") or r.get("error") or "no result"
            lines.append(f"| {r['workload']} | {r['peer']} | skipped: {why} |"
                         + " |" * (len(cols) - 3))
            continue
        ref = _find(results, r["workload"], "fastann")
        jax = _find(results, r["workload"], "jax")
        cells = [r["workload"], r["peer"], f"{r['median']:.3f}",
                 fmt(r["median"] / ref["median"] if ref else None, ".2f", "x")]
        if with_jax:
            cells.append(fmt(r["median"] / jax["median"] if jax else None, ".2f", "x"))
        cells += [f"{r['gflops']:.1f}",
                  fmt(100.0 * r["gflops"] / peak if peak else None, ".0f", "%"),
                  fmt(100.0 * r["gflops"] / sgemm if sgemm else None, ".0f", "%")]
        lines.append("| " + " | ".join(cells) + " |")
    cold = [r for r in results if "cold_start" in r]
    if cold:
        lines.append("")
        for r in cold:
            c = r["cold_start"]
            lines.append(f"fastann cold start ({r['workload']}): {c['total']:.2f} s from process "
                         f"launch to the first trained mini-batch (data loading excluded; "
                         f"first batch incl. JIT/cache load {c['first_batch']:.2f} s)")
    return "\n".join(lines)


def header_text(*, setting, env, sgemm_result, results, repeat, threads, peak, vers):
    sgemm = sgemm_result.get("gflops")
    n = next((r["n_samples"] for r in results if "n_samples" in r), None)
    data = next((r["data"] for r in results if "data" in r), None)
    lib = ", ".join(f"{k} {v}" for k, v in vers.items() if v)
    blas = sgemm_result.get("blas") or []
    kernels = sorted({b.get("architecture") or "?" for b in blas})
    jax = next((r for r in results if r["peer"] == "jax" and "median" in r), None)
    threads_text = (f"{threads} BLAS/torch thread(s) per peer" if threads
                    else "all cores for every peer")
    if jax:
        threads_text += f"; JAX: {jax.get('threads', 'XLA default')} (no documented setting)"
    with_jax = ("; vs JAX = peer seconds / JAX seconds (< 1: faster than JAX)"
                if jax else "")
    return (f"Machine: {cpu_model()}, {os.cpu_count()} logical cores; "
            f"{describe_openblas(setting, env)}; OpenBLAS kernels in use: "
            f"{', '.join(kernels) or 'unknown'}; {threads_text}.\n"
            f"{lib}.\n"
            f"sgemm (float32 np.matmul 2048x2048, median, same run and settings): "
            f"{fmt(sgemm, '.1f')} GFLOP/s; FMA peak {peak:g} GFLOP/s. "
            f"Data: {data}, {n} training images; one warm-up epoch (compile), then the "
            f"median of {repeat} epochs, each peer in its own process. "
            f"Ratio vs fastann = peer seconds / fastann seconds (> 1: fastann is faster)"
            f"{with_jax}.")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default="S,T,W,seed")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--repeat", type=int, default=DEFAULT_REPEAT,
                        help=f"steady-state epochs per peer (default {DEFAULT_REPEAT})")
    parser.add_argument("--subset", type=int, default=None,
                        help="use the first N training images (default: all 60,000)")
    parser.add_argument("--threads", type=int, default=None,
                        help="BLAS/torch threads per peer and for sgemm (default: all "
                             "cores; JAX has no documented setting and keeps XLA's default)")
    parser.add_argument("--openblas-env", default="unset,inherit",
                        help="OpenBLAS environment of every subprocess: unset | haswell | "
                             "inherit, or a comma-separated list (one table each); "
                             "default: unset,inherit")
    parser.add_argument("--peak", type=float, default=PEAK_GFLOPS,
                        help=f"FMA peak GFLOP/s for the %% of peak column ({PEAK_GFLOPS:g})")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds per subprocess")
    parser.add_argument("--json", metavar="PATH", help="also save all results as JSON")
    args = parser.parse_args(argv)

    workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    peers = [p.strip() for p in args.peers.split(",") if p.strip()]
    for w in workloads:
        if w not in WORKLOADS:
            parser.error(f"unknown workload {w!r} (choose from {', '.join(WORKLOADS)})")
    for p in peers:
        if p not in PEERS:
            parser.error(f"unknown peer {p!r} (choose from {', '.join(PEERS)})")
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    try:
        settings = parse_openblas_settings(args.openblas_env)
    except ValueError as exc:
        parser.error(str(exc))

    common = ["--repeat", str(args.repeat)]
    if args.subset:
        common += ["--subset", str(args.subset)]
    if args.threads:
        common += ["--threads", str(args.threads)]
    vers = versions()
    runs, tables = [], []
    for setting in settings:
        env = openblas_env(setting)
        print(f"# {describe_openblas(setting, env)}", file=sys.stderr, flush=True)
        sgemm_args = ["--peer", "sgemm"] + (["--threads", str(args.threads)]
                                            if args.threads else [])
        sgemm_result = run_subprocess(sgemm_args, args.timeout, env)
        sgemm = sgemm_result.get("gflops")
        print(f"# sgemm: {fmt(sgemm, '.1f')} GFLOP/s", file=sys.stderr, flush=True)
        results = []
        for w in workloads:
            for p in peers:
                r = run_subprocess(["--peer", p, "--workload", w, *common], args.timeout, env)
                r.setdefault("peer", p)
                r.setdefault("workload", w)
                results.append(r)
                status = (f"{r['median']:.3f} s/epoch" if "median" in r
                          else r.get("skipped") or r.get("error"))
                print(f"# {w:>4} {p:<8} {status}", file=sys.stderr, flush=True)
        header = header_text(setting=setting, env=env, sgemm_result=sgemm_result,
                             results=results, repeat=args.repeat, threads=args.threads,
                             peak=args.peak, vers=vers)
        tables.append(markdown(results, sgemm, header, args.peak))
        runs.append({"openblas_env": setting,
                     "env": {v: env.get(v) for v in OPENBLAS_VARS},
                     "blas": sgemm_result.get("blas"), "sgemm_gflops": sgemm,
                     "results": results})
    print("\n\n".join(tables))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                                   "versions": vers,
                                   "shell_env": {v: os.environ.get(v) for v in OPENBLAS_VARS}},
                       "peak_gflops": args.peak, "repeat": args.repeat,
                       "subset": args.subset, "threads": args.threads, "runs": runs},
                      f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
