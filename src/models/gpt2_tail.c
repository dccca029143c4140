/* GPT-2's deepest read layer on the rows read (vene_run_set_tail, models/model.h).
 *
 * A source pass of an interchange intervention stops at the layer its getters read, and
 * they read a few positions: at the last position of 16, the layer's queries, attention,
 * MLP and residual are 1/16 of the work. Keys and values are still needed at every
 * position. The kept rows of example b (positions first[b] .. S - 1) lie one after another
 * in memory, so they are gathered and scattered with one copy per example; every step
 * below runs on them compactly, in buffers of the full forward that the tail does not
 * otherwise use (no new scratch). Each kept row equals the full forward's bit for bit:
 * the products are row-stable and the attention kernels compute each query row alone. */
#include <math.h>
#include <string.h>

#include "core/gemm.h"
#include "core/kernels.h"
#include "models/gpt2_internal.h"

static void gather(const float *full, float *compact, int B, int S, int W, const int *first) {
    for (int b = 0, at = 0; b < B; at += S - first[b], b++)
        memcpy(compact + (size_t)at * W, full + ((size_t)b * S + first[b]) * W, sizeof(float) * (size_t)(S - first[b]) * W);
}

static void scatter(const float *compact, float *full, int B, int S, int W, const int *first) {
    for (int b = 0, at = 0; b < B; at += S - first[b], b++)
        memcpy(full + ((size_t)b * S + first[b]) * W, compact + (size_t)at * W, sizeof(float) * (size_t)(S - first[b]) * W);
}

void gpt2_tail_layer(const vene_run *rs, const vene_batch *in, const gpt2_layer *L, const gpt2_buffers *f) {
    const vene_model *m = rs->m;
    const int B = in->batch, S = in->seq, T = B * S, D = m->d_model, F = m->d_ff, H = m->n_head, hd = m->head_dim;
    const int *first = rs->tail_first;
    int n = 0;
    for (int b = 0; b < B; b++) n += S - first[b];
    float *ac = f->x2, *q = f->proj, *pj = f->x2, *xc = f->emb, *x2 = f->proj, *out = f->x2;

    vk_layernorm(f->x, L->ln1_g, L->ln1_b, f->a, T, D, m->norm_eps);
    /* keys and values (columns D .. 3D of c_attn) of every row, queries of the kept ones */
    vk_gemm_nn(f->a, D, L->attn_w + D, 3 * D, L->attn_b + D, f->qkv + D, 3 * D, T, D, 2 * D);
    gather(f->a, ac, B, S, D, first);
    vk_gemm_nn(ac, D, L->attn_w, 3 * D, L->attn_b, q, D, n, D, D);
    for (int b = 0, at = 0; b < B; at += S - first[b], b++) {
        const float *kv0 = f->qkv + (size_t)b * S * 3 * D;
        vk_kv kv = {kv0 + D, kv0 + 2 * D, 3 * D, (int64_t)S * 3 * D, S, first[b],
                    in->attn_mask ? in->attn_mask + (size_t)b * S : NULL, S};
        vk_attn_scores_kv(q + (size_t)at * D, D, &kv, f->probs, 1, S - first[b], H, H, hd, sqrtf((float)hd), 0);
        vk_attn_values_kv(f->probs, &kv, f->merged + (size_t)at * D, D, 1, S - first[b], H, H, hd);
    }
    vk_linear_in_out(f->merged, L->proj_w, L->proj_b, pj, n, D, D);
    gather(f->x, xc, B, S, D, first);
    vk_add(pj, xc, x2, (int64_t)n * D);
    vk_layernorm(x2, L->ln2_g, L->ln2_b, f->b2, n, D, m->norm_eps);
    vk_linear_in_out(f->b2, L->fc_w, L->fc_b, f->fc, n, D, F);
    vk_gelu_tanh(f->fc, f->act, (int64_t)n * F);
    vk_linear_in_out(f->act, L->mproj_w, L->mproj_b, f->mout, n, F, D);
    vk_add(x2, f->mout, out, (int64_t)n * D);
    scatter(out, f->x, B, S, D, first);
}
