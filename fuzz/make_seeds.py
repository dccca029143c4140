#!/usr/bin/env python3
"""Regenerate the seed corpora under fuzz/corpus/ from the repository's fixtures.

Run from anywhere: python3 fuzz/make_seeds.py. Seeds are named by content hash, so
rerunning only adds files. fuzz_intervenable_load's seeds come from `make -C fuzz seeds`
(the library itself saves them), which runs this script first.
"""
import glob
import hashlib
import json
import os
import struct

import make_tok_seeds

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")
MAX = 65536  # the fuzzers' -max_len


def put(target, data, name=None):
    if isinstance(data, str):
        data = data.encode("utf-8")
    if len(data) > MAX:
        return
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    name = name or hashlib.sha1(data).hexdigest()[:16]
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def rel(*p):
    return os.path.join(ROOT, *p)


# ---------------------------------------------------------------- safetensors

DT = {"F32": ("f", 4), "F64": ("d", 8), "I64": ("q", 8), "I32": ("i", 4), "I16": ("h", 2), "I8": ("b", 1),
      "U8": ("B", 1), "BOOL": ("?", 1), "F16": ("e", 2), "BF16": (None, 2)}


def st_read(path):
    """{name: (dtype, shape, values)} of a safetensors file."""
    raw = open(path, "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    hdr = json.loads(raw[8:8 + n])
    out = {}
    for k, v in hdr.items():
        if k == "__metadata__":
            continue
        b, e = v["data_offsets"]
        blob = raw[8 + n + b:8 + n + e]
        fmt, size = DT[v["dtype"]]
        if fmt is None:
            vals = [struct.unpack("<f", b"\0\0" + blob[i:i + 2])[0] for i in range(0, len(blob), 2)]
        else:
            vals = list(struct.unpack("<%d%s" % (len(blob) // size, fmt), blob))
        out[k] = (v["dtype"], v["shape"], vals)
    return out


def st_build(tensors, metadata=None, pad=True):
    """Bytes of a safetensors file from [(name, dtype, shape, raw bytes)]."""
    hdr, data = {}, b""
    if metadata is not None:
        hdr["__metadata__"] = metadata
    for name, dtype, shape, blob in tensors:
        hdr[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    h = json.dumps(hdr, separators=(",", ":")).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


def seeds_safetensors():
    files = glob.glob(rel("tests/fixtures/iv/*.safetensors")) + glob.glob(rel("tests/golden*/cases/*/inputs.safetensors"))
    for f in files:
        if os.path.getsize(f) <= MAX:
            put("fuzz_safetensors", open(f, "rb").read())
    put("fuzz_safetensors", st_build([]))
    put("fuzz_safetensors", st_build([], {"format": "pt"}))
    one = {"F32": struct.pack("<2f", 1.5, -2), "F16": struct.pack("<2e", 1.5, -2), "BF16": b"\xc0\x3f\x00\xc0",
           "F64": struct.pack("<2d", 1.5, -2), "I64": struct.pack("<2q", 7, -9), "I32": struct.pack("<2i", 7, -9),
           "I16": struct.pack("<2h", 7, -9), "I8": struct.pack("<2b", 7, -9), "U8": b"\x07\xf7", "BOOL": b"\x01\x00"}
    for dt, blob in one.items():
        put("fuzz_safetensors", st_build([("t", dt, [2], blob)]))
        put("fuzz_safetensors", st_build([("a", dt, [1, 2], blob), ("b", dt, [], blob[:len(blob) // 2])], {"k": "v"}))
    put("fuzz_safetensors", st_build([("empty", "F32", [0, 3], b""), ("s", "F32", [], struct.pack("<f", 3))]))
    put("fuzz_safetensors", st_build([("x", "F32", [2, 2], struct.pack("<4f", 1, 2, 3, 4))], pad=False))


# ---------------------------------------------------------------- tokenizer

def seeds_tokenizer():
    inp = rel("tests/fixtures/tokenizer/ggml-vocab-gpt-2.gguf.inp")
    if os.path.exists(inp):
        for s in open(inp, "rb").read().split(b"\n__ggml_vocab_test__\n"):
            if s:
                put("fuzz_tokenizer", s)
    for f in glob.glob(rel("tests/golden*/cases/*/experiment.json")):
        j = json.load(open(f))
        for side in [j.get("base")] + list(j.get("sources") or []):
            for t in (side or {}).get("text") or []:
                put("fuzz_tokenizer", t)
    for s in [b"", b"\xff\xfe invalid \xc3", b"\x00\x01\x02", "<|endoftext|>", "   leading and trailing   ",
              "tab\tnew\nline\r\n", "'s 't 're 've 'm 'll 'd", "\U0001F600 \u00e9\u0301 \u4e2d\u6587",
              "1234567890 3.14159"]:
        put("fuzz_tokenizer", s)


# ---------------------------------------------------------------- config.json

TINY = {"gpt2": {"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_layer": 1, "n_embd": 8, "n_head": 2,
                 "n_positions": 16, "vocab_size": 10, "n_inner": None, "activation_function": "gelu_new",
                 "layer_norm_epsilon": 1e-5},
        "gpt_neo": {"model_type": "gpt_neo", "architectures": ["GPTNeoForCausalLM"], "num_layers": 1, "hidden_size": 8,
                    "num_heads": 2, "max_position_embeddings": 16, "vocab_size": 10, "intermediate_size": 32,
                    "attention_types": [[["local"], 1]], "window_size": 2, "activation_function": "gelu_new"},
        "llama": {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "num_hidden_layers": 1, "hidden_size": 8,
                  "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 4, "intermediate_size": 16,
                  "vocab_size": 10, "max_position_embeddings": 16, "rms_norm_eps": 1e-6, "rope_theta": 10000.0,
                  "hidden_act": "silu", "tie_word_embeddings": False, "rope_scaling": None}}


def seeds_config_json():
    for f in glob.glob(rel("tests/fixtures/models/*/config.json")) + glob.glob(rel("tests/golden*/models/*/config.json")):
        put("fuzz_config_json", open(f, "rb").read())
    for name, c in TINY.items():
        put("fuzz_config_json", json.dumps(c, indent=1))
    g = dict(TINY["gpt2"], architectures=["GPT2Model"])
    put("fuzz_config_json", json.dumps(g))
    n = dict(TINY["gpt_neo"], attention_layers=["global"], tie_word_embeddings=False, architectures=["GPTNeoModel"])
    put("fuzz_config_json", json.dumps(n))
    for extra in [{"rope_scaling": {"rope_type": "linear", "factor": 2.0}}, {"attention_bias": True, "mlp_bias": True},
                  {"tie_word_embeddings": True}, {"architectures": ["LlamaModel"]}, {"head_dim": None}]:
        put("fuzz_config_json", json.dumps(dict(TINY["llama"], **extra)))


# ---------------------------------------------------------------- experiment

def tensor_json(dtype, shape, vals):
    return {"shape": shape, "data": [round(float(v), 5) for v in vals]}


def seeds_experiment():
    out = []
    for f in sorted(glob.glob(rel("tests/golden/cases/*/experiment.json"))):
        j = json.load(open(f))
        inputs = {}
        ip = os.path.join(os.path.dirname(f), "inputs.safetensors")
        if os.path.exists(ip):
            inputs = st_read(ip)
        s = {"config": j["config"], "unit_locations": j.get("unit_locations"), "subspaces": j.get("subspaces"),
             "seed": j.get("seed") or 0, "output_original": True}
        base = (j.get("base") or {}).get("input_ids")
        if base:
            s["base"] = base
            s["batch"] = len(base)
        srcs = j.get("sources") or []
        s["sources"] = [0 if x is None else 1 for x in srcs]
        for x in srcs:
            if x and x.get("input_ids"):
                s["source"] = x["input_ids"]
                break
        params = {}
        for k, name in (j.get("intervention_params") or {}).items():
            if name in inputs:
                params[k] = tensor_json(*inputs[name])
        if params:
            s["intervention_params"] = params
        sr = j.get("source_representations")
        n = len(j["config"]["representations"]) if isinstance(j["config"].get("representations"), list) else 1
        if isinstance(sr, str) and sr in inputs:
            s["source_representations"] = [tensor_json(*inputs[sr])] * n
        elif isinstance(sr, list):
            s["source_representations"] = [tensor_json(*inputs[x]) if x in inputs else None for x in sr]
        reps = j["config"].get("representations") or []
        for i, r in enumerate(reps if isinstance(reps, list) else [reps]):
            name = isinstance(r, dict) and r.get("source_representation")
            if name and name in inputs:
                s.setdefault("source_representations", [None] * n)[i] = tensor_json(*inputs[name])
        data = json.dumps(s, separators=(",", ":"))
        put("fuzz_experiment", data)
        out.append(s)
    # callbacks over a vanilla config, and a serial chain with a skipped group
    put("fuzz_experiment", json.dumps({"config": {"layer": 1, "component": "block_output"}, "callbacks": [0],
                                       "unit_locations": {"base": 2}, "batch": 2}))
    put("fuzz_experiment", json.dumps({"config": {"representations": [{"layer": 0, "component": "mlp_output",
                                                                         "group_key": 0},
                                                                        {"layer": 2, "component": "mlp_output",
                                                                         "group_key": 1}], "mode": "serial"},
                                       "sources": [1, 0],
                                       "unit_locations": {"source_0->source_1": [[[[1]]], [[[2]]]],
                                                          "source_1->base": [[[[2]]], [[[3]]]]}}))
    return out


def seeds_experiment_file():
    """The golden experiment files as written, plus their inputs.safetensors after the separator."""
    for f in sorted(glob.glob(rel("tests/golden/cases/*/experiment.json"))):
        data = open(f, "rb").read()
        ip = os.path.join(os.path.dirname(f), "inputs.safetensors")
        if os.path.exists(ip):
            data += b"\nVFSEP!!\n" + open(ip, "rb").read()
        put("fuzz_experiment_file", data)


def bytes_to_unicode():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, [chr(c) for c in cs]))


def seeds_tokenizer_files():
    """Small byte-level BPE tokenizers: the 256 byte pieces plus a few merges, as a
    tokenizer.json and as vocab.json + merges.txt."""
    b2u = bytes_to_unicode()
    vocab = {b2u[b]: i for i, b in enumerate(range(256))}
    merges = []
    for a, b in [("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("l", "l"), ("o", "r"), ("Ġ", "w"), ("Ġw", "or"),
                 ("ll", "o"), ("H", "e"), ("He", "llo")]:
        if a + b not in vocab:
            vocab[a + b] = len(vocab)
        merges.append(a + " " + b)
    tj = {"version": "1.0", "added_tokens": [{"id": len(vocab), "content": "<|endoftext|>", "special": True}],
          "normalizer": None, "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                                                "use_regex": True},
          "post_processor": None, "decoder": {"type": "ByteLevel"},
          "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                    "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "vocab": vocab,
                    "merges": merges}}
    put("fuzz_tokenizer_files", json.dumps(tj, ensure_ascii=False))
    tj2 = json.loads(json.dumps(tj))
    tj2["model"]["merges"] = [m.split(" ") for m in merges]
    put("fuzz_tokenizer_files", json.dumps(tj2))
    put("fuzz_tokenizer_files", json.dumps(vocab, ensure_ascii=False) + "\nVFSEP!!\n#version: 0.2\n" + "\n".join(merges) + "\n")
    small = {k: v for k, v in vocab.items() if v < 40}
    put("fuzz_tokenizer_files", json.dumps(small) + "\nVFSEP!!\n#version: 0.2\n")


def main():
    seeds_safetensors()
    seeds_tokenizer()
    seeds_config_json()
    seeds_experiment()
    seeds_experiment_file()
    seeds_tokenizer_files()
    make_tok_seeds.seeds_gguf(put)
    make_tok_seeds.seeds_tokenizer_json(put)
    for t in sorted(os.listdir(CORPUS)):
        print("%-26s %d seeds" % (t, len(os.listdir(os.path.join(CORPUS, t)))))


if __name__ == "__main__":
    main()
