#!/bin/bash
# Two `fastann train` runs started together against the same two run one after
# the other (issue: sharing the machine must cost <= 1.25x). Extra arguments go
# to both runs, e.g. `--cpu-kernel blas` or `--hidden 128 --epochs 5`.
#
#   bash benchmarks/share_machine.sh [fastann train options]
#
# Prints the two wall times (seconds, start-up and data loading included) and
# their ratio; < 1 means the concurrent pair finished sooner than the two in
# sequence.
set -euo pipefail
run() { python -m fastann.cli train --validation 0 --quiet "$@" > /dev/null; }
now() { python -c 'import time; print(time.time())'; }
start=$(now); run "$@"; run "$@"; middle=$(now)
run "$@" & first=$!
run "$@"; wait "$first"; end=$(now)
python - "$start" "$middle" "$end" "$*" <<'PY'
import sys
start, middle, end = map(float, sys.argv[1:4])
sequential, together = middle - start, end - middle
print(f"fastann train {sys.argv[4] or '(defaults)'}: one after the other {sequential:.2f} s, "
      f"together {together:.2f} s, ratio {together / sequential:.2f}")
PY
