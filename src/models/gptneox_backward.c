/* GPT-NeoX backward: neox_forward read bottom to top, each kernel replaced by its
 * backward (core/kernels_grad.h) and each VENE_FIRE by a VENE_FIRE_BACK in exact reverse
 * order; a backward hook gets the derivative of the loss with respect to the tensor as
 * its forward hook saw it (with the parallel residual, post_attention_layernorm's input
 * is the block input after input_layernorm read it: its hook sees the residual's and
 * post_attention_layernorm's share, the block input's hooks everything). Weight
 * gradients only in VENE_GRAD_MODEL. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/kernels_grad.h"
#include "models/gptneox_internal.h"

#define G(w) vene_run_grad_of(rs, (w))

/* Beyond neox_run_bytes: every layer keeps its own buffers (13 allocations, two of them
 * copies that only hooked runs take). The backward's gradient buffers fit in
 * run_bytes + grad_bytes. */
size_t neox_grad_bytes(const vene_model *m, int B, int S) {
    size_t T = (size_t)B * S, D = (size_t)m->d_model, F = (size_t)m->d_ff, H = (size_t)m->n_head;
    size_t per_layer = T * D * 9 + T * F * 2 + 2 * (size_t)B * H * S * S;
    return (per_layer * sizeof(float) + 64 * 13) * (size_t)m->n_layer + sizeof(neox_saved) +
           sizeof(neox_saved_layer) * (size_t)m->n_layer + T * sizeof(int32_t) + 64 * 3;
}

/* Gradient buffers reused by every layer (zeroed where a kernel accumulates). */
typedef struct neox_grads {
    float *dx, *dres, *dao, *dmout, *db2, *dmerged, *da, *dq_rot, *dk_rot, *dq, *dk, *dv; /* T x D */
    float *dqkv;                                                                          /* T x 3D */
    float *dact, *dfc;                                                                    /* T x F */
    float *dprobs;                                                                        /* B x H x S x S */
} neox_grads;

/* The MLP and post_attention_layernorm, from the block output's gradient in g->dx: the
 * MLP output's share goes down to post_attention_layernorm's input, which is the block
 * input (g->dx, parallel) or attn_output + block input (g->dres, sequential). */
static int mlp_backward(vene_run *rs, int l, neox_grads *g, vene_error *err) {
    const vene_model *m = rs->m;
    const neox_weights *w = m->impl;
    const neox_layer *L = &w->layers[l];
    const neox_saved_layer *s = &((const neox_saved *)rs->saved)->layers[l];
    const int B = rs->B, S = rs->S, T = B * S, D = m->d_model, F = m->d_ff;
    const size_t TD = (size_t)T * D, TF = (size_t)T * F;
    vene_tensor tx = vene_tensor_3d(g->dx, B, S, D), tmo = vene_tensor_3d(g->dmout, B, S, D);
    vene_tensor tact = vene_tensor_3d(g->dact, B, S, F), tfc = vene_tensor_3d(g->dfc, B, S, F);
    vene_tensor tb2 = vene_tensor_3d(g->db2, B, S, D);
    vene_tensor tln2 = vene_tensor_3d(w->parallel ? g->dx : g->dres, B, S, D);

    VENE_FIRE_BACK(rs, S_L_OUT, l, &tx, err);
    /* parallel: out = (mout + ao) + x_in; sequential: out = mout + (ao + x_in) */
    memcpy(g->dmout, g->dx, TD * sizeof(float));
    if (w->parallel) memcpy(g->dao, g->dx, TD * sizeof(float));
    else memcpy(g->dres, g->dx, TD * sizeof(float));
    VENE_FIRE_BACK(rs, S_PMDROP_OUT, l, &tmo, err);
    VENE_FIRE_BACK(rs, S_PMDROP_IN, l, &tmo, err);
    VENE_FIRE_BACK(rs, S_MLP_OUT, l, &tmo, err);
    VENE_FIRE_BACK(rs, S_PROJ_OUT, l, &tmo, err);
    vk_zero(g->dact, TF);
    vk_linear_out_in_backward(g->dmout, s->act, L->proj_w, g->dact, G(L->proj_w), G(L->proj_b), T, F, D);
    VENE_FIRE_BACK(rs, S_PROJ_IN, l, &tact, err);
    VENE_FIRE_BACK(rs, S_ACT_OUT, l, &tact, err);
    vk_zero(g->dfc, TF);
    if (w->gelu_erf) vk_gelu_erf_backward(g->dact, s->fc, g->dfc, (int64_t)TF);
    else vk_gelu_tanh_backward(g->dact, s->fc, g->dfc, (int64_t)TF);
    VENE_FIRE_BACK(rs, S_ACT_IN, l, &tfc, err);
    VENE_FIRE_BACK(rs, S_FC_OUT, l, &tfc, err);
    vk_zero(g->db2, TD);
    vk_linear_out_in_backward(g->dfc, s->b2, L->fc_w, g->db2, G(L->fc_w), G(L->fc_b), T, D, F);
    VENE_FIRE_BACK(rs, S_FC_IN, l, &tb2, err);
    VENE_FIRE_BACK(rs, S_MLP_IN, l, &tb2, err);
    VENE_FIRE_BACK(rs, S_LN2_OUT, l, &tb2, err);
    vk_layernorm_backward(g->db2, s->ln2_in, L->ln2_g, tln2.data, G(L->ln2_g), G(L->ln2_b), T, D, m->norm_eps);
    VENE_FIRE_BACK(rs, S_LN2_IN, l, &tln2, err);
    if (!w->parallel) { /* ln2_in = ao + x_in */
        memcpy(g->dao, g->dres, TD * sizeof(float));
        memcpy(g->dx, g->dres, TD * sizeof(float));
    }
    return VENE_OK;
}

/* Attention and input_layernorm, from attn_output's gradient (g->dao) down to the block
 * input (g->dx, which already holds the residual's share). */
static int attn_backward(vene_run *rs, int l, neox_grads *g, vene_error *err) {
    const vene_model *m = rs->m;
    const neox_weights *w = m->impl;
    const neox_layer *L = &w->layers[l];
    const neox_saved *sv = rs->saved;
    const neox_saved_layer *s = &sv->layers[l];
    const int B = rs->B, S = rs->S, T = B * S, D = m->d_model, H = m->n_head, hd = m->head_dim;
    const size_t TD = (size_t)T * D;
    vene_tensor tao = vene_tensor_3d(g->dao, B, S, D), tm = vene_tensor_3d(g->dmerged, B, S, D);
    vene_tensor tpr = vene_tensor_4d(g->dprobs, B, H, S, S), tqkv = vene_tensor_3d(g->dqkv, B, S, 3 * D);
    vene_tensor ta = vene_tensor_3d(g->da, B, S, D), tx = vene_tensor_3d(g->dx, B, S, D);

    VENE_FIRE_BACK(rs, S_PADROP_OUT, l, &tao, err);
    VENE_FIRE_BACK(rs, S_PADROP_IN, l, &tao, err);
    VENE_FIRE_BACK(rs, S_ATTN_OUT, l, &tao, err);
    VENE_FIRE_BACK(rs, S_DENSE_OUT, l, &tao, err);
    vk_zero(g->dmerged, TD);
    vk_linear_out_in_backward(g->dao, s->merged, L->dense_w, g->dmerged, G(L->dense_w), G(L->dense_b), T, D, D);
    VENE_FIRE_BACK(rs, S_DENSE_IN, l, &tm, err);
    vk_zero(g->dprobs, (size_t)B * H * S * S);
    vk_zero(g->dv, TD);
    vk_attn_values_backward(g->dmerged, D, s->probs, s->v, D, g->dprobs, g->dv, D, B, S, H, H, hd);
    VENE_FIRE_BACK(rs, S_ADROP_OUT, l, &tpr, err);
    VENE_FIRE_BACK(rs, S_ADROP_IN, l, &tpr, err);
    vk_zero(g->dq_rot, TD);
    vk_zero(g->dk_rot, TD);
    vk_llama_attn_scores_backward(g->dprobs, s->probs_sm, s->q, D, s->k, D, g->dq_rot, D, g->dk_rot, D, B, S, H, H, hd,
                                  (float)pow((double)hd, -0.5));
    vk_zero(g->dq, TD);
    vk_zero(g->dk, TD);
    vk_rope_backward(g->dq_rot, D, g->dq, D, T, H, hd, w->rot, sv->cos_t, sv->sin_t);
    vk_rope_backward(g->dk_rot, D, g->dk, D, T, H, hd, w->rot, sv->cos_t, sv->sin_t);
    /* back into query_key_value's per-head layout [T][h][q, k, v][hd] */
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            float *dst = g->dqkv + (size_t)t * 3 * D + (size_t)h * 3 * hd;
            size_t o = (size_t)t * D + (size_t)h * hd;
            memcpy(dst, g->dq + o, sizeof(float) * (size_t)hd);
            memcpy(dst + hd, g->dk + o, sizeof(float) * (size_t)hd);
            memcpy(dst + 2 * hd, g->dv + o, sizeof(float) * (size_t)hd);
        }
    VENE_FIRE_BACK(rs, S_QKV_OUT, l, &tqkv, err);
    vk_zero(g->da, TD);
    vk_linear_out_in_backward(g->dqkv, s->a, L->qkv_w, g->da, G(L->qkv_w), G(L->qkv_b), T, D, 3 * D);
    VENE_FIRE_BACK(rs, S_QKV_IN, l, &ta, err);
    VENE_FIRE_BACK(rs, S_ATTN_IN, l, &ta, err);
    VENE_FIRE_BACK(rs, S_LN1_OUT, l, &ta, err);
    vk_layernorm_backward(g->da, s->x_ln1, L->ln1_g, g->dx, G(L->ln1_g), G(L->ln1_b), T, D, m->norm_eps);
    VENE_FIRE_BACK(rs, S_LN1_IN, l, &tx, err);
    VENE_FIRE_BACK(rs, S_L_IN, l, &tx, err);
    return VENE_OK;
}

int neox_backward(vene_run *rs, vene_error *err) {
    const vene_model *m = rs->m;
    const neox_weights *w = m->impl;
    const neox_saved *sv = rs->saved;
    const int B = rs->B, S = rs->S, T = B * S, D = m->d_model, H = m->n_head;
    const size_t TD = (size_t)T * D, TF = (size_t)T * m->d_ff;
    neox_grads g;
    float **td[] = {&g.dx, &g.dres, &g.dao, &g.dmout, &g.db2, &g.dmerged, &g.da, &g.dq_rot, &g.dk_rot, &g.dq, &g.dk, &g.dv};
    for (size_t i = 0; i < sizeof td / sizeof *td; i++) VENE_GALLOC(*td[i], TD);
    VENE_GALLOC(g.dqkv, 3 * TD);
    VENE_GALLOC(g.dact, TF);
    VENE_GALLOC(g.dfc, TF);
    VENE_GALLOC(g.dprobs, (size_t)B * H * S * S);
    float *dhid;
    int rc = vene_run_head_backward(rs, w->head, S_HEAD_IN, S_HEAD_OUT, &dhid, err);
    if (rc) return rc;
    vene_tensor th = vene_tensor_3d(dhid, B, S, D), tx = vene_tensor_3d(g.dx, B, S, D);
    VENE_FIRE_BACK(rs, S_NORM_OUT, -1, &th, err);
    vk_layernorm_backward(dhid, sv->x_final, w->norm_g, g.dx, G(w->norm_g), G(w->norm_b), T, D, m->norm_eps);
    VENE_FIRE_BACK(rs, S_NORM_IN, -1, &tx, err);
    for (int l = m->n_layer - 1; l >= 0; l--)
        if ((rc = mlp_backward(rs, l, &g, err)) || (rc = attn_backward(rs, l, &g, err))) return rc;
    VENE_FIRE_BACK(rs, S_EDROP_OUT, -1, &tx, err);
    VENE_FIRE_BACK(rs, S_EDROP_IN, -1, &tx, err);
    return sv->ids ? vene_run_embed_backward(rs, S_EMBED_OUT, sv->ids, w->embed, g.dx, err) : VENE_OK;
}
