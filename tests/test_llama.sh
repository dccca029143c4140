#!/usr/bin/env bash
# Llama golden cases (llama-tiny: GQA, RoPE, RMSNorm, SiLU MLP) against a vene binary.
# Usage: test_llama.sh PATH_TO_VENE
set -u
if [ $# -lt 1 ]; then
    echo "usage: $0 PATH_TO_VENE" >&2
    exit 2
fi
vene=$(cd "$(dirname "$1")" && pwd)/$(basename "$1")
cd "$(dirname "$0")" || exit 2
python3 golden_llama/check.py --vene "$vene" --root golden_llama
exit $?
