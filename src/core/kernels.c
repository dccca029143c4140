#include "core/kernels.h"

#include "core/gemm.h"

#include <cblas.h>
#include <float.h>
#include <math.h>
#include <omp.h>
#include <string.h>

void vk_blas_single_thread(void) { openblas_set_num_threads(1); }

/* The forward's products are row-stable (core/gemm.h): a row's result never depends on the
 * rest of the batch, so sweeps can batch cells and still equal the cell-by-cell runs. */
void vk_linear_in_out(const float *x, const float *W, const float *bias, float *out, int M, int K, int N) {
    vk_gemm_nn(x, K, W, N, bias, out, N, M, K, N);
}

void vk_linear_out_in(const float *x, const float *W, const float *bias, float *out, int M, int K, int N) {
    vk_gemm_nt(x, K, W, K, bias, out, N, M, K, N);
}

void vk_layernorm(const float *x, const float *gamma, const float *beta, float *out, int rows, int D, float eps) {
#pragma omp parallel for schedule(static) if (rows * D > 32768)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (int64_t)r * D;
        float *o = out + (int64_t)r * D;
        double mean = 0, var = 0;
        for (int i = 0; i < D; i++) mean += xr[i];
        mean /= D;
        for (int i = 0; i < D; i++) {
            double d = xr[i] - mean;
            var += d * d;
        }
        var /= D;
        float rstd = (float)(1.0 / sqrt(var + eps));
        float m = (float)mean;
        for (int i = 0; i < D; i++) o[i] = (xr[i] - m) * rstd * gamma[i] + beta[i];
    }
}

void vk_add(const float *a, const float *b, float *out, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void vk_embed(const float *table, const int32_t *ids, float *out, int n, int D) {
    for (int i = 0; i < n; i++) memcpy(out + (int64_t)i * D, table + (int64_t)ids[i] * D, sizeof(float) * (size_t)D);
}

void vk_attn_scores_kv(const float *q, int ldq, const vk_kv *kv, float *probs, int B, int Sq, int n_head, int n_kv,
                       int hd, float scale_div, int window) {
    const float fmin = -FLT_MAX;
    const int group = n_head / n_kv, Sk = kv->n, off = kv->off;
/* a thread team pays off from about 256K multiply-adds (a batch of 8 x 16 tokens: 0.41 -> 0.30 ms
 * on two threads); smaller calls (one short prompt, a decoding step) stay on one thread */
#pragma omp parallel for collapse(2) schedule(static) if ((int64_t)B * n_head * Sq * Sk * hd > (1 << 18))
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < n_head; h++) {
            const float *qb = q + (int64_t)b * Sq * ldq + (int64_t)h * hd;
            const float *kb = kv->k + (int64_t)b * kv->bstride + (int64_t)(h / group) * hd;
            float *P = probs + ((int64_t)b * n_head + h) * Sq * Sk;
            vk_gemm_nt(qb, ldq, kb, kv->ld, NULL, P, Sk, Sq, hd, Sk);
            const uint8_t *m = kv->mask ? kv->mask + (int64_t)b * kv->ldm : NULL;
            for (int i = 0; i < Sq; i++) {
                float *row = P + (int64_t)i * Sk;
                const int qi = off + i; /* the query's own key index */
                float mx = -INFINITY;
                for (int j = 0; j < Sk; j++) {
                    int allowed = j <= qi && (window <= 0 || qi - j < window);
                    float s = allowed ? row[j] / scale_div : fmin;
                    if (m && !m[j]) s += fmin; /* float32: fmin + fmin = -inf, as in torch */
                    row[j] = s;
                    if (s > mx) mx = s;
                }
                float sum = 0;
                for (int j = 0; j < Sk; j++) {
                    float e = expf(row[j] - mx);
                    row[j] = e;
                    sum += e;
                }
                float inv = 1.0f / sum;
                for (int j = 0; j < Sk; j++) row[j] *= inv;
            }
        }
    }
}

void vk_attn_values_kv(const float *probs, const vk_kv *kv, float *out, int ldo, int B, int Sq, int n_head, int n_kv,
                       int hd) {
    const int group = n_head / n_kv, Sk = kv->n;
#pragma omp parallel for collapse(2) schedule(static) if ((int64_t)B * n_head * Sq * Sk * hd > (1 << 18))
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < n_head; h++) {
            const float *P = probs + ((int64_t)b * n_head + h) * Sq * Sk;
            const float *vb = kv->v + (int64_t)b * kv->bstride + (int64_t)(h / group) * hd;
            float *ob = out + (int64_t)b * Sq * ldo + (int64_t)h * hd;
            vk_gemm_nn(P, Sk, vb, kv->ld, NULL, ob, ldo, Sq, Sk, hd);
        }
    }
}

void vk_attn_scores(const float *q, int ldq, const float *k, int ldk, float *probs, int B, int S,
                    int n_head, int n_kv, int hd, float scale_div, const uint8_t *mask, int window) {
    vk_kv kv = {k, NULL, ldk, (int64_t)S * ldk, S, 0, mask, S};
    vk_attn_scores_kv(q, ldq, &kv, probs, B, S, n_head, n_kv, hd, scale_div, window);
}

void vk_attn_values(const float *probs, const float *v, int ldv, float *out, int ldo, int B, int S,
                    int n_head, int n_kv, int hd) {
    vk_kv kv = {NULL, v, ldv, (int64_t)S * ldv, S, 0, NULL, S};
    vk_attn_values_kv(probs, &kv, out, ldo, B, S, n_head, n_kv, hd);
}
