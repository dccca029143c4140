#!/usr/bin/env bash
# `make demo`: pyvene 101's tour on vene's embedded model, models/facts-gpt2: a 4-layer GPT-2
# that vene trained (tools/make_default_model.sh) on a synthetic factual language
# ("The capital of Spain is Madrid ."). Its mechanism is known, so every step's answer can
# be checked: the country is read from the subject token, and the fact is looked up there.
# Needs no network; python3 (standard library) only prints result tensors.
set -euo pipefail
# A model this small runs fastest on one thread (more only add synchronisation).
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
vene=${1:-build/vene}
case $vene in /*) ;; *) vene=$PWD/$vene ;; esac
cd "$(dirname "${BASH_SOURCE[0]}")/.."
model=$PWD/models/facts-gpt2
show="python3 tools/show_result.py"
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vene_demo.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)
bold() { if [ -t 1 ]; then printf '\033[1m%s\033[0m\n' "$*"; else printf '%s\n' "$*"; fi; }
step() { printf '\n'; bold "== $1"; shift; for line in "$@"; do printf '   %s\n' "$line"; done; }

# experiment FILE REPRESENTATIONS BASE [SOURCE] [UNIT_LOCATIONS] [OUTPUTS]: an experiment file
experiment() {
    local src=${4:+"\"sources\": [{\"text\": [\"$4\"]}],"}
    cat >"$1" <<JSON
{"model": "$model",
 "config": {"representations": [$2]},
 "base": {"text": ["$3"]}, $src
 "unit_locations": ${5:-null},
 "run": "forward",
 "outputs": [${6:-"\"original.logits\", \"intervened.logits\""}]}
JSON
}

step "0. The model" \
    "A GPT-2 trained from scratch by vene on sentences from vene's own generator (vene facts):" \
    "60 countries, their capitals, languages and continents, in three templates each."
"$vene" info "$model" | sed -n '2,9p'
"$vene" facts --out "$tmp/facts" >/dev/null
echo "   some training sentences:"
grep -P '^train\t' "$tmp/facts/corpus.txt" | cut -f2 | awk 'NR % 97 == 1' | head -6 | sed 's/^/     /'

step "1. Predictions (vene forward): the next token after \"The capital of Spain is\"" \
    "Look at: Madrid, with nearly all the probability."
"$vene" forward "$model" "The capital of Spain is" --top 5 | sed 's/^/   /'

step "2. Collecting attention weights (CollectIntervention on attention_weight, layer 2)" \
    "Each row: how much the last token (\"is\") attends to each earlier token, per head." \
    "Look at: one head putting most of its weight on \"Spain\": it moves the country to the answer."
experiment "$tmp/att.json" '{"layer": 2, "component": "attention_weight", "unit": "pos", "max_number_of_units": 4,
   "intervention_type": "CollectIntervention"}' "The capital of Spain is" "" '{"base": [[[0, 1, 2, 3]]]}' '"collected.0"'
"$vene" run "$tmp/att.json" --out "$tmp/att.safetensors" --quiet
$show "$tmp/att.safetensors" attention collected.0 The capital of Spain is

step "3. Zeroing the MLP output at the subject (ZeroIntervention, mlp_output of layer 0, position 3)" \
    "Look at: p(Madrid) before (first line) and after (second line). The MLP at the subject" \
    "token is where the country's facts are looked up, so removing it loses the answer."
experiment "$tmp/zero.json" '{"layer": 0, "component": "mlp_output", "unit": "pos", "max_number_of_units": 1,
   "intervention_type": "ZeroIntervention"}' "The capital of Spain is" "" '{"base": 3}'
"$vene" run "$tmp/zero.json" --out "$tmp/zero.safetensors" --quiet
$show "$tmp/zero.safetensors" top original.logits "$model/tokenizer.json" 3 Madrid
$show "$tmp/zero.safetensors" top intervened.logits "$model/tokenizer.json" 3 Madrid

step "4. The interchange intervention (pyvene 101): block_output of layer 1 at \"Spain\" taken from \"The capital of Italy is\"" \
    "Look at: the answer turns from Madrid to Rome: the country (and all it implies) sits at the subject token."
experiment "$tmp/swap.json" '{"layer": 1, "component": "block_output", "unit": "pos", "max_number_of_units": 1,
   "intervention_type": "VanillaIntervention"}' "The capital of Spain is" "The capital of Italy is" '{"sources->base": 3}'
"$vene" run "$tmp/swap.json" --out "$tmp/swap.safetensors" --quiet
$show "$tmp/swap.safetensors" top original.logits "$model/tokenizer.json" 3 Madrid Rome
$show "$tmp/swap.safetensors" top intervened.logits "$model/tokenizer.json" 3 Madrid Rome

step "5. DAS: how many dimensions of the subject's state (block_output, layer 1) carry a variable" \
    "LowRankRotatedSpaceIntervention trained with vene train on counterfactual pairs from vene facts;" \
    "held-out pairs have source countries never used in training. Look at: held-out IIA against" \
    "chance (a guess among the values: 1/2 and 1/60); before training the model answers for the base."
das() { # das NAME RANK EPOCHS
    cat >"$tmp/facts/das_$1_$2.json" <<JSON
{"model": "$model", "train": "das_$1_train.jsonl", "eval": "das_$1_eval.jsonl",
 "config": {"representations": [{"layer": 1, "component": "block_output", "unit": "pos", "max_number_of_units": 1,
   "low_rank_dimension": $2, "intervention_type": "LowRankRotatedSpaceIntervention"}]},
 "batch_size": 32, "epochs": $3, "seed": 0, "optimizer": {"type": "adam", "lr": 0.01}}
JSON
    "$vene" train "$tmp/facts/das_$1_$2.json" --quiet | sed 's/^trained/trained/; s/^/      /'
}
echo "   a) Europe or Asia (\"The continent of X is\"): one dimension is enough"
das continent 1 3
echo "   b) which of the 60 countries (\"The capital of X is\"): one dimension is not, eight are"
das country 1 1
das country 8 1

step "6. Steering during generation (vene generate --experiment, --compare)"
if "$vene" generate --help >/dev/null 2>&1; then
    echo "   Look at: \"Spain is in\" continues with Europe; with the subject's layer-1 state taken from"
    echo "   \"Japan is in\" while the prompt is read, the same decoding continues with Asia."
    cat >"$tmp/steer.json" <<JSON
{"model": "$model",
 "config": {"representations": [{"layer": 1, "component": "block_output", "unit": "pos", "max_number_of_units": 1,
   "intervention_type": "VanillaIntervention"}]},
 "base": {"text": ["Spain is in"]}, "sources": [{"text": ["Japan is in"]}],
 "unit_locations": {"sources->base": 0},
 "generate": {"max_new_tokens": 3, "intervene_on_prompt": true},
 "run": "generate", "outputs": ["generated.original", "generated.intervened"]}
JSON
    "$vene" generate "$model" "Spain is in" --experiment "$tmp/steer.json" --compare --max-new-tokens 3 2>/dev/null | sed 's/^/   /'
else
    echo "   (not in this build: vene generate comes with issue 5, generation with interventions)"
fi

step "7. Causal tracing (vene trace): which (layer, position) restores the fact when the subject is noised"
if "$vene" trace --help >/dev/null 2>&1; then
    echo "   Look at: the strongest cells at the subject token in the early layers, then at the last token."
    "$vene" trace "$model" --prompt "The capital of Spain is" --subject Spain --answer Madrid --out "$tmp/trace" | sed 's/^/   /'
else
    echo "   (not in this build: vene trace comes with issue 7; tests/test_default_model.c traces it meanwhile)"
fi

step "Done in $(($(date +%s) - start)) s." "See README.md for the experiment format, the C API and the examples/."
