#!/bin/sh
# Regenerates tests/fixtures/tokenizer/ from llama.cpp's GGUF vocabularies and test vectors
# (the shared data set's tokenizer-tests/ folder, given as the argument):
#  - the test vectors (.inp/.out) of the four vocabularies, and the real Llama 3 and Llama 2
#    GGUF files (7.8 MB + 0.7 MB), copied;
#  - for all four, a tokenizer.json converted by gguf_to_tokenizer_json.py and pruned to what
#    the vectors use; for Qwen2 (5.9 MB) and GPT-2 (1.8 MB) the pruned GGUF as well.
# Usage: tools/make_tokenizer_fixtures.sh PATH/TO/tokenizer-tests
set -eu
src=${1:?usage: $0 PATH/TO/tokenizer-tests}
here=$(cd "$(dirname "$0")/.." && pwd)
out=$here/tests/fixtures/tokenizer
for v in llama-bpe qwen2 llama-spm gpt-2; do
    cp "$src/ggml-vocab-$v.gguf.inp" "$src/ggml-vocab-$v.gguf.out" "$out/"
done
cp "$src/ggml-vocab-llama-bpe.gguf" "$src/ggml-vocab-llama-spm.gguf" "$out/"
for v in llama-bpe llama-spm; do
    /usr/bin/python3 "$here/tools/gguf_to_tokenizer_json.py" "$src/ggml-vocab-$v.gguf" "$out/$v.tokenizer.json" \
        --prune-for "$src/ggml-vocab-$v.gguf.inp"
done
for v in qwen2 gpt-2; do
    /usr/bin/python3 "$here/tools/gguf_to_tokenizer_json.py" "$src/ggml-vocab-$v.gguf" "$out/$v.tokenizer.json" \
        --prune-for "$src/ggml-vocab-$v.gguf.inp" --gguf-out "$out/$v.pruned.gguf"
done
ls -l "$out"
