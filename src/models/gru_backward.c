/* pyvene GRU backward through time: gru_forward read bottom to top, time steps from the
 * last to the first and layers from the top down, each VENE_FIRE a VENE_FIRE_BACK in
 * exact reverse order, so a cell site's backward hooks fire once per step, last step
 * first, with where->call = the step as in the forward. A backward hook gets the
 * derivative of the loss with respect to the tensor as its forward hook saw it: the
 * state of cells[l] at step t is read by cells[l+1] at t and by cells[l] at t+1 (h2h and
 * the update, after h2h's input hook), so h2h's input hook at t+1 sees the share of
 * step t+1 (and of the stacked output), and cells[l]'s output hook at t everything.
 * Weight gradients only in VENE_GRAD_MODEL. */
#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/kernels_grad.h"
#include "models/gru_internal.h"

#define G(w) vene_run_grad_of(rs, (w))

/* Beyond gru_run_bytes, per cell call: h2h's output and the six gates (9 x B x D), x2h's
 * input (a step's slice of x, or a copy of the state below), the lower layers' states;
 * the records, ids, positions and pooled positions. */
size_t gru_grad_bytes(const vene_model *m, int B, int S) {
    size_t BD = (size_t)B * m->d_model, calls = (size_t)m->n_layer * S, T = (size_t)B * S;
    size_t floats = calls * 11 * BD + (size_t)S * BD;
    return floats * sizeof(float) + 64 * (3 * calls + S + 7) + sizeof(gru_saved) + calls * sizeof(gru_saved_step) +
           2 * T * sizeof(int32_t) + (size_t)B * sizeof(int32_t);
}

static double sigmoid(double v) { return 1.0 / (1.0 + exp(-v)); }

/* Gradient buffers of one cell call (B x D each, a and c B x 3D). */
typedef struct gru_grads {
    float *da, *dc, *dr_in, *dr, *dz_in, *dz, *dn_in, *dn;
} gru_grads;

/* One cell call backwards: dhn is the gradient of its output; dprev receives the
 * previous state's share, din (zeroed or accumulating) the input's. */
static int cell_backward(vene_run *rs, int t, int l, const float *dhn, float *dprev, float *din, gru_grads *g,
                         vene_error *err) {
    const vene_model *m = rs->m;
    const gru_weights *w = m->impl;
    const gru_cell *cw = &w->cells[l];
    const gru_saved_step *s = &((const gru_saved *)rs->saved)->steps[(size_t)t * m->n_layer + l];
    const int B = rs->B, D = m->d_model, D3 = 3 * D;
    const size_t BD = (size_t)B * D;
    vene_tensor tRi = vene_tensor_2d(g->dr_in, B, D), tR = vene_tensor_2d(g->dr, B, D);
    vene_tensor tZi = vene_tensor_2d(g->dz_in, B, D), tZ = vene_tensor_2d(g->dz, B, D);
    vene_tensor tNi = vene_tensor_2d(g->dn_in, B, D), tN = vene_tensor_2d(g->dn, B, D);
    vene_tensor tA = vene_tensor_2d(g->da, B, D3), tC = vene_tensor_2d(g->dc, B, D3);
    vene_tensor tP = vene_tensor_2d(dprev, B, D), tIn = vene_tensor_2d(din, B, D);

    /* h = z * hprev + (1 - z) * n */
    for (size_t i = 0; i < BD; i++) {
        g->dz[i] = dhn[i] * (s->hprev[i] - s->n[i]);
        g->dn[i] = dhn[i] * (1.0f - s->z[i]);
        dprev[i] += dhn[i] * s->z[i];
    }
    VENE_FIRE_BACK(rs, S_NEW_OUT, l, &tN, err);
    for (size_t i = 0; i < BD; i++) {
        double th = tanh((double)s->n_in[i]);
        g->dn_in[i] = (float)(g->dn[i] * (1.0 - th * th));
    }
    VENE_FIRE_BACK(rs, S_NEW_IN, l, &tNi, err);
    /* n_in = a_n + r * c_n */
    for (int b = 0; b < B; b++)
        for (int i = 0; i < D; i++) {
            size_t k = (size_t)b * D + i, k3 = (size_t)b * D3 + 2 * D + i;
            g->da[k3] = g->dn_in[k];
            g->dr[k] = g->dn_in[k] * s->c[k3];
            g->dc[k3] = g->dn_in[k] * s->r[k];
        }
    VENE_FIRE_BACK(rs, S_UPDATE_OUT, l, &tZ, err);
    for (size_t i = 0; i < BD; i++) {
        double sg = sigmoid(s->z_in[i]);
        g->dz_in[i] = (float)(g->dz[i] * sg * (1.0 - sg));
    }
    VENE_FIRE_BACK(rs, S_UPDATE_IN, l, &tZi, err);
    VENE_FIRE_BACK(rs, S_RESET_OUT, l, &tR, err);
    for (size_t i = 0; i < BD; i++) {
        double sg = sigmoid(s->r_in[i]);
        g->dr_in[i] = (float)(g->dr[i] * sg * (1.0 - sg));
    }
    VENE_FIRE_BACK(rs, S_RESET_IN, l, &tRi, err);
    /* r_in = a_r + c_r, z_in = a_z + c_z */
    for (int b = 0; b < B; b++)
        for (int i = 0; i < D; i++) {
            size_t k = (size_t)b * D + i, k3 = (size_t)b * D3 + i;
            g->da[k3] = g->dc[k3] = g->dr_in[k];
            g->da[k3 + D] = g->dc[k3 + D] = g->dz_in[k];
        }
    VENE_FIRE_BACK(rs, S_H2H_OUT, l, &tC, err);
    vk_linear_out_in_backward(g->dc, s->hprev, cw->wh, dprev, G(cw->wh), G(cw->bh), B, D, D3);
    VENE_FIRE_BACK(rs, S_H2H_IN, l, &tP, err);
    VENE_FIRE_BACK(rs, S_X2H_OUT, l, &tA, err);
    vk_linear_out_in_backward(g->da, s->xin, cw->wx, din, G(cw->wx), G(cw->bx), B, D, D3);
    VENE_FIRE_BACK(rs, S_X2H_IN, l, &tIn, err);
    VENE_FIRE_BACK(rs, S_CELL_IN, l, &tIn, err);
    return VENE_OK;
}

/* dst[b] += src[b, t] for the B x S x D stacked states. */
static void add_step(const float *src, int t, int B, int S, int D, float *dst) {
    for (int b = 0; b < B; b++) vk_acc(src + ((size_t)b * S + t) * D, dst + (size_t)b * D, D);
}

int gru_backward(vene_run *rs, vene_error *err) {
    const vene_model *m = rs->m;
    const gru_weights *w = m->impl;
    const gru_saved *sv = rs->saved;
    const int B = rs->B, S = rs->S, T = B * S, D = m->d_model, L = m->n_layer, C = w->n_labels;
    const size_t BD = (size_t)B * D, TD = (size_t)T * D;
    float *dX, *dstack, *dh, *din0, *dl, *dpool;
    gru_grads g;
    VENE_GALLOC(dX, TD);
    VENE_GALLOC(dstack, TD);
    VENE_GALLOC(dh, 2 * (size_t)L * BD); /* per layer: the current state's gradient, and the previous one's */
    VENE_GALLOC(din0, BD);
    VENE_GALLOC(g.da, 3 * BD);
    VENE_GALLOC(g.dc, 3 * BD);
    float **gates[] = {&g.dr_in, &g.dr, &g.dz_in, &g.dz, &g.dn_in, &g.dn};
    for (int i = 0; i < 6; i++) VENE_GALLOC(*gates[i], BD);
    if (rs->d_hidden) vk_acc(rs->d_hidden, dstack, (int64_t)TD);
    if (m->has_lm_head) {
        VENE_GALLOC(dl, (size_t)B * C);
        VENE_GALLOC(dpool, BD);
        if (rs->d_logits) memcpy(dl, rs->d_logits, sizeof(float) * (size_t)B * C);
        vene_tensor tl = vene_tensor_2d(dl, B, C), tp = vene_tensor_2d(dpool, B, D);
        VENE_FIRE_BACK(rs, S_SCORE_OUT, -1, &tl, err);
        vk_linear_out_in_backward(dl, sv->pooled, w->score_w, dpool, G(w->score_w), NULL, B, D, C);
        VENE_FIRE_BACK(rs, S_SCORE_IN, -1, &tp, err);
        for (int b = 0; b < B; b++)
            vk_acc(dpool + (size_t)b * D, dstack + ((size_t)b * S + sv->pooled_at[b]) * D, D);
    }
    float *cur[L], *prev[L];
    for (int l = 0; l < L; l++) cur[l] = dh + (size_t)l * BD, prev[l] = dh + (size_t)(L + l) * BD;
    add_step(dstack, S - 1, B, S, D, cur[L - 1]);
    int rc;
    for (int t = S - 1; t >= 0; t--)
        for (int l = L - 1; l >= 0; l--) {
            vene_tensor th = vene_tensor_2d(cur[l], B, D);
            VENE_FIRE_BACK(rs, S_CELL_OUT, l, &th, err);
            /* the previous state's gradient starts with its share of the stacked output */
            memset(prev[l], 0, BD * sizeof(float));
            if (l == L - 1 && t > 0) add_step(dstack, t - 1, B, S, D, prev[l]);
            float *din = l > 0 ? cur[l - 1] : din0;
            if (l == 0) memset(din0, 0, BD * sizeof(float));
            if ((rc = cell_backward(rs, t, l, cur[l], prev[l], din, &g, err))) return rc;
            if (l == 0)
                for (int b = 0; b < B; b++) memcpy(dX + ((size_t)b * S + t) * D, din0 + (size_t)b * D, sizeof(float) * D);
            float *tmp = cur[l];
            cur[l] = prev[l], prev[l] = tmp;
        }
    if (sv->positions) { /* x = wte(ids) + wpe(positions): both get dX */
        memcpy(dstack, dX, TD * sizeof(float));
        if ((rc = vene_run_embed_backward(rs, S_WPE_OUT, sv->positions, w->wpe, dstack, err))) return rc;
    }
    return sv->ids ? vene_run_embed_backward(rs, S_WTE_OUT, sv->ids, w->wte, dX, err) : VENE_OK;
}
