#!/bin/bash
# Issue 14 results (docs/results.md "Metanetworks"): digits-cnn accuracy prediction, every model, 3 seeds.
# Usage: docs/experiments/metanets_digits/run.sh ZOO RUNS     (ZOO is built if missing; ~2.5 CPU-hours in all)
set -euo pipefail
Z=${1:-runs/digits-cnn-600}; R=${2:-runs/metanets}
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
here=$(cd "$(dirname "$0")" && pwd)
weightzoo datasets build digits-cnn --zoo "$Z" --size 600 --seed 0 --workers 1
for m in statnn hparams statnn-mlp probe mlp np hnp nfn-np nfn-hnp; do
  weightzoo metanet train --zoo "$Z" --dataset digits-cnn --target test_accuracy --model $m --seeds 0 1 2 \
    --out "$R/$m" --max-minutes 6 --no-progress
done
weightzoo metanet train --zoo "$Z" --dataset digits-cnn --target test_accuracy --model gmn --seeds 0 1 2 --out "$R/gmn" --max-minutes 8 --no-progress
weightzoo metanet train --zoo "$Z" --dataset digits-cnn --target test_accuracy --model gmn --seeds 0 1 2 --out "$R/gmn-no-positional" --max-minutes 8 --no-progress --option positional=false
weightzoo metanet train --zoo "$Z" --dataset digits-cnn --target test_accuracy --model gmn --seeds 0 1 2 --out "$R/gmn-no-edge-update" --max-minutes 8 --no-progress --option edge_update=false
weightzoo metanet report "$R"/*
python "$here/ceiling.py" "$Z"
