/* Every intervention's backward against central finite differences of vene_iv_apply:
 * L = sum(r * apply(x, s; params)); checked: dL/dx, dL/ds, dL/d(original) through the
 * orthogonal parametrisation (Householder for tall, matrix exponential for square),
 * dL/dW, the Boundless boundary and the sigmoid masks. */
#include "test.h"

#include <stdint.h>

#include "engine/interventions.h"

static const char *iv_ae_name(int k) {
    static const char *const n[4] = {"encoder weight", "encoder bias", "decoder weight", "decoder bias"};
    return n[k];
}

static vene_error err;
static uint64_t st = 88172645463325252ULL;
static float frand(void) {
    st ^= st << 13, st ^= st >> 7, st ^= st << 17;
    return (float)((st >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

typedef struct {
    vene_iv *iv;
    vene_tensor x, s;
    const float *r;
    const vene_subspaces *ss;
} ctx;

static int rotation(const vene_iv *iv) {
    return iv->type == VENE_IV_ROTATED || iv->type == VENE_IV_LOWRANK_ROTATED ||
           iv->type == VENE_IV_BOUNDLESS_ROTATED || iv->type == VENE_IV_SIGMOID_MASK_ROTATED;
}

static double loss(ctx *c) {
    if (rotation(c->iv)) {
        int r = c->iv->type == VENE_IV_LOWRANK_ROTATED ? c->iv->low_rank : c->iv->embed_dim;
        vene_orthogonal_weight(c->iv->original, c->iv->base, c->iv->embed_dim, r, c->iv->W, &err);
    }
    int64_t n = vene_tensor_numel(&c->x);
    vene_tensor y = c->x;
    y.data = malloc(sizeof(float) * (size_t)n);
    memcpy(y.data, c->x.data, sizeof(float) * (size_t)n);
    int rc = vene_iv_apply(c->iv, &y, &c->s, c->ss, NULL, &err);
    if (rc) fprintf(stderr, "apply: %s\n", err.msg);
    double l = 0;
    for (int64_t i = 0; i < n; i++) l += (double)c->r[i] * y.data[i];
    free(y.data);
    return l;
}

static void fd(const char *what, ctx *c, float *p, int64_t n, const float *g) {
    double worst = 0, gmax = 1e-3;
    for (int64_t i = 0; i < n; i++) gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
    for (int64_t i = 0; i < n; i++) {
        float keep = p[i], h = 2e-3f;
        p[i] = keep + h;
        double lp = loss(c);
        p[i] = keep - h;
        double lm = loss(c);
        p[i] = keep;
        double e = fabs((lp - lm) / (2.0 * h) - g[i]) / gmax;
        if (e > worst) worst = e;
    }
    loss(c); /* restore W */
    CHECK_MSG(worst < 1e-2, "%s: worst relative difference %.3g against finite differences", what, worst);
}

/* One type on a block of the given shape; subspaces optional. */
static void check_type(vene_iv_type type, int ndim, const int64_t *shape, int E, int rank, const vene_subspaces *ss) {
    const char *tn = vene_iv_type_name(type);
    vene_iv iv;
    CHECK(vene_iv_init(&iv, type, E, rank, &err) == VENE_OK);
    iv.temperature = 1.0f; /* pyvene's 50 / 0.01 make the masks nearly flat / nearly hard */
    if (type == VENE_IV_ROTATED) iv.interchange_dim = 3;
    CHECK(vene_iv_finalize(&iv, 7, &err) == VENE_OK);
    int r = type == VENE_IV_LOWRANK_ROTATED ? rank : E;
    if (rotation(&iv))
        for (int64_t i = 0; i < (int64_t)E * r; i++) /* away from -I so every reflection is non-trivial */
            iv.original[i] += 0.3f * frand();
    if (type == VENE_IV_BOUNDLESS_ROTATED) iv.boundary = 0.4f;
    if (iv.masks)
        for (int i = 0; i < iv.masks_len; i++) iv.masks[i] = frand();
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) n *= shape[i];
    float *x = malloc(sizeof(float) * (size_t)n), *s = malloc(sizeof(float) * (size_t)n);
    float *r_ = malloc(sizeof(float) * (size_t)n), *g = malloc(sizeof(float) * (size_t)n);
    float *ds = calloc((size_t)n, sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = frand(), s[i] = frand(), r_[i] = frand();
    ctx c = {&iv, {0}, {0}, r_, ss};
    c.x.data = x, c.s.data = s;
    c.x.ndim = c.s.ndim = ndim;
    for (int i = 0; i < ndim; i++) c.x.shape[i] = c.s.shape[i] = shape[i];
    loss(&c);
    memcpy(g, r_, sizeof(float) * (size_t)n);
    vene_tensor gt = c.x;
    gt.data = g;
    CHECK(vene_iv_grad_alloc(&iv, &err) == VENE_OK);
    int rc = vene_iv_backward(&iv, &c.x, &c.s, ss, &gt, ds, &err);
    CHECK_MSG(rc == VENE_OK, "%s backward: %s", tn, err.msg);
    char nm[96];
    snprintf(nm, sizeof nm, "%s %dD dx", tn, ndim);
    fd(nm, &c, x, n, g);
    snprintf(nm, sizeof nm, "%s %dD dsource", tn, ndim);
    if (vene_iv_needs_source(type)) fd(nm, &c, s, n, ds);
    if (rotation(&iv)) {
        CHECK(vene_iv_grad_finish(&iv, &err) == VENE_OK);
        snprintf(nm, sizeof nm, "%s d(original) %d x %d", tn, E, r);
        fd(nm, &c, iv.original, (int64_t)E * r, iv.grad_original);
    }
    if (type == VENE_IV_BOUNDLESS_ROTATED) fd("Boundless d(boundary)", &c, &iv.boundary, 1, &iv.grad_boundary);
    for (int k = 0; k < 4 && type == VENE_IV_AUTOENCODER; k++) {
        int64_t np = k == 1 ? rank : k == 3 ? E : (int64_t)E * rank;
        snprintf(nm, sizeof nm, "Autoencoder d(%s)", iv_ae_name(k));
        fd(nm, &c, iv.ae[k], np, iv.ae_grad[k]);
    }
    if (iv.grad_masks) {
        snprintf(nm, sizeof nm, "%s d(masks)", tn);
        fd(nm, &c, iv.masks, iv.masks_len, iv.grad_masks);
    }
    vene_iv_free(&iv);
    free(x), free(s), free(r_), free(g), free(ds);
}

/* dL/dW itself (W used directly): perturb W without re-deriving it from original. */
static void check_dW(void) {
    vene_iv iv;
    int E = 6, r = 2;
    CHECK(vene_iv_init(&iv, VENE_IV_LOWRANK_ROTATED, E, r, &err) == VENE_OK);
    CHECK(vene_iv_finalize(&iv, 3, &err) == VENE_OK);
    int64_t shape[3] = {2, 1, 6}, n = 12;
    float x[12], s[12], rr[12], g[12];
    for (int i = 0; i < 12; i++) x[i] = frand(), s[i] = frand(), rr[i] = frand();
    memcpy(g, rr, sizeof g);
    vene_tensor xt = {0}, stt = {0}, gt;
    xt.data = x, stt.data = s, xt.ndim = stt.ndim = 3;
    memcpy(xt.shape, shape, sizeof shape), memcpy(stt.shape, shape, sizeof shape);
    gt = xt, gt.data = g;
    CHECK(vene_iv_grad_alloc(&iv, &err) == VENE_OK);
    CHECK(vene_iv_backward(&iv, &xt, &stt, NULL, &gt, NULL, &err) == VENE_OK);
    double worst = 0;
    for (int k = 0; k < E * r; k++) {
        float keep = iv.W[k];
        double l[2];
        for (int sgn = 0; sgn < 2; sgn++) {
            iv.W[k] = keep + (sgn ? -2e-3f : 2e-3f);
            float y[12];
            memcpy(y, x, sizeof y);
            vene_tensor yt = xt;
            yt.data = y;
            vene_iv_apply(&iv, &yt, &stt, NULL, NULL, &err);
            l[sgn] = 0;
            for (int i = 0; i < n; i++) l[sgn] += (double)rr[i] * y[i];
        }
        iv.W[k] = keep;
        double e = fabs((l[0] - l[1]) / 4e-3 - iv.grad_W[k]);
        if (e > worst) worst = e;
    }
    CHECK_MSG(worst < 1e-2, "LowRank dW: worst difference %.3g", worst);
    vene_iv_free(&iv);
}

/* Autoencoder forward with identity encoder and decoder: on positive inputs the output is
 * the base with the selected latents (= coordinates) taken from the source. */
static void check_autoencoder_forward(void) {
    vene_iv iv;
    CHECK(vene_iv_init(&iv, VENE_IV_AUTOENCODER, 4, 4, &err) == VENE_OK);
    CHECK(vene_iv_finalize(&iv, 1, &err) == VENE_OK);
    for (int k = 0; k < 4; k++)
        for (int i = 0; i < (k % 2 ? 4 : 16); i++) iv.ae[k][i] = k % 2 ? 0.0f : (i % 5 == 0 ? 1.0f : 0.0f);
    float x[8] = {1, 2, 3, 4, 5, 6, 7, 8}, s[8] = {10, 20, 30, 40, 50, 60, 70, 80};
    int64_t sh[3] = {2, 1, 4};
    vene_tensor xt = {0}, st_ = {0};
    xt.data = x, st_.data = s, xt.ndim = st_.ndim = 3;
    memcpy(xt.shape, sh, sizeof sh), memcpy(st_.shape, sh, sizeof sh);
    int off[2] = {0, 2}, ids[2] = {0, 2};
    vene_subspaces ss = {1, off, ids};
    CHECK(vene_iv_apply(&iv, &xt, &st_, &ss, NULL, &err) == VENE_OK);
    float want[8] = {10, 2, 30, 4, 50, 6, 70, 8};
    CHECK(memcmp(x, want, sizeof want) == 0);
    vene_iv_free(&iv);
}

int main(void) {
    check_autoencoder_forward();
    int64_t s3[3] = {2, 1, 6}, s4[4] = {2, 2, 3, 3}, s2[2] = {3, 4};
    int off[3] = {0, 1, 3}, ids[3] = {1, 0, 2};
    vene_subspaces ss = {2, off, ids};
    vene_iv_type localist[] = {VENE_IV_VANILLA, VENE_IV_ADDITION, VENE_IV_SUBTRACTION, VENE_IV_ZERO,
                               VENE_IV_SIGMOID_MASK};
    for (size_t i = 0; i < sizeof localist / sizeof localist[0]; i++) {
        check_type(localist[i], 2, s2, 4, 0, NULL);
        check_type(localist[i], 3, s3, 6, 0, &ss);
    }
    check_type(VENE_IV_LOWRANK_ROTATED, 3, s3, 6, 2, NULL);
    check_type(VENE_IV_LOWRANK_ROTATED, 3, s3, 6, 3, &ss);   /* per-example column subsets */
    check_type(VENE_IV_LOWRANK_ROTATED, 4, s4, 6, 2, NULL);  /* heads x positions: permuted rows */
    check_type(VENE_IV_ROTATED, 3, s3, 6, 0, NULL);          /* square: matrix exponential */
    check_type(VENE_IV_ROTATED, 4, s4, 6, 0, &ss);
    check_type(VENE_IV_BOUNDLESS_ROTATED, 3, s3, 6, 0, NULL);
    check_type(VENE_IV_SIGMOID_MASK_ROTATED, 3, s3, 6, 0, NULL);
    check_type(VENE_IV_AUTOENCODER, 3, s3, 6, 4, NULL);     /* every latent swapped */
    int aoff[3] = {0, 1, 3}, aids[3] = {3, 0, 2};
    vene_subspaces ass = {2, aoff, aids};
    check_type(VENE_IV_AUTOENCODER, 3, s3, 6, 4, &ass);     /* per-example latent lists */
    check_dW();
    TEST_MAIN_END();
}
