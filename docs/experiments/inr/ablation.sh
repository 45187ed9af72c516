#!/usr/bin/env bash
# Issue 15 ablation: one component at a time on the probing graph metanetwork (the only INR classifier
# above chance at this budget), 3 seeds each, 3 fits per image unless the row is about fits.
#   bash docs/experiments/inr/ablation.sh ZOO RUNS [ROW...]
# Every run: sign-aware GMN, hidden 32, 2 layers, 16 learned probe points, lr 3e-3, 8 epochs,
# fraction 0.25 of the training images (validation and test whole), ≤ 10 minutes per seed.
set -euo pipefail
ZOO=$1; RUNS=$2; shift 2
BASE="--zoo $ZOO --dataset digits-inr --target label --model gmn --seeds 0 1 2 --epochs 8 --lr 3e-3 --max-minutes 10 --no-progress"
OPT="hidden=32 layers=2 probes=16 fraction=0.25"
declare -A ROWS=(
  [base]="$OPT fits=3 sign_invariant=true"
  [no-sign]="$OPT fits=3 sign_invariant=false"
  [permute]="$OPT fits=3 sign_invariant=true augment=permute"
  [signflip]="$OPT fits=3 sign_invariant=true augment=signflip"
  [shift]="$OPT fits=3 sign_invariant=true augment=shift"
  [noise]="$OPT fits=3 sign_invariant=true augment=noise:0.1"
  [dropout]="$OPT fits=3 sign_invariant=true augment=dropout:0.1"
  [mixup-plain]="$OPT fits=3 sign_invariant=true mixup=plain"
  [mixup-aligned]="$OPT fits=3 sign_invariant=true mixup=aligned"
  [all-plain]="$OPT fits=3 sign_invariant=true augment=permute,signflip,shift,noise:0.1 mixup=plain"
  [all-aligned]="$OPT fits=3 sign_invariant=true augment=permute,signflip,shift,noise:0.1 mixup=aligned"
  [fits1]="$OPT fits=1 sign_invariant=true"
  [fits10]="$OPT fits=10 sign_invariant=true"
)
ORDER=(base no-sign permute signflip shift noise dropout mixup-plain mixup-aligned all-plain all-aligned fits1 fits10)
[ $# -gt 0 ] && ORDER=("$@")
for row in "${ORDER[@]}"; do
  start=$(date +%s)
  # shellcheck disable=SC2086
  weightzoo metanet train $BASE --out "$RUNS/abl-$row" --option ${ROWS[$row]}
  echo "$row: $(( $(date +%s) - start )) s wall"
done
