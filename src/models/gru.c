/* pyvene's own GRU models (pyvene/models/gru/modelings_gru.py): GRUModel and
 * GRUForClassification ("model_type": "gru"), eval mode (there is no dropout module).
 *
 *   x = inputs_embeds, or wte(input_ids) when include_emb
 *   x += wpe(position_ids)            only when position_ids are given (needs include_emb)
 *   h0_l = 0 for every layer l
 *   for t = 0..S-1:
 *     for l = 0..L-1:                 module cells[l] = GRUCell, called once per step
 *       in = x[:, t] (l = 0) or the state of layer l-1 just computed at this t
 *       a = x2h(in), c = h2h(h_l)     Linear h_dim -> 3 h_dim (bias per include_bias)
 *       r = reset_act(a_r + c_r)      sigmoid; thirds (r, z, n) of the last dimension
 *       z = update_act(a_z + c_z)     sigmoid
 *       n = new_act(a_n + r * c_n)    tanh
 *       h_l = z * h_l + (1 - z) * n   the output of cells[l] at step t
 *   hidden_states = stack of the top layer's states, B x S x h_dim (last_hidden here)
 *   GRUForClassification: logits = score(hidden_states[b, sum(mask[b]) - 1]), Linear
 *   h_dim -> n_labels without bias, B x n_labels (position S-1 without a mask)
 *
 * Every module of a cell fires its sites once per time step with B x h_dim (x2h / h2h
 * outputs: B x 3 h_dim) tensors; where->call of a cell site is therefore the time step.
 * Tensors that are one object in PyTorch are one buffer here: the output of cells[l] at
 * step t is the input of cells[l+1] (and of cells[l+1].x2h) at step t and the input of
 * cells[l].h2h at step t+1 (the state h of the update), so an in-place edit by a hook at
 * one of these sites is what every later use reads, as in PyTorch. x2h / h2h outputs are
 * read through their thirds after their hooks fire (chunk() returns views). The top
 * layer's states are stacked (copied) only after the last step, as torch.stack does.
 *
 * In gradient mode every cell call keeps its own buffers for the backward through time
 * (gru_backward.c).
 *
 * Config keys missing from config.json take GRUConfig's defaults (include_emb false,
 * vocab_size 50257, max_position_embeddings 512, n_layer 2, h_dim 512, n_labels 2,
 * include_bias true). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/kernels.h"
#include "models/gru_internal.h"

static const vene_site_def gru_sites[S_COUNT] = {
    [S_WTE_OUT] = {"wte", 0, 0, "B x S x D"},
    [S_WPE_OUT] = {"wpe", 0, 0, "B x S x D"},
    /* cell sites fire once per time step (where->call = t) */
    [S_CELL_IN] = {"cells[%d]", 1, 1, "B x D per step"},
    [S_X2H_IN] = {"cells[%d].x2h", 1, 1, "B x D per step"},
    [S_X2H_OUT] = {"cells[%d].x2h", 0, 1, "B x 3D per step"},
    [S_H2H_IN] = {"cells[%d].h2h", 1, 1, "B x D per step"},
    [S_H2H_OUT] = {"cells[%d].h2h", 0, 1, "B x 3D per step"},
    [S_RESET_IN] = {"cells[%d].reset_act", 1, 1, "B x D per step"},
    [S_RESET_OUT] = {"cells[%d].reset_act", 0, 1, "B x D per step"},
    [S_UPDATE_IN] = {"cells[%d].update_act", 1, 1, "B x D per step"},
    [S_UPDATE_OUT] = {"cells[%d].update_act", 0, 1, "B x D per step"},
    [S_NEW_IN] = {"cells[%d].new_act", 1, 1, "B x D per step"},
    [S_NEW_OUT] = {"cells[%d].new_act", 0, 1, "B x D per step"},
    [S_CELL_OUT] = {"cells[%d]", 0, 1, "B x D per step"},
    /* score sits beside the backbone (GRUForClassification.score), not under "gru." */
    [S_SCORE_IN] = {"score", 1, 0, "B x D"},
    [S_SCORE_OUT] = {"score", 0, 0, "B x C"},
};

/* pyvene's gru component table (spec §5.4): x2h_output / h2h_output are 3 h_dim wide,
 * every other component (thirds included) h_dim. */
static const vene_component_def gru_components[] = {
    {"cell_input", "cells[%d]", 1, VENE_SPLIT_NONE, 0},
    {"reset_gate_input", "cells[%d].reset_act", 1, VENE_SPLIT_NONE, 0},
    {"update_gate_input", "cells[%d].update_act", 1, VENE_SPLIT_NONE, 0},
    {"new_gate_input", "cells[%d].new_act", 1, VENE_SPLIT_NONE, 0},
    {"reset_gate_output", "cells[%d].reset_act", 0, VENE_SPLIT_NONE, 0},
    {"update_gate_output", "cells[%d].update_act", 0, VENE_SPLIT_NONE, 0},
    {"new_gate_output", "cells[%d].new_act", 0, VENE_SPLIT_NONE, 0},
    {"x2h_output", "cells[%d].x2h", 0, VENE_SPLIT_NONE, 0},
    {"h2h_output", "cells[%d].h2h", 0, VENE_SPLIT_NONE, 0},
    {"reset_x2h_output", "cells[%d].x2h", 0, VENE_SPLIT_THIRD0, 0},
    {"update_x2h_output", "cells[%d].x2h", 0, VENE_SPLIT_THIRD1, 0},
    {"new_x2h_output", "cells[%d].x2h", 0, VENE_SPLIT_THIRD2, 0},
    {"reset_h2h_output", "cells[%d].h2h", 0, VENE_SPLIT_THIRD0, 0},
    {"update_h2h_output", "cells[%d].h2h", 0, VENE_SPLIT_THIRD1, 0},
    {"new_h2h_output", "cells[%d].h2h", 0, VENE_SPLIT_THIRD2, 0},
    {"cell_output", "cells[%d]", 0, VENE_SPLIT_NONE, 0},
};

static const char *const gru_classes[] = {"GRUForClassification", "GRUModel", NULL};

/* Optional int key with a default; present but not an integer is an error. */
static int gru_load(vene_model *m, vene_error *err) {
    int rc, n_labels = 2, include_emb = 0, include_bias = 1;
    if ((rc = vene_config_int_or(m, "n_layer", 2, &m->n_layer, err)) || (rc = vene_config_int_or(m, "h_dim", 512, &m->d_model, err)) ||
        (rc = vene_config_int_or(m, "n_labels", 2, &n_labels, err)) ||
        (rc = vene_config_int_or(m, "vocab_size", 50257, &m->vocab_size, err)) ||
        (rc = vene_config_int_or(m, "max_position_embeddings", 512, &m->n_ctx, err)) ||
        (rc = vene_config_bool_or(m, "include_emb", 0, &include_emb, err)) ||
        (rc = vene_config_bool_or(m, "include_bias", 1, &include_bias, err)))
        return rc;
    if (m->n_layer <= 0 || m->d_model <= 0 || n_labels <= 0 || m->n_ctx <= 0 || (include_emb && m->vocab_size <= 0))
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s/config.json: inconsistent sizes (n_layer %d, h_dim %d, n_labels %d, vocab_size %d, "
                           "max_position_embeddings %d): all must be positive",
                           m->dir, m->n_layer, m->d_model, n_labels, m->vocab_size, m->n_ctx);
    if (m->d_model > (1 << 24) / 3)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: h_dim %d is too large", m->dir, m->d_model);
    m->n_head = m->n_kv_head = 1;
    m->head_dim = m->d_ff = m->d_model;
    m->norm_eps = 0.0f;
    m->has_lm_head = strcmp(m->model_class, "GRUForClassification") == 0;
    m->path_prefix = m->has_lm_head ? "gru." : "";
    static const char *const prefixes[] = {"gru.", NULL};
    vene_weights_set_prefixes(m->weights, prefixes);

    gru_weights *w = calloc(1, sizeof *w);
    if (!w) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    m->impl = w;
    w->n_labels = n_labels;
    w->include_emb = include_emb;
    w->cells = calloc((size_t)m->n_layer, sizeof *w->cells);
    if (!w->cells) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    const int D = m->d_model;
    if (include_emb && ((rc = vene_model_weight(m, "wte.weight", 2, m->vocab_size, D, &w->wte, err)) ||
                        (rc = vene_model_weight(m, "wpe.weight", 2, m->n_ctx, D, &w->wpe, err))))
        return rc;
    for (int l = 0; l < m->n_layer; l++) {
        gru_cell *c = &w->cells[l];
        char n[4][64];
        snprintf(n[0], sizeof n[0], "cells.%d.x2h.weight", l);
        snprintf(n[1], sizeof n[1], "cells.%d.x2h.bias", l);
        snprintf(n[2], sizeof n[2], "cells.%d.h2h.weight", l);
        snprintf(n[3], sizeof n[3], "cells.%d.h2h.bias", l);
        if ((rc = vene_model_weight(m, n[0], 2, 3 * D, D, &c->wx, err)) ||
            (include_bias && (rc = vene_model_weight(m, n[1], 1, 3 * D, 0, &c->bx, err))) ||
            (rc = vene_model_weight(m, n[2], 2, 3 * D, D, &c->wh, err)) ||
            (include_bias && (rc = vene_model_weight(m, n[3], 1, 3 * D, 0, &c->bh, err))))
            return rc;
    }
    if (m->has_lm_head && (rc = vene_model_weight(m, "score.weight", 2, n_labels, D, &w->score_w, err))) return rc;
    return VENE_OK;
}

static void gru_free_impl(vene_model *m) {
    gru_weights *w = m->impl;
    if (w) free(w->cells);
    free(w);
    m->impl = NULL;
}

/* Arena layout of gru_forward, in floats (T = B*S, D = h_dim, L = layers):
 *   x            T*D      inputs (wte output / inputs_embeds copy)
 *   pos          T*D      wpe output
 *   xt           B*D      x[:, t] as a contiguous B x D view
 *   h0           L*B*D    initial states (zeros)
 *   ring         2*(L-1)*B*D  states of the lower layers (step t and t-1)
 *   top          S*B*D    states of the top layer at every step
 *   a, c         2*B*3D   x2h / h2h outputs
 *   gates        6*B*D    reset/update/new inputs and outputs
 *   stack        T*D      top states stacked B x S x D (last_hidden)
 *   pooled       B*D      score input
 *   logits       B*C */
#define GRU_ALLOCS 14

static size_t gru_floats(const vene_model *m, int B, int S) {
    const gru_weights *w = m->impl;
    size_t T = (size_t)B * S, D = (size_t)m->d_model, L = (size_t)m->n_layer, Bz = (size_t)B;
    return 3 * T * D + Bz * D * (1 + L + 2 * (L - 1) + (size_t)S + 6 + 6 + 1) + Bz * (size_t)w->n_labels;
}

static size_t gru_run_bytes(const vene_model *m, int B, int S) {
    return gru_floats(m, B, S) * sizeof(float) + 64 * GRU_ALLOCS;
}

static int gru_site_shape(const vene_model *m, int site, int B, int S, int64_t *shape) {
    const gru_weights *w = m->impl;
    const int D = m->d_model;
    shape[0] = B;
    switch (site) {
    case S_WTE_OUT:
    case S_WPE_OUT:
        shape[1] = S;
        shape[2] = D;
        return 3;
    case S_X2H_OUT:
    case S_H2H_OUT: shape[1] = 3 * (int64_t)D; return 2;
    case S_SCORE_OUT: shape[1] = w->n_labels; return 2;
    default: shape[1] = D; return 2;
    }
}

static int gru_component_width(const vene_model *m, const vene_component_def *c) {
    int wide = c->split == VENE_SPLIT_NONE && (strstr(c->path, ".x2h") || strstr(c->path, ".h2h"));
    return wide ? 3 * m->d_model : m->d_model;
}

/* torch.sigmoid / torch.tanh in float32, evaluated in double and rounded. */
static void sigmoid_(const float *x, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = (float)(1.0 / (1.0 + exp(-(double)x[i])));
}

static void tanh_(const float *x, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) out[i] = (float)tanh((double)x[i]);
}


static int gru_forward(vene_run *rs, const vene_batch *in, vene_error *err) {
    const vene_model *m = rs->m;
    const gru_weights *w = m->impl;
    const int B = in->batch, S = in->seq, T = B * S, D = m->d_model, D3 = 3 * D, L = m->n_layer, C = w->n_labels;
    const size_t BD = (size_t)B * D;
    if (!in->embeds && !w->include_emb)
        return vene_errorf(err, VENE_ERR_ARG,
                           "%s: config.json has include_emb false, so the model has no token embeddings: "
                           "give inputs_embeds (B x S x %d), not input_ids",
                           m->model_class, D);
    if (in->positions && !w->include_emb)
        return vene_errorf(err, VENE_ERR_ARG, "%s: position ids given but config.json has include_emb false (no wpe)",
                           m->model_class);
    float *x, *pos, *xt, *h0, *ring = NULL, *top, *a, *c, *g, *stack;
    VENE_ALLOC(x, (size_t)T * D);
    VENE_ALLOC(pos, (size_t)T * D);
    VENE_ALLOC(xt, BD);
    VENE_ALLOC(h0, (size_t)L * BD);
    if (L > 1) VENE_ALLOC(ring, 2 * (size_t)(L - 1) * BD);
    VENE_ALLOC(top, (size_t)S * BD);
    VENE_ALLOC(a, (size_t)B * D3);
    VENE_ALLOC(c, (size_t)B * D3);
    VENE_ALLOC(g, 6 * BD);
    VENE_ALLOC(stack, (size_t)T * D);
    vene_tensor tX = vene_tensor_3d(x, B, S, D), tP = vene_tensor_3d(pos, B, S, D);
    gru_saved *sv = NULL;
    float *lower = NULL; /* gradient mode: every state of the lower layers, [l][t] */
    int rc;
    if (rs->grad_mode) {
        size_t nsteps = (size_t)L * S, T4 = sizeof(int32_t) * (size_t)T;
        if ((rc = vene_run_keep_bytes(rs, sizeof *sv, (void **)&sv, err)) ||
            (rc = vene_run_keep_bytes(rs, sizeof *sv->steps * nsteps, (void **)&sv->steps, err)) ||
            (rc = vene_run_keep_bytes(rs, sizeof(int32_t) * (size_t)B, (void **)&sv->pooled_at, err)) ||
            (rc = vene_run_keep_ids(rs, in, &sv->ids, err)) ||
            (in->positions && (rc = vene_run_keep_bytes(rs, T4, (void **)&sv->positions, err))))
            return rc;
        if (in->positions) memcpy(sv->positions, in->positions, T4);
        if (L > 1) VENE_ALLOC(lower, (size_t)(L - 1) * S * BD);
    }

    if (in->embeds) {
        memcpy(x, in->embeds, sizeof(float) * (size_t)T * D);
    } else {
        vk_embed(w->wte, in->ids, x, T, D);
        VENE_FIRE(rs, S_WTE_OUT, -1, &tX, err);
    }
    /* pyvene adds wpe only when position_ids are passed (no default positions) */
    if (in->positions) {
        for (int i = 0; i < T; i++)
            memcpy(pos + (size_t)i * D, w->wpe + (size_t)in->positions[i] * D, sizeof(float) * (size_t)D);
        VENE_FIRE(rs, S_WPE_OUT, -1, &tP, err);
        vk_add(x, pos, x, (int64_t)T * D); /* inputs_embeds += position_embeds (in place) */
    }
    memset(h0, 0, sizeof(float) * (size_t)L * BD);

    float *r_in = g, *r = g + BD, *z_in = g + 2 * BD, *z = g + 3 * BD, *n_in = g + 4 * BD, *n = g + 5 * BD;
    vene_tensor tA = vene_tensor_2d(a, B, D3), tC = vene_tensor_2d(c, B, D3);
    vene_tensor tRi = vene_tensor_2d(r_in, B, D), tR = vene_tensor_2d(r, B, D);
    vene_tensor tZi = vene_tensor_2d(z_in, B, D), tZ = vene_tensor_2d(z, B, D);
    vene_tensor tNi = vene_tensor_2d(n_in, B, D), tN = vene_tensor_2d(n, B, D);
    for (int t = 0; t < S; t++) {
        /* x[:, t, :]: a view in PyTorch; only cells[0] at this step reads it, so a
         * contiguous copy behaves the same for in-place edits */
        if (sv) VENE_ALLOC(xt, BD);
        for (int b = 0; b < B; b++)
            memcpy(xt + (size_t)b * D, x + ((size_t)b * S + t) * D, sizeof(float) * (size_t)D);
        float *cur_in = xt; /* cells[l] input at this step */
        for (int l = 0; l < L; l++) {
            const gru_cell *cw = &w->cells[l];
            /* state buffers: previous state (h0 at t = 0) and the new one */
            float *hprev, *hnew;
            if (sv) { /* gradient mode: every call keeps its own buffers */
                VENE_ALLOC(c, (size_t)B * D3);
                VENE_ALLOC(g, 6 * BD);
                r_in = g, r = g + BD, z_in = g + 2 * BD, z = g + 3 * BD, n_in = g + 4 * BD, n = g + 5 * BD;
                tC.data = c, tRi.data = r_in, tR.data = r, tZi.data = z_in, tZ.data = z, tNi.data = n_in, tN.data = n;
            }
            if (l == L - 1) {
                hprev = t ? top + (size_t)(t - 1) * BD : h0 + (size_t)l * BD;
                hnew = top + (size_t)t * BD;
            } else if (sv) {
                float *own = lower + (size_t)l * S * BD;
                hprev = t ? own + (size_t)(t - 1) * BD : h0 + (size_t)l * BD;
                hnew = own + (size_t)t * BD;
            } else {
                float *slot = ring + (size_t)l * 2 * BD;
                hprev = t ? slot + (size_t)((t - 1) & 1) * BD : h0 + (size_t)l * BD;
                hnew = slot + (size_t)(t & 1) * BD;
            }
            vene_tensor tIn = vene_tensor_2d(cur_in, B, D), tH = vene_tensor_2d(hprev, B, D);
            vene_tensor tOut = vene_tensor_2d(hnew, B, D);
            VENE_FIRE(rs, S_CELL_IN, l, &tIn, err);
            VENE_FIRE(rs, S_X2H_IN, l, &tIn, err);
            const float *xin = cur_in;
            if (sv && (rc = vene_run_keep(rs, cur_in, BD, l > 0 && rs->site_hooked[S_H2H_IN], &xin, err))) return rc;
            vk_linear_out_in(cur_in, cw->wx, cw->bx, a, B, D, D3);
            VENE_FIRE(rs, S_X2H_OUT, l, &tA, err);
            VENE_FIRE(rs, S_H2H_IN, l, &tH, err);
            vk_linear_out_in(hprev, cw->wh, cw->bh, c, B, D, D3);
            VENE_FIRE(rs, S_H2H_OUT, l, &tC, err);
            for (int b = 0; b < B; b++) {
                const float *ab = a + (size_t)b * D3, *cb = c + (size_t)b * D3;
                float *rib = r_in + (size_t)b * D, *zib = z_in + (size_t)b * D;
                for (int i = 0; i < D; i++) {
                    rib[i] = ab[i] + cb[i];
                    zib[i] = ab[D + i] + cb[D + i];
                }
            }
            VENE_FIRE(rs, S_RESET_IN, l, &tRi, err);
            sigmoid_(r_in, r, (int64_t)BD);
            VENE_FIRE(rs, S_RESET_OUT, l, &tR, err);
            VENE_FIRE(rs, S_UPDATE_IN, l, &tZi, err);
            sigmoid_(z_in, z, (int64_t)BD);
            VENE_FIRE(rs, S_UPDATE_OUT, l, &tZ, err);
            for (int b = 0; b < B; b++) {
                const float *ab = a + (size_t)b * D3 + 2 * D, *cb = c + (size_t)b * D3 + 2 * D;
                const float *rb = r + (size_t)b * D;
                float *nib = n_in + (size_t)b * D;
                for (int i = 0; i < D; i++) nib[i] = ab[i] + rb[i] * cb[i];
            }
            VENE_FIRE(rs, S_NEW_IN, l, &tNi, err);
            tanh_(n_in, n, (int64_t)BD);
            VENE_FIRE(rs, S_NEW_OUT, l, &tN, err);
            for (size_t i = 0; i < BD; i++) hnew[i] = z[i] * hprev[i] + (1.0f - z[i]) * n[i];
            VENE_FIRE(rs, S_CELL_OUT, l, &tOut, err);
            if (sv) sv->steps[(size_t)t * L + l] = (gru_saved_step){xin, hprev, c, r_in, r, z_in, z, n_in, n};
            cur_in = hnew;
        }
    }
    /* torch.stack(all_hidden_states, dim=1) after the loop */
    for (int t = 0; t < S; t++)
        for (int b = 0; b < B; b++)
            memcpy(stack + ((size_t)b * S + t) * D, top + (size_t)t * BD + (size_t)b * D, sizeof(float) * (size_t)D);
    rs->last_hidden = vene_tensor_3d(stack, B, S, D);
    if (m->has_lm_head) {
        float *pooled, *logits;
        VENE_ALLOC(pooled, BD);
        VENE_ALLOC(logits, (size_t)B * C);
        for (int b = 0; b < B; b++) {
            /* sequence_lengths = attention_mask.sum(-1) - 1 (or S - 1); index -1 wraps */
            int idx = S - 1;
            if (in->attn_mask) {
                idx = -1;
                for (int s = 0; s < S; s++) idx += in->attn_mask[(size_t)b * S + s] != 0;
                if (idx < 0) idx += S;
            }
            memcpy(pooled + (size_t)b * D, stack + ((size_t)b * S + idx) * D, sizeof(float) * (size_t)D);
            if (sv) sv->pooled_at[b] = idx;
        }
        vene_tensor tPool = vene_tensor_2d(pooled, B, D), tS = vene_tensor_2d(logits, B, C);
        VENE_FIRE(rs, S_SCORE_IN, -1, &tPool, err);
        vk_linear_out_in(pooled, w->score_w, NULL, logits, B, D, C);
        VENE_FIRE(rs, S_SCORE_OUT, -1, &tS, err);
        rs->logits = tS;
        rs->has_logits = 1;
        if (sv) sv->pooled = pooled;
    }
    if (sv) rs->saved = sv; /* complete: backward may read it */
    return VENE_OK;
}

const vene_arch vene_arch_gru = {
    .model_type = "gru",
    .classes = gru_classes,
    .sites = gru_sites,
    .n_sites = S_COUNT,
    .components = gru_components,
    .n_components = sizeof gru_components / sizeof gru_components[0],
    .load = gru_load,
    .free_impl = gru_free_impl,
    .run_bytes = gru_run_bytes,
    .forward = gru_forward,
    .site_shape = gru_site_shape,
    .component_width = gru_component_width,
    .grad_bytes = gru_grad_bytes,
    .backward = gru_backward,
};
