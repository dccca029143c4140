/* GPT-2 backward: gpt2_forward read bottom to top, each kernel replaced by its backward
 * (core/kernels_grad.h) and each VENE_FIRE by a VENE_FIRE_BACK in exact reverse order, so
 * a backward hook sees the gradient of the tensor its forward hook saw. Weight gradients
 * (rs->param_grads) are computed only in VENE_GRAD_MODEL; otherwise only activations. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/kernels_grad.h"
#include "core/kernels_rows.h"
#include "models/gpt2_internal.h"

#define G(w) vene_run_grad_of(rs, (w))

/* Gradient buffers reused by every layer (zeroed where a kernel accumulates). */
typedef struct gpt2_grads {
    float *dx, *dmout, *dact, *dfc, *db2, *dx2, *dproj, *dmerged, *dprobs, *dqkv, *da;
} gpt2_grads;

static int layer_backward(vene_run *rs, int l, gpt2_grads *g, vene_error *err) {
    const vene_model *m = rs->m;
    const gpt2_weights *w = m->impl;
    const gpt2_layer *L = &w->layers[l];
    const gpt2_saved *sv = rs->saved;
    const gpt2_saved_layer *s = &sv->layers[l];
    const int B = rs->B, S = rs->S, T = B * S, D = m->d_model, F = m->d_ff, H = m->n_head, hd = m->head_dim;
    const size_t TD = (size_t)T * D, TF = (size_t)T * F;
    vene_tensor tdx = vene_tensor_3d(g->dx, B, S, D), tmo = vene_tensor_3d(g->dmout, B, S, D);
    vene_tensor tact = vene_tensor_3d(g->dact, B, S, F), tfc = vene_tensor_3d(g->dfc, B, S, F);
    vene_tensor tb2 = vene_tensor_3d(g->db2, B, S, D), tx2 = vene_tensor_3d(g->dx2, B, S, D);
    vene_tensor tpj = vene_tensor_3d(g->dproj, B, S, D), tm = vene_tensor_3d(g->dmerged, B, S, D);
    vene_tensor tpr = vene_tensor_4d(g->dprobs, B, H, S, S), tqkv = vene_tensor_3d(g->dqkv, B, S, 3 * D);
    vene_tensor ta = vene_tensor_3d(g->da, B, S, D);

    VENE_FIRE_BACK(rs, S_H_OUT, l, &tdx, err);
    /* x_out = x2 + mout */
    memcpy(g->dmout, g->dx, TD * sizeof(float));
    memcpy(g->dx2, g->dx, TD * sizeof(float));
    VENE_FIRE_BACK(rs, S_MLP_OUT, l, &tmo, err);
    VENE_FIRE_BACK(rs, S_MDROP_OUT, l, &tmo, err);
    VENE_FIRE_BACK(rs, S_MDROP_IN, l, &tmo, err);
    VENE_FIRE_BACK(rs, S_MPROJ_OUT, l, &tmo, err);
    memset(g->dact, 0, TF * sizeof(float));
    vk_linear_in_out_backward(g->dmout, s->act, L->mproj_w, g->dact, G(L->mproj_w), G(L->mproj_b), T, F, D);
    VENE_FIRE_BACK(rs, S_MPROJ_IN, l, &tact, err);
    VENE_FIRE_BACK(rs, S_ACT_OUT, l, &tact, err);
    memset(g->dfc, 0, TF * sizeof(float));
    vk_gelu_tanh_backward(g->dact, s->fc, g->dfc, (int64_t)TF);
    VENE_FIRE_BACK(rs, S_ACT_IN, l, &tfc, err);
    VENE_FIRE_BACK(rs, S_FC_OUT, l, &tfc, err);
    memset(g->db2, 0, TD * sizeof(float));
    vk_linear_in_out_backward(g->dfc, s->b2, L->fc_w, g->db2, G(L->fc_w), G(L->fc_b), T, D, F);
    VENE_FIRE_BACK(rs, S_FC_IN, l, &tb2, err);
    VENE_FIRE_BACK(rs, S_MLP_IN, l, &tb2, err);
    VENE_FIRE_BACK(rs, S_LN2_OUT, l, &tb2, err);
    vk_layernorm_backward(g->db2, s->x2, L->ln2_g, g->dx2, G(L->ln2_g), G(L->ln2_b), T, D, m->norm_eps);
    VENE_FIRE_BACK(rs, S_LN2_IN, l, &tx2, err);
    /* x2 = proj + x_in */
    memcpy(g->dproj, g->dx2, TD * sizeof(float));
    memcpy(g->dx, g->dx2, TD * sizeof(float));
    VENE_FIRE_BACK(rs, S_ATTN_OUT, l, &tpj, err);
    VENE_FIRE_BACK(rs, S_RDROP_OUT, l, &tpj, err);
    VENE_FIRE_BACK(rs, S_RDROP_IN, l, &tpj, err);
    VENE_FIRE_BACK(rs, S_CPROJ_OUT, l, &tpj, err);
    memset(g->dmerged, 0, TD * sizeof(float));
    vk_linear_in_out_backward(g->dproj, s->merged, L->proj_w, g->dmerged, G(L->proj_w), G(L->proj_b), T, D, D);
    VENE_FIRE_BACK(rs, S_CPROJ_IN, l, &tm, err);
    memset(g->dprobs, 0, (size_t)B * H * S * S * sizeof(float));
    memset(g->dqkv, 0, TD * 3 * sizeof(float));
    vk_attn_values_backward(g->dmerged, D, s->probs, s->qkv + 2 * D, 3 * D, g->dprobs, g->dqkv + 2 * D, 3 * D, B, S, H,
                            H, hd);
    VENE_FIRE_BACK(rs, S_ADROP_OUT, l, &tpr, err);
    VENE_FIRE_BACK(rs, S_ADROP_IN, l, &tpr, err);
    vk_attn_scores_backward(g->dprobs, s->probs_sm, s->qkv, 3 * D, s->qkv + D, 3 * D, g->dqkv, 3 * D, g->dqkv + D,
                            3 * D, B, S, H, H, hd, sqrtf((float)hd), 0);
    VENE_FIRE_BACK(rs, S_CATTN_OUT, l, &tqkv, err);
    memset(g->da, 0, TD * sizeof(float));
    vk_linear_in_out_backward(g->dqkv, s->a, L->attn_w, g->da, G(L->attn_w), G(L->attn_b), T, D, 3 * D);
    VENE_FIRE_BACK(rs, S_CATTN_IN, l, &ta, err);
    VENE_FIRE_BACK(rs, S_ATTN_IN, l, &ta, err);
    VENE_FIRE_BACK(rs, S_LN1_OUT, l, &ta, err);
    vk_layernorm_backward(g->da, s->x_in, L->ln1_g, g->dx, G(L->ln1_g), G(L->ln1_b), T, D, m->norm_eps);
    VENE_FIRE_BACK(rs, S_LN1_IN, l, &tdx, err);
    VENE_FIRE_BACK(rs, S_H_IN, l, &tdx, err);
    return VENE_OK;
}

int gpt2_backward(vene_run *rs, vene_error *err) {
    const vene_model *m = rs->m;
    const gpt2_weights *w = m->impl;
    const gpt2_saved *sv = rs->saved;
    const int B = rs->B, S = rs->S, T = B * S, D = m->d_model, F = m->d_ff, H = m->n_head;
    const size_t TD = (size_t)T * D;
    /* only the rows the gradient's consumers read (model.h's rule), unless a hook wants
     * attention weights, whose gradient the restricted kernel never forms whole */
    const int *first = vene_run_grad_rows(rs);
    if (rs->site_bhooked[S_ADROP_IN] || rs->site_bhooked[S_ADROP_OUT]) first = NULL;
    if (first) {
        float *kept;
        VENE_GALLOC(kept, (size_t)B);
        if (!vk_rows_unpadded(B, S, first, sv->mask, (int *)(void *)kept)) first = NULL;
        else first = (const int *)(void *)kept;
    }
    vene_run_restrict_rows(rs, first);
    float *dhid;
    VENE_GALLOC(dhid, TD);
    int rc;
    if (m->has_lm_head) {
        if ((rc = vene_run_lm_head_backward(rs, w->wte, S_HEAD_IN, S_HEAD_OUT, dhid, err))) return rc;
    } else if (rs->d_hidden) {
        vk_acc(rs->d_hidden, dhid, (int64_t)TD);
    }
    vene_tensor th = vene_tensor_3d(dhid, B, S, D);
    VENE_FIRE_BACK(rs, S_LNF_OUT, -1, &th, err);
    if (first) return gpt2_backward_rows(rs, first, dhid, err);
    gpt2_grads g;
    VENE_GALLOC(g.dx, TD);
    VENE_GALLOC(g.dmout, TD);
    VENE_GALLOC(g.dact, (size_t)T * F);
    VENE_GALLOC(g.dfc, (size_t)T * F);
    VENE_GALLOC(g.db2, TD);
    VENE_GALLOC(g.dx2, TD);
    VENE_GALLOC(g.dproj, TD);
    VENE_GALLOC(g.dmerged, TD);
    VENE_GALLOC(g.dprobs, (size_t)B * H * S * S);
    VENE_GALLOC(g.dqkv, 3 * TD);
    VENE_GALLOC(g.da, TD);
    vene_tensor tdx = vene_tensor_3d(g.dx, B, S, D);
    vk_layernorm_backward(dhid, sv->x_final, w->lnf_g, g.dx, G(w->lnf_g), G(w->lnf_b), T, D, m->norm_eps);
    VENE_FIRE_BACK(rs, S_LNF_IN, -1, &tdx, err);
    for (int l = m->n_layer - 1; l >= 0; l--)
        if ((rc = layer_backward(rs, l, &g, err))) return rc;
    VENE_FIRE_BACK(rs, S_DROP_OUT, -1, &tdx, err);
    VENE_FIRE_BACK(rs, S_DROP_IN, -1, &tdx, err);
    /* x = wte[ids] + wpe[positions]: both get dx (the hooks may change either copy) */
    memcpy(g.dmout, g.dx, TD * sizeof(float));
    vene_tensor tp = vene_tensor_3d(g.dmout, B, S, D);
    VENE_FIRE_BACK(rs, S_WPE_OUT, -1, &tp, err);
    float *dwpe = G(w->wpe), *dwte = G(w->wte);
    if (dwpe) vk_embed_backward(g.dmout, sv->positions, dwpe, T, D);
    if (sv->ids) {
        VENE_FIRE_BACK(rs, S_WTE_OUT, -1, &tdx, err);
        if (dwte) vk_embed_backward(g.dx, sv->ids, dwte, T, D);
    }
    return VENE_OK;
}
