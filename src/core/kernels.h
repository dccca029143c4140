/* Forward kernels for transformer models. Matrix products are the row-stable products of
 * core/gemm.h (a row's result never depends on the rest of the batch); the element-wise
 * kernels are OpenMP loops over rows. Every kernel reads and writes
 * caller-provided buffers and allocates nothing, so a matching backward kernel can be
 * written against the same buffers (see docs/architecture.md). */
#ifndef VENE_CORE_KERNELS_H
#define VENE_CORE_KERNELS_H

#include <stdint.h>

/* Make BLAS single-threaded: vene parallelises products itself over OpenMP's threads (the
 * backward's BLAS products too), so the thread count follows OMP_NUM_THREADS /
 * omp_set_num_threads. Called by vene_run_new. */
void vk_blas_single_thread(void);

/* out[M x N] = x[M x K] * W[K x N] (+ bias[N]); W row-major [in, out] (GPT-2 Conv1D). */
void vk_linear_in_out(const float *x, const float *W, const float *bias, float *out, int M, int K, int N);
/* out[M x N] = x[M x K] * W^T with W [N x K] (torch nn.Linear layout, tied embeddings). */
void vk_linear_out_in(const float *x, const float *W, const float *bias, float *out, int M, int K, int N);

/* Row-wise LayerNorm with biased variance, as torch.nn.LayerNorm. */
void vk_layernorm(const float *x, const float *gamma, const float *beta, float *out, int rows, int D, float eps);
/* GPT-2's gelu_new (tanh approximation), out may equal x. */
void vk_gelu_tanh(const float *x, float *out, int64_t n);
/* The same with the vector code switched off (simd = 0): both give the same bits (gelu.c). */
void vk_gelu_tanh_ex(const float *x, float *out, int64_t n, int simd);
/* out = a + b (out may alias a or b). */
void vk_add(const float *a, const float *b, float *out, int64_t n);
/* Embedding lookup: out[i] = table[ids[i]] (ids validated by the caller). */
void vk_embed(const float *table, const int32_t *ids, float *out, int n, int D);

/* Causal self-attention over a fused or separate q/k/v layout.
 * q, k, v: [B, S, *] with row strides ldq/ldk/ldv; head h of q is columns h*hd..h*hd+hd-1
 * (k and v: head h / (n_head / n_kv) for grouped-query attention).
 * scores are scaled by 1/scale_div (scale_div = sqrt(hd), or 1 for GPT-Neo) — HF divides.
 * Masking follows HF eager attention literally, in float32: causal-masked scores become
 * the float32 minimum, then (1 - mask[key]) * float32 minimum is added; positions beyond
 * `window` keys back are masked like causal ones (window <= 0: none).
 * probs: [B, H, S, S] softmax output (kept for the attention-weight hook).
 * The callback between softmax and the value product lets the caller fire a hook on probs. */
void vk_attn_scores(const float *q, int ldq, const float *k, int ldk, float *probs, int B, int S,
                    int n_head, int n_kv, int hd, float scale_div, const uint8_t *mask, int window);
/* out[B, S, H*hd] (row stride ldo) = probs @ v, heads merged. */
void vk_attn_values(const float *probs, const float *v, int ldv, float *out, int ldo, int B, int S,
                    int n_head, int n_kv, int hd);

/* The keys and values one attention call reads: the pass's own (n = Sq, off = 0), or a
 * KV cache's first n rows per example, of which the pass's Sq queries are the last
 * (query i sits at key index off + i, off = n - Sq). Example b's key j is row
 * k + b * bstride + j * ld (likewise v); mask (NULL = all ones) is example b's key j at
 * mask[b * ldm + j]. */
typedef struct vk_kv {
    const float *k, *v;
    int ld;
    int64_t bstride;
    int n, off;
    const uint8_t *mask;
    int ldm;
} vk_kv;

/* vk_attn_scores / vk_attn_values over a vk_kv: probs is [B, H, Sq, kv->n]. */
void vk_attn_scores_kv(const float *q, int ldq, const vk_kv *kv, float *probs, int B, int Sq, int n_head, int n_kv,
                       int hd, float scale_div, int window);
void vk_attn_values_kv(const float *probs, const vk_kv *kv, float *out, int ldo, int B, int Sq, int n_head, int n_kv,
                       int hd);

#endif
