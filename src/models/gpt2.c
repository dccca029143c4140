/* GPT-2 (Hugging Face GPT2Model / GPT2LMHeadModel), eager attention, eval mode.
 * The forward reads top to bottom like the Hugging Face modules it mirrors; each
 * VENE_FIRE is one hook site, fired in the order PyTorch hooks would fire. */
#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/kernels.h"
#include "core/kernels_rows.h"
#include "models/gpt2_internal.h"
#include "models/kv_cache.h"
#include "models/resume.h"

static const vene_site_def gpt2_sites[S_COUNT] = {
    [S_WTE_OUT] = {"wte", 0, 0, "B x S x D"},
    [S_WPE_OUT] = {"wpe", 0, 0, "B x S x D"},
    [S_DROP_IN] = {"drop", 1, 0, "B x S x D"},
    [S_DROP_OUT] = {"drop", 0, 0, "B x S x D"},
    [S_H_IN] = {"h[%d]", 1, 1, "B x S x D"},
    [S_LN1_IN] = {"h[%d].ln_1", 1, 1, "B x S x D"},
    [S_LN1_OUT] = {"h[%d].ln_1", 0, 1, "B x S x D"},
    [S_ATTN_IN] = {"h[%d].attn", 1, 1, "B x S x D"},
    [S_CATTN_IN] = {"h[%d].attn.c_attn", 1, 1, "B x S x D"},
    [S_CATTN_OUT] = {"h[%d].attn.c_attn", 0, 1, "B x S x 3D"},
    [S_ADROP_IN] = {"h[%d].attn.attn_dropout", 1, 1, "B x H x S x S"},
    [S_ADROP_OUT] = {"h[%d].attn.attn_dropout", 0, 1, "B x H x S x S"},
    [S_CPROJ_IN] = {"h[%d].attn.c_proj", 1, 1, "B x S x D"},
    [S_CPROJ_OUT] = {"h[%d].attn.c_proj", 0, 1, "B x S x D"},
    [S_RDROP_IN] = {"h[%d].attn.resid_dropout", 1, 1, "B x S x D"},
    [S_RDROP_OUT] = {"h[%d].attn.resid_dropout", 0, 1, "B x S x D"},
    [S_ATTN_OUT] = {"h[%d].attn", 0, 1, "B x S x D"},
    [S_LN2_IN] = {"h[%d].ln_2", 1, 1, "B x S x D"},
    [S_LN2_OUT] = {"h[%d].ln_2", 0, 1, "B x S x D"},
    [S_MLP_IN] = {"h[%d].mlp", 1, 1, "B x S x D"},
    [S_FC_IN] = {"h[%d].mlp.c_fc", 1, 1, "B x S x D"},
    [S_FC_OUT] = {"h[%d].mlp.c_fc", 0, 1, "B x S x F"},
    [S_ACT_IN] = {"h[%d].mlp.act", 1, 1, "B x S x F"},
    [S_ACT_OUT] = {"h[%d].mlp.act", 0, 1, "B x S x F"},
    [S_MPROJ_IN] = {"h[%d].mlp.c_proj", 1, 1, "B x S x F"},
    [S_MPROJ_OUT] = {"h[%d].mlp.c_proj", 0, 1, "B x S x D"},
    [S_MDROP_IN] = {"h[%d].mlp.dropout", 1, 1, "B x S x D"},
    [S_MDROP_OUT] = {"h[%d].mlp.dropout", 0, 1, "B x S x D"},
    [S_MLP_OUT] = {"h[%d].mlp", 0, 1, "B x S x D"},
    [S_H_OUT] = {"h[%d]", 0, 1, "B x S x D"},
    [S_LNF_IN] = {"ln_f", 1, 0, "B x S x D"},
    [S_LNF_OUT] = {"ln_f", 0, 0, "B x S x D"},
    [S_HEAD_IN] = {"lm_head", 1, 0, "B x S x D"},
    [S_HEAD_OUT] = {"lm_head", 0, 0, "B x S x V"},
};

/* pyvene's gpt2 component table (spec §5.4). */
static const vene_component_def gpt2_components[] = {
    {"block_input", "h[%d]", 1, VENE_SPLIT_NONE, 0},
    {"block_output", "h[%d]", 0, VENE_SPLIT_NONE, 0},
    {"mlp_activation", "h[%d].mlp.act", 0, VENE_SPLIT_NONE, 0},
    {"mlp_output", "h[%d].mlp", 0, VENE_SPLIT_NONE, 0},
    {"mlp_input", "h[%d].mlp", 1, VENE_SPLIT_NONE, 0},
    {"attention_value_output", "h[%d].attn.c_proj", 1, VENE_SPLIT_NONE, 0},
    {"head_attention_value_output", "h[%d].attn.c_proj", 1, VENE_SPLIT_NONE, 1},
    {"attention_weight", "h[%d].attn.attn_dropout", 1, VENE_SPLIT_NONE, 0},
    {"attention_output", "h[%d].attn.resid_dropout", 0, VENE_SPLIT_NONE, 0},
    {"attention_input", "h[%d].attn", 1, VENE_SPLIT_NONE, 0},
    {"query_output", "h[%d].attn.c_attn", 0, VENE_SPLIT_THIRD0, 0},
    {"key_output", "h[%d].attn.c_attn", 0, VENE_SPLIT_THIRD1, 0},
    {"value_output", "h[%d].attn.c_attn", 0, VENE_SPLIT_THIRD2, 0},
    {"head_query_output", "h[%d].attn.c_attn", 0, VENE_SPLIT_THIRD0, 1},
    {"head_key_output", "h[%d].attn.c_attn", 0, VENE_SPLIT_THIRD1, 1},
    {"head_value_output", "h[%d].attn.c_attn", 0, VENE_SPLIT_THIRD2, 1},
};

static const char *const gpt2_classes[] = {"GPT2LMHeadModel", "GPT2Model", NULL};


static int gpt2_load(vene_model *m, vene_error *err) {
    const cJSON *c = m->config;
    const char *file = "config.json";
    int rc;
    if ((rc = vene_config_int(c, file, "n_layer", &m->n_layer, err)) ||
        (rc = vene_config_int(c, file, "n_embd", &m->d_model, err)) ||
        (rc = vene_config_int(c, file, "n_head", &m->n_head, err)) ||
        (rc = vene_config_int(c, file, "vocab_size", &m->vocab_size, err)) ||
        (rc = vene_config_int(c, file, "n_positions", &m->n_ctx, err)))
        return vene_error_prefix(err, "%s", m->dir);
    if (m->n_layer <= 0 || m->d_model <= 0 || m->n_head <= 0 || m->vocab_size <= 0 || m->n_ctx <= 0 ||
        m->d_model % m->n_head != 0 || m->d_model > INT_MAX / 4)
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s/config.json: inconsistent sizes (n_layer %d, n_embd %d, n_head %d, vocab_size %d, "
                           "n_positions %d): all must be positive and n_embd divisible by n_head",
                           m->dir, m->n_layer, m->d_model, m->n_head, m->vocab_size, m->n_ctx);
    m->n_kv_head = m->n_head;
    m->head_dim = m->d_model / m->n_head;
    double eps;
    if ((rc = vene_config_int_or(m, "n_inner", 4 * m->d_model, &m->d_ff, err)) ||
        (rc = vene_config_num_or(m, "layer_norm_epsilon", 1e-5, &eps, err)))
        return rc;
    if (m->d_ff <= 0)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: n_inner %d must be positive", m->dir, m->d_ff);
    m->norm_eps = (float)eps;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(c, "activation_function");
    if (cJSON_IsString(act) && strcmp(act->valuestring, "gelu_new") != 0 &&
        strcmp(act->valuestring, "gelu_pytorch_tanh") != 0)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s/config.json: activation_function \"%s\" not supported (gelu_new)",
                           m->dir, act->valuestring);
    m->has_lm_head = strcmp(m->model_class, "GPT2LMHeadModel") == 0;
    m->path_prefix = m->has_lm_head ? "transformer." : "";

    /* n_layer comes from config.json: check the weights have that many layers before
     * allocating per-layer state */
    char last[64];
    snprintf(last, sizeof last, "h.%d.ln_1.weight", m->n_layer - 1);
    if (!vene_weights_has(m->weights, last))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: n_layer is %d but model.safetensors has no tensor \"%s\"",
                           m->dir, m->n_layer, last);
    gpt2_weights *w = calloc(1, sizeof *w);
    if (!w) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    m->impl = w;
    w->layers = calloc((size_t)m->n_layer, sizeof *w->layers);
    if (!w->layers) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    int D = m->d_model, F = m->d_ff;
    if ((rc = vene_model_weight(m, "wte.weight", 2, m->vocab_size, D, &w->wte, err)) ||
        (rc = vene_model_weight(m, "wpe.weight", 2, m->n_ctx, D, &w->wpe, err)) ||
        (rc = vene_model_weight(m, "ln_f.weight", 1, D, 0, &w->lnf_g, err)) ||
        (rc = vene_model_weight(m, "ln_f.bias", 1, D, 0, &w->lnf_b, err)))
        return rc;
    for (int l = 0; l < m->n_layer; l++) {
        gpt2_layer *L = &w->layers[l];
        char n[12][96];
        const char *suffix[12] = {"ln_1.weight", "ln_1.bias", "attn.c_attn.weight", "attn.c_attn.bias",
                                  "attn.c_proj.weight", "attn.c_proj.bias", "ln_2.weight", "ln_2.bias",
                                  "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight", "mlp.c_proj.bias"};
        for (int i = 0; i < 12; i++) snprintf(n[i], sizeof n[i], "h.%d.%s", l, suffix[i]);
        if ((rc = vene_model_weight(m, n[0], 1, D, 0, &L->ln1_g, err)) || (rc = vene_model_weight(m, n[1], 1, D, 0, &L->ln1_b, err)) ||
            (rc = vene_model_weight(m, n[2], 2, D, 3 * D, &L->attn_w, err)) || (rc = vene_model_weight(m, n[3], 1, 3 * D, 0, &L->attn_b, err)) ||
            (rc = vene_model_weight(m, n[4], 2, D, D, &L->proj_w, err)) || (rc = vene_model_weight(m, n[5], 1, D, 0, &L->proj_b, err)) ||
            (rc = vene_model_weight(m, n[6], 1, D, 0, &L->ln2_g, err)) || (rc = vene_model_weight(m, n[7], 1, D, 0, &L->ln2_b, err)) ||
            (rc = vene_model_weight(m, n[8], 2, D, F, &L->fc_w, err)) || (rc = vene_model_weight(m, n[9], 1, F, 0, &L->fc_b, err)) ||
            (rc = vene_model_weight(m, n[10], 2, F, D, &L->mproj_w, err)) || (rc = vene_model_weight(m, n[11], 1, D, 0, &L->mproj_b, err)))
            return rc;
    }
    return VENE_OK;
}

static void gpt2_free_impl(vene_model *m) {
    gpt2_weights *w = m->impl;
    if (w) free(w->layers);
    free(w);
    m->impl = NULL;
}

/* Scratch: embeddings, residual, and one set of per-layer buffers reused by every layer. */
static size_t gpt2_run_bytes(const vene_model *m, int B, int S) {
    size_t T = (size_t)B * S, D = (size_t)m->d_model, F = (size_t)m->d_ff, H = (size_t)m->n_head;
    size_t floats = T * D * 10 + T * 3 * D + T * F * 2 + (size_t)B * H * S * S + T * (size_t)m->vocab_size;
    return floats * sizeof(float) + 64 * 20;
}

static int gpt2_site_shape(const vene_model *m, int site, int B, int S, int64_t *shape) {
    shape[0] = B;
    shape[1] = S;
    switch (site) {
    case S_CATTN_OUT: shape[2] = 3 * m->d_model; return 3;
    case S_ADROP_IN: case S_ADROP_OUT:
        shape[1] = m->n_head; shape[2] = S; shape[3] = S; return 4;
    case S_FC_OUT: case S_ACT_IN: case S_ACT_OUT: case S_MPROJ_IN: shape[2] = m->d_ff; return 3;
    case S_HEAD_OUT: shape[2] = m->vocab_size; return 3;
    default: shape[2] = m->d_model; return 3;
    }
}

static int gpt2_component_width(const vene_model *m, const vene_component_def *c) {
    if (c->head_split) return m->head_dim;
    if (strcmp(c->name, "mlp_activation") == 0) return m->d_ff;
    if (strcmp(c->name, "attention_weight") == 0) return m->n_ctx;
    return m->d_model;
}


/* Gradient mode: copies of the inputs backward reads, and room for per-layer pointers. */
static int gpt2_save_inputs(vene_run *rs, const vene_batch *in, gpt2_saved **out, vene_error *err) {
    const vene_model *m = rs->m;
    size_t T = (size_t)in->batch * in->seq;
    gpt2_saved *sv;
    float *p;
    VENE_ALLOC(p, (sizeof *sv + 3) / 4);
    sv = (gpt2_saved *)(void *)p;
    memset(sv, 0, sizeof *sv);
    VENE_ALLOC(p, (sizeof(gpt2_saved_layer) * (size_t)m->n_layer + 3) / 4);
    sv->layers = (gpt2_saved_layer *)(void *)p;
    VENE_ALLOC(p, T);
    sv->positions = (int32_t *)(void *)p;
    for (size_t i = 0; i < T; i++) sv->positions[i] = in->positions ? in->positions[i] : (int32_t)(i % (size_t)in->seq);
    if (in->ids && !in->embeds) {
        VENE_ALLOC(p, T);
        sv->ids = (int32_t *)(void *)p;
        memcpy(sv->ids, in->ids, sizeof(int32_t) * T);
    }
    if (in->attn_mask) {
        VENE_ALLOC(p, (T + 3) / 4);
        sv->mask = (uint8_t *)(void *)p;
        memcpy(sv->mask, in->attn_mask, T);
    }
    *out = sv;
    return VENE_OK;
}

size_t gpt2_grad_bytes(const vene_model *m, int B, int S) {
    size_t T = (size_t)B * S, D = (size_t)m->d_model, F = (size_t)m->d_ff, H = (size_t)m->n_head;
    size_t per_layer = T * D * 6 + T * 3 * D + T * F * 2 + 2 * (size_t)B * H * S * S;
    return (per_layer * sizeof(float) + 64 * 12) * (size_t)m->n_layer + sizeof(gpt2_saved) +
           sizeof(gpt2_saved_layer) * (size_t)m->n_layer + T * 12 + 64 * 8;
}

static int gpt2_forward(vene_run *rs, const vene_batch *in, vene_error *err) {
    const vene_model *m = rs->m;
    const gpt2_weights *w = m->impl;
    const int B = in->batch, S = in->seq, T = B * S, D = m->d_model, F = m->d_ff, H = m->n_head;
    const int hd = m->head_dim, Sk = S + vene_kv_past(rs); /* keys: cached positions + this pass's */
    float *emb, *pos, *x, *a, *qkv, *probs, *merged, *proj, *x2, *b2, *fc, *act, *mout;
    VENE_ALLOC(emb, (size_t)T * D);
    VENE_ALLOC(pos, (size_t)T * D);
    VENE_ALLOC(x, (size_t)T * D);
    VENE_ALLOC(a, (size_t)T * D);
    VENE_ALLOC(qkv, (size_t)T * 3 * D);
    VENE_ALLOC(probs, (size_t)B * H * S * Sk);
    VENE_ALLOC(merged, (size_t)T * D);
    VENE_ALLOC(proj, (size_t)T * D);
    VENE_ALLOC(x2, (size_t)T * D);
    VENE_ALLOC(b2, (size_t)T * D);
    VENE_ALLOC(fc, (size_t)T * F);
    VENE_ALLOC(act, (size_t)T * F);
    VENE_ALLOC(mout, (size_t)T * D);
    vene_tensor tE = vene_tensor_3d(emb, B, S, D), tP = vene_tensor_3d(pos, B, S, D);
    vene_tensor tX = vene_tensor_3d(x, B, S, D), tA = vene_tensor_3d(a, B, S, D);
    vene_tensor tQKV = vene_tensor_3d(qkv, B, S, 3 * D), tPr = vene_tensor_4d(probs, B, H, S, Sk);
    vene_tensor tM = vene_tensor_3d(merged, B, S, D), tPj = vene_tensor_3d(proj, B, S, D);
    vene_tensor tX2 = vene_tensor_3d(x2, B, S, D), tB2 = vene_tensor_3d(b2, B, S, D);
    vene_tensor tFC = vene_tensor_3d(fc, B, S, F), tAct = vene_tensor_3d(act, B, S, F);
    vene_tensor tMo = vene_tensor_3d(mout, B, S, D);

    gpt2_saved *sv = NULL;
    if (rs->grad_mode) {
        int rc = gpt2_save_inputs(rs, in, &sv, err);
        if (rc) return rc;
    }
    if (in->embeds) {
        memcpy(emb, in->embeds, sizeof(float) * (size_t)T * D);
    } else {
        vk_embed(w->wte, in->ids, emb, T, D);
        VENE_FIRE(rs, S_WTE_OUT, -1, &tE, err);
    }
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++) {
            int p = in->positions ? in->positions[b * S + s] : s;
            memcpy(pos + ((size_t)b * S + s) * D, w->wpe + (size_t)p * D, sizeof(float) * (size_t)D);
        }
    VENE_FIRE(rs, S_WPE_OUT, -1, &tP, err);
    vk_add(emb, pos, x, (int64_t)T * D);
    VENE_FIRE(rs, S_DROP_IN, -1, &tX, err);
    VENE_FIRE(rs, S_DROP_OUT, -1, &tX, err);
    const vene_resume *resume = rs->resume; /* a sweep resumes from its residual (models/resume.h) */
    if (resume) memcpy(x, in->embeds, sizeof(float) * (size_t)T * D);

    const float scale_div = sqrtf((float)hd);
    const int tail = vene_run_tail_ok(rs, B, S, S_H_OUT); /* a source pass read at a few rows */
    for (int l = resume ? resume->first_layer : 0; l < m->n_layer; l++) {
        const gpt2_layer *L = &w->layers[l];
        if (tail && l == rs->tail_layer) {
            float *start; /* B + 1 ints in float storage: the arena hands out floats */
            VENE_ALLOC(start, (size_t)B + 1);
            vk_rows rows;
            vk_rows_init(&rows, B, S, rs->tail_first, (int *)(void *)start);
            gpt2_tail_layer(rs, in, L, &rows, &(gpt2_buffers){emb, x, a, qkv, probs, merged, proj, x2, b2, fc, act, mout});
            rs->tail_runs++;
            VENE_FIRE(rs, S_H_OUT, l, &tX, err);
            return VENE_STOP; /* the caller reads nothing further */
        }
        if (sv && l > rs->grad_keep_from) { /* gradient mode: every kept layer has its own buffers */
            VENE_ALLOC(a, (size_t)T * D);
            VENE_ALLOC(qkv, (size_t)T * 3 * D);
            VENE_ALLOC(probs, (size_t)B * H * S * S);
            VENE_ALLOC(merged, (size_t)T * D);
            VENE_ALLOC(x2, (size_t)T * D);
            VENE_ALLOC(b2, (size_t)T * D);
            VENE_ALLOC(fc, (size_t)T * F);
            VENE_ALLOC(act, (size_t)T * F);
            tA.data = a, tQKV.data = qkv, tPr.data = probs, tM.data = merged;
            tX2.data = x2, tB2.data = b2, tFC.data = fc, tAct.data = act;
        }
        VENE_FIRE(rs, S_H_IN, l, &tX, err);
        VENE_FIRE(rs, S_LN1_IN, l, &tX, err);
        vk_layernorm(x, L->ln1_g, L->ln1_b, a, T, D, m->norm_eps);
        VENE_FIRE(rs, S_LN1_OUT, l, &tA, err);
        VENE_FIRE(rs, S_ATTN_IN, l, &tA, err);
        VENE_FIRE(rs, S_CATTN_IN, l, &tA, err);
        vk_linear_in_out(a, L->attn_w, L->attn_b, qkv, T, D, 3 * D);
        VENE_FIRE(rs, S_CATTN_OUT, l, &tQKV, err);
        float *probs_sm = probs;
        if (resume) { /* ragged cells over cached earlier positions */
            int rc = vene_resume_attention(rs, qkv, qkv + D, qkv + 2 * D, 3 * D, merged, D, H, H, hd, scale_div, 0, err);
            if (rc) return rc;
        } else {
            vk_kv kv; /* this pass's keys and values, or the KV cache they were appended to */
            vene_kv_layer(rs, l, qkv + D, qkv + 2 * D, 3 * D, in->attn_mask, B, S, &kv);
            vk_attn_scores_kv(qkv, 3 * D, &kv, probs, B, S, H, H, hd, scale_div, 0);
            if (sv && (rs->site_hooked[S_ADROP_IN] || rs->site_hooked[S_ADROP_OUT])) {
                VENE_ALLOC(probs_sm, (size_t)B * H * S * Sk);
                memcpy(probs_sm, probs, sizeof(float) * (size_t)B * H * S * Sk);
            }
            VENE_FIRE(rs, S_ADROP_IN, l, &tPr, err);
            VENE_FIRE(rs, S_ADROP_OUT, l, &tPr, err);
            vk_attn_values_kv(probs, &kv, merged, D, B, S, H, H, hd);
        }
        VENE_FIRE(rs, S_CPROJ_IN, l, &tM, err);
        vk_linear_in_out(merged, L->proj_w, L->proj_b, proj, T, D, D);
        VENE_FIRE(rs, S_CPROJ_OUT, l, &tPj, err);
        VENE_FIRE(rs, S_RDROP_IN, l, &tPj, err);
        VENE_FIRE(rs, S_RDROP_OUT, l, &tPj, err);
        VENE_FIRE(rs, S_ATTN_OUT, l, &tPj, err);
        vk_add(proj, x, x2, (int64_t)T * D);
        VENE_FIRE(rs, S_LN2_IN, l, &tX2, err);
        vk_layernorm(x2, L->ln2_g, L->ln2_b, b2, T, D, m->norm_eps);
        VENE_FIRE(rs, S_LN2_OUT, l, &tB2, err);
        VENE_FIRE(rs, S_MLP_IN, l, &tB2, err);
        VENE_FIRE(rs, S_FC_IN, l, &tB2, err);
        vk_linear_in_out(b2, L->fc_w, L->fc_b, fc, T, D, F);
        VENE_FIRE(rs, S_FC_OUT, l, &tFC, err);
        VENE_FIRE(rs, S_ACT_IN, l, &tFC, err);
        vk_gelu_tanh(fc, act, (int64_t)T * F);
        VENE_FIRE(rs, S_ACT_OUT, l, &tAct, err);
        VENE_FIRE(rs, S_MPROJ_IN, l, &tAct, err);
        vk_linear_in_out(act, L->mproj_w, L->mproj_b, mout, T, F, D);
        VENE_FIRE(rs, S_MPROJ_OUT, l, &tMo, err);
        VENE_FIRE(rs, S_MDROP_IN, l, &tMo, err);
        VENE_FIRE(rs, S_MDROP_OUT, l, &tMo, err);
        VENE_FIRE(rs, S_MLP_OUT, l, &tMo, err);
        if (sv && l >= rs->grad_keep_from) {
            sv->layers[l] = (gpt2_saved_layer){x, a, qkv, probs_sm, probs, merged, x2, b2, fc, act};
            VENE_ALLOC(x, (size_t)T * D);
            tX.data = x;
        }
        vk_add(x2, mout, x, (int64_t)T * D); /* x (this block's input) is dead: reuse it */
        VENE_FIRE(rs, S_H_OUT, l, &tX, err);
    }
    float *hid;
    VENE_ALLOC(hid, (size_t)T * D);
    rs->last_hidden = vene_tensor_3d(hid, B, S, D);
    VENE_FIRE(rs, S_LNF_IN, -1, &tX, err);
    if (sv) sv->x_final = x;
    vk_layernorm(x, w->lnf_g, w->lnf_b, hid, T, D, m->norm_eps);
    VENE_FIRE(rs, S_LNF_OUT, -1, &rs->last_hidden, err);
    if (sv) rs->saved = sv; /* complete: backward may read it (LM head output is rs->logits) */
    return m->has_lm_head ? vene_run_lm_head(rs, w->wte, S_HEAD_IN, S_HEAD_OUT, err) : VENE_OK;
}

const vene_arch vene_arch_gpt2 = {
    .model_type = "gpt2",
    .classes = gpt2_classes,
    .sites = gpt2_sites,
    .n_sites = S_COUNT,
    .components = gpt2_components,
    .n_components = sizeof gpt2_components / sizeof gpt2_components[0],
    .load = gpt2_load,
    .free_impl = gpt2_free_impl,
    .run_bytes = gpt2_run_bytes,
    .forward = gpt2_forward,
    .site_shape = gpt2_site_shape,
    .component_width = gpt2_component_width,
    .grad_bytes = gpt2_grad_bytes,
    .backward = gpt2_backward,
    .kv_cached = 1,
    .resumable = 1,
};
