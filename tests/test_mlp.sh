#!/usr/bin/env bash
# pyvene MLP classifier golden cases (mlp-classifier: MLPForClassification, inputs_embeds,
# B x classes logits) against a vene binary.
# Usage: test_mlp.sh PATH_TO_VENE
set -u
if [ $# -lt 1 ]; then
    echo "usage: $0 PATH_TO_VENE" >&2
    exit 2
fi
vene=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")" || exit 2
python3 golden_mlp/check.py --vene "$vene" --root golden_mlp
exit $?
