/* The LLaMA family from Hugging Face folders (transformers 4.43 modules, eager attention,
 * eval mode), one implementation: Llama 1/2/3, Mistral, Qwen2 and Gemma differ only in
 * settings read at load time. The forward reads top to bottom like the Hugging Face
 * modules it mirrors; each VENE_FIRE is one hook site, fired in the order PyTorch hooks
 * would fire. Tensors that are one object in PyTorch (input_layernorm output = self_attn
 * input = q/k/v_proj input; o_proj output = self_attn output; ...) are one buffer here,
 * so an in-place edit at one site is seen at the others exactly as in PyTorch.
 *
 *   Mistral: sliding_window (a query sees itself and the window - 1 keys before it).
 *   Qwen2:   q/k/v projections with biases; use_sliding_window must be false.
 *   Gemma:   RMSNorm scales by (1 + w); the embedding output is multiplied by
 *            sqrt(hidden_size) in float32 before layer 0 (embed_tokens.output is the
 *            unscaled lookup, as the module returns it); GeGLU with hidden_activation
 *            (default gelu_pytorch_tanh); head_dim from config.json; tied head by default.
 *   All:     rope_scaling null, "linear", "dynamic" (per call, from the largest position,
 *            as a freshly loaded Hugging Face model computes it) or "llama3".
 *
 * In gradient mode every layer keeps its own buffers for the backward (llama_backward.c).
 *
 * Not modelled: the rotary_emb submodule (its output is the (cos, sin) pair, no hook
 * site), Qwen2's sliding windows, Gemma 2. */
#include <math.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/kernels.h"
#include "core/kernels_llama.h"
#include "models/llama_internal.h"

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

/* What distinguishes a family member (vene_arch.data). */
typedef struct llama_variant {
    const char *lm_class;      /* the *ForCausalLM class name */
    uint8_t qkv_bias;          /* Qwen2: q/k/v projections always have biases */
    uint8_t gemma;             /* Gemma: (1 + w) norms, scaled embedding, hidden_activation */
    uint8_t sliding_window;    /* Mistral: config.sliding_window applies */
    uint8_t qwen2;             /* Qwen2: refuse use_sliding_window */
} llama_variant;

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

/* hidden_act (or Gemma's hidden_activation) to a kernel; errors name the key. */
static int read_activation(const vene_model *m, const char *key, const char *dflt, int *act, vene_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->config, key);
    const char *name = cJSON_IsString(v) ? v->valuestring : dflt;
    if (v && !cJSON_IsNull(v) && !cJSON_IsString(v))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: key \"%s\" must be a string", m->dir, key);
    if (!strcmp(name, "silu") || !strcmp(name, "swish")) *act = ACT_SILU;
    else if (!strcmp(name, "gelu_pytorch_tanh") || !strcmp(name, "gelu_new")) *act = ACT_GELU_TANH;
    else if (!strcmp(name, "gelu")) *act = ACT_GELU_ERF;
    else
        return vene_errorf(err, VENE_ERR_UNSUPPORTED,
                           "%s/config.json: %s \"%s\" not supported (silu, gelu, gelu_pytorch_tanh, gelu_new)", m->dir,
                           key, name);
    return VENE_OK;
}

/* The member-specific settings: activation, sliding window, embedding scale, RoPE. */
static int read_variant_settings(vene_model *m, const llama_variant *var, llama_weights *w, vene_error *err) {
    int rc = var->gemma ? read_activation(m, "hidden_activation", "gelu_pytorch_tanh", &w->act, err)
                        : read_activation(m, "hidden_act", "silu", &w->act, err);
    if (rc) return rc;
    /* MistralConfig's sliding_window defaults to 4096 when absent; null means none */
    int window_default = cJSON_GetObjectItemCaseSensitive(m->config, "sliding_window") ? 0 : 4096;
    if (var->sliding_window && (rc = vene_config_int_or(m, "sliding_window", window_default, &w->window, err)))
        return rc;
    if (w->window < 0)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: key \"sliding_window\" must be positive or null", m->dir);
    int qwen_window = 0;
    if (var->qwen2 && (rc = vene_config_bool_or(m, "use_sliding_window", 0, &qwen_window, err))) return rc;
    if (qwen_window)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s/config.json: use_sliding_window true is not supported for qwen2",
                           m->dir);
    if (var->gemma) w->embed_scale = (float)sqrt((double)m->d_model);
    double prf = vene_config_num_opt(m->config, "partial_rotary_factor", 1.0);
    if (prf != 1.0)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s/config.json: partial_rotary_factor %g not supported (1.0)",
                           m->dir, prf);
    unsigned kinds = VENE_ROPE_ALLOW(VENE_ROPE_DEFAULT) | VENE_ROPE_ALLOW(VENE_ROPE_LINEAR) |
                     VENE_ROPE_ALLOW(VENE_ROPE_DYNAMIC) | VENE_ROPE_ALLOW(VENE_ROPE_LLAMA3);
    if ((rc = vene_rope_read(m, "rope_theta", 10000.0, m->head_dim, m->n_ctx, kinds, &w->rope, err))) return rc;
    m->n_ctx = vene_rope_max_positions(&w->rope);
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
    m->n_ctx = vene_config_int_opt(c, "max_position_embeddings", 2048);
    m->n_kv_head = vene_config_int_opt(c, "num_key_value_heads", m->n_head);
    if (m->n_head <= 0 || m->d_model <= 0)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: hidden_size %d and num_attention_heads %d must be positive",
                           m->dir, m->d_model, m->n_head);
    const llama_variant *var = m->arch->data;
    /* GemmaConfig's default head_dim is 256, not hidden_size / num_attention_heads */
    m->head_dim = vene_config_int_opt(c, "head_dim", var->gemma ? 256 : m->d_model / m->n_head);
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
    m->norm_eps = (float)vene_config_num_opt(c, "rms_norm_eps", 1e-6);
    int attn_bias = 0, mlp_bias = 0, tied = 0;
    if ((rc = vene_config_bool_or(m, "attention_bias", 0, &attn_bias, err)) ||
        (rc = vene_config_bool_or(m, "mlp_bias", 0, &mlp_bias, err)) ||
        (rc = vene_config_bool_or(m, "tie_word_embeddings", var->gemma, &tied, err)))
        return rc;
    m->has_lm_head = strcmp(m->model_class, var->lm_class) == 0;
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
    if ((rc = read_variant_settings(m, var, w, err))) return rc;
    w->layers = calloc((size_t)m->n_layer, sizeof *w->layers);
    w->inv_freq = malloc(sizeof(float) * (size_t)(m->head_dim / 2));
    if (!w->layers || !w->inv_freq) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    vene_rope_inv_freq(&w->rope, 0, w->inv_freq);
    const int qkv_bias = attn_bias || var->qkv_bias;

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
            (rc = get_linear(m, l, "self_attn.q_proj", D, Q, qkv_bias, &L->q_w, &L->q_b, err)) ||
            (rc = get_linear(m, l, "self_attn.k_proj", D, KV, qkv_bias, &L->k_w, &L->k_b, err)) ||
            (rc = get_linear(m, l, "self_attn.v_proj", D, KV, qkv_bias, &L->v_w, &L->v_b, err)) ||
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
    w->norm_1p = var->gemma;
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
#define LLAMA_ALLOCS 20

static size_t llama_run_bytes(const vene_model *m, int B, int S) {
    size_t T = (size_t)B * S, D = (size_t)m->d_model, F = (size_t)m->d_ff, H = (size_t)m->n_head;
    size_t Q = H * (size_t)m->head_dim, KV = (size_t)m->n_kv_head * (size_t)m->head_dim;
    size_t half = (size_t)m->head_dim / 2;
    size_t floats = T * D * 7 + T * Q * 2 + T * KV * 2 + T * F * 4 + (size_t)B * H * S * S + T * half * 2 + half +
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


static void llama_norm(const llama_weights *w, const float *x, const float *g, float *out, int T, const vene_model *m) {
    if (w->norm_1p) vk_rmsnorm_1p(x, g, out, T, m->d_model, m->norm_eps);
    else vk_rmsnorm(x, g, out, T, m->d_model, m->norm_eps);
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
    const size_t TD = (size_t)T * D;
    llama_saved *sv = NULL;
    int rc;
    if (rs->grad_mode) VENE_SAVE_BEGIN(sv, in);

    if (in->embeds) {
        memcpy(x, in->embeds, sizeof(float) * (size_t)T * D);
    } else {
        vk_embed(w->embed, in->ids, x, T, D);
        VENE_FIRE(rs, S_EMBED_OUT, -1, &tX, err);
    }
    if (w->embed_scale != 0.0f) /* Gemma: a new tensor in PyTorch; the lookup is dead after its hook */
        for (int64_t i = 0; i < (int64_t)T * D; i++) x[i] *= w->embed_scale;
    const float *inv_freq = w->inv_freq;
    if (w->rope.kind == VENE_ROPE_DYNAMIC) {
        /* HF's dynamic rotary rescales from the largest position of the call */
        int seq_len = in->positions ? 1 : S;
        for (int64_t i = 0; in->positions && i < (int64_t)T; i++)
            if (in->positions[i] + 1 > seq_len) seq_len = in->positions[i] + 1;
        float *inv;
        VENE_ALLOC(inv, (size_t)half);
        vene_rope_inv_freq(&w->rope, seq_len, inv);
        inv_freq = inv;
    }
    /* position_ids default to 0..S-1 for every row (cache_position), also under padding */
    if (in->positions) {
        vk_rope_tables(inv_freq, half, in->positions, T, cos_t, sin_t);
    } else {
        vk_rope_tables(inv_freq, half, NULL, S, cos_t, sin_t);
        for (int b = 1; b < B; b++) {
            memcpy(cos_t + (size_t)b * S * half, cos_t, sizeof(float) * (size_t)S * half);
            memcpy(sin_t + (size_t)b * S * half, sin_t, sizeof(float) * (size_t)S * half);
        }
    }

    const float scale_div = sqrtf((float)hd);
    for (int l = 0; l < m->n_layer; l++) {
        const llama_layer *L = &w->layers[l];
        if (sv && l > 0) { /* gradient mode: every layer keeps its own buffers */
            VENE_ALLOC(a, TD);
            VENE_ALLOC(q, (size_t)T * Q);
            VENE_ALLOC(k, (size_t)T * KV);
            VENE_ALLOC(v, (size_t)T * KV);
            VENE_ALLOC(probs, (size_t)B * H * S * S);
            VENE_ALLOC(merged, (size_t)T * Q);
            VENE_ALLOC(x2, TD);
            VENE_ALLOC(b2, TD);
            VENE_ALLOC(gate, (size_t)T * F);
            VENE_ALLOC(act, (size_t)T * F);
            VENE_ALLOC(up, (size_t)T * F);
            VENE_ALLOC(prod, (size_t)T * F);
            tA.data = a, tQ.data = q, tK.data = k, tV.data = v, tM.data = merged, tX2.data = x2, tB2.data = b2;
            tG.data = gate, tAct.data = act, tUp.data = up, tProd.data = prod;
        }
        /* copies for the weight gradients when a later hook may edit a (b2) in place */
        const float *a_q = a, *a_k = a, *b2_gate = b2;
        VENE_FIRE(rs, S_L_IN, l, &tX, err);
        VENE_FIRE(rs, S_LN1_IN, l, &tX, err);
        llama_norm(w, x, L->ln1, a, T, m);
        VENE_FIRE(rs, S_LN1_OUT, l, &tA, err);
        VENE_FIRE(rs, S_ATTN_IN, l, &tA, err);
        VENE_FIRE(rs, S_Q_IN, l, &tA, err);
        vk_linear_out_in(a, L->q_w, L->q_b, q, T, D, Q);
        VENE_FIRE(rs, S_Q_OUT, l, &tQ, err);
        if (sv && (rc = vene_run_keep(rs, a, TD, rs->site_hooked[S_K_IN] || rs->site_hooked[S_V_IN], &a_q, err)))
            return rc;
        VENE_FIRE(rs, S_K_IN, l, &tA, err);
        vk_linear_out_in(a, L->k_w, L->k_b, k, T, D, KV);
        VENE_FIRE(rs, S_K_OUT, l, &tK, err);
        if (sv && (rc = vene_run_keep(rs, a, TD, rs->site_hooked[S_V_IN], &a_k, err))) return rc;
        VENE_FIRE(rs, S_V_IN, l, &tA, err);
        vk_linear_out_in(a, L->v_w, L->v_b, v, T, D, KV);
        VENE_FIRE(rs, S_V_OUT, l, &tV, err);
        /* q_proj/k_proj outputs are dead after their hooks: rotate them in place */
        vk_rope_apply(q, Q, T, H, hd, cos_t, sin_t);
        vk_rope_apply(k, KV, T, KVH, hd, cos_t, sin_t);
        vk_llama_attn_scores_window(q, Q, k, KV, probs, B, S, H, KVH, hd, scale_div, in->attn_mask, w->window);
        vk_attn_values(probs, v, KV, merged, Q, B, S, H, KVH, hd);
        VENE_FIRE(rs, S_O_IN, l, &tM, err);
        vk_linear_out_in(merged, L->o_w, L->o_b, ao, T, Q, D);
        VENE_FIRE(rs, S_O_OUT, l, &tAO, err);
        VENE_FIRE(rs, S_ATTN_OUT, l, &tAO, err);
        vk_add(x, ao, x2, (int64_t)T * D);
        VENE_FIRE(rs, S_LN2_IN, l, &tX2, err);
        llama_norm(w, x2, L->ln2, b2, T, m);
        VENE_FIRE(rs, S_LN2_OUT, l, &tB2, err);
        VENE_FIRE(rs, S_MLP_IN, l, &tB2, err);
        VENE_FIRE(rs, S_GATE_IN, l, &tB2, err);
        vk_linear_out_in(b2, L->gate_w, L->gate_b, gate, T, D, F);
        VENE_FIRE(rs, S_GATE_OUT, l, &tG, err);
        VENE_FIRE(rs, S_ACT_IN, l, &tG, err);
        if (w->act == ACT_SILU) vk_silu(gate, act, (int64_t)T * F);
        else if (w->act == ACT_GELU_TANH) vk_gelu_tanh(gate, act, (int64_t)T * F);
        else vk_gelu_erf(gate, act, (int64_t)T * F);
        VENE_FIRE(rs, S_ACT_OUT, l, &tAct, err);
        if (sv && (rc = vene_run_keep(rs, b2, TD, rs->site_hooked[S_UP_IN], &b2_gate, err))) return rc;
        VENE_FIRE(rs, S_UP_IN, l, &tB2, err);
        vk_linear_out_in(b2, L->up_w, L->up_b, up, T, D, F);
        VENE_FIRE(rs, S_UP_OUT, l, &tUp, err);
        vk_mul(act, up, prod, (int64_t)T * F);
        VENE_FIRE(rs, S_DOWN_IN, l, &tProd, err);
        vk_linear_out_in(prod, L->down_w, L->down_b, mout, T, F, D);
        VENE_FIRE(rs, S_DOWN_OUT, l, &tMo, err);
        VENE_FIRE(rs, S_MLP_OUT, l, &tMo, err);
        if (sv) {
            sv->layers[l] = (llama_saved_layer){x, a_q, a_k, a, q, k, v, probs, merged, x2, b2_gate, b2, gate, act, up,
                                                prod};
            VENE_ALLOC(x, TD);
            tX.data = x;
        }
        vk_add(x2, mout, x, (int64_t)T * D); /* x (this block's input) is dead: reuse it */
        VENE_FIRE(rs, S_L_OUT, l, &tX, err);
    }
    float *hid;
    VENE_ALLOC(hid, (size_t)T * D);
    rs->last_hidden = vene_tensor_3d(hid, B, S, D);
    VENE_FIRE(rs, S_NORM_IN, -1, &tX, err);
    llama_norm(w, x, w->norm, hid, T, m);
    VENE_FIRE(rs, S_NORM_OUT, -1, &rs->last_hidden, err);
    if (sv) { /* complete: backward may read it */
        sv->cos_t = cos_t, sv->sin_t = sin_t, sv->x_final = x;
        rs->saved = sv;
    }
    return m->has_lm_head ? vene_run_lm_head(rs, w->head, S_HEAD_IN, S_HEAD_OUT, err) : VENE_OK;
}

/* One architecture per model_type: the same tables and functions, a different variant. */
#define LLAMA_FAMILY_ARCH(sym, type, variant)                                  \
    const vene_arch sym = {                                                    \
        .model_type = type,                                                    \
        .classes = variant##_classes,                                          \
        .sites = llama_sites,                                                  \
        .n_sites = S_COUNT,                                                    \
        .components = llama_components,                                        \
        .n_components = sizeof llama_components / sizeof llama_components[0], \
        .load = llama_load,                                                    \
        .free_impl = llama_free_impl,                                          \
        .run_bytes = llama_run_bytes,                                          \
        .forward = llama_forward,                                              \
        .site_shape = llama_site_shape,                                        \
        .component_width = llama_component_width,                              \
        .grad_bytes = llama_grad_bytes,                                        \
        .backward = llama_backward,                                            \
        .data = &variant,                                                      \
    }

static const char *const llama_classes[] = {"LlamaForCausalLM", "LlamaModel", NULL};
static const char *const mistral_classes[] = {"MistralForCausalLM", "MistralModel", NULL};
static const char *const qwen2_classes[] = {"Qwen2ForCausalLM", "Qwen2Model", NULL};
static const char *const gemma_classes[] = {"GemmaForCausalLM", "GemmaModel", NULL};
static const llama_variant llama = {.lm_class = "LlamaForCausalLM"};
static const llama_variant mistral = {.lm_class = "MistralForCausalLM", .sliding_window = 1};
static const llama_variant qwen2 = {.lm_class = "Qwen2ForCausalLM", .qkv_bias = 1, .qwen2 = 1};
static const llama_variant gemma = {.lm_class = "GemmaForCausalLM", .gemma = 1};

LLAMA_FAMILY_ARCH(vene_arch_llama, "llama", llama);
LLAMA_FAMILY_ARCH(vene_arch_mistral, "mistral", mistral);
LLAMA_FAMILY_ARCH(vene_arch_qwen2, "qwen2", qwen2);
LLAMA_FAMILY_ARCH(vene_arch_gemma, "gemma", gemma);
