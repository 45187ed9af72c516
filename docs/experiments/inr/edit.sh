#!/usr/bin/env bash
# Issue 15 editing: predict the SIREN of the dilated digit from the SIREN's weights (render MSE), 3 seeds.
#   bash docs/experiments/inr/edit.sh ZOO RUNS [EDIT] [MODEL...]
# One fit per training image (1,272 training INRs), all 288 validation and 237 test images; AdamW lr 1e-3,
# ≤ 30 epochs, early stopping on validation render MSE (patience 10); graph metanetwork hidden 32, 2 layers
# (≤ 15 minutes per seed), NP hidden 32, 3 layers, flat MLP hidden 256, 3 layers (≤ 10 minutes per seed).
set -euo pipefail
ZOO=$1; RUNS=$2; EDIT=${3:-dilate}; shift $(( $# < 3 ? $# : 3 ))
MODELS=("$@"); [ ${#MODELS[@]} -eq 0 ] && MODELS=(identity mlp np gmn)
for m in "${MODELS[@]}"; do
  cap=10; [ "$m" = gmn ] && cap=15
  start=$(date +%s)
  weightzoo metanet edit --zoo "$ZOO" --edit "$EDIT" --model "$m" --seeds 0 1 2 --epochs 30 \
      --max-minutes $cap --out "$RUNS/edit-$EDIT-$m" --no-progress
  echo "$m: $(( $(date +%s) - start )) s wall"
done
weightzoo metanet report "$RUNS"/edit-"$EDIT"-*
