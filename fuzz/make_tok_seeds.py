"""Seeds for fuzz_gguf and fuzz_tokenizer_json (called by make_seeds.py).

GGUF seeds are small hand-made vocabularies (the real ones are over the fuzzers' 64 KiB
-max_len): byte-level BPE under each pre-tokenizer name vene knows, and SentencePiece.
tokenizer.json seeds are the real Llama 3, Qwen2, Llama 2 and GPT-2 vocabularies of
tests/fixtures/tokenizer/ converted by tools/gguf_to_tokenizer_json.py and pruned to a few
strings, plus hand-made pipelines (Metaspace, NFC, splits, added tokens, configs).
"""
import importlib.util
import json
import os

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SEP = "\nVFSEP!!\n"
SP = "\u2581"


def converter():
    spec = importlib.util.spec_from_file_location("g2t", os.path.join(ROOT, "tools", "gguf_to_tokenizer_json.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def gguf_bytes(g2t, kv, types):
    path = os.path.join(HERE, "build", "seed.gguf")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    g2t.write_gguf(path, kv, types)
    data = open(path, "rb").read()
    os.remove(path)
    return data


def seeds_gguf(put):
    g2t = converter()
    alphabet = [g2t.CHAR_OF[b] for b in range(256)]
    extra = ["\u0120t", "he", "\u0120the", "ll", "\u0120w", "or", "\u0120wor", "ld", "\u0120world", "33", "333"]
    tokens = alphabet + extra + ["<|endoftext|>", "<|user|>"]
    merges = ["\u0120 t", "h e", "\u0120t he", "l l", "\u0120 w", "o r", "\u0120w or", "l d", "\u0120wor ld", "3 3",
              "33 3"]
    types = [1] * (len(tokens) - 2) + [3, 4]
    t = {"tokenizer.ggml.model": (8, None), "tokenizer.ggml.pre": (8, None), "tokenizer.ggml.tokens": (9, 8),
         "tokenizer.ggml.token_type": (9, 5), "tokenizer.ggml.merges": (9, 8),
         "tokenizer.ggml.eos_token_id": (4, None), "tokenizer.ggml.add_bos_token": (7, None)}
    for pre in ("gpt-2", "llama-bpe", "qwen2"):
        kv = {"tokenizer.ggml.model": "gpt2", "tokenizer.ggml.pre": pre, "tokenizer.ggml.tokens": tokens,
              "tokenizer.ggml.token_type": types, "tokenizer.ggml.merges": merges,
              "tokenizer.ggml.eos_token_id": len(tokens) - 2, "tokenizer.ggml.add_bos_token": pre == "llama-bpe"}
        put("fuzz_gguf", gguf_bytes(g2t, kv, t))
    spm = ["<unk>", "<s>", "</s>"] + ["<0x%02X>" % b for b in range(256)] + \
          [SP, "a", "b", SP + "a", "ab", SP + "ab", "\u00e9", SP + SP, "<user>"]
    kv = {"tokenizer.ggml.model": "llama", "tokenizer.ggml.tokens": spm,
          "tokenizer.ggml.token_type": [2, 3, 3] + [6] * 256 + [1] * 8 + [4],
          "tokenizer.ggml.scores": [0.0] * 259 + [-float(i) for i in range(9)],
          "tokenizer.ggml.add_space_prefix": True}
    t = {"tokenizer.ggml.model": (8, None), "tokenizer.ggml.tokens": (9, 8), "tokenizer.ggml.token_type": (9, 5),
         "tokenizer.ggml.scores": (9, 6), "tokenizer.ggml.add_space_prefix": (7, None)}
    put("fuzz_gguf", gguf_bytes(g2t, kv, t))
    # metadata only: every scalar type, an empty array, a string array
    kv = {"general.name": "x", "u8": 1, "i8": -1, "u16": 2, "i16": -2, "u32": 3, "i32": -3, "f32": 0.5, "b": True,
          "u64": 4, "i64": -4, "f64": 0.25, "empty": [], "strs": ["a", "", "bc"]}
    t = {"general.name": (8, None), "u8": (0, None), "i8": (1, None), "u16": (2, None), "i16": (3, None),
         "u32": (4, None), "i32": (5, None), "f32": (6, None), "b": (7, None), "u64": (10, None), "i64": (11, None),
         "f64": (12, None), "empty": (9, 4), "strs": (9, 8)}
    put("fuzz_gguf", gguf_bytes(g2t, kv, t))


def dense_ids(j):
    """Renumbers a pruned tokenizer.json's ids 0, 1, 2, ... (sparse ids up to 150k make
    every load allocate and walk the whole id range, which slows the fuzzer down)."""
    old = sorted(set(j["model"]["vocab"].values()) | {a["id"] for a in j["added_tokens"]})
    new = {o: n for n, o in enumerate(old)}
    j["model"]["vocab"] = {p: new[i] for p, i in j["model"]["vocab"].items()}
    for a in j["added_tokens"]:
        a["id"] = new[a["id"]]
    for st in ((j.get("post_processor") or {}).get("special_tokens") or {}).values():
        st["ids"] = [new[i] for i in st["ids"]]
    return j


def seeds_tokenizer_json(put):
    g2t = converter()
    fix = os.path.join(ROOT, "tests", "fixtures", "tokenizer")
    texts = ["Hello world", " this is 33 3333 I've", "\u043d\u0435\u0449\u043e \U0001F999 C\u1eeda", "\n \n\n\t"]
    inp = os.path.join(HERE, "build", "seed.inp")
    os.makedirs(os.path.dirname(inp), exist_ok=True)
    with open(inp, "w", encoding="utf-8") as f:
        f.write("".join(t + "\n__ggml_vocab_test__\n" for t in texts))
    for name in ("ggml-vocab-llama-bpe.gguf", "ggml-vocab-llama-spm.gguf", "qwen2.pruned.gguf", "gpt-2.pruned.gguf"):
        kv, _ = g2t.read_gguf(os.path.join(fix, name))
        j = dense_ids(g2t.convert(kv, g2t.pruner(kv, inp)))
        text = json.dumps(j, ensure_ascii=False, separators=(",", ":"))
        put("fuzz_tokenizer_json", text)
        if "llama-spm" in name:
            put("fuzz_tokenizer_json", text + SEP + '{"add_bos_token": false, "add_eos_token": true, '
                '"eos_token": {"content": "</s>"}}' + SEP + "Hello <s> world</s>")
    os.remove(inp)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    vocab.update({"<0x%02X>" % b: 3 + b for b in range(256)})
    vocab.update({SP: 259, "a": 260, "b": 261, SP + "a": 262, SP + "b": 263, "ab": 264, SP + "ab": 265, "\u00e9": 266})
    base = {"added_tokens": [{"id": 0, "content": "<unk>", "special": True}, {"id": 1, "content": "<s>", "special": True},
                             {"id": 267, "content": "<m>", "lstrip": True, "rstrip": True}],
            "model": {"type": "BPE", "unk_token": "<unk>", "fuse_unk": True, "byte_fallback": True, "vocab": vocab,
                      "merges": [SP + " a", SP + " b", "a b", SP + "a b"]}}
    variants = [
        ({"type": "Sequence", "normalizers": [{"type": "NFC"}, {"type": "Prepend", "prepend": SP},
                                              {"type": "Replace", "pattern": {"String": " "}, "content": SP}]},
         None, {"type": "Sequence", "decoders": [{"type": "Replace", "pattern": {"String": SP}, "content": " "},
                                                 {"type": "ByteFallback"}, {"type": "Fuse"},
                                                 {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}),
        (None, {"type": "Metaspace", "replacement": SP, "prepend_scheme": "first", "split": False},
         {"type": "Metaspace", "replacement": SP, "prepend_scheme": "first"}),
        (None, {"type": "Sequence", "pretokenizers": [
            {"type": "Metaspace", "replacement": SP, "prepend_scheme": "always", "split": True},
            {"type": "Digits", "individual_digits": True},
            {"type": "Split", "pattern": {"String": "-"}, "behavior": "Isolated", "invert": False}]}, None),
    ]
    for norm, pre, dec in variants:
        j = dict(base, normalizer=norm, pre_tokenizer=pre, decoder=dec,
                 post_processor={"type": "TemplateProcessing", "single": [
                     {"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                     "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}})
        put("fuzz_tokenizer_json", json.dumps(j, ensure_ascii=False) + SEP + "{}" + SEP + "ab <m> b-12 e\u0301")
