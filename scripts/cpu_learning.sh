#!/usr/bin/env bash
# The CPU learning experiments: `slac train --preset cpu`, seed 0 (or SEEDS), on
# ball_in_cup-catch and cartpole-swingup at the same time, one torch thread each (one core each
# on a 2-core machine).
# The preset's 50k environment steps (12.5k agent steps at action repeat 4: the published
# 50k-step points) after its 10k model pretraining updates take under 2 hours here with both
# cores on one task (README). Then each run's eval.csv, train.csv and config.json,
# its model-prediction grid (`slac viz`) and the curves of both (`slac plot`) go to
# docs/results/cpu/ with the date, commit, machine and wall time that produced them.
#   TASKS="ball_in_cup-catch" scripts/cpu_learning.sh          # one task only
#   THREADS=2 TASKS="ball_in_cup-catch" scripts/cpu_learning.sh # ... with both cores
#   ENV_STEPS=100000 ...                                          # longer than the preset's 50k
#   SEEDS="1 2" ...                     # other seeds (side by side; seed 0 is the default)
#   EXTRA="--pretrain-updates 3 ..." ...                        # more `slac train` flags
# Seed 0's results go to OUT/TASK, another seed's to OUT/TASK-sSEED; the curves cover every
# seed of the tasks in RUNS, so calling the script once per seed with the same RUNS and OUT
# builds up the spread of seeds one run at a time.
# Rerunning the same command resumes interrupted runs from their last checkpoint.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-runs/cpu}
OUT=${OUT:-docs/results/cpu}
TASKS=${TASKS:-"ball_in_cup-catch cartpole-swingup"}
THREADS=${THREADS:-1}
SEEDS=${SEEDS:-0}
ENV_STEPS=${ENV_STEPS:-}  # empty: the preset's
EXTRA=${EXTRA:-}
steps_flag=${ENV_STEPS:+--env-steps $ENV_STEPS}
make setup >/dev/null
mkdir -p "$RUNS" "$OUT"
commit="$(git rev-parse HEAD)$(git diff --quiet HEAD -- slac scripts || echo ' (+ uncommitted changes)')"

train() {  # task seed: one run, its log in RUNS/TASK-sSEED.log, its wall time in .time
  local task=$1 seed=$2 run="$RUNS/$1-s$2" t0
  t0=$(date +%s)
  .venv/bin/slac train --preset cpu --task "$task" --seed "$seed" --run-dir "$run" \
    --threads "$THREADS" $steps_flag $EXTRA > "$run.log" 2>&1
  echo $(( $(date +%s) - t0 )) > "$run.time"
}

start=$(date -u +%Y-%m-%dT%H:%M:%SZ)
pids=()
for task in $TASKS; do
  for seed in $SEEDS; do
    echo "training $task seed $seed in the background; progress: tail -f $RUNS/$task-s$seed.log"
    train "$task" "$seed" & pids+=($!)
  done
done
status=0
for pid in "${pids[@]}"; do wait "$pid" || status=1; done
[ "$status" = 0 ] || { echo "a run failed: see $RUNS/*.log" >&2; exit 1; }

for task in $TASKS; do for seed in $SEEDS; do
  run="$RUNS/$task-s$seed"
  dest="$OUT/$task$([ "$seed" = 0 ] || echo "-s$seed")"
  mkdir -p "$dest"
  cp "$run/eval.csv" "$run/train.csv" "$run/config.json" "$dest/"
  .venv/bin/slac viz --run-dir "$run" --out "$dest/viz"
  {
    echo "command: .venv/bin/slac train --preset cpu --task $task --seed $seed --run-dir $run" \
      "--threads $THREADS $steps_flag $EXTRA"
    echo "script: scripts/cpu_learning.sh (TASKS=\"$TASKS\" SEEDS=\"$SEEDS\" THREADS=$THREADS" \
      "ENV_STEPS=$ENV_STEPS), runs side by side"
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
