/* Central finite differences for the backward-kernel tests (test_grad_kernels*.c): a
 * forward kernel is wrapped as a closure f(ctx) -> out, the loss is L = sum(r * out) for
 * a random r, and the backward run with dy = r must give dL/dp for every entry of p. */
#ifndef VENE_TEST_FD_CHECK_H
#define VENE_TEST_FD_CHECK_H

#include <omp.h>
#include <stdint.h>
#include <stdlib.h>

#include "test.h"

static uint64_t fd_rng_state = 0x9e3779b97f4a7c15ULL;
static float frand(void) {
    fd_rng_state ^= fd_rng_state << 13;
    fd_rng_state ^= fd_rng_state >> 7;
    fd_rng_state ^= fd_rng_state << 17;
    return (float)((fd_rng_state >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static float *rnd(int64_t n, float scale) {
    float *p = malloc(sizeof(float) * (size_t)n);
    for (int64_t i = 0; i < n; i++) p[i] = frand() * scale;
    return p;
}
static float *zeros(int64_t n) { return calloc((size_t)n, sizeof(float)); }

/* The forward under test, as a closure over its inputs: writes f(x) into out. */
typedef void (*fwd_fn)(void *ctx, float *out);

static double fd_loss(fwd_fn f, void *ctx, const float *r, float *out, int64_t n_out) {
    f(ctx, out);
    double s = 0;
    for (int64_t i = 0; i < n_out; i++) s += (double)r[i] * out[i];
    return s;
}

/* Compare analytic grad g (for parameter p of n floats) against finite differences;
 * the error is relative to max |g| (at least 1e-3). Returns the worst. The forwards run
 * on one thread: thousands of tiny parallel regions only measure a busy machine. */
static double check_fd(const char *what, fwd_fn f, void *ctx, float *p, int64_t n, const float *g, const float *r,
                       int64_t n_out) {
    float *out = malloc(sizeof(float) * (size_t)n_out);
    int threads = omp_get_max_threads();
    omp_set_num_threads(1);
    double worst = 0, gmax = 1e-3;
    for (int64_t i = 0; i < n; i++) gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
    for (int64_t i = 0; i < n; i++) {
        float keep = p[i], h = 1e-2f * (fabsf(keep) > 1 ? fabsf(keep) : 1);
        p[i] = keep + h;
        double lp = fd_loss(f, ctx, r, out, n_out);
        p[i] = keep - h;
        double lm = fd_loss(f, ctx, r, out, n_out);
        p[i] = keep;
        double fd = (lp - lm) / (2.0 * (double)h), e = fabs(fd - g[i]) / gmax;
        if (e > worst) worst = e;
    }
    omp_set_num_threads(threads);
    CHECK_MSG(worst < 5e-3, "%s: worst relative difference %.3g against finite differences", what, worst);
    free(out);
    return worst;
}

#endif
