#!/usr/bin/env bash
# `make demo`: a short tour of every part that exists. Outputs go to demo_out/.
set -euo pipefail
out=${DEMO_OUT:-demo_out}
mkdir -p "$out"

echo "== foundry mimo: sum rate vs SNR, N=64 BS antennas, K=16 users, 10 deg / 0.1 IQ imbalance =="
foundry mimo sweep --bs-antennas 64 --users 16 --sigma-theta-deg 10 --sigma-g 0.1 \
  --snr-db 0,10,20,30 --draws 200 --precoders zf,wl-zf,mmse,wl-mmse,mf,wl-mf \
  --seed 0 --out "$out/mimo"

echo "demo outputs are in $out/"
