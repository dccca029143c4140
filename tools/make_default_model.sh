#!/usr/bin/env bash
# Rebuilds models/facts-gpt2, vene's embedded default model, from nothing but vene itself:
#   1. vene facts: the corpus from vene's generator (src/data/facts.c), its word-level
#      tokenizer, and the interchange pairs;
#   2. vene train-lm: a 4-layer GPT-2 initialised and trained by vene as a language model
#      (AdamW, warm-up, cosine decay, gradient clipping);
#   3. vene train with model_gradients (interchange intervention training, IIT): the model
#      learns to answer from the country's state at the subject token after layer 1, so the
#      mechanism the demo and tests/test_default_model.c show is known by construction;
#   4. vene facts --eval: the facts check.
# One thread throughout, so a rerun gives the same bytes (git status shows models/ clean).
# Usage: tools/make_default_model.sh [path/to/vene] [OUT_DIR]
set -euo pipefail
vene=${1:-build/vene}
out=${2:-models/facts-gpt2}
case $out in /*) ;; *) out=$PWD/$out ;; esac
export OMP_NUM_THREADS=1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vene_facts.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
"$vene" facts --out "$tmp/facts" --seed 0
SECONDS=0
"$vene" train-lm "$tmp/lm" --data "$tmp/facts" --seed 0 \
    --layers 4 --d-model 64 --heads 4 --positions 16 --epochs 200 --batch 32 --lr 3e-3 --clip 1
lm_s=$SECONDS
cat >"$tmp/facts/iit.json" <<JSON
{"model": "$tmp/lm", "train": "iit_train.jsonl", "eval": "iit_eval.jsonl",
 "config": {"representations": [{"layer": 1, "component": "block_output", "unit": "pos", "max_number_of_units": 1,
   "intervention_type": "VanillaIntervention"}]},
 "model_gradients": true, "batch_size": 32, "epochs": 15, "seed": 0,
 "optimizer": {"type": "adamw", "lr": 1e-3, "weight_decay": 0.01, "warmup": 0.05, "schedule": "cosine", "clip_norm": 1},
 "save_model": "$out"}
JSON
"$vene" train "$tmp/facts/iit.json"
echo "trained in $SECONDS s wall clock ($lm_s s language modelling, $((SECONDS - lm_s)) s IIT)"
"$vene" facts --eval "$out" --seed 0 --misses
