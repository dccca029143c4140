#!/usr/bin/env bash
# pyvene GRU classifier golden cases (gru-classifier: GRUForClassification, inputs_embeds,
# B x labels logits, unit "t" on cell_output) against a vene binary.
# Usage: test_gru.sh PATH_TO_VENE
set -u
if [ $# -lt 1 ]; then
    echo "usage: $0 PATH_TO_VENE" >&2
    exit 2
fi
vene=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")" || exit 2
python3 golden_gru/check.py --vene "$vene" --root golden_gru
exit $?
