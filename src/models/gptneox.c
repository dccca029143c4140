/* GPT-NeoX / Pythia (Hugging Face GPTNeoXModel / GPTNeoXForCausalLM, transformers 4.43),
 * eager attention, eval mode. The forward reads top to bottom like the Hugging Face
 * modules; each VENE_FIRE is one hook site in PyTorch's hook order, and tensors that are
 * one object in PyTorch are one buffer here (dropouts in eval mode return their input).
 *
 * What sets it apart from the LLaMA family:
 *  - one fused query_key_value projection whose output is laid out per head,
 *    [h][q, k, v][head_size] (not GPT-2's [q | k | v] thirds);
 *  - partial rotary: only the first int(head_size * rotary_pct) dims of each q/k head
 *    rotate (rotate_half within them), the rest pass through;
 *  - parallel residual (use_parallel_residual, Pythia's default):
 *      x = mlp(ln2(x)) + attn(ln1(x)) + x      (ln1 and ln2 both read the block input)
 *    or, when false, x = x + attn(ln1(x)); x = x + mlp(ln2(x));
 *  - LayerNorms with biases, biased linears, exact (erf) GELU by default, an untied
 *    `embed_out` head at the top level (not under gpt_neox.);
 *  - scores scaled by head_size^-0.5 inside the product, GPT-NeoX's mask arithmetic
 *    (vk_neox_attn_scores).
 *
 * In gradient mode every layer keeps its own buffers for the backward (gptneox_backward.c).
 *
 * Not modelled: the rotary_emb submodule (no tensor hook), "dynamic" rope_scaling. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/kernels.h"
#include "core/kernels_llama.h"
#include "models/gptneox_internal.h"
#include "models/rope.h"

static const vene_site_def neox_sites[S_COUNT] = {
    [S_EMBED_OUT] = {"embed_in", 0, 0, "B x S x D"},
    [S_EDROP_IN] = {"emb_dropout", 1, 0, "B x S x D"},
    [S_EDROP_OUT] = {"emb_dropout", 0, 0, "B x S x D"},
    [S_L_IN] = {"layers[%d]", 1, 1, "B x S x D"},
    [S_LN1_IN] = {"layers[%d].input_layernorm", 1, 1, "B x S x D"},
    [S_LN1_OUT] = {"layers[%d].input_layernorm", 0, 1, "B x S x D"},
    [S_ATTN_IN] = {"layers[%d].attention", 1, 1, "B x S x D"},
    [S_QKV_IN] = {"layers[%d].attention.query_key_value", 1, 1, "B x S x D"},
    [S_QKV_OUT] = {"layers[%d].attention.query_key_value", 0, 1, "B x S x 3D ([h][q,k,v][hd], before RoPE)"},
    [S_ADROP_IN] = {"layers[%d].attention.attention_dropout", 1, 1, "B x H x S x S"},
    [S_ADROP_OUT] = {"layers[%d].attention.attention_dropout", 0, 1, "B x H x S x S"},
    [S_DENSE_IN] = {"layers[%d].attention.dense", 1, 1, "B x S x D"},
    [S_DENSE_OUT] = {"layers[%d].attention.dense", 0, 1, "B x S x D"},
    [S_ATTN_OUT] = {"layers[%d].attention", 0, 1, "B x S x D"},
    [S_PADROP_IN] = {"layers[%d].post_attention_dropout", 1, 1, "B x S x D"},
    [S_PADROP_OUT] = {"layers[%d].post_attention_dropout", 0, 1, "B x S x D"},
    [S_LN2_IN] = {"layers[%d].post_attention_layernorm", 1, 1, "B x S x D"},
    [S_LN2_OUT] = {"layers[%d].post_attention_layernorm", 0, 1, "B x S x D"},
    [S_MLP_IN] = {"layers[%d].mlp", 1, 1, "B x S x D"},
    [S_FC_IN] = {"layers[%d].mlp.dense_h_to_4h", 1, 1, "B x S x D"},
    [S_FC_OUT] = {"layers[%d].mlp.dense_h_to_4h", 0, 1, "B x S x F"},
    [S_ACT_IN] = {"layers[%d].mlp.act", 1, 1, "B x S x F"},
    [S_ACT_OUT] = {"layers[%d].mlp.act", 0, 1, "B x S x F"},
    [S_PROJ_IN] = {"layers[%d].mlp.dense_4h_to_h", 1, 1, "B x S x F"},
    [S_PROJ_OUT] = {"layers[%d].mlp.dense_4h_to_h", 0, 1, "B x S x D"},
    [S_MLP_OUT] = {"layers[%d].mlp", 0, 1, "B x S x D"},
    [S_PMDROP_IN] = {"layers[%d].post_mlp_dropout", 1, 1, "B x S x D"},
    [S_PMDROP_OUT] = {"layers[%d].post_mlp_dropout", 0, 1, "B x S x D"},
    [S_L_OUT] = {"layers[%d]", 0, 1, "B x S x D"},
    [S_NORM_IN] = {"final_layer_norm", 1, 0, "B x S x D"},
    [S_NORM_OUT] = {"final_layer_norm", 0, 0, "B x S x D"},
    [S_HEAD_IN] = {"embed_out", 1, 0, "B x S x D"},
    [S_HEAD_OUT] = {"embed_out", 0, 0, "B x S x V"},
};

/* pyvene's gpt_neox table (spec §5.4) with its mistake fixed: head_attention_value_output
 * splits into num_attention_heads heads of head_size (pyvene refers to an n_head helper
 * the gpt_neox dimension table lacks). pyvene has no query/key/value components for the
 * fused, per-head interleaved query_key_value; neither does vene: use the site
 * layers[l].attention.query_key_value.output directly. */
static const vene_component_def neox_components[] = {
    {"block_input", "layers[%d]", 1, VENE_SPLIT_NONE, 0},
    {"block_output", "layers[%d]", 0, VENE_SPLIT_NONE, 0},
    {"mlp_activation", "layers[%d].mlp.act", 0, VENE_SPLIT_NONE, 0},
    {"mlp_output", "layers[%d].mlp", 0, VENE_SPLIT_NONE, 0},
    {"mlp_input", "layers[%d].mlp", 1, VENE_SPLIT_NONE, 0},
    {"attention_value_output", "layers[%d].attention.dense", 1, VENE_SPLIT_NONE, 0},
    {"head_attention_value_output", "layers[%d].attention.dense", 1, VENE_SPLIT_NONE, 1},
    {"attention_output", "layers[%d].attention", 0, VENE_SPLIT_NONE, 0},
    {"attention_input", "layers[%d].attention", 1, VENE_SPLIT_NONE, 0},
};

static const char *const neox_classes[] = {"GPTNeoXForCausalLM", "GPTNeoXModel", NULL};

/* "layers.<l>.<mod>.weight" [out, in] and, when `bias`, ".bias" [out]; or, with vec, a
 * LayerNorm's weight and bias [in]. */
static int neox_param(vene_model *m, int l, const char *mod, int vec, int in, int out, int bias, const float **w,
                      const float **b, vene_error *err) {
    char n[160];
    snprintf(n, sizeof n, "layers.%d.%s.weight", l, mod);
    int rc = vec ? vene_model_weight(m, n, 1, in, 0, w, err) : vene_model_weight(m, n, 2, out, in, w, err);
    if (rc || !bias) return rc;
    snprintf(n, sizeof n, "layers.%d.%s.bias", l, mod);
    return vene_model_weight(m, n, 1, vec ? in : out, 0, b, err);
}

static int neox_read_settings(vene_model *m, neox_weights *w, vene_error *err) {
    int rc;
    if ((rc = vene_config_bool_or(m, "use_parallel_residual", 1, &w->parallel, err))) return rc;
    double pct = vene_config_num_opt(m->config, "rotary_pct", 0.25);
    if (!(pct >= 0.0 && pct <= 1.0))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: key \"rotary_pct\" must be in [0, 1]", m->dir);
    w->rot = (int)((double)m->head_dim * pct); /* int(head_size * rotary_pct) */
    if (w->rot % 2 != 0)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s/config.json: rotary dims int(%d * %g) = %d must be even",
                           m->dir, m->head_dim, pct, w->rot);
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(m->config, "hidden_act");
    const char *a = cJSON_IsString(act) ? act->valuestring : "gelu";
    w->gelu_erf = strcmp(a, "gelu") == 0;
    if (!w->gelu_erf && strcmp(a, "gelu_new") != 0 && strcmp(a, "gelu_pytorch_tanh") != 0)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED,
                           "%s/config.json: hidden_act \"%s\" not supported (gelu, gelu_new, gelu_pytorch_tanh)", m->dir, a);
    if (w->rot == 0) return VENE_OK;
    vene_rope rope;
    unsigned kinds = VENE_ROPE_ALLOW(VENE_ROPE_DEFAULT) | VENE_ROPE_ALLOW(VENE_ROPE_LINEAR);
    if ((rc = vene_rope_read(m, "rotary_emb_base", 10000.0, w->rot, m->n_ctx, kinds, &rope, err))) return rc;
    if (!(w->inv_freq = malloc(sizeof(float) * (size_t)(w->rot / 2))))
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    vene_rope_inv_freq(&rope, 0, w->inv_freq);
    return VENE_OK;
}

static int neox_load(vene_model *m, vene_error *err) {
    const cJSON *c = m->config;
    const char *file = "config.json";
    int rc;
    if ((rc = vene_config_int(c, file, "num_hidden_layers", &m->n_layer, err)) ||
        (rc = vene_config_int(c, file, "hidden_size", &m->d_model, err)) ||
        (rc = vene_config_int(c, file, "num_attention_heads", &m->n_head, err)) ||
        (rc = vene_config_int(c, file, "intermediate_size", &m->d_ff, err)) ||
        (rc = vene_config_int(c, file, "vocab_size", &m->vocab_size, err)))
        return vene_error_prefix(err, "%s", m->dir);
    if ((rc = vene_config_int_or(m, "max_position_embeddings", 2048, &m->n_ctx, err))) return rc;
    if (m->n_layer <= 0 || m->d_model <= 0 || m->n_head <= 0 || m->d_ff <= 0 || m->vocab_size <= 0 || m->n_ctx <= 0 ||
        m->d_model % m->n_head != 0 || m->d_model > INT_MAX / 3)
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s/config.json: inconsistent sizes (num_hidden_layers %d, hidden_size %d, "
                           "num_attention_heads %d, intermediate_size %d, vocab_size %d, max_position_embeddings %d): "
                           "all must be positive and hidden_size divisible by num_attention_heads",
                           m->dir, m->n_layer, m->d_model, m->n_head, m->d_ff, m->vocab_size, m->n_ctx);
    m->n_kv_head = m->n_head;
    m->head_dim = m->d_model / m->n_head;
    m->norm_eps = (float)vene_config_num_opt(c, "layer_norm_eps", 1e-5);
    int bias = 1, tied = 0;
    if ((rc = vene_config_bool_or(m, "attention_bias", 1, &bias, err)) ||
        (rc = vene_config_bool_or(m, "tie_word_embeddings", 0, &tied, err)))
        return rc;
    m->has_lm_head = strcmp(m->model_class, "GPTNeoXForCausalLM") == 0;
    m->path_prefix = m->has_lm_head ? "gpt_neox." : "";
    static const char *const prefixes[] = {"gpt_neox.", NULL};
    vene_weights_set_prefixes(m->weights, prefixes);
    char last[96];
    snprintf(last, sizeof last, "layers.%d.input_layernorm.weight", m->n_layer - 1);
    if (!vene_weights_has(m->weights, last))
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s/config.json: num_hidden_layers is %d but model.safetensors has no tensor \"%s\"", m->dir,
                           m->n_layer, last);

    neox_weights *w = calloc(1, sizeof *w);
    if (!w) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    m->impl = w;
    if ((rc = neox_read_settings(m, w, err))) return rc;
    if (!(w->layers = calloc((size_t)m->n_layer, sizeof *w->layers)))
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    const int D = m->d_model, F = m->d_ff;
    if ((rc = vene_model_weight(m, "embed_in.weight", 2, m->vocab_size, D, &w->embed, err)) ||
        (rc = vene_model_weight(m, "final_layer_norm.weight", 1, D, 0, &w->norm_g, err)) ||
        (rc = vene_model_weight(m, "final_layer_norm.bias", 1, D, 0, &w->norm_b, err)))
        return rc;
    for (int l = 0; l < m->n_layer; l++) {
        neox_layer *L = &w->layers[l];
        if ((rc = neox_param(m, l, "input_layernorm", 1, D, 0, 1, &L->ln1_g, &L->ln1_b, err)) ||
            (rc = neox_param(m, l, "attention.query_key_value", 0, D, 3 * D, bias, &L->qkv_w, &L->qkv_b, err)) ||
            (rc = neox_param(m, l, "attention.dense", 0, D, D, bias, &L->dense_w, &L->dense_b, err)) ||
            (rc = neox_param(m, l, "post_attention_layernorm", 1, D, 0, 1, &L->ln2_g, &L->ln2_b, err)) ||
            (rc = neox_param(m, l, "mlp.dense_h_to_4h", 0, D, F, 1, &L->fc_w, &L->fc_b, err)) ||
            (rc = neox_param(m, l, "mlp.dense_4h_to_h", 0, F, D, 1, &L->proj_w, &L->proj_b, err)))
            return rc;
    }
    w->head = w->embed;
    if (m->has_lm_head && !tied &&
        (rc = vene_model_weight(m, "embed_out.weight", 2, m->vocab_size, D, &w->head, err)))
        return rc;
    return VENE_OK;
}

static void neox_free_impl(vene_model *m) {
    neox_weights *w = m->impl;
    if (w) {
        free(w->layers);
        free(w->inv_freq);
    }
    free(w);
    m->impl = NULL;
}

#define NEOX_ALLOCS 18 /* arena allocations per forward, each may waste up to 64 bytes */

static size_t neox_run_bytes(const vene_model *m, int B, int S) {
    size_t T = (size_t)B * S, D = (size_t)m->d_model, F = (size_t)m->d_ff, H = (size_t)m->n_head;
    const neox_weights *w = m->impl;
    size_t half = (size_t)w->rot / 2;
    size_t floats = T * D * 11 + T * 3 * D + T * F * 2 + B * H * (size_t)S * S + T * half * 2 +
                    (m->has_lm_head ? T * (size_t)m->vocab_size : 0);
    return floats * sizeof(float) + 64 * NEOX_ALLOCS;
}

static int neox_site_shape(const vene_model *m, int site, int B, int S, int64_t *shape) {
    shape[0] = B;
    shape[1] = S;
    switch (site) {
    case S_QKV_OUT: shape[2] = 3 * (int64_t)m->d_model; return 3;
    case S_ADROP_IN: case S_ADROP_OUT: shape[1] = m->n_head; shape[2] = S; shape[3] = S; return 4;
    case S_FC_OUT: case S_ACT_IN: case S_ACT_OUT: case S_PROJ_IN: shape[2] = m->d_ff; return 3;
    case S_HEAD_OUT: shape[2] = m->vocab_size; return 3;
    default: shape[2] = m->d_model; return 3;
    }
}

static int neox_component_width(const vene_model *m, const vene_component_def *c) {
    if (c->head_split) return m->head_dim;
    if (strcmp(c->name, "mlp_activation") == 0) return m->d_ff;
    return m->d_model;
}

/* [T][h][q, k, v][hd] -> q, k, v as [T][h][hd] each. */
static void split_qkv(const float *qkv, float *q, float *k, float *v, int T, int H, int hd) {
    const int D = H * hd;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            const float *src = qkv + (size_t)t * 3 * D + (size_t)h * 3 * hd;
            size_t o = (size_t)t * D + (size_t)h * hd;
            memcpy(q + o, src, sizeof(float) * (size_t)hd);
            memcpy(k + o, src + hd, sizeof(float) * (size_t)hd);
            memcpy(v + o, src + 2 * hd, sizeof(float) * (size_t)hd);
        }
}

static int neox_forward(vene_run *rs, const vene_batch *in, vene_error *err) {
    const vene_model *m = rs->m;
    const neox_weights *w = m->impl;
    const int B = in->batch, S = in->seq, T = B * S, D = m->d_model, F = m->d_ff, H = m->n_head, hd = m->head_dim;
    const int half = w->rot / 2;
    float *x, *a, *qkv, *q, *k, *v, *probs, *merged, *ao, *ares, *b2, *fc, *act, *mout, *cos_t, *sin_t;
    VENE_ALLOC(x, (size_t)T * D);
    VENE_ALLOC(a, (size_t)T * D);
    VENE_ALLOC(qkv, (size_t)T * 3 * D);
    VENE_ALLOC(q, (size_t)T * D);
    VENE_ALLOC(k, (size_t)T * D);
    VENE_ALLOC(v, (size_t)T * D);
    VENE_ALLOC(probs, (size_t)B * H * S * S);
    VENE_ALLOC(merged, (size_t)T * D);
    VENE_ALLOC(ao, (size_t)T * D);
    VENE_ALLOC(ares, (size_t)T * D);
    VENE_ALLOC(b2, (size_t)T * D);
    VENE_ALLOC(fc, (size_t)T * F);
    VENE_ALLOC(act, (size_t)T * F);
    VENE_ALLOC(mout, (size_t)T * D);
    VENE_ALLOC(cos_t, (size_t)T * half);
    VENE_ALLOC(sin_t, (size_t)T * half);
    vene_tensor tX = vene_tensor_3d(x, B, S, D), tA = vene_tensor_3d(a, B, S, D);
    vene_tensor tQKV = vene_tensor_3d(qkv, B, S, 3 * D), tPr = vene_tensor_4d(probs, B, H, S, S);
    vene_tensor tM = vene_tensor_3d(merged, B, S, D), tAO = vene_tensor_3d(ao, B, S, D);
    vene_tensor tRes = vene_tensor_3d(ares, B, S, D), tB2 = vene_tensor_3d(b2, B, S, D);
    vene_tensor tFC = vene_tensor_3d(fc, B, S, F), tAct = vene_tensor_3d(act, B, S, F);
    vene_tensor tMo = vene_tensor_3d(mout, B, S, D);
    const size_t TD = (size_t)T * D;
    neox_saved *sv = NULL;
    int rc;
    if (rs->grad_mode) VENE_SAVE_BEGIN(sv, in);

    if (in->embeds) {
        memcpy(x, in->embeds, sizeof(float) * (size_t)T * D);
    } else {
        vk_embed(w->embed, in->ids, x, T, D);
        VENE_FIRE(rs, S_EMBED_OUT, -1, &tX, err);
    }
    VENE_FIRE(rs, S_EDROP_IN, -1, &tX, err);
    VENE_FIRE(rs, S_EDROP_OUT, -1, &tX, err);
    if (half > 0) {
        /* position_ids default to 0..S-1 for every row */
        vk_rope_tables(w->inv_freq, half, in->positions, in->positions ? T : S, cos_t, sin_t);
        for (int b = 1; !in->positions && b < B; b++) {
            memcpy(cos_t + (size_t)b * S * half, cos_t, sizeof(float) * (size_t)S * half);
            memcpy(sin_t + (size_t)b * S * half, sin_t, sizeof(float) * (size_t)S * half);
        }
    }
    const float norm_factor = (float)pow((double)hd, -0.5);
    for (int l = 0; l < m->n_layer; l++) {
        const neox_layer *L = &w->layers[l];
        if (sv && l > 0) { /* gradient mode: every layer keeps its own buffers */
            VENE_ALLOC(a, TD);
            VENE_ALLOC(q, TD);
            VENE_ALLOC(k, TD);
            VENE_ALLOC(v, TD);
            VENE_ALLOC(probs, (size_t)B * H * S * S);
            VENE_ALLOC(merged, TD);
            VENE_ALLOC(ares, TD);
            VENE_ALLOC(b2, TD);
            VENE_ALLOC(fc, (size_t)T * F);
            VENE_ALLOC(act, (size_t)T * F);
            tA.data = a, tPr.data = probs, tM.data = merged, tRes.data = ares, tB2.data = b2;
            tFC.data = fc, tAct.data = act;
        }
        const float *x_ln1 = x, *probs_sm = probs;
        VENE_FIRE(rs, S_L_IN, l, &tX, err);
        VENE_FIRE(rs, S_LN1_IN, l, &tX, err);
        vk_layernorm(x, L->ln1_g, L->ln1_b, a, T, D, m->norm_eps);
        VENE_FIRE(rs, S_LN1_OUT, l, &tA, err);
        VENE_FIRE(rs, S_ATTN_IN, l, &tA, err);
        VENE_FIRE(rs, S_QKV_IN, l, &tA, err);
        vk_linear_out_in(a, L->qkv_w, L->qkv_b, qkv, T, D, 3 * D);
        VENE_FIRE(rs, S_QKV_OUT, l, &tQKV, err);
        split_qkv(qkv, q, k, v, T, H, hd);
        if (half > 0) {
            vk_rope_apply_partial(q, D, T, H, hd, w->rot, cos_t, sin_t);
            vk_rope_apply_partial(k, D, T, H, hd, w->rot, cos_t, sin_t);
        }
        vk_neox_attn_scores(q, D, k, D, probs, B, S, H, hd, norm_factor, in->attn_mask);
        if (sv && (rc = vene_run_keep(rs, probs, (size_t)B * H * S * S,
                                      rs->site_hooked[S_ADROP_IN] || rs->site_hooked[S_ADROP_OUT], &probs_sm, err)))
            return rc;
        VENE_FIRE(rs, S_ADROP_IN, l, &tPr, err);
        VENE_FIRE(rs, S_ADROP_OUT, l, &tPr, err);
        vk_attn_values(probs, v, D, merged, D, B, S, H, H, hd);
        VENE_FIRE(rs, S_DENSE_IN, l, &tM, err);
        vk_linear_out_in(merged, L->dense_w, L->dense_b, ao, T, D, D);
        VENE_FIRE(rs, S_DENSE_OUT, l, &tAO, err);
        VENE_FIRE(rs, S_ATTN_OUT, l, &tAO, err);
        VENE_FIRE(rs, S_PADROP_IN, l, &tAO, err);
        VENE_FIRE(rs, S_PADROP_OUT, l, &tAO, err);
        /* parallel: ln2 reads the block input itself (the same tensor as ln1's input) */
        vene_tensor *ln2_in = &tX;
        if (!w->parallel) {
            vk_add(ao, x, ares, (int64_t)T * D); /* attn_output + hidden_states */
            ln2_in = &tRes;
        } else if (sv && (rc = vene_run_keep(rs, x, TD, rs->site_hooked[S_LN2_IN], &x_ln1, err))) {
            return rc;
        }
        VENE_FIRE(rs, S_LN2_IN, l, ln2_in, err);
        vk_layernorm(ln2_in->data, L->ln2_g, L->ln2_b, b2, T, D, m->norm_eps);
        VENE_FIRE(rs, S_LN2_OUT, l, &tB2, err);
        VENE_FIRE(rs, S_MLP_IN, l, &tB2, err);
        VENE_FIRE(rs, S_FC_IN, l, &tB2, err);
        vk_linear_out_in(b2, L->fc_w, L->fc_b, fc, T, D, F);
        VENE_FIRE(rs, S_FC_OUT, l, &tFC, err);
        VENE_FIRE(rs, S_ACT_IN, l, &tFC, err);
        if (w->gelu_erf) vk_gelu_erf(fc, act, (int64_t)T * F);
        else vk_gelu_tanh(fc, act, (int64_t)T * F);
        VENE_FIRE(rs, S_ACT_OUT, l, &tAct, err);
        VENE_FIRE(rs, S_PROJ_IN, l, &tAct, err);
        vk_linear_out_in(act, L->proj_w, L->proj_b, mout, T, F, D);
        VENE_FIRE(rs, S_PROJ_OUT, l, &tMo, err);
        VENE_FIRE(rs, S_MLP_OUT, l, &tMo, err);
        VENE_FIRE(rs, S_PMDROP_IN, l, &tMo, err);
        VENE_FIRE(rs, S_PMDROP_OUT, l, &tMo, err);
        float *x_out = x;
        if (sv) {
            sv->layers[l] = (neox_saved_layer){x_ln1, a, q, k, v, probs_sm, probs, merged, ln2_in->data, b2, fc, act};
            VENE_ALLOC(x_out, TD);
        }
        /* the block's inputs are dead after their hooks: sum into x in PyTorch's order */
        if (w->parallel) {
            vk_add(mout, ao, mout, (int64_t)T * D); /* mlp_output + attn_output */
            vk_add(mout, x, x_out, (int64_t)T * D); /* ... + hidden_states */
        } else {
            vk_add(mout, ares, x_out, (int64_t)T * D); /* mlp_output + attn_output */
        }
        x = tX.data = x_out;
        VENE_FIRE(rs, S_L_OUT, l, &tX, err);
    }
    float *hid;
    VENE_ALLOC(hid, (size_t)T * D);
    rs->last_hidden = vene_tensor_3d(hid, B, S, D);
    VENE_FIRE(rs, S_NORM_IN, -1, &tX, err);
    vk_layernorm(x, w->norm_g, w->norm_b, hid, T, D, m->norm_eps);
    VENE_FIRE(rs, S_NORM_OUT, -1, &rs->last_hidden, err);
    if (sv) { /* complete: backward may read it */
        sv->cos_t = cos_t, sv->sin_t = sin_t, sv->x_final = x;
        rs->saved = sv;
    }
    return m->has_lm_head ? vene_run_lm_head(rs, w->head, S_HEAD_IN, S_HEAD_OUT, err) : VENE_OK;
}

const vene_arch vene_arch_gptneox = {
    .model_type = "gpt_neox",
    .classes = neox_classes,
    .sites = neox_sites,
    .n_sites = S_COUNT,
    .components = neox_components,
    .n_components = sizeof neox_components / sizeof neox_components[0],
    .load = neox_load,
    .free_impl = neox_free_impl,
    .run_bytes = neox_run_bytes,
    .forward = neox_forward,
    .site_shape = neox_site_shape,
    .component_width = neox_component_width,
    .grad_bytes = neox_grad_bytes,
    .backward = neox_backward,
};
