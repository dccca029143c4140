"""Plain-PyTorch reference forwards of the LLaMA family (Llama, Mistral, Qwen2, Gemma) and
GPT-NeoX, written from Hugging Face transformers 4.43's modeling code (eager attention,
eval mode, float32), recording every hook site under its module path.  No transformers
import: the semantics are re-stated here.  Used by make_family_fixtures.py.

What each piece mirrors:
  * LlamaModel._update_causal_mask (+ MistralModel's sliding window): a [B,1,S,S] float
    mask holding finfo.min once at every hidden key (future, j <= i - window, padding),
    0 elsewhere; added to the scores.
  * modeling_rope_utils: default / linear / dynamic / llama3 inverse frequencies, in
    float32 tensor arithmetic; LlamaRotaryEmbedding: freqs = inv_freq @ position_ids.
  * GemmaModel: embedding * tensor(hidden_size ** 0.5, float32); GemmaRMSNorm's (1 + w);
    GemmaMLP's act_fn from hidden_activation (default gelu_pytorch_tanh).
  * GPTNeoXAttention: fused qkv viewed [B,S,H,3*hd]; partial rotary over the first
    int(hd * rotary_pct) dims; baddbmm(alpha = hd ** -0.5); where(causal, s, min) then +
    the 4-D mask from _prepare_4d_causal_attention_mask (min at future or padding keys).
  * GPTNeoXLayer: parallel or sequential residual.
"""
import json
import math
import os

import numpy as np
import torch

from make_fixtures import F32_MIN, Recorder, read_safetensors

F = torch.nn.functional


def load_weights(model_dir, prefix):
    raw, _ = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    w = {}
    for k, v in raw.items():
        w[k[len(prefix):] if k.startswith(prefix) else k] = torch.from_numpy(v.astype(np.float32))
    return w


def activation(name):
    if name in ("silu", "swish"):
        return F.silu
    if name == "gelu":
        return F.gelu
    if name == "gelu_pytorch_tanh":
        return lambda x: F.gelu(x, approximate="tanh")
    if name == "gelu_new":
        return lambda x: 0.5 * x * (1.0 + torch.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * torch.pow(x, 3.0))))
    raise ValueError("activation %s" % name)


def default_inv_freq(base, dim):
    return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))


def rope_inv_freq(cfg, dim, position_ids):
    """modeling_rope_utils in 4.43, as a freshly loaded model computes it for one call."""
    base = cfg.get("rope_theta", 10000.0)
    rs = cfg.get("rope_scaling")
    kind = (rs or {}).get("rope_type", (rs or {}).get("type", "default"))
    if kind == "default":
        return default_inv_freq(base, dim)
    factor = rs["factor"]
    if kind == "linear":
        return default_inv_freq(base, dim) / factor
    if kind == "dynamic":
        max_pos = cfg["max_position_embeddings"]
        seq_len = torch.max(position_ids) + 1          # LlamaRotaryEmbedding._dynamic_frequency_update
        if not seq_len > max_pos:
            return default_inv_freq(base, dim)
        base = base * ((factor * seq_len / max_pos) - (factor - 1)) ** (dim / (dim - 2))
        return 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    if kind == "llama3":
        inv = default_inv_freq(base, dim)
        low, high = rs["low_freq_factor"], rs["high_freq_factor"]
        old = rs["original_max_position_embeddings"]
        low_wl, high_wl = old / low, old / high
        wavelen = 2 * math.pi / inv
        inv_l = torch.where(wavelen > low_wl, inv / factor, inv)
        smooth = (old / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * inv_l / factor + smooth * inv_l
        medium = ~(wavelen < high_wl) * ~(wavelen > low_wl)
        return torch.where(medium, smoothed, inv_l)
    raise ValueError("rope_scaling %s" % kind)


def rope_cos_sin(inv_freq, position_ids):
    inv = inv_freq[None, :, None].float().expand(position_ids.shape[0], -1, 1)
    freqs = (inv @ position_ids[:, None, :].float()).transpose(1, 2)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos(), emb.sin()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), dim=-1)


def llama_mask(attention_mask, B, S, window):
    """LlamaModel/MistralModel._update_causal_mask for a 2-D mask, no cache."""
    cache_position = torch.arange(S)
    mask = torch.full((S, S), F32_MIN, dtype=torch.float32)
    exclude = torch.arange(S) > cache_position.reshape(-1, 1)
    if window:
        exclude.bitwise_or_(torch.arange(S) <= (cache_position.reshape(-1, 1) - window))
    mask *= exclude
    mask = mask[None, None, :, :].expand(B, 1, -1, -1).clone()
    if attention_mask is not None:
        padding = (mask + attention_mask[:, None, None, :]) == 0
        mask = mask.masked_fill(padding, F32_MIN)
    return mask


class _Ref:
    """config.json, the state dict without the LM class's prefix, and nn.Linear."""

    def __init__(self, model_dir, prefix):
        with open(os.path.join(model_dir, "config.json")) as f:
            self.cfg = json.load(f)
        self.lm = self.cfg["architectures"][0].endswith("ForCausalLM")
        self.w = load_weights(model_dir, prefix)

    def linear(self, x, name):
        return F.linear(x, self.w[name + ".weight"], self.w.get(name + ".bias"))


class LlamaFamilyRef(_Ref):
    def __init__(self, model_dir):
        super().__init__(model_dir, "model.")
        cfg = self.cfg
        self.type = cfg["model_type"]
        assert self.type in ("llama", "mistral", "qwen2", "gemma"), self.type
        self.H = cfg["num_attention_heads"]
        self.KV = cfg.get("num_key_value_heads", self.H)
        self.D = cfg["hidden_size"]
        self.hd = cfg.get("head_dim", self.D // self.H)
        self.eps = cfg["rms_norm_eps"]
        self.gemma = self.type == "gemma"
        self.act = activation((cfg.get("hidden_activation") or "gelu_pytorch_tanh") if self.gemma
                              else cfg.get("hidden_act", "silu"))
        self.window = cfg.get("sliding_window") if self.type == "mistral" else None
        tied = cfg.get("tie_word_embeddings", self.gemma)
        if self.lm:
            self.head = self.w["embed_tokens.weight"] if tied else self.w["lm_head.weight"]

    def norm(self, x, name):
        w = self.w[name + ".weight"]
        var = x.pow(2).mean(-1, keepdim=True)
        h = x * torch.rsqrt(var + self.eps)
        return h * (1.0 + w) if self.gemma else w * h

    @torch.no_grad()
    def forward(self, input_ids, attention_mask, position_ids):
        rec = Recorder()
        B, S = input_ids.shape
        H, KV, hd = self.H, self.KV, self.hd
        x = rec("embed_tokens.output", F.embedding(input_ids, self.w["embed_tokens.weight"]))
        if self.gemma:
            x = x * torch.tensor(self.D ** 0.5, dtype=torch.float32)
        mask = llama_mask(attention_mask, B, S, self.window)
        cos, sin = rope_cos_sin(rope_inv_freq(self.cfg, hd, position_ids), position_ids)
        cos, sin = cos.unsqueeze(1), sin.unsqueeze(1)
        for l in range(self.cfg["num_hidden_layers"]):
            n, p = "layers[%d]." % l, "layers.%d." % l
            rec(n[:-1] + ".input", x)
            residual = x
            rec(n + "input_layernorm.input", x)
            y = rec(n + "input_layernorm.output", self.norm(x, p + "input_layernorm"))
            rec(n + "self_attn.input", y)
            proj = {}
            for name, heads in (("q_proj", H), ("k_proj", KV), ("v_proj", KV)):
                rec(n + "self_attn.%s.input" % name, y)
                t = rec(n + "self_attn.%s.output" % name, self.linear(y, p + "self_attn." + name))
                proj[name] = t.view(B, S, heads, hd).transpose(1, 2)
            q, k, v = proj["q_proj"], proj["k_proj"], proj["v_proj"]
            q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
            k = k.repeat_interleave(H // KV, dim=1)         # repeat_kv
            v = v.repeat_interleave(H // KV, dim=1)
            s = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(hd) + mask
            probs = torch.softmax(s, dim=-1, dtype=torch.float32)
            o = torch.matmul(probs, v).transpose(1, 2).contiguous().reshape(B, S, -1)
            rec(n + "self_attn.o_proj.input", o)
            o = rec(n + "self_attn.o_proj.output", self.linear(o, p + "self_attn.o_proj"))
            rec(n + "self_attn.output", o)
            x = residual + o
            residual = x
            rec(n + "post_attention_layernorm.input", x)
            y = rec(n + "post_attention_layernorm.output", self.norm(x, p + "post_attention_layernorm"))
            rec(n + "mlp.input", y)
            rec(n + "mlp.gate_proj.input", y)
            g = rec(n + "mlp.gate_proj.output", self.linear(y, p + "mlp.gate_proj"))
            rec(n + "mlp.act_fn.input", g)
            a = rec(n + "mlp.act_fn.output", self.act(g))
            rec(n + "mlp.up_proj.input", y)
            u = rec(n + "mlp.up_proj.output", self.linear(y, p + "mlp.up_proj"))
            rec(n + "mlp.down_proj.input", a * u)
            m = rec(n + "mlp.down_proj.output", self.linear(a * u, p + "mlp.down_proj"))
            rec(n + "mlp.output", m)
            x = residual + m
            rec(n[:-1] + ".output", x)
        rec("norm.input", x)
        hidden = rec("norm.output", self.norm(x, "norm"))
        logits = None
        if self.lm:
            rec("lm_head.input", hidden)
            logits = rec("lm_head.output", F.linear(hidden, self.head))
        return logits, hidden, rec.sites


class NeoXRef(_Ref):
    def __init__(self, model_dir):
        super().__init__(model_dir, "gpt_neox.")
        cfg = self.cfg
        assert cfg["model_type"] == "gpt_neox"
        self.H = cfg["num_attention_heads"]
        self.D = cfg["hidden_size"]
        self.hd = self.D // self.H
        self.rot = int(self.hd * cfg.get("rotary_pct", 0.25))
        self.eps = cfg.get("layer_norm_eps", 1e-5)
        self.act = activation(cfg.get("hidden_act", "gelu"))
        self.parallel = cfg.get("use_parallel_residual", True)
        if self.lm:
            self.head = self.w["embed_in.weight"] if cfg.get("tie_word_embeddings") else self.w["embed_out.weight"]

    def ln(self, x, name):
        return F.layer_norm(x, (self.D,), self.w[name + ".weight"], self.w[name + ".bias"], self.eps)

    @torch.no_grad()
    def forward(self, input_ids, attention_mask, position_ids):
        rec = Recorder()
        B, S = input_ids.shape
        H, hd, rot = self.H, self.hd, self.rot
        x = rec("embed_in.output", F.embedding(input_ids, self.w["embed_in.weight"]))
        rec("emb_dropout.input", x)
        x = rec("emb_dropout.output", x)
        # _prepare_4d_causal_attention_mask: min at future keys, masked_fill min at padding
        causal4 = torch.full((S, S), F32_MIN).triu(1)[None, None].expand(B, 1, S, S)
        pad = (1.0 - attention_mask[:, None, None, :].float()).expand(B, 1, S, S).bool()
        mask4 = causal4.masked_fill(pad, F32_MIN)
        causal = torch.tril(torch.ones(S, S, dtype=torch.bool))[None, None]
        # GPTNeoXRotaryEmbedding: cos/sin cached for 0..seq_len-1, then indexed by position
        inv = default_inv_freq(self.cfg.get("rotary_emb_base", 10000), rot)
        t = torch.arange(self.cfg["max_position_embeddings"], dtype=torch.int64).type_as(inv)
        emb = torch.cat((torch.outer(t, inv),) * 2, dim=-1)
        cos, sin = emb.cos()[:S][position_ids].unsqueeze(1), emb.sin()[:S][position_ids].unsqueeze(1)
        norm_factor = hd ** -0.5
        for l in range(self.cfg["num_hidden_layers"]):
            n, p = "layers[%d]." % l, "layers.%d." % l
            rec(n[:-1] + ".input", x)
            rec(n + "input_layernorm.input", x)
            y = rec(n + "input_layernorm.output", self.ln(x, p + "input_layernorm"))
            rec(n + "attention.input", y)
            rec(n + "attention.query_key_value.input", y)
            qkv = rec(n + "attention.query_key_value.output", self.linear(y, p + "attention.query_key_value"))
            qkv = qkv.view(B, S, H, 3 * hd)
            q = qkv[..., :hd].permute(0, 2, 1, 3)
            k = qkv[..., hd:2 * hd].permute(0, 2, 1, 3)
            v = qkv[..., 2 * hd:].permute(0, 2, 1, 3)
            qr, qp, kr, kp = q[..., :rot], q[..., rot:], k[..., :rot], k[..., rot:]
            q = torch.cat((qr * cos + rotate_half(qr) * sin, qp), dim=-1)
            k = torch.cat((kr * cos + rotate_half(kr) * sin, kp), dim=-1)
            s = torch.baddbmm(torch.zeros(B * H, S, S), q.reshape(B * H, S, hd),
                              k.reshape(B * H, S, hd).transpose(1, 2), beta=1.0, alpha=norm_factor)
            s = torch.where(causal, s.view(B, H, S, S), torch.tensor(F32_MIN)) + mask4
            probs = torch.softmax(s, dim=-1)
            rec(n + "attention.attention_dropout.input", probs)
            probs = rec(n + "attention.attention_dropout.output", probs)
            o = torch.matmul(probs, v).permute(0, 2, 1, 3).contiguous().view(B, S, H * hd)
            rec(n + "attention.dense.input", o)
            o = rec(n + "attention.dense.output", self.linear(o, p + "attention.dense"))
            rec(n + "attention.output", o)
            rec(n + "post_attention_dropout.input", o)
            o = rec(n + "post_attention_dropout.output", o)
            ln2_in = x if self.parallel else o + x
            rec(n + "post_attention_layernorm.input", ln2_in)
            y = rec(n + "post_attention_layernorm.output", self.ln(ln2_in, p + "post_attention_layernorm"))
            rec(n + "mlp.input", y)
            rec(n + "mlp.dense_h_to_4h.input", y)
            f = rec(n + "mlp.dense_h_to_4h.output", self.linear(y, p + "mlp.dense_h_to_4h"))
            rec(n + "mlp.act.input", f)
            f = rec(n + "mlp.act.output", self.act(f))
            rec(n + "mlp.dense_4h_to_h.input", f)
            m = rec(n + "mlp.dense_4h_to_h.output", self.linear(f, p + "mlp.dense_4h_to_h"))
            rec(n + "mlp.output", m)
            rec(n + "post_mlp_dropout.input", m)
            m = rec(n + "post_mlp_dropout.output", m)
            x = m + o + x if self.parallel else m + ln2_in
            rec(n[:-1] + ".output", x)
        rec("final_layer_norm.input", x)
        hidden = rec("final_layer_norm.output", self.ln(x, "final_layer_norm"))
        logits = None
        if self.lm:
            rec("embed_out.input", hidden)
            logits = rec("embed_out.output", F.linear(hidden, self.head))
        return logits, hidden, rec.sites
