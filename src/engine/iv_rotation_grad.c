/* Backward of the rotation family on flattened rows (see iv_rotation.c for the forward).
 * With RX = xW, RS = sW (N x r), G = d(out), M the selection (hard 0/1 per row for
 * Rotated/LowRank, soft m per column for Boundless/SigmoidMaskRotated):
 *
 *   LowRank   out = x + D W^T, D = (RS - RX) . M:
 *             dD = (G W) . M;  dx = G - dD W^T;  ds = dD W^T;  dW = G^T D + (s - x)^T dD
 *   Rotated / masked   out = Y W^T, Y = (1 - M) . RX + M . RS:
 *             dY = G W;  dx = ((1 - M) . dY) W^T;  ds = (M . dY) W^T;
 *             dW = G^T Y + x^T ((1 - M) . dY) + s^T (M . dY);  dm_c = sum_i dY_ic (RS_ic - RX_ic)
 *   Boundless m_i = sig(i/T) sig((bE - i)/T), b = clamp(boundary, 1e-3, 1):
 *             db = sum_i dm_i sig(i/T) sig'(u_i) E / T (0 where the clamp is active)
 *   SigmoidMaskRotated m = sig(masks/T): dmasks = dm m (1 - m) / T */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/iv_internal.h"

int iv_rotation_backward(vene_iv *iv, const vene_tensor *x, const float *src, const vene_subspaces *ss,
                         vene_tensor *g, float *dsrc, vene_error *err) {
    const char *tn = vene_iv_type_name(iv->type);
    iv_flat fl;
    int rc = iv_rotation_flat(iv, x, &fl, err);
    if (rc) return rc;
    const int64_t *sh = x->shape, n = vene_tensor_numel(x), B = sh[0], N = fl.N;
    const int E = iv->embed_dim, lowrank = iv->type == VENE_IV_LOWRANK_ROTATED;
    const int r = lowrank ? iv->low_rank : E, hard = lowrank || iv->type == VENE_IV_ROTATED;
    const float *W = iv->W;
    iv_coords cs = {0};
    if (hard && (rc = iv_coords_build(iv, ss, B, r, lowrank ? -1 : iv->interchange_dim, &cs, err))) return rc;

    size_t nr = (size_t)(N * r);
    float *X = malloc(sizeof(float) * (size_t)n), *S = malloc(sizeof(float) * (size_t)n);
    float *Gf = malloc(sizeof(float) * (size_t)n), *dS = calloc((size_t)n, sizeof(float));
    float *RX = malloc(sizeof(float) * nr), *RS = malloc(sizeof(float) * nr), *dY = malloc(sizeof(float) * nr);
    float *Y = malloc(sizeof(float) * nr), *Mk = malloc(sizeof(float) * nr), *m = malloc(sizeof(float) * (size_t)E);
    float *dm = calloc((size_t)E, sizeof(float)), *A = malloc(sizeof(float) * nr), *Bm = malloc(sizeof(float) * nr);
    if (!X || !S || !Gf || !dS || !RX || !RS || !dY || !Y || !Mk || !m || !dm || !A || !Bm) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "%s backward: out of memory for a %lld x %d block", tn, (long long)N, E);
        goto done;
    }
    if (fl.permute) {
        iv_permute_4d(sh, x->data, X, 0);
        iv_permute_4d(sh, src, S, 0);
        iv_permute_4d(sh, g->data, Gf, 0);
    } else {
        memcpy(X, x->data, sizeof(float) * (size_t)n);
        memcpy(S, src, sizeof(float) * (size_t)n);
        memcpy(Gf, g->data, sizeof(float) * (size_t)n);
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, r, E, 1.0f, X, E, W, r, 0.0f, RX, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, r, E, 1.0f, S, E, W, r, 0.0f, RS, r);
    /* the mixing weights per (row, column) */
    if (hard) {
        memset(Mk, 0, sizeof(float) * nr);
        for (int64_t i = 0; i < N; i++) {
            int set = iv_coords_set(&cs, i / fl.rows_per_ex);
            for (int j = cs.off[set]; j < cs.off[set + 1]; j++) Mk[i * r + cs.c[j]] = 1.0f;
        }
    } else {
        if ((rc = iv_rotation_mask(iv, m, err))) goto done;
        for (int64_t i = 0; i < N; i++) memcpy(Mk + i * r, m, sizeof(float) * (size_t)E);
    }
    /* dY = G W */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, r, E, 1.0f, Gf, E, W, r, 0.0f, dY, r);
    if (lowrank) {
        /* Y <- D = (RS - RX) . M ; A <- dD = dY . M */
        for (size_t i = 0; i < nr; i++) {
            Y[i] = (RS[i] - RX[i]) * Mk[i];
            A[i] = dY[i] * Mk[i];
        }
        /* dW += G^T D + (s - x)^T dD */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, E, r, (int)N, 1.0f, Gf, E, Y, r, 1.0f, iv->grad_W, r);
        for (int64_t i = 0; i < n; i++) S[i] -= X[i];
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, E, r, (int)N, 1.0f, S, E, A, r, 1.0f, iv->grad_W, r);
        /* ds = dD W^T ; dx = G - ds */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, E, r, 1.0f, A, r, W, r, 0.0f, dS, E);
        for (int64_t i = 0; i < n; i++) Gf[i] -= dS[i];
    } else {
        for (size_t i = 0; i < nr; i++) {
            Y[i] = (1.0f - Mk[i]) * RX[i] + Mk[i] * RS[i];
            A[i] = (1.0f - Mk[i]) * dY[i];
            Bm[i] = Mk[i] * dY[i];
            dm[i % (size_t)r] += dY[i] * (RS[i] - RX[i]);
        }
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, E, r, (int)N, 1.0f, Gf, E, Y, r, 1.0f, iv->grad_W, r);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, E, r, (int)N, 1.0f, X, E, A, r, 1.0f, iv->grad_W, r);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, E, r, (int)N, 1.0f, S, E, Bm, r, 1.0f, iv->grad_W, r);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, E, r, 1.0f, Bm, r, W, r, 0.0f, dS, E);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, E, r, 1.0f, A, r, W, r, 0.0f, Gf, E);
        float T = iv->temperature;
        if (iv->type == VENE_IV_BOUNDLESS_ROTATED) {
            if (iv->boundary >= 1e-3f && iv->boundary <= 1.0f) {
                float by = iv->boundary * (float)E;
                double db = 0.0;
                for (int i = 0; i < E; i++) {
                    float a = iv_sigmoidf((float)i / T), c = iv_sigmoidf((by - (float)i) / T);
                    db += (double)dm[i] * a * c * (1.0f - c) * (float)E / T;
                }
                iv->grad_boundary += (float)db;
            }
        } else if (iv->type == VENE_IV_SIGMOID_MASK_ROTATED) {
            if (!iv->masks) { /* pyvene's initial masks (100) become trainable state */
                if (!(iv->masks = malloc(sizeof(float) * (size_t)E))) {
                    rc = vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", tn);
                    goto done;
                }
                for (int i = 0; i < E; i++) iv->masks[i] = 100.0f;
                iv->masks_len = E;
            }
            if ((rc = vene_iv_grad_alloc(iv, err))) goto done;
            for (int i = 0; i < E; i++) iv->grad_masks[i] += dm[i] * m[i] * (1.0f - m[i]) / T;
        }
    }
    if (fl.permute) {
        iv_permute_4d(sh, Gf, g->data, 1);
        if (dsrc) {
            iv_permute_4d(sh, dS, S, 1);
            for (int64_t i = 0; i < n; i++) dsrc[i] += S[i];
        }
    } else {
        memcpy(g->data, Gf, sizeof(float) * (size_t)n);
        if (dsrc)
            for (int64_t i = 0; i < n; i++) dsrc[i] += dS[i];
    }
done:
    iv_coords_free(&cs);
    free(X), free(S), free(Gf), free(dS), free(RX), free(RS), free(dY), free(Y), free(Mk), free(m), free(dm);
    free(A), free(Bm);
    return rc;
}
