/* GPT-2 backward on the kept rows only (the rule in models/model.h, why it is exact in
 * core/kernels_rows.h): the sequence of gpt2_backward.c below ln_f, every gradient held
 * as compact rows (example b's positions first[b] .. S-1), the frozen-weight products on
 * those rows, attention reading the saved keys and values of every position. Saved
 * activations a row-wise kernel reads (layer-norm inputs, the MLP pre-activation) are
 * gathered into one compact scratch first, so the ordinary kernels serve unchanged.
 * No weight gradients here: the rule allows the restriction only without them. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/kernels_grad.h"
#include "core/kernels_rows.h"
#include "models/gpt2_internal.h"

typedef struct rows_grads {
    float *dx, *dmout, *dact, *dfc, *db2, *dx2, *dproj, *dmerged, *dqkv, *da;
    float *dprobs; /* attention scratch: n_head x rows x S */
    float *keep;   /* saved activations of the kept rows: rows x max(D, F) */
    float *full;   /* a hooked site's full B x S x W view: B*S x max(3D, F) */
} rows_grads;

/* dx (n x in, zeroed first) = dy (n x out) W^T: a linear's backward without weight gradients. */
static void lin_dx(const float *dy, const float *W, float *dx, int n, int in, int out) {
    memset(dx, 0, (size_t)n * in * sizeof(float));
    vk_linear_in_out_backward(dy, NULL, W, dx, NULL, NULL, n, in, out);
}

#define FIRE(site, layer, buf, W) VENE_FIRE_BACK_ROWS(rs, (site), (layer), r, (buf), (W), g->full, err)

static int layer_rows(vene_run *rs, int l, const vk_rows *r, rows_grads *g, vene_error *err) {
    const vene_model *m = rs->m;
    const gpt2_layer *L = &((const gpt2_weights *)m->impl)->layers[l];
    const gpt2_saved_layer *s = &((const gpt2_saved *)rs->saved)->layers[l];
    const int n = r->start[r->B], D = m->d_model, F = m->d_ff, H = m->n_head, hd = m->head_dim;
    const size_t nD = (size_t)n * D, nF = (size_t)n * F;

    FIRE(S_H_OUT, l, g->dx, D);
    /* x_out = x2 + mout */
    memcpy(g->dmout, g->dx, nD * sizeof(float));
    memcpy(g->dx2, g->dx, nD * sizeof(float));
    FIRE(S_MLP_OUT, l, g->dmout, D);
    FIRE(S_MDROP_OUT, l, g->dmout, D);
    FIRE(S_MDROP_IN, l, g->dmout, D);
    FIRE(S_MPROJ_OUT, l, g->dmout, D);
    lin_dx(g->dmout, L->mproj_w, g->dact, n, F, D);
    FIRE(S_MPROJ_IN, l, g->dact, F);
    FIRE(S_ACT_OUT, l, g->dact, F);
    memset(g->dfc, 0, nF * sizeof(float));
    vk_rows_gather(r, s->fc, F, F, g->keep);
    vk_gelu_tanh_backward(g->dact, g->keep, g->dfc, (int64_t)nF);
    FIRE(S_ACT_IN, l, g->dfc, F);
    FIRE(S_FC_OUT, l, g->dfc, F);
    lin_dx(g->dfc, L->fc_w, g->db2, n, D, F);
    FIRE(S_FC_IN, l, g->db2, D);
    FIRE(S_MLP_IN, l, g->db2, D);
    FIRE(S_LN2_OUT, l, g->db2, D);
    vk_rows_gather(r, s->x2, D, D, g->keep);
    vk_layernorm_backward(g->db2, g->keep, L->ln2_g, g->dx2, NULL, NULL, n, D, m->norm_eps);
    FIRE(S_LN2_IN, l, g->dx2, D);
    /* x2 = proj + x_in */
    memcpy(g->dproj, g->dx2, nD * sizeof(float));
    memcpy(g->dx, g->dx2, nD * sizeof(float));
    FIRE(S_ATTN_OUT, l, g->dproj, D);
    FIRE(S_RDROP_OUT, l, g->dproj, D);
    FIRE(S_RDROP_IN, l, g->dproj, D);
    FIRE(S_CPROJ_OUT, l, g->dproj, D);
    lin_dx(g->dproj, L->proj_w, g->dmerged, n, D, D);
    FIRE(S_CPROJ_IN, l, g->dmerged, D);
    /* the attention-weight sites are never hooked here (gpt2_backward keeps the full pass then) */
    memset(g->dqkv, 0, 3 * nD * sizeof(float));
    vk_attn_rows_backward(r, g->dmerged, D, s->probs, s->probs_sm, s->qkv, 3 * D, s->qkv + D, 3 * D, s->qkv + 2 * D,
                          3 * D, g->dprobs, g->dqkv, 3 * D, g->dqkv + D, 3 * D, g->dqkv + 2 * D, 3 * D, H, H, hd,
                          sqrtf((float)hd), 0);
    FIRE(S_CATTN_OUT, l, g->dqkv, 3 * D);
    lin_dx(g->dqkv, L->attn_w, g->da, n, D, 3 * D);
    FIRE(S_CATTN_IN, l, g->da, D);
    FIRE(S_ATTN_IN, l, g->da, D);
    FIRE(S_LN1_OUT, l, g->da, D);
    vk_rows_gather(r, s->x_in, D, D, g->keep);
    vk_layernorm_backward(g->da, g->keep, L->ln1_g, g->dx, NULL, NULL, n, D, m->norm_eps);
    FIRE(S_LN1_IN, l, g->dx, D);
    FIRE(S_H_IN, l, g->dx, D);
    return VENE_OK;
}

int gpt2_backward_rows(vene_run *rs, const int *first, const float *dhid, vene_error *err) {
    const vene_model *m = rs->m;
    const gpt2_weights *w = m->impl;
    const gpt2_saved *sv = rs->saved;
    const int B = rs->B, S = rs->S, D = m->d_model, F = m->d_ff, H = m->n_head;
    float *start_f; /* B + 1 ints in float storage: the gradient arena hands out floats */
    VENE_GALLOC(start_f, (size_t)B + 1);
    vk_rows rows, *r = &rows;
    const int n = vk_rows_init(r, B, S, first, (int *)(void *)start_f);
    const size_t nD = (size_t)n * D, nF = (size_t)n * F;
    rows_grads gr, *g = &gr;
    VENE_GALLOC(g->dx, nD);
    VENE_GALLOC(g->dmout, nD);
    VENE_GALLOC(g->dact, nF);
    VENE_GALLOC(g->dfc, nF);
    VENE_GALLOC(g->db2, nD);
    VENE_GALLOC(g->dx2, nD);
    VENE_GALLOC(g->dproj, nD);
    VENE_GALLOC(g->dmerged, nD);
    VENE_GALLOC(g->dqkv, 3 * nD);
    VENE_GALLOC(g->da, nD);
    VENE_GALLOC(g->dprobs, (size_t)H * n * S);
    VENE_GALLOC(g->keep, (size_t)n * (F > D ? F : D));
    VENE_GALLOC(g->full, (size_t)B * S * (F > 3 * D ? F : 3 * D));

    /* ln_f on the kept rows: dmout holds d(ln_f output) */
    vk_rows_gather(r, dhid, D, D, g->dmout);
    vk_rows_gather(r, sv->x_final, D, D, g->keep);
    vk_layernorm_backward(g->dmout, g->keep, w->lnf_g, g->dx, NULL, NULL, n, D, m->norm_eps);
    FIRE(S_LNF_IN, -1, g->dx, D);
    int rc;
    for (int l = m->n_layer - 1; l >= 0; l--)
        if ((rc = layer_rows(rs, l, r, g, err))) return rc;
    FIRE(S_DROP_OUT, -1, g->dx, D);
    FIRE(S_DROP_IN, -1, g->dx, D);
    /* x = wte[ids] + wpe[positions]: both get dx; no tables to update without weight gradients */
    memcpy(g->dmout, g->dx, nD * sizeof(float));
    FIRE(S_WPE_OUT, -1, g->dmout, D);
    if (sv->ids) FIRE(S_WTE_OUT, -1, g->dx, D);
    return VENE_OK;
}
