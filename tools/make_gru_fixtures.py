#!/usr/bin/python3
"""Writes the fixtures of tests/test_gru.c.

  tests/fixtures/gru/gru-emb3/            a second GRUForClassification folder: include_emb
      true (wte 20 x 8, wpe 16 x 8), include_bias false, 3 cells of width 8, 3 labels;
      deterministic weights (torch.Generator seed 7).
  tests/fixtures/gru_ref.safetensors      inputs and outputs of an independent plain-PyTorch
      GRUForClassification forward (float32, eval), optionally with in-place edits at hook
      sites at given time steps, for the golden gru-classifier (cases "a_*") and for
      gru-emb3 (cases "b_*"). Per case <c>: <c>.x (inputs_embeds) or <c>.ids / <c>.positions
      (I64), optional <c>.mask (I64), and the expected <c>.logits (B x labels) and
      <c>.hidden (B x S x h_dim: the stacked top-layer states).

The reference mirrors pyvene/models/gru/modelings_gru.py: h0 = 0; at step t layer 0 reads
inputs_embeds[:, t] and layer l > 0 reads the state layer l-1 produced at this step; the
cell is r = sigmoid(a_r + c_r), z = sigmoid(a_z + c_z), n = tanh(a_n + r * c_n),
h' = z * h + (1 - z) * n with a = x2h(x), c = h2h(h); top states stacked after the loop;
logits = score(stack[b, sum(mask[b]) - 1]). Edits are applied in place to the very tensor
objects PyTorch's hooks would see (so an edit of a cell input at layer l > 0 changes the
state of layer l-1, and an edit of h2h's input changes the previous state of that layer).

Before writing, it checks the reference against the golden cases t101_gru_*_intended
(original and intervened logits, <= 1e-5) and writes nothing on a mismatch.

Usage: /usr/bin/python3 tools/make_gru_fixtures.py [GOLDEN_ROOT]
(GOLDEN_ROOT defaults to tests/golden; tested with Debian's python3-torch 1.13 and
numpy 1.24; needs no safetensors package)."""
import json
import os
import struct
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
TESTS = os.path.join(HERE, "..", "tests")
DT = {"F32": np.float32, "F64": np.float64, "I64": np.int64, "I32": np.int32}


def load_safetensors(path):
    with open(path, "rb") as f:
        raw = f.read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            continue
        a, b = e["data_offsets"]
        out[name] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=DT[e["dtype"]]).reshape(e["shape"]).copy()
    return out


def save_safetensors(path, tensors):
    header, blobs, at = {}, [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        dtype = {np.dtype("float32"): "F32", np.dtype("int64"): "I64"}[arr.dtype]
        raw = arr.astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": list(arr.shape), "data_offsets": [at, at + len(raw)]}
        blobs.append(raw)
        at += len(raw)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))


class Gru:
    """GRUForClassification weights from a state dict ("gru." prefix, score.weight)."""

    def __init__(self, sd, cfg):
        t = {k: torch.from_numpy(v) for k, v in sd.items()}
        self.L, self.D = cfg["n_layer"], cfg["h_dim"]
        self.wte, self.wpe = t.get("gru.wte.weight"), t.get("gru.wpe.weight")
        self.cells = [(t["gru.cells.%d.x2h.weight" % l], t.get("gru.cells.%d.x2h.bias" % l),
                       t["gru.cells.%d.h2h.weight" % l], t.get("gru.cells.%d.h2h.bias" % l)) for l in range(self.L)]
        self.score = t["score.weight"]

    def forward(self, x=None, ids=None, positions=None, mask=None, edit=None):
        """edit(site, layer, t, tensor) may change tensor in place; site names are the
        module paths ("cells", "x2h_in", "x2h", "h2h_in", "h2h", "new_act", ...)."""
        edit = edit or (lambda *a: None)
        with torch.no_grad():
            emb = torch.from_numpy(x).clone() if x is not None else self.wte[torch.from_numpy(ids)]
            if positions is not None:
                emb += self.wpe[torch.from_numpy(positions)]
            B, S, D = emb.shape
            h0 = torch.zeros(self.L, B, D)
            state = [h0[l, :, :] for l in range(self.L)]
            outs = []
            for t in range(S):
                for l in range(self.L):
                    wx, bx, wh, bh = self.cells[l]
                    inp = emb[:, t, :] if l == 0 else state[l - 1]
                    h = state[l]
                    edit("cells_in", l, t, inp)
                    a = torch.nn.functional.linear(inp, wx, bx)
                    edit("x2h", l, t, a)
                    edit("h2h_in", l, t, h)
                    c = torch.nn.functional.linear(h, wh, bh)
                    edit("h2h", l, t, c)
                    ar, az, an = a.chunk(3, 1)
                    cr, cz, cn = c.chunk(3, 1)
                    r_in = ar + cr
                    edit("reset_act_in", l, t, r_in)
                    r = torch.sigmoid(r_in)
                    edit("reset_act", l, t, r)
                    z_in = az + cz
                    z = torch.sigmoid(z_in)
                    n_in = an + r * cn
                    n = torch.tanh(n_in)
                    edit("new_act", l, t, n)
                    hy = z * h + (1 - z) * n
                    edit("cells", l, t, hy)
                    state[l] = hy
                outs.append(state[self.L - 1])
            hidden = torch.stack(outs, dim=1)
            if mask is None:
                idx = torch.full((B,), S - 1, dtype=torch.long)
            else:
                idx = torch.from_numpy(mask).sum(-1).long() - 1
            pooled = hidden[torch.arange(B), idx]
            logits = torch.nn.functional.linear(pooled, self.score)
            return logits.numpy().copy(), hidden.numpy().copy()


def load_model(folder):
    with open(os.path.join(folder, "config.json")) as f:
        cfg = json.load(f)
    return Gru(load_safetensors(os.path.join(folder, "model.safetensors")), cfg)


def validate(golden):
    """Original and intended intervened logits of the two golden cases."""
    m = load_model(os.path.join(golden, "models", "gru-classifier"))
    worst = 0.0
    for case in ["t101_gru_zero_t3_intended", "t101_gru_interchange_6_3_intended"]:
        d = os.path.join(golden, "cases", case)
        inp = load_safetensors(os.path.join(d, "inputs.safetensors"))
        exp = load_safetensors(os.path.join(d, "expected.safetensors"))
        orig, _ = m.forward(inp["gru_base"])
        if case.startswith("t101_gru_zero"):
            def edit(site, l, t, v):
                if site == "cells" and l == 0 and t == 3:
                    v.zero_()
        else:
            saved = {}

            def grab(site, l, t, v):
                if site == "cells" and l == 0 and t == 6:
                    saved["s"] = v.clone()
            m.forward(inp["gru_source"], edit=grab)

            def edit(site, l, t, v):
                if site == "cells" and l == 0 and t == 3:
                    v.copy_(saved["s"])
        iv, _ = m.forward(inp["gru_base"], edit=edit)
        for name, got in [("original.logits", orig), ("intervened.logits", iv)]:
            diff = float(np.abs(got - exp[name]).max())
            worst = max(worst, diff)
            print("%-36s %-18s max diff %.3g" % (case, name, diff))
    return worst


def make_emb3(folder):
    cfg = {"architectures": ["GRUForClassification"], "h_dim": 8, "include_bias": False, "include_emb": True,
           "initializer_range": 0.02, "max_position_embeddings": 16, "model_type": "gru", "n_labels": 3,
           "n_layer": 3, "pdrop": 0.3, "torch_dtype": "float32", "vocab_size": 20}
    g = torch.Generator().manual_seed(7)
    D = cfg["h_dim"]
    sd = {"gru.wte.weight": torch.randn(20, D, generator=g), "gru.wpe.weight": torch.randn(16, D, generator=g)}
    for l in range(cfg["n_layer"]):
        for name in ["x2h", "h2h"]:
            sd["gru.cells.%d.%s.weight" % (l, name)] = (torch.rand(3 * D, D, generator=g) * 2 - 1) * 0.9
    sd["score.weight"] = torch.randn(3, D, generator=g)
    sd = {k: v.numpy().astype(np.float32) for k, v in sorted(sd.items())}
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)
        f.write("\n")
    save_safetensors(os.path.join(folder, "model.safetensors"), sd)
    return Gru(sd, cfg)


def main():
    golden = sys.argv[1] if len(sys.argv) > 1 else os.path.join(TESTS, "golden")
    torch.set_num_threads(1)
    worst = validate(golden)
    if worst > 1e-5:
        print("reference disagrees with the golden cases (max diff %.3g): nothing written" % worst)
        return 1
    out = {}

    def case(name, model, x=None, ids=None, positions=None, mask=None, edit=None):
        logits, hidden = model.forward(x=x, ids=ids, positions=positions, mask=mask, edit=edit)
        if x is not None:
            out[name + ".x"] = x
        if ids is not None:
            out[name + ".ids"] = ids
        if positions is not None:
            out[name + ".positions"] = positions
        if mask is not None:
            out[name + ".mask"] = mask
        out[name + ".logits"] = logits
        out[name + ".hidden"] = hidden

    a = load_model(os.path.join(golden, "models", "gru-classifier"))
    g = torch.Generator().manual_seed(20240601)
    xa = torch.randn(3, 7, 32, generator=g).numpy()
    base = load_safetensors(os.path.join(golden, "cases", "t101_gru_zero_t3_intended", "inputs.safetensors"))
    case("a_b1", a, x=base["gru_base"])
    case("a_b3", a, x=xa)
    case("a_b3_mask", a, x=xa, mask=np.array([[1] * 7, [1, 1, 1, 1, 0, 0, 0], [0] * 7], dtype=np.int64))

    def zero_row1(site, l, t, v):        # cells[0] output, step 3, example 1 only
        if site == "cells" and l == 0 and t == 3:
            v[1].zero_()
    case("a_b3_zero_l0_t3_row1", a, x=xa, edit=zero_row1)

    def scale_in1(site, l, t, v):        # cells[1] input at step 2 = layer-0 state (in place)
        if site == "cells_in" and l == 1 and t == 2:
            v.mul_(2.0)
    case("a_b3_scale_in1_t2", a, x=xa, edit=scale_in1)

    def reset_x2h(site, l, t, v):        # x2h output of cells[1], reset third, step 4
        if site == "x2h" and l == 1 and t == 4:
            v[:, 0:32].add_(0.5)
    case("a_b3_reset_x2h_l1_t4", a, x=xa, edit=reset_x2h)

    def neg_h2h_in(site, l, t, v):       # h2h input of the top cell at step 5 = top state of step 4
        if site == "h2h_in" and l == 1 and t == 5:
            v.neg_()
    case("a_b3_neg_h2h_in_l1_t5", a, x=xa, edit=neg_h2h_in)

    def new_act0(site, l, t, v):         # new_act output of cells[0] at step 1
        if site == "new_act" and l == 0 and t == 1:
            v.zero_()
    case("a_b3_new_act_l0_t1", a, x=xa, edit=new_act0)

    b = make_emb3(os.path.join(TESTS, "fixtures", "gru", "gru-emb3"))
    ids = torch.randint(0, 20, (2, 6), generator=g).numpy().astype(np.int64)
    case("b_ids", b, ids=ids)
    case("b_ids_pos", b, ids=ids, positions=np.array([[0, 1, 2, 3, 4, 5], [3, 3, 0, 15, 2, 1]], dtype=np.int64))
    case("b_embeds", b, x=torch.randn(2, 5, 8, generator=g).numpy())
    save_safetensors(os.path.join(TESTS, "fixtures", "gru_ref.safetensors"), out)
    print("wrote %d tensors to tests/fixtures/gru_ref.safetensors and tests/fixtures/gru/gru-emb3/" % len(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
