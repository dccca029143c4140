#include "core/kernels_grad.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

void vk_linear_in_out_backward(const float *dy, const float *x, const float *W, float *dx, float *dW, float *db,
                               int M, int K, int N) {
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, K, N, 1.0f, dy, N, W, N, 1.0f, dx, K);
    if (dW) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, N, M, 1.0f, x, K, dy, N, 1.0f, dW, N);
    if (db)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) db[j] += dy[(int64_t)i * N + j];
}

void vk_linear_out_in_backward(const float *dy, const float *x, const float *W, float *dx, float *dW, float *db,
                               int M, int K, int N) {
    if (dx) cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, K, N, 1.0f, dy, N, W, K, 1.0f, dx, K);
    if (dW) cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, N, K, M, 1.0f, dy, N, x, K, 1.0f, dW, K);
    if (db)
        for (int i = 0; i < M; i++)
            for (int j = 0; j < N; j++) db[j] += dy[(int64_t)i * N + j];
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

void vk_attn_values_backward(const float *dout, int ldo, const float *probs, const float *v, int ldv, float *dprobs,
                             float *dv, int lddv, int B, int S, int n_head, int n_kv, int hd) {
    int group = n_head / n_kv;
    /* heads of one kv group add into the same dv rows: parallel over examples only */
#pragma omp parallel for schedule(static) if ((int64_t)B * n_head * S * S * hd > (1 << 21))
    for (int b = 0; b < B; b++)
        for (int h = 0; h < n_head; h++) {
            const float *P = probs + ((int64_t)b * n_head + h) * S * S;
            const float *go = dout + (int64_t)b * S * ldo + (int64_t)h * hd;
            int64_t voff = (int64_t)(h / group) * hd;
            if (dprobs)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, S, S, hd, 1.0f, go, ldo,
                            v + (int64_t)b * S * ldv + voff, ldv, 1.0f, dprobs + ((int64_t)b * n_head + h) * S * S, S);
            if (dv)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, hd, S, 1.0f, P, S, go, ldo, 1.0f,
                            dv + (int64_t)b * S * lddv + voff, lddv);
        }
}

void vk_attn_scores_backward(const float *dprobs, const float *probs, const float *q, int ldq, const float *k,
                             int ldk, float *dq, int lddq, float *dk, int lddk, int B, int S, int n_head, int n_kv,
                             int hd, float scale_div, int window) {
    int group = n_head / n_kv;
    float inv = 1.0f / scale_div;
#pragma omp parallel for schedule(static) if ((int64_t)B * n_head * S * S * hd > (1 << 21))
    for (int b = 0; b < B; b++) {
        float ds[S > 0 ? S : 1];
        for (int h = 0; h < n_head; h++) {
            const float *P = probs + ((int64_t)b * n_head + h) * S * S;
            const float *G = dprobs + ((int64_t)b * n_head + h) * S * S;
            int64_t koff = (int64_t)(h / group) * hd;
            for (int i = 0; i < S; i++) {
                const float *p = P + (int64_t)i * S, *g = G + (int64_t)i * S;
                double dot = 0;
                for (int j = 0; j < S; j++) dot += (double)p[j] * g[j];
                for (int j = 0; j < S; j++) {
                    int allowed = j <= i && (window <= 0 || i - j < window);
                    ds[j] = allowed ? p[j] * (g[j] - (float)dot) * inv : 0.0f;
                }
                /* dq_i += sum_j ds_j k_j ;  dk_j += ds_j q_i */
                float *dqi = dq ? dq + ((int64_t)b * S + i) * lddq + (int64_t)h * hd : NULL;
                const float *qi = q + ((int64_t)b * S + i) * ldq + (int64_t)h * hd;
                for (int j = 0; j <= i; j++) {
                    if (ds[j] == 0.0f) continue;
                    const float *kj = k + ((int64_t)b * S + j) * ldk + koff;
                    if (dqi)
                        for (int d = 0; d < hd; d++) dqi[d] += ds[j] * kj[d];
                    if (dk) {
                        float *dkj = dk + ((int64_t)b * S + j) * lddk + koff;
                        for (int d = 0; d < hd; d++) dkj[d] += ds[j] * qi[d];
                    }
                }
            }
        }
    }
}

void vk_acc(const float *dy, float *dx, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i];
}
