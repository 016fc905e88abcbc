#!/usr/bin/env bash
# The CPU learning experiments: `slac train --preset cpu`, seed 0 (or SEEDS), on
# ball_in_cup-catch and then cartpole-swingup, each run with both cores (2 torch threads) for
# 70k environment steps (~90 min a run on the 2-core AVX2 machine of docs/cpu-learning.md, pretraining
# included). With no settings it reruns docs/cpu-learning.md's runs of the current preset
# (docs/results/cpu-2026-11-29-*; a rerun of seed 0 on cup repeated every logged value).
# Then each run's eval.csv, train.csv and config.json, its model-prediction grid (`slac viz`)
# and the curves of all (`slac plot`) go to OUT with the date, commit, machine and wall time
# that produced them.
#   TASKS="ball_in_cup-catch" scripts/cpu_learning.sh          # one task only
#   ENV_STEPS=50000 ...                                           # shorter (the preset's 50k)
#   SEEDS="1 2" ...                     # other seeds (seed 0 is the default)
#   SIDE_BY_SIDE=1 THREADS=1 ...        # all runs at once, one thread each (not one after another)
#   EXTRA="--pretrain-updates 3 ..." ...                        # more `slac train` flags
# Seed 0's results go to OUT/TASK, another seed's to OUT/TASK-sSEED; the curves cover every
# seed of the tasks in RUNS, so calling the script once per seed with the same RUNS and OUT
# builds up the spread of seeds one run at a time.
# Rerunning the same command resumes interrupted runs from their last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/cpu}
OUT=${OUT:-docs/results/cpu-$(date -u +%F)}
TASKS=${TASKS:-"ball_in_cup-catch cartpole-swingup"}
THREADS=${THREADS:-2}
SEEDS=${SEEDS:-0}
ENV_STEPS=${ENV_STEPS-70000}  # set but empty: the preset's 50k
SIDE_BY_SIDE=${SIDE_BY_SIDE:-0}
EXTRA=${EXTRA:-}
steps_flag=${ENV_STEPS:+--env-steps $ENV_STEPS}
make setup >/dev/null
mkdir -p "$RUNS" "$OUT"
commit="$(git rev-parse HEAD)$(git diff --quiet HEAD -- slac scripts || echo ' (+ uncommitted changes)')"

train() {  # task seed: one run, its log in RUNS/TASK-sSEED.log, its wall time in .time
  local task=$1 seed=$2 run="$RUNS/$1-s$2" t0
  t0=$(date +%s)
  .venv/bin/slac train --preset cpu --task "$task" --seed "$seed" --run-dir "$run" \
    --threads "$THREADS" $steps_flag $EXTRA > "$run.log" 2>&1 || return 1
  echo $(( $(date +%s) - t0 )) > "$run.time"
}

start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
pids=()
status=0
for task in $TASKS; do
  for seed in $SEEDS; do
    echo "training $task seed $seed; progress: tail -f $RUNS/$task-s$seed.log"
    if [ "$SIDE_BY_SIDE" = 1 ]; then
      train "$task" "$seed" & pids+=($!)
    else
      train "$task" "$seed" || status=1
    fi
  done
done
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
[ "$status" = 0 ] || { echo "a run failed: see $RUNS/*.log" >&2; exit 1; }

for task in $TASKS; do for seed in $SEEDS; do
  run="$RUNS/$task-s$seed"
  dest="$OUT/$task$([ "$seed" = 0 ] || echo "-s$seed")"
  mkdir -p "$dest"
  cp "$run/eval.csv" "$run/train.csv" "$run/config.json" "$dest/"
  .venv/bin/slac viz --run-dir "$run" --out "$dest/viz"
  rm -f "$dest/viz/predictions.mp4"  # results keep data and a picture, not videos
  {
    echo "command: .venv/bin/slac train --preset cpu --task $task --seed $seed --run-dir $run" \
      "--threads $THREADS $steps_flag $EXTRA"
    echo "script: scripts/cpu_learning.sh (TASKS=\"$TASKS\" SEEDS=\"$SEEDS\" THREADS=$THREADS" \
      "ENV_STEPS=$ENV_STEPS SIDE_BY_SIDE=$SIDE_BY_SIDE), runs" \
      "$([ "$SIDE_BY_SIDE" = 1 ] && echo "side by side" || echo "one after another")"
    echo "commit: $commit"
    echo "started: $start"
    echo "wall time of this invocation: $(cat "$run.time") s"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)," \
      "$(free -g | awk '/Mem:/{print $2}') GiB"
    echo "MUJOCO_GL=$(python3 -c 'import json,sys;print(json.load(open(sys.argv[1]))["mujoco_gl"])' \
      "$run/config.json")"
  } > "$dest/RUN.txt"
done; done
# every finished seed of these tasks in RUNS, this invocation's and earlier ones'
runs=()
for t in $TASKS; do
  for d in "$RUNS/$t"-s*/; do
    if [ -f "$d/eval.csv" ]; then runs+=("${d%/}"); fi
  done
done
.venv/bin/slac plot "${runs[@]}" --out "$OUT/curves.png" | tee "$OUT/curves.txt"
