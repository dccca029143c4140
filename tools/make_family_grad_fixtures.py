#!/usr/bin/env python3
"""Plain-PyTorch autograd reference for the GRADIENTS of LLaMA-family and GPT-NeoX
models; writes tests/fixtures/family_grad/<model>.safetensors for
tests/test_grad_family_ref.c.

Developer tool only (the outputs are committed).  Needs torch and numpy, e.g. Debian's
`/usr/bin/python3` (torch 1.13); no transformers.

    /usr/bin/python3 tools/make_family_grad_fixtures.py

The models are the fixture folders of tools/make_family_fixtures.py and the forwards
are tools/family_ref.py's (both imported, not copied), run with autograd on: every
weight is a leaf that requires grad and the recorded hook-site tensors retain their
gradient.  The inputs are make_family_fixtures.py's (row 1 left-padded by 3, HF
generate's position ids).  The loss is

    L = sum(R1 * logits) + sum(R2 * last_hidden_state)

with fixed random R1 (dense [B,S,V]; none for bare models) and R2 stored in the file,
so the C side calls vene_backward(d_logits = R1, d_hidden = R2).  Autograd follows HF's
masking literally, padding queries included (their scores are finfo.min in value, yet
the additive mask passes the gradient on).

Site gradients are stored only where torch's .grad of the recorded tensor is what a
vene backward hook sees there: the gradient with respect to the tensor as that hook saw
it.  Where one tensor feeds several modules with hooks in between (q_proj / k_proj /
v_proj inputs, gate_proj / up_proj inputs, NeoX's parallel post_attention_layernorm
input) torch's .grad is the total, vene's hook the share from that point on.

Each file holds input_ids, attention_mask, position_ids (I64 [B,S]), d_hidden, d_logits
(LM classes), param.<name> for every weight (names without the class prefix) and the
site gradients under their module paths.
"""
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import family_ref                                                   # noqa: E402
from make_family_fixtures import MODELS, REPO, inputs               # noqa: E402
from make_fixtures import Recorder, write_safetensors, read_safetensors  # noqa: E402
from make_grad_fixtures import GradRecorder                          # noqa: E402  (keeps live tensors)

SEED = 20240612
LLAMA_SITES = ["embed_tokens.output", "layers[0].input", "layers[0].self_attn.input",
               "layers[0].self_attn.q_proj.output", "layers[0].self_attn.k_proj.output",
               "layers[0].self_attn.v_proj.output", "layers[0].self_attn.o_proj.input",
               "layers[0].mlp.input", "layers[0].mlp.act_fn.output", "layers[0].mlp.up_proj.output",
               "layers[1].post_attention_layernorm.input", "layers[1].mlp.gate_proj.output",
               "layers[1].output", "norm.input", "norm.output"]
NEOX_SITES = ["embed_in.output", "layers[0].input", "layers[0].attention.query_key_value.output",
              "layers[0].attention.attention_dropout.output", "layers[0].attention.dense.input",
              "layers[0].mlp.input", "layers[1].attention.output", "layers[1].mlp.act.output",
              "layers[1].mlp.dense_4h_to_h.output", "layers[1].output", "final_layer_norm.input",
              "final_layer_norm.output"]
# name -> the models of make_family_fixtures.py used here
CASES = ["mistral-tiny", "gemma-tiny", "pythia-tiny"]


def run_case(name, index):
    cfg, S, what = MODELS[name]
    folder = os.path.join(REPO, "tests", "fixtures", "models", name)
    neox = cfg["model_type"] == "gpt_neox"
    ref = family_ref.NeoXRef(folder) if neox else family_ref.LlamaFamilyRef(folder)
    for p in ref.w.values():
        p.requires_grad_(True)          # a tied head is the embedding tensor itself
    # the same inputs as the forward fixture (make_family_fixtures.py seeds by sorted index)
    ids, mask, pos = inputs(S, 2000 + sorted(MODELS).index(name))
    fwd_ref, _ = read_safetensors(os.path.join(REPO, "tests", "fixtures", name + "_ref.safetensors"))
    assert np.array_equal(fwd_ref["input_ids"], ids.numpy()), "inputs differ from the forward fixture's"
    family_ref.Recorder = GradRecorder  # family_ref's forwards make their own recorder
    forward = type(ref).forward.__wrapped__   # without the torch.no_grad decorator
    logits, hidden, sites = forward(ref, ids, mask, pos)
    gen = torch.Generator().manual_seed(SEED + index)
    r2 = torch.randn(hidden.shape, generator=gen)
    loss = (r2 * hidden).sum()
    out = {"input_ids": ids.numpy(), "attention_mask": mask.numpy(), "position_ids": pos.numpy(),
           "d_hidden": r2.numpy()}
    if logits is not None:
        r1 = torch.randn(logits.shape, generator=gen)
        loss = loss + (r1 * logits).sum()
        out["d_logits"] = r1.numpy()
    loss.backward()
    names = NEOX_SITES if neox else LLAMA_SITES
    if ref.lm:
        names = names + (["embed_out.input"] if neox else ["lm_head.input"])
    for n in names:
        g = sites[n].grad
        assert g is not None and torch.isfinite(g).all(), n
        out[n] = g.numpy().copy()
    for n, p in ref.w.items():
        assert p.grad is not None and torch.isfinite(p.grad).all(), n
        out["param." + n] = p.grad.numpy().copy()
    family_ref.Recorder = Recorder
    meta = {"model": name, "what": what, "loss": "sum(d_logits * logits) + sum(d_hidden * last_hidden_state)",
            "reference": "tools/make_family_grad_fixtures.py: autograd through tools/family_ref.py, float32"}
    return out, meta


def main():
    torch.set_num_threads(1)            # identical bits on every run
    out_dir = os.path.join(REPO, "tests", "fixtures", "family_grad")
    os.makedirs(out_dir, exist_ok=True)
    total = 0
    for i, name in enumerate(CASES):
        tensors, meta = run_case(name, i)
        path = os.path.join(out_dir, name + ".safetensors")
        size = write_safetensors(path, tensors, meta)
        back, _ = read_safetensors(path)
        assert sorted(back) == sorted(tensors) and all(np.array_equal(back[k], tensors[k]) for k in tensors)
        total += size
        print("%-13s %3d tensors, %7d bytes" % (name, len(tensors), size))
    print("total %d bytes" % total)


if __name__ == "__main__":
    main()
