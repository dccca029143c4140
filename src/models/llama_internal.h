/* LLaMA-family internals shared by the forward (llama.c) and the backward
 * (llama_backward.c). */
#ifndef VENE_MODELS_LLAMA_INTERNAL_H
#define VENE_MODELS_LLAMA_INTERNAL_H

#include "models/model.h"
#include "models/rope.h"

enum {
    S_EMBED_OUT,
    S_L_IN, S_LN1_IN, S_LN1_OUT, S_ATTN_IN,
    S_Q_IN, S_Q_OUT, S_K_IN, S_K_OUT, S_V_IN, S_V_OUT, S_O_IN, S_O_OUT, S_ATTN_OUT,
    S_LN2_IN, S_LN2_OUT, S_MLP_IN, S_GATE_IN, S_GATE_OUT, S_ACT_IN, S_ACT_OUT,
    S_UP_IN, S_UP_OUT, S_DOWN_IN, S_DOWN_OUT, S_MLP_OUT, S_L_OUT,
    S_NORM_IN, S_NORM_OUT, S_HEAD_IN, S_HEAD_OUT,
    S_COUNT
};

typedef struct llama_layer {
    const float *ln1, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *o_b;
    const float *ln2, *gate_w, *gate_b, *up_w, *up_b, *down_w, *down_b;
} llama_layer;

enum { ACT_SILU, ACT_GELU_TANH, ACT_GELU_ERF };

typedef struct llama_weights {
    const float *embed, *norm, *head;
    float *inv_freq;           /* head_dim / 2 RoPE inverse frequencies, owned */
    llama_layer *layers;
    vene_rope rope;
    int act;                   /* ACT_* */
    int window;                /* sliding window, 0 = none */
    int norm_1p;               /* Gemma: every RMSNorm scales by (1 + w) */
    float embed_scale;         /* 0 = none; Gemma: sqrt(hidden_size) in float32 */
} llama_weights;

/* What backward reads, kept by a forward in gradient mode (run arena): per layer the
 * buffers as the next kernel read them, after every hook. a_q / a_k (b2_gate) are copies
 * of a (b2) when a later hook on the same tensor could edit it before the next reader;
 * otherwise they are a (b2) itself. q and k are after RoPE. */
typedef struct llama_saved_layer {
    const float *x_in, *a_q, *a_k, *a, *q, *k, *v, *probs, *merged;
    const float *x2, *b2_gate, *b2, *gate, *act, *up, *prod;
} llama_saved_layer;

typedef struct llama_saved {
    int32_t *ids;              /* NULL when the forward took embeddings */
    const float *cos_t, *sin_t;
    const float *x_final;      /* the final norm's input */
    llama_saved_layer *layers;
} llama_saved;

size_t llama_grad_bytes(const vene_model *m, int B, int S);
int llama_backward(vene_run *rs, vene_error *err);

#endif
