/* pyvene GRU internals shared by the forward (gru.c) and the backward through time
 * (gru_backward.c). */
#ifndef VENE_MODELS_GRU_INTERNAL_H
#define VENE_MODELS_GRU_INTERNAL_H

#include "models/model.h"

enum {
    S_WTE_OUT, S_WPE_OUT,
    S_CELL_IN, S_X2H_IN, S_X2H_OUT, S_H2H_IN, S_H2H_OUT,
    S_RESET_IN, S_RESET_OUT, S_UPDATE_IN, S_UPDATE_OUT, S_NEW_IN, S_NEW_OUT, S_CELL_OUT,
    S_SCORE_IN, S_SCORE_OUT,
    S_COUNT
};

typedef struct gru_cell {
    const float *wx, *bx;   /* x2h: [3D, D] (torch Linear [out, in]), bias [3D] or NULL */
    const float *wh, *bh;   /* h2h: [3D, D], bias [3D] or NULL */
} gru_cell;

typedef struct gru_weights {
    const float *wte, *wpe;  /* NULL unless include_emb */
    const float *score_w;    /* [C, D]; NULL for GRUModel */
    gru_cell *cells;
    int n_labels, include_emb;
} gru_weights;

/* What the backward through time reads, kept by a forward in gradient mode (run arena):
 * one record per cell call, every buffer as the next kernel read it, after every hook.
 * xin is a copy of the lower layer's state when a later hook (h2h's input at the next
 * step) could edit that state in place after x2h read it. */
typedef struct gru_saved_step {
    const float *xin, *hprev;        /* x2h's and h2h's inputs, B x D */
    const float *c;                  /* h2h output, B x 3D */
    const float *r_in, *r, *z_in, *z, *n_in, *n;
} gru_saved_step;

typedef struct gru_saved {
    int32_t *ids, *positions;        /* NULL when not given */
    gru_saved_step *steps;           /* [t * n_layer + l] */
    const float *pooled;             /* score's input, B x D (classifier) */
    int32_t *pooled_at;              /* the position each example's pooled state came from */
} gru_saved;

size_t gru_grad_bytes(const vene_model *m, int B, int S);
int gru_backward(vene_run *rs, vene_error *err);

#endif
