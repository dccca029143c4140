/* GPT-NeoX internals shared by the forward (gptneox.c) and the backward
 * (gptneox_backward.c). */
#ifndef VENE_MODELS_GPTNEOX_INTERNAL_H
#define VENE_MODELS_GPTNEOX_INTERNAL_H

#include "models/model.h"

enum {
    S_EMBED_OUT, S_EDROP_IN, S_EDROP_OUT,
    S_L_IN, S_LN1_IN, S_LN1_OUT, S_ATTN_IN, S_QKV_IN, S_QKV_OUT, S_ADROP_IN, S_ADROP_OUT,
    S_DENSE_IN, S_DENSE_OUT, S_ATTN_OUT, S_PADROP_IN, S_PADROP_OUT,
    S_LN2_IN, S_LN2_OUT, S_MLP_IN, S_FC_IN, S_FC_OUT, S_ACT_IN, S_ACT_OUT, S_PROJ_IN, S_PROJ_OUT, S_MLP_OUT,
    S_PMDROP_IN, S_PMDROP_OUT, S_L_OUT,
    S_NORM_IN, S_NORM_OUT, S_HEAD_IN, S_HEAD_OUT,
    S_COUNT
};

typedef struct neox_layer {
    const float *ln1_g, *ln1_b, *qkv_w, *qkv_b, *dense_w, *dense_b;
    const float *ln2_g, *ln2_b, *fc_w, *fc_b, *proj_w, *proj_b;
} neox_layer;

typedef struct neox_weights {
    const float *embed, *norm_g, *norm_b, *head;
    float *inv_freq;           /* rot / 2 RoPE inverse frequencies, owned */
    neox_layer *layers;
    int rot;                   /* rotary dims per head (even, <= head_size) */
    int parallel;              /* use_parallel_residual */
    int gelu_erf;              /* hidden_act "gelu" (else the tanh approximation) */
} neox_weights;

/* What backward reads, kept by a forward in gradient mode (run arena): per layer the
 * buffers as the next kernel read them, after every hook. q, k, v are the per-head
 * split of query_key_value's output, q and k after RoPE; probs_sm is the softmax output
 * before the attention-weight hooks (== probs when none is set); x_ln1 is a copy of the
 * block input when a hook on post_attention_layernorm's input (the same tensor, with
 * the parallel residual) could edit it after input_layernorm read it; ln2_in is what
 * post_attention_layernorm read (the block input or attn_output + block input). */
typedef struct neox_saved_layer {
    const float *x_ln1, *a, *q, *k, *v, *probs_sm, *probs, *merged, *ln2_in, *b2, *fc, *act;
} neox_saved_layer;

typedef struct neox_saved {
    int32_t *ids;              /* NULL when the forward took embeddings */
    const float *cos_t, *sin_t;
    const float *x_final;      /* final_layer_norm's input */
    neox_saved_layer *layers;
} neox_saved;

size_t neox_grad_bytes(const vene_model *m, int B, int S);
int neox_backward(vene_run *rs, vene_error *err);

#endif
