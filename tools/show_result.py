#!/usr/bin/env python3
"""Prints tensors of a `vene run` result file for the demo (standard library only).

  show_result.py RESULT.safetensors top NAME TOKENIZER_JSON [K] [WORD...]
      next-token top K (softmax of the last position of example 0), then the
      probability of each WORD
  show_result.py RESULT.safetensors attention NAME WORD...
      attention weights B x H x S x S of example 0: the last query position's weights
      over the key positions (labelled by the WORDs), one row per head
"""
import json
import math
import struct
import sys


def load(path, name):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
        if name not in header:
            sys.exit("show_result: %s has no tensor %s (has %s)" % (path, name, ", ".join(k for k in header if k != "__metadata__")))
        meta = header[name]
        if meta["dtype"] != "F32":
            sys.exit("show_result: %s is %s, expected F32" % (name, meta["dtype"]))
        start, end = meta["data_offsets"]
        f.seek(8 + n + start)
        data = f.read(end - start)
    values = struct.unpack("<%df" % (len(data) // 4), data)
    return meta["shape"], values


def top(path, name, tokenizer, k, words):
    shape, v = load(path, name)
    with open(tokenizer) as f:
        vocab = json.load(f)["model"]["vocab"]
    piece = {i: w for w, i in vocab.items()}
    V, S = shape[-1], shape[-2]
    row = v[(S - 1) * V:S * V]
    m = max(row)
    z = sum(math.exp(x - m) for x in row)
    p = [math.exp(x - m) / z for x in row]
    best = sorted(range(V), key=lambda i: -p[i])[:k]
    print("    " + "   ".join("%-10s %.3f" % (piece.get(i, "?"), p[i]) for i in best))
    for w in words:
        print("    p(%s) = %.4f" % (w, p[vocab[w]]))


def attention(path, name, words):
    shape, v = load(path, name)
    _, H, S, _ = shape
    print("    %-8s" % "" + "".join("%10s" % w for w in words[:S]))
    for h in range(H):
        row = v[(h * S + S - 1) * S:(h * S + S) * S]
        print("    head %-3d" % h + "".join("%10.2f" % x for x in row))


def main(argv):
    if len(argv) < 4 or argv[2] not in ("top", "attention"):
        sys.exit(__doc__)
    if argv[2] == "top":
        k = int(argv[5]) if len(argv) > 5 else 3
        top(argv[1], argv[3], argv[4], k, argv[6:])
    else:
        attention(argv[1], argv[3], argv[4:])


if __name__ == "__main__":
    main(sys.argv)
