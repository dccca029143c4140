#include "core/kernels_grad.h"

#include "core/gemm.h"
#include "core/kernels_rows.h"

#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <string.h>

/* C[M x N] += op(A)[M x K] op(B)[K x N]. BLAS runs single-threaded (kernels.c), so large
 * products are split by columns of C over OpenMP's threads, as the forward's are. */
static void gemm_acc(int ta, int tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                     int ldc) {
    enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans, TB = tb ? CblasTrans : CblasNoTrans;
    if (omp_get_max_threads() > 1 && !omp_in_parallel() && (double)M * N * K >= 1e6) {
#pragma omp parallel
        {
            int t = omp_get_thread_num(), nt = omp_get_num_threads();
            int chunk = ((N + nt - 1) / nt + 15) & ~15, n0 = t * chunk;
            int nn = N - n0 < chunk ? N - n0 : chunk;
            if (nn > 0)
                cblas_sgemm(CblasRowMajor, TA, TB, M, nn, K, 1.0f, A, lda, tb ? B + (int64_t)n0 * ldb : B + n0, ldb,
                            1.0f, C + n0, ldc);
        }
    } else {
        cblas_sgemm(CblasRowMajor, TA, TB, M, N, K, 1.0f, A, lda, B, ldb, 1.0f, C, ldc);
    }
}

static void colsum_acc(const float *dy, float *db, int M, int N) {
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) db[j] += dy[(int64_t)i * N + j];
}

/* The activation gradients go through the forward's row-stable products (core/gemm.h),
 * the weight gradients (sums over rows) through BLAS. */
void vk_linear_in_out_backward(const float *dy, const float *x, const float *W, float *dx, float *dW, float *db,
                               int M, int K, int N) {
    if (dx) vk_gemm_nt_acc(dy, N, W, N, dx, K, M, N, K, 1);
    if (dW) gemm_acc(1, 0, K, N, M, x, K, dy, N, dW, N);
    if (db) colsum_acc(dy, db, M, N);
}

void vk_linear_out_in_backward(const float *dy, const float *x, const float *W, float *dx, float *dW, float *db,
                               int M, int K, int N) {
    if (dx) vk_gemm_nn_acc(dy, N, W, K, dx, K, M, N, K, 1);
    if (dW) gemm_acc(1, 0, N, K, M, dy, N, x, K, dW, K);
    if (db) colsum_acc(dy, db, M, N);
}

void vk_layernorm_backward(const float *dy, const float *x, const float *gamma, float *dx, float *dgamma,
                           float *dbeta, int rows, int D, float eps) {
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (int64_t)r * D, *g = dy + (int64_t)r * D;
        double mean = 0, var = 0;
        for (int i = 0; i < D; i++) mean += xr[i];
        mean /= D;
        for (int i = 0; i < D; i++) var += (xr[i] - mean) * (xr[i] - mean);
        var /= D;
        double rstd = 1.0 / sqrt(var + eps);
        /* dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), dxhat = dy * gamma */
        double m1 = 0, m2 = 0;
        for (int i = 0; i < D; i++) {
            double xh = (xr[i] - mean) * rstd, dxh = (double)g[i] * gamma[i];
            m1 += dxh;
            m2 += dxh * xh;
            if (dgamma) dgamma[i] += (float)(g[i] * xh);
            if (dbeta) dbeta[i] += g[i];
        }
        m1 /= D;
        m2 /= D;
        if (dx) {
            float *o = dx + (int64_t)r * D;
            for (int i = 0; i < D; i++) {
                double xh = (xr[i] - mean) * rstd, dxh = (double)g[i] * gamma[i];
                o[i] += (float)(rstd * (dxh - m1 - xh * m2));
            }
        }
    }
}

void vk_gelu_tanh_backward(const float *dy, const float *x, float *dx, int64_t n) {
    const float c = 0.7978845608028654f;
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i], u = c * (v + 0.044715f * v * v * v);
        float t = tanhf(u);
        float du = c * (1.0f + 3.0f * 0.044715f * v * v);
        dx[i] += dy[i] * (0.5f * (1.0f + t) + 0.5f * v * (1.0f - t * t) * du);
    }
}

void vk_silu_backward(const float *dy, const float *x, float *dx, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float s = 1.0f / (1.0f + expf(-x[i]));
        dx[i] += dy[i] * s * (1.0f + x[i] * (1.0f - s));
    }
}

void vk_embed_backward(const float *dy, const int32_t *ids, float *dtable, int n, int D) {
    for (int i = 0; i < n; i++) {
        float *row = dtable + (int64_t)ids[i] * D;
        const float *g = dy + (int64_t)i * D;
        for (int j = 0; j < D; j++) row[j] += g[j];
    }
}

/* The full attention backward is the row-restricted one with every row kept. */
void vk_attn_values_backward(const float *dout, int ldo, const float *probs, const float *v, int ldv, float *dprobs,
                             float *dv, int lddv, int B, int S, int n_head, int n_kv, int hd) {
    int first[B > 0 ? B : 1], start[B + 1];
    vk_rows r;
    memset(first, 0, sizeof first);
    vk_rows_init(&r, B, S, first, start);
    vk_attn_rows_values_backward(&r, dout, ldo, probs, v, ldv, dprobs, dv, lddv, n_head, n_kv, hd);
}

void vk_attn_scores_backward(const float *dprobs, const float *probs, const float *q, int ldq, const float *k,
                             int ldk, float *dq, int lddq, float *dk, int lddk, int B, int S, int n_head, int n_kv,
                             int hd, float scale_div, int window) {
    int first[B > 0 ? B : 1], start[B + 1];
    vk_rows r;
    memset(first, 0, sizeof first);
    vk_rows_init(&r, B, S, first, start);
    vk_attn_rows_scores_backward(&r, dprobs, probs, q, ldq, k, ldk, dq, lddq, dk, lddk, n_head, n_kv, hd, scale_div,
                                 window);
}

void vk_acc(const float *dy, float *dx, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i];
}

void vk_zero(float *x, int64_t n) { memset(x, 0, sizeof(float) * (size_t)n); }

/* ---------------------------------------------------------------- rotary-embedding models */

void vk_rmsnorm_backward(const float *dy, const float *x, const float *w, float offset, float *dx, float *dw,
                         int rows, int D, float eps) {
    /* y = g x r with g = offset + w, r = (mean(x^2) + eps)^-1/2:
     * dx = r (dy g) - x r^3 mean(dy g x), dw += dy x r */
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (int64_t)r * D, *g = dy + (int64_t)r * D;
        double ss = 0, dot = 0;
        for (int i = 0; i < D; i++) ss += (double)xr[i] * xr[i];
        double rstd = 1.0 / sqrt(ss / D + eps);
        for (int i = 0; i < D; i++) {
            dot += (double)g[i] * (offset + w[i]) * xr[i];
            if (dw) dw[i] += (float)(g[i] * xr[i] * rstd);
        }
        if (!dx) continue;
        double c = rstd * rstd * rstd * dot / D;
        float *o = dx + (int64_t)r * D;
        for (int i = 0; i < D; i++) o[i] += (float)(rstd * g[i] * (offset + w[i]) - c * xr[i]);
    }
}

void vk_rope_backward(const float *dy, int ldy, float *dx, int lddx, int n, int n_heads, int hd, int rot,
                      const float *cos_t, const float *sin_t) {
    const int half = rot / 2;
#pragma omp parallel for schedule(static) if ((int64_t)n * n_heads * hd > 65536)
    for (int r = 0; r < n; r++) {
        const float *c = cos_t + (int64_t)r * half, *s = sin_t + (int64_t)r * half;
        for (int h = 0; h < n_heads; h++) {
            const float *g = dy + (int64_t)r * ldy + (int64_t)h * hd;
            float *o = dx + (int64_t)r * lddx + (int64_t)h * hd;
            /* forward: y1 = x1 c - x2 s, y2 = x2 c + x1 s */
            for (int i = 0; i < half; i++) {
                o[i] += g[i] * c[i] + g[i + half] * s[i];
                o[i + half] += g[i + half] * c[i] - g[i] * s[i];
            }
            for (int i = rot; i < hd; i++) o[i] += g[i];
        }
    }
}

void vk_mul_backward(const float *dy, const float *a, const float *b, float *da, float *db, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        if (da) da[i] += dy[i] * b[i];
        if (db) db[i] += dy[i] * a[i];
    }
}

void vk_gelu_erf_backward(const float *dy, const float *x, float *dx, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) {
        float v = x[i];
        float d = 0.5f * (1.0f + erff(v * 0.70710678118654752f)) + v * expf(-0.5f * v * v) * 0.3989422804014327f;
        dx[i] += dy[i] * d;
    }
}

void vk_llama_attn_scores_backward(const float *dprobs, const float *probs, const float *q, int ldq, const float *k,
                                   int ldk, float *dq, int lddq, float *dk, int lddk, int B, int S, int n_head,
                                   int n_kv, int hd, float scale) {
    const int group = n_head / n_kv;
    /* rows of dscores per block, so that a block (rows x S floats) stays within 128 KiB of stack */
    const int R = S >= 32768 ? 1 : S >= 1024 ? 32768 / S : 32;
    /* the heads of one kv group add into the same dk rows: one thread per (example, group) */
#pragma omp parallel for collapse(2) schedule(static) if (B * n_kv > 1 && (int64_t)B * n_head * S * S * hd > 65536)
    for (int b = 0; b < B; b++)
        for (int kv = 0; kv < n_kv; kv++) {
            float ds[R * S];
            const float *kb = k + (int64_t)b * S * ldk + (int64_t)kv * hd;
            float *dkb = dk ? dk + (int64_t)b * S * lddk + (int64_t)kv * hd : NULL;
            for (int h = kv * group; h < (kv + 1) * group; h++) {
                const float *P = probs + ((int64_t)b * n_head + h) * S * S;
                const float *G = dprobs + ((int64_t)b * n_head + h) * S * S;
                const float *qb = q + (int64_t)b * S * ldq + (int64_t)h * hd;
                float *dqb = dq ? dq + (int64_t)b * S * lddq + (int64_t)h * hd : NULL;
                for (int i0 = 0; i0 < S; i0 += R) {
                    int nr = S - i0 < R ? S - i0 : R, ncol = 0; /* keys up to the last nonzero weight */
                    for (int r = 0; r < nr; r++) {
                        const float *p = P + (int64_t)(i0 + r) * S, *g = G + (int64_t)(i0 + r) * S;
                        float *d = ds + (int64_t)r * S;
                        double dot = 0;
                        for (int j = 0; j < S; j++) dot += (double)p[j] * g[j];
                        for (int j = 0; j < S; j++) {
                            d[j] = p[j] * (g[j] - (float)dot) * scale;
                            if (p[j] != 0.0f && j >= ncol) ncol = j + 1;
                        }
                    }
                    if (ncol == 0) continue;
                    /* dq[i] += sum_j ds[i][j] k[j];  dk[j] += sum_i ds[i][j] q[i] */
                    if (dqb)
                        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nr, hd, ncol, 1.0f, ds, S, kb, ldk, 1.0f,
                                    dqb + (int64_t)i0 * lddq, lddq);
                    if (dkb)
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, ncol, hd, nr, 1.0f, ds, S,
                                    qb + (int64_t)i0 * ldq, ldq, 1.0f, dkb, lddk);
                }
            }
        }
}
