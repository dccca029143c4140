/* Every backward kernel against central finite differences of its forward kernel:
 * L(x) = sum(r * f(x)) for a random r; dL/dx from the backward with dy = r. */
#include <stdint.h>
#include <stdlib.h>

#include "core/kernels.h"
#include "core/kernels_grad.h"
#include "fd_check.h"

/* ---- linear */
typedef struct { const float *x, *W, *b; int M, K, N, trans; } lin_ctx;
static void lin_fwd(void *c, float *out) {
    lin_ctx *l = c;
    if (l->trans) vk_linear_out_in(l->x, l->W, l->b, out, l->M, l->K, l->N);
    else vk_linear_in_out(l->x, l->W, l->b, out, l->M, l->K, l->N);
}
static void test_linear(int trans) {
    int M = 3, K = 5, N = 4;
    float *x = rnd(M * K, 1), *W = rnd(K * N, 1), *b = rnd(N, 1), *r = rnd(M * N, 1);
    float *dx = zeros(M * K), *dW = zeros(K * N), *db = zeros(N);
    lin_ctx c = {x, W, b, M, K, N, trans};
    if (trans) vk_linear_out_in_backward(r, x, W, dx, dW, db, M, K, N);
    else vk_linear_in_out_backward(r, x, W, dx, dW, db, M, K, N);
    const char *nm = trans ? "linear_out_in" : "linear_in_out";
    check_fd(nm, lin_fwd, &c, x, M * K, dx, r, M * N);
    check_fd(nm, lin_fwd, &c, W, K * N, dW, r, M * N);
    check_fd(nm, lin_fwd, &c, b, N, db, r, M * N);
    free(x), free(W), free(b), free(r), free(dx), free(dW), free(db);
}

/* ---- layernorm */
typedef struct { const float *x, *g, *b; int rows, D; } ln_ctx;
static void ln_fwd(void *c, float *out) {
    ln_ctx *l = c;
    vk_layernorm(l->x, l->g, l->b, out, l->rows, l->D, 1e-5f);
}
static void test_layernorm(void) {
    int R = 3, D = 8;
    float *x = rnd(R * D, 2), *g = rnd(D, 1), *b = rnd(D, 1), *r = rnd(R * D, 1);
    float *dx = zeros(R * D), *dg = zeros(D), *db = zeros(D);
    ln_ctx c = {x, g, b, R, D};
    vk_layernorm_backward(r, x, g, dx, dg, db, R, D, 1e-5f);
    check_fd("layernorm dx", ln_fwd, &c, x, R * D, dx, r, R * D);
    check_fd("layernorm dgamma", ln_fwd, &c, g, D, dg, r, R * D);
    check_fd("layernorm dbeta", ln_fwd, &c, b, D, db, r, R * D);
    free(x), free(g), free(b), free(r), free(dx), free(dg), free(db);
}

/* ---- gelu */
typedef struct { const float *x; int n; } el_ctx;
static void gelu_fwd(void *c, float *out) {
    el_ctx *e = c;
    vk_gelu_tanh(e->x, out, e->n);
}
static void test_gelu(void) {
    int n = 40;
    float *x = rnd(n, 3), *r = rnd(n, 1), *dx = zeros(n);
    el_ctx c = {x, n};
    vk_gelu_tanh_backward(r, x, dx, n);
    check_fd("gelu_tanh", gelu_fwd, &c, x, n, dx, r, n);
    free(x), free(r), free(dx);
}

/* ---- embedding */
typedef struct { const float *T; const int32_t *ids; int n, D; } emb_ctx;
static void emb_fwd(void *c, float *out) {
    emb_ctx *e = c;
    vk_embed(e->T, e->ids, out, e->n, e->D);
}
static void test_embed(void) {
    int V = 5, D = 3, n = 4;
    int32_t ids[4] = {2, 0, 2, 4};
    float *T = rnd(V * D, 1), *r = rnd(n * D, 1), *dT = zeros(V * D);
    emb_ctx c = {T, ids, n, D};
    vk_embed_backward(r, ids, dT, n, D);
    check_fd("embed", emb_fwd, &c, T, V * D, dT, r, n * D);
    free(T), free(r), free(dT);
}

/* ---- attention: scores + values over a fused qkv buffer, GQA and a padding mask */
typedef struct { float *qkv; const uint8_t *mask; int B, S, H, KV, hd, window; float scale; float *probs; } att_ctx;
static void att_fwd(void *c, float *out) {
    att_ctx *a = c;
    int Dq = a->H * a->hd, Dk = a->KV * a->hd, ld = Dq + 2 * Dk;
    vk_attn_scores(a->qkv, ld, a->qkv + Dq, ld, a->probs, a->B, a->S, a->H, a->KV, a->hd, a->scale, a->mask, a->window);
    vk_attn_values(a->probs, a->qkv + Dq + Dk, ld, out, Dq, a->B, a->S, a->H, a->KV, a->hd);
}
static void test_attention(int H, int KV, int window, int masked) {
    int B = 2, S = 5, hd = 3, Dq = H * hd, Dk = KV * hd, ld = Dq + 2 * Dk;
    /* right padding: a query row whose only visible key is padding rounds its score to the
     * float32 minimum, where finite differences see 0 but autograd (torch and vene) passes
     * 1/scale through the addition; that row is left out of the check */
    uint8_t mask[10] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 0};
    float *qkv = rnd(B * S * ld, 1), *r = rnd(B * S * Dq, 1), *dqkv = zeros(B * S * ld);
    float *probs = zeros(B * H * S * S), *dprobs = zeros(B * H * S * S), *out = zeros(B * S * Dq);
    att_ctx c = {qkv, masked ? mask : NULL, B, S, H, KV, hd, window, 1.7f, probs};
    att_fwd(&c, out);
    vk_attn_values_backward(r, Dq, probs, qkv + Dq + Dk, ld, dprobs, dqkv + Dq + Dk, ld, B, S, H, KV, hd);
    vk_attn_scores_backward(dprobs, probs, qkv, ld, qkv + Dq, ld, dqkv, ld, dqkv + Dq, ld, B, S, H, KV, hd, 1.7f,
                            window);
    char nm[64];
    snprintf(nm, sizeof nm, "attention H=%d KV=%d window=%d mask=%d", H, KV, window, masked);
    check_fd(nm, att_fwd, &c, qkv, B * S * ld, dqkv, r, B * S * Dq);
    free(qkv), free(r), free(dqkv), free(probs), free(dprobs), free(out);
}

int main(void) {
    test_linear(0);
    test_linear(1);
    test_layernorm();
    test_gelu();
    test_embed();
    test_attention(2, 2, 0, 0);
    test_attention(4, 2, 0, 1);
    test_attention(2, 1, 2, 0);
    TEST_MAIN_END();
}
