/* Reverse mode for interventions: the backward of every vene_iv_apply path and the
 * orthogonal parametrisation's backward (torch's derivatives, so gradients of `original`
 * match what torch's optimisers see).
 *
 *  localist swap family over selected coordinates C:
 *    Vanilla/Skip  out_C = s_C          dx_C = 0,  ds_C += g_C
 *    Addition      out_C = x_C + s_C    ds_C += g_C
 *    Subtraction   out_C = x_C - s_C    ds_C -= g_C
 *    Zero          out_C = 0            dx_C = 0
 *  SigmoidMask     out = (1-m) x + m s, m = sig(mask/T): dmask += sum g (s-x) m (1-m) / T
 *  square orthogonal   W = base expm(A): dA = upper-right block of expm([[A^T, dQ], [0, A^T]])
 *  tall orthogonal     W = base H_1..H_r E_r: reflections walked forward again (H_j^-1 = H_j) */
#include <cblas.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor.h"
#include "engine/iv_internal.h"

static int rotation_shape(const vene_iv *iv, int *E, int *r) {
    *E = iv->embed_dim;
    *r = iv->type == VENE_IV_LOWRANK_ROTATED ? iv->low_rank : iv->embed_dim;
    return *E > 0 && *r > 0;
}

int vene_iv_grad_alloc(vene_iv *iv, vene_error *err) {
    int E, r;
    if ((iv->type == VENE_IV_ROTATED || iv->type == VENE_IV_LOWRANK_ROTATED || iv->type == VENE_IV_BOUNDLESS_ROTATED ||
         iv->type == VENE_IV_SIGMOID_MASK_ROTATED) && rotation_shape(iv, &E, &r)) {
        size_t n = (size_t)E * (size_t)r;
        if (!iv->grad_W && !(iv->grad_W = calloc(n, sizeof(float)))) goto oom;
        if (!iv->grad_original && !(iv->grad_original = calloc(n, sizeof(float)))) goto oom;
    }
    if (iv->masks && !iv->grad_masks && !(iv->grad_masks = calloc((size_t)iv->masks_len, sizeof(float)))) goto oom;
    return VENE_OK;
oom:
    return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory for gradients", vene_iv_type_name(iv->type));
}

void vene_iv_zero_grad(vene_iv *iv) {
    int E, r;
    if (rotation_shape(iv, &E, &r)) {
        size_t n = (size_t)E * (size_t)r;
        if (iv->grad_W) memset(iv->grad_W, 0, n * sizeof(float));
        if (iv->grad_original) memset(iv->grad_original, 0, n * sizeof(float));
    }
    if (iv->grad_masks) memset(iv->grad_masks, 0, (size_t)iv->masks_len * sizeof(float));
    iv->grad_boundary = 0.0f;
    for (int k = 0; k < 4; k++)
        if (iv->ae_grad[k])
            memset(iv->ae_grad[k], 0, sizeof(float) * (size_t)(k == 1 ? iv->low_rank : k == 3 ? iv->embed_dim
                                                                                   : iv->embed_dim * iv->low_rank));
}

/* SigmoidMask trains its mask: materialise pyvene's zero initialisation on first use. */
static int ensure_mask(vene_iv *iv, int64_t D, vene_error *err) {
    if (iv->masks) return VENE_OK;
    if (!(iv->masks = calloc((size_t)D, sizeof(float))))
        return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", vene_iv_type_name(iv->type));
    iv->masks_len = (int)D;
    return vene_iv_grad_alloc(iv, err);
}

static int sigmoid_mask_backward(vene_iv *iv, const vene_tensor *x, const float *src, vene_tensor *g, float *dsrc,
                                 vene_error *err) {
    int64_t D = x->shape[x->ndim - 1], n = vene_tensor_numel(x);
    int rc = ensure_mask(iv, D, err);
    if (rc) return rc;
    if (iv->masks_len != D)
        return vene_errorf(err, VENE_ERR_ARG, "%s: mask has %d entries but the block's last dim is %lld",
                           vene_iv_type_name(iv->type), iv->masks_len, (long long)D);
    if ((rc = vene_iv_grad_alloc(iv, err))) return rc;
    for (int64_t i = 0; i < n; i++) {
        int64_t c = i % D;
        float m = iv_sigmoidf(iv->masks[c] / iv->temperature), gi = g->data[i];
        iv->grad_masks[c] += gi * (src[i] - x->data[i]) * m * (1.0f - m) / iv->temperature;
        if (dsrc) dsrc[i] += gi * m;
        g->data[i] = gi * (1.0f - m);
    }
    return VENE_OK;
}

static int swap_backward(const vene_iv *iv, const vene_tensor *x, const vene_subspaces *ss, vene_tensor *g,
                         float *dsrc, vene_error *err) {
    int nd = x->ndim;
    int64_t B = x->shape[0], D = x->shape[nd - 1], n = vene_tensor_numel(x), rows_per_ex = n / (B * D);
    iv_coords cs;
    int rc = iv_coords_build(iv, ss, B, (int)D, iv->interchange_dim, &cs, err);
    if (rc) return rc;
    for (int64_t r = 0; r < n / D; r++) {
        int set = iv_coords_set(&cs, r / rows_per_ex);
        const int *c = cs.c + cs.off[set];
        int m = cs.off[set + 1] - cs.off[set];
        float *gr = g->data + r * D, *ds = dsrc ? dsrc + r * D : NULL;
        for (int j = 0; j < m; j++) {
            float v = gr[c[j]];
            switch (iv->type) {
            case VENE_IV_ADDITION: if (ds) ds[c[j]] += v; break;
            case VENE_IV_SUBTRACTION: if (ds) ds[c[j]] -= v; break;
            case VENE_IV_ZERO: gr[c[j]] = 0.0f; break;
            default: /* Vanilla, Skip */
                if (ds) ds[c[j]] += v;
                gr[c[j]] = 0.0f;
                break;
            }
        }
    }
    iv_coords_free(&cs);
    return VENE_OK;
}

int vene_iv_backward(vene_iv *iv, const vene_tensor *x, const vene_tensor *source, const vene_subspaces *ss,
                     vene_tensor *g, float *dsrc, vene_error *err) {
    if (!iv || !x || !g) return vene_errorf(err, VENE_ERR_ARG, "vene_iv_backward: NULL intervention, block or gradient");
    const char *tn = vene_iv_type_name(iv->type);
    if (!vene_tensor_same_shape(x, g)) {
        char a[96], b[96];
        return vene_errorf(err, VENE_ERR_ARG, "%s backward: gradient %s does not match the block %s", tn,
                           iv_shape_str(g->ndim, g->shape, a, sizeof a), iv_shape_str(x->ndim, x->shape, b, sizeof b));
    }
    switch (iv->type) {
    case VENE_IV_CALLBACK:
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: a callback intervention has no backward", tn);
    case VENE_IV_COLLECT: case VENE_IV_NOISE: return VENE_OK;
    default: break;
    }
    const float *src = NULL;
    float *owned = NULL;
    int rc;
    if (vene_iv_needs_source(iv->type) && (rc = iv_source_full(iv, x, source, &src, &owned, err))) return rc;
    if (owned) dsrc = NULL; /* a broadcast source (a steering vector) is a constant here */
    switch (iv->type) {
    case VENE_IV_SIGMOID_MASK: rc = sigmoid_mask_backward(iv, x, src, g, dsrc, err); break;
    case VENE_IV_AUTOENCODER: rc = iv_autoencoder_backward(iv, x, src, ss, g, dsrc, err); break;
    case VENE_IV_ROTATED: case VENE_IV_LOWRANK_ROTATED: case VENE_IV_BOUNDLESS_ROTATED:
    case VENE_IV_SIGMOID_MASK_ROTATED:
        if (!(rc = vene_iv_grad_alloc(iv, err))) rc = iv_rotation_backward(iv, x, src, ss, g, dsrc, err);
        break;
    default: rc = swap_backward(iv, x, ss, g, dsrc, err); break;
    }
    free(owned);
    return rc;
}

int vene_iv_grad_finish(vene_iv *iv, vene_error *err) {
    int E, r;
    if (!iv->grad_W || !iv->grad_original || !rotation_shape(iv, &E, &r)) return VENE_OK;
    if (!iv->original || !iv->base) return VENE_OK; /* W given directly: nothing upstream of it */
    return vene_orthogonal_backward(iv->original, iv->base, E, r, iv->grad_W, iv->grad_original, err);
}

/* dO for the square map: dA = L(A^T, dQ), dO_ij = dA_ij - dA_ji below the diagonal. */
static int expm_backward(int E, const double *O, const double *dQ, double *dO, vene_error *err) {
    size_t n2 = (size_t)2 * E, nn = n2 * n2;
    double *M = calloc(nn, sizeof(double)), *X = malloc(nn * sizeof(double));
    int rc = VENE_OK;
    if (!M || !X) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "orthogonal backward: out of memory for %zu x %zu", n2, n2);
        goto done;
    }
    for (int i = 0; i < E; i++)
        for (int j = 0; j < E; j++) {
            /* A_ij = O_ij (i > j), -O_ji (i < j); M holds A^T in both diagonal blocks */
            double aji = j > i ? O[(size_t)j * E + i] : j < i ? -O[(size_t)i * E + j] : 0.0;
            M[(size_t)i * n2 + j] = aji;
            M[(size_t)(i + E) * n2 + j + E] = aji;
            M[(size_t)i * n2 + j + E] = dQ[(size_t)i * E + j];
        }
    if ((rc = iv_expm((int)n2, M, X, err))) goto done;
    for (int i = 0; i < E; i++)
        for (int j = 0; j < E; j++)
            dO[(size_t)i * E + j] = i > j ? X[(size_t)i * n2 + j + E] - X[(size_t)j * n2 + i + E] : 0.0;
done:
    free(M);
    free(X);
    return rc;
}

/* dO for the tall map (r < E). Q0 = H_1 .. H_r E_r, walked again from Z_1 = Q0:
 * Z_{j+1} = H_j Z_j, u = v^T Z_{j+1}, w = v^T G: dtau = -w.u, dv = -tau (G u^T + Z_{j+1} w^T),
 * G <- H_j G; tau = 2 / (1 + |v_strict|^2) adds dtau * (-tau^2 v_i) to each strict entry. */
static int householder_backward(int E, int r, const double *O, const double *Q0, const double *dQ0, double *dO,
                                vene_error *err) {
    size_t nr = (size_t)E * r;
    double *Z = malloc(nr * sizeof(double)), *G = malloc(nr * sizeof(double));
    double *u = malloc((size_t)r * sizeof(double)), *w = malloc((size_t)r * sizeof(double));
    double *v = malloc((size_t)E * sizeof(double));
    if (!Z || !G || !u || !w || !v) {
        free(Z), free(G), free(u), free(w), free(v);
        return vene_errorf(err, VENE_ERR_MEMORY, "orthogonal backward: out of memory for %d x %d", E, r);
    }
    memcpy(Z, Q0, nr * sizeof(double));
    memcpy(G, dQ0, nr * sizeof(double));
    memset(dO, 0, nr * sizeof(double));
    for (int j = 0; j < r; j++) {
        double ss = 0.0;
        for (int i = 0; i < E; i++) {
            v[i] = i < j ? 0.0 : i == j ? 1.0 : O[(size_t)i * r + j];
            if (i > j) ss += v[i] * v[i];
        }
        double tau = 2.0 / (1.0 + ss);
        /* Z_{j+1} = H_j Z_j */
        for (int c = 0; c < r; c++) {
            double t = 0.0;
            for (int i = j; i < E; i++) t += v[i] * Z[(size_t)i * r + c];
            for (int i = j; i < E; i++) Z[(size_t)i * r + c] -= tau * v[i] * t;
        }
        double dtau = 0.0;
        for (int c = 0; c < r; c++) {
            double uc = 0.0, wc = 0.0;
            for (int i = j; i < E; i++) {
                uc += v[i] * Z[(size_t)i * r + c];
                wc += v[i] * G[(size_t)i * r + c];
            }
            u[c] = uc;
            w[c] = wc;
            dtau -= wc * uc;
        }
        for (int i = j + 1; i < E; i++) {
            double dv = 0.0;
            for (int c = 0; c < r; c++) dv += G[(size_t)i * r + c] * u[c] + Z[(size_t)i * r + c] * w[c];
            dO[(size_t)i * r + j] = -tau * dv + dtau * (-tau * tau * v[i]);
        }
        /* G <- H_j G */
        for (int c = 0; c < r; c++)
            for (int i = j; i < E; i++) G[(size_t)i * r + c] -= tau * v[i] * w[c];
    }
    free(Z), free(G), free(u), free(w), free(v);
    return VENE_OK;
}

int vene_orthogonal_backward(const float *original, const float *base, int E, int r, const float *dW,
                             float *d_original, vene_error *err) {
    if (!original || !base || !dW || !d_original)
        return vene_errorf(err, VENE_ERR_ARG, "orthogonal backward: NULL argument");
    if (E <= 0 || r <= 0 || r > E)
        return vene_errorf(err, VENE_ERR_ARG, "orthogonal backward: original is %d x %d; expected 0 < r <= E", E, r);
    size_t nr = (size_t)E * r;
    double *O = malloc(nr * sizeof(double)), *dWd = malloc(nr * sizeof(double));
    double *dQ = malloc(nr * sizeof(double)), *dO = malloc(nr * sizeof(double)), *Q = malloc(nr * sizeof(double));
    double *tau = malloc((size_t)r * sizeof(double));
    int rc = VENE_OK;
    if (!O || !dWd || !dQ || !dO || !Q || !tau) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "orthogonal backward: out of memory for %d x %d", E, r);
        goto done;
    }
    for (size_t i = 0; i < nr; i++) O[i] = original[i], dWd[i] = dW[i];
    /* W = base Q  ->  dQ = base^T dW */
    if (iv_base_times(base, E, r, 1, dWd, dQ) != 0) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "orthogonal backward: out of memory for %d x %d", E, E);
        goto done;
    }
    if (r == E) {
        rc = expm_backward(E, O, dQ, dO, err);
    } else {
        for (int j = 0; j < r; j++) {
            double ss = 0.0;
            for (int i = j + 1; i < E; i++) ss += O[(size_t)i * r + j] * O[(size_t)i * r + j];
            tau[j] = 2.0 / (1.0 + ss);
        }
        if (iv_householder_q(E, r, O, r, tau, Q) != 0) {
            rc = vene_errorf(err, VENE_ERR_MEMORY, "orthogonal backward: out of memory for %d x %d", E, r);
            goto done;
        }
        /* Q_signed = Q0 * s_j (s_j = (int)O_jj, no gradient): dQ0 = dQ * s_j */
        for (int j = 0; j < r; j++) {
            double d = O[(size_t)j * r + j];
            double s = d >= (double)INT_MAX ? (double)INT_MAX : d <= (double)INT_MIN ? (double)INT_MIN : (double)(int)d;
            for (int i = 0; i < E; i++) dQ[(size_t)i * r + j] *= s;
        }
        rc = householder_backward(E, r, O, Q, dQ, dO, err);
    }
    if (!rc)
        for (size_t i = 0; i < nr; i++) d_original[i] = (float)dO[i];
done:
    free(O), free(dWd), free(dQ), free(dO), free(Q), free(tau);
    return rc;
}
