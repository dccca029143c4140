/* LLaMA-family backward: llama_forward read bottom to top, each kernel replaced by its
 * backward (core/kernels_grad.h) and each VENE_FIRE by a VENE_FIRE_BACK in exact reverse
 * order. A backward hook gets the derivative of the loss with respect to the tensor as
 * its forward hook saw it: where one buffer is read by several kernels with hooks in
 * between (self_attn's input read by q_proj, then k_proj, then v_proj), the hook of
 * v_proj's input sees only what v_proj passes back, k_proj's input adds k_proj's share,
 * and so on, so an in-place edit made by a forward hook is differentiated exactly.
 * Weight gradients only in VENE_GRAD_MODEL (vene_run_grad_of is NULL otherwise). */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/kernels_grad.h"
#include "models/llama_internal.h"

#define G(w) vene_run_grad_of(rs, (w))

/* Beyond llama_run_bytes: every layer keeps its own buffers (16 allocations, three of
 * them copies that only hooked runs take). The backward's gradient buffers fit in
 * run_bytes + grad_bytes. */
size_t llama_grad_bytes(const vene_model *m, int B, int S) {
    size_t T = (size_t)B * S, D = (size_t)m->d_model, F = (size_t)m->d_ff, H = (size_t)m->n_head;
    size_t Q = H * (size_t)m->head_dim, KV = (size_t)m->n_kv_head * (size_t)m->head_dim;
    size_t per_layer = T * D * 7 + T * Q * 2 + T * KV * 2 + T * F * 4 + (size_t)B * H * S * S;
    return (per_layer * sizeof(float) + 64 * 16) * (size_t)m->n_layer + sizeof(llama_saved) +
           sizeof(llama_saved_layer) * (size_t)m->n_layer + T * sizeof(int32_t) + 64 * 3;
}

/* Gradient buffers reused by every layer (zeroed where a kernel accumulates). */
typedef struct llama_grads {
    float *dx, *dx2, *dao, *dmout, *db2, *da;    /* T x D */
    float *dprod, *dact, *dup, *dgate;           /* T x F */
    float *dmerged, *dq_rot, *dq;                /* T x H*hd */
    float *dk_rot, *dk, *dv;                     /* T x KV*hd */
    float *dprobs;                               /* B x H x S x S */
} llama_grads;

static void norm_backward(const vene_run *rs, const float *dy, const float *x, const float *w, float *dx) {
    const vene_model *m = rs->m;
    const llama_weights *lw = m->impl;
    vk_rmsnorm_backward(dy, x, w, lw->norm_1p ? 1.0f : 0.0f, dx, G(w), rs->B * rs->S, m->d_model, m->norm_eps);
}

static void act_backward(int act, const float *dy, const float *x, float *dx, int64_t n) {
    if (act == ACT_SILU) vk_silu_backward(dy, x, dx, n);
    else if (act == ACT_GELU_TANH) vk_gelu_tanh_backward(dy, x, dx, n);
    else vk_gelu_erf_backward(dy, x, dx, n);
}

/* The MLP, from the block output's gradient in g->dx down to post_attention_layernorm's
 * input (g->dx2). */
static int mlp_backward(vene_run *rs, int l, llama_grads *g, vene_error *err) {
    const vene_model *m = rs->m;
    const llama_weights *w = m->impl;
    const llama_layer *L = &w->layers[l];
    const llama_saved_layer *s = &((const llama_saved *)rs->saved)->layers[l];
    const int B = rs->B, S = rs->S, T = B * S, D = m->d_model, F = m->d_ff;
    const size_t TD = (size_t)T * D, TF = (size_t)T * F;
    vene_tensor tmo = vene_tensor_3d(g->dmout, B, S, D), tprod = vene_tensor_3d(g->dprod, B, S, F);
    vene_tensor tup = vene_tensor_3d(g->dup, B, S, F), tact = vene_tensor_3d(g->dact, B, S, F);
    vene_tensor tgate = vene_tensor_3d(g->dgate, B, S, F), tb2 = vene_tensor_3d(g->db2, B, S, D);
    vene_tensor tx2 = vene_tensor_3d(g->dx2, B, S, D);

    vene_tensor tx = vene_tensor_3d(g->dx, B, S, D);
    VENE_FIRE_BACK(rs, S_L_OUT, l, &tx, err);
    /* x_out = x2 + mout */
    memcpy(g->dmout, g->dx, TD * sizeof(float));
    memcpy(g->dx2, g->dx, TD * sizeof(float));
    VENE_FIRE_BACK(rs, S_MLP_OUT, l, &tmo, err);
    VENE_FIRE_BACK(rs, S_DOWN_OUT, l, &tmo, err);
    vk_zero(g->dprod, TF);
    vk_linear_out_in_backward(g->dmout, s->prod, L->down_w, g->dprod, G(L->down_w), G(L->down_b), T, F, D);
    VENE_FIRE_BACK(rs, S_DOWN_IN, l, &tprod, err);
    vk_zero(g->dact, TF);
    vk_zero(g->dup, TF);
    vk_mul_backward(g->dprod, s->act, s->up, g->dact, g->dup, (int64_t)TF);
    VENE_FIRE_BACK(rs, S_UP_OUT, l, &tup, err);
    vk_zero(g->db2, TD);
    vk_linear_out_in_backward(g->dup, s->b2, L->up_w, g->db2, G(L->up_w), G(L->up_b), T, D, F);
    VENE_FIRE_BACK(rs, S_UP_IN, l, &tb2, err);
    VENE_FIRE_BACK(rs, S_ACT_OUT, l, &tact, err);
    vk_zero(g->dgate, TF);
    act_backward(w->act, g->dact, s->gate, g->dgate, (int64_t)TF);
    VENE_FIRE_BACK(rs, S_ACT_IN, l, &tgate, err);
    VENE_FIRE_BACK(rs, S_GATE_OUT, l, &tgate, err);
    vk_linear_out_in_backward(g->dgate, s->b2_gate, L->gate_w, g->db2, G(L->gate_w), G(L->gate_b), T, D, F);
    VENE_FIRE_BACK(rs, S_GATE_IN, l, &tb2, err);
    VENE_FIRE_BACK(rs, S_MLP_IN, l, &tb2, err);
    VENE_FIRE_BACK(rs, S_LN2_OUT, l, &tb2, err);
    norm_backward(rs, g->db2, s->x2, L->ln2, g->dx2);
    VENE_FIRE_BACK(rs, S_LN2_IN, l, &tx2, err);
    return VENE_OK;
}

/* Self-attention, from post_attention_layernorm's input gradient (g->dx2) down to the
 * block input (g->dx). */
static int attn_backward(vene_run *rs, int l, llama_grads *g, vene_error *err) {
    const vene_model *m = rs->m;
    const llama_weights *w = m->impl;
    const llama_layer *L = &w->layers[l];
    const llama_saved *sv = rs->saved;
    const llama_saved_layer *s = &sv->layers[l];
    const int B = rs->B, S = rs->S, T = B * S, D = m->d_model, H = m->n_head, KVH = m->n_kv_head, hd = m->head_dim;
    const int Q = H * hd, KV = KVH * hd;
    const size_t TD = (size_t)T * D, TQ = (size_t)T * Q, TKV = (size_t)T * KV;
    vene_tensor tao = vene_tensor_3d(g->dao, B, S, D), tm = vene_tensor_3d(g->dmerged, B, S, Q);
    vene_tensor tq = vene_tensor_3d(g->dq, B, S, Q), tk = vene_tensor_3d(g->dk, B, S, KV);
    vene_tensor tv = vene_tensor_3d(g->dv, B, S, KV), ta = vene_tensor_3d(g->da, B, S, D);
    vene_tensor tx = vene_tensor_3d(g->dx, B, S, D);

    /* x2 = x_in + ao */
    memcpy(g->dao, g->dx2, TD * sizeof(float));
    memcpy(g->dx, g->dx2, TD * sizeof(float));
    VENE_FIRE_BACK(rs, S_ATTN_OUT, l, &tao, err);
    VENE_FIRE_BACK(rs, S_O_OUT, l, &tao, err);
    vk_zero(g->dmerged, TQ);
    vk_linear_out_in_backward(g->dao, s->merged, L->o_w, g->dmerged, G(L->o_w), G(L->o_b), T, Q, D);
    VENE_FIRE_BACK(rs, S_O_IN, l, &tm, err);
    vk_zero(g->dprobs, (size_t)B * H * S * S);
    vk_zero(g->dv, TKV);
    vk_attn_values_backward(g->dmerged, Q, s->probs, s->v, KV, g->dprobs, g->dv, KV, B, S, H, KVH, hd);
    vk_zero(g->dq_rot, TQ);
    vk_zero(g->dk_rot, TKV);
    vk_llama_attn_scores_backward(g->dprobs, s->probs, s->q, Q, s->k, KV, g->dq_rot, Q, g->dk_rot, KV, B, S, H, KVH,
                                  hd, 1.0f / sqrtf((float)hd));
    vk_zero(g->dq, TQ);
    vk_zero(g->dk, TKV);
    vk_rope_backward(g->dq_rot, Q, g->dq, Q, T, H, hd, hd, sv->cos_t, sv->sin_t);
    vk_rope_backward(g->dk_rot, KV, g->dk, KV, T, KVH, hd, hd, sv->cos_t, sv->sin_t);
    /* a feeds q_proj, k_proj, v_proj in that order, a hook before each */
    VENE_FIRE_BACK(rs, S_V_OUT, l, &tv, err);
    vk_zero(g->da, TD);
    vk_linear_out_in_backward(g->dv, s->a, L->v_w, g->da, G(L->v_w), G(L->v_b), T, D, KV);
    VENE_FIRE_BACK(rs, S_V_IN, l, &ta, err);
    VENE_FIRE_BACK(rs, S_K_OUT, l, &tk, err);
    vk_linear_out_in_backward(g->dk, s->a_k, L->k_w, g->da, G(L->k_w), G(L->k_b), T, D, KV);
    VENE_FIRE_BACK(rs, S_K_IN, l, &ta, err);
    VENE_FIRE_BACK(rs, S_Q_OUT, l, &tq, err);
    vk_linear_out_in_backward(g->dq, s->a_q, L->q_w, g->da, G(L->q_w), G(L->q_b), T, D, Q);
    VENE_FIRE_BACK(rs, S_Q_IN, l, &ta, err);
    VENE_FIRE_BACK(rs, S_ATTN_IN, l, &ta, err);
    VENE_FIRE_BACK(rs, S_LN1_OUT, l, &ta, err);
    norm_backward(rs, g->da, s->x_in, L->ln1, g->dx);
    VENE_FIRE_BACK(rs, S_LN1_IN, l, &tx, err);
    VENE_FIRE_BACK(rs, S_L_IN, l, &tx, err);
    return VENE_OK;
}

int llama_backward(vene_run *rs, vene_error *err) {
    const vene_model *m = rs->m;
    const llama_weights *w = m->impl;
    const llama_saved *sv = rs->saved;
    const int B = rs->B, S = rs->S, T = B * S, D = m->d_model, F = m->d_ff, H = m->n_head;
    const size_t TD = (size_t)T * D, TF = (size_t)T * F, TQ = (size_t)T * H * m->head_dim;
    const size_t TKV = (size_t)T * m->n_kv_head * m->head_dim;
    llama_grads g;
    float **td[] = {&g.dx, &g.dx2, &g.dao, &g.dmout, &g.db2, &g.da};
    float **tf[] = {&g.dprod, &g.dact, &g.dup, &g.dgate};
    float **tq[] = {&g.dmerged, &g.dq_rot, &g.dq}, **tkv[] = {&g.dk_rot, &g.dk, &g.dv};
    for (size_t i = 0; i < sizeof td / sizeof *td; i++) VENE_GALLOC(*td[i], TD);
    for (size_t i = 0; i < sizeof tf / sizeof *tf; i++) VENE_GALLOC(*tf[i], TF);
    for (size_t i = 0; i < 3; i++) VENE_GALLOC(*tq[i], TQ);
    for (size_t i = 0; i < 3; i++) VENE_GALLOC(*tkv[i], TKV);
    VENE_GALLOC(g.dprobs, (size_t)B * H * S * S);
    float *dhid;
    int rc = vene_run_head_backward(rs, w->head, S_HEAD_IN, S_HEAD_OUT, &dhid, err);
    if (rc) return rc;
    vene_tensor th = vene_tensor_3d(dhid, B, S, D), tx = vene_tensor_3d(g.dx, B, S, D);
    VENE_FIRE_BACK(rs, S_NORM_OUT, -1, &th, err);
    norm_backward(rs, dhid, sv->x_final, w->norm, g.dx);
    VENE_FIRE_BACK(rs, S_NORM_IN, -1, &tx, err);
    for (int l = m->n_layer - 1; l >= 0; l--)
        if ((rc = mlp_backward(rs, l, &g, err)) || (rc = attn_backward(rs, l, &g, err))) return rc;
    /* Gemma scales the lookup after embed_tokens' hook: its gradient is scaled back first */
    if (w->embed_scale != 0.0f)
        for (size_t i = 0; i < TD; i++) g.dx[i] *= w->embed_scale;
    return sv->ids ? vene_run_embed_backward(rs, S_EMBED_OUT, sv->ids, w->embed, g.dx, err) : VENE_OK;
}
