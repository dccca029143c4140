#!/usr/bin/python3
"""Check, in plain PyTorch, that `vene dataset hierarchical-equality` makes data on which
DAS finds the right variables and not the wrong ones (issue 4's acceptance, pyvene's
DAS_Main_Introduction recipe at a smaller scale).

  1. factual data -> train pyvene's MLP classifier (3 layers, h_dim 16, ReLU, no residual)
  2. counterfactual data for WX,YZ (equality model) -> train a 16x16 rotation at layer 0's
     block output, rotated dims 0-7 <-> source 0 (WX), 8-15 <-> source 1 (YZ), model frozen;
     report the held-out interchange-intervention accuracy (IIA)
  3. the same on the control (pattern model: WY, XZ): IIA should stay near chance.

Developer tool, not a test (it takes minutes of CPU). Usage:
  /usr/bin/python3 tools/das_check.py build/vene [--objects 1000] [--threads 2] (about 8 minutes on 2 cores)
"""
import argparse
import json
import os
import subprocess
import tempfile

import torch


def generate(vene, path, size, seed, extra, objects):
    cmd = [vene, "dataset", "hierarchical-equality", "--out", path, "--size", str(size),
           "--seed", str(seed), "--objects", str(objects)] + extra
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)


def load(path):
    base, srcs, mask, label, base_label, ivid = [], [], [], [], [], []
    with open(path) as f:
        for line in f:
            ex = json.loads(line)
            base.append(ex["base"]["embeds"][0])
            label.append(ex["label"])
            s = ex.get("sources") or []
            row, m = [], []
            for k in range(2):
                src = s[k] if k < len(s) else None
                row.append(src["embeds"][0] if src else [0.0] * len(ex["base"]["embeds"][0]))
                m.append(1.0 if src else 0.0)
            srcs.append(row)
            mask.append(m)
            base_label.append(ex.get("base_label", ex["label"]))
            ivid.append(ex.get("intervention_id", -1))
    t = torch.tensor
    return (t(base), t(srcs), t(mask), t(label), t(base_label), t(ivid))


class MLP(torch.nn.Module):
    """pyvene's MLPForClassification with include_emb=False, pdrop=0: h = relu(W h + b) per
    layer, no residual, then score."""

    def __init__(self, h=16, layers=3, labels=2):
        super().__init__()
        self.h = torch.nn.ModuleList([torch.nn.Linear(h, h) for _ in range(layers)])
        self.score = torch.nn.Linear(h, labels)

    def block0(self, x):
        return torch.relu(self.h[0](x))

    def rest(self, h):
        for layer in self.h[1:]:
            h = torch.relu(layer(h))
        return self.score(h)

    def forward(self, x):
        return self.rest(self.block0(x))


def train_mlp(data, epochs, batch):
    x, y = data[0], data[3]
    model = MLP(h=x.shape[1])
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch):
            idx = perm[i:i + batch]
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def accuracy(logits, y):
    return (logits.argmax(-1) == y).float().mean().item()


class Rotation(torch.nn.Module):
    def __init__(self, n):
        super().__init__()
        lin = torch.nn.Linear(n, n, bias=False)
        torch.nn.init.orthogonal_(lin.weight)
        self.rot = torch.nn.utils.parametrizations.orthogonal(lin)

    def intervene(self, model, base, srcs, mask):
        """Rotated dims 0..n/2-1 from source 0, n/2..n-1 from source 1 where mask says so."""
        R = self.rot.weight
        n = R.shape[0]
        hb = model.block0(base) @ R
        half = torch.zeros(2, n)
        half[0, : n // 2] = 1
        half[1, n // 2:] = 1
        for k in range(2):
            hs = model.block0(srcs[:, k]) @ R
            sel = mask[:, k:k + 1] * half[k]
            hb = hb * (1 - sel) + hs * sel
        return model.rest(hb @ R.T)


def train_das(model, train, test, epochs, batch, lr):
    for p in model.parameters():
        p.requires_grad_(False)
    rot = Rotation(train[0].shape[1])
    opt = torch.optim.Adam(rot.parameters(), lr=lr)
    g = torch.Generator().manual_seed(1)
    n = len(train[0])
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            out = rot.intervene(model, train[0][idx], train[1][idx], train[2][idx])
            loss = torch.nn.functional.cross_entropy(out, train[3][idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    with torch.no_grad():
        out = rot.intervene(model, test[0], test[1], test[2])
        pred = out.argmax(-1)
        per_id = {int(k): (pred[test[5] == k] == test[3][test[5] == k]).float().mean().item()
                  for k in test[5].unique()}
        return (pred == test[3]).float().mean().item(), per_id


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("vene")
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--factual", type=int, default=100000)
    ap.add_argument("--cf", type=int, default=64000)
    ap.add_argument("--das-epochs", type=int, default=8)
    ap.add_argument("--das-lr", type=float, default=5e-3)
    ap.add_argument("--das-batch", type=int, default=256)
    ap.add_argument("--mlp-epochs", type=int, default=30)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    tmp = tempfile.mkdtemp()
    f = lambda name: os.path.join(tmp, name)
    gen = lambda name, size, seed, extra: generate(a.vene, f(name), size, seed, extra, a.objects)
    gen("fact_train", a.factual, 1, [])
    gen("fact_test", 10000, 2, [])
    right = ["--variable", "WX,YZ", "--subsets"]
    wrong = ["--variable", "WY,XZ", "--subsets"]
    gen("cf_train", a.cf, 3, right)
    gen("cf_test", 10000, 4, right)
    gen("ctl_train", a.cf, 5, wrong)
    gen("ctl_test", 10000, 6, wrong)

    model = train_mlp(load(f("fact_train")), epochs=a.mlp_epochs, batch=1024)
    ft = load(f("fact_test"))
    with torch.no_grad():
        print("MLP factual test accuracy: %.4f" % accuracy(model(ft[0]), ft[3]))
    for name, tr, te in (("right (WX,YZ)", "cf_train", "cf_test"), ("wrong (WY,XZ)", "ctl_train", "ctl_test")):
        train, test = load(f(tr)), load(f(te))
        with torch.no_grad():
            base_acc = accuracy(model(test[0]), test[4])
            no_op = (test[3] == test[4]).float().mean().item()
            ones = test[3].float().mean().item()
        iia, per_id = train_das(model, train, test, epochs=a.das_epochs, batch=a.das_batch, lr=a.das_lr)
        print("%s: IIA %.4f  per intervention_id %s  | MLP vs base_label %.4f, "
              "label==base_label %.4f, label=1 share %.4f"
              % (name, iia, {k: round(v, 4) for k, v in per_id.items()}, base_acc, no_op, ones))


if __name__ == "__main__":
    main()
