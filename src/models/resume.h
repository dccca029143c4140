/* Resuming a forward part-way through, for patching sweeps (engine/sweep.c).
 *
 * A patch at (layer L, position p) leaves every earlier layer and every position before p
 * as the base run computed them. With a plan attached to the run state, a resumable
 * forward skips the embeddings and the layers before `first_layer`, starts from the
 * residual stream it is given, and runs a ragged batch of "cells": each cell is a suffix
 * of one sequence (positions pos0, pos0 + 1, ...) whose queries attend over the earlier
 * positions' keys and values read from a cache, plus its own.
 *
 * vene_forward is called with batch = rows, seq = 1 and embeds = the residual entering
 * first_layer (rows x d_model); every hook sees rows x 1 x width tensors. The attention
 * weight sites do not fire (there is no rectangular probability tensor). first_layer =
 * n_layer runs only the final norm and the head on the rows. Only architectures with
 * `resumable` set honour a plan; the run state must have no KV cache attached. */
#ifndef VENE_MODELS_RESUME_H
#define VENE_MODELS_RESUME_H

#include "models/model.h"

typedef struct vene_resume_cell {
    int row0, n_rows;      /* its rows in the batch, positions pos0 .. pos0 + n_rows - 1 */
    int pos0;              /* earlier positions, read from past_k / past_v */
    const float *past_k;   /* key of earlier position j at past_k + j * past_ld (likewise v) */
    const float *past_v;
    int past_ld;
} vene_resume_cell;

typedef struct vene_resume {
    int first_layer;
    int n_cells;
    const vene_resume_cell *cells; /* borrowed; they cover the batch's rows */
} vene_resume;

/* Attach a plan to rs (borrowed until detached with NULL). */
int vene_run_set_resume(vene_run *rs, const vene_resume *plan, vene_error *err);

/* The forward's attention under a plan: for each cell, its queries (rows of q, row stride
 * ld) attend causally over its earlier positions and its own keys k / values v (same row
 * stride); the merged heads go to out (row stride ldo). Uses the same kernels as a
 * plain forward. */
int vene_resume_attention(const vene_run *rs, const float *q, const float *k, const float *v, int ld, float *out,
                          int ldo, int n_head, int n_kv, int hd, float scale_div, int window, vene_error *err);

#endif
