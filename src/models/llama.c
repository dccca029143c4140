/* LLaMA (Hugging Face LlamaModel / LlamaForCausalLM, transformers 4.43), eager attention,
 * eval mode. The forward reads top to bottom like the Hugging Face modules it mirrors;
 * each VENE_FIRE is one hook site, fired in the order PyTorch hooks would fire. Tensors
 * that are one object in PyTorch (input_layernorm output = self_attn input = q/k/v_proj
 * input; o_proj output = self_attn output; ...) are one buffer here, so an in-place edit
 * at one site is seen at the others exactly as in PyTorch.
 *
 * Not modelled: the rotary_emb submodule (its output is the (cos, sin) pair, no hook site),
 * rope_scaling other than "linear", hidden_act other than silu. */
#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/kernels.h"
#include "core/kernels_llama.h"
#include "models/model.h"

enum {
    S_EMBED_OUT,
    S_L_IN, S_LN1_IN, S_LN1_OUT, S_ATTN_IN,
    S_Q_IN, S_Q_OUT, S_K_IN, S_K_OUT, S_V_IN, S_V_OUT, S_O_IN, S_O_OUT, S_ATTN_OUT,
    S_LN2_IN, S_LN2_OUT, S_MLP_IN, S_GATE_IN, S_GATE_OUT, S_ACT_IN, S_ACT_OUT,
    S_UP_IN, S_UP_OUT, S_DOWN_IN, S_DOWN_OUT, S_MLP_OUT, S_L_OUT,
    S_NORM_IN, S_NORM_OUT, S_HEAD_IN, S_HEAD_OUT,
    S_COUNT
};

static const vene_site_def llama_sites[S_COUNT] = {
    [S_EMBED_OUT] = {"embed_tokens", 0, 0, "B x S x D"},
    [S_L_IN] = {"layers[%d]", 1, 1, "B x S x D"},
    [S_LN1_IN] = {"layers[%d].input_layernorm", 1, 1, "B x S x D"},
    [S_LN1_OUT] = {"layers[%d].input_layernorm", 0, 1, "B x S x D"},
    [S_ATTN_IN] = {"layers[%d].self_attn", 1, 1, "B x S x D"},
    [S_Q_IN] = {"layers[%d].self_attn.q_proj", 1, 1, "B x S x D"},
    [S_Q_OUT] = {"layers[%d].self_attn.q_proj", 0, 1, "B x S x H*hd (before RoPE)"},
    [S_K_IN] = {"layers[%d].self_attn.k_proj", 1, 1, "B x S x D"},
    [S_K_OUT] = {"layers[%d].self_attn.k_proj", 0, 1, "B x S x KV*hd (before RoPE)"},
    [S_V_IN] = {"layers[%d].self_attn.v_proj", 1, 1, "B x S x D"},
    [S_V_OUT] = {"layers[%d].self_attn.v_proj", 0, 1, "B x S x KV*hd"},
    [S_O_IN] = {"layers[%d].self_attn.o_proj", 1, 1, "B x S x H*hd"},
    [S_O_OUT] = {"layers[%d].self_attn.o_proj", 0, 1, "B x S x D"},
    [S_ATTN_OUT] = {"layers[%d].self_attn", 0, 1, "B x S x D"},
    [S_LN2_IN] = {"layers[%d].post_attention_layernorm", 1, 1, "B x S x D"},
    [S_LN2_OUT] = {"layers[%d].post_attention_layernorm", 0, 1, "B x S x D"},
    [S_MLP_IN] = {"layers[%d].mlp", 1, 1, "B x S x D"},
    [S_GATE_IN] = {"layers[%d].mlp.gate_proj", 1, 1, "B x S x D"},
    [S_GATE_OUT] = {"layers[%d].mlp.gate_proj", 0, 1, "B x S x F"},
    [S_ACT_IN] = {"layers[%d].mlp.act_fn", 1, 1, "B x S x F"},
    [S_ACT_OUT] = {"layers[%d].mlp.act_fn", 0, 1, "B x S x F"},
    [S_UP_IN] = {"layers[%d].mlp.up_proj", 1, 1, "B x S x D"},
    [S_UP_OUT] = {"layers[%d].mlp.up_proj", 0, 1, "B x S x F"},
    [S_DOWN_IN] = {"layers[%d].mlp.down_proj", 1, 1, "B x S x F"},
    [S_DOWN_OUT] = {"layers[%d].mlp.down_proj", 0, 1, "B x S x D"},
    [S_MLP_OUT] = {"layers[%d].mlp", 0, 1, "B x S x D"},
    [S_L_OUT] = {"layers[%d]", 0, 1, "B x S x D"},
    [S_NORM_IN] = {"norm", 1, 0, "B x S x D"},
    [S_NORM_OUT] = {"norm", 0, 0, "B x S x D"},
    [S_HEAD_IN] = {"lm_head", 1, 0, "B x S x D"},
    [S_HEAD_OUT] = {"lm_head", 0, 0, "B x S x V"},
};

/* pyvene's llama component table (spec §5.4), widths per spec §16 #13. */
static const vene_component_def llama_components[] = {
    {"block_input", "layers[%d]", 1, VENE_SPLIT_NONE, 0},
    {"block_output", "layers[%d]", 0, VENE_SPLIT_NONE, 0},
    {"mlp_activation", "layers[%d].mlp.act_fn", 0, VENE_SPLIT_NONE, 0},
    {"mlp_output", "layers[%d].mlp", 0, VENE_SPLIT_NONE, 0},
    {"mlp_input", "layers[%d].mlp", 1, VENE_SPLIT_NONE, 0},
    {"attention_value_output", "layers[%d].self_attn.o_proj", 1, VENE_SPLIT_NONE, 0},
    {"head_attention_value_output", "layers[%d].self_attn.o_proj", 1, VENE_SPLIT_NONE, 1},
    {"attention_output", "layers[%d].self_attn", 0, VENE_SPLIT_NONE, 0},
    {"attention_input", "layers[%d].self_attn", 1, VENE_SPLIT_NONE, 0},
    {"query_output", "layers[%d].self_attn.q_proj", 0, VENE_SPLIT_NONE, 0},
    {"key_output", "layers[%d].self_attn.k_proj", 0, VENE_SPLIT_NONE, 0},
    {"value_output", "layers[%d].self_attn.v_proj", 0, VENE_SPLIT_NONE, 0},
    {"head_query_output", "layers[%d].self_attn.q_proj", 0, VENE_SPLIT_NONE, 1},
    {"head_key_output", "layers[%d].self_attn.k_proj", 0, VENE_SPLIT_NONE, 2},
    {"head_value_output", "layers[%d].self_attn.v_proj", 0, VENE_SPLIT_NONE, 2},
};

typedef struct llama_layer {
    const float *ln1, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
    const float *ln2, *gate_w, *gate_b, *up_w, *up_b, *down_w, *down_b;
} llama_layer;

typedef struct llama_weights {
    const float *embed, *norm, *head;
    float *inv_freq;           /* head_dim / 2 RoPE inverse frequencies, owned */
    llama_layer *layers;
} llama_weights;

static const char *const llama_classes[] = {"LlamaForCausalLM", "LlamaModel", NULL};


/* A Linear [out, in] weight and, when `bias`, its [out] bias. */
static int get_linear(vene_model *m, int l, const char *mod, int in, int out, int bias, const float **w,
                      const float **b, vene_error *err) {
    char n[160];
    snprintf(n, sizeof n, "layers.%d.%s.weight", l, mod);
    int rc = vene_model_weight(m, n, 2, out, in, w, err);
    if (rc || !bias) return rc;
    snprintf(n, sizeof n, "layers.%d.%s.bias", l, mod);
    return vene_model_weight(m, n, 1, out, 0, b, err);
}

/* rope_scaling: null, or {"rope_type"|"type": "default"|"linear", "factor": f}. */
static int read_rope_scaling(const vene_model *m, double *factor, vene_error *err) {
    *factor = 1.0;
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(m->config, "rope_scaling");
    if (!rs || cJSON_IsNull(rs)) return VENE_OK;
    if (!cJSON_IsObject(rs))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: key \"rope_scaling\" must be null or an object", m->dir);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!cJSON_IsString(t)) t = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(t))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: key \"rope_scaling\" has no string \"rope_type\" or \"type\"",
                           m->dir);
    if (strcmp(t->valuestring, "default") == 0) return VENE_OK;
    if (strcmp(t->valuestring, "linear") != 0)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED,
                           "%s/config.json: key \"rope_scaling\" of type \"%s\" is not supported (null or \"linear\")",
                           m->dir, t->valuestring);
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(rs, "factor");
    if (!cJSON_IsNumber(f) || !(f->valuedouble >= 1.0))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: key \"rope_scaling.factor\" must be a number >= 1",
                           m->dir);
    *factor = f->valuedouble;
    return VENE_OK;
}

static int llama_load(vene_model *m, vene_error *err) {
    const cJSON *c = m->config;
    const char *file = "config.json";
    int rc;
    if ((rc = vene_config_int(c, file, "num_hidden_layers", &m->n_layer, err)) ||
        (rc = vene_config_int(c, file, "hidden_size", &m->d_model, err)) ||
        (rc = vene_config_int(c, file, "num_attention_heads", &m->n_head, err)) ||
        (rc = vene_config_int(c, file, "intermediate_size", &m->d_ff, err)) ||
        (rc = vene_config_int(c, file, "vocab_size", &m->vocab_size, err)))
        return vene_error_prefix(err, "%s", m->dir);
    if ((rc = vene_config_int_or(m, "max_position_embeddings", 2048, &m->n_ctx, err)) ||
        (rc = vene_config_int_or(m, "num_key_value_heads", m->n_head, &m->n_kv_head, err)))
        return rc;
    if (m->n_head <= 0 || m->d_model <= 0)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: hidden_size %d and num_attention_heads %d must be positive",
                           m->dir, m->d_model, m->n_head);
    if ((rc = vene_config_int_or(m, "head_dim", m->d_model / m->n_head, &m->head_dim, err))) return rc;
    if (m->n_layer <= 0 || m->d_ff <= 0 || m->vocab_size <= 0 || m->n_ctx <= 0 || m->n_kv_head <= 0 ||
        m->head_dim <= 0 || m->head_dim % 2 != 0 || m->n_head % m->n_kv_head != 0 ||
        (int64_t)m->n_head * m->head_dim > INT_MAX)
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s/config.json: inconsistent sizes (num_hidden_layers %d, hidden_size %d, "
                           "num_attention_heads %d, num_key_value_heads %d, head_dim %d, intermediate_size %d, "
                           "vocab_size %d, max_position_embeddings %d): all must be positive, head_dim even and "
                           "num_attention_heads divisible by num_key_value_heads",
                           m->dir, m->n_layer, m->d_model, m->n_head, m->n_kv_head, m->head_dim, m->d_ff,
                           m->vocab_size, m->n_ctx);
    double eps, prf, theta;
    if ((rc = vene_config_num_or(m, "rms_norm_eps", 1e-6, &eps, err)) ||
        (rc = vene_config_num_or(m, "partial_rotary_factor", 1.0, &prf, err)) ||
        (rc = vene_config_num_or(m, "rope_theta", 10000.0, &theta, err)))
        return rc;
    m->norm_eps = (float)eps;
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(c, "hidden_act");
    if (cJSON_IsString(act) && strcmp(act->valuestring, "silu") != 0)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s/config.json: hidden_act \"%s\" not supported (silu)", m->dir,
                           act->valuestring);
    if (prf != 1.0)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s/config.json: partial_rotary_factor %g not supported (1.0)",
                           m->dir, prf);
    double rope_factor = 1.0;
    if ((rc = read_rope_scaling(m, &rope_factor, err))) return rc;
    if (!(theta > 0))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: rope_theta must be positive", m->dir);
    int attn_bias, mlp_bias, tied;
    if ((rc = vene_config_bool_or(m, "attention_bias", 0, &attn_bias, err)) ||
        (rc = vene_config_bool_or(m, "mlp_bias", 0, &mlp_bias, err)) ||
        (rc = vene_config_bool_or(m, "tie_word_embeddings", 0, &tied, err)))
        return rc;
    m->has_lm_head = strcmp(m->model_class, "LlamaForCausalLM") == 0;
    m->path_prefix = m->has_lm_head ? "model." : "";
    static const char *const prefixes[] = {"model.", NULL};
    vene_weights_set_prefixes(m->weights, prefixes);

    char last[96];
    snprintf(last, sizeof last, "layers.%d.input_layernorm.weight", m->n_layer - 1);
    if (!vene_weights_has(m->weights, last))
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s/config.json: num_hidden_layers is %d but model.safetensors has no tensor \"%s\"", m->dir,
                           m->n_layer, last);
    const st_tensor *qt = NULL;
    if (vene_weights_find(m->weights, "layers.0.self_attn.q_proj.weight", &qt) == VENE_OK && qt->ndim == 2 &&
        qt->shape[0] != (int64_t)m->n_head * m->head_dim)
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s/config.json: num_attention_heads %d x head_dim %d does not match q_proj (%lld rows)",
                           m->dir, m->n_head, m->head_dim, (long long)qt->shape[0]);
    llama_weights *w = calloc(1, sizeof *w);
    if (!w) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    m->impl = w;
    w->layers = calloc((size_t)m->n_layer, sizeof *w->layers);
    w->inv_freq = malloc(sizeof(float) * (size_t)(m->head_dim / 2));
    if (!w->layers || !w->inv_freq) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    vk_rope_inv_freq(w->inv_freq, m->head_dim, theta, rope_factor);

    const int D = m->d_model, F = m->d_ff, Q = m->n_head * m->head_dim, KV = m->n_kv_head * m->head_dim;
    if ((rc = vene_model_weight(m, "embed_tokens.weight", 2, m->vocab_size, D, &w->embed, err)) ||
        (rc = vene_model_weight(m, "norm.weight", 1, D, 0, &w->norm, err)))
        return rc;
    for (int l = 0; l < m->n_layer; l++) {
        llama_layer *L = &w->layers[l];
        char n1[96], n2[96];
        snprintf(n1, sizeof n1, "layers.%d.input_layernorm.weight", l);
        snprintf(n2, sizeof n2, "layers.%d.post_attention_layernorm.weight", l);
        if ((rc = vene_model_weight(m, n1, 1, D, 0, &L->ln1, err)) ||
            (rc = get_linear(m, l, "self_attn.q_proj", D, Q, attn_bias, &L->q_w, &L->q_b, err)) ||
            (rc = get_linear(m, l, "self_attn.k_proj", D, KV, attn_bias, &L->k_w, &L->k_b, err)) ||
            (rc = get_linear(m, l, "self_attn.v_proj", D, KV, attn_bias, &L->v_w, &L->v_b, err)) ||
            (rc = get_linear(m, l, "self_attn.o_proj", Q, D, attn_bias, &L->o_w, &L->o_b, err)) ||
            (rc = vene_model_weight(m, n2, 1, D, 0, &L->ln2, err)) ||
            (rc = get_linear(m, l, "mlp.gate_proj", D, F, mlp_bias, &L->gate_w, &L->gate_b, err)) ||
            (rc = get_linear(m, l, "mlp.up_proj", D, F, mlp_bias, &L->up_w, &L->up_b, err)) ||
            (rc = get_linear(m, l, "mlp.down_proj", F, D, mlp_bias, &L->down_w, &L->down_b, err)))
            return rc;
    }
    if (m->has_lm_head) {
        if (tied) {
            w->head = w->embed;
        } else {
            if ((rc = vene_model_weight(m, "lm_head.weight", 2, m->vocab_size, D, &w->head, err))) return rc;
        }
    }
    return VENE_OK;
}

static void llama_free_impl(vene_model *m) {
    llama_weights *w = m->impl;
    if (w) {
        free(w->layers);
        free(w->inv_freq);
    }
    free(w);
    m->impl = NULL;
}

/* Number of arena allocations in llama_forward (each may waste up to 64 bytes). */
#define LLAMA_ALLOCS 19

static size_t llama_run_bytes(const vene_model *m, int B, int S) {
    size_t T = (size_t)B * S, D = (size_t)m->d_model, F = (size_t)m->d_ff, H = (size_t)m->n_head;
    size_t Q = H * (size_t)m->head_dim, KV = (size_t)m->n_kv_head * (size_t)m->head_dim;
    size_t half = (size_t)m->head_dim / 2;
    size_t floats = T * D * 7 + T * Q * 2 + T * KV * 2 + T * F * 4 + (size_t)B * H * S * S + T * half * 2 +
                    (m->has_lm_head ? T * (size_t)m->vocab_size : 0);
    return floats * sizeof(float) + 64 * LLAMA_ALLOCS;
}

static int llama_site_shape(const vene_model *m, int site, int B, int S, int64_t *shape) {
    shape[0] = B;
    shape[1] = S;
    switch (site) {
    case S_Q_OUT: case S_O_IN: shape[2] = (int64_t)m->n_head * m->head_dim; return 3;
    case S_K_OUT: case S_V_OUT: shape[2] = (int64_t)m->n_kv_head * m->head_dim; return 3;
    case S_GATE_OUT: case S_ACT_IN: case S_ACT_OUT: case S_UP_OUT: case S_DOWN_IN: shape[2] = m->d_ff; return 3;
    case S_HEAD_OUT: shape[2] = m->vocab_size; return 3;
    default: shape[2] = m->d_model; return 3;
    }
}

static int llama_component_width(const vene_model *m, const vene_component_def *c) {
    if (c->head_split) return m->head_dim;
    if (strcmp(c->name, "mlp_activation") == 0) return m->d_ff;
    if (strcmp(c->name, "query_output") == 0 || strcmp(c->name, "attention_value_output") == 0)
        return m->n_head * m->head_dim;
    if (strcmp(c->name, "key_output") == 0 || strcmp(c->name, "value_output") == 0) return m->n_kv_head * m->head_dim;
    return m->d_model;
}


static int llama_forward(vene_run *rs, const vene_batch *in, vene_error *err) {
    const vene_model *m = rs->m;
    const llama_weights *w = m->impl;
    const int B = in->batch, S = in->seq, T = B * S, D = m->d_model, F = m->d_ff, H = m->n_head;
    const int KVH = m->n_kv_head, hd = m->head_dim, Q = H * hd, KV = KVH * hd, half = hd / 2;
    float *x, *a, *q, *k, *v, *probs, *merged, *ao, *x2, *b2, *gate, *act, *up, *prod, *mout, *cos_t, *sin_t;
    VENE_ALLOC(x, (size_t)T * D);
    VENE_ALLOC(a, (size_t)T * D);
    VENE_ALLOC(q, (size_t)T * Q);
    VENE_ALLOC(k, (size_t)T * KV);
    VENE_ALLOC(v, (size_t)T * KV);
    VENE_ALLOC(probs, (size_t)B * H * S * S);
    VENE_ALLOC(merged, (size_t)T * Q);
    VENE_ALLOC(ao, (size_t)T * D);
    VENE_ALLOC(x2, (size_t)T * D);
    VENE_ALLOC(b2, (size_t)T * D);
    VENE_ALLOC(gate, (size_t)T * F);
    VENE_ALLOC(act, (size_t)T * F);
    VENE_ALLOC(up, (size_t)T * F);
    VENE_ALLOC(prod, (size_t)T * F);
    VENE_ALLOC(mout, (size_t)T * D);
    VENE_ALLOC(cos_t, (size_t)T * half);
    VENE_ALLOC(sin_t, (size_t)T * half);
    vene_tensor tX = vene_tensor_3d(x, B, S, D), tA = vene_tensor_3d(a, B, S, D);
    vene_tensor tQ = vene_tensor_3d(q, B, S, Q), tK = vene_tensor_3d(k, B, S, KV), tV = vene_tensor_3d(v, B, S, KV);
    vene_tensor tM = vene_tensor_3d(merged, B, S, Q), tAO = vene_tensor_3d(ao, B, S, D);
    vene_tensor tX2 = vene_tensor_3d(x2, B, S, D), tB2 = vene_tensor_3d(b2, B, S, D);
    vene_tensor tG = vene_tensor_3d(gate, B, S, F), tAct = vene_tensor_3d(act, B, S, F);
    vene_tensor tUp = vene_tensor_3d(up, B, S, F), tProd = vene_tensor_3d(prod, B, S, F);
    vene_tensor tMo = vene_tensor_3d(mout, B, S, D);

    if (in->embeds) {
        memcpy(x, in->embeds, sizeof(float) * (size_t)T * D);
    } else {
        vk_embed(w->embed, in->ids, x, T, D);
        VENE_FIRE(rs, S_EMBED_OUT, -1, &tX, err);
    }
    /* position_ids default to 0..S-1 for every row (cache_position), also under padding */
    if (in->positions) {
        vk_rope_tables(w->inv_freq, half, in->positions, T, cos_t, sin_t);
    } else {
        vk_rope_tables(w->inv_freq, half, NULL, S, cos_t, sin_t);
        for (int b = 1; b < B; b++) {
            memcpy(cos_t + (size_t)b * S * half, cos_t, sizeof(float) * (size_t)S * half);
            memcpy(sin_t + (size_t)b * S * half, sin_t, sizeof(float) * (size_t)S * half);
        }
    }

    const float scale_div = sqrtf((float)hd);
    for (int l = 0; l < m->n_layer; l++) {
        const llama_layer *L = &w->layers[l];
        VENE_FIRE(rs, S_L_IN, l, &tX, err);
        VENE_FIRE(rs, S_LN1_IN, l, &tX, err);
        vk_rmsnorm(x, L->ln1, a, T, D, m->norm_eps);
        VENE_FIRE(rs, S_LN1_OUT, l, &tA, err);
        VENE_FIRE(rs, S_ATTN_IN, l, &tA, err);
        VENE_FIRE(rs, S_Q_IN, l, &tA, err);
        vk_linear_out_in(a, L->q_w, L->q_b, q, T, D, Q);
        VENE_FIRE(rs, S_Q_OUT, l, &tQ, err);
        VENE_FIRE(rs, S_K_IN, l, &tA, err);
        vk_linear_out_in(a, L->k_w, L->k_b, k, T, D, KV);
        VENE_FIRE(rs, S_K_OUT, l, &tK, err);
        VENE_FIRE(rs, S_V_IN, l, &tA, err);
        vk_linear_out_in(a, L->v_w, L->v_b, v, T, D, KV);
        VENE_FIRE(rs, S_V_OUT, l, &tV, err);
        /* q_proj/k_proj outputs are dead after their hooks: rotate them in place */
        vk_rope_apply(q, Q, T, H, hd, cos_t, sin_t);
        vk_rope_apply(k, KV, T, KVH, hd, cos_t, sin_t);
        vk_llama_attn_scores(q, Q, k, KV, probs, B, S, H, KVH, hd, scale_div, in->attn_mask);
        vk_attn_values(probs, v, KV, merged, Q, B, S, H, KVH, hd);
        VENE_FIRE(rs, S_O_IN, l, &tM, err);
        vk_linear_out_in(merged, L->o_w, L->o_b, ao, T, Q, D);
        VENE_FIRE(rs, S_O_OUT, l, &tAO, err);
        VENE_FIRE(rs, S_ATTN_OUT, l, &tAO, err);
        vk_add(x, ao, x2, (int64_t)T * D);
        VENE_FIRE(rs, S_LN2_IN, l, &tX2, err);
        vk_rmsnorm(x2, L->ln2, b2, T, D, m->norm_eps);
        VENE_FIRE(rs, S_LN2_OUT, l, &tB2, err);
        VENE_FIRE(rs, S_MLP_IN, l, &tB2, err);
        VENE_FIRE(rs, S_GATE_IN, l, &tB2, err);
        vk_linear_out_in(b2, L->gate_w, L->gate_b, gate, T, D, F);
        VENE_FIRE(rs, S_GATE_OUT, l, &tG, err);
        VENE_FIRE(rs, S_ACT_IN, l, &tG, err);
        vk_silu(gate, act, (int64_t)T * F);
        VENE_FIRE(rs, S_ACT_OUT, l, &tAct, err);
        VENE_FIRE(rs, S_UP_IN, l, &tB2, err);
        vk_linear_out_in(b2, L->up_w, L->up_b, up, T, D, F);
        VENE_FIRE(rs, S_UP_OUT, l, &tUp, err);
        vk_mul(act, up, prod, (int64_t)T * F);
        VENE_FIRE(rs, S_DOWN_IN, l, &tProd, err);
        vk_linear_out_in(prod, L->down_w, L->down_b, mout, T, F, D);
        VENE_FIRE(rs, S_DOWN_OUT, l, &tMo, err);
        VENE_FIRE(rs, S_MLP_OUT, l, &tMo, err);
        vk_add(x2, mout, x, (int64_t)T * D); /* x (this block's input) is dead: reuse it */
        VENE_FIRE(rs, S_L_OUT, l, &tX, err);
    }
    float *hid;
    VENE_ALLOC(hid, (size_t)T * D);
    rs->last_hidden = vene_tensor_3d(hid, B, S, D);
    VENE_FIRE(rs, S_NORM_IN, -1, &tX, err);
    vk_rmsnorm(x, w->norm, hid, T, D, m->norm_eps);
    VENE_FIRE(rs, S_NORM_OUT, -1, &rs->last_hidden, err);
    return m->has_lm_head ? vene_run_lm_head(rs, w->head, S_HEAD_IN, S_HEAD_OUT, err) : VENE_OK;
}

const vene_arch vene_arch_llama = {
    .model_type = "llama",
    .classes = llama_classes,
    .sites = llama_sites,
    .n_sites = S_COUNT,
    .components = llama_components,
    .n_components = sizeof llama_components / sizeof llama_components[0],
    .load = llama_load,
    .free_impl = llama_free_impl,
    .run_bytes = llama_run_bytes,
    .forward = llama_forward,
    .site_shape = llama_site_shape,
    .component_width = llama_component_width,
};
