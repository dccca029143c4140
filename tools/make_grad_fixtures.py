#!/usr/bin/env python3
"""Independent plain-PyTorch reference for GPT-2 GRADIENTS; writes test fixtures.

Developer tool only: no test runs it.  Needs torch and numpy, e.g. Debian's
`/usr/bin/python3` (torch 1.13); nothing else.

    /usr/bin/python3 tools/make_grad_fixtures.py [--out-dir tests/fixtures]
                                                 [--model tests/fixtures/models/gpt2-tiny]

The model is the forward reference of tools/make_fixtures.py (imported, not copied),
run with autograd on: every weight is a leaf that requires grad, and every recorded
hook-site tensor gets retain_grad().  The loss is

    L = sum(R1 * logits) + sum(R2 * last_hidden_state)

with fixed random R1 and R2 stored in the fixture, so the C side calls
vene_backward(d_logits = R1, d_hidden = R2).  The bare GPT2Model case has no logits and
uses R2 only.  Storing a dense R1 ([B,S,50257]) would take 1-2.4 MB per case, so R1 is
nonzero only on D_LOGITS_K vocabulary columns (`d_logits_cols`, spread over the whole
vocabulary including both ends) with values `d_logits_vals` [B,S,K]; the C side scatters
them into a dense zero [B,S,V] tensor.

Autograd follows HF's masking literally: where a query sees only padding, the score is
finfo.min (or -inf) in value, yet the addition of the padding term passes the gradient
through to q.k for the causally visible keys; torch.where blocks it for future keys.

The fixture layout is in tests/fixtures/gpt2_grad/README.md.
"""
import argparse
import collections
import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_fixtures as mf                           # noqa: E402  (the forward reference)

REPO = mf.REPO
SEED = 20240601
D_LOGITS_K = 1024          # vocabulary columns with a nonzero R1
WTE_ZERO_ROWS = 16         # stored wte-gradient rows that must be exactly zero

# Sites whose gradient is recorded: the brief's five plus the embeddings, a block input,
# every kind of attention/MLP tensor somewhere, and the last layer (= ln_f.input).
SITES = ["wte.output", "wpe.output", "drop.output", "h[0].input", "h[0].attn.c_attn.output",
         "h[0].attn.attn_dropout.input", "h[1].mlp.act.output", "h[1].output",
         "h[2].ln_2.output", "h[2].attn.c_proj.input", "h[3].mlp.c_fc.output",
         "h[3].attn.attn_dropout.input", "h[3].output", "ln_f.input", "ln_f.output"]
LM_SITES = ["lm_head.input"]


class GradRecorder(mf.Recorder):
    """Keeps the live site tensors (not copies) so that their .grad can be read."""

    def __call__(self, name, t):
        if name in self.sites:
            raise RuntimeError("hook site recorded twice: " + name)
        if t.requires_grad:
            t.retain_grad()
        self.sites[name] = t
        return t


def forward_with_grad(model, ids, mask, pos):
    rec = GradRecorder()
    # GPT2Ref.forward is decorated with torch.no_grad(); call the undecorated function.
    logits, hidden, sites = mf.GPT2Ref.forward.__wrapped__(model, ids, attention_mask=mask,
                                                            position_ids=pos, rec=rec)
    return logits, hidden, sites


def loss_of(logits, hidden, r1, r2):
    loss = (r2 * hidden).sum()
    if r1 is not None:
        loss = loss + (r1 * logits).sum()
    return loss


def make_cases():
    left_mask = torch.tensor([[1, 1, 1, 1, 1, 1], [0, 0, 1, 1, 1, 1]], dtype=torch.long)
    left_pos = left_mask.cumsum(-1) - 1
    left_pos.masked_fill_(left_mask == 0, 1)       # as make_fixtures.py's b2_left_pad (HF generate)
    return collections.OrderedDict([
        ("lm_b1", dict(lm=True, ids=[[464, 3139, 286, 8602, 318]], mask=[[1] * 5], positions=None,
                       desc='GPT2LMHeadModel, "The capital of Spain is", batch 1, mask all ones')),
        ("lm_b2_left_pad", dict(
            lm=True, ids=[[464, 3139, 286, 8602, 318, 10598], [mf.PAD, mf.PAD, 7454, 2402, 257, 640]],
            mask=left_mask.tolist(), positions=left_pos.tolist(),
            desc="GPT2LMHeadModel, batch 2, row 1 left-padded (mask 0), position_ids = cumsum(mask)-1 "
                 "with pads at 1 (as gpt2_ref/b2_left_pad); R1 is zero on row 1 position 0")),
        ("bare_b2", dict(
            lm=False, ids=[[7454, 2402, 257, 640, 318, 10598], [464, 3139, 286, 8602, 318, 464]],
            mask=[[1] * 6, [1] * 6], positions=None,
            desc="GPT2Model (no LM head), batch 2, mask all ones, token 464 twice in row 1 and "
                 "318 in both rows (embedding gradients accumulate); loss sum(R2 * last_hidden)")),
    ])


def draw_r(gen, case, B, S, D, V):
    r2 = torch.randn(B, S, D, generator=gen)
    if not case["lm"]:
        return None, None, None, r2
    ends = list(range(16)) + list(range(V - 16, V))
    middle = torch.randperm(V - 32, generator=gen)[:D_LOGITS_K - 32] + 16
    cols = torch.tensor(sorted(ends + middle.tolist()), dtype=torch.long)
    vals = torch.randn(B, S, D_LOGITS_K, generator=gen)
    if B > 1:
        vals[1, 0] = 0.0        # a row with no logit gradient (the head skips such rows)
    r1 = torch.zeros(B, S, V)
    r1[:, :, cols] = vals
    return cols, vals, r1, r2


def wte_rows(gen, ids, cols, V):
    """Rows of the wte gradient to store: every used token, 64 of the R1 columns
    (both ends included) and WTE_ZERO_ROWS rows that must be exactly zero."""
    used = set(ids.flatten().tolist())
    rows = set(used)
    if cols is not None:
        c = cols.tolist()
        rows |= set(c[:8] + c[-8:])
        pick = torch.randperm(len(c), generator=gen)[:48].tolist()
        rows |= {c[i] for i in pick}
    live = set(rows) | (set(cols.tolist()) if cols is not None else set())
    zero = []
    for r in torch.randperm(V, generator=gen).tolist():
        if r not in live:
            zero.append(r)
        if len(zero) == WTE_ZERO_ROWS:
            break
    return torch.tensor(sorted(rows | set(zero)), dtype=torch.long)


def run_case(model, case, gen):
    ids = torch.tensor(case["ids"], dtype=torch.long)
    mask = torch.tensor(case["mask"], dtype=torch.long)
    B, S = ids.shape
    pos = (torch.tensor(case["positions"], dtype=torch.long) if case["positions"] is not None
           else torch.arange(S, dtype=torch.long).unsqueeze(0).expand(B, S).contiguous())
    cols, vals, r1, r2 = draw_r(gen, case, B, S, model.n_embd, model.vocab)
    for p in model.w.values():
        p.grad = None
    logits, hidden, sites = forward_with_grad(model, ids, mask, pos)
    loss_of(logits, hidden, r1, r2).backward()

    out = collections.OrderedDict()
    out["input_ids"], out["attention_mask"], out["position_ids"] = ids.numpy(), mask.numpy(), pos.numpy()
    out["d_hidden"] = r2.numpy()
    if cols is not None:
        out["d_logits_cols"] = cols.numpy()
        out["d_logits_vals"] = vals.numpy()
    for name in SITES + (LM_SITES if case["lm"] else []):
        g = sites[name].grad
        assert g is not None and torch.isfinite(g).all(), name
        out[name] = g.numpy().copy()
    rows = wte_rows(gen, ids, cols, model.vocab)
    for name, p in model.w.items():
        g = p.grad if p.grad is not None else torch.zeros_like(p)
        assert torch.isfinite(g).all(), name
        if name == "wte.weight":
            out["param_rows.wte.weight"] = rows.numpy()
            g = g[rows]
        out["param." + name] = g.numpy().copy()
    self_check(model, case, ids, mask, pos, r1, r2, sites, out)
    return out


def self_check(model, case, ids, mask, pos, r1, r2, sites, out):
    """The float32 reference against the same graph in float64 (its own rounding noise),
    and float64 autograd against a central difference along a random weight direction.

    The difference check zeroes R1/R2 on padded query rows: a padded query that sees only
    padding has a score that is constant (finfo.min) in value, so the function's true
    derivative through it is 0 while autograd passes the gradient on (FULLY_MASKED_ROWS
    in make_fixtures.py); with those rows out of the loss both agree."""
    w32 = model.w
    w64 = {k: v.detach().double().requires_grad_(True) for k, v in w32.items()}
    model.w = w64
    model.lm_head = w64["wte.weight"] if model.tied else w64["lm_head.weight"]
    keep = mask[:, :, None].double()
    r1d = r1.double() if r1 is not None else None
    r1k = r1d * keep if r1 is not None else None
    try:
        def grads(ra, rb):
            for p in w64.values():
                p.grad = None
            logits, hidden, _ = forward_with_grad(model, ids, mask, pos)
            loss_of(logits, hidden, ra, rb).backward()
            return {k: p.grad.clone() for k, p in w64.items()}

        g64 = grads(r1d, r2.double())
        worst = 0.0
        for name, g in g64.items():
            g = g.numpy()
            if name == "wte.weight":
                g = g[out["param_rows.wte.weight"]]
            ref = out["param." + name].astype(np.float64)
            worst = max(worst, float(np.abs(ref - g).max() / max(np.abs(g).max(), 1e-30)))
        gk = grads(r1k, r2.double() * keep)
        gen = torch.Generator().manual_seed(7)
        u = {k: torch.randn(v.shape, generator=gen, dtype=torch.float64) for k, v in w64.items()}
        analytic = sum(float((gk[k] * u[k]).sum()) for k in w64)
        h, ls = 1e-6, []
        with torch.no_grad():
            for sgn in (1.0, -1.0):
                for k in w64:
                    w64[k] += sgn * h * u[k]
                lg, hd, _ = forward_with_grad(model, ids, mask, pos)
                ls.append(float(loss_of(lg, hd, r1k, r2.double() * keep)))
                for k in w64:
                    w64[k] -= sgn * h * u[k]
        fd = (ls[0] - ls[1]) / (2 * h)
    finally:
        model.w = w32
        model.lm_head = w32["wte.weight"] if model.tied else w32["lm_head.weight"]
    fd_rel = abs(fd - analytic) / abs(analytic)
    print("  float32 vs float64 weight gradients: worst %.2e of max|grad|; directional "
          "derivative (padded query rows out of the loss) autograd %.9e vs central "
          "difference %.9e (rel %.1e)" % (worst, analytic, fd, fd_rel))
    assert worst < 1e-4, "float32 reference too far from float64"
    assert fd_rel < 1e-6, "autograd disagrees with finite differences"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out-dir", default=os.path.join(REPO, "tests", "fixtures"),
                    help="fixtures root; files go to OUT_DIR/gpt2_grad/<case>.safetensors")
    ap.add_argument("--model", default=os.path.join(REPO, "tests", "fixtures", "models", "gpt2-tiny"))
    args = ap.parse_args(argv)

    torch.set_num_threads(1)          # one thread: identical bits on every run
    model = mf.GPT2Ref(args.model)
    for p in model.w.values():
        p.requires_grad_(True)        # model.lm_head is wte.weight itself when tied
    out_dir = os.path.join(args.out_dir, "gpt2_grad")
    os.makedirs(out_dir, exist_ok=True)
    gen = torch.Generator().manual_seed(SEED)
    total = 0
    for name, case in make_cases().items():
        print("case %s" % name)
        tensors = run_case(model, case, gen)
        meta = {"case": name, "description": case["desc"], "model_class":
                "GPT2LMHeadModel" if case["lm"] else "GPT2Model",
                "loss": "sum(R1 * logits) + sum(R2 * last_hidden_state); R1 = d_logits_vals "
                        "scattered to columns d_logits_cols (zero elsewhere), R2 = d_hidden"
                        if case["lm"] else "sum(R2 * last_hidden_state), R2 = d_hidden",
                "reference": "tools/make_grad_fixtures.py: autograd through tools/make_fixtures.py's "
                             "plain-torch GPT-2 (HF transformers 4.43 eager semantics), float32"}
        path = os.path.join(out_dir, name + ".safetensors")
        size = mf.write_safetensors(path, tensors, meta)
        back, _ = mf.read_safetensors(path)
        assert sorted(back) == sorted(tensors) and all(
            np.array_equal(back[k], tensors[k]) for k in tensors), "round trip failed"
        total += size
        print("wrote %s: %d tensors, %d bytes" % (os.path.relpath(path), len(tensors), size))
    print("total: %d bytes (%.2f MB)" % (total, total / 1e6))
    return 0


if __name__ == "__main__":
    sys.exit(main())
