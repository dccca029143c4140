#!/usr/bin/env bash
# GPT-Neo forward goldens: the 15 gptneo_component_* cases (seven real pyvene runs, eight
# `_intended` ones for the q/k/v/out_proj components) on gptneo-tiny.
# Usage: test_gptneo.sh PATH_TO_VENE
set -u
vene="${1:?usage: $0 PATH_TO_VENE}"
case "$vene" in /*) ;; *) vene="$PWD/$vene" ;; esac
cd "$(dirname "$0")" || exit 1
python3 golden_neo/check.py --vene "$vene" --root golden_neo
exit $?
