#!/usr/bin/env bash
# The paper's DeepMind Control grids as `slac sweep` commands, for a Ray cluster with GPUs
# (docs/sweeps.md: how to start one, and what the grids cost).
#   bash scripts/paper_sweeps.sh GRID [sweep flags], GRID one of main models inputs
#   decoder-var pretraining updates crop sac-pixels sac-state
# ADDRESS (default auto: the cluster this machine belongs to), OUT (default runs/paper),
# CPUS and GPUS per run (default 4 and 0.5) are read from the environment.
set -euo pipefail
SLAC=${SLAC:-.venv/bin/slac}  # may be a command with arguments
OUT=${OUT:-runs/paper}
COMMON=(--address "${ADDRESS:-auto}" --cpus-per-run "${CPUS:-4}" --gpus-per-run "${GPUS:-0.5}")
DMC=cheetah-run,walker-walk,ball_in_cup-catch,finger-spin,cartpole-swingup,reacher-easy
GRIDS="main, models, inputs, decoder-var, pretraining, updates, crop, sac-pixels or sac-state"
grid=${1:?give $GRIDS}
shift
case "$grid" in
  # Figure 4: 6 tasks x 10 seeds, each task at its published best decoder variance (the default)
  main) exec $SLAC sweep --out "$OUT/main" --tasks "$DMC" --seeds 0-9 "${COMMON[@]}" "$@" ;;
  # Figures 5a and 8: the latent variable model
  models) exec $SLAC sweep --out "$OUT/models" --tasks "$DMC" --seeds 0-9 \
      --model slac,vae,factored-vae,filtering,partially-stochastic,deterministic,planet \
      "${COMMON[@]}" "$@" ;;
  # Figures 5b and 9: what the critics and the actor see (latent sample or history)
  inputs) exec $SLAC sweep --out "$OUT/inputs" --tasks "$DMC" --seeds 0-9 \
      --critic-input latent,history --actor-input history,latent "${COMMON[@]}" "$@" ;;
  # Figure 13: random crops (compare with the main grid, which has none)
  crop) exec $SLAC sweep --out "$OUT/crop" --tasks "$DMC" --seeds 0-9 --random-crop \
      "${COMMON[@]}" "$@" ;;
  # Figure 4's pixel baseline: SAC on 4 encoded frames, its encoder trained by the critic
  sac-pixels) exec $SLAC sweep --out "$OUT/sac-pixels" --tasks "$DMC" --seeds 0-9 \
      --agent sac-pixels --sequence-length 4 "${COMMON[@]}" "$@" ;;
  # Figure 4's upper bound: SAC on the simulator's state
  sac-state) exec $SLAC sweep --out "$OUT/sac-state" --tasks "$DMC" --seeds 0-9 \
      --agent sac-state --sequence-length 1 "${COMMON[@]}" "$@" ;;
  # Figure 12: the decoder variance
  decoder-var) exec $SLAC sweep --out "$OUT/decoder-var" --tasks "$DMC" --seeds 0-9 \
      --decoder-var 0.004,0.01,0.04,0.1,0.4 "${COMMON[@]}" "$@" ;;
  # Figures 5c and 10: model pretraining before the agent acts (the paper's end points)
  pretraining) exec $SLAC sweep --out "$OUT/pretraining" --tasks "$DMC" \
      --seeds 0-9 --pretrain-updates 0,50000,100000 "${COMMON[@]}" "$@" ;;
  # Figures 5d and 11: gradient updates per agent step
  updates) exec $SLAC sweep --out "$OUT/updates" --tasks "$DMC" \
      --seeds 0-9 --updates-per-step 1,2,3 "${COMMON[@]}" "$@" ;;
  *) echo "unknown grid $grid: $GRIDS" >&2; exit 2 ;;
esac
