#!/usr/bin/env bash
# The golden cases (gpt2, gpt_neo, llama, mlp and gru forward runs; real pyvene outputs or
# the intended-semantics cases, copied from the
# project's shared golden set into tests/golden/): `vene run` on each, compared by
# golden/check.py. Usage: bash test_golden.sh /path/to/vene (run from tests/).
set -u
vene=${1:?usage: test_golden.sh /path/to/vene}
case $vene in /*) ;; */*) vene=$PWD/$vene ;; esac
cd "$(dirname "${BASH_SOURCE[0]}")" || exit 1
if ! command -v python3 >/dev/null 2>&1; then
    echo "SKIP: python3 not found; golden/check.py needs Python 3.9+ (standard library only)"
    echo "0 passed, 0 failed"
    exit 0
fi
if [ ! -d golden/cases ] || [ ! -e golden/models/gpt2-tiny/config.json ]; then
    echo "FAIL: golden/cases or golden/models/gpt2-tiny (a link to fixtures/models/gpt2-tiny) is missing"
    echo "0 passed, 1 failed"
    exit 1
fi
exec python3 golden/check.py --vene "$vene" --root golden
