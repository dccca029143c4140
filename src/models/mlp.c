/* pyvene's own MLP models (pyvene/models/mlp/modelings_mlp.py): MLPModel and
 * MLPForClassification ("model_type": "mlp"), eval mode (dropout is the identity).
 *
 *   h = inputs_embeds, or wte(input_ids) when include_emb
 *   h += wpe(position_ids)            only when position_ids are given (pyvene adds no
 *                                     positions by default; needs include_emb)
 *   h = dropout(h)                    module "dropout" (returns h itself in eval)
 *   for l: h = dropout(act(ff1(h)))   module h[l] = MLPBlock: Linear h_dim -> h_dim (bias
 *                                     per include_bias), activation submodule h[l].act,
 *                                     NO residual
 *   logits = score(h)                 Linear h_dim -> num_classes (bias per include_bias),
 *                                     squeezed on dim 1 when squeeze_output (B x classes for
 *                                     one position; squeeze(1) is a no-op when S > 1)
 *
 * Tensors that are one object in PyTorch are one buffer here: inputs_embeds = wte output
 * = dropout in/out = h[0] input = h[0].ff1 input; h[l].act output = h[l].dropout in/out =
 * h[l] output = h[l+1] input (= score input and last_hidden_state after the last layer),
 * so an in-place edit at one site is seen at the others as in PyTorch.
 *
 * Config keys missing from config.json take MLPConfig's defaults (include_emb false,
 * vocab_size 50257, max_position_embeddings 512, n_layer 2, h_dim 512, num_classes 2,
 * activation_function "gelu", include_bias true, squeeze_output true). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/kernels.h"
#include "core/kernels_grad.h"
#include "core/kernels_llama.h"
#include "models/model.h"

enum {
    S_WTE_OUT, S_WPE_OUT, S_DROP_IN, S_DROP_OUT,
    S_H_IN, S_FF1_IN, S_FF1_OUT, S_ACT_IN, S_ACT_OUT, S_HDROP_IN, S_HDROP_OUT, S_H_OUT,
    S_SCORE_IN, S_SCORE_OUT,
    S_COUNT
};

static const vene_site_def mlp_sites[S_COUNT] = {
    [S_WTE_OUT] = {"wte", 0, 0, "B x S x D"},
    [S_WPE_OUT] = {"wpe", 0, 0, "B x S x D"},
    [S_DROP_IN] = {"dropout", 1, 0, "B x S x D"},
    [S_DROP_OUT] = {"dropout", 0, 0, "B x S x D"},
    [S_H_IN] = {"h[%d]", 1, 1, "B x S x D"},
    [S_FF1_IN] = {"h[%d].ff1", 1, 1, "B x S x D"},
    [S_FF1_OUT] = {"h[%d].ff1", 0, 1, "B x S x D"},
    [S_ACT_IN] = {"h[%d].act", 1, 1, "B x S x D"},
    [S_ACT_OUT] = {"h[%d].act", 0, 1, "B x S x D"},
    [S_HDROP_IN] = {"h[%d].dropout", 1, 1, "B x S x D"},
    [S_HDROP_OUT] = {"h[%d].dropout", 0, 1, "B x S x D"},
    [S_H_OUT] = {"h[%d]", 0, 1, "B x S x D"},
    /* score sits beside the backbone (MLPForClassification.score), not under "mlp." */
    [S_SCORE_IN] = {"score", 1, 0, "B x S x D"},
    [S_SCORE_OUT] = {"score", 0, 0, "B x S x C"},
};

/* pyvene's mlp component table (spec §5.4): every width is h_dim. */
static const vene_component_def mlp_components[] = {
    {"block_input", "h[%d]", 1, VENE_SPLIT_NONE, 0},
    {"block_output", "h[%d]", 0, VENE_SPLIT_NONE, 0},
    {"mlp_activation", "h[%d].act", 0, VENE_SPLIT_NONE, 0},
};

static const char *const mlp_classes[] = {"MLPForClassification", "MLPModel", NULL};

enum { ACT_GELU, ACT_GELU_TANH, ACT_RELU, ACT_TANH, ACT_SIGMOID, ACT_SILU };

typedef struct mlp_layer {
    const float *w, *b;   /* ff1: [D, D] (torch Linear [out, in]), bias [D] or NULL */
} mlp_layer;

typedef struct mlp_weights {
    const float *wte, *wpe;        /* NULL unless include_emb */
    const float *score_w, *score_b; /* [C, D], [C] or NULL; NULL for MLPModel */
    mlp_layer *layers;
    int n_classes, act, include_emb, squeeze;
} mlp_weights;


/* Optional int key with a default; present but not an integer is an error. */
/* transformers' ACT2FN names that are element-wise modules with a distinct output. */
static int parse_activation(const vene_model *m, int *act, vene_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->config, "activation_function");
    const char *name = "gelu";
    if (v && !cJSON_IsNull(v)) {
        if (!cJSON_IsString(v))
            return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: key \"activation_function\" must be a string", m->dir);
        name = v->valuestring;
    }
    static const struct { const char *name; int act; } table[] = {
        {"gelu", ACT_GELU}, {"gelu_new", ACT_GELU_TANH}, {"gelu_pytorch_tanh", ACT_GELU_TANH},
        {"relu", ACT_RELU}, {"tanh", ACT_TANH}, {"sigmoid", ACT_SIGMOID}, {"silu", ACT_SILU}, {"swish", ACT_SILU},
    };
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (strcmp(table[i].name, name) == 0) {
            *act = table[i].act;
            return VENE_OK;
        }
    return vene_errorf(err, VENE_ERR_UNSUPPORTED,
                       "%s/config.json: key \"activation_function\" = \"%s\" is not supported (gelu, gelu_new, "
                       "gelu_pytorch_tanh, relu, tanh, sigmoid, silu, swish)",
                       m->dir, name);
}

static int mlp_load(vene_model *m, vene_error *err) {
    int rc, n_classes = 2, include_emb = 0, include_bias = 1, squeeze = 1, act = ACT_GELU;
    if ((rc = vene_config_int_or(m, "n_layer", 2, &m->n_layer, err)) || (rc = vene_config_int_or(m, "h_dim", 512, &m->d_model, err)) ||
        (rc = vene_config_int_or(m, "num_classes", 2, &n_classes, err)) ||
        (rc = vene_config_int_or(m, "vocab_size", 50257, &m->vocab_size, err)) ||
        (rc = vene_config_int_or(m, "max_position_embeddings", 512, &m->n_ctx, err)) ||
        (rc = vene_config_bool_or(m, "include_emb", 0, &include_emb, err)) ||
        (rc = vene_config_bool_or(m, "include_bias", 1, &include_bias, err)) ||
        (rc = vene_config_bool_or(m, "squeeze_output", 1, &squeeze, err)) || (rc = parse_activation(m, &act, err)))
        return rc;
    if (m->n_layer <= 0 || m->d_model <= 0 || n_classes <= 0 || m->n_ctx <= 0 || (include_emb && m->vocab_size <= 0))
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s/config.json: inconsistent sizes (n_layer %d, h_dim %d, num_classes %d, vocab_size %d, "
                           "max_position_embeddings %d): all must be positive",
                           m->dir, m->n_layer, m->d_model, n_classes, m->vocab_size, m->n_ctx);
    m->n_head = m->n_kv_head = 1;
    m->head_dim = m->d_ff = m->d_model;
    m->norm_eps = 0.0f;
    m->has_lm_head = strcmp(m->model_class, "MLPForClassification") == 0;
    m->path_prefix = m->has_lm_head ? "mlp." : "";
    static const char *const prefixes[] = {"mlp.", NULL};
    vene_weights_set_prefixes(m->weights, prefixes);

    mlp_weights *w = calloc(1, sizeof *w);
    if (!w) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    m->impl = w;
    w->n_classes = n_classes;
    w->act = act;
    w->include_emb = include_emb;
    w->squeeze = squeeze;
    w->layers = calloc((size_t)m->n_layer, sizeof *w->layers);
    if (!w->layers) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    const int D = m->d_model;
    if (include_emb && ((rc = vene_model_weight(m, "wte.weight", 2, m->vocab_size, D, &w->wte, err)) ||
                        (rc = vene_model_weight(m, "wpe.weight", 2, m->n_ctx, D, &w->wpe, err))))
        return rc;
    for (int l = 0; l < m->n_layer; l++) {
        char nw[64], nb[64];
        snprintf(nw, sizeof nw, "h.%d.ff1.weight", l);
        snprintf(nb, sizeof nb, "h.%d.ff1.bias", l);
        if ((rc = vene_model_weight(m, nw, 2, D, D, &w->layers[l].w, err)) ||
            (include_bias && (rc = vene_model_weight(m, nb, 1, D, 0, &w->layers[l].b, err))))
            return rc;
    }
    if (m->has_lm_head &&
        ((rc = vene_model_weight(m, "score.weight", 2, n_classes, D, &w->score_w, err)) ||
         (include_bias && (rc = vene_model_weight(m, "score.bias", 1, n_classes, 0, &w->score_b, err)))))
        return rc;
    return VENE_OK;
}

static void mlp_free_impl(vene_model *m) {
    mlp_weights *w = m->impl;
    if (w) free(w->layers);
    free(w);
    m->impl = NULL;
}

/* Gradient mode: each layer's input and pre-activation (the forward's own buffers, which
 * it allocates per layer anyway) and the token ids for the embedding's gradient. */
typedef struct mlp_saved {
    const float **in, **pre;
    int32_t *ids;
} mlp_saved;

static size_t mlp_grad_bytes(const vene_model *m, int B, int S) {
    return sizeof(mlp_saved) + 2 * sizeof(float *) * (size_t)m->n_layer + sizeof(int32_t) * (size_t)B * S + 64 * 4;
}

/* Number of arena allocations in mlp_forward (each may waste up to 64 bytes). */
#define MLP_ALLOCS(L) (3 + 2 * (size_t)(L))

static size_t mlp_run_bytes(const vene_model *m, int B, int S) {
    const mlp_weights *w = m->impl;
    size_t T = (size_t)B * S, D = (size_t)m->d_model, L = (size_t)m->n_layer;
    size_t floats = T * D * (2 + 2 * L) + T * (size_t)w->n_classes;
    return floats * sizeof(float) + 64 * MLP_ALLOCS(L);
}

static int mlp_site_shape(const vene_model *m, int site, int B, int S, int64_t *shape) {
    const mlp_weights *w = m->impl;
    shape[0] = B;
    shape[1] = S;
    shape[2] = site == S_SCORE_OUT ? w->n_classes : m->d_model;
    return 3;
}

static int mlp_component_width(const vene_model *m, const vene_component_def *c) {
    (void)c;
    return m->d_model; /* h_dim for every component */
}

/* torch.nn.GELU() (exact erf form), evaluated in double and rounded. */
static void gelu_erf(const float *x, float *out, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double v = x[i];
        out[i] = (float)(0.5 * v * (1.0 + erf(v * 0.70710678118654752440)));
    }
}

static void apply_act(int act, const float *x, float *out, int64_t n) {
    switch (act) {
    case ACT_GELU: gelu_erf(x, out, n); break;
    case ACT_GELU_TANH: vk_gelu_tanh(x, out, n); break;
    case ACT_SILU: vk_silu(x, out, n); break;
    case ACT_RELU:
        for (int64_t i = 0; i < n; i++) out[i] = x[i] > 0.0f ? x[i] : 0.0f;
        break;
    case ACT_TANH:
        for (int64_t i = 0; i < n; i++) out[i] = tanhf(x[i]);
        break;
    default: /* ACT_SIGMOID */
        for (int64_t i = 0; i < n; i++) out[i] = (float)(1.0 / (1.0 + exp(-(double)x[i])));
        break;
    }
}


static int mlp_forward(vene_run *rs, const vene_batch *in, vene_error *err) {
    const vene_model *m = rs->m;
    const mlp_weights *w = m->impl;
    const int B = in->batch, S = in->seq, T = B * S, D = m->d_model, C = w->n_classes;
    if (!in->embeds && !w->include_emb)
        return vene_errorf(err, VENE_ERR_ARG,
                           "%s: config.json has include_emb false, so the model has no token embeddings: "
                           "give inputs_embeds (B x S x %d), not input_ids",
                           m->model_class, D);
    if (in->positions && !w->include_emb)
        return vene_errorf(err, VENE_ERR_ARG, "%s: position ids given but config.json has include_emb false (no wpe)",
                           m->model_class);
    float *x, *pos;
    VENE_ALLOC(x, (size_t)T * D);
    VENE_ALLOC(pos, (size_t)T * D);
    vene_tensor tX = vene_tensor_3d(x, B, S, D), tP = vene_tensor_3d(pos, B, S, D);

    if (in->embeds) {
        memcpy(x, in->embeds, sizeof(float) * (size_t)T * D);
    } else {
        vk_embed(w->wte, in->ids, x, T, D);
        VENE_FIRE(rs, S_WTE_OUT, -1, &tX, err);
    }
    /* pyvene adds wpe only when position_ids are passed (no default positions) */
    if (in->positions) {
        for (int t = 0; t < T; t++)
            memcpy(pos + (size_t)t * D, w->wpe + (size_t)in->positions[t] * D, sizeof(float) * (size_t)D);
        VENE_FIRE(rs, S_WPE_OUT, -1, &tP, err);
        vk_add(x, pos, x, (int64_t)T * D); /* hidden_states += position_embeds (in place) */
    }
    VENE_FIRE(rs, S_DROP_IN, -1, &tX, err);
    VENE_FIRE(rs, S_DROP_OUT, -1, &tX, err);

    mlp_saved *sv = NULL;
    if (rs->grad_mode) {
        float *p;
        VENE_ALLOC(p, (sizeof *sv + 2 * sizeof(float *) * (size_t)m->n_layer + 3) / 4);
        sv = (mlp_saved *)(void *)p;
        sv->in = (const float **)(void *)(sv + 1);
        sv->pre = sv->in + m->n_layer;
        sv->ids = NULL;
        if (!in->embeds) {
            VENE_ALLOC(p, (size_t)T);
            sv->ids = (int32_t *)(void *)p;
            memcpy(sv->ids, in->ids, sizeof(int32_t) * (size_t)T);
        }
    }
    float *cur = x;
    vene_tensor tCur = tX;
    for (int l = 0; l < m->n_layer; l++) {
        const mlp_layer *L = &w->layers[l];
        float *f, *a;
        VENE_ALLOC(f, (size_t)T * D);
        VENE_ALLOC(a, (size_t)T * D);
        vene_tensor tF = vene_tensor_3d(f, B, S, D), tA = vene_tensor_3d(a, B, S, D);
        VENE_FIRE(rs, S_H_IN, l, &tCur, err);
        VENE_FIRE(rs, S_FF1_IN, l, &tCur, err);
        vk_linear_out_in(cur, L->w, L->b, f, T, D, D);
        VENE_FIRE(rs, S_FF1_OUT, l, &tF, err);
        VENE_FIRE(rs, S_ACT_IN, l, &tF, err);
        apply_act(w->act, f, a, (int64_t)T * D);
        VENE_FIRE(rs, S_ACT_OUT, l, &tA, err);
        VENE_FIRE(rs, S_HDROP_IN, l, &tA, err);
        VENE_FIRE(rs, S_HDROP_OUT, l, &tA, err);
        VENE_FIRE(rs, S_H_OUT, l, &tA, err);
        if (sv) sv->in[l] = cur, sv->pre[l] = f;
        cur = a;
        tCur = tA;
    }
    /* There is no final norm: last_hidden_state is the last block's output h itself. */
    rs->last_hidden = tCur;
    if (m->has_lm_head) {
        float *logits;
        VENE_FIRE(rs, S_SCORE_IN, -1, &rs->last_hidden, err);
        VENE_ALLOC(logits, (size_t)T * C);
        vk_linear_out_in(cur, w->score_w, w->score_b, logits, T, D, C);
        vene_tensor tS = vene_tensor_3d(logits, B, S, C);
        VENE_FIRE(rs, S_SCORE_OUT, -1, &tS, err);
        /* pooled_logits.squeeze(1): B x classes for a single position */
        rs->logits = w->squeeze && S == 1 ? vene_tensor_2d(logits, B, C) : tS;
        rs->has_logits = 1;
    }
    if (sv) rs->saved = sv;
    return VENE_OK;
}

static void act_backward(int act, const float *dy, const float *x, float *dx, int64_t n) {
    for (int64_t i = 0; i < n; i++) {
        double v = x[i], d;
        switch (act) {
        case ACT_GELU: d = 0.5 * (1.0 + erf(v * 0.70710678118654752440)) + v * exp(-0.5 * v * v) * 0.3989422804014327; break;
        case ACT_RELU: d = v > 0.0 ? 1.0 : 0.0; break;
        case ACT_TANH: d = 1.0 - tanh(v) * tanh(v); break;
        case ACT_SIGMOID: d = 1.0 / (1.0 + exp(-v)), d = d * (1.0 - d); break;
        default: continue; /* gelu_tanh and silu: vectorised kernels below */
        }
        dx[i] += (float)(dy[i] * d);
    }
    if (act == ACT_GELU_TANH) vk_gelu_tanh_backward(dy, x, dx, n);
    if (act == ACT_SILU) vk_silu_backward(dy, x, dx, n);
}

/* mlp_forward backwards: score, then per layer act and ff1, then the embeddings. */
static int mlp_backward(vene_run *rs, vene_error *err) {
    const vene_model *m = rs->m;
    const mlp_weights *w = m->impl;
    const mlp_saved *sv = rs->saved;
    const int B = rs->B, S = rs->S, T = B * S, D = m->d_model, C = w->n_classes;
    const size_t TD = (size_t)T * D;
    float *g, *gpre;
    VENE_GALLOC(g, TD);
    VENE_GALLOC(gpre, TD);
    vene_tensor tg = vene_tensor_3d(g, B, S, D), tpre = vene_tensor_3d(gpre, B, S, D);
    if (m->has_lm_head && rs->d_logits) {
        float *dl;
        VENE_GALLOC(dl, (size_t)T * C);
        memcpy(dl, rs->d_logits, sizeof(float) * (size_t)T * C);
        vene_tensor tl = vene_tensor_3d(dl, B, S, C);
        VENE_FIRE_BACK(rs, S_SCORE_OUT, -1, &tl, err);
        vk_linear_out_in_backward(dl, rs->last_hidden.data, w->score_w, g, vene_run_grad_of(rs, w->score_w),
                                  vene_run_grad_of(rs, w->score_b), T, D, C);
    }
    if (rs->d_hidden) vk_acc(rs->d_hidden, g, (int64_t)TD);
    if (m->has_lm_head) VENE_FIRE_BACK(rs, S_SCORE_IN, -1, &tg, err);
    for (int l = m->n_layer - 1; l >= 0; l--) {
        const mlp_layer *L = &w->layers[l];
        VENE_FIRE_BACK(rs, S_H_OUT, l, &tg, err);
        VENE_FIRE_BACK(rs, S_HDROP_OUT, l, &tg, err);
        VENE_FIRE_BACK(rs, S_HDROP_IN, l, &tg, err);
        VENE_FIRE_BACK(rs, S_ACT_OUT, l, &tg, err);
        memset(gpre, 0, TD * sizeof(float));
        act_backward(w->act, g, sv->pre[l], gpre, (int64_t)TD);
        VENE_FIRE_BACK(rs, S_ACT_IN, l, &tpre, err);
        VENE_FIRE_BACK(rs, S_FF1_OUT, l, &tpre, err);
        memset(g, 0, TD * sizeof(float));
        vk_linear_out_in_backward(gpre, sv->in[l], L->w, g, vene_run_grad_of(rs, L->w), vene_run_grad_of(rs, L->b), T,
                                  D, D);
        VENE_FIRE_BACK(rs, S_FF1_IN, l, &tg, err);
        VENE_FIRE_BACK(rs, S_H_IN, l, &tg, err);
    }
    VENE_FIRE_BACK(rs, S_DROP_OUT, -1, &tg, err);
    VENE_FIRE_BACK(rs, S_DROP_IN, -1, &tg, err);
    if (sv->ids) {
        VENE_FIRE_BACK(rs, S_WTE_OUT, -1, &tg, err);
        float *dwte = vene_run_grad_of(rs, w->wte);
        if (dwte) vk_embed_backward(g, sv->ids, dwte, T, D);
    }
    return VENE_OK;
}

const vene_arch vene_arch_mlp = {
    .model_type = "mlp",
    .classes = mlp_classes,
    .sites = mlp_sites,
    .n_sites = S_COUNT,
    .components = mlp_components,
    .n_components = sizeof mlp_components / sizeof mlp_components[0],
    .load = mlp_load,
    .free_impl = mlp_free_impl,
    .run_bytes = mlp_run_bytes,
    .forward = mlp_forward,
    .site_shape = mlp_site_shape,
    .component_width = mlp_component_width,
    .grad_bytes = mlp_grad_bytes,
    .backward = mlp_backward,
};
