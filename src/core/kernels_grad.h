/* Backward kernels: one per forward kernel in kernels.h / kernels_llama.h.
 *
 * The contract every model relies on (and every new kernel must follow):
 *  - vk_X_backward takes the upstream gradient dy and the buffers the forward read (its
 *    inputs; the output only where the forward's output is what the derivative needs, as
 *    for softmax) and ACCUMULATES into the gradient buffers: dx += ..., dW += ..., so
 *    residual branches and tied weights need no extra code. Callers zero gradients first.
 *  - Any gradient pointer may be NULL: that gradient is not computed (frozen weights cost
 *    nothing, which is how DAS skips the weight products).
 *  - All buffers are caller-owned (the products pack their input into scratch that does
 *    not outlive the call).
 * Every kernel is checked against central finite differences in tests/test_grad_kernels.c
 * and tests/test_grad_kernels_llama.c. */
#ifndef VENE_CORE_KERNELS_GRAD_H
#define VENE_CORE_KERNELS_GRAD_H

#include <stdint.h>

/* y[M x N] = x[M x K] W[K x N] + b:  dx += dy W^T, dW += x^T dy, db += colsum(dy). */
void vk_linear_in_out_backward(const float *dy, const float *x, const float *W, float *dx, float *dW, float *db,
                               int M, int K, int N);
/* y[M x N] = x[M x K] W^T + b, W [N x K]:  dx += dy W, dW += dy^T x, db += colsum(dy). */
void vk_linear_out_in_backward(const float *dy, const float *x, const float *W, float *dx, float *dW, float *db,
                               int M, int K, int N);
/* LayerNorm (statistics recomputed from x). */
void vk_layernorm_backward(const float *dy, const float *x, const float *gamma, float *dx, float *dgamma,
                           float *dbeta, int rows, int D, float eps);
/* gelu_new (tanh approximation). */
void vk_gelu_tanh_backward(const float *dy, const float *x, float *dx, int64_t n);
/* SiLU x * sigmoid(x). */
void vk_silu_backward(const float *dy, const float *x, float *dx, int64_t n);
/* dtable[ids[i]] += dy[i]. */
void vk_embed_backward(const float *dy, const int32_t *ids, float *dtable, int n, int D);

/* Attention, split where the forward fires the attention-weight hook:
 * values: out = probs @ v  ->  dprobs += dout v^T, dv += probs^T dout.
 * Strides as in vk_attn_values; dv has row stride lddv (fused buffers allowed). */
void vk_attn_values_backward(const float *dout, int ldo, const float *probs, const float *v, int ldv, float *dprobs,
                             float *dv, int lddv, int B, int S, int n_head, int n_kv, int hd);
/* scores: probs = softmax(mask(q k^T / scale_div)). `probs` is the softmax output as the
 * forward computed it (before any hook changed it). Masked entries get no gradient.
 * dq (row stride lddq) += dscores k / scale_div, dk (lddk) += dscores^T q / scale_div. */
void vk_attn_scores_backward(const float *dprobs, const float *probs, const float *q, int ldq, const float *k,
                             int ldk, float *dq, int lddq, float *dk, int lddk, int B, int S, int n_head, int n_kv,
                             int hd, float scale_div, int window);

/* dx += dy where the forward was out = a + b (both inputs get dy). */
void vk_acc(const float *dy, float *dx, int64_t n);
/* x = 0 (gradient buffers reused across layers, before a kernel accumulates into them). */
void vk_zero(float *x, int64_t n);

/* ---- the rotary-embedding models' kernels (kernels_llama.h), checked in
 * tests/test_grad_kernels_llama.c */

/* RMSNorm y = (offset + w) * x * rstd(x): offset 0 is LlamaRMSNorm (vk_rmsnorm), 1 Gemma's
 * (1 + w) form (vk_rmsnorm_1p); dw is the gradient of the stored w in both forms. */
void vk_rmsnorm_backward(const float *dy, const float *x, const float *w, float offset, float *dx, float *dw,
                         int rows, int D, float eps);
/* RoPE on the first `rot` dims of each head (vk_rope_apply_partial; rot = hd for
 * vk_rope_apply): dx += R^T dy there, dx += dy on the dims that pass through. dy and dx
 * are n rows of n_heads heads of hd floats with row strides ldy / lddx (not aliased). */
void vk_rope_backward(const float *dy, int ldy, float *dx, int lddx, int n, int n_heads, int hd, int rot,
                      const float *cos_t, const float *sin_t);
/* out = a * b (vk_mul; the SwiGLU / GeGLU product): da += dy * b, db += dy * a. */
void vk_mul_backward(const float *dy, const float *a, const float *b, float *da, float *db, int64_t n);
/* Exact GELU x / 2 * (1 + erf(x / sqrt 2)) (vk_gelu_erf). */
void vk_gelu_erf_backward(const float *dy, const float *x, float *dx, int64_t n);
/* Scores of vk_llama_attn_scores(_window) and vk_neox_attn_scores: probs = softmax(scale *
 * q.k + additive mask), scale = 1 / scale_div for the LLaMA family, norm_factor for NeoX.
 * The masks are additive, so, as in torch's autograd, the gradient passes wherever the
 * softmax output is nonzero: masked keys come out exactly 0 except in rows whose every
 * key is masked (a left-padding query), which the forward makes uniform and autograd
 * differentiates as such. `probs` is the softmax output before any hook changed it.
 * dq (row stride lddq) += scale dscores k, dk (lddk) += scale dscores^T q; GQA as in the
 * forward (head h reads kv head h / (n_head / n_kv)). */
void vk_llama_attn_scores_backward(const float *dprobs, const float *probs, const float *q, int ldq, const float *k,
                                   int ldk, float *dq, int lddq, float *dk, int lddk, int B, int S, int n_head,
                                   int n_kv, int hd, float scale);

#endif
