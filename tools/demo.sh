#!/usr/bin/env bash
# `make demo`: a short tour on the bundled test model (random weights, GPT-2 vocabulary).
# The model has no knowledge, so the point is the mechanics: sites, predictions, and an
# interchange intervention that provably moves the source's activation into the base run.
set -euo pipefail
vene=${1:-build/vene}
model=tests/fixtures/models/gpt2-tiny
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1. What is in the model: architecture, parameters and hook sites (vene info)"
"$vene" info "$model" | head -24
echo "  ... ($("$vene" info "$model" | grep -c '^  transformer\|^  lm_head') sites in all; every one can be read or changed)"

step "2. Tokenize and run: next-token top-5 for \"The capital of Spain is\" (vene forward)"
"$vene" tokenize "$model" "The capital of Spain is"
"$vene" forward "$model" "The capital of Spain is" --top 5

step "3. Interchange intervention (pyvene 101): block_output of layer 1 at position 3 (\" Spain\") taken from \"The capital of Italy is\""
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
absmodel=$(cd "$model" && pwd)
cat > "$tmp/experiment.json" <<JSON
{
 "model": "$absmodel",
 "config": {"representations": [
   {"layer": 1, "component": "block_output", "unit": "pos", "max_number_of_units": 1,
    "intervention_type": "VanillaIntervention"},
   {"layer": 3, "component": "block_output", "unit": "pos", "max_number_of_units": 1,
    "intervention_type": "CollectIntervention"}]},
 "base": {"text": ["The capital of Spain is"]},
 "sources": [{"text": ["The capital of Italy is"]}, null],
 "unit_locations": {"sources->base": 3},
 "run": "forward",
 "outputs": ["original.logits", "intervened.logits", "collected.0"]
}
JSON
cat "$tmp/experiment.json"
"$vene" run "$tmp/experiment.json" --out "$tmp/result.safetensors"
echo
echo "The result file holds original.logits, intervened.logits and collected.0 (layer-3 block output"
echo "at position 3 of the intervened run): $(stat -c %s "$tmp/result.safetensors") bytes, written atomically."
step "Done. See README.md for the experiment format, the C API and the examples/."
