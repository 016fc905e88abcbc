#!/usr/bin/env bash
# The CPU learning experiments: `slac train --preset cpu`, seed 0, on ball_in_cup-catch and
# cartpole-swingup, one after the other (about 2 hours each on 2 cores). Each run's eval.csv,
# train.csv and config.json are copied to docs/results/cpu/TASK/ with the date, commit, machine
# and wall time that produced them.
#   TASKS="ball_in_cup-catch" scripts/cpu_learning.sh     # one task only
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/cpu}
OUT=${OUT:-docs/results/cpu}
TASKS=${TASKS:-"ball_in_cup-catch cartpole-swingup"}
make setup >/dev/null
for task in $TASKS; do
  run="$RUNS/$task-s0"
  start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  t0=$(date +%s)
  .venv/bin/slac train --preset cpu --task "$task" --seed 0 --run-dir "$run"
  t1=$(date +%s)
  mkdir -p "$OUT/$task"
  cp "$run/eval.csv" "$run/train.csv" "$run/config.json" "$OUT/$task/"
  {
    echo "command: .venv/bin/slac train --preset cpu --task $task --seed 0 --run-dir $run"
    echo "commit: $(git rev-parse HEAD)$(git diff --quiet HEAD -- slac || echo ' (+ uncommitted changes)')"
    echo "started: $start"
    echo "wall time of this invocation: $((t1 - t0)) s"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(free -g | awk '/Mem:/{print $2}') GiB"
    echo "torch threads: all cores; MUJOCO_GL=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["mujoco_gl"])' "$run/config.json")"
  } > "$OUT/$task/RUN.txt"
done
