#!/usr/bin/env python3
"""The sweep of bench/sweep.c as a plain PyTorch hook loop: GPT-2 124M shapes, random weights
(timing does not depend on them), 16 tokens, noise on the first 4 tokens' embeddings, then
for each of 12 x 16 cells one forward with a hook that writes the clean run's block output at
(layer, position); p(answer) at the last position. The clean run is cached once, as vene's
sweep does; pyvene would also rerun the source for every cell.

Usage: /usr/bin/python3 bench/sweep_torch.py THREADS [LAYERS]
Times the cells of the first LAYERS layers (default all 12; every cell is one full forward,
so the time scales to 12 layers) and prints TORCH_SWEEP_SECONDS for the whole sweep.
Run by bench_sweep; needs Debian's python3-torch, nothing else.
"""
import math
import sys
import time

import torch

L, D, H, V, CTX, SEQ, SUBJ = 12, 768, 12, 50257, 1024, 16, 4


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.ln_1, self.ln_2 = torch.nn.LayerNorm(D), torch.nn.LayerNorm(D)
        self.c_attn, self.c_proj = torch.nn.Linear(D, 3 * D), torch.nn.Linear(D, D)
        self.c_fc, self.mlp_proj = torch.nn.Linear(D, 4 * D), torch.nn.Linear(4 * D, D)

    def forward(self, x):
        B, S, _ = x.shape
        q, k, v = self.c_attn(self.ln_1(x)).split(D, dim=2)
        q, k, v = (t.view(B, S, H, D // H).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-1, -2)) / math.sqrt(D // H)
        mask = torch.ones(S, S, dtype=torch.bool).tril()
        att = att.masked_fill(~mask, torch.finfo(att.dtype).min).softmax(-1)
        y = (att @ v).transpose(1, 2).reshape(B, S, D)
        x = x + self.c_proj(y)
        h = self.c_fc(self.ln_2(x))
        return x + self.mlp_proj(0.5 * h * (1 + torch.tanh(math.sqrt(2 / math.pi) * (h + 0.044715 * h ** 3))))


class GPT2(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte, self.wpe = torch.nn.Embedding(V, D), torch.nn.Embedding(CTX, D)
        self.h = torch.nn.ModuleList(Block() for _ in range(L))
        self.ln_f = torch.nn.LayerNorm(D)

    def forward(self, ids):
        x = self.wte(ids) + self.wpe(torch.arange(ids.shape[1]))
        for block in self.h:
            x = block(x)
        return self.ln_f(x) @ self.wte.weight.T


def main():
    torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 1)
    timed = min(L, int(sys.argv[2])) if len(sys.argv) > 2 else L
    torch.manual_seed(0)
    model = GPT2().eval()
    ids = torch.randint(0, V, (1, SEQ))
    noise = torch.randn(1, SUBJ, D) * 0.1346
    answer = 262

    def add_noise(module, args):
        x = args[0].clone()
        x[:, :SUBJ] += noise
        return (x,)

    clean = {}
    with torch.no_grad():
        hooks = [b.register_forward_hook(lambda m, a, out, i=i: clean.__setitem__(i, out)) for i, b in enumerate(model.h)]
        model(ids)
        for hk in hooks:
            hk.remove()
        pre = model.h[0].register_forward_pre_hook(add_noise)
        model(ids)  # warm-up
        t0 = time.perf_counter()
        probs = torch.empty(L, SEQ)
        for layer in range(timed):
            for pos in range(SEQ):
                def restore(m, a, out, layer=layer, pos=pos):
                    out = out.clone()
                    out[:, pos] = clean[layer][:, pos]
                    return out
                hk = model.h[layer].register_forward_hook(restore)
                probs[layer, pos] = model(ids)[0, -1].softmax(-1)[answer]
                hk.remove()
        seconds = time.perf_counter() - t0
        pre.remove()
    print(f"{timed * SEQ} of {L * SEQ} cells timed, {torch.get_num_threads()} threads: {seconds:.2f} s")
    print(f"TORCH_SWEEP_SECONDS {seconds * L / timed:.3f}")


if __name__ == "__main__":
    main()
