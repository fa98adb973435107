#!/usr/bin/env bash
# Does the test suite pass every time, idle and under CPU contention?  (issue #12)
#
#   scripts/check_deterministic.sh [IDLE_RUNS] [LOADED_RUNS]     # defaults: 10 and 5
#
# Clones the committed HEAD into a temporary folder (a fresh clone, as CI sees it), runs `make test`
# there IDLE_RUNS times in a row, then LOADED_RUNS times while two busy-loop processes compete for
# the cores (started and stopped by this script). Stops at the first failure (exit 1), keeping that
# run's log; prints each run's verdict and time.
set -euo pipefail
idle_runs=${1:-10}
loaded_runs=${2:-5}
repo=$(git -C "$(dirname "$0")/.." rev-parse --show-toplevel)
work=$(mktemp -d /tmp/foundry-determinism.XXXXXX)
hogs=()
cleanup() {
  for pid in "${hogs[@]}"; do kill "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

git clone -q "$repo" "$work/clone"
cd "$work/clone"
echo "fresh clone of $(git rev-parse --short HEAD) in $work/clone"
start=$(date +%s)
make .venv/.foundry-installed > "$work/install.log" 2>&1 || { echo "install failed: $work/install.log"; exit 1; }
echo "set-up (venv + install): $(( $(date +%s) - start )) s"

run() {  # run LABEL N
  local log="$work/$1-$2.log" t0 t1
  t0=$(date +%s)
  if make test > "$log" 2>&1; then
    t1=$(date +%s)
    echo "$1 run $2: pass in $((t1 - t0)) s  ($(grep -Eo '[0-9]+ passed[^=]*' "$log" | tail -1))"
    rm -f "$log"
  else
    t1=$(date +%s)
    echo "$1 run $2: FAIL after $((t1 - t0)) s; log kept at $log"
    grep -E "^(FAILED|ERROR)" "$log" || tail -20 "$log"
    exit 1
  fi
}

for i in $(seq 1 "$idle_runs"); do run idle "$i"; done
for _ in 1 2; do python3 -c "while True: pass" & hogs+=($!); done
echo "two busy loops started (pids ${hogs[*]})"
for i in $(seq 1 "$loaded_runs"); do run loaded "$i"; done
cleanup
echo "OK: $idle_runs/$idle_runs idle and $loaded_runs/$loaded_runs loaded runs passed"
rm -rf "$work"
