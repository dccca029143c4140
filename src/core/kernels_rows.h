/* Row-restricted backward: the kernels a model's backward needs when only the gradient
 * rows of positions s >= first[b] of each example b are wanted.
 *
 * Why it is exact: with causal attention nothing at a position < first[b] depends on what
 * happens at positions >= first[b], so the gradient at rows >= first[b] never flows into
 * rows < first[b] and vice versa. When every consumer of the gradient (the intervention
 * backward hooks) reads only rows >= first[b], a backward can run every layer on those
 * rows alone, stored compactly: example b's rows first[b] .. S-1 one after another, the
 * examples in order (vk_rows maps compact rows to full ones). Products with frozen
 * weights then cost (rows kept / B*S) of the full backward's; attention reads the saved
 * keys and values of every position but drops the key/value gradients of positions
 * < first[b].
 *
 * Nothing here allocates; buffers are caller-owned. */
#ifndef VENE_CORE_KERNELS_ROWS_H
#define VENE_CORE_KERNELS_ROWS_H

#include <stdint.h>

typedef struct vk_rows {
    int B, S;
    const int *first;  /* B: first kept position of each example (0 <= first[b] < S), borrowed */
    int *start;        /* B + 1: compact row of example b's first kept row; start[B] = rows kept */
} vk_rows;

/* Padding breaks the premise: a query whose every visible key is padding gets (as in
 * Hugging Face) a uniform softmax over the masked entries, future positions included, so
 * it depends on later positions. out[b] = first[b], or 0 (keep every row) for an example
 * with padding (mask 0) before first[b]; mask B x S or NULL. Returns whether any example
 * still drops rows. */
int vk_rows_unpadded(int B, int S, const int *first, const uint8_t *mask, int *out);
/* Fill r (start: caller's B + 1 ints) and return the number of rows kept. */
int vk_rows_init(vk_rows *r, int B, int S, const int *first, int *start);
/* Full row index (b * S + s) of example b's first kept row. */
static inline int64_t vk_rows_full(const vk_rows *r, int b) { return (int64_t)b * r->S + r->first[b]; }

/* compact[rows kept x W] = the kept rows of full[B*S x W] (row stride ldf >= W). */
void vk_rows_gather(const vk_rows *r, const float *full, int ldf, int W, float *compact);
/* full[B*S x W] = compact at the kept rows, zero at the others. */
void vk_rows_scatter(const vk_rows *r, const float *compact, int W, float *full);

/* vk_attn_rows_backward's two halves, so hooks can fire on dprobs between them (the full
 * backward's vk_attn_values_backward / vk_attn_scores_backward are these with every row
 * kept). Both accumulate; dprobs is n_head * rows kept * S (example b's head h at row
 * n_head * start[b] + h * (S - first[b])). dprobs, dv, dq or dk may be NULL (not wanted). */
void vk_attn_rows_values_backward(const vk_rows *r, const float *dout, int ldo, const float *probs, const float *v,
                                  int ldv, float *dprobs, float *dv, int lddv, int n_head, int n_kv, int hd);
void vk_attn_rows_scores_backward(const vk_rows *r, const float *dprobs, const float *probs_sm, const float *q, int ldq,
                                  const float *k, int ldk, float *dq, int lddq, float *dk, int lddk, int n_head,
                                  int n_kv, int hd, float scale_div, int window);

/* Attention backward for the kept query rows (GPT-2's and GPT-Neo's masking: query i sees
 * keys j <= i, within `window` when > 0), values and scores in one call:
 *   out = probs @ v, probs = softmax(mask(q k^T / scale_div)).
 * dout (compact, row stride ldo) is the gradient of the kept rows of out; probs (after
 * the attention-weight hooks) and probs_sm (the softmax output before them) are the
 * forward's B x n_head x S x S; q, k, v are the forward's full B*S-row buffers. Writes
 * (accumulates) dq, dk, dv in compact rows: dq of the kept queries, dk / dv of the kept
 * keys (the gradients of earlier keys are exactly what the restriction drops). dprobs:
 * scratch of n_head * rows-kept * S floats (zeroed here). Heads of one kv group share k and v (GQA). */
void vk_attn_rows_backward(const vk_rows *r, const float *dout, int ldo, const float *probs, const float *probs_sm,
                           const float *q, int ldq, const float *k, int ldk, const float *v, int ldv, float *dprobs,
                           float *dq, int lddq, float *dk, int lddk, float *dv, int lddv, int n_head, int n_kv,
                           int hd, float scale_div, int window);

#endif
