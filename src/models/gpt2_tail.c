/* GPT-2's deepest read layer on the rows read (vene_run_set_tail, models/model.h).
 *
 * A source pass of an interchange intervention stops at the layer its getters read, and
 * they read a few positions: at the last position of 16, the layer's queries, attention,
 * MLP and residual are 1/16 of the work. Keys and values are still needed at every
 * position. The kept rows are held compactly as the row-restricted backward holds them
 * (vk_rows, core/kernels_rows.h), in buffers of the full forward that the tail does not
 * otherwise use. The result goes back into the kept rows of x only: the other rows keep
 * the layer's input (vk_rows_scatter would zero them). Each kept row equals the full forward's bit for bit:
 * the products are row-stable and the attention kernels compute each query row alone. */
#include <math.h>
#include <string.h>

#include "core/gemm.h"
#include "core/kernels.h"
#include "core/kernels_rows.h"
#include "models/gpt2_internal.h"

void gpt2_tail_layer(const vene_run *rs, const vene_batch *in, const gpt2_layer *L, const vk_rows *r,
                     const gpt2_buffers *f) {
    const vene_model *m = rs->m;
    const int B = r->B, S = r->S, T = B * S, D = m->d_model, F = m->d_ff, H = m->n_head, hd = m->head_dim;
    const int n = r->start[B];
    float *ac = f->x2, *q = f->proj, *pj = f->x2, *xc = f->emb, *x2 = f->proj, *out = f->x2;

    vk_layernorm(f->x, L->ln1_g, L->ln1_b, f->a, T, D, m->norm_eps);
    /* keys and values (columns D .. 3D of c_attn) of every row, queries of the kept ones */
    vk_gemm_nn(f->a, D, L->attn_w + D, 3 * D, L->attn_b + D, f->qkv + D, 3 * D, T, D, 2 * D);
    vk_rows_gather(r, f->a, D, D, ac);
    vk_gemm_nn(ac, D, L->attn_w, 3 * D, L->attn_b, q, D, n, D, D);
    for (int b = 0; b < B; b++) {
        const float *kv0 = f->qkv + (size_t)b * S * 3 * D;
        const int at = r->start[b], rows = r->start[b + 1] - at;
        vk_kv kv = {kv0 + D, kv0 + 2 * D, 3 * D, (int64_t)S * 3 * D, S, r->first[b],
                    in->attn_mask ? in->attn_mask + (size_t)b * S : NULL, S};
        vk_attn_scores_kv(q + (size_t)at * D, D, &kv, f->probs, 1, rows, H, H, hd, sqrtf((float)hd), 0);
        vk_attn_values_kv(f->probs, &kv, f->merged + (size_t)at * D, D, 1, rows, H, H, hd);
    }
    vk_linear_in_out(f->merged, L->proj_w, L->proj_b, pj, n, D, D);
    vk_rows_gather(r, f->x, D, D, xc);
    vk_add(pj, xc, x2, (int64_t)n * D);
    vk_layernorm(x2, L->ln2_g, L->ln2_b, f->b2, n, D, m->norm_eps);
    vk_linear_in_out(f->b2, L->fc_w, L->fc_b, f->fc, n, D, F);
    vk_gelu_tanh(f->fc, f->act, (int64_t)n * F);
    vk_linear_in_out(f->act, L->mproj_w, L->mproj_b, f->mout, n, F, D);
    vk_add(x2, f->mout, out, (int64_t)n * D);
    for (int b = 0; b < B; b++) /* an example's kept rows lie one after another in both */
        memcpy(f->x + vk_rows_full(r, b) * D, out + (size_t)r->start[b] * D,
               sizeof(float) * (size_t)(r->start[b + 1] - r->start[b]) * D);
}
