#!/usr/bin/env python3
"""Independent plain-PyTorch reference for the GPT-2 forward; writes test fixtures.

Developer tool only: no test depends on it.  It needs torch and numpy, e.g. Debian's
`/usr/bin/python3` (torch 1.13), and nothing else (no transformers, no safetensors
package, no network).

    /usr/bin/python3 tools/make_fixtures.py --validate
    /usr/bin/python3 tools/make_fixtures.py [--out-dir tests/fixtures]
                                            [--model tests/fixtures/models/gpt2-tiny]
                                            [--validate] [--validate-only]
                                            [--golden ../shared/golden]

What it reproduces: Hugging Face transformers 4.43 `GPT2LMHeadModel` with eager
attention, in eval mode, in float32:

  h0 = drop(wte(ids) + wpe(position_ids))           position_ids default: arange(S)
  per block:  a = attn(ln_1(x)); x = a + x; m = mlp(ln_2(x)); x = x + m
    attn:  qkv = c_attn(.) (Conv1D: x @ W[in,out] + b, via addmm); q,k,v = thirds;
           split heads [B,H,S,hd]; s = q k^T / sqrt(hd);
           s = where(causal, s, finfo(f32).min);  s = s + (1 - mask)[:,None,None,:] * finfo.min
           p = softmax(s, -1) (float32); attn_dropout(p) = p; o = p @ v; merge heads;
           c_proj; resid_dropout = identity
    mlp:   c_fc -> gelu_new (tanh approximation) -> c_proj -> dropout = identity
  ln_f; logits = ln_f(h) @ wte^T (tied lm_head, no bias)

Every hook site (module input ".input" = the module's first positional argument, module
output ".output" = the output, or its first element when the module returns a tuple) is
recorded in execution order under pyvene's module-path names (`h[2].attn.c_proj.input`).
See tools/README.md for the fixture layout.
"""
import argparse
import collections
import json
import math
import os
import struct
import sys

try:
    import numpy as np
    import torch
except ImportError as e:                              # pragma: no cover
    sys.exit("make_fixtures.py needs torch and numpy (%s); try /usr/bin/python3" % e)

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# ----------------------------------------------------------------------------------------
# safetensors: a minimal reader and writer
# ----------------------------------------------------------------------------------------

_NP_OF = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4",
          "I16": "<i2", "I8": "i1", "U8": "u1", "BOOL": "?"}
_ST_OF = {np.dtype("<f8"): "F64", np.dtype("<f4"): "F32", np.dtype("<f2"): "F16",
          np.dtype("<i8"): "I64", np.dtype("<i4"): "I32", np.dtype("<i2"): "I16",
          np.dtype("i1"): "I8", np.dtype("u1"): "U8", np.dtype("?"): "BOOL"}


def read_safetensors(path):
    """Returns (dict name -> numpy array, metadata dict).  BF16 is widened to float32."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError("%s: too short for a safetensors file" % path)
    (n,) = struct.unpack("<Q", blob[:8])
    if 8 + n > len(blob):
        raise ValueError("%s: header length %d past end of file" % (path, n))
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    meta = header.pop("__metadata__", None) or {}
    data = memoryview(blob)[8 + n:]
    out = {}
    for name, info in header.items():
        dt, shape = info["dtype"], [int(d) for d in info["shape"]]
        b, e = (int(x) for x in info["data_offsets"])
        if not (0 <= b <= e <= len(data)):
            raise ValueError("%s: tensor %s has bad offsets %r" % (path, name, (b, e)))
        count = int(np.prod(shape, dtype=np.int64))
        if dt == "BF16":
            raw = np.frombuffer(data[b:e], dtype="<u2", count=count)
            arr = (raw.astype(np.uint32) << 16).view(np.float32)
        elif dt in _NP_OF:
            arr = np.frombuffer(data[b:e], dtype=_NP_OF[dt], count=count)
        else:
            raise ValueError("%s: tensor %s has unsupported dtype %s" % (path, name, dt))
        if arr.nbytes != e - b:
            raise ValueError("%s: tensor %s size mismatch" % (path, name))
        out[name] = arr.reshape(shape).copy()
    return out, meta


def write_safetensors(path, tensors, metadata=None):
    """Writes {name: numpy array} with tensors in name order, header space-padded to 8."""
    names = sorted(tensors)
    header = collections.OrderedDict()
    if metadata:
        header["__metadata__"] = collections.OrderedDict(
            (str(k), str(v)) for k, v in sorted(metadata.items()))
    chunks, off = [], 0
    for name in names:
        arr = np.ascontiguousarray(tensors[name])
        dt = arr.dtype.newbyteorder("<") if arr.dtype.byteorder == ">" else arr.dtype
        if dt not in _ST_OF:
            raise ValueError("tensor %s: unsupported dtype %s" % (name, arr.dtype))
        raw = arr.astype(dt.newbyteorder("<"), copy=False).tobytes(order="C")
        header[name] = collections.OrderedDict(
            [("dtype", _ST_OF[dt]), ("shape", list(arr.shape)),
             ("data_offsets", [off, off + len(raw)])])
        chunks.append(raw)
        off += len(raw)
    hj = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hj += b" " * ((-len(hj)) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(hj)))
        f.write(hj)
        for c in chunks:
            f.write(c)
    os.replace(tmp, path)
    return 8 + len(hj) + off


# ----------------------------------------------------------------------------------------
# The model
# ----------------------------------------------------------------------------------------

F32_MIN = torch.finfo(torch.float32).min


class Recorder:
    """Keeps a copy of every hook-site tensor, in the order the hooks would fire."""

    def __init__(self):
        self.sites = collections.OrderedDict()

    def __call__(self, name, t):
        if name in self.sites:
            raise RuntimeError("hook site recorded twice: " + name)
        self.sites[name] = t.detach().clone()
        return t


class GPT2Ref:
    def __init__(self, model_dir):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        self.cfg = cfg
        if cfg.get("model_type") != "gpt2":
            raise ValueError("not a gpt2 config: %r" % cfg.get("model_type"))
        self.n_layer = int(cfg["n_layer"])
        self.n_head = int(cfg["n_head"])
        self.n_embd = int(cfg["n_embd"])
        self.n_inner = int(cfg.get("n_inner") or 4 * self.n_embd)
        self.n_pos = int(cfg["n_positions"])
        self.vocab = int(cfg["vocab_size"])
        self.eps = float(cfg["layer_norm_epsilon"])
        act = cfg.get("activation_function", "gelu_new")
        if act != "gelu_new":
            raise ValueError("this reference implements gelu_new only, got %s" % act)
        for flag, want in (("scale_attn_weights", True), ("scale_attn_by_inverse_layer_idx", False),
                           ("reorder_and_upcast_attn", False)):
            if bool(cfg.get(flag, want)) != want:
                raise ValueError("unsupported config %s=%r" % (flag, cfg.get(flag)))
        raw, _ = read_safetensors(os.path.join(model_dir, "model.safetensors"))
        w = {}
        for k, v in raw.items():
            if k.startswith("transformer."):
                k = k[len("transformer."):]
            w[k] = torch.from_numpy(v.astype(np.float32))
        self.w = w
        self.tied = "lm_head.weight" not in w
        self.lm_head = w["wte.weight"] if self.tied else w["lm_head.weight"]
        self.head_dim = self.n_embd // self.n_head
        self.causal = torch.tril(torch.ones(self.n_pos, self.n_pos, dtype=torch.bool))

    # -- modules ---------------------------------------------------------------------
    @staticmethod
    def conv1d(x, weight, bias):
        # transformers.pytorch_utils.Conv1D.forward
        size_out = x.size()[:-1] + (weight.size(1),)
        return torch.addmm(bias, x.reshape(-1, x.size(-1)), weight).view(size_out)

    def layer_norm(self, x, prefix):
        return torch.nn.functional.layer_norm(
            x, (self.n_embd,), self.w[prefix + ".weight"], self.w[prefix + ".bias"], self.eps)

    @staticmethod
    def gelu_new(x):
        # transformers.activations.NewGELUActivation
        return 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))

    def split_heads(self, x):
        B, S, _ = x.shape
        return x.view(B, S, self.n_head, self.head_dim).permute(0, 2, 1, 3)

    def merge_heads(self, x):
        B, H, S, hd = x.shape
        return x.permute(0, 2, 1, 3).contiguous().view(B, S, H * hd)

    # -- forward ---------------------------------------------------------------------
    @torch.no_grad()
    def forward(self, input_ids, attention_mask=None, position_ids=None, rec=None):
        """input_ids, attention_mask, position_ids: int64 [B,S] tensors (mask/positions
        optional).  Returns (logits [B,S,V], last_hidden_state [B,S,D], sites)."""
        rec = rec or Recorder()
        w = self.w
        B, S = input_ids.shape
        if S > self.n_pos:
            raise ValueError("sequence longer than n_positions")
        if position_ids is None:
            # HF: arange(S).unsqueeze(0) -- NOT derived from the attention mask.  (The
            # hook on wpe then sees [1,S,D]; we record it expanded to [B,S,D].)
            position_ids = torch.arange(S, dtype=torch.long).unsqueeze(0).expand(B, S)
        ext_mask = None
        if attention_mask is not None:
            m = attention_mask.view(B, -1)[:, None, None, :].to(torch.float32)
            ext_mask = (1.0 - m) * F32_MIN      # 0 (actually -0.0) where kept, finfo.min where padded

        tok = rec("wte.output", torch.nn.functional.embedding(input_ids, w["wte.weight"]))
        pos = rec("wpe.output", torch.nn.functional.embedding(position_ids, w["wpe.weight"]))
        x = tok + pos
        rec("drop.input", x)
        x = rec("drop.output", x)                          # dropout: identity in eval

        scale = torch.full([], self.head_dim ** 0.5, dtype=torch.float32)
        causal = self.causal[:S, :S]
        for l in range(self.n_layer):
            p = "h.%d." % l
            n = "h[%d]." % l
            rec(n + "input", x)
            residual = x
            rec(n + "ln_1.input", x)
            y = rec(n + "ln_1.output", self.layer_norm(x, p + "ln_1"))
            # attention
            rec(n + "attn.input", y)
            rec(n + "attn.c_attn.input", y)
            qkv = rec(n + "attn.c_attn.output",
                      self.conv1d(y, w[p + "attn.c_attn.weight"], w[p + "attn.c_attn.bias"]))
            q, k, v = qkv.split(self.n_embd, dim=2)
            q, k, v = self.split_heads(q), self.split_heads(k), self.split_heads(v)
            s = torch.matmul(q, k.transpose(-1, -2)) / scale
            s = torch.where(causal, s, torch.full([], F32_MIN, dtype=torch.float32))
            if ext_mask is not None:
                s = s + ext_mask     # finfo.min + finfo.min = -inf (masked by both)
            probs = torch.softmax(s, dim=-1)
            rec(n + "attn.attn_dropout.input", probs)
            probs = rec(n + "attn.attn_dropout.output", probs)
            o = self.merge_heads(torch.matmul(probs, v))
            rec(n + "attn.c_proj.input", o)
            o = rec(n + "attn.c_proj.output",
                    self.conv1d(o, w[p + "attn.c_proj.weight"], w[p + "attn.c_proj.bias"]))
            rec(n + "attn.resid_dropout.input", o)
            o = rec(n + "attn.resid_dropout.output", o)
            rec(n + "attn.output", o)                       # attn returns (o, present)
            x = o + residual
            residual = x
            rec(n + "ln_2.input", x)
            y = rec(n + "ln_2.output", self.layer_norm(x, p + "ln_2"))
            # mlp
            rec(n + "mlp.input", y)
            rec(n + "mlp.c_fc.input", y)
            f = rec(n + "mlp.c_fc.output",
                    self.conv1d(y, w[p + "mlp.c_fc.weight"], w[p + "mlp.c_fc.bias"]))
            rec(n + "mlp.act.input", f)
            f = rec(n + "mlp.act.output", self.gelu_new(f))
            rec(n + "mlp.c_proj.input", f)
            f = rec(n + "mlp.c_proj.output",
                    self.conv1d(f, w[p + "mlp.c_proj.weight"], w[p + "mlp.c_proj.bias"]))
            rec(n + "mlp.dropout.input", f)
            f = rec(n + "mlp.dropout.output", f)
            rec(n + "mlp.output", f)
            x = residual + f
            rec(n + "output", x)                            # block returns (x, present)

        rec("ln_f.input", x)
        hidden = rec("ln_f.output", self.layer_norm(x, "ln_f"))
        rec("lm_head.input", hidden)
        logits = rec("lm_head.output", torch.nn.functional.linear(hidden, self.lm_head))
        return logits, hidden, rec.sites


# FULLY_MASKED_ROWS: HF's eager GPT-2 marks causally hidden keys with finfo(f32).min via
# torch.where, then ADDS (1 - mask) * finfo.min.  So a key that is hidden by exactly one
# of the two gets finfo.min (score + finfo.min rounds to finfo.min), and a key hidden by
# both gets -inf.  A query row that sees no unpadded key at all (the leading pads of a
# left-padded row) therefore has max = finfo.min, and softmax is uniform over every key
# that is "causally visible pad" OR "future non-pad": the pad rows attend to the future.
def fully_masked_probs(mask, S):
    """Expected softmax rows [B,S,S] for fully masked queries (only those rows meaningful)."""
    causal = torch.tril(torch.ones(S, S, dtype=torch.bool))[None]
    pad = (mask == 0)[:, None, :]
    # key j gets finfo.min iff exactly one of (j > i) and (pad j) holds
    one_only = (~causal) ^ pad
    return one_only.float() / one_only.float().sum(-1, keepdim=True)


def site_names(n_layer):
    """The hook-site names in execution order (what Recorder produces)."""
    per = ["input", "ln_1.input", "ln_1.output", "attn.input", "attn.c_attn.input",
           "attn.c_attn.output", "attn.attn_dropout.input", "attn.attn_dropout.output",
           "attn.c_proj.input", "attn.c_proj.output", "attn.resid_dropout.input",
           "attn.resid_dropout.output", "attn.output", "ln_2.input", "ln_2.output",
           "mlp.input", "mlp.c_fc.input", "mlp.c_fc.output", "mlp.act.input",
           "mlp.act.output", "mlp.c_proj.input", "mlp.c_proj.output", "mlp.dropout.input",
           "mlp.dropout.output", "mlp.output", "output"]
    names = ["wte.output", "wpe.output", "drop.input", "drop.output"]
    for l in range(n_layer):
        names += ["h[%d].%s" % (l, s) for s in per]
    return names + ["ln_f.input", "ln_f.output", "lm_head.input", "lm_head.output"]


# ----------------------------------------------------------------------------------------
# Fixture cases
# ----------------------------------------------------------------------------------------

PAD = 50256
LONG_SEED = 20240531
LONG_LEN = 40
# long_b1 keeps the logits at these positions only (full [1,40,V] logits are 8 MB).
LONG_LOGIT_POSITIONS = [0, 20, 39]


def make_cases(vocab):
    cases = collections.OrderedDict()
    cases["spain_b1"] = dict(
        ids=[[464, 3139, 286, 8602, 318]], mask=[[1, 1, 1, 1, 1]], positions=None,
        sites="all", desc='"The capital of Spain is", batch 1, mask all ones')
    cases["b2_right_pad"] = dict(
        ids=[[464, 3139, 286, 8602, 318, 10598], [7454, 2402, 257, 640, PAD, PAD]],
        mask=[[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]], positions=None, sites="all",
        desc="batch 2, row 1 right-padded with 50256 (mask 0), position_ids = arange(S)")
    left_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]], dtype=torch.long)
    left_pos = left_mask.cumsum(-1) - 1
    left_pos.masked_fill_(left_mask == 0, 1)       # what HF generate's prepare_inputs does
    cases["b2_left_pad"] = dict(
        ids=[[464, 3139, 286, 8602, 318, 10598], [PAD, PAD, 7454, 2402, 257, 640]],
        mask=left_mask.tolist(), positions=left_pos.tolist(), sites="all",
        desc="batch 2, row 1 left-padded with 50256 (mask 0), position_ids = cumsum(mask)-1, "
             "padded positions set to 1 (HF generate)")
    g = torch.Generator().manual_seed(LONG_SEED)
    long_ids = torch.randint(0, vocab, (1, LONG_LEN), generator=g, dtype=torch.long)
    cases["long_b1"] = dict(
        ids=long_ids.tolist(), mask=[[1] * LONG_LEN], positions=None, sites="blocks",
        desc="40 ids from torch.Generator().manual_seed(%d), randint [0, %d); "
             "block outputs only, logits only at logits_positions" % (LONG_SEED, vocab))
    return cases


def run_case(model, case):
    ids = torch.tensor(case["ids"], dtype=torch.long)
    mask = torch.tensor(case["mask"], dtype=torch.long)
    pos = (torch.tensor(case["positions"], dtype=torch.long) if case["positions"] is not None
           else torch.arange(ids.shape[1], dtype=torch.long).unsqueeze(0).expand_as(ids).contiguous())
    logits, hidden, sites = model.forward(ids, attention_mask=mask, position_ids=pos)
    self_check(model, ids, mask, pos, logits, hidden, sites)
    out = collections.OrderedDict()
    out["input_ids"] = ids.numpy()
    out["attention_mask"] = mask.numpy()
    out["position_ids"] = pos.numpy()
    out["last_hidden_state"] = hidden.numpy()
    if case["sites"] == "all":
        out["logits"] = logits.numpy()
        for name, t in sites.items():
            if name == "lm_head.output":
                continue                               # == logits; stored once
            out[name] = t.numpy()
    else:
        P = LONG_LOGIT_POSITIONS
        out["logits_positions"] = np.array(P, dtype=np.int64)
        out["logits_at_positions"] = logits[:, P, :].numpy()
        out["drop.output"] = sites["drop.output"].numpy()
        for l in range(model.n_layer):
            out["h[%d].output" % l] = sites["h[%d].output" % l].numpy()
        out["ln_f.output"] = sites["ln_f.output"].numpy()
    return out


def self_check(model, ids, mask, pos, logits, hidden, sites):
    """Cheap internal consistency checks (aliases, shapes, finiteness)."""
    B, S = ids.shape
    D, H, V = model.n_embd, model.n_head, model.vocab
    assert list(sites) == site_names(model.n_layer), "site order changed"
    aliases = [("drop.input", "drop.output"), ("ln_f.output", "lm_head.input")]
    for l in range(model.n_layer):
        n = "h[%d]." % l
        aliases += [(n + "input", n + "ln_1.input"), (n + "ln_1.output", n + "attn.input"),
                    (n + "attn.input", n + "attn.c_attn.input"),
                    (n + "attn.attn_dropout.input", n + "attn.attn_dropout.output"),
                    (n + "attn.c_proj.output", n + "attn.resid_dropout.input"),
                    (n + "attn.resid_dropout.input", n + "attn.resid_dropout.output"),
                    (n + "attn.resid_dropout.output", n + "attn.output"),
                    (n + "ln_2.output", n + "mlp.input"), (n + "mlp.input", n + "mlp.c_fc.input"),
                    (n + "mlp.c_fc.output", n + "mlp.act.input"),
                    (n + "mlp.act.output", n + "mlp.c_proj.input"),
                    (n + "mlp.c_proj.output", n + "mlp.dropout.input"),
                    (n + "mlp.dropout.input", n + "mlp.dropout.output"),
                    (n + "mlp.dropout.output", n + "mlp.output")]
        if l + 1 < model.n_layer:
            aliases.append((n + "output", "h[%d].input" % (l + 1)))
    aliases.append(("h[%d].output" % (model.n_layer - 1), "ln_f.input"))
    aliases.append(("drop.output", "h[0].input"))
    for a, b in aliases:
        assert torch.equal(sites[a], sites[b]), "alias %s != %s" % (a, b)
    assert torch.equal(sites["lm_head.output"], logits) and torch.equal(sites["ln_f.output"], hidden)
    for name, t in sites.items():
        assert t.dtype == torch.float32 and torch.isfinite(t).all(), name
        want = [B, S, D]
        if name.endswith("c_attn.output"):
            want = [B, S, 3 * D]
        elif "attn_dropout" in name:
            want = [B, H, S, S]
        elif name.endswith(("c_fc.output", "act.input", "act.output", "mlp.c_proj.input")):
            want = [B, S, model.n_inner]
        elif name == "lm_head.output":
            want = [B, S, V]
        assert list(t.shape) == want, "%s shape %s, want %s" % (name, list(t.shape), want)
    # Query rows that see at least one unpadded key (j <= i, mask 1) put weight exactly 0
    # on future and padded keys.  Rows that see only padding do not: see FULLY_MASKED_ROWS.
    seen = (torch.tril(torch.ones(S, S, dtype=torch.long))[None] * mask[:, None, :]).sum(-1) > 0
    allowed = torch.tril(torch.ones(S, S, dtype=torch.bool))[None] & (mask[:, None, :] == 1)
    for l in range(model.n_layer):
        p = sites["h[%d].attn.attn_dropout.output" % l]
        assert torch.allclose(p.sum(-1), torch.ones(()), atol=1e-5)
        leak = (p != 0) & ~allowed[:, None]                      # [B,H,S,S]
        assert not (leak.any(-1) & seen[:, None]).any(), "causal/padding mask leaked"
        if not seen.all():
            fm = fully_masked_probs(mask, S)                      # [B,S,S]
            for b, i in (~seen).nonzero().tolist():
                assert torch.equal(p[b, :, i], fm[b, i].expand(H, S)), "fully masked row"


# ----------------------------------------------------------------------------------------
# Validation against the golden cases (real pyvene + HF transformers 4.43)
# ----------------------------------------------------------------------------------------

TOL = 1e-5


def _maxdiff(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def validate(model, golden, model_dir):
    """Returns a list of (label, maxdiff).  Every comparison is printed."""
    cases_dir = os.path.join(golden, "cases")
    if not os.path.isdir(cases_dir):
        raise SystemExit("--validate: no golden cases at %s (pass --golden)" % cases_dir)
    # The golden model must be the same model we read.
    gm = os.path.join(golden, "models", "gpt2-tiny", "model.safetensors")
    with open(gm, "rb") as f1, open(os.path.join(model_dir, "model.safetensors"), "rb") as f2:
        same = f1.read() == f2.read()
    print("validate: golden model %s identical to %s: %s" % (gm, model_dir, same))
    if not same:
        raise SystemExit("--validate: model files differ")
    results = []

    def report(label, got, exp):
        d = _maxdiff(got, exp)
        results.append((label, d))
        print("  %s\n      shape %-16s max|diff| %.3e %s" % (
            label, "x".join(map(str, np.shape(exp))), d, "ok" if d <= TOL else "FAIL"))

    def run(ids, mask=None):
        ids_t = torch.tensor(ids, dtype=torch.long)
        m = torch.tensor(mask, dtype=torch.long) if mask is not None else None
        return model.forward(ids_t, attention_mask=m)

    def load(case):
        d = os.path.join(cases_dir, case)
        with open(os.path.join(d, "experiment.json")) as f:
            exp = json.load(f)
        t, _ = read_safetensors(os.path.join(d, "expected.safetensors"))
        return exp, t

    # 1. Every original.* output of every gpt2-tiny case: the un-intervened base run.
    print("validate: original.* outputs (un-intervened base runs) of gpt2-tiny cases")
    for case in sorted(os.listdir(cases_dir)):
        ej = os.path.join(cases_dir, case, "experiment.json")
        if not os.path.isfile(ej):
            continue
        exp, t = load(case)
        if not exp.get("model", "").rstrip("/").endswith("gpt2-tiny"):
            continue
        base = exp.get("base") or {}
        orig = [k for k in sorted(t) if k.startswith("original.")]
        if not orig or "input_ids" not in base:
            continue
        logits, hidden, _ = run(base["input_ids"], base.get("attention_mask"))
        for k in orig:
            got = {"original.logits": logits, "original.last_hidden_state": hidden}.get(k)
            if got is None:
                print("  %s/%s: not a forward output, skipped" % (case, k))
                continue
            report("%s/%s" % (case, k), got.numpy(), t[k])

    # 2. CollectIntervention cases with no other intervention.
    print("validate: collected tensors of CollectIntervention-only cases")
    exp, t = load("t101_collect_block_output")
    _, _, sites = run(exp["base"]["input_ids"])
    pos = exp["unit_locations"]["sources->base"]                     # 3: layer-3 output at pos 3
    layer = exp["config"]["representations"][0]["layer"]
    report("t101_collect_block_output/collected.0 = h[%d].output[:, %d:%d]" % (layer, pos, pos + 1),
           sites["h[%d].output" % layer][:, pos:pos + 1, :].numpy(), t["collected.0"])

    for case in ("t101_attention_weights_component", "t101_attention_weights_string"):
        exp, t = load(case)
        _, _, sites = run(exp["base"]["input_ids"])
        heads = exp["unit_locations"]["base"]                          # 'pos' indexes dim 1 (heads)
        rep = exp["config"]["representations"][0]
        layer = rep["layer"] if rep["component"] == "attention_weight" else 3
        got = sites["h[%d].attn.attn_dropout.input" % layer][:, heads]
        report("%s/collected.0 = h[%d].attn.attn_dropout.input[:, heads %s]" % (case, layer, heads),
               got.numpy(), t["collected.0"])

    exp, t = load("t101_head_neuron_collect")
    _, _, sites = run(exp["base"]["input_ids"])
    loc = exp["unit_locations"]["base"]              # GET_LOC((head, pos)) = [[[[head]], [[pos]]]]
    head, pos = loc[0][0][0][0], loc[0][1][0][0]
    layer = exp["config"]["representations"][0]["layer"]
    sub = exp["subspaces"]
    hv = model.split_heads(sites["h[%d].attn.c_proj.input" % layer])   # [B,H,S,hd]
    got = hv[:, head:head + 1, pos:pos + 1, :][..., sub]
    report("t101_head_neuron_collect/collected.0 = split(h[%d].attn.c_proj.input)[:, %d, %d, %s]"
           % (layer, head, pos, sub), got.numpy(), t["collected.0"])
    return results


def consistency(model):
    """Padding checks: the real tokens of a padded row must match the unpadded run."""
    print("validate: padded rows vs. the same tokens run alone (batch 1, no mask)")
    out = []

    def alone(ids, pos=None):
        t = torch.tensor([ids], dtype=torch.long)
        p = torch.tensor([pos], dtype=torch.long) if pos is not None else None
        return model.forward(t, position_ids=p)

    r_ids = torch.tensor([[464, 3139, 286, 8602, 318, 10598], [7454, 2402, 257, 640, PAD, PAD]])
    r_mask = torch.tensor([[1] * 6, [1, 1, 1, 1, 0, 0]])
    lg, hs, _ = model.forward(r_ids, attention_mask=r_mask)
    lg1, hs1, _ = alone([7454, 2402, 257, 640])
    for label, a, b in (("right pad row 1 logits[:4]", lg[1, :4], lg1[0]),
                        ("right pad row 1 last_hidden[:4]", hs[1, :4], hs1[0])):
        d = _maxdiff(a.numpy(), b.numpy())
        out.append((label, d))
        print("  %-72s max|diff| %.3e %s" % (label, d, "ok" if d <= TOL else "FAIL"))
    l_ids = torch.tensor([[464, 3139, 286, 8602, 318, 10598], [PAD, PAD, 7454, 2402, 257, 640]])
    l_mask = torch.tensor([[1] * 6, [0, 0, 1, 1, 1, 1]])
    l_pos = l_mask.cumsum(-1) - 1
    l_pos.masked_fill_(l_mask == 0, 1)
    lg, hs, sites = model.forward(l_ids, attention_mask=l_mask, position_ids=l_pos)
    for label, a, b in (("left pad row 1 logits[2:]", lg[1, 2:], lg1[0]),
                        ("left pad row 1 last_hidden[2:]", hs[1, 2:], hs1[0]),
                        ("left pad row 0 == right pad row 0 (no padding)", hs[0],
                         model.forward(r_ids[:1])[1][0])):
        d = _maxdiff(a.numpy(), b.numpy())
        out.append((label, d))
        print("  %-72s max|diff| %.3e %s" % (label, d, "ok" if d <= TOL else "FAIL"))
    p = sites["h[0].attn.attn_dropout.input"][1, 0]
    print("  left pad row 1, fully masked query rows (head 0): q0 -> %s, q1 -> %s"
          % (p[0, :3].tolist(), p[1, :3].tolist()))
    return out


# ----------------------------------------------------------------------------------------


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", default=os.path.join(REPO, "tests", "fixtures"),
                    help="fixtures root; files go to OUT_DIR/gpt2_ref/<case>.safetensors")
    ap.add_argument("--model", default=os.path.join(REPO, "tests", "fixtures", "models", "gpt2-tiny"))
    ap.add_argument("--validate", action="store_true",
                    help="compare with the golden cases first; write nothing on failure")
    ap.add_argument("--validate-only", action="store_true", help="validate and write nothing")
    ap.add_argument("--golden", default=os.path.normpath(os.path.join(REPO, "..", "shared", "golden")),
                    help="golden root with cases/ and models/ (default ../shared/golden)")
    args = ap.parse_args(argv)

    torch.set_num_threads(1)          # one thread: identical bits on every run
    model = GPT2Ref(args.model)
    print("model: %s (%d layers, %d heads, n_embd %d, vocab %d, tied lm_head %s)"
          % (args.model, model.n_layer, model.n_head, model.n_embd, model.vocab, model.tied))

    if args.validate or args.validate_only:
        res = validate(model, args.golden, args.model) + consistency(model)
        bad = [(k, d) for k, d in res if not d <= TOL]
        worst = max(d for _, d in res)
        print("validate: %d comparisons, worst max|diff| %.3e, %d over %.0e"
              % (len(res), worst, len(bad), TOL))
        if bad:
            raise SystemExit("validation FAILED; nothing written")
        if args.validate_only:
            return 0

    out_dir = os.path.join(args.out_dir, "gpt2_ref")
    os.makedirs(out_dir, exist_ok=True)
    total = 0
    for name, case in make_cases(model.vocab).items():
        tensors = run_case(model, case)
        meta = {"case": name, "description": case["desc"],
                "reference": "tools/make_fixtures.py: plain-torch GPT-2, HF transformers 4.43 "
                             "eager semantics, float32, eval mode",
                "sites": "all hook sites (lm_head.output stored as logits)" if case["sites"] == "all"
                         else "drop.output, h[l].output, ln_f.output, last_hidden_state, "
                              "logits_at_positions"}
        path = os.path.join(out_dir, name + ".safetensors")
        size = write_safetensors(path, tensors, meta)
        back, _ = read_safetensors(path)
        assert sorted(back) == sorted(tensors) and all(
            np.array_equal(back[k], tensors[k]) for k in tensors), "round trip failed"
        total += size
        print("wrote %s: %d tensors, %d bytes (%.2f MB)" % (
            os.path.relpath(path), len(tensors), size, size / 1e6))
    print("total: %d bytes (%.2f MB)" % (total, total / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
