/* GPT-Neo (Hugging Face GPTNeoModel / GPTNeoForCausalLM), eager attention, eval mode.
 * Like gpt2.c, the forward reads top to bottom like the Hugging Face modules it mirrors;
 * each VENE_FIRE is one hook site, fired in the order PyTorch hooks would fire.
 *
 * Differences from GPT-2: separate bias-free q/k/v projections and a biased out_proj,
 * all nn.Linear ([out, in] weights, also the MLP's c_fc / c_proj); attention scores are
 * not scaled by 1/sqrt(head_dim); every layer is "global" (causal) or "local" (causal,
 * and a query sees only the window_size most recent keys, itself included); the
 * attention module is wrapped twice, h[l].attn (GPTNeoAttention) around
 * h[l].attn.attention (GPTNeoSelfAttention). */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/kernels.h"
#include "models/kv_cache.h"
#include "models/model.h"

enum {
    S_WTE_OUT, S_WPE_OUT, S_DROP_IN, S_DROP_OUT,
    S_H_IN, S_LN1_IN, S_LN1_OUT, S_ATTN_IN, S_SA_IN,
    S_Q_IN, S_Q_OUT, S_K_IN, S_K_OUT, S_V_IN, S_V_OUT, S_ADROP_IN, S_ADROP_OUT,
    S_OPROJ_IN, S_OPROJ_OUT, S_RDROP_IN, S_RDROP_OUT, S_SA_OUT, S_ATTN_OUT, S_LN2_IN, S_LN2_OUT,
    S_MLP_IN, S_FC_IN, S_FC_OUT, S_ACT_IN, S_ACT_OUT, S_MPROJ_IN, S_MPROJ_OUT, S_MDROP_IN, S_MDROP_OUT,
    S_MLP_OUT, S_H_OUT,
    S_LNF_IN, S_LNF_OUT, S_HEAD_IN, S_HEAD_OUT,
    S_COUNT
};

static const vene_site_def neo_sites[S_COUNT] = {
    [S_WTE_OUT] = {"wte", 0, 0, "B x S x D"},
    [S_WPE_OUT] = {"wpe", 0, 0, "B x S x D"},
    [S_DROP_IN] = {"drop", 1, 0, "B x S x D"},
    [S_DROP_OUT] = {"drop", 0, 0, "B x S x D"},
    [S_H_IN] = {"h[%d]", 1, 1, "B x S x D"},
    [S_LN1_IN] = {"h[%d].ln_1", 1, 1, "B x S x D"},
    [S_LN1_OUT] = {"h[%d].ln_1", 0, 1, "B x S x D"},
    [S_ATTN_IN] = {"h[%d].attn", 1, 1, "B x S x D"},
    [S_SA_IN] = {"h[%d].attn.attention", 1, 1, "B x S x D"},
    [S_Q_IN] = {"h[%d].attn.attention.q_proj", 1, 1, "B x S x D"},
    [S_Q_OUT] = {"h[%d].attn.attention.q_proj", 0, 1, "B x S x D"},
    [S_K_IN] = {"h[%d].attn.attention.k_proj", 1, 1, "B x S x D"},
    [S_K_OUT] = {"h[%d].attn.attention.k_proj", 0, 1, "B x S x D"},
    [S_V_IN] = {"h[%d].attn.attention.v_proj", 1, 1, "B x S x D"},
    [S_V_OUT] = {"h[%d].attn.attention.v_proj", 0, 1, "B x S x D"},
    [S_ADROP_IN] = {"h[%d].attn.attention.attn_dropout", 1, 1, "B x H x S x S"},
    [S_ADROP_OUT] = {"h[%d].attn.attention.attn_dropout", 0, 1, "B x H x S x S"},
    [S_OPROJ_IN] = {"h[%d].attn.attention.out_proj", 1, 1, "B x S x D"},
    [S_OPROJ_OUT] = {"h[%d].attn.attention.out_proj", 0, 1, "B x S x D"},
    [S_RDROP_IN] = {"h[%d].attn.attention.resid_dropout", 1, 1, "B x S x D"},
    [S_RDROP_OUT] = {"h[%d].attn.attention.resid_dropout", 0, 1, "B x S x D"},
    [S_SA_OUT] = {"h[%d].attn.attention", 0, 1, "B x S x D"},
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

/* pyvene's gpt_neo component table (spec §5.4) with the intended paths: pyvene maps
 * q/k/v/out_proj to h[l].attn.*, which does not exist; the projections live in
 * h[l].attn.attention.* (experiment-format §5.1, spec §16 #12). */
static const vene_component_def neo_components[] = {
    {"block_input", "h[%d]", 1, VENE_SPLIT_NONE, 0},
    {"block_output", "h[%d]", 0, VENE_SPLIT_NONE, 0},
    {"mlp_activation", "h[%d].mlp.act", 0, VENE_SPLIT_NONE, 0},
    {"mlp_output", "h[%d].mlp", 0, VENE_SPLIT_NONE, 0},
    {"mlp_input", "h[%d].mlp", 1, VENE_SPLIT_NONE, 0},
    {"attention_value_output", "h[%d].attn.attention.out_proj", 1, VENE_SPLIT_NONE, 0},
    {"head_attention_value_output", "h[%d].attn.attention.out_proj", 1, VENE_SPLIT_NONE, 1},
    {"attention_output", "h[%d].attn", 0, VENE_SPLIT_NONE, 0},
    {"attention_input", "h[%d].attn", 1, VENE_SPLIT_NONE, 0},
    {"query_output", "h[%d].attn.attention.q_proj", 0, VENE_SPLIT_NONE, 0},
    {"key_output", "h[%d].attn.attention.k_proj", 0, VENE_SPLIT_NONE, 0},
    {"value_output", "h[%d].attn.attention.v_proj", 0, VENE_SPLIT_NONE, 0},
    {"head_query_output", "h[%d].attn.attention.q_proj", 0, VENE_SPLIT_NONE, 1},
    {"head_key_output", "h[%d].attn.attention.k_proj", 0, VENE_SPLIT_NONE, 1},
    {"head_value_output", "h[%d].attn.attention.v_proj", 0, VENE_SPLIT_NONE, 1},
};

typedef struct neo_layer {
    const float *ln1_g, *ln1_b, *q_w, *k_w, *v_w, *o_w, *o_b;
    const float *ln2_g, *ln2_b, *fc_w, *fc_b, *mproj_w, *mproj_b;
    int window; /* 0 = global attention, else the local window (keys i-window+1 .. i) */
} neo_layer;

typedef struct neo_weights {
    const float *wte, *wpe, *lnf_g, *lnf_b, *lm_head; /* lm_head == wte when tied */
    neo_layer *layers;
} neo_weights;

static const char *const neo_classes[] = {"GPTNeoForCausalLM", "GPTNeoModel", NULL};


/* The per-layer attention kinds, as GPTNeoConfig computes them: `attention_layers`
 * when config.json has it (PretrainedConfig sets it over the computed value), else
 * `attention_types` expanded ([[["global","local"], 2]] -> global, local, global,
 * local). Writes n_layer strings into kinds[] (borrowed from the config). */
static int neo_attention_kinds(const vene_model *m, const char **kinds, vene_error *err) {
    const cJSON *layers = cJSON_GetObjectItemCaseSensitive(m->config, "attention_layers");
    int n = 0;
    if (cJSON_IsArray(layers)) {
        const cJSON *k;
        cJSON_ArrayForEach(k, layers) {
            if (!cJSON_IsString(k))
                return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: attention_layers[%d] must be a string",
                                   m->dir, n);
            if (n < m->n_layer) kinds[n] = k->valuestring;
            n++;
        }
    } else {
        const cJSON *types = cJSON_GetObjectItemCaseSensitive(m->config, "attention_types");
        if (!cJSON_IsArray(types))
            return vene_errorf(err, VENE_ERR_FORMAT,
                               "%s/config.json: missing key \"attention_types\" (e.g. [[[\"global\", \"local\"], 2]])",
                               m->dir);
        const cJSON *item;
        cJSON_ArrayForEach(item, types) {
            const cJSON *names = cJSON_GetArrayItem(item, 0), *reps = cJSON_GetArrayItem(item, 1);
            if (!cJSON_IsArray(item) || cJSON_GetArraySize(item) != 2 || !cJSON_IsArray(names) ||
                !cJSON_IsNumber(reps) || !(reps->valuedouble >= 0 && reps->valuedouble <= m->n_layer))
                return vene_errorf(err, VENE_ERR_FORMAT,
                                   "%s/config.json: attention_types entries must be [[kind, ...], count]", m->dir);
            for (int r = 0; r < (int)reps->valuedouble; r++) {
                const cJSON *k;
                cJSON_ArrayForEach(k, names) {
                    if (!cJSON_IsString(k))
                        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: attention_types kinds must be strings",
                                           m->dir);
                    if (n < m->n_layer) kinds[n] = k->valuestring;
                    n++;
                }
                if (n > m->n_layer) break; /* more kinds than layers: reported below */
            }
        }
    }
    if (n != m->n_layer)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: attention layers list %d kinds but num_layers is %d",
                           m->dir, n, m->n_layer);
    return VENE_OK;
}

static int neo_load(vene_model *m, vene_error *err) {
    const cJSON *c = m->config;
    const char *file = "config.json";
    int rc;
    if ((rc = vene_config_int(c, file, "num_layers", &m->n_layer, err)) ||
        (rc = vene_config_int(c, file, "hidden_size", &m->d_model, err)) ||
        (rc = vene_config_int(c, file, "num_heads", &m->n_head, err)) ||
        (rc = vene_config_int(c, file, "vocab_size", &m->vocab_size, err)) ||
        (rc = vene_config_int(c, file, "max_position_embeddings", &m->n_ctx, err)))
        return vene_error_prefix(err, "%s", m->dir);
    if (m->n_layer <= 0 || m->d_model <= 0 || m->n_head <= 0 || m->vocab_size <= 0 || m->n_ctx <= 0 ||
        m->d_model % m->n_head != 0 || m->d_model > INT_MAX / 4)
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s/config.json: inconsistent sizes (num_layers %d, hidden_size %d, num_heads %d, "
                           "vocab_size %d, max_position_embeddings %d): all must be positive and hidden_size "
                           "divisible by num_heads",
                           m->dir, m->n_layer, m->d_model, m->n_head, m->vocab_size, m->n_ctx);
    m->n_kv_head = m->n_head;
    m->head_dim = m->d_model / m->n_head;
    double eps;
    if ((rc = vene_config_int_or(m, "intermediate_size", 4 * m->d_model, &m->d_ff, err)) || /* null -> 4 * hidden */
        (rc = vene_config_num_or(m, "layer_norm_epsilon", 1e-5, &eps, err)))
        return rc;
    if (m->d_ff <= 0)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: intermediate_size %d must be positive", m->dir,
                           m->d_ff);
    m->norm_eps = (float)eps;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(c, "activation_function");
    if (cJSON_IsString(act) && strcmp(act->valuestring, "gelu_new") != 0 &&
        strcmp(act->valuestring, "gelu_pytorch_tanh") != 0)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s/config.json: activation_function \"%s\" not supported (gelu_new)",
                           m->dir, act->valuestring);
    m->has_lm_head = strcmp(m->model_class, "GPTNeoForCausalLM") == 0;
    m->path_prefix = m->has_lm_head ? "transformer." : "";

    char last[64];
    snprintf(last, sizeof last, "h.%d.ln_1.weight", m->n_layer - 1);
    if (!vene_weights_has(m->weights, last))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: num_layers is %d but model.safetensors has no tensor \"%s\"",
                           m->dir, m->n_layer, last);
    neo_weights *w = calloc(1, sizeof *w);
    if (!w) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    m->impl = w;
    w->layers = calloc((size_t)m->n_layer, sizeof *w->layers);
    const char **kinds = calloc((size_t)m->n_layer, sizeof *kinds);
    if (!w->layers || !kinds) {
        free(kinds);
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    }
    int window = 256;
    rc = neo_attention_kinds(m, kinds, err);
    if (!rc) rc = vene_config_int_or(m, "window_size", 256, &window, err);
    for (int l = 0; rc == VENE_OK && l < m->n_layer; l++) {
        if (strcmp(kinds[l], "global") == 0) {
            w->layers[l].window = 0;
        } else if (strcmp(kinds[l], "local") == 0) {
            if (window <= 0)
                rc = vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: window_size %d must be positive", m->dir,
                                 window);
            w->layers[l].window = window;
        } else {
            rc = vene_errorf(err, VENE_ERR_UNSUPPORTED,
                             "%s/config.json: layer %d has attention kind \"%s\" (only \"global\" and \"local\" exist)",
                             m->dir, l, kinds[l]);
        }
    }
    free(kinds);
    if (rc) return rc;

    int D = m->d_model, F = m->d_ff;
    if ((rc = vene_model_weight(m, "wte.weight", 2, m->vocab_size, D, &w->wte, err)) ||
        (rc = vene_model_weight(m, "wpe.weight", 2, m->n_ctx, D, &w->wpe, err)) ||
        (rc = vene_model_weight(m, "ln_f.weight", 1, D, 0, &w->lnf_g, err)) ||
        (rc = vene_model_weight(m, "ln_f.bias", 1, D, 0, &w->lnf_b, err)))
        return rc;
    w->lm_head = w->wte;
    const cJSON *tie = cJSON_GetObjectItemCaseSensitive(c, "tie_word_embeddings");
    if (m->has_lm_head && cJSON_IsFalse(tie) &&
        (rc = vene_model_weight(m, "lm_head.weight", 2, m->vocab_size, D, &w->lm_head, err)))
        return rc;
    for (int l = 0; l < m->n_layer; l++) {
        neo_layer *L = &w->layers[l];
        char n[13][112];
        const char *suffix[13] = {"ln_1.weight", "ln_1.bias", "attn.attention.q_proj.weight",
                                  "attn.attention.k_proj.weight", "attn.attention.v_proj.weight",
                                  "attn.attention.out_proj.weight", "attn.attention.out_proj.bias", "ln_2.weight",
                                  "ln_2.bias", "mlp.c_fc.weight", "mlp.c_fc.bias", "mlp.c_proj.weight",
                                  "mlp.c_proj.bias"};
        for (int i = 0; i < 13; i++) snprintf(n[i], sizeof n[i], "h.%d.%s", l, suffix[i]);
        /* nn.Linear weights are [out, in] */
        if ((rc = vene_model_weight(m, n[0], 1, D, 0, &L->ln1_g, err)) || (rc = vene_model_weight(m, n[1], 1, D, 0, &L->ln1_b, err)) ||
            (rc = vene_model_weight(m, n[2], 2, D, D, &L->q_w, err)) || (rc = vene_model_weight(m, n[3], 2, D, D, &L->k_w, err)) ||
            (rc = vene_model_weight(m, n[4], 2, D, D, &L->v_w, err)) || (rc = vene_model_weight(m, n[5], 2, D, D, &L->o_w, err)) ||
            (rc = vene_model_weight(m, n[6], 1, D, 0, &L->o_b, err)) || (rc = vene_model_weight(m, n[7], 1, D, 0, &L->ln2_g, err)) ||
            (rc = vene_model_weight(m, n[8], 1, D, 0, &L->ln2_b, err)) || (rc = vene_model_weight(m, n[9], 2, F, D, &L->fc_w, err)) ||
            (rc = vene_model_weight(m, n[10], 1, F, 0, &L->fc_b, err)) || (rc = vene_model_weight(m, n[11], 2, D, F, &L->mproj_w, err)) ||
            (rc = vene_model_weight(m, n[12], 1, D, 0, &L->mproj_b, err)))
            return rc;
    }
    return VENE_OK;
}

static void neo_free_impl(vene_model *m) {
    neo_weights *w = m->impl;
    if (w) free(w->layers);
    free(w);
    m->impl = NULL;
}

/* Scratch: embeddings, residual, and one set of per-layer buffers reused by every layer. */
static size_t neo_run_bytes(const vene_model *m, int B, int S) {
    size_t T = (size_t)B * S, D = (size_t)m->d_model, F = (size_t)m->d_ff, H = (size_t)m->n_head;
    size_t floats = T * D * 13 + T * F * 2 + (size_t)B * H * S * S + T * (size_t)m->vocab_size;
    return floats * sizeof(float) + 64 * 24;
}

static int neo_site_shape(const vene_model *m, int site, int B, int S, int64_t *shape) {
    shape[0] = B;
    shape[1] = S;
    switch (site) {
    case S_ADROP_IN: case S_ADROP_OUT:
        shape[1] = m->n_head; shape[2] = S; shape[3] = S; return 4;
    case S_FC_OUT: case S_ACT_IN: case S_ACT_OUT: case S_MPROJ_IN: shape[2] = m->d_ff; return 3;
    case S_HEAD_OUT: shape[2] = m->vocab_size; return 3;
    default: shape[2] = m->d_model; return 3;
    }
}

static int neo_component_width(const vene_model *m, const vene_component_def *c) {
    if (c->head_split) return m->head_dim;
    if (strcmp(c->name, "mlp_activation") == 0) return m->d_ff;
    return m->d_model;
}


static int neo_forward(vene_run *rs, const vene_batch *in, vene_error *err) {
    const vene_model *m = rs->m;
    const neo_weights *w = m->impl;
    const int B = in->batch, S = in->seq, T = B * S, D = m->d_model, F = m->d_ff, H = m->n_head;
    const int hd = m->head_dim, Sk = S + vene_kv_past(rs); /* keys: cached positions + this pass's */
    float *emb, *pos, *x, *a, *q, *k, *v, *probs, *merged, *proj, *x2, *b2, *fc, *act, *mout;
    VENE_ALLOC(emb, (size_t)T * D);
    VENE_ALLOC(pos, (size_t)T * D);
    VENE_ALLOC(x, (size_t)T * D);
    VENE_ALLOC(a, (size_t)T * D);
    VENE_ALLOC(q, (size_t)T * D);
    VENE_ALLOC(k, (size_t)T * D);
    VENE_ALLOC(v, (size_t)T * D);
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
    vene_tensor tQ = vene_tensor_3d(q, B, S, D), tK = vene_tensor_3d(k, B, S, D), tV = vene_tensor_3d(v, B, S, D);
    vene_tensor tPr = vene_tensor_4d(probs, B, H, S, Sk);
    vene_tensor tM = vene_tensor_3d(merged, B, S, D), tPj = vene_tensor_3d(proj, B, S, D);
    vene_tensor tX2 = vene_tensor_3d(x2, B, S, D), tB2 = vene_tensor_3d(b2, B, S, D);
    vene_tensor tFC = vene_tensor_3d(fc, B, S, F), tAct = vene_tensor_3d(act, B, S, F);
    vene_tensor tMo = vene_tensor_3d(mout, B, S, D);

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

    for (int l = 0; l < m->n_layer; l++) {
        const neo_layer *L = &w->layers[l];
        VENE_FIRE(rs, S_H_IN, l, &tX, err);
        VENE_FIRE(rs, S_LN1_IN, l, &tX, err);
        vk_layernorm(x, L->ln1_g, L->ln1_b, a, T, D, m->norm_eps);
        VENE_FIRE(rs, S_LN1_OUT, l, &tA, err);
        VENE_FIRE(rs, S_ATTN_IN, l, &tA, err);
        VENE_FIRE(rs, S_SA_IN, l, &tA, err);
        /* q, k and v all read ln_1's output: an in-place write at q_proj's input reaches k and v */
        VENE_FIRE(rs, S_Q_IN, l, &tA, err);
        vk_linear_out_in(a, L->q_w, NULL, q, T, D, D);
        VENE_FIRE(rs, S_Q_OUT, l, &tQ, err);
        VENE_FIRE(rs, S_K_IN, l, &tA, err);
        vk_linear_out_in(a, L->k_w, NULL, k, T, D, D);
        VENE_FIRE(rs, S_K_OUT, l, &tK, err);
        VENE_FIRE(rs, S_V_IN, l, &tA, err);
        vk_linear_out_in(a, L->v_w, NULL, v, T, D, D);
        VENE_FIRE(rs, S_V_OUT, l, &tV, err);
        /* Unscaled scores (scale_div 1); local layers mask keys window or more back.
         * HF's GPTNeoModel adds a 4-D causal+padding mask, so a future key scores
         * min + min = -inf where the kernel (GPT-2's 2-D padding mask) gives min. The
         * two differ only in a query row whose visible keys are all padding (left
         * padding), where HF spreads attention over past keys and the kernel over all. */
        vk_kv kv; /* this pass's keys and values, or the KV cache they were appended to */
        vene_kv_layer(rs, l, k, v, D, in->attn_mask, B, S, &kv);
        vk_attn_scores_kv(q, D, &kv, probs, B, S, H, H, hd, 1.0f, L->window);
        VENE_FIRE(rs, S_ADROP_IN, l, &tPr, err);
        VENE_FIRE(rs, S_ADROP_OUT, l, &tPr, err);
        vk_attn_values_kv(probs, &kv, merged, D, B, S, H, H, hd);
        VENE_FIRE(rs, S_OPROJ_IN, l, &tM, err);
        vk_linear_out_in(merged, L->o_w, L->o_b, proj, T, D, D);
        VENE_FIRE(rs, S_OPROJ_OUT, l, &tPj, err);
        VENE_FIRE(rs, S_RDROP_IN, l, &tPj, err);
        VENE_FIRE(rs, S_RDROP_OUT, l, &tPj, err);
        VENE_FIRE(rs, S_SA_OUT, l, &tPj, err);
        VENE_FIRE(rs, S_ATTN_OUT, l, &tPj, err);
        vk_add(proj, x, x2, (int64_t)T * D);
        VENE_FIRE(rs, S_LN2_IN, l, &tX2, err);
        vk_layernorm(x2, L->ln2_g, L->ln2_b, b2, T, D, m->norm_eps);
        VENE_FIRE(rs, S_LN2_OUT, l, &tB2, err);
        VENE_FIRE(rs, S_MLP_IN, l, &tB2, err);
        VENE_FIRE(rs, S_FC_IN, l, &tB2, err);
        vk_linear_out_in(b2, L->fc_w, L->fc_b, fc, T, D, F);
        VENE_FIRE(rs, S_FC_OUT, l, &tFC, err);
        VENE_FIRE(rs, S_ACT_IN, l, &tFC, err);
        vk_gelu_tanh(fc, act, (int64_t)T * F);
        VENE_FIRE(rs, S_ACT_OUT, l, &tAct, err);
        VENE_FIRE(rs, S_MPROJ_IN, l, &tAct, err);
        vk_linear_out_in(act, L->mproj_w, L->mproj_b, mout, T, F, D);
        VENE_FIRE(rs, S_MPROJ_OUT, l, &tMo, err);
        VENE_FIRE(rs, S_MDROP_IN, l, &tMo, err);
        VENE_FIRE(rs, S_MDROP_OUT, l, &tMo, err);
        VENE_FIRE(rs, S_MLP_OUT, l, &tMo, err);
        vk_add(x2, mout, x, (int64_t)T * D); /* x (this block's input) is dead: reuse it */
        VENE_FIRE(rs, S_H_OUT, l, &tX, err);
    }
    float *hid;
    VENE_ALLOC(hid, (size_t)T * D);
    rs->last_hidden = vene_tensor_3d(hid, B, S, D);
    VENE_FIRE(rs, S_LNF_IN, -1, &tX, err);
    vk_layernorm(x, w->lnf_g, w->lnf_b, hid, T, D, m->norm_eps);
    VENE_FIRE(rs, S_LNF_OUT, -1, &rs->last_hidden, err);
    return m->has_lm_head ? vene_run_lm_head(rs, w->lm_head, S_HEAD_IN, S_HEAD_OUT, err) : VENE_OK;
}

const vene_arch vene_arch_gptneo = {
    .model_type = "gpt_neo",
    .classes = neo_classes,
    .sites = neo_sites,
    .n_sites = S_COUNT,
    .components = neo_components,
    .n_components = sizeof neo_components / sizeof neo_components[0],
    .load = neo_load,
    .free_impl = neo_free_impl,
    .run_bytes = neo_run_bytes,
    .forward = neo_forward,
    .site_shape = neo_site_shape,
    .component_width = neo_component_width,
    .kv_cached = 1,
};
