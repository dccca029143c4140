/* torch.nn.utils.parametrizations.orthogonal, the inference half (spec §8.12), and the
 * seeded orthogonal initialisation. Everything is computed in double.
 *
 *  square E x E:  W = base * expm(A),  A = tril(O) - tril(O)^T
 *  tall   E x r:  W = base * Q,  Q = first r columns of H_1 ... H_r, H_j = I - tau_j v_j v_j^T,
 *                 v_j = strictly-lower column j of O with an implicit 1 at row j,
 *                 tau_j = 2 / (1 + |strict part|^2), then column j times (int)O_jj. */
#include <cblas.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "engine/iv_internal.h"

/* C (n x n) = A * B, all row-major n x n. */
static void dmm(int n, const double *A, const double *B, double *C) {
    cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1.0, A, n, B, n, 0.0, C, n);
}

/* Solves P X = R in place (X into R; P is destroyed): LU with partial pivoting, then two
 * triangular solves. Returns 0, or -1 when P is singular. */
static int dsolve(int n, double *P, double *R) {
    for (int k = 0; k < n; k++) {
        int piv = k;
        double best = fabs(P[(size_t)k * n + k]);
        for (int i = k + 1; i < n; i++) {
            double v = fabs(P[(size_t)i * n + k]);
            if (v > best) best = v, piv = i;
        }
        if (!(best > 0.0)) return -1;
        if (piv != k) {
            for (int j = 0; j < n; j++) {
                double t = P[(size_t)k * n + j];
                P[(size_t)k * n + j] = P[(size_t)piv * n + j];
                P[(size_t)piv * n + j] = t;
                t = R[(size_t)k * n + j];
                R[(size_t)k * n + j] = R[(size_t)piv * n + j];
                R[(size_t)piv * n + j] = t;
            }
        }
        const double *pk = P + (size_t)k * n;
        for (int i = k + 1; i < n; i++) {
            double *pi = P + (size_t)i * n;
            double l = pi[k] / pk[k];
            pi[k] = l;
            for (int j = k + 1; j < n; j++) pi[j] -= l * pk[j];
        }
    }
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasLower, CblasNoTrans, CblasUnit, n, n, 1.0, P, n, R, n);
    cblas_dtrsm(CblasRowMajor, CblasLeft, CblasUpper, CblasNoTrans, CblasNonUnit, n, n, 1.0, P, n, R, n);
    return 0;
}

/* expm(A) into R by scaling and squaring with the degree-13 Padé approximant (Higham
 * 2005). A (n x n) is not modified. */
int iv_expm(int n, const double *A, double *R, vene_error *err) {
    static const double b[14] = {64764752532480000.0, 32382376266240000.0, 7771770303897600.0,
                                 1187353796428800.0,  129060195264000.0,   10559470521600.0,
                                 670442572800.0,      33522128640.0,       1323241920.0,
                                 40840800.0,          960960.0,            16380.0,
                                 182.0,               1.0};
    const double theta13 = 5.371920351148152;
    size_t nn = (size_t)n * n;
    double *ws = calloc(nn * 7, sizeof(double)); /* zeroed: gcc cannot see that As is filled before use */
    if (!ws) return vene_errorf(err, VENE_ERR_MEMORY, "matrix exponential: out of memory for %d x %d", n, n);
    double *As = ws, *A2 = ws + nn, *A4 = ws + 2 * nn, *A6 = ws + 3 * nn, *U = ws + 4 * nn,
           *V = ws + 5 * nn, *T = ws + 6 * nn;

    double norm1 = 0.0;   /* max column sum */
    for (int j = 0; j < n; j++) {
        double s = 0.0;
        for (int i = 0; i < n; i++) s += fabs(A[(size_t)i * n + j]);
        if (s > norm1) norm1 = s;
    }
    int sq = 0;
    if (norm1 > theta13) sq = (int)ceil(log2(norm1 / theta13));
    if (sq > 1000) {
        free(ws);
        return vene_errorf(err, VENE_ERR_ARG, "matrix exponential: the %d x %d matrix has norm %g", n, n, norm1);
    }
    double scale = ldexp(1.0, -sq);
    for (size_t i = 0; i < nn; i++) As[i] = A[i] * scale;

    dmm(n, As, As, A2);
    dmm(n, A2, A2, A4);
    dmm(n, A4, A2, A6);
    /* U = As * (A6 (b13 A6 + b11 A4 + b9 A2) + b7 A6 + b5 A4 + b3 A2 + b1 I) */
    for (size_t i = 0; i < nn; i++) T[i] = b[13] * A6[i] + b[11] * A4[i] + b[9] * A2[i];
    dmm(n, A6, T, V);
    for (size_t i = 0; i < nn; i++) V[i] += b[7] * A6[i] + b[5] * A4[i] + b[3] * A2[i];
    for (int i = 0; i < n; i++) V[(size_t)i * n + i] += b[1];
    dmm(n, As, V, U);
    /* V = A6 (b12 A6 + b10 A4 + b8 A2) + b6 A6 + b4 A4 + b2 A2 + b0 I */
    for (size_t i = 0; i < nn; i++) T[i] = b[12] * A6[i] + b[10] * A4[i] + b[8] * A2[i];
    dmm(n, A6, T, V);
    for (size_t i = 0; i < nn; i++) V[i] += b[6] * A6[i] + b[4] * A4[i] + b[2] * A2[i];
    for (int i = 0; i < n; i++) V[(size_t)i * n + i] += b[0];
    /* (V - U) R = (V + U) */
    for (size_t i = 0; i < nn; i++) {
        double u = U[i], v = V[i];
        T[i] = v - u;
        R[i] = v + u;
    }
    if (dsolve(n, T, R) != 0) {
        free(ws);
        return vene_errorf(err, VENE_ERR_ARG, "matrix exponential: singular Padé denominator (%d x %d)", n, n);
    }
    for (int s = 0; s < sq; s++) {
        dmm(n, R, R, T);
        memcpy(R, T, sizeof(double) * nn);
    }
    free(ws);
    return VENE_OK;
}

/* Q (n x m) = first m columns of H_0 ... H_{m-1}, H_j = I - tau_j v_j v_j^T, where v_j has
 * a 1 at row j, V[i*ldv + j] below it and zeros above (LAPACK orgqr convention). */
int iv_householder_q(int n, int m, const double *V, int ldv, const double *tau, double *Q) {
    double *w = malloc(sizeof(double) * (size_t)(m > 0 ? m : 1));
    if (!w) return -1;
    memset(Q, 0, sizeof(double) * (size_t)n * m);
    for (int j = 0; j < m; j++) Q[(size_t)j * m + j] = 1.0;
    for (int j = m - 1; j >= 0; j--) {
        /* Columns < j of the partial product are still e_c with c < j: untouched by H_j. */
        for (int c = j; c < m; c++) w[c] = Q[(size_t)j * m + c];
        for (int i = j + 1; i < n; i++) {
            double v = V[(size_t)i * ldv + j];
            if (v != 0.0)
                for (int c = j; c < m; c++) w[c] += v * Q[(size_t)i * m + c];
        }
        double t = tau[j];
        for (int c = j; c < m; c++) Q[(size_t)j * m + c] -= t * w[c];
        for (int i = j + 1; i < n; i++) {
            double tv = t * V[(size_t)i * ldv + j];
            if (tv != 0.0)
                for (int c = j; c < m; c++) Q[(size_t)i * m + c] -= tv * w[c];
        }
    }
    free(w);
    return 0;
}

/* A few columns (low-rank DAS: r = 1) go through a direct loop: copying the E x E base
 * into doubles for dgemm cost more than the product (4.7 MB at E = 768, per step, in the
 * forward's weight and again in the backward). */
int iv_base_times(const float *base, int E, int r, int trans, const double *X, double *out) {
    const size_t nE = (size_t)E * E, nr = (size_t)E * r;
    if (r <= 8 && trans) { /* out[k] += base[i][k] X[i]: independent sums along k */
        memset(out, 0, sizeof(double) * nr);
        for (int i = 0; i < E; i++) {
            const float *row = base + (size_t)i * E;
            for (int k = 0; k < E; k++)
                for (int c = 0; c < r; c++) out[(size_t)k * r + c] += (double)row[k] * X[(size_t)i * r + c];
        }
        return 0;
    }
    if (r <= 8) { /* out[i] = base[i] . X: four partial sums, so the additions do not wait on each other */
        for (int i = 0; i < E; i++) {
            const float *row = base + (size_t)i * E;
            for (int c = 0; c < r; c++) {
                double s[4] = {0, 0, 0, 0};
                int k = 0;
                for (; k + 4 <= E; k += 4)
                    for (int q = 0; q < 4; q++) s[q] += (double)row[k + q] * X[(size_t)(k + q) * r + c];
                for (; k < E; k++) s[0] += (double)row[k] * X[(size_t)k * r + c];
                out[(size_t)i * r + c] = (s[0] + s[1]) + (s[2] + s[3]);
            }
        }
        return 0;
    }
    double *Bd = malloc(sizeof(double) * nE);
    if (!Bd) return -1;
    for (size_t i = 0; i < nE; i++) Bd[i] = base[i];
    cblas_dgemm(CblasRowMajor, trans ? CblasTrans : CblasNoTrans, CblasNoTrans, E, r, E, 1.0, Bd, E, X, r, 0.0, out, r);
    free(Bd);
    return 0;
}

int vene_orthogonal_weight(const float *original, const float *base, int E, int r, float *W, vene_error *err) {
    if (!original || !base || !W)
        return vene_errorf(err, VENE_ERR_ARG, "orthogonal parametrisation: NULL original, base or output");
    if (E <= 0 || r <= 0 || r > E)
        return vene_errorf(err, VENE_ERR_ARG,
                           "orthogonal parametrisation: original is %d x %d; expected E x r with 0 < r <= E", E, r);
    size_t nE = (size_t)E * E, nr = (size_t)E * r;
    for (size_t i = 0; i < nr; i++)
        if (!isfinite(original[i]))
            return vene_errorf(err, VENE_ERR_ARG, "orthogonal parametrisation: original (%d x %d) has a non-finite "
                               "value at %zu", E, r, i);
    double *O = malloc(sizeof(double) * nr), *Q = malloc(sizeof(double) * nr);
    double *Wd = malloc(sizeof(double) * nr);
    double *A = NULL, *tau = NULL;
    int rc = VENE_OK;
    if (!O || !Q || !Wd) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "orthogonal parametrisation: out of memory for %d x %d", E, r);
        goto done;
    }
    for (size_t i = 0; i < nr; i++) O[i] = original[i];
    if (r == E) {
        A = malloc(sizeof(double) * nE);
        if (!A) {
            rc = vene_errorf(err, VENE_ERR_MEMORY, "orthogonal parametrisation: out of memory for %d x %d", E, E);
            goto done;
        }
        for (int i = 0; i < E; i++)
            for (int j = 0; j < E; j++) {
                double v = 0.0;
                if (i > j) v = O[(size_t)i * E + j];
                else if (i < j) v = -O[(size_t)j * E + i];
                A[(size_t)i * E + j] = v;
            }
        rc = iv_expm(E, A, Q, err);
        if (rc) {
            vene_error_prefix(err, "orthogonal parametrisation");
            goto done;
        }
    } else {
        tau = malloc(sizeof(double) * (size_t)r);
        if (!tau) {
            rc = vene_errorf(err, VENE_ERR_MEMORY, "orthogonal parametrisation: out of memory for %d x %d", E, r);
            goto done;
        }
        for (int j = 0; j < r; j++) {
            double ss = 0.0;
            for (int i = j + 1; i < E; i++) ss += O[(size_t)i * r + j] * O[(size_t)i * r + j];
            tau[j] = 2.0 / (1.0 + ss);
        }
        if (iv_householder_q(E, r, O, r, tau, Q) != 0) {
            rc = vene_errorf(err, VENE_ERR_MEMORY, "orthogonal parametrisation: out of memory for %d x %d", E, r);
            goto done;
        }
        for (int j = 0; j < r; j++) {
            double d = O[(size_t)j * r + j];   /* torch: X.diagonal().int(), truncation */
            double s = d >= (double)INT_MAX ? (double)INT_MAX : d <= (double)INT_MIN ? (double)INT_MIN : (double)(int)d;
            for (int i = 0; i < E; i++) Q[(size_t)i * r + j] *= s;
        }
    }
    if (iv_base_times(base, E, r, 0, Q, Wd) != 0) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "orthogonal parametrisation: out of memory for %d x %d", E, E);
        goto done;
    }
    for (size_t i = 0; i < nr; i++) W[i] = (float)Wd[i];
done:
    free(O);
    free(Q);
    free(Wd);
    free(A);
    free(tau);
    return rc;
}

int iv_random_orthogonal(int n, uint64_t seed, double *Q, vene_error *err) {
    if (n <= 0) return vene_errorf(err, VENE_ERR_ARG, "random orthogonal matrix: size %d", n);
    size_t nn = (size_t)n * n;
    double *A = malloc(sizeof(double) * nn), *tau = malloc(sizeof(double) * (size_t)n);
    double *rdiag = malloc(sizeof(double) * (size_t)n), *w = malloc(sizeof(double) * (size_t)n);
    if (!A || !tau || !rdiag || !w) {
        free(A), free(tau), free(rdiag), free(w);
        return vene_errorf(err, VENE_ERR_MEMORY, "random orthogonal matrix: out of memory for %d x %d", n, n);
    }
    vene_rng rng;
    vene_rng_seed(&rng, seed);
    for (size_t i = 0; i < nn; i++) A[i] = vene_rng_normal(&rng);

    /* Householder QR in place: v_j below the diagonal (implicit 1), R on and above it. */
    for (int j = 0; j < n; j++) {
        double alpha = A[(size_t)j * n + j], xn2 = 0.0;
        for (int i = j + 1; i < n; i++) xn2 += A[(size_t)i * n + j] * A[(size_t)i * n + j];
        if (xn2 == 0.0) {
            tau[j] = 0.0;
            rdiag[j] = alpha;
            continue;
        }
        double beta = -copysign(sqrt(alpha * alpha + xn2), alpha);
        tau[j] = (beta - alpha) / beta;
        double sc = 1.0 / (alpha - beta);
        for (int i = j + 1; i < n; i++) A[(size_t)i * n + j] *= sc;
        rdiag[j] = beta;
        A[(size_t)j * n + j] = beta;
        /* A[j:, j+1:] -= tau v (v^T A[j:, j+1:]) */
        for (int c = j + 1; c < n; c++) w[c] = A[(size_t)j * n + c];
        for (int i = j + 1; i < n; i++) {
            double v = A[(size_t)i * n + j];
            for (int c = j + 1; c < n; c++) w[c] += v * A[(size_t)i * n + c];
        }
        for (int c = j + 1; c < n; c++) A[(size_t)j * n + c] -= tau[j] * w[c];
        for (int i = j + 1; i < n; i++) {
            double tv = tau[j] * A[(size_t)i * n + j];
            for (int c = j + 1; c < n; c++) A[(size_t)i * n + c] -= tv * w[c];
        }
    }
    int rc = iv_householder_q(n, n, A, n, tau, Q) == 0
                 ? VENE_OK
                 : vene_errorf(err, VENE_ERR_MEMORY, "random orthogonal matrix: out of memory for %d x %d", n, n);
    if (rc == VENE_OK)
        for (int j = 0; j < n; j++)
            if (rdiag[j] < 0.0)
                for (int i = 0; i < n; i++) Q[(size_t)i * n + j] = -Q[(size_t)i * n + j];
    free(A), free(tau), free(rdiag), free(w);
    return rc;
}
