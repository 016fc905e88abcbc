#!/usr/bin/env bash
# The paper's DeepMind Control grids as `slac sweep` commands, for a Ray cluster with GPUs
# (docs/sweeps.md: how to start one, and what the grids cost).
#   bash scripts/paper_sweeps.sh main|models|decoder-var|pretraining|updates [sweep flags]
# ADDRESS (default auto: the cluster this machine belongs to), OUT (default runs/paper),
# CPUS and GPUS per run (default 4 and 0.5) are read from the environment.
set -euo pipefail
SLAC=${SLAC:-.venv/bin/slac}  # may be a command with arguments
OUT=${OUT:-runs/paper}
COMMON=(--address "${ADDRESS:-auto}" --cpus-per-run "${CPUS:-4}" --gpus-per-run "${GPUS:-0.5}")
DMC=cheetah-run,walker-walk,ball_in_cup-catch,finger-spin,cartpole-swingup,reacher-easy
grid=${1:?give main, models, decoder-var, pretraining or updates}
shift
case "$grid" in
  # Figure 4: 6 tasks x 10 seeds, each task at its published best decoder variance (the default)
  main) exec $SLAC sweep --out "$OUT/main" --tasks "$DMC" --seeds 0-9 "${COMMON[@]}" "$@" ;;
  # Figures 5a and 8: the latent variable model
  models) exec $SLAC sweep --out "$OUT/models" --tasks "$DMC" --seeds 0-9 \
      --model slac,vae,factored-vae,filtering,partially-stochastic,deterministic,planet \
      "${COMMON[@]}" "$@" ;;
  # Figure 12: the decoder variance
  decoder-var) exec $SLAC sweep --out "$OUT/decoder-var" --tasks "$DMC" --seeds 0-9 \
      --decoder-var 0.004,0.01,0.04,0.1,0.4 "${COMMON[@]}" "$@" ;;
  # Figures 5c and 10: model pretraining before the agent acts (the paper's end points)
  pretraining) exec $SLAC sweep --out "$OUT/pretraining" --tasks "$DMC" \
      --seeds 0-9 --pretrain-updates 0,50000,100000 "${COMMON[@]}" "$@" ;;
  # Figures 5d and 11: gradient updates per agent step
  updates) exec $SLAC sweep --out "$OUT/updates" --tasks "$DMC" \
      --seeds 0-9 --updates-per-step 1,2,3 "${COMMON[@]}" "$@" ;;
  *) echo "unknown grid $grid: main, models, decoder-var, pretraining or updates" >&2; exit 2 ;;
esac
