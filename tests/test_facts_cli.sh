#!/usr/bin/env bash
# `vene facts` and `vene train-lm`: the corpus files, a tiny model trained twice with one
# seed giving the same bytes, the Hugging Face folder it makes (config, weights, tokenizer)
# loading back into vene, the facts score of the committed model, and the error contract.
# Usage: bash test_facts_cli.sh /path/to/vene (run from tests/). Ends with "N passed, N failed".
set -u
vene=${1:?usage: test_facts_cli.sh /path/to/vene}
case $vene in /*) ;; */*) vene=$PWD/$vene ;; esac
cd "$(dirname "${BASH_SOURCE[0]}")" || exit 1
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vene_facts_cli.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT

passed=0
failed=0
pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }
check() { # check DESC COMMAND...
    local desc=$1
    shift
    if "$@"; then pass "$desc"; else fail "$desc"; fi
}
# expect_error DESC NEEDLE COMMAND...: non-zero exit, one stderr line "vene: ..." with NEEDLE
expect_error() {
    local desc=$1 needle=$2
    shift 2
    "$@" >"$tmp/out" 2>"$tmp/err"
    local rc=$? line
    line=$(head -n 1 "$tmp/err")
    if [ "$rc" -ne 0 ] && [ "$rc" -lt 126 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && [[ $line == "vene: "*"$needle"* ]]; then
        pass "$desc"
    else
        fail "$desc (exit $rc): $(cat "$tmp/err")"
    fi
}

check "facts --help" bash -c '"$1" facts --help | grep -q -- "--eval"' _ "$vene"
check "train-lm --help" bash -c '"$1" train-lm --help | grep -q -- "--d-model"' _ "$vene"
check "vene --help lists facts and train-lm" bash -c '"$1" --help | grep -q "^  facts " && "$1" --help | grep -q "^  train-lm "' _ "$vene"

"$vene" facts --out "$tmp/facts" --seed 3 >"$tmp/facts.out" 2>&1
check "facts --out writes the corpus" bash -c 'for f in tokenizer.json tokenizer_config.json train.jsonl eval.jsonl das_country_train.jsonl das_country_eval.jsonl das_continent_train.jsonl das_continent_eval.jsonl iit_train.jsonl iit_eval.jsonl corpus.txt; do [ -s "$1/$f" ] || exit 1; done' _ "$tmp/facts"
check "facts --out reports the vocabulary" grep -q "192 words in the vocabulary" "$tmp/facts.out"
check "the word-level tokenizer splits punctuation" bash -c '[ "$("$1" tokenize "$2" "Spain'"'"'s capital is Madrid." | cut -f2 | tr "\n" " ")" = "\"Spain\" \"'"'"'\" \"s\" \"capital\" \"is\" \"Madrid\" \".\" " ]' _ "$vene" "$tmp/facts"

# a tiny model, twice: the same bytes
for run in a b; do
    "$vene" train-lm "$tmp/lm_$run" --data "$tmp/facts" --seed 5 --layers 1 --d-model 16 --heads 2 --epochs 1 --quiet \
        >"$tmp/lm_$run.out" 2>&1 || fail "train-lm run $run: $(tail -n 1 "$tmp/lm_$run.out")"
done
check "train-lm is deterministic for a seed" cmp -s "$tmp/lm_a/model.safetensors" "$tmp/lm_b/model.safetensors"
check "train-lm writes a Hugging Face folder" bash -c '[ -s "$1/config.json" ] && [ -s "$1/tokenizer.json" ] && [ -s "$1/tokenizer_config.json" ] &&
    grep -q "\"GPT2LMHeadModel\"" "$1/config.json" && grep -q "\"vocab_size\":[[:space:]]*192" "$1/config.json" &&
    grep -q "\"eos_token_id\":[[:space:]]*1" "$1/config.json"' _ "$tmp/lm_a"
check "train-lm leaves no scratch folder" bash -c '! compgen -G "$1/lm_a.init.*" >/dev/null' _ "$tmp"
check "the trained folder loads and predicts" bash -c '"$1" forward "$2" "The capital of Spain is" --top 3 | grep -q "next token"' _ "$vene" "$tmp/lm_a"
check "train-lm prints its steps and losses" grep -q "steps in" "$tmp/lm_a.out"

# the committed model knows its facts (the full mechanism checks are in test_default_model)
"$vene" facts --eval ../models/facts-gpt2 >"$tmp/eval.out" 2>&1
check "facts --eval on models/facts-gpt2: >= 99% of the training facts" \
    awk '/training facts/ { split($4, a, "/"); ok = a[1] >= 0.99 * a[2] } END { exit !ok }' "$tmp/eval.out"

expect_error "facts without --out or --eval" "--out" "$vene" facts
expect_error "facts --eval of a missing folder" "no/such" "$vene" facts --eval "$tmp/no/such"
expect_error "facts --out where no folder can be made" "/proc/none" "$vene" facts --out /proc/none/x
expect_error "train-lm without --data" "--data" "$vene" train-lm "$tmp/x"
expect_error "train-lm with heads not dividing d-model" "divisible" "$vene" train-lm "$tmp/x" --data "$tmp/facts" --d-model 10 --heads 4
expect_error "train-lm with a data folder lacking a tokenizer" "tokenizer" "$vene" train-lm "$tmp/x" --data "$tmp"
check "a failed train-lm leaves nothing" bash -c '[ ! -e "$1/x" ] && ! compgen -G "$1/x.init.*" >/dev/null' _ "$tmp"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
