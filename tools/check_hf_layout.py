#!/usr/bin/python3
"""Reads a vene-trained folder (models/facts-gpt2) the way Hugging Face's GPT2LMHeadModel and
a WordLevel/Whitespace tokenizer.json define it, in plain PyTorch (no transformers here),
and compares the next-token logits with `vene forward --out` on a few prompts.

  /usr/bin/python3 tools/check_hf_layout.py build/vene models/facts-gpt2

A developer check of the folder's layout (Conv1D weights, tied head, gelu_new, word-level
ids); the mechanism tests are tests/test_default_model.c.
"""
import json
import math
import os
import re
import struct
import subprocess
import sys
import tempfile

import torch


def read_safetensors(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        base = 8 + n
        out = {}
        for name, meta in header.items():
            if name == "__metadata__":
                continue
            start, end = meta["data_offsets"]
            f.seek(base + start)
            data = f.read(end - start)
            if meta["dtype"] == "F32":
                t = torch.tensor(struct.unpack("<%df" % (len(data) // 4), data), dtype=torch.float32)
            elif meta["dtype"] == "I64":
                t = torch.tensor(struct.unpack("<%dq" % (len(data) // 8), data), dtype=torch.int64)
            else:
                raise SystemExit("unexpected dtype %s" % meta["dtype"])
            out[name] = t.reshape(meta["shape"])
    return out


def tokenize(tok, text):
    vocab, unk = tok["model"]["vocab"], tok["model"]["unk_token"]
    return [vocab.get(w, vocab[unk]) for w in re.findall(r"\w+|[^\w\s]+", text)]


def gpt2_logits(cfg, w, ids):
    D, H, L = cfg["n_embd"], cfg["n_head"], cfg["n_layer"]
    eps = cfg.get("layer_norm_epsilon", 1e-5)
    x = w["wte.weight"][ids] + w["wpe.weight"][: len(ids)]
    S = len(ids)
    mask = torch.triu(torch.ones(S, S, dtype=torch.bool), 1)

    def ln(x, p):
        return torch.nn.functional.layer_norm(x, (D,), w[p + ".weight"], w[p + ".bias"], eps)

    for l in range(L):
        p = "h.%d." % l
        qkv = ln(x, p + "ln_1") @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = (t.reshape(S, H, D // H).transpose(0, 1) for t in qkv.split(D, -1))
        a = (q @ k.transpose(-1, -2)) / math.sqrt(D // H)
        a = a.masked_fill(mask, float("-inf")).softmax(-1)
        o = (a @ v).transpose(0, 1).reshape(S, D)
        x = x + o @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = ln(x, p + "ln_2") @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"]
        h = 0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3)))  # gelu_new
        x = x + h @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    return ln(x, "ln_f") @ w["wte.weight"].T  # tied head


def main(vene, model):
    cfg = json.load(open(os.path.join(model, "config.json")))
    tok = json.load(open(os.path.join(model, "tokenizer.json")))
    assert cfg["architectures"] == ["GPT2LMHeadModel"] and cfg["activation_function"] == "gelu_new"
    assert tok["model"]["type"] == "WordLevel" and tok["pre_tokenizer"]["type"] == "Whitespace"
    w = read_safetensors(os.path.join(model, "model.safetensors"))
    worst = 0.0
    prompts = ["The capital of Spain is", "Italy's language is", "People in Kenya speak", "Japan is a country in"]
    with tempfile.TemporaryDirectory() as tmp:
        for text in prompts:
            out = os.path.join(tmp, "f.safetensors")
            subprocess.run([vene, "forward", model, text, "--top", "1", "--out", out], check=True, stdout=subprocess.DEVNULL)
            got = read_safetensors(out)
            ids = tokenize(tok, text)
            assert got["input_ids"].flatten().tolist() == ids, (text, ids, got["input_ids"])
            ref = gpt2_logits(cfg, w, torch.tensor(ids))
            diff = (got["logits"][0] - ref).abs().max().item()
            worst = max(worst, diff)
            print("%-28s ids %s  top %-10s max |vene - torch| %.2e" % (text, ids, list(tok["model"]["vocab"])[ref[-1].argmax()], diff))
    print("worst difference %.2e" % worst)
    sys.exit(0 if worst < 1e-3 else 1)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
