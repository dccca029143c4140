#include "core/kernels_llama.h"

#include <cblas.h>
#include <float.h>
#include <math.h>

static void rmsnorm(const float *x, const float *w, int one_plus, float *out, int rows, int D, float eps) {
#pragma omp parallel for schedule(static) if ((int64_t)rows * D > 32768)
    for (int r = 0; r < rows; r++) {
        const float *xr = x + (int64_t)r * D;
        float *o = out + (int64_t)r * D;
        double ss = 0;
        for (int i = 0; i < D; i++) ss += (double)xr[i] * xr[i];
        float var = (float)(ss / D);
        float rstd = 1.0f / sqrtf(var + eps);
        if (one_plus)
            for (int i = 0; i < D; i++) o[i] = (1.0f + w[i]) * (xr[i] * rstd);
        else
            for (int i = 0; i < D; i++) o[i] = w[i] * (xr[i] * rstd);
    }
}

void vk_rmsnorm(const float *x, const float *w, float *out, int rows, int D, float eps) {
    rmsnorm(x, w, 0, out, rows, D, eps);
}

void vk_rmsnorm_1p(const float *x, const float *w, float *out, int rows, int D, float eps) {
    rmsnorm(x, w, 1, out, rows, D, eps);
}

void vk_rope_inv_freq(float *inv, int dim, double theta, double linear_factor) {
    const float base = (float)theta, fdim = (float)dim;
    for (int i = 0; i < dim / 2; i++) {
        float e = (float)(2 * i) / fdim;
        float v = 1.0f / powf(base, e);
        if (linear_factor != 1.0) v = v / (float)linear_factor;
        inv[i] = v;
    }
}

void vk_rope_tables(const float *inv, int half, const int32_t *pos, int n, float *cos_t, float *sin_t) {
    for (int r = 0; r < n; r++) {
        float p = (float)(pos ? pos[r] : r);
        for (int i = 0; i < half; i++) {
            float f = inv[i] * p;
            cos_t[(int64_t)r * half + i] = cosf(f);
            sin_t[(int64_t)r * half + i] = sinf(f);
        }
    }
}

void vk_rope_apply_partial(float *x, int ld, int n, int n_heads, int hd, int rot, const float *cos_t,
                           const float *sin_t) {
    const int half = rot / 2;
#pragma omp parallel for schedule(static) if ((int64_t)n * n_heads * rot > 65536)
    for (int r = 0; r < n; r++) {
        const float *c = cos_t + (int64_t)r * half, *s = sin_t + (int64_t)r * half;
        for (int h = 0; h < n_heads; h++) {
            float *v = x + (int64_t)r * ld + (int64_t)h * hd;
            for (int i = 0; i < half; i++) {
                float x1 = v[i], x2 = v[i + half];
                v[i] = x1 * c[i] + (-x2) * s[i];
                v[i + half] = x2 * c[i] + x1 * s[i];
            }
        }
    }
}

void vk_rope_apply(float *x, int ld, int n, int n_heads, int hd, const float *cos_t, const float *sin_t) {
    vk_rope_apply_partial(x, ld, n, n_heads, hd, hd, cos_t, sin_t);
}

void vk_silu(const float *x, float *out, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) out[i] = x[i] / (1.0f + expf(-x[i]));
}

void vk_gelu_erf(const float *x, float *out, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) out[i] = 0.5f * x[i] * (1.0f + erff(x[i] * 0.70710678118654752f));
}

void vk_mul(const float *a, const float *b, float *out, int64_t n) {
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) out[i] = a[i] * b[i];
}

/* How masked keys are scored. LLaMA family: the 4-D mask adds float32 min once to every
 * hidden key (future, out of the sliding window, or padding). GPT-NeoX: future keys are
 * first replaced by min and then get min added (-inf), padding keys get min added. */
enum { MASK_LLAMA, MASK_NEOX };

static void attn_scores(const float *q, int ldq, const float *k, int ldk, float *probs, int B, int S, int n_head,
                        int n_kv, int hd, float scale, int divide, const uint8_t *mask, int window, int style) {
    const float fmin = -FLT_MAX;
    const int group = n_head / n_kv;
#pragma omp parallel for collapse(2) schedule(static) if (B * n_head > 1 && (int64_t)S * S * hd > 4096)
    for (int b = 0; b < B; b++) {
        for (int h = 0; h < n_head; h++) {
            const float *qb = q + (int64_t)b * S * ldq + (int64_t)h * hd;
            const float *kb = k + (int64_t)b * S * ldk + (int64_t)(h / group) * hd;
            float *P = probs + ((int64_t)b * n_head + h) * S * S;
            /* NeoX scales inside the product (baddbmm alpha); LLaMA divides afterwards */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, S, S, hd, divide ? 1.0f : scale, qb, ldq, kb, ldk,
                        0.0f, P, S);
            const uint8_t *m = mask ? mask + (int64_t)b * S : NULL;
            for (int i = 0; i < S; i++) {
                float *row = P + (int64_t)i * S;
                float mx = -INFINITY;
                for (int j = 0; j < S; j++) {
                    float s = divide ? row[j] / scale : row[j];
                    int pad = m && !m[j];
                    if (style == MASK_NEOX) {
                        if (j > i) s = -INFINITY; /* min + min overflows */
                        else if (pad) s += fmin;
                    } else if (j > i || (window > 0 && j <= i - window) || pad) {
                        s += fmin; /* the 4-D mask holds min once, never 2*min */
                    }
                    row[j] = s;
                    if (s > mx) mx = s;
                }
                float sum = 0;
                for (int j = 0; j < S; j++) {
                    float e = expf(row[j] - mx);
                    row[j] = e;
                    sum += e;
                }
                float inv = 1.0f / sum;
                for (int j = 0; j < S; j++) row[j] *= inv;
            }
        }
    }
}

void vk_llama_attn_scores(const float *q, int ldq, const float *k, int ldk, float *probs, int B, int S, int n_head,
                          int n_kv, int hd, float scale_div, const uint8_t *mask) {
    attn_scores(q, ldq, k, ldk, probs, B, S, n_head, n_kv, hd, scale_div, 1, mask, 0, MASK_LLAMA);
}

void vk_llama_attn_scores_window(const float *q, int ldq, const float *k, int ldk, float *probs, int B, int S,
                                 int n_head, int n_kv, int hd, float scale_div, const uint8_t *mask, int window) {
    attn_scores(q, ldq, k, ldk, probs, B, S, n_head, n_kv, hd, scale_div, 1, mask, window, MASK_LLAMA);
}

void vk_neox_attn_scores(const float *q, int ldq, const float *k, int ldk, float *probs, int B, int S, int n_head,
                         int hd, float norm_factor, const uint8_t *mask) {
    attn_scores(q, ldq, k, ldk, probs, B, S, n_head, n_head, hd, norm_factor, 0, mask, 0, MASK_NEOX);
}
