#include "core/kernels_rows.h"

#include <cblas.h>
#include <string.h>

int vk_rows_unpadded(int B, int S, const int *first, const uint8_t *mask, int *out) {
    int any = 0;
    for (int b = 0; b < B; b++) {
        out[b] = first[b];
        for (int s = 0; mask && s < first[b]; s++)
            if (!mask[(int64_t)b * S + s]) out[b] = 0;
        any |= out[b] > 0;
    }
    return any;
}

int vk_rows_init(vk_rows *r, int B, int S, const int *first, int *start) {
    r->B = B, r->S = S, r->first = first, r->start = start;
    start[0] = 0;
    for (int b = 0; b < B; b++) start[b + 1] = start[b] + (S - first[b]);
    return start[B];
}

void vk_rows_gather(const vk_rows *r, const float *full, int ldf, int W, float *compact) {
    for (int b = 0; b < r->B; b++)
        for (int c = r->start[b]; c < r->start[b + 1]; c++)
            memcpy(compact + (int64_t)c * W, full + (vk_rows_full(r, b) + (c - r->start[b])) * ldf,
                   sizeof(float) * (size_t)W);
}

void vk_rows_scatter(const vk_rows *r, const float *compact, int W, float *full) {
    for (int b = 0; b < r->B; b++) {
        float *fb = full + (int64_t)b * r->S * W;
        int64_t skip = (int64_t)r->first[b] * W, kept = (int64_t)(r->S - r->first[b]) * W;
        memset(fb, 0, sizeof(float) * (size_t)skip);
        memcpy(fb + skip, compact + (int64_t)r->start[b] * W, sizeof(float) * (size_t)kept);
    }
}

void vk_attn_rows_values_backward(const vk_rows *r, const float *dout, int ldo, const float *probs, const float *v,
                                  int ldv, float *dprobs, float *dv, int lddv, int n_head, int n_kv, int hd) {
    const int B = r->B, S = r->S, group = n_head / n_kv, rows = r->start[B];
    /* the heads of one kv group add into the same dv rows: one thread per (example, group) */
#pragma omp parallel for collapse(2) schedule(static) if (B * n_kv > 1 && (int64_t)rows * n_head * S * hd > (1 << 17))
    for (int b = 0; b < B; b++)
        for (int kv = 0; kv < n_kv; kv++) {
            const int p = r->first[b], R = S - p, c0 = r->start[b];
            const float *vb = v + (int64_t)b * S * ldv + (int64_t)kv * hd;
            float *dvb = dv ? dv + (int64_t)c0 * lddv + (int64_t)kv * hd : NULL;
            for (int h = kv * group; h < (kv + 1) * group; h++) {
                const float *P = probs + ((int64_t)b * n_head + h) * S * S;
                const float *go = dout + (int64_t)c0 * ldo + (int64_t)h * hd;
                /* dprobs[i][j] = dout_i . v_j;  dv_j = sum_{i >= j} P[i][j] dout_i (both i, j >= p) */
                if (dprobs)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, R, S, hd, 1.0f, go, ldo, vb, ldv, 1.0f,
                                dprobs + ((int64_t)n_head * c0 + (int64_t)h * R) * S, S);
                if (dvb)
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, R, hd, R, 1.0f, P + (int64_t)p * S + p, S, go,
                                ldo, 1.0f, dvb, lddv);
            }
        }
}

void vk_attn_rows_scores_backward(const vk_rows *r, const float *dprobs, const float *probs_sm, const float *q, int ldq,
                                  const float *k, int ldk, float *dq, int lddq, float *dk, int lddk, int n_head,
                                  int n_kv, int hd, float scale_div, int window) {
    const int B = r->B, S = r->S, group = n_head / n_kv, rows = r->start[B];
    const float inv = 1.0f / scale_div;
    /* the heads of one kv group add into the same dk rows: one thread per (example, group) */
#pragma omp parallel for collapse(2) schedule(static) if (B * n_kv > 1 && (int64_t)rows * n_head * S * hd > (1 << 17))
    for (int b = 0; b < B; b++)
        for (int kv = 0; kv < n_kv; kv++) {
            const int p = r->first[b], R = S - p, c0 = r->start[b];
            const int64_t koff = (int64_t)kv * hd;
            const float *kb = k + (int64_t)b * S * ldk + koff;
            for (int h = kv * group; h < (kv + 1) * group; h++) {
                const float *Psm = probs_sm + ((int64_t)b * n_head + h) * S * S;
                const float *G = dprobs + ((int64_t)n_head * c0 + (int64_t)h * R) * S;
                /* ds = P (dprobs - <P, dprobs>) / scale_div over the visible keys;
                 * dq_i += sum_j ds_j k_j (every j), dk_j += ds_j q_i (kept j only) */
                for (int i = p; i < S; i++) {
                    const float *pr = Psm + (int64_t)i * S, *g = G + (int64_t)(i - p) * S;
                    const float *qi = q + ((int64_t)b * S + i) * ldq + (int64_t)h * hd;
                    float *dqi = dq ? dq + ((int64_t)c0 + i - p) * lddq + (int64_t)h * hd : NULL;
                    double dot = 0;
                    for (int j = 0; j < S; j++) dot += (double)pr[j] * g[j];
                    for (int j = 0; j <= i; j++) {
                        if (window > 0 && i - j >= window) continue;
                        float ds = pr[j] * (g[j] - (float)dot) * inv;
                        if (ds == 0.0f) continue;
                        const float *kj = kb + (int64_t)j * ldk;
                        if (dqi)
                            for (int d = 0; d < hd; d++) dqi[d] += ds * kj[d];
                        if (j < p || !dk) continue;
                        float *dkj = dk + ((int64_t)c0 + j - p) * lddk + koff;
                        for (int d = 0; d < hd; d++) dkj[d] += ds * qi[d];
                    }
                }
            }
        }
}

void vk_attn_rows_backward(const vk_rows *r, const float *dout, int ldo, const float *probs, const float *probs_sm,
                           const float *q, int ldq, const float *k, int ldk, const float *v, int ldv, float *dprobs,
                           float *dq, int lddq, float *dk, int lddk, float *dv, int lddv, int n_head, int n_kv,
                           int hd, float scale_div, int window) {
    memset(dprobs, 0, sizeof(float) * (size_t)n_head * (size_t)r->start[r->B] * (size_t)r->S);
    vk_attn_rows_values_backward(r, dout, ldo, probs, v, ldv, dprobs, dv, lddv, n_head, n_kv, hd);
    vk_attn_rows_scores_backward(r, dprobs, probs_sm, q, ldq, k, ldk, dq, lddq, dk, lddk, n_head, n_kv, hd, scale_div,
                                 window);
}
