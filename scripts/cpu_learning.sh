#!/usr/bin/env bash
# The CPU learning experiments: `slac train --preset cpu`, seed 0, on ball_in_cup-catch and
# cartpole-swingup at the same time, one torch thread each (one core each on a 2-core machine).
# The preset's 50k environment steps (12.5k agent steps at action repeat 4: the published
# 50k-step points) after its 10k model pretraining updates take under 2 hours here with both
# cores on one task (README). Then each run's eval.csv, train.csv and config.json,
# its model-prediction grid (`slac viz`) and the curves of both (`slac plot`) go to
# docs/results/cpu/ with the date, commit, machine and wall time that produced them.
#   TASKS="ball_in_cup-catch" scripts/cpu_learning.sh          # one task only
#   THREADS=2 TASKS="ball_in_cup-catch" scripts/cpu_learning.sh # ... with both cores
#   ENV_STEPS=100000 ...                                          # longer than the preset's 50k
# Rerunning the same command resumes interrupted runs from their last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/cpu}
OUT=${OUT:-docs/results/cpu}
TASKS=${TASKS:-"ball_in_cup-catch cartpole-swingup"}
THREADS=${THREADS:-1}
ENV_STEPS=${ENV_STEPS:-}  # empty: the preset's
steps_flag=${ENV_STEPS:+--env-steps $ENV_STEPS}
make setup >/dev/null
mkdir -p "$RUNS" "$OUT"
commit="$(git rev-parse HEAD)$(git diff --quiet HEAD -- slac scripts || echo ' (+ uncommitted changes)')"

train() {  # task: one run, its log in RUNS/TASK-s0.log, its wall time in RUNS/TASK-s0.time
  local task=$1 run="$RUNS/$1-s0" t0
  t0=$(date +%s)
  .venv/bin/slac train --preset cpu --task "$task" --seed 0 --run-dir "$run" \
    --threads "$THREADS" $steps_flag > "$run.log" 2>&1
  echo $(( $(date +%s) - t0 )) > "$run.time"
}

start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
pids=()
for task in $TASKS; do
  echo "training $task in the background; progress: tail -f $RUNS/$task-s0.log"
  train "$task" & pids+=($!)
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
[ "$status" = 0 ] || { echo "a run failed: see $RUNS/*.log" >&2; exit 1; }

for task in $TASKS; do
  run="$RUNS/$task-s0"
  mkdir -p "$OUT/$task"
  cp "$run/eval.csv" "$run/train.csv" "$run/config.json" "$OUT/$task/"
  .venv/bin/slac viz --run-dir "$run" --out "$OUT/$task/viz"
  {
    echo "command: .venv/bin/slac train --preset cpu --task $task --seed 0 --run-dir $run" \
      "--threads $THREADS $steps_flag"
    echo "script: scripts/cpu_learning.sh (TASKS=\"$TASKS\" THREADS=$THREADS ENV_STEPS=$ENV_STEPS)," \
      "tasks side by side"
    echo "commit: $commit"
    echo "started: $start"
    echo "wall time of this invocation: $(cat "$run.time") s"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
      "$(free -g | awk '/Mem:/{print $2}') GiB"
    echo "MUJOCO_GL=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["mujoco_gl"])' \
      "$run/config.json")"
  } > "$OUT/$task/RUN.txt"
done
# shellcheck disable=SC2046
.venv/bin/slac plot $(for t in $TASKS; do echo "$RUNS/$t-s0"; done) --out "$OUT/curves.png" \
  | tee "$OUT/curves.txt"
