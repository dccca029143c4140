#!/usr/bin/env bash
# Rebuilds models/facts-gpt2, vene's embedded default model, from nothing but vene itself:
# the corpus from vene's generator (src/data/facts.c), a GPT-2 initialised and trained by
# vene (AdamW, warm-up, cosine decay), then the facts check. One thread, so the result is
# the same bytes on every machine (git diff --stat models/ shows nothing after a rerun).
# Usage: tools/make_default_model.sh [path/to/vene] [OUT_DIR]
set -euo pipefail
vene=${1:-build/vene}
out=${2:-models/facts-gpt2}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vene_facts.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$vene" facts --out "$tmp/facts" --seed 0
start=$(date +%s)
OMP_NUM_THREADS=1 "$vene" train-lm "$out" --data "$tmp/facts" --seed 0 \
    --layers 4 --d-model 64 --heads 4 --positions 16 --epochs 200 --batch 16 --lr 1e-3 --clip 1
echo "trained in $(($(date +%s) - start)) s (wall clock)"
"$vene" facts --eval "$out" --seed 0 --misses
