"""Side-by-side epoch timings of fastann and its peers, as a Markdown table.

    python benchmarks/compare.py [--workloads S,T,W,seed] [--repeat 3]
                                 [--peers fastann,numpy,torch,sklearn]
                                 [--subset N] [--json PATH]

Every (workload, peer) pair runs in a fresh subprocess
(``python -m benchmarks.peers ...``), so one peer's thread pools and BLAS
settings cannot leak into another's. Each subprocess trains one warm-up epoch
(JIT compilation, allocation) and then ``--repeat`` timed epochs; the table
shows their median. GFLOP/s counts ``6 * n * sum(d_in * d_out)`` per epoch and
is compared with float32 ``np.matmul`` on 2048 x 2048 measured in this run.

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
from fastann.threads import cpu_model  # noqa: E402

PEERS = ("fastann", "numpy", "torch", "sklearn")


def versions():
    from importlib import metadata
    out = {"python": platform.python_version()}
    for dist in ("fastann", "numpy", "numba", "scipy", "torch", "scikit-learn"):
        try:
            out[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            out[dist] = None
    return out


def run_subprocess(args, timeout):
    """Run ``python -m benchmarks.peers ARGS``; return its JSON (or an error dict)."""
    cmd = [sys.executable, "-m", "benchmarks.peers", *args,
           "--launch-time", repr(time.time())]
    try:
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s"}
    for line in reversed(proc.stdout.strip().splitlines()):
        if line.startswith("{"):
            return json.loads(line)
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)}


def fmt(x, spec):
    return "—" if x is None else format(x, spec)


def markdown(results, sgemm, header):
    lines = [header, "",
             "| workload | peer | epoch seconds (median) | ratio vs fastann | GFLOP/s | % of sgemm |",
             "|---|---|---:|---:|---:|---:|"]
    for r in results:
        ref = next((q for q in results if q["workload"] == r["workload"]
                    and q["peer"] == "fastann" and "median" in q), None)
        if "median" not in r:
            why = r.get("skipped") or r.get("error") or "no result"
            lines.append(f"| {r['workload']} | {r['peer']} | skipped: {why} | | | |")
            continue
        ratio = r["median"] / ref["median"] if ref else None
        pct = 100.0 * r["gflops"] / sgemm if sgemm else None
        lines.append(f"| {r['workload']} | {r['peer']} | {r['median']:.3f} | "
                     f"{fmt(ratio, '.2f')}{'x' if ratio else ''} | {r['gflops']:.1f} | "
                     f"{fmt(pct, '.0f')}{'%' if pct else ''} |")
    cold = [r for r in results if "cold_start" in r]
    if cold:
        lines.append("")
        for r in cold:
            c = r["cold_start"]
            lines.append(f"fastann cold start ({r['workload']}): {c['total']:.2f} s from process "
                         f"launch to the first trained mini-batch (data loading excluded; "
                         f"first batch incl. JIT/cache load {c['first_batch']:.2f} s)")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workloads", default="S,T,W,seed")
    parser.add_argument("--peers", default=",".join(PEERS))
    parser.add_argument("--repeat", type=int, default=3, help="steady-state epochs per peer")
    parser.add_argument("--subset", type=int, default=None,
                        help="use the first N training images (default: all 60,000)")
    parser.add_argument("--threads", type=int, default=None,
                        help="threads per peer (default: all cores)")
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

    sgemm = run_subprocess(["--peer", "sgemm"], args.timeout).get("gflops")
    print(f"# sgemm: {fmt(sgemm, '.1f')} GFLOP/s", file=sys.stderr, flush=True)

    common = ["--repeat", str(args.repeat)]
    if args.subset:
        common += ["--subset", str(args.subset)]
    if args.threads:
        common += ["--threads", str(args.threads)]
    results = []
    for w in workloads:
        for p in peers:
            r = run_subprocess(["--peer", p, "--workload", w, *common], args.timeout)
            r.setdefault("peer", p)
            r.setdefault("workload", w)
            results.append(r)
            status = (f"{r['median']:.3f} s/epoch" if "median" in r
                      else r.get("skipped") or r.get("error"))
            print(f"# {w:>4} {p:<8} {status}", file=sys.stderr, flush=True)

    vers = versions()
    n = next((r["n_samples"] for r in results if "n_samples" in r), None)
    data = next((r["data"] for r in results if "data" in r), None)
    lib = ", ".join(f"{k} {v}" for k, v in vers.items() if v)
    header = (f"Machine: {cpu_model()}, {os.cpu_count()} logical cores; {lib}.\n"
              f"sgemm (float32 np.matmul 2048x2048, median): {fmt(sgemm, '.1f')} GFLOP/s. "
              f"Data: {data}, {n} training images; one warm-up epoch, then median of "
              f"{args.repeat} epochs. Ratio = peer seconds / fastann seconds "
              f"(> 1: fastann is faster).")
    print(markdown(results, sgemm, header))
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": {"cpu": cpu_model(), "cores": os.cpu_count(),
                                   "versions": vers},
                       "sgemm_gflops": sgemm, "repeat": args.repeat, "subset": args.subset,
                       "results": results}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
