/* GPT-2 internals shared by the forward (gpt2.c) and the backward (gpt2_backward.c). */
#ifndef VENE_MODELS_GPT2_INTERNAL_H
#define VENE_MODELS_GPT2_INTERNAL_H

#include "models/model.h"

enum {
    S_WTE_OUT, S_WPE_OUT, S_DROP_IN, S_DROP_OUT,
    S_H_IN, S_LN1_IN, S_LN1_OUT, S_ATTN_IN, S_CATTN_IN, S_CATTN_OUT, S_ADROP_IN, S_ADROP_OUT,
    S_CPROJ_IN, S_CPROJ_OUT, S_RDROP_IN, S_RDROP_OUT, S_ATTN_OUT, S_LN2_IN, S_LN2_OUT,
    S_MLP_IN, S_FC_IN, S_FC_OUT, S_ACT_IN, S_ACT_OUT, S_MPROJ_IN, S_MPROJ_OUT, S_MDROP_IN, S_MDROP_OUT,
    S_MLP_OUT, S_H_OUT,
    S_LNF_IN, S_LNF_OUT, S_HEAD_IN, S_HEAD_OUT,
    S_COUNT
};

typedef struct gpt2_layer {
    const float *ln1_g, *ln1_b, *attn_w, *attn_b, *proj_w, *proj_b;
    const float *ln2_g, *ln2_b, *fc_w, *fc_b, *mproj_w, *mproj_b;
} gpt2_layer;

typedef struct gpt2_weights {
    const float *wte, *wpe, *lnf_g, *lnf_b;
    gpt2_layer *layers;
} gpt2_weights;

/* What backward reads, kept by a forward in gradient mode (run arena). The buffers are the
 * ones the next kernel read, after every hook; probs_sm is the softmax output before the
 * attention-weight hooks (the softmax derivative needs it; == probs when none is set). */
typedef struct gpt2_saved_layer {
    float *x_in, *a, *qkv, *probs_sm, *probs, *merged, *x2, *b2, *fc, *act;
} gpt2_saved_layer;

typedef struct gpt2_saved {
    int32_t *ids;          /* NULL when the forward took embeddings */
    int32_t *positions;    /* B*S */
    uint8_t *mask;         /* NULL = all ones */
    float *x_final;        /* ln_f's input */
    gpt2_saved_layer *layers;
} gpt2_saved;

/* The forward's full-size scratch (B*S rows each), lent to gpt2_tail_layer. */
typedef struct gpt2_buffers {
    float *emb, *x, *a, *qkv, *probs, *merged, *proj, *x2, *b2, *fc, *act, *mout;
} gpt2_buffers;
/* Layer L on the kept rows r (rs->tail_first, gpt2_tail.c): reads x (the layer's input),
 * writes the layer's output into those rows of x; the other buffers are scratch. */
struct vk_rows;
void gpt2_tail_layer(const vene_run *rs, const vene_batch *in, const gpt2_layer *L, const struct vk_rows *r,
                     const gpt2_buffers *f);

size_t gpt2_grad_bytes(const vene_model *m, int B, int S);
int gpt2_backward(vene_run *rs, vene_error *err);
/* gpt2_backward below ln_f's output on the rows s >= first[b] (gpt2_backward_rows.c);
 * dhid: d(ln_f output), B x S x D. */
int gpt2_backward_rows(vene_run *rs, const int *first, const float *dhid, vene_error *err);

#endif
