#!/usr/bin/env bash
# PDEformer-2 (2-D) pretraining on one GPU: generate the 2-D families, train for N minutes, and leave
# a checkpoint and the logs in one folder.
#
#   scripts/gpu/pde2_pretrain.sh OUT_DIR MINUTES [ROWS_PER_FAMILY]
#
#   OUT_DIR/train/*.h5, test/*.h5  one file per family (seed 0; held-out seed 1, 64 rows each)
#   OUT_DIR/run/                   last.pt, best.pt, log.jsonl, config.json of `foundry pde train`
#   OUT_DIR/checkpoint.pt          the best held-out checkpoint (copy of run/best.pt)
#   OUT_DIR/pde2_pretrain.log      everything printed, with timestamps of each phase
#
# Environment: PYTHON (default python), DEVICE (cuda), SIZE (2-XS; 2-S/2-M/2-L are the paper's
# models), BATCH (64 per step), LR (3e-4 at batch 16, scaled by sqrt(global batch / 16)),
# FAMILIES (all twelve), TINY=1 for the CPU smoke test (one family, tiny grid, a few steps).
# The solvers run on the CPU (torch; a GPU solve is a follow-up): start generation early.
set -euo pipefail

OUT=${1:?usage: pde2_pretrain.sh OUT_DIR MINUTES [ROWS_PER_FAMILY]}
MINUTES=${2:?usage: pde2_pretrain.sh OUT_DIR MINUTES [ROWS_PER_FAMILY]}
ROWS=${3:-2000}
PYTHON=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
SIZE=${SIZE:-2-XS}
BATCH=${BATCH:-64}
LR=${LR:-3e-4}
TINY=${TINY:-0}
FAMILIES=${FAMILIES:-dcr-periodic wave-periodic dcr-square dcr-disk wave-square-mur wave-disk-mur \
    mvdcr-periodic ins-periodic swe-periodic steady-periodic steady-square steady-disk}
mkdir -p "$OUT/train" "$OUT/test"
LOG="$OUT/pde2_pretrain.log"
foundry() { "$PYTHON" -c 'from foundry.cli import app; app()' "$@"; }
say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }

if [ "$TINY" = 1 ]; then
    FAMILIES="wave-periodic"
    ROWS=${3:-6}
    NUM_TEST=4
    GRID=(--resolution 32 --num-t 3 --chunk-size 4)
    TRAIN=(--max-steps 4 --eval-every 4 --log-every 2 --batch-size 4 --num-query-points 64)
else
    NUM_TEST=64
    GRID=(--resolution 32 --num-t 21)
    TRAIN=(--max-steps 10000000 --max-minutes "$MINUTES" --eval-every 2000 --log-every 100 --eval-samples 768
           --batch-size "$BATCH" --num-query-points 4096 --precision bf16 --tf32 --data-on-device)
fi

for fam in $FAMILIES; do
    say "generating $ROWS rows of $fam (+ $NUM_TEST held out)"
    foundry pde generate2d --family "$fam" --num-samples "$ROWS" --seed 0 "${GRID[@]}" \
        --out "$OUT/train/$fam.h5" 2>&1 | tee -a "$LOG"
    foundry pde generate2d --family "$fam" --num-samples "$NUM_TEST" --seed 1 "${GRID[@]}" \
        --out "$OUT/test/$fam.h5" 2>&1 | tee -a "$LOG"
done

say "training $SIZE for $MINUTES min on $DEVICE"
foundry pde train --train-data "$OUT/train" --test-data "$OUT/test" --out-dir "$OUT/run" \
    --model-size "$SIZE" --device "$DEVICE" --lr "$LR" --lr-scaling sqrt --lr-reference-batch 16 \
    --warmup-steps 500 "${TRAIN[@]}" 2>&1 | tee -a "$LOG"
cp "$OUT/run/best.pt" "$OUT/checkpoint.pt"
[ "$TINY" = 1 ] || for f in "$OUT"/test/*.h5; do
    say "evaluating on $(basename "$f")"
    foundry pde eval --data "$f" --checkpoint "$OUT/checkpoint.pt" --device "$DEVICE" 2>&1 | tee -a "$LOG"
done
say "done: $OUT/checkpoint.pt, $OUT/run/log.jsonl, $LOG"
