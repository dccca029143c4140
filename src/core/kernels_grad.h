/* Backward kernels: one per forward kernel in kernels.h / kernels_llama.h.
 *
 * The contract every model relies on (and every new kernel must follow):
 *  - vk_X_backward takes the upstream gradient dy and the buffers the forward read (its
 *    inputs; the output only where the forward's output is what the derivative needs, as
 *    for softmax) and ACCUMULATES into the gradient buffers: dx += ..., dW += ..., so
 *    residual branches and tied weights need no extra code. Callers zero gradients first.
 *  - Any gradient pointer may be NULL: that gradient is not computed (frozen weights cost
 *    nothing, which is how DAS skips the weight products).
 *  - Nothing is allocated; all buffers are caller-owned.
 * Every kernel is checked against central finite differences in tests/test_grad_kernels.c. */
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

#endif
