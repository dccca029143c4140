#!/usr/bin/env bash
# `vene dataset`: help, factual and counterfactual hierarchical-equality files (line count,
# fields, the same bytes for the same seed), the control model, and errors (one "vene: "
# line naming the culprit, no output file left). Line contents are checked in
# test_causal_data.c. Usage: bash test_dataset_cli.sh /path/to/vene. Ends "N passed, N failed".
set -u
vene=${1:?usage: test_dataset_cli.sh /path/to/vene}
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vene_dataset.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
ok() { # ok DESC CONDITION...
    local desc=$1
    shift
    if "$@"; then echo "PASS: $desc"; passed=$((passed + 1)); else echo "FAIL: $desc"; failed=$((failed + 1)); fi
}
# refuses NEEDLE OUT -- ARGS...: `vene dataset ARGS` fails with one "vene: " line holding NEEDLE
# and leaves neither OUT nor OUT.tmp* behind.
refuses() {
    local needle=$1 out=$2
    shift 3
    "$vene" dataset "$@" >/dev/null 2>"$tmp/err"
    local rc=$? msg
    msg=$(cat "$tmp/err")
    [ "$rc" -ne 0 ] && [ "$rc" -lt 126 ] && [ "$(wc -l <"$tmp/err")" -eq 1 ] && [ "${msg#vene: }" != "$msg" ] &&
        [[ $msg == *"$needle"* ]] && [ ! -e "$out" ] && ! compgen -G "$out.tmp*" >/dev/null
    ok "refuses ($needle): $msg" test $? -eq 0
}
lines() { wc -l <"$1"; }

"$vene" dataset --help >"$tmp/help"
ok "dataset --help" grep -q "hierarchical-equality" "$tmp/help"
ok "vene --help lists dataset" sh -c "'$vene' --help | grep -q '^  dataset '"

he="$vene dataset hierarchical-equality"
$he --out "$tmp/f.jsonl" --size 50 --seed 1 >/dev/null
ok "factual: 50 lines" test "$(lines "$tmp/f.jsonl")" -eq 50
ok "factual: base embeds and label only" test "$(grep -cE '^\{"base": \{"embeds": \[\[[^]]*\]\]\}, "label": [01]\}$' "$tmp/f.jsonl")" -eq 50
ok "factual: 16 floats per input" test "$(head -n 1 "$tmp/f.jsonl" | tr ',' '\n' | grep -c '[0-9]')" -eq 17

$he --out "$tmp/c1.jsonl" --size 60 --seed 2 --variable WX,YZ --subsets --block 6 >/dev/null
$he --out "$tmp/c2.jsonl" --size 60 --seed 2 --variable WX,YZ --subsets --block 6 >/dev/null
$he --out "$tmp/c3.jsonl" --size 60 --seed 3 --variable WX,YZ --subsets --block 6 >/dev/null
ok "counterfactual: 60 lines with every field" \
    test "$(grep -cE '"sources": \[.*\], "label": [01], "base_label": [01], "intervention_id": [012]\}$' "$tmp/c1.jsonl")" -eq 60
ok "counterfactual: same seed, same bytes" cmp -s "$tmp/c1.jsonl" "$tmp/c2.jsonl"
ok "counterfactual: another seed, other bytes" sh -c "! cmp -s '$tmp/c1.jsonl' '$tmp/c3.jsonl'"
ok "counterfactual: a block shares its intervention" \
    test "$(head -n 6 "$tmp/c1.jsonl" | grep -o '"intervention_id": [0-9]' | sort -u | wc -l)" -eq 1
$he --out "$tmp/w.jsonl" --size 20 --variable WY >"$tmp/out"
ok "WY selects the pattern model (control)" grep -q "pattern model" "$tmp/out"
ok "one source per listed variable" test "$(grep -c '"sources": \[{"embeds": \[\[[^]]*\]\]}\]' "$tmp/w.jsonl")" -eq 20
$he --out "$tmp/d8.jsonl" --size 5 --dim 8 --objects 100 --pool-seed 4 >/dev/null
ok "--dim 8: 32 floats per input" test "$(head -n 1 "$tmp/d8.jsonl" | tr ',' '\n' | grep -c '[0-9]')" -eq 33

refuses "no variable QQ in this model" "$tmp/e1" -- hierarchical-equality --out "$tmp/e1" --size 5 --variable WX,QQ
refuses "no variable WX" "$tmp/e2" -- hierarchical-equality --out "$tmp/e2" --size 5 --variable WY,WX
refuses "needs --variable" "$tmp/e3" -- hierarchical-equality --out "$tmp/e3" --size 5 --kind counterfactual
refuses "--objects: bad value \"1\"" "$tmp/e4" -- hierarchical-equality --out "$tmp/e4" --size 5 --objects 1
refuses "unknown task \"sum\"" "$tmp/e5" -- sum --out "$tmp/e5" --size 5
refuses "--size N is required" "$tmp/e6" -- hierarchical-equality --out "$tmp/e6"
refuses "$tmp/none/x.jsonl" "$tmp/none/x.jsonl" -- hierarchical-equality --out "$tmp/none/x.jsonl" --size 5
refuses "--kind \"both\"" "$tmp/e7" -- hierarchical-equality --out "$tmp/e7" --size 5 --kind both

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
