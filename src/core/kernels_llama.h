/* Forward kernels of the rotary-embedding models, LLaMA family and GPT-NeoX (Hugging Face
 * transformers 4.43, float32): RMSNorm, rotary position embedding (rotate_half
 * convention, also partial), SiLU, exact GELU, element-wise product, and eager attention
 * scores with each family's mask arithmetic. Like kernels.h,
 * every kernel reads and writes caller-provided buffers and allocates nothing. */
#ifndef VENE_CORE_KERNELS_LLAMA_H
#define VENE_CORE_KERNELS_LLAMA_H

#include <stdint.h>

/* LlamaRMSNorm: out = w * (x * rsqrt(mean(x^2) + eps)), row-wise over D; the variance is
 * accumulated in double and rounded to float32 (torch's float32 mean is exact to
 * rounding). out may equal x. */
void vk_rmsnorm(const float *x, const float *w, float *out, int rows, int D, float eps);
/* GemmaRMSNorm: out = (1 + w) * (x * rsqrt(...)), 1 + w rounded to float32 on the fly (w
 * is read at every call, so a model whose weights are being trained sees its updates). */
void vk_rmsnorm_1p(const float *x, const float *w, float *out, int rows, int D, float eps);

/* RoPE inverse frequencies for a rotary width `dim` (even), as HF computes them in
 * float32: inv[i] = 1 / theta^((2i) / dim), i < dim/2, then divided by `linear_factor`
 * (rope_scaling type "linear"; pass 1 for none). */
void vk_rope_inv_freq(float *inv, int dim, double theta, double linear_factor);

/* cos/sin tables for n positions: cos[r*half + i] = cos(pos[r] * inv[i]) (float32
 * product, then cos/sin), half = dim/2. pos NULL means r itself (0, 1, ...). */
void vk_rope_tables(const float *inv, int half, const int32_t *pos, int n, float *cos_t, float *sin_t);

/* Apply RoPE in place to n rows of `n_heads` heads of width hd (row stride ld):
 * x_h = x_h * cos + rotate_half(x_h) * sin with rotate_half(x) = [-x2, x1] and the
 * half-width tables of row r (HF's emb = cat(freqs, freqs)). */
void vk_rope_apply(float *x, int ld, int n, int n_heads, int hd, const float *cos_t, const float *sin_t);
/* The same on the first `rot` (even) dimensions of each head only (GPT-NeoX's rotary_pct);
 * the tables then hold rot / 2 entries per row. */
void vk_rope_apply_partial(float *x, int ld, int n, int n_heads, int hd, int rot, const float *cos_t,
                           const float *sin_t);

/* SiLU: out = x / (1 + exp(-x)); out may equal x. */
void vk_silu(const float *x, float *out, int64_t n);
/* Exact GELU, torch's default: x / 2 * (1 + erf(x / sqrt 2)); out may equal x. */
void vk_gelu_erf(const float *x, float *out, int64_t n);
/* out = a * b element-wise (out may alias a or b). */
void vk_mul(const float *a, const float *b, float *out, int64_t n);

/* Eager scores + softmax of LlamaAttention in float32: s = (q . k) / scale_div, then the
 * 4-D mask of LlamaModel._update_causal_mask is added: float32 min at keys j > i (causal,
 * by sequence index) and at padding keys (mask[key] == 0), 0 elsewhere; softmax over
 * keys. A fully masked row (a padding query at the left) therefore comes out uniform,
 * as in transformers. Head h reads kv head h / (n_head / n_kv) (grouped-query attention).
 * q, k: [B, S, *] with row strides ldq/ldk; probs: [B, H, S, S]. */
void vk_llama_attn_scores(const float *q, int ldq, const float *k, int ldk, float *probs, int B, int S,
                          int n_head, int n_kv, int hd, float scale_div, const uint8_t *mask);
/* The same with Mistral's sliding window: keys j <= i - window are hidden too (the query
 * sees itself and the window - 1 keys before it); window <= 0 means none. */
void vk_llama_attn_scores_window(const float *q, int ldq, const float *k, int ldk, float *probs, int B, int S,
                                 int n_head, int n_kv, int hd, float scale_div, const uint8_t *mask, int window);
/* GPTNeoXAttention._attn (eager, 4.43): s = norm_factor * (q . k) inside the product,
 * future keys become -inf (torch.where to min, then the 4-D mask's min added), padding keys
 * get min added; softmax over keys. A query whose past keys are all padding spreads its
 * weight uniformly over them (itself included). */
void vk_neox_attn_scores(const float *q, int ldq, const float *k, int ldk, float *probs, int B, int S, int n_head,
                         int hd, float norm_factor, const uint8_t *mask);

#endif
