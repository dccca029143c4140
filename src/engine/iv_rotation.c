/* The rotation family on flattened blocks (spec §8.1, §8.7-§8.10):
 *
 *   Rotated             r_x = xW, r_s = sW, r_x[:, C] = r_s[:, C], out = r_x W^T
 *   LowRankRotated      out = x + (sW_C - xW_C) W_C^T     (W is E x r; C all r columns or subspaces)
 *   BoundlessRotated    m_i = sig(i/T) sig((clamp(b, 1e-3, 1) E - i)/T), out = ((1-m) xW + m sW) W^T
 *   SigmoidMaskRotated  m = sig(masks/T), same mixing
 *
 * Flattening: B x D stays; B x k x D -> B x (k*D); B x k1 x k2 x d -> B x k2 x (k1*d) (heads
 * concatenated per position), rows of that width, then permuted back. keep_last_dim: rows
 * of the last dim. The flattened width must be E. Products go through cblas_sgemm. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/iv_internal.h"

/* B x k1 x k2 x d <-> (B*k2) x (k1*d). */
void iv_permute_4d(const int64_t *sh, const float *in, float *out, int back) {
    int64_t B = sh[0], k1 = sh[1], k2 = sh[2], d = sh[3];
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < k1; h++)
            for (int64_t p = 0; p < k2; p++) {
                const float *from;
                float *to;
                size_t blk = (size_t)((b * k1 + h) * k2 + p) * (size_t)d;
                size_t flat = (size_t)((b * k2 + p) * k1 + h) * (size_t)d;
                if (back) from = in + flat, to = out + blk;
                else from = in + blk, to = out + flat;
                memcpy(to, from, sizeof(float) * (size_t)d);
            }
}

int iv_rotation_mask(const vene_iv *iv, float *m, vene_error *err) {
    int E = iv->embed_dim;
    if (iv->type == VENE_IV_BOUNDLESS_ROTATED) {
        float b = iv->boundary < 1e-3f ? 1e-3f : iv->boundary > 1.0f ? 1.0f : iv->boundary;
        float by = b * (float)E;
        for (int i = 0; i < E; i++)
            m[i] = iv_sigmoidf(((float)i - 0.0f) / iv->temperature) * iv_sigmoidf((by - (float)i) / iv->temperature);
        return VENE_OK;
    }
    if (iv->masks && iv->masks_len != E)
        return vene_errorf(err, VENE_ERR_ARG, "%s: masks has %d entries but embed_dim is %d",
                           vene_iv_type_name(iv->type), iv->masks_len, E);
    for (int i = 0; i < E; i++) m[i] = iv_sigmoidf((iv->masks ? iv->masks[i] : 100.0f) / iv->temperature);
    return VENE_OK;
}

int iv_rotation_flat(const vene_iv *iv, const vene_tensor *base, iv_flat *f, vene_error *err) {
    const char *tn = vene_iv_type_name(iv->type);
    int nd = base->ndim;
    const int64_t *sh = base->shape;
    int64_t n = vene_tensor_numel(base), B = sh[0];
    char sbuf[96];
    f->rows_per_ex = 1;
    f->permute = 0;
    if (iv->keep_last_dim || nd == 2) {
        f->F = sh[nd - 1];
        f->N = n / f->F;
        f->rows_per_ex = f->N / B;
    } else if (nd == 3) {
        f->N = B;
        f->F = sh[1] * sh[2];
    } else if (nd == 4) {
        f->N = B * sh[2];
        f->F = sh[1] * sh[3];
        f->rows_per_ex = sh[2];
        f->permute = 1;
    } else {
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: cannot flatten a %d-D block %s (2 to 4 dims)", tn, nd,
                           iv_shape_str(nd, sh, sbuf, sizeof sbuf));
    }
    if (!iv->W)
        return vene_errorf(err, VENE_ERR_STATE, "%s: no rotation weight (load parameters or call vene_iv_finalize)",
                           tn);
    if (f->F != iv->embed_dim)
        return vene_errorf(err, VENE_ERR_ARG, "%s: the block %s flattens to width %lld but embed_dim is %d", tn,
                           iv_shape_str(nd, sh, sbuf, sizeof sbuf), (long long)f->F, iv->embed_dim);
    return VENE_OK;
}

int iv_apply_rotation(const vene_iv *iv, vene_tensor *base, const float *src, const vene_subspaces *ss,
                      vene_error *err) {
    const char *tn = vene_iv_type_name(iv->type);
    const int64_t *sh = base->shape;
    int64_t n = vene_tensor_numel(base), B = sh[0];
    iv_flat fl;
    int rc0 = iv_rotation_flat(iv, base, &fl, err);
    if (rc0) return rc0;
    int64_t N = fl.N, rows_per_ex = fl.rows_per_ex;
    int permute = fl.permute;
    int E = iv->embed_dim;
    int r = iv->type == VENE_IV_LOWRANK_ROTATED ? iv->low_rank : E;
    if (r <= 0 || r > E) return vene_errorf(err, VENE_ERR_STATE, "%s: rotation is %d x %d", tn, E, r);
    const float *W = iv->W;

    iv_coords cs = {0};
    int rc = VENE_OK;
    if (iv->type == VENE_IV_ROTATED || iv->type == VENE_IV_LOWRANK_ROTATED) {
        /* LowRank ignores interchange_dim (pyvene): all r columns without subspaces. */
        int prefix = iv->type == VENE_IV_ROTATED ? iv->interchange_dim : -1;
        if ((rc = iv_coords_build(iv, ss, B, r, prefix, &cs, err))) return rc;
    }
    float *X = base->data, *Xp = NULL, *Sp = NULL;
    const float *S = src;
    float *RX = malloc(sizeof(float) * (size_t)(N * r)), *RS = malloc(sizeof(float) * (size_t)(N * r));
    float *P = NULL, *m = NULL;
    if (!RX || !RS) goto oom;
    if (permute) {
        Xp = malloc(sizeof(float) * (size_t)n);
        Sp = malloc(sizeof(float) * (size_t)n);
        if (!Xp || !Sp) goto oom;
        iv_permute_4d(sh, base->data, Xp, 0);
        iv_permute_4d(sh, src, Sp, 0);
        X = Xp;
        S = Sp;
    }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, r, E, 1.0f, X, E, W, r, 0.0f, RX, r);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, r, E, 1.0f, S, E, W, r, 0.0f, RS, r);

    if (iv->type == VENE_IV_LOWRANK_ROTATED) {
        /* RS <- (r_s - r_x) on the selected columns, 0 elsewhere; out = x + RS W^T. */
        P = malloc(sizeof(float) * (size_t)(N * E));
        m = malloc(sizeof(float) * (size_t)r);
        if (!P || !m) goto oom;
        for (int64_t i = 0; i < N; i++) {
            int set = iv_coords_set(&cs, i / rows_per_ex);
            float *rs = RS + i * r;
            const float *rx = RX + i * r;
            for (int c = 0; c < r; c++) m[c] = 0.0f;
            for (int j = cs.off[set]; j < cs.off[set + 1]; j++) m[cs.c[j]] += rs[cs.c[j]] - rx[cs.c[j]];
            memcpy(rs, m, sizeof(float) * (size_t)r);
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, E, r, 1.0f, RS, r, W, r, 0.0f, P, E);
        for (int64_t i = 0; i < N * E; i++) X[i] = X[i] + P[i];
    } else {
        if (iv->type == VENE_IV_ROTATED) {
            for (int64_t i = 0; i < N; i++) {
                int set = iv_coords_set(&cs, i / rows_per_ex);
                for (int j = cs.off[set]; j < cs.off[set + 1]; j++) RX[i * r + cs.c[j]] = RS[i * r + cs.c[j]];
            }
        } else {
            m = malloc(sizeof(float) * (size_t)E);
            if (!m) goto oom;
            if ((rc = iv_rotation_mask(iv, m, err))) goto done;
            for (int64_t i = 0; i < N; i++)
                for (int c = 0; c < E; c++)
                    RX[i * E + c] = (1.0f - m[c]) * RX[i * E + c] + m[c] * RS[i * E + c];
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, E, r, 1.0f, RX, r, W, r, 0.0f, X, E);
    }
    if (permute) iv_permute_4d(sh, Xp, base->data, 1);
    goto done;
oom:
    rc = vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory for a %lld x %lld block", tn, (long long)N,
                     (long long)fl.F);
done:
    iv_coords_free(&cs);
    free(RX);
    free(RS);
    free(Xp);
    free(Sp);
    free(P);
    free(m);
    return rc;
}
