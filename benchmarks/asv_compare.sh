#!/usr/bin/env bash
# Benchmark BASE and HEAD with asv and fail on a performance regression.
#
#   benchmarks/asv_compare.sh BASE HEAD [REGEX]
#
# BASE, HEAD: commits (sha, branch, tag). REGEX: asv -b filter; default is a
# fast subset: the kernel benchmarks, one training epoch of workload S, and the
# same-process ratio benchmarks of workloads S, T and seed (bench_ratios.py:
# fastann epoch / NumPy reference epoch or sgemm, steady on a noisy machine).
# CI picks BASE with benchmarks/gate_base.sh (the last commit whose CI passed).
#
# Each commit is checked out into a temporary `git worktree` and benchmarked
# with `asv run --python=same --set-commit-hash SHA` and
# ASV_PYTHONPATH=<worktree> (asv drops PYTHONPATH but puts ASV_PYTHONPATH at the
# front of the benchmark processes' sys.path, ahead of site-packages and of
# setuptools' editable finder), so that commit's `fastann/` and `kernels/` (pure Python + Numba,
# the latter linked as fastann/kernels where the commit installs it there;
# nothing to build) are the ones imported -- even when the current checkout is
# `pip install -e`'d -- while the dependencies come from the current
# environment. Nothing is installed or uninstalled. The benchmark definitions
# are each commit's own `benchmarks/`; the asv settings are this checkout's
# asv.conf.json, with all output redirected to a temporary directory.
# (`asv continuous` cannot be used: it refuses --python=same.)
#
# Exit status: 0 no regression (or nothing to compare: BASE missing or
# without benchmarks), 1 a benchmark got slower by more than FACTOR or
# started failing, 2 usage or setup error.
#
# Environment:
#   PYTHON        interpreter with asv + fastann's dependencies (default: python)
#   ASV_FACTOR    regression threshold passed to `asv compare --factor` (1.5)
#   ASV_QUICK=1   pass --quick (one sample per benchmark: much faster, but on a
#                 noisy machine a single call can easily be 1.5x off; the
#                 default runs each benchmark's own, short, sampling plan and
#                 lets asv compare use the statistics)
#   ASV_NO_STATS=1  compare medians only (`asv compare --no-stats`); by default
#                 a change must also be statistically significant
#   FASTANN_BENCH_THREADS=k  run the benchmarks with k BLAS threads (default:
#                 all cores); 1 is much steadier on small shared machines
#   ASV_RUN_ARGS  extra arguments for `asv run`
#   KEEP_WORKDIR=1  keep the temporary directory (results, logs)
set -uo pipefail

usage() { sed -n '2,5p' "$0" >&2; exit 2; }
[ $# -ge 2 ] || usage

BASE_REF=$1
HEAD_REF=$2
REGEX=${3:-${ASV_BENCH_REGEX:-'^bench_kernels\.|time_epoch_S$|track_ratio_epoch_(S|T|seed)_to_'}}
PYTHON=${PYTHON:-python}
FACTOR=${ASV_FACTOR:-1.5}
ASV=("$PYTHON" -m asv)

ROOT=$(git rev-parse --show-toplevel) || exit 2
cd "$ROOT" || exit 2
[ -f asv.conf.json ] || { echo "asv_compare: no asv.conf.json in $ROOT" >&2; exit 2; }
"$PYTHON" -c "import asv" 2>/dev/null || { echo "asv_compare: asv is not installed for $PYTHON" >&2; exit 2; }

HEAD_SHA=$(git rev-parse --verify --quiet "${HEAD_REF}^{commit}") \
    || { echo "asv_compare: HEAD '$HEAD_REF' is not a commit" >&2; exit 2; }
BASE_SHA=$(git rev-parse --verify --quiet "${BASE_REF}^{commit}") || BASE_SHA=
if [ -z "$BASE_SHA" ]; then
    echo "asv_compare: note: BASE '$BASE_REF' is not a commit here (first push?); nothing to compare."
    exit 0
fi
if ! git ls-tree --name-only "$BASE_SHA" benchmarks/ | grep -q '/bench_.*\.py$'; then
    echo "asv_compare: note: BASE ${BASE_SHA:0:8} has no asv benchmarks (benchmarks/bench_*.py); nothing to compare."
    exit 0
fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/asv-compare.XXXXXX")
cleanup() {
    for wt in "$WORK"/wt-*; do
        [ -d "$wt" ] && git -C "$ROOT" worktree remove --force "$wt" >/dev/null 2>&1
    done
    git -C "$ROOT" worktree prune >/dev/null 2>&1
    if [ "${KEEP_WORKDIR:-0}" = 1 ]; then echo "asv_compare: kept $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

# This checkout's settings, with every path pointing into $WORK (and the
# benchmark directory set per commit below).
make_conf() {  # make_conf BENCHMARK_DIR OUT
    "$PYTHON" - "$ROOT" "$1" "$WORK" "$2" <<'EOF'
import json, os, subprocess, sys
from asv.util import load_json
root, bench_dir, work, out = sys.argv[1:]
conf = load_json(os.path.join(root, "asv.conf.json"), js_comments=True)
# asv run insists that every configured branch exists; a clone of a feature
# branch may have no local "main".
branches = [b for b in conf.get("branches", []) if subprocess.run(
    ["git", "-C", root, "rev-parse", "--verify", "--quiet", b + "^{commit}"],
    capture_output=True).returncode == 0]
conf.update(branches=branches or ["HEAD"])
conf.update(repo=root, benchmark_dir=bench_dir,
            results_dir=os.path.join(work, "results"), html_dir=os.path.join(work, "html"),
            env_dir=os.path.join(work, "env"))
with open(out, "w") as f:
    json.dump(conf, f, indent=1)
EOF
}

make_conf "$ROOT/benchmarks" "$WORK/asv-head.json" || exit 2
"${ASV[@]}" machine --yes --config "$WORK/asv-head.json" >/dev/null || exit 2

RUN_ARGS=(--python=same --show-stderr -b "$REGEX")
[ "${ASV_QUICK:-0}" = 1 ] && RUN_ARGS+=(--quick)
# shellcheck disable=SC2206
[ -n "${ASV_RUN_ARGS:-}" ] && RUN_ARGS+=(${ASV_RUN_ARGS})

head_rc=0
for which in base head; do
    if [ "$which" = base ]; then sha=$BASE_SHA; else sha=$HEAD_SHA; fi
    wt="$WORK/wt-$which"
    git worktree add --detach --quiet "$wt" "$sha" || exit 2
    # Since the kernels/ folder is installed as fastann.kernels (setuptools
    # package-dir), a plain source tree on sys.path finds it only through a
    # link fastann/kernels -> ../kernels; older commits import top-level kernels.
    # The modules whose origin is checked below: the kernels under the name
    # this commit imports them by. (An old-layout commit never imports
    # fastann.kernels, which the current environment's editable install may
    # still provide from the current checkout.)
    if grep -q '"fastann.kernels" = "kernels"' "$wt/pyproject.toml" 2>/dev/null; then
        modules="fastann fastann.kernels"
        if [ -d "$wt/kernels" ] && [ ! -e "$wt/fastann/kernels" ]; then
            ln -s ../kernels "$wt/fastann/kernels"
        fi
    else
        modules="fastann kernels"
    fi
    make_conf "$wt/benchmarks" "$WORK/asv-$which.json" || exit 2
    # Sanity check: code imported with the worktree first on sys.path is the worktree's.
    # shellcheck disable=SC2086
    (cd "$WORK" && PYTHONPATH="$wt${PYTHONPATH:+:$PYTHONPATH}" "$PYTHON" - "$wt" $modules <<'EOF'
import os, sys
wt = os.path.realpath(sys.argv[1])
import importlib
for name in sys.argv[2:]:
    try:
        mod = importlib.import_module(name)
    except ImportError as exc:
        print(f"asv_compare: note: {name} not importable at this commit ({exc})"); continue
    where = os.path.realpath(mod.__file__)
    if not where.startswith(wt + os.sep):
        sys.exit(f"asv_compare: {name} imports from {where}, not from {wt}")
EOF
    ) || exit 2
    echo "== asv run: $which ${sha:0:8} ($(git log -1 --format=%s "$sha" | cut -c1-60))"
    start=$SECONDS
    (cd "$wt" && ASV_PYTHONPATH="$wt" "${ASV[@]}" run --config "$WORK/asv-$which.json" "${RUN_ARGS[@]}" \
        --set-commit-hash "$sha")
    rc=$?
    echo "== $which done in $((SECONDS - start)) s (asv run exit $rc)"
    [ "$which" = head ] && head_rc=$rc
done

echo "== asv compare --factor $FACTOR ${BASE_SHA:0:8} ${HEAD_SHA:0:8}"
COMPARE_ARGS=(--factor "$FACTOR" --split)
[ "${ASV_NO_STATS:-0}" = 1 ] && COMPARE_ARGS+=(--no-stats)
"${ASV[@]}" compare --config "$WORK/asv-head.json" "${COMPARE_ARGS[@]}" \
    "$BASE_SHA" "$HEAD_SHA" | tee "$WORK/compare.txt"
[ "${PIPESTATUS[0]}" = 0 ] || { echo "asv_compare: asv compare failed" >&2; exit 2; }

# asv compare always exits 0; its --split output has a "got worse" section
# for slower benchmarks ('+') and for benchmarks that started failing ('!').
if grep -q "Benchmarks that have got worse" "$WORK/compare.txt"; then
    echo "asv_compare: PERFORMANCE DECREASED (factor $FACTOR) -- see the table above."
    exit 1
fi
if [ "$head_rc" != 0 ]; then
    echo "asv_compare: asv run failed on HEAD (exit $head_rc)."
    exit 1
fi
echo "asv_compare: no regression beyond factor $FACTOR."
exit 0
