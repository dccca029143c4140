/* The backward kernels of the rotary-embedding models (LLaMA family, GPT-NeoX) against
 * central finite differences of their forward kernels (kernels_llama.h): RMSNorm in both
 * forms, RoPE (full and partial, strided), the SwiGLU / GeGLU products, SiLU and exact
 * GELU, attention scores with GQA, sliding window, padding and NeoX's scaling, and the
 * thread-split linear backward against a plain double-precision product. */
#include <omp.h>
#include <stdio.h>

#include "core/kernels.h"
#include "core/kernels_grad.h"
#include "core/kernels_llama.h"
#include "fd_check.h"

static double worst_all;
static void note(double e) { worst_all = e > worst_all ? e : worst_all; }

/* ---- RMSNorm, Llama's w * x_hat and Gemma's (1 + w) * x_hat */
typedef struct { const float *x, *w; int rows, D, one_plus; } rms_ctx;
static void rms_fwd(void *c, float *out) {
    rms_ctx *r = c;
    if (r->one_plus) vk_rmsnorm_1p(r->x, r->w, out, r->rows, r->D, 1e-5f);
    else vk_rmsnorm(r->x, r->w, out, r->rows, r->D, 1e-5f);
}
static void test_rmsnorm(int one_plus) {
    int R = 3, D = 8;
    float *x = rnd(R * D, 2), *w = rnd(D, 1), *r = rnd(R * D, 1), *dx = zeros(R * D), *dw = zeros(D);
    rms_ctx c = {x, w, R, D, one_plus};
    vk_rmsnorm_backward(r, x, w, one_plus ? 1.0f : 0.0f, dx, dw, R, D, 1e-5f);
    note(check_fd(one_plus ? "rmsnorm (1 + w) dx" : "rmsnorm dx", rms_fwd, &c, x, R * D, dx, r, R * D));
    note(check_fd(one_plus ? "rmsnorm (1 + w) dw" : "rmsnorm dw", rms_fwd, &c, w, D, dw, r, R * D));
    /* NULL gradients are skipped, and dw alone matches */
    float *dw2 = zeros(D);
    vk_rmsnorm_backward(r, x, w, one_plus ? 1.0f : 0.0f, NULL, dw2, R, D, 1e-5f);
    CHECK(memcmp(dw, dw2, sizeof(float) * (size_t)D) == 0);
    free(x), free(w), free(r), free(dx), free(dw), free(dw2);
}

/* ---- RoPE: rows of `heads` heads with a row stride wider than the heads */
typedef struct { const float *x, *cos_t, *sin_t; int n, ld, heads, hd, rot; } rope_ctx;
static void rope_fwd(void *c, float *out) {
    rope_ctx *r = c;
    memcpy(out, r->x, sizeof(float) * (size_t)r->n * r->ld);
    vk_rope_apply_partial(out, r->ld, r->n, r->heads, r->hd, r->rot, r->cos_t, r->sin_t);
}
static void test_rope(int rot) {
    int n = 3, heads = 2, hd = 8, ld = heads * hd + 3, half = rot / 2;
    int32_t pos[3] = {0, 5, 2};
    float inv[4], cos_t[12], sin_t[12];
    vk_rope_inv_freq(inv, rot, 100.0, 1.0);
    vk_rope_tables(inv, half, pos, n, cos_t, sin_t);
    float *x = rnd(n * ld, 1), *r = rnd(n * ld, 1), *dx = zeros(n * ld);
    for (int i = 0; i < n; i++) /* the columns past the heads are not the kernel's: no loss there */
        for (int j = heads * hd; j < ld; j++) r[i * ld + j] = 0;
    rope_ctx c = {x, cos_t, sin_t, n, ld, heads, hd, rot};
    vk_rope_backward(r, ld, dx, ld, n, heads, hd, rot, cos_t, sin_t);
    char nm[48];
    snprintf(nm, sizeof nm, "rope rot=%d of hd=%d", rot, hd);
    note(check_fd(nm, rope_fwd, &c, x, n * ld, dx, r, n * ld));
    free(x), free(r), free(dx);
}

/* ---- element-wise: activations and the gated products act(gate) * up */
enum { A_SILU, A_GELU_ERF, A_GELU_TANH };
typedef struct { const float *g, *u; int n, act; } glu_ctx;
static void act_fwd(int act, const float *x, float *out, int n) {
    if (act == A_SILU) vk_silu(x, out, n);
    else if (act == A_GELU_ERF) vk_gelu_erf(x, out, n);
    else vk_gelu_tanh(x, out, n);
}
static void act_only_fwd(void *c, float *out) {
    glu_ctx *e = c;
    act_fwd(e->act, e->g, out, e->n);
}
static void glu_fwd(void *c, float *out) {
    glu_ctx *e = c;
    act_fwd(e->act, e->g, out, e->n);
    vk_mul(out, e->u, out, e->n);
}
static void act_bwd(int act, const float *dy, const float *x, float *dx, int n) {
    if (act == A_SILU) vk_silu_backward(dy, x, dx, n);
    else if (act == A_GELU_ERF) vk_gelu_erf_backward(dy, x, dx, n);
    else vk_gelu_tanh_backward(dy, x, dx, n);
}
static void test_glu(int act) {
    static const char *const names[] = {"SwiGLU", "GeGLU (erf)", "GeGLU (tanh)"};
    int n = 40;
    float *g = rnd(n, 4), *u = rnd(n, 2), *r = rnd(n, 1), *a = zeros(n);
    float *dact = zeros(n), *dg = zeros(n), *du = zeros(n), *dg_only = zeros(n);
    glu_ctx c = {g, u, n, act};
    act_bwd(act, r, g, dg_only, n);
    char nm[64];
    snprintf(nm, sizeof nm, "%s activation", names[act]);
    note(check_fd(nm, act_only_fwd, &c, g, n, dg_only, r, n));
    act_fwd(act, g, a, n);
    vk_mul_backward(r, a, u, dact, du, n);
    act_bwd(act, dact, g, dg, n);
    snprintf(nm, sizeof nm, "%s d gate", names[act]);
    note(check_fd(nm, glu_fwd, &c, g, n, dg, r, n));
    snprintf(nm, sizeof nm, "%s d up", names[act]);
    note(check_fd(nm, glu_fwd, &c, u, n, du, r, n));
    free(g), free(u), free(r), free(a), free(dact), free(dg), free(du), free(dg_only);
}

/* ---- attention: scores (LLaMA or NeoX form) + values over a fused q|k|v buffer */
typedef struct {
    float *qkv, *probs;
    const uint8_t *mask;
    int B, S, H, KV, hd, window, neox;
} att_ctx;
static const float SCALE_DIV = 1.7f;
static void att_fwd(void *c, float *out) {
    att_ctx *a = c;
    int Dq = a->H * a->hd, Dk = a->KV * a->hd, ld = Dq + 2 * Dk;
    if (a->neox)
        vk_neox_attn_scores(a->qkv, ld, a->qkv + Dq, ld, a->probs, a->B, a->S, a->H, a->hd, 1.0f / SCALE_DIV, a->mask);
    else
        vk_llama_attn_scores_window(a->qkv, ld, a->qkv + Dq, ld, a->probs, a->B, a->S, a->H, a->KV, a->hd, SCALE_DIV,
                                    a->mask, a->window);
    vk_attn_values(a->probs, a->qkv + Dq + Dk, ld, out, Dq, a->B, a->S, a->H, a->KV, a->hd);
}
/* mask_kind 0: none; 1: example 1 right-padded by one; 2: example 1 left-padded by two,
 * whose first two queries see only padding (uniform rows, which autograd differentiates
 * as if unmasked while finite differences see a constant): those rows get no loss. */
static void test_attention(int B, int S, int H, int KV, int window, int mask_kind, int neox) {
    int hd = 3, Dq = H * hd, Dk = KV * hd, ld = Dq + 2 * Dk;
    uint8_t *mask = malloc((size_t)B * S);
    for (int i = 0; i < B * S; i++) mask[i] = 1;
    if (mask_kind == 1) mask[2 * S - 1] = 0;
    if (mask_kind == 2) mask[S] = mask[S + 1] = 0;
    float *qkv = rnd(B * S * ld, 1), *r = rnd(B * S * Dq, 1), *dqkv = zeros(B * S * ld);
    if (mask_kind == 2)
        for (int j = 0; j < 2 * Dq; j++) r[S * Dq + j] = 0;
    float *probs = zeros(B * H * S * S), *dprobs = zeros(B * H * S * S), *out = zeros(B * S * Dq);
    att_ctx c = {qkv, probs, mask_kind ? mask : NULL, B, S, H, KV, hd, window, neox};
    att_fwd(&c, out);
    vk_attn_values_backward(r, Dq, probs, qkv + Dq + Dk, ld, dprobs, dqkv + Dq + Dk, ld, B, S, H, KV, hd);
    vk_llama_attn_scores_backward(dprobs, probs, qkv, ld, qkv + Dq, ld, dqkv, ld, dqkv + Dq, ld, B, S, H, KV, hd,
                                  1.0f / SCALE_DIV);
    char nm[96];
    snprintf(nm, sizeof nm, "%s attention B=%d S=%d H=%d KV=%d window=%d mask=%d", neox ? "neox" : "llama", B, S, H,
             KV, window, mask_kind);
    note(check_fd(nm, att_fwd, &c, qkv, B * S * ld, dqkv, r, B * S * Dq));
    free(mask), free(qkv), free(r), free(dqkv), free(probs), free(dprobs), free(out);
}

/* ---- the linear backwards split over threads, against double-precision products */
static void test_linear_split(int trans) {
    const int M = 64, K = 96, N = 200; /* M N K above the split threshold */
    float *x = rnd(M * K, 1), *W = rnd(K * N, 1), *dy = rnd(M * N, 1);
    float *dx = rnd(M * K, 1), *dW = rnd(K * N, 1), *db = rnd(N, 1); /* accumulated onto */
    double *ex = malloc(sizeof(double) * M * K), *eW = malloc(sizeof(double) * K * N), *eb = malloc(sizeof(double) * N);
    for (int i = 0; i < M * K; i++) ex[i] = dx[i];
    for (int i = 0; i < K * N; i++) eW[i] = dW[i];
    for (int j = 0; j < N; j++) eb[j] = db[j];
    for (int i = 0; i < M; i++)
        for (int kk = 0; kk < K; kk++)
            for (int j = 0; j < N; j++) {
                /* in_out: W[k][j]; out_in: W[j][k] */
                double wv = trans ? W[j * K + kk] : W[kk * N + j], g = dy[i * N + j];
                ex[i * K + kk] += g * wv;
                eW[trans ? j * K + kk : kk * N + j] += (double)x[i * K + kk] * g;
            }
    for (int i = 0; i < M; i++)
        for (int j = 0; j < N; j++) eb[j] += dy[i * N + j];
    int threads = omp_get_max_threads();
    omp_set_num_threads(2);
    if (trans) vk_linear_out_in_backward(dy, x, W, dx, dW, db, M, K, N);
    else vk_linear_in_out_backward(dy, x, W, dx, dW, db, M, K, N);
    omp_set_num_threads(threads);
    double e = 0;
    for (int i = 0; i < M * K; i++) e = fmax(e, fabs(dx[i] - ex[i]));
    for (int i = 0; i < K * N; i++) e = fmax(e, fabs(dW[i] - eW[i]));
    for (int j = 0; j < N; j++) e = fmax(e, fabs(db[j] - eb[j]));
    CHECK_MSG(e < 1e-3, "linear %s backward over 2 threads: max |diff| %.3g against double products",
              trans ? "out_in" : "in_out", e);
    free(x), free(W), free(dy), free(dx), free(dW), free(db), free(ex), free(eW), free(eb);
}

int main(void) {
    test_rmsnorm(0);
    test_rmsnorm(1);
    test_rope(8);
    test_rope(4);
    test_glu(A_SILU);
    test_glu(A_GELU_ERF);
    test_glu(A_GELU_TANH);
    test_attention(2, 5, 4, 2, 0, 0, 0);   /* GQA */
    test_attention(2, 6, 4, 1, 2, 1, 0);   /* one kv head, sliding window, right padding */
    test_attention(2, 5, 2, 2, 0, 2, 0);   /* left padding */
    test_attention(1, 40, 2, 1, 0, 0, 0);  /* two blocks of score rows */
    test_attention(2, 5, 2, 2, 0, 2, 1);   /* NeoX: scale inside, left padding */
    test_linear_split(0);
    test_linear_split(1);
    printf("worst relative difference against finite differences: %.3g\n", worst_all);
    TEST_MAIN_END();
}
