#!/usr/bin/python3
"""Converts a llama.cpp GGUF vocabulary to a Hugging Face tokenizer.json (python3 stdlib).

    gguf_to_tokenizer_json.py VOCAB.gguf OUT.tokenizer.json [--prune-for TEXTS.inp] [--gguf-out OUT.gguf]

Byte-level BPE vocabularies ("gpt2") become a BPE model with the Split + ByteLevel
pre-tokenizer that `tokenizer.ggml.pre` names (ignore_merges for Llama 3, the NFC
normalizer for Qwen2, as their own tokenizer.json files have). SentencePiece
vocabularies ("llama") become Llama 2's legacy tokenizer.json: Prepend("▁") and
Replace(" ", "▁") normalizers, a BPE model with byte_fallback whose merges are every
split of every piece into two pieces, ordered by the score of the whole piece (what
transformers' LlamaConverter does), and the Replace/ByteFallback/Fuse/Strip decoder.

--prune-for keeps only what encoding the strings of a llama.cpp test file can use: the
byte tokens, the special tokens, and every token whose text occurs in one of the
(normalized) strings, with the merges that make them. Any token built while encoding a
string is a substring of it, and a merge whose result is not can never apply, so the
ids of those strings are unchanged. Kept tokens keep their ids. --gguf-out also writes
the pruned vocabulary as a GGUF file (pruned ids become unused, empty tokens).

vene's tests use pruned outputs (tests/fixtures/tokenizer/, regenerate with
tools/make_tokenizer_fixtures.sh); unpruned, the output is a full tokenizer.json.
"""
import json
import struct
import sys

SPM_SPACE = "\u2581"
NORMAL, UNKNOWN, CONTROL, USER, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

PATTERN_GPT2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
PATTERN_LLAMA3 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
PATTERN_QWEN2 = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
# tokenizer.ggml.pre -> (pattern or None for ByteLevel's own, ignore_merges, add_bos, NFC)
PRE = {
    "gpt-2": (None, False, False, False),
    "llama-bpe": (PATTERN_LLAMA3, True, True, False),
    "llama3": (PATTERN_LLAMA3, True, True, False),
    "llama-v3": (PATTERN_LLAMA3, True, True, False),
    "qwen2": (PATTERN_QWEN2, False, False, True),
}

# ---------------------------------------------------------------- GGUF

SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


class Reader:
    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, fmt):
        fmt = "<" + fmt
        v = struct.unpack_from(fmt, self.data, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return v

    def string(self):
        n = self.take("Q")
        s = self.data[self.pos:self.pos + n]
        self.pos += n
        return s.decode("utf-8", "surrogateescape")

    def value(self, t):
        if t in SCALARS:
            return self.take(SCALARS[t])
        if t == 8:
            return self.string()
        if t == 9:
            et, n = self.take("I"), self.take("Q")
            if et == 9:
                raise ValueError("nested GGUF arrays")
            return et, [self.value(et) for _ in range(n)]
        raise ValueError("unknown GGUF type %d" % t)


def read_gguf(path):
    r = Reader(open(path, "rb").read())
    if r.data[:4] != b"GGUF":
        sys.exit("%s: not a GGUF file" % path)
    r.pos = 4
    version, _, n_kv = r.take("I"), r.take("Q"), r.take("Q")
    if version not in (2, 3):
        sys.exit("%s: GGUF version %d" % (path, version))
    kv, types = {}, {}  # types: key -> (type, element type of an array or None)
    for _ in range(n_kv):
        key = r.string()
        t = r.take("I")
        v = r.value(t)
        types[key] = (t, v[0] if t == 9 else None)
        kv[key] = v[1] if t == 9 else v
    return kv, types


def write_gguf(path, kv, types):
    out = [b"GGUF", struct.pack("<IQQ", 3, 0, len(kv))]

    def enc_str(s):
        b = s.encode("utf-8", "surrogateescape")
        return struct.pack("<Q", len(b)) + b

    def enc(t, v):
        if t in SCALARS:
            return struct.pack("<" + SCALARS[t], v)
        return enc_str(v)

    for key, v in kv.items():
        t, et = types[key]
        body = enc(t, v) if t != 9 else struct.pack("<IQ", et, len(v)) + b"".join(enc(et, x) for x in v)
        out.append(enc_str(key) + struct.pack("<I", t) + body)
    with open(path, "wb") as f:
        f.write(b"".join(out))


# ---------------------------------------------------------------- byte alphabet

def byte_alphabet():
    selfs = set(range(33, 127)) | set(range(161, 173)) | set(range(174, 256))
    char_of, shifted = {}, 0
    for b in range(256):
        if b in selfs:
            char_of[b] = chr(b)
        else:
            char_of[b] = chr(256 + shifted)
            shifted += 1
    return char_of


CHAR_OF = byte_alphabet()
BYTE_OF = {c: b for b, c in CHAR_OF.items()}


def piece_bytes(piece):
    """The bytes a byte-level piece stands for, or None when it is not alphabet text."""
    try:
        return bytes(BYTE_OF[c] for c in piece)
    except KeyError:
        return None


# ---------------------------------------------------------------- conversion

def spm_merges(tokens, scores, types, keep):
    ids = {p: i for i, p in enumerate(tokens) if keep(i)}
    merges = []
    for i, p in enumerate(tokens):
        if types[i] == BYTE or not keep(i):
            continue
        for k in range(1, len(p)):
            a, b = p[:k], p[k:]
            if a in ids and b in ids:
                merges.append((-scores[i], i, ids[a], ids[b], a, b))
    merges.sort()
    return [[m[4], m[5]] for m in merges]


def added_tokens(tokens, types):
    out = []
    for i, p in enumerate(tokens):
        if types[i] in (CONTROL, USER, UNKNOWN):
            out.append({"id": i, "content": p, "single_word": False, "lstrip": False, "rstrip": False,
                        "normalized": types[i] == USER, "special": types[i] != USER})
    return out


def template(bos, tokens):
    name = tokens[bos]
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": name, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": name, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": name, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {name: {"id": name, "ids": [bos], "tokens": [name]}}}


def convert(kv, keep):
    model = kv["tokenizer.ggml.model"]
    tokens = kv["tokenizer.ggml.tokens"]
    types = kv.get("tokenizer.ggml.token_type", [NORMAL] * len(tokens))
    bos = kv.get("tokenizer.ggml.bos_token_id")
    kept = [i for i in range(len(tokens)) if keep(i)]
    j = {"version": "1.0", "truncation": None, "padding": None,
         "added_tokens": [a for a in added_tokens(tokens, types) if keep(a["id"])]}
    if model == "gpt2":
        pre = kv.get("tokenizer.ggml.pre", "")
        if pre not in PRE:
            sys.exit("tokenizer.ggml.pre %r: not one this script knows (%s)" % (pre, ", ".join(PRE)))
        pattern, ignore_merges, add_bos, nfc = PRE[pre]
        add_bos = kv.get("tokenizer.ggml.add_bos_token", add_bos)
        bytelevel = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": pattern is None}
        j["normalizer"] = {"type": "NFC"} if nfc else None
        j["pre_tokenizer"] = bytelevel if pattern is None else {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}, bytelevel]}
        j["post_processor"] = template(bos, tokens) if add_bos and bos is not None else dict(bytelevel)
        j["decoder"] = dict(bytelevel)
        vocab = {tokens[i]: i for i in kept if types[i] in (NORMAL, BYTE)}
        merges = [m.split(" ", 1) for m in kv["tokenizer.ggml.merges"]]
        merges = [[a, b] for a, b in merges if a + b in vocab]
        j["model"] = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": ignore_merges, "vocab": vocab, "merges": merges}
    elif model == "llama":
        prefix = kv.get("tokenizer.ggml.add_space_prefix", True)
        add_bos = kv.get("tokenizer.ggml.add_bos_token", True)
        unk = kv.get("tokenizer.ggml.unknown_token_id", 0)
        norm = [{"type": "Replace", "pattern": {"String": " "}, "content": SPM_SPACE}]
        if prefix:
            norm.insert(0, {"type": "Prepend", "prepend": SPM_SPACE})
        j["normalizer"] = {"type": "Sequence", "normalizers": norm}
        j["pre_tokenizer"] = None
        j["post_processor"] = template(bos, tokens) if add_bos and bos is not None else None
        dec = [{"type": "Replace", "pattern": {"String": SPM_SPACE}, "content": " "},
               {"type": "ByteFallback"}, {"type": "Fuse"}]
        if prefix:
            dec.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
        j["decoder"] = {"type": "Sequence", "decoders": dec}
        vocab = {tokens[i]: i for i in kept}
        merges = spm_merges(tokens, kv["tokenizer.ggml.scores"], types, keep)
        j["model"] = {"type": "BPE", "dropout": None, "unk_token": tokens[unk], "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True,
                      "ignore_merges": False, "vocab": vocab, "merges": merges}
    else:
        sys.exit("tokenizer.ggml.model %r: only gpt2 and llama" % model)
    return j


def pruner(kv, inp_path):
    """keep(id) for the strings of a llama.cpp .inp file."""
    texts = open(inp_path, encoding="utf-8").read().split("\n__ggml_vocab_test__\n")
    tokens = kv["tokenizer.ggml.tokens"]
    types = kv.get("tokenizer.ggml.token_type", [NORMAL] * len(tokens))
    special = {kv.get("tokenizer.ggml." + k) for k in ("bos_token_id", "eos_token_id", "unknown_token_id")}
    if kv["tokenizer.ggml.model"] == "llama":
        hay = [SPM_SPACE + t.replace(" ", SPM_SPACE) for t in texts]
        text_of = lambda p: p
    else:
        hay = [t.encode("utf-8") for t in texts]
        text_of = piece_bytes
    keep = []
    for i, p in enumerate(tokens):
        if types[i] in (BYTE, CONTROL, UNKNOWN, USER) or i in special:
            keep.append(True)
            continue
        s = text_of(p)
        keep.append(s is not None and (len(s) == 1 or any(s in h for h in hay)))
    return lambda i: keep[i]


def pruned_gguf(kv, types, keep, path):
    tokens = kv["tokenizer.ggml.tokens"]
    kv = {k: v for k, v in kv.items() if k.startswith("tokenizer.ggml.") or k.startswith("general.")}
    # Empty pieces cost 8 bytes each and compress to almost nothing; llama.cpp (and vene)
    # name them "[EMPTY_<id>]".
    kv["tokenizer.ggml.tokens"] = [p if keep(i) else "" for i, p in enumerate(tokens)]
    if "tokenizer.ggml.token_type" in kv:
        kv["tokenizer.ggml.token_type"] = [t if keep(i) else UNUSED for i, t in enumerate(kv["tokenizer.ggml.token_type"])]
    if "tokenizer.ggml.scores" in kv:
        kv["tokenizer.ggml.scores"] = [s if keep(i) else -1e9 for i, s in enumerate(kv["tokenizer.ggml.scores"])]
    if "tokenizer.ggml.merges" in kv:
        kept = {p for i, p in enumerate(tokens) if keep(i)}
        kv["tokenizer.ggml.merges"] = [m for m in kv["tokenizer.ggml.merges"] if m.replace(" ", "", 1) in kept]
    write_gguf(path, kv, types)


def main(argv):
    args, opts = [], {}
    it = iter(argv)
    for a in it:
        if a in ("--prune-for", "--gguf-out"):
            opts[a] = next(it, None)
        else:
            args.append(a)
    if len(args) != 2 or None in opts.values():
        sys.exit(__doc__)
    kv, types = read_gguf(args[0])
    keep = pruner(kv, opts["--prune-for"]) if "--prune-for" in opts else (lambda i: True)
    with open(args[1], "w", encoding="utf-8", errors="surrogateescape") as f:
        json.dump(convert(kv, keep), f, ensure_ascii=False, indent=1)
        f.write("\n")
    if "--gguf-out" in opts:
        pruned_gguf(kv, types, keep, opts["--gguf-out"])


if __name__ == "__main__":
    main(sys.argv[1:])
