#!/usr/bin/env bash
# PDEformer pretraining on one GPU: generate data on the device, train for N minutes, and leave a
# checkpoint and the logs in one folder.
#
#   scripts/gpu/pde_pretrain.sh OUT_DIR MINUTES [NUM_SAMPLES]
#
#   OUT_DIR/train.h5, test.h5     data (sinus0 + 15% pure transport, seed 10; held-out seed 1, 256)
#   OUT_DIR/run/                  last.pt, best.pt, log.jsonl, config.json of `foundry pde train`
#   OUT_DIR/checkpoint.pt         the best held-out checkpoint (copy of run/best.pt)
#   OUT_DIR/pde_pretrain.log      everything printed, with timestamps of each phase
#
# Environment: PYTHON (default python), DEVICE (cuda), BATCH (64 per step), LR (3e-4 at batch 16,
# scaled by sqrt(global batch / 16)), INIT (checkpoint to start from; default the shipped XS weights),
# TINY=1 for the CPU smoke test (tiny grid, a few steps, seconds).
set -euo pipefail

OUT=${1:?usage: pde_pretrain.sh OUT_DIR MINUTES [NUM_SAMPLES]}
MINUTES=${2:?usage: pde_pretrain.sh OUT_DIR MINUTES [NUM_SAMPLES]}
NUM_SAMPLES=${3:-200000}
PYTHON=${PYTHON:-python}
DEVICE=${DEVICE:-cuda}
BATCH=${BATCH:-64}
LR=${LR:-3e-4}
TINY=${TINY:-0}
mkdir -p "$OUT"
LOG="$OUT/pde_pretrain.log"
foundry() { "$PYTHON" -c 'from foundry.cli import app; app()' "$@"; }
say() { echo "[$(date -u +%H:%M:%S)] $*" | tee -a "$LOG"; }

INIT=${INIT:-$("$PYTHON" -c 'from foundry.pde.inference import default_checkpoint; print(default_checkpoint())')}
if [ "$TINY" = 1 ]; then
    GRID=(--num-x 32 --num-t 6 --dt 1e-3 --chunk-size 16)
    NUM_SAMPLES=${3:-24}
    TRAIN=(--max-steps 4 --eval-every 4 --log-every 2 --batch-size 4 --num-query-points 64 --precision bf16)
else
    GRID=(--chunk-size 1024)
    NUM_TEST=256
    # the step budget is the time: the cosine follows --max-minutes
    TRAIN=(--max-steps 10000000 --max-minutes "$MINUTES" --eval-every 2000 --log-every 100
           --batch-size "$BATCH" --num-query-points 2048 --precision bf16 --tf32)
fi

say "device $DEVICE; generating $NUM_SAMPLES training samples on it"
foundry pde generate --out "$OUT/train.h5" --num-samples "$NUM_SAMPLES" --seed 10 \
    --advection-share 0.15 --device "$DEVICE" "${GRID[@]}" 2>&1 | tee -a "$LOG"
# the held-out set is the one every table uses (seed 1, default chunking): numpy, as it was made;
# the tiny mode evaluates on its training file (one Python start fewer: CI time)
if [ "$TINY" = 1 ]; then
    cp "$OUT/train.h5" "$OUT/test.h5"
else
    foundry pde generate --out "$OUT/test.h5" --num-samples "$NUM_TEST" --seed 1 2>&1 | tee -a "$LOG"
fi

say "training for $MINUTES min from $INIT"
foundry pde train --train-data "$OUT/train.h5" --test-data "$OUT/test.h5" --out-dir "$OUT/run" \
    --device "$DEVICE" --data-on-device --log-scalars --function-points 64 \
    --lr "$LR" --lr-scaling sqrt --lr-reference-batch 16 --warmup-steps 500 \
    --init-from "$INIT" "${TRAIN[@]}" 2>&1 | tee -a "$LOG"
cp "$OUT/run/best.pt" "$OUT/checkpoint.pt"
if [ "$TINY" != 1 ]; then  # (training already evaluated best.pt; this prints the median too)
    say "evaluating $OUT/checkpoint.pt on $OUT/test.h5"
    foundry pde eval --data "$OUT/test.h5" --checkpoint "$OUT/checkpoint.pt" --device "$DEVICE" 2>&1 | tee -a "$LOG"
fi
say "done: $OUT/checkpoint.pt, $OUT/run/log.jsonl, $LOG"
