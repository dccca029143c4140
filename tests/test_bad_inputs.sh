#!/usr/bin/env bash
# Bad inputs through the command line: one row per class of docs/bad-inputs.md (the ids are
# the table's). Each row builds its broken file in a scratch folder and runs build/vene,
# which must exit 1..125 (no signal), print one stderr line starting "vene: " that contains
# every needle, and leave its output folder exactly as it was: no result, no temporary.
# Also: an existing result survives a failing run, and runs killed at any moment leave
# either nothing or the complete result.
# Usage: bash test_bad_inputs.sh /path/to/vene (run from tests/). Ends with "N passed, N failed".
set -u
vene=${1:?usage: test_bad_inputs.sh /path/to/vene}
case $vene in /*) ;; */*) vene=$PWD/$vene ;; esac
cd "$(dirname "${BASH_SOURCE[0]}")" || exit 1
tiny=$PWD/fixtures/models/gpt2-tiny
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vene_bad.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0

# row ID NEEDLES -- COMMAND...: NEEDLES is '|'-separated; the command runs with $out (an
# empty folder) as the place for any result it would write.
row() {
    local id=$1 needles=$2
    shift 3
    out=$tmp/out/$id
    mkdir -p "$out"
    "$@" >"$tmp/stdout" 2>"$tmp/stderr"
    local rc=$? why="" line n
    line=$(head -n 1 "$tmp/stderr")
    if [ "$rc" -eq 0 ]; then why="exit status 0"
    elif [ "$rc" -gt 125 ]; then why="exit status $rc (signal or crash)"
    elif [ "$(wc -l <"$tmp/stderr")" -ne 1 ]; then why="$(wc -l <"$tmp/stderr") lines on stderr"
    elif [ "${line#vene: }" = "$line" ]; then why="stderr does not start with 'vene: '"
    fi
    IFS='|' read -r -a list <<<"$needles"
    for n in "${list[@]}"; do
        case $line in *"$n"*) ;; *) why="${why:+$why; }message lacks '$n'" ;; esac
    done
    if [ -n "$(ls -A "$out")" ]; then why="${why:+$why; }left $(ls -A "$out" | tr '\n' ' ')"; fi
    if [ -z "$why" ]; then
        passed=$((passed + 1))
        echo "PASS $id: ${line//$tmp/TMP}"
    else
        failed=$((failed + 1))
        echo "FAIL $id: $why"
        sed 's/^/    stderr: /' "$tmp/stderr" | head -n 5
    fi
}
ok() { # ok DESC COMMAND...
    local desc=$1
    shift
    if "$@"; then passed=$((passed + 1)); echo "PASS $desc"; else failed=$((failed + 1)); echo "FAIL $desc"; fi
}

# le64 N: N as 8 little-endian bytes (the safetensors header length)
le64() {
    local i
    for i in 0 1 2 3 4 5 6 7; do printf "\\$(printf %03o $((($1 >> (8 * i)) & 255)))"; done
}
# st FILE HEADER_JSON DATA_BYTES [LENGTH]: a safetensors file; LENGTH overrides the header length
# (FILE may be a link to the fixture: it is replaced, never written through)
st() {
    rm -f "$1"
    { le64 "${4:-${#2}}"; printf '%s' "$2"; head -c "$3" /dev/zero; } >"$1"
}
# model NAME: a model folder with the tiny GPT-2's files (weights linked, config copied)
model() {
    local d=$tmp/m/$1
    mkdir -p "$d"
    cp "$tiny/config.json" "$d/"
    ln -sf "$tiny/model.safetensors" "$tiny/vocab.json" "$tiny/merges.txt" "$d/"
    echo "$d"
}
# config_set DIR KEY VALUE: replace (or add) one top-level key of DIR/config.json
config_set() {
    if grep -q "\"$2\":" "$1/config.json"; then
        sed -i "s#\"$2\": [^,]*,#\"$2\": $3,#" "$1/config.json"
    else
        sed -i "0,/{/s##{\"$2\": $3, #" "$1/config.json"
    fi
}
# weights_edit DIR PERL_SUBST: a private copy of the weights with its header edited in place
weights_edit() {
    rm -f "$1/model.safetensors"
    perl -0777 -pe "$2" "$tiny/model.safetensors" >"$1/model.safetensors"
}

# ---------------------------------------------------------------- model folders (M)
d=$(model m10); st "$d/model.safetensors" '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}' 4 1000000
row M10 "$d/model.safetensors|header" -- "$vene" info "$d"
d=$(model m11); st "$d/model.safetensors" '{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]' 4
row M11 "$d/model.safetensors|JSON" -- "$vene" info "$d"
d=$(model m12); st "$d/model.safetensors" '{"a": {"shape": [1], "data_offsets": [0, 4]}}' 4
row M12 "$d/model.safetensors|'a'|dtype" -- "$vene" info "$d"
d=$(model m13); st "$d/model.safetensors" '{"a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}' 8
row M13 "$d/model.safetensors|'a'|past the end" -- "$vene" info "$d"
d=$(model m14); st "$d/model.safetensors" '{"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}' 16
row M14 "$d/model.safetensors|'a'|12 bytes" -- "$vene" info "$d"
d=$(model m15); st "$d/model.safetensors" '{"a": {"dtype": "Q9", "shape": [4], "data_offsets": [0, 4]}}' 4
row M15 "$d/model.safetensors|'a'|Q9" -- "$vene" info "$d"
d=$(model m16); weights_edit "$d" 's/"transformer.h.0.attn.c_attn.bias":\{"dtype":"F32"/"transformer.h.0.attn.c_attn.bias":{"dtype":"I32"/'
row M16 "h.0.attn.c_attn.bias|I32" -- "$vene" info "$d"
d=$(model m17); weights_edit "$d" 's/"data_offsets":\[768,49920\]/"data_offsets":[700,49852]/'
row M17 "$d/model.safetensors|overlap" -- "$vene" info "$d"
d=$(model m18); rm "$d/model.safetensors"
printf '{"metadata": {}, "weight_map": {"wte.weight": "model-00001-of-00002.safetensors"}}' >"$d/model.safetensors.index.json"
row M18 "model-00001-of-00002.safetensors" -- "$vene" info "$d"
d=$(model m19); rm "$d/model.safetensors"; printf '{"weight_map": [' >"$d/model.safetensors.index.json"
row M19 "model.safetensors.index.json" -- "$vene" info "$d"
d=$(model m20); config_set "$d" n_layer 5
row M20 "n_layer|5|h.4.ln_1.weight" -- "$vene" info "$d"
d=$(model m21); config_set "$d" n_inner '"big"'
row M21 "$d/config.json|n_inner" -- "$vene" info "$d"
d=$(model m22); config_set "$d" layer_norm_epsilon '"tiny"'
row M22 "$d/config.json|layer_norm_epsilon" -- "$vene" info "$d"
d=$(model m23); config_set "$d" activation_function '"relu"'
row M23 "$d/config.json|activation_function|relu" -- "$vene" info "$d"
d=$(model m24); config_set "$d" n_head 3
row M24 "$d/config.json|n_head 3" -- "$vene" info "$d"
d=$(model m25); sed -i 's/"n_layer": 4,/"n_layer": 4, "n_layer": 2,/' "$d/config.json"
row M25 "$d/config.json|\"n_layer\" appears twice" -- "$vene" info "$d"
d=$(model m26); rm "$d/config.json"; mkdir "$d/config.json"
row M26 "$d/config.json|not a regular file" -- "$vene" info "$d"
d=$(model m27); rm "$d/model.safetensors"; mkdir "$d/model.safetensors.index.json"
row M27 "$d|no weights|model.safetensors.index.json" -- "$vene" info "$d"

# ---------------------------------------------------------------- tokenizer files (T)
d=$(model t1); rm "$d/vocab.json" "$d/merges.txt"
row T1 "$d|tokenizer" -- "$vene" tokenize "$d" "Hello"
d=$(model t2); rm "$d/vocab.json"; printf '{"a": 0, ' >"$d/vocab.json"
row T2 "vocab.json" -- "$vene" tokenize "$d" "Hello"
d=$(model t3); rm "$d/merges.txt"; printf '#version: 0.2\nh e\nonlyonepiece\n' >"$d/merges.txt"
row T3 "merges.txt|3" -- "$vene" tokenize "$d" "Hello"
d=$(model t4); rm "$d/vocab.json" "$d/merges.txt"
printf '{"model": {"type": "WordPiece", "vocab": {"a": 0}}}' >"$d/tokenizer.json"
row T4 "tokenizer.json|WordPiece" -- "$vene" tokenize "$d" "Hello"
d=$(model t5); rm "$d/vocab.json" "$d/merges.txt"; printf '{"model": {"type": "BPE"}}' >"$d/tokenizer.json"
row T5 "tokenizer.json|model.vocab" -- "$vene" tokenize "$d" "Hello"
d=$(model t6); rm "$d/vocab.json"; printf '{"a": "zero"}' >"$d/vocab.json"
row T6 "vocab.json|\"a\"|integer" -- "$vene" tokenize "$d" "Hello"
d=$(model t7); rm "$d/merges.txt"; mkdir "$d/merges.txt"
row T7 "merges.txt" -- "$vene" tokenize "$d" "Hello"

# ---------------------------------------------------------------- experiments
# exp ID [KEY=JSON]...: writes $tmp/e/ID/experiment.json from a valid block_output interchange,
# each KEY=JSON replacing (or, for a new key, adding) one top-level entry; REPR=FIELDS replaces
# the fields of the one representation after its layer and component.
exp() {
    local id=$1 kv k v repr='"unit": "pos", "intervention_type": "VanillaIntervention"'
    shift
    declare -A e=(
        [model]="\"$tiny\"" [config]='@CFG@' [base]='{"input_ids": [[464, 3139, 286, 8602, 318]]}'
        [sources]='[{"input_ids": [[464, 3139, 286, 8031, 318]]}]' [unit_locations]='{"sources->base": 3}'
        [subspaces]=null [run]='"forward"' [outputs]='["original.logits", "intervened.logits"]')
    local order=(model config base sources unit_locations subspaces run outputs)
    for kv in "$@"; do
        k=${kv%%=*} v=${kv#*=}
        if [ "$k" = REPR ]; then repr=$v; continue; fi
        [ -z "${e[$k]+x}" ] && order+=("$k")
        e[$k]=$v
    done
    local cfg="{\"representations\": [{\"layer\": 1, \"component\": \"block_output\", $repr}]}"
    mkdir -p "$tmp/e/$id"
    {
        printf '{'
        local first=1
        for k in "${order[@]}"; do
            [ "${e[$k]}" = DROP ] && continue
            [ $first -eq 0 ] && printf ', '
            first=0
            printf '"%s": %s' "$k" "${e[$k]//@CFG@/$cfg}"
        done
        printf '}\n'
    } >"$tmp/e/$id/experiment.json"
    echo "$tmp/e/$id/experiment.json"
}
# run_row ID NEEDLES [KEY=JSON]...: `vene run` of that experiment must fail cleanly
run_row() {
    local id=$1 needles=$2
    shift 2
    local f
    f=$(exp "$id" "$@")
    row "$id" "$needles" -- "$vene" run "$f" --out "$tmp/out/$id/result.safetensors" --quiet
}

f=$(exp valid)
ok "E0 the template experiment is valid" "$vene" run "$f" --out "$tmp/valid.safetensors" --quiet

# intervention configs (I); I1-I3 (component, intervention type, layer) are in test_cli.sh
run_row I4 'representations[0]|unit|"foo"' REPR='"unit": "foo"'
run_row I5 'representations[0].low_rank_dimension|positive|0' REPR='"intervention_type": "LowRankRotatedSpaceIntervention", "low_rank_dimension": 0'
run_row I6 'representations[0]|low_rank_dimension' REPR='"intervention_type": "LowRankRotatedSpaceIntervention", "low_rank_dimension": "four"'
run_row I7 'representations[0]|max_number_of_units' REPR='"intervention_type": "VanillaIntervention", "max_number_of_units": 0'
run_row I8 'config.mode|serial' config='{"representations": [{"layer": 1, "component": "block_output"}], "mode": "sideways"}'
run_row I9 'group_key' config='{"representations": [{"layer": 1, "component": "block_output", "group_key": 0}, {"layer": 2, "component": "block_output"}]}'
run_row I10 'representations[0].subspace_partition' REPR='"intervention_type": "VanillaIntervention", "subspace_partition": [[0, 32], "rest"]'
run_row I11 'representations[0]|"colour"' REPR='"intervention_type": "VanillaIntervention", "colour": "red"'
run_row I12 'config.representations|empty' config='{"representations": []}'
run_row I13 'config|"modes"' config='{"representations": [{"layer": 1, "component": "block_output"}], "modes": "serial"}'
run_row I14 'representations[0].layer' config='{"representations": [{"layer": "one", "component": "block_output"}]}'
run_row I15 'intervention 0|19200 x 19200|16384' REPR='"intervention_type": "RotatedSpaceIntervention", "max_number_of_units": 300'
run_row I16 'representations[0]|low_rank_dimension|64' REPR='"intervention_type": "LowRankRotatedSpaceIntervention", "low_rank_dimension": 65'
run_row I17 'key "unit" appears twice in config.representations[0]' REPR='"unit": "pos", "unit": "h"'

# unit_locations and subspaces (L); L1-L5 (past the sequence, past the dimension, batch sizes,
# serial key naming a missing source) are in test_cli.sh
run_row L6 'unit_locations|"src->base"' unit_locations='{"src->base": 3}'
run_row L7 'unit_locations|2 location rows for a batch of 1' unit_locations='{"sources->base": [[[[3], [3]]], [[[3], [3]]]]}'
run_row L8 'unit_locations|non-negative' unit_locations='{"sources->base": -1}'
run_row L9 'subspaces' subspaces='[[0.5]]'
run_row L10 'unit_locations' unit_locations='{"sources->base": "three"}'
run_row L11 'subspaces[0]|non-negative' subspaces='[[-2]]'

# experiment files (E); malformed JSON, unknown keys, missing model folder, unknown output and
# source_representation missing or of the wrong shape are in test_cli.sh
run_row E7 'model' model=DROP
run_row E8 'run' run=5
run_row E9 'outputs' outputs='"intervened.logits"'
run_row E10 'base' base='{}'
run_row E11 'base.input_ids[0][1]|50257' base='{"input_ids": [[464, 50257]]}'
run_row E12 'base.input_ids|different lengths' base='{"input_ids": [[464, 3139], [464]]}'
run_row E13 'base.text|different lengths' base='{"text": ["The capital of Spain is", "Hello"]}'
run_row E14 'intervention_params|"rotate.x"' intervention_params='{"rotate.x": "w"}'
run_row E15 'run|backward' run='"backward"'
run_row E16 'seed' seed=-1
run_row E17 'generate|max_length' run='"generate"' outputs='["generated.intervened"]' generate='{}'
run_row E18 'outputs[0]|collected.5|1' REPR='"intervention_type": "CollectIntervention"' sources=null \
    unit_locations='{"base": 3}' outputs='["collected.5"]'
run_row E19 'outputs[0]|GPT2Model|logits' model_class='"GPT2Model"' outputs='["intervened.logits"]'
run_row E20 'sources[0]' sources='[{"input_ids": "464"}]'
f=$(exp E21 base='{"inputs_embeds": "emb"}')
printf 'not a safetensors file' >"${f%/*}/inputs.safetensors"
row E21 'inputs.safetensors' -- "$vene" run "$f" --out "$tmp/out/E21/result.safetensors" --quiet
f=$(exp E22 base='{"inputs_embeds": "emb"}')
st "${f%/*}/inputs.safetensors" '{"emb": {"dtype": "F32", "shape": [1, 2, 3], "data_offsets": [0, 24]}}' 24
row E22 'base.inputs_embeds|emb|64' -- "$vene" run "$f" --out "$tmp/out/E22/result.safetensors" --quiet
run_row E23 'source_representations|1' REPR='"intervention_type": "ZeroIntervention"' sources=null \
    unit_locations='{"base": 3}' source_representations='["a", "b"]'
run_row E24 'intervention_params|inputs.safetensors' REPR='"intervention_type": "RotatedSpaceIntervention"' \
    intervention_params='{"0.rotate_layer.weight": "w"}'
f=$(exp E25 REPR='"intervention_type": "RotatedSpaceIntervention"' intervention_params='{"0.rotate_layer.weight": "w"}')
st "${f%/*}/inputs.safetensors" '{"w": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]}}' 16
row E25 'intervention_params|rotate_layer.weight|64' -- "$vene" run "$f" --out "$tmp/out/E25/result.safetensors" --quiet
mkdir -p "$tmp/e/E26/experiment.json"
row E26 'experiment.json|not a regular file' -- "$vene" run "$tmp/e/E26/experiment.json" --out "$tmp/out/E26/result.safetensors"
run_row E28 'unit_locations|non-negative int' run='"generate"' outputs='["generated.intervened"]' \
    generate='{"max_new_tokens": 2}' unit_locations='{"sources->base": 1e300}'
run_row E27 'model|GPT2ForQuestionAnswering|not supported' model_class='"GPT2ForQuestionAnswering"'

# ---------------------------------------------------------------- the command line (X);
# unknown command, unknown option, missing model and run without --out are in test_cli.sh
f=$(exp valid)
row X5 'forward|--top|abc' -- "$vene" forward "$tiny" "Hello" --top abc --out "$out/r.safetensors"
row X6 'info|--seq|1..1000000|"0"' -- "$vene" info "$tiny" --seq 0
row X7 'forward|--max-memory|"2X"' -- "$vene" forward "$tiny" "Hello" --max-memory 2X
row X8 'run|--max-memory|"-1G"' -- "$vene" run "$f" --out "$tmp/out/X8/r.safetensors" --max-memory -1G
row X9 "--max-memory 1M|weights|13.1 MiB" -- "$vene" forward "$tiny" "Hello" --max-memory 1M --out "$tmp/out/X9/r.safetensors"
row X10 "forward of 1 x 1 tokens|run memory|--max-memory 13.1M" -- \
    "$vene" forward "$tiny" "Hello" --max-memory 13.1M --out "$tmp/out/X10/r.safetensors"
row X11 "intervened forward of 1 x 5 tokens|memory limit|max_memory" -- \
    "$vene" run "$f" --out "$tmp/out/X11/r.safetensors" --max-memory 14M
row X12 "model|weights|memory limit" -- "$vene" run "$f" --out "$tmp/out/X12/r.safetensors" --max-memory 10M
f=$(exp gen run='"generate"' outputs='["generated.intervened"]' generate='{"max_length": 128}' unit_locations='{"sources->base": 3}')
row X21 "generating up to 128 tokens (batch 1) needs|memory limit" -- \
    "$vene" run "$f" --out "$tmp/out/X21/r.safetensors" --max-memory 20M
f=$(exp valid)
row X13 "$tmp/out/X13/no_such_dir/r.safetensors" -- "$vene" forward "$tiny" "Hello" --out "$tmp/out/X13/no_such_dir/r.safetensors"
row X14 "$tmp/out/X14/sub" -- bash -c 'mkdir "$2/sub" && "$1" run "$3" --out "$2/sub" --quiet; rc=$?; rmdir "$2/sub"; exit $rc' \
    _ "$vene" "$tmp/out/X14" "$f"
row X15 'forward|64 --site' -- "$vene" forward "$tiny" "Hello" $(printf -- '--site h[0].output %.0s' $(seq 65))
row X16 'forward|MODEL_DIR and TEXT' -- "$vene" forward "$tiny"
row X17 'tokenize' -- "$vene" tokenize "$tiny"
row X18 'info|unexpected argument|extra' -- "$vene" info "$tiny" extra
row X19 'run|unexpected argument' -- "$vene" run "$f" "$f" --out "$tmp/out/X19/r.safetensors"
# the file system refuses the write halfway (a 64 KiB file size limit; SIGXFSZ ignored)
row X20 "$tmp/out/X20/r.safetensors|write failed|File too large" -- \
    bash -c 'trap "" XFSZ; ulimit -f 128; exec "$@"' _ "$vene" run "$f" --out "$tmp/out/X20/r.safetensors" --quiet

# sizes that fit change nothing
ok "forward --max-memory 1.5GiB prints what it prints without a limit" bash -c \
    'cmp -s <("$1" forward "$2" "The capital of Spain is" --top 3) <("$1" forward "$2" "The capital of Spain is" --top 3 --max-memory 1.5GiB)' \
    _ "$vene" "$tiny"
ok "run --max-memory 512M writes the same result as without a limit" bash -c \
    '"$1" run "$2" --out "$3/lim.safetensors" --quiet --max-memory 512M && cmp -s "$3/lim.safetensors" "$3/valid.safetensors"' \
    _ "$vene" "$(exp valid)" "$tmp"

# ---------------------------------------------------------------- atomic output
# A run that fails after its forward (at output time) keeps an earlier result as it was.
f=$(exp keep REPR='"intervention_type": "CollectIntervention"' sources=null unit_locations='{"base": 3}' \
    outputs='["collected.0"]')
mkdir -p "$tmp/keep"
"$vene" run "$f" --out "$tmp/keep/r.safetensors" --quiet
cp "$tmp/keep/r.safetensors" "$tmp/keep.ref"
sed -i 's/"collected.0"/"collected.0", "collected.1"/' "$f"
"$vene" run "$f" --out "$tmp/keep/r.safetensors" --quiet 2>/dev/null
ok "atomic: a run failing at output time exits non-zero" test $? -ne 0
ok "atomic: the earlier result is unchanged and nothing else is left" \
    bash -c 'cmp -s "$1/keep/r.safetensors" "$1/keep.ref" && [ "$(ls -A "$1/keep")" = r.safetensors ]' _ "$tmp"
# Killed while writing the result (SIGXFSZ at the 64 KiB file size limit): nothing is left.
mkdir -p "$tmp/xfsz"
bash -c 'ulimit -f 128; "$@" 2>/dev/null; echo $? >"$0"' "$tmp/xfsz.rc" "$vene" run "$(exp valid)" \
    --out "$tmp/xfsz/r.safetensors" --quiet 2>/dev/null
rc=$(cat "$tmp/xfsz.rc")
ok "atomic: killed by SIGXFSZ in the middle of writing (status $rc), nothing is left" \
    bash -c '[ "$1" -gt 128 ] && [ -z "$(ls -A "$2")" ]' _ "$rc" "$tmp/xfsz"
# Runs killed (SIGKILL, SIGTERM) at various moments leave nothing or the complete result.
f=$(exp kill base='{"input_ids": [[464, 3139, 286, 8602, 318, 464, 3139, 286, 8602, 318]]}' \
    sources='[{"input_ids": [[464, 3139, 286, 8031, 318, 464, 3139, 286, 8031, 318]]}]')
"$vene" run "$f" --out "$tmp/kill.ref" --quiet
for delay in 0 0.05 0.1 0.2 0.4 0.8 1.6; do
    for sig in KILL TERM; do
        mkdir -p "$tmp/kill"
        "$vene" run "$f" --out "$tmp/kill/r.safetensors" --quiet 2>/dev/null &
        pid=$!
        sleep "$delay"
        kill -s "$sig" "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
        left=$(ls -A "$tmp/kill")
        ok "atomic: SIG$sig after ${delay}s leaves nothing or the whole result (${left:-nothing})" \
            bash -c '[ -z "$2" ] || { [ "$2" = r.safetensors ] && cmp -s "$1/kill/r.safetensors" "$1/kill.ref"; }' _ "$tmp" "$left"
        rm -rf "$tmp/kill"
    done
done

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
