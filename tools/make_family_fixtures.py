#!/usr/bin/env python3
"""Small random-weight Hugging Face folders of the LLaMA family and GPT-NeoX, and their
per-site reference activations, for tests/test_families.c.

Developer tool only (the outputs are committed).  Needs torch and numpy, e.g. Debian's
`/usr/bin/python3` (torch 1.13); no transformers: the reference forwards are plain torch
re-statements of transformers 4.43 (tools/family_ref.py).

    /usr/bin/python3 tools/make_family_fixtures.py [--validate-only] [--golden ../shared/golden]

It first checks the LLaMA reference against a real-transformers golden (llama-tiny,
`original.logits` of the case llama_block_output) and stops if that is off by > 1e-5.
Then, for every model below, it writes tests/fixtures/models/<name>/ (config.json,
model.safetensors) and tests/fixtures/<name>_ref.safetensors holding input_ids,
attention_mask, position_ids (I64 [2,S]: row 0 unpadded, row 1 left-padded by 3 with
HF generate's position ids), every hook site of every layer under its module path
without the class prefix ("layers[1].mlp.act_fn.output"), last_hidden_state and, for
LM classes, logits.  Deterministic: fixed seeds, one thread.
"""
import argparse
import json
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import read_safetensors, write_safetensors  # noqa: E402
from family_ref import LlamaFamilyRef, NeoXRef  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
VOCAB, D, LAYERS = 256, 64, 2

LLAMA_BASE = {"hidden_size": D, "num_hidden_layers": LAYERS, "vocab_size": VOCAB, "rms_norm_eps": 1e-5,
              "max_position_embeddings": 64, "attention_dropout": 0.0, "torch_dtype": "float32",
              "transformers_version": "4.43.4", "initializer_range": 0.02, "use_cache": True}

# name -> (config, sequence length, what it exercises)
MODELS = {
    "mistral-tiny": (dict(LLAMA_BASE, model_type="mistral", architectures=["MistralForCausalLM"],
                          num_attention_heads=4, num_key_value_heads=2, head_dim=16, intermediate_size=128,
                          hidden_act="silu", sliding_window=4, rope_theta=10000.0, tie_word_embeddings=False),
                     10, "Mistral: GQA 4/2, sliding_window 4 (shorter than the sequence)"),
    "qwen2-tiny": (dict(LLAMA_BASE, model_type="qwen2", architectures=["Qwen2ForCausalLM"],
                        num_attention_heads=4, num_key_value_heads=1, intermediate_size=160, hidden_act="silu",
                        rope_theta=1000000.0, tie_word_embeddings=True, use_sliding_window=False,
                        sliding_window=32, max_window_layers=2),
                   9, "Qwen2: q/k/v biases, rope_theta 1e6, one kv head, tied head"),
    "gemma-tiny": (dict(LLAMA_BASE, model_type="gemma", architectures=["GemmaForCausalLM"], rms_norm_eps=1e-6,
                        num_attention_heads=4, num_key_value_heads=1, head_dim=32, intermediate_size=128,
                        hidden_act="gelu_pytorch_tanh", hidden_activation="gelu_pytorch_tanh",
                        rope_theta=10000.0, tie_word_embeddings=True),
                   9, "Gemma: (1+w) RMSNorm, sqrt(D) embedding scale, GeGLU tanh, head_dim 32 != D/H, tied"),
    "llama3-tiny": (dict(LLAMA_BASE, model_type="llama", architectures=["LlamaModel"],
                         num_attention_heads=4, num_key_value_heads=2, intermediate_size=128, hidden_act="silu",
                         rope_theta=500000.0, tie_word_embeddings=False,
                         rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                       "high_freq_factor": 4.0, "original_max_position_embeddings": 64}),
                    10, "Llama 3 rope_scaling (kept, blended and divided frequencies), bare LlamaModel"),
    "llama-dynamic": (dict(LLAMA_BASE, model_type="llama", architectures=["LlamaForCausalLM"],
                           num_attention_heads=4, num_key_value_heads=4, intermediate_size=128, hidden_act="silu",
                           max_position_embeddings=8, rope_theta=10000.0, tie_word_embeddings=False,
                           rope_scaling={"rope_type": "dynamic", "factor": 2.0}),
                      12, "dynamic NTK rope_scaling active (12 positions > max_position_embeddings 8)"),
    "pythia-tiny": (dict(model_type="gpt_neox", architectures=["GPTNeoXForCausalLM"], hidden_size=D,
                         num_hidden_layers=LAYERS, num_attention_heads=4, intermediate_size=256, vocab_size=VOCAB,
                         rotary_pct=0.25, rotary_emb_base=10000, max_position_embeddings=64,
                         layer_norm_eps=1e-5, hidden_act="gelu", use_parallel_residual=True,
                         attention_bias=True, tie_word_embeddings=False, attention_dropout=0.0,
                         hidden_dropout=0.0, rope_scaling=None, torch_dtype="float32",
                         transformers_version="4.43.4"),
                    10, "Pythia: parallel residual, rotary_pct 0.25, exact GELU, untied embed_out"),
    "neox-seq-tiny": (dict(model_type="gpt_neox", architectures=["GPTNeoXModel"], hidden_size=D,
                           num_hidden_layers=LAYERS, num_attention_heads=2, intermediate_size=128,
                           vocab_size=VOCAB, rotary_pct=0.5, rotary_emb_base=10000, max_position_embeddings=64,
                           layer_norm_eps=1e-5, hidden_act="gelu_new", use_parallel_residual=False,
                           attention_bias=True, tie_word_embeddings=False, attention_dropout=0.0,
                           hidden_dropout=0.0, rope_scaling=None, torch_dtype="float32",
                           transformers_version="4.43.4"),
                      9, "GPT-NeoX sequential residual, rotary_pct 0.5, gelu_new, bare GPTNeoXModel"),
}


def llama_weights(cfg, g):
    """State dict of a LlamaForCausalLM / LlamaModel-shaped model (HF names)."""
    H, KV, F_ = cfg["num_attention_heads"], cfg["num_key_value_heads"], cfg["intermediate_size"]
    hd = cfg.get("head_dim", D // H)
    gemma = cfg["model_type"] == "gemma"
    lm = cfg["architectures"][0].endswith("ForCausalLM")
    pre = "model." if lm else ""

    def rnd(*shape, std):
        return torch.randn(*shape, generator=g) * std

    def norm_w():  # Gemma stores w with the norm scaling by 1 + w
        return rnd(D, std=0.1) if gemma else 1.0 + rnd(D, std=0.1)

    w = {pre + "embed_tokens.weight": rnd(VOCAB, D, std=0.3 if gemma else 1.0), pre + "norm.weight": norm_w()}
    for l in range(LAYERS):
        p = "%slayers.%d." % (pre, l)
        w[p + "input_layernorm.weight"] = norm_w()
        w[p + "post_attention_layernorm.weight"] = norm_w()
        for name, out, inp in (("q_proj", H * hd, D), ("k_proj", KV * hd, D), ("v_proj", KV * hd, D),
                               ("o_proj", D, H * hd)):
            w[p + "self_attn.%s.weight" % name] = rnd(out, inp, std=inp ** -0.5)
            if cfg["model_type"] == "qwen2" and name != "o_proj":
                w[p + "self_attn.%s.bias" % name] = rnd(out, std=0.3)
        for name, out, inp in (("gate_proj", F_, D), ("up_proj", F_, D), ("down_proj", D, F_)):
            w[p + "mlp.%s.weight" % name] = rnd(out, inp, std=inp ** -0.5)
    if lm and not cfg["tie_word_embeddings"]:
        w["lm_head.weight"] = rnd(VOCAB, D, std=D ** -0.5)
    return w


def neox_weights(cfg, g):
    H, F_ = cfg["num_attention_heads"], cfg["intermediate_size"]
    lm = cfg["architectures"][0] == "GPTNeoXForCausalLM"
    pre = "gpt_neox." if lm else ""

    def rnd(*shape, std):
        return torch.randn(*shape, generator=g) * std

    w = {pre + "embed_in.weight": rnd(VOCAB, D, std=1.0),
         pre + "final_layer_norm.weight": 1.0 + rnd(D, std=0.1), pre + "final_layer_norm.bias": rnd(D, std=0.1)}
    for l in range(LAYERS):
        p = "%slayers.%d." % (pre, l)
        for ln in ("input_layernorm", "post_attention_layernorm"):
            w[p + ln + ".weight"] = 1.0 + rnd(D, std=0.1)
            w[p + ln + ".bias"] = rnd(D, std=0.1)
        for name, out, inp in (("attention.query_key_value", 3 * D, D), ("attention.dense", D, D),
                               ("mlp.dense_h_to_4h", F_, D), ("mlp.dense_4h_to_h", D, F_)):
            w[p + name + ".weight"] = rnd(out, inp, std=inp ** -0.5)
            w[p + name + ".bias"] = rnd(out, std=0.1)
    if lm:
        w["embed_out.weight"] = rnd(VOCAB, D, std=D ** -0.5)
    return w


def inputs(S, seed):
    """Row 0: S ids, unpadded. Row 1: 3 pads (id 0) then S - 3 ids, HF generate's positions."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, VOCAB, (2, S), generator=g)
    ids[1, :3] = 0
    mask = torch.ones(2, S, dtype=torch.int64)
    mask[1, :3] = 0
    pos = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    return ids, mask, pos


def write_model(name, cfg, weights):
    folder = os.path.join(REPO, "tests", "fixtures", "models", name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")
    write_safetensors(os.path.join(folder, "model.safetensors"),
                      {k: v.numpy().astype(np.float32) for k, v in weights.items()})
    return folder


def validate(golden):
    """The LLaMA reference against real transformers 4.43.4 outputs (pyvene golden)."""
    case = os.path.join(golden, "cases", "llama_block_output")
    with open(os.path.join(case, "experiment.json")) as f:
        exp = json.load(f)
    want, _ = read_safetensors(os.path.join(case, "expected.safetensors"))
    ref = LlamaFamilyRef(os.path.join(golden, "models", "llama-tiny"))
    ids = torch.tensor(exp["base"]["input_ids"])
    logits, _, _ = ref.forward(ids, torch.ones_like(ids), torch.arange(ids.shape[1])[None])
    diff = float(np.abs(logits.numpy() - want["original.logits"]).max())
    print("validate: llama-tiny original.logits max |diff| %.3g" % diff)
    return diff <= 1e-5


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--golden", default=os.path.join(REPO, "..", "shared", "golden"))
    ap.add_argument("--validate-only", action="store_true")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    if os.path.isdir(args.golden):
        if not validate(args.golden):
            sys.exit("the LLaMA reference disagrees with the transformers golden: nothing written")
    else:
        print("validate: %s not found, skipped" % args.golden)
    if args.validate_only:
        return
    for i, (name, (cfg, S, what)) in enumerate(sorted(MODELS.items())):
        g = torch.Generator().manual_seed(1000 + i)
        neox = cfg["model_type"] == "gpt_neox"
        folder = write_model(name, cfg, neox_weights(cfg, g) if neox else llama_weights(cfg, g))
        ref = NeoXRef(folder) if neox else LlamaFamilyRef(folder)
        ids, mask, pos = inputs(S, 2000 + i)
        logits, hidden, sites = ref.forward(ids, mask, pos)
        out = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "position_ids": pos.numpy(),
               "last_hidden_state": hidden.numpy()}
        if logits is not None:
            out["logits"] = logits.numpy()
        for k, v in sites.items():
            out[k] = v.numpy()
        path = os.path.join(REPO, "tests", "fixtures", "%s_ref.safetensors" % name)
        size = write_safetensors(path, out, {"model": name, "what": what})
        print("%-14s %3d sites, %6d bytes: %s" % (name, len(sites), size, what))


if __name__ == "__main__":
    main()
