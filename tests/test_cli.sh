#!/usr/bin/env bash
# The `vene` command line: help, info, tokenize, forward (top-k and --out), run, and the
# error contract: a failing command exits non-zero, prints exactly one line on stderr that
# starts with "vene: " and names what is wrong, and leaves no output file behind.
# Usage: bash test_cli.sh /path/to/vene (run from tests/). Ends with "N passed, N failed".
# shellcheck disable=SC2016  # bash -c scripts take their arguments as $1.., unexpanded on purpose
set -u
vene=${1:?usage: test_cli.sh /path/to/vene}
case $vene in /*) ;; */*) vene=$PWD/$vene ;; esac
cd "$(dirname "${BASH_SOURCE[0]}")" || exit 1

model=fixtures/models/gpt2-tiny
model_abs=$PWD/$model
golden_case=golden/cases/gpt2_component_block_output
tmp=$(mktemp -d "${TMPDIR:-/tmp}/vene_cli.XXXXXX") || exit 1
trap 'rm -rf "$tmp"' EXIT
have_python=0
command -v python3 >/dev/null 2>&1 && have_python=1

passed=0
failed=0
pass() { echo "PASS: $1"; passed=$((passed + 1)); }
fail() { echo "FAIL: $1"; failed=$((failed + 1)); }
check() { # check DESC COMMAND...: passes when the command succeeds
    local desc=$1
    shift
    if "$@"; then pass "$desc"; else fail "$desc"; fi
}

# expect_error DESC RESULT_FILE NEEDLES -- COMMAND...
# The command must exit non-zero (not by a signal), print exactly one stderr line that
# starts with "vene: " and contains every needle ('|'-separated; a needle starting with
# '?' is wished for: its absence prints a NOTE, not a failure), and leave RESULT_FILE
# (when given) and any RESULT_FILE.tmp* absent.
expect_error() {
    local desc=$1 result=$2 needles=$3
    shift 4
    rm -f "$tmp/stdout" "$tmp/stderr"
    "$@" >"$tmp/stdout" 2>"$tmp/stderr"
    local rc=$? why=""
    local line
    line=$(head -n 1 "$tmp/stderr")
    if [ "$rc" -eq 0 ]; then why="exit status 0"
    elif [ "$rc" -ge 126 ]; then why="exit status $rc (crash or signal)"
    elif [ "$(wc -l <"$tmp/stderr")" -ne 1 ]; then why="$(wc -l <"$tmp/stderr") lines on stderr"
    elif [ "${line#vene: }" = "$line" ]; then why="stderr does not start with 'vene: '"
    fi
    local n list
    IFS='|' read -r -a list <<<"$needles"
    for n in "${list[@]}"; do
        [ -z "$n" ] && continue
        if [ "${n#\?}" != "$n" ]; then
            case $line in *"${n#\?}"*) ;; *) echo "NOTE: $desc: message lacks '${n#\?}'" ;; esac
        else
            case $line in *"$n"*) ;; *) why="${why:+$why; }message lacks '$n'" ;; esac
        fi
    done
    if [ -n "$result" ]; then
        [ -e "$result" ] && why="${why:+$why; }left $result behind"
        compgen -G "$result.tmp*" >/dev/null && why="${why:+$why; }left a temporary file behind"
    fi
    if [ -z "$why" ]; then
        pass "$desc: $line"
    else
        fail "$desc: $why"
        sed 's/^/    stderr: /' "$tmp/stderr" | head -n 5
    fi
}

# Does safetensors file $1 hold tensor $2 with dtype F32 and shape $3 (JSON list)?
st_has() {
    python3 - "$1" "$2" "$3" <<'EOF'
import json, struct, sys
path, name, shape = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
with open(path, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    h = json.loads(f.read(n))
t = h.get(name)
sys.exit(0 if t and t["dtype"] == "F32" and t["shape"] == shape else 1)
EOF
}

# Max |a - b| <= 1e-4 * max(1, max|b|) between tensor $2 of file $1 and tensor $4 of file $3.
st_close() {
    python3 - "$@" <<'EOF'
import array, json, struct, sys
def read(path, name):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        h = json.loads(f.read(n))
        t = h[name]
        a, b = t["data_offsets"]
        f.seek(8 + n + a)
        v = array.array("f")
        v.frombytes(f.read(b - a))
        if sys.byteorder != "little":
            v.byteswap()
        return t["shape"], v
sa, a = read(sys.argv[1], sys.argv[2])
sb, b = read(sys.argv[3], sys.argv[4])
if sa != sb:
    sys.exit("shapes %s and %s" % (sa, sb))
worst = max(abs(x - y) for x, y in zip(a, b))
tol = 1e-4 * max(1.0, max(abs(y) for y in b))
print("    max diff %.3g (tolerance %.3g)" % (worst, tol))
sys.exit(0 if worst <= tol else 1)
EOF
}

# ---------------------------------------------------------------- help, info, tokenize

check "vene --help exits 0 and lists the commands" \
    bash -c '"$1" --help >"$2/help" && grep -q "forward" "$2/help" && grep -q "run" "$2/help"' _ "$vene" "$tmp"
for c in info tokenize forward run; do
    check "vene $c --help exits 0" bash -c '"$1" "$2" --help | grep -q usage' _ "$vene" "$c"
done

if "$vene" info "$model" >"$tmp/info" 2>"$tmp/info.err"; then
    pass "vene info exits 0"
    check "vene info lists transformer.h[%d].attn.c_attn.output" grep -qF 'transformer.h[%d].attn.c_attn.output' "$tmp/info"
    check "vene info gives the parameter count 3424704" grep -qE '^parameters +3424704( |$)' "$tmp/info"
else
    fail "vene info exits 0: $(head -n 1 "$tmp/info.err")"
fi
check "vene info --class GPT2Model lists h[%d].output without prefix and no lm_head" \
    bash -c '"$1" info "$2" --class GPT2Model >"$3/info2" && grep -qE "^  h\[%d\]\.output " "$3/info2" && ! grep -q lm_head "$3/info2"' \
    _ "$vene" "$model" "$tmp"

ids=$("$vene" tokenize "$model" "The capital of Spain is" --ids 2>"$tmp/tok.err")
rc=$?
if [ "$rc" -eq 0 ] && [ "$ids" = "464 3139 286 8602 318" ]; then
    pass "vene tokenize --ids prints 464 3139 286 8602 318"
else
    fail "vene tokenize --ids: rc $rc, printed '$ids' $(head -n 1 "$tmp/tok.err")"
fi

# ---------------------------------------------------------------- forward

if "$vene" forward "$model" "The capital of Spain is" --top 3 >"$tmp/top" 2>"$tmp/top.err"; then
    pass "vene forward --top 3 exits 0"
    n=$(grep -cE '^.+ [0-9]+\.[0-9]+$' "$tmp/top")
    if [ "$n" -eq 3 ]; then pass "vene forward --top 3 prints 3 token lines"; else fail "vene forward --top 3 printed $n token lines"; cat "$tmp/top"; fi
else
    fail "vene forward --top 3 exits 0: $(head -n 1 "$tmp/top.err")"
fi

out=$tmp/f.safetensors
if "$vene" forward "$model" "The capital of Spain is" --out "$out" --site 'h[1].output' >"$tmp/fwd" 2>"$tmp/fwd.err"; then
    pass "vene forward --out --site h[1].output exits 0"
    if [ "$have_python" -eq 1 ]; then
        check "--out holds h[1].output [1, 5, 64]" st_has "$out" 'h[1].output' '[1, 5, 64]'
        check "--out holds logits [1, 5, 50257]" st_has "$out" logits '[1, 5, 50257]'
        check "--out holds last_hidden_state [1, 5, 64]" st_has "$out" last_hidden_state '[1, 5, 64]'
        check "--out h[1].output equals the PyTorch reference" \
            st_close "$out" 'h[1].output' fixtures/gpt2_ref/spain_b1.safetensors 'h[1].output'
        check "--out logits equal the PyTorch reference" \
            st_close "$out" logits fixtures/gpt2_ref/spain_b1.safetensors logits
    else
        check "--out wrote a non-empty file (python3 absent: contents not checked)" test -s "$out"
    fi
    if compgen -G "$out.tmp*" >/dev/null; then fail "forward --out left a temporary file"; else pass "forward --out left no temporary file"; fi
else
    fail "vene forward --out --site h[1].output exits 0: $(head -n 1 "$tmp/fwd.err")"
fi

# ---------------------------------------------------------------- CLI errors

expect_error "forward with empty text" "" "empty" -- "$vene" forward "$model" ""
expect_error "forward on a missing model folder" "" "$tmp/no_such_model" -- "$vene" forward "$tmp/no_such_model" "Hello"
expect_error "info on a missing model folder" "" "$tmp/no_such_model" -- "$vene" info "$tmp/no_such_model"
expect_error "unknown command" "" "frobnicate" -- "$vene" frobnicate
expect_error "unknown forward option" "" "--bogus" -- "$vene" forward "$model" "Hello" --bogus
expect_error "forward with a bad site name" "$tmp/bad_site.safetensors" 'h[1].bogus.output' -- \
    "$vene" forward "$model" "Hello" --site 'h[1].bogus.output' --out "$tmp/bad_site.safetensors"
expect_error "forward with a site layer out of range" "$tmp/bad_layer.safetensors" 'h[9].output|layer 9|4 layers' -- \
    "$vene" forward "$model" "Hello" --site 'h[9].output' --out "$tmp/bad_layer.safetensors"
mkdir -p "$tmp/badcfg"
cp "$model"/* "$tmp/badcfg/"
printf '{"model_type": "gpt2", "n_layer": 4,,}' >"$tmp/badcfg/config.json"
expect_error "forward with config.json not JSON" "" "$tmp/badcfg/config.json" -- "$vene" forward "$tmp/badcfg" "Hello"
expect_error "info with config.json not JSON" "" "$tmp/badcfg/config.json" -- "$vene" info "$tmp/badcfg"
# a forward that fails after the model ran: the site never fires in the bare class, so
# writing the file fails; no file (and no temporary) may be left
expect_error "forward --out fails at write time (lm_head site on the bare class)" "$tmp/nofire.safetensors" \
    "lm_head.output" -- "$vene" forward "$model" "Hello" --class GPT2Model --site lm_head.output --out "$tmp/nofire.safetensors"
# a forward that fails in the model: 129 tokens for 128 positions
long_text=$(printf ' the%.0s' $(seq 1 129))
expect_error "forward longer than n_positions" "$tmp/long.safetensors" "129|128" -- \
    "$vene" forward "$model" "$long_text" --out "$tmp/long.safetensors"

# ---------------------------------------------------------------- run

result=$tmp/golden_result.safetensors
if "$vene" run "$golden_case/experiment.json" --out "$result" --quiet >"$tmp/run" 2>"$tmp/run.err"; then
    pass "vene run on a golden case exits 0"
    check "vene run wrote the result" test -s "$result"
    if [ "$have_python" -eq 1 ]; then
        check "the result holds intervened.logits [1, 5, 50257]" st_has "$result" intervened.logits '[1, 5, 50257]'
        check "the result's intervened.logits equal the golden" \
            st_close "$result" intervened.logits "$golden_case/expected.safetensors" intervened.logits
    fi
else
    fail "vene run on a golden case exits 0: $(head -n 1 "$tmp/run.err")"
fi
# the experiment is found relative to its own folder from any working directory
check "vene run works from another working directory" \
    bash -c 'cd "$3" && "$1" run "$2/experiment.json" --out r2.safetensors --quiet && test -s r2.safetensors' \
    _ "$vene" "$PWD/$golden_case" "$tmp"

# Invalid experiments: temporary copies of a block_output interchange experiment with one
# field broken; the model path is absolute so the copies run from $tmp.
# exp_json COMPONENT ITYPE LAYER MODE UNIT_LOCATIONS SUBSPACES SOURCES SOURCE_REP EXTRA
exp_json() {
    cat <<EOF
{"model": "$model_abs", "model_class": null, "seed": 0,
 "config": {"representations": [{"layer": $3, "component": "$1", "unit": "pos", "max_number_of_units": 1,
   "low_rank_dimension": null, "intervention_type": "$2", "intervention_kwargs": {}, "instantiate": false,
   "subspace_partition": null, "group_key": null, "intervention_link_key": null, "source_representation": $8}],
   "mode": "$4"},
 "intervention_params": {},
 "base": {"input_ids": [[464, 3139, 286, 8602, 318]]},
 "sources": $7,
 "unit_locations": $5, "subspaces": $6, "source_representations": null,
 "run": "forward", "generate": null, "loss": null, "grads": null, "enable_model_gradients": false,
 "outputs": ["original.logits", "intervened.logits", "intervened.last_hidden_state"]$9}
EOF
}
src1='[{"input_ids": [[464, 3139, 286, 8031, 318]]}]'
src2='[{"input_ids": [[464, 3139, 286, 8031, 318], [464, 3303, 286, 8602, 318]]}]'
ul='{"sources->base": 3}'
mkdir -p "$tmp/exp"
# write_exp NAME ARGS...: writes $tmp/exp/NAME/experiment.json
write_exp() {
    local name=$1
    shift
    mkdir -p "$tmp/exp/$name"
    exp_json "$@" >"$tmp/exp/$name/experiment.json"
}
# expect_run_error NAME NEEDLES: vene run on $tmp/exp/NAME must fail cleanly
expect_run_error() {
    local name=$1 needles=$2 res=$tmp/exp/$1/result.safetensors
    expect_error "run, $name" "$res" "$needles" -- "$vene" run "$tmp/exp/$name/experiment.json" --out "$res"
}

# control: the template itself is valid, so each failure below comes from its one change
write_exp valid block_output VanillaIntervention 1 parallel "$ul" null "$src1" null ""
if "$vene" run "$tmp/exp/valid/experiment.json" --out "$tmp/exp/valid/result.safetensors" --quiet 2>"$tmp/valid.err" &&
    [ -s "$tmp/exp/valid/result.safetensors" ]; then
    pass "run, the valid template experiment"
else
    fail "run, the valid template experiment: $(head -n 1 "$tmp/valid.err")"
fi
write_exp component blok_output VanillaIntervention 1 parallel "$ul" null "$src1" null ""
expect_run_error component 'representations[0]|component|blok_output'
write_exp itype block_output FooIntervention 1 parallel "$ul" null "$src1" null ""
expect_run_error itype 'representations[0]|intervention_type|FooIntervention'
write_exp layer99 block_output VanillaIntervention 99 parallel "$ul" null "$src1" null ""
expect_run_error layer99 'representations[0]|layer|99'
write_exp position50 block_output VanillaIntervention 1 parallel '{"sources->base": 50}' null "$src1" null ""
expect_run_error position50 '50|location|unit_locations|representations[0]'
write_exp base_position50 block_output ZeroIntervention 1 parallel '{"base": 50}' null null null ""
expect_run_error base_position50 '50|location|unit_locations|representations[0]'
write_exp subspace100 block_output VanillaIntervention 1 parallel "$ul" '[100]' "$src1" null ""
expect_run_error subspace100 '100|64|subspaces|representations[0]'
write_exp sources_batch2 block_output VanillaIntervention 1 parallel "$ul" null "$src2" null ""
expect_run_error sources_batch2 'sources|2'
write_exp serial_source5 block_output VanillaIntervention 1 serial '{"source_5->base": 3}' null "$src1" null ""
expect_run_error serial_source5 'unit_locations|source_5->base'
write_exp unknown_key block_output VanillaIntervention 1 parallel "$ul" null "$src1" null ', "bogus_key": 1'
expect_run_error unknown_key 'bogus_key'
write_exp unknown_output block_output VanillaIntervention 1 parallel "$ul" null "$src1" null ""
sed -i 's/"intervened.logits"/"intervened.logitz"/' "$tmp/exp/unknown_output/experiment.json"
expect_run_error unknown_output 'outputs[1]|intervened.logitz'
write_exp missing_model block_output VanillaIntervention 1 parallel "$ul" null "$src1" null ""
sed -i "s#\"$model_abs\"#\"$tmp/no_such_model\"#" "$tmp/exp/missing_model/experiment.json"
expect_run_error missing_model "model|$tmp/no_such_model"
mkdir -p "$tmp/exp/malformed"
printf '{"model": "%s", "config": {"representations": [' "$model_abs" >"$tmp/exp/malformed/experiment.json"
expect_run_error malformed 'experiment.json|JSON'
write_exp rep_missing block_output VanillaIntervention 1 parallel '{"base": 3}' null null '"zeros7"' ""
expect_run_error rep_missing 'representations[0]|source_representation|zeros7|inputs.safetensors'
if [ "$have_python" -eq 1 ]; then
    write_exp rep_shape block_output VanillaIntervention 1 parallel '{"base": 3}' null null '"zeros7"' ""
    python3 - "$tmp/exp/rep_shape/inputs.safetensors" <<'EOF'
import json, struct, sys
header = json.dumps({"zeros7": {"dtype": "F32", "shape": [7], "data_offsets": [0, 28]}}).encode()
header += b" " * (-len(header) % 8)
with open(sys.argv[1], "wb") as f:
    f.write(struct.pack("<Q", len(header)) + header + struct.pack("<7f", *([0.0] * 7)))
EOF
    expect_run_error rep_shape 'representations[0]|source_representation|zeros7|7|64'
else
    echo "SKIP: run with a source_representation of the wrong shape (python3 absent)"
fi
expect_error "run without --out" "" "--out" -- "$vene" run "$tmp/exp/valid/experiment.json"
expect_error "run on a missing experiment file" "$tmp/none.safetensors" "$tmp/no_such.json" -- \
    "$vene" run "$tmp/no_such.json" --out "$tmp/none.safetensors"

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
