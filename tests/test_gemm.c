/* The row-stable products (core/gemm.h): against a double-precision reference, the
 * vector and portable paths bit for bit, and every row bit-identical whatever the number
 * of rows, the row's place in the call, the strides and the thread count. */
#include <omp.h>
#include <stdint.h>

#include "core/gemm.h"
#include "core/rng.h"
#include "test.h"

static float *rnd(size_t n, uint64_t seed, float scale) {
    vene_rng r;
    vene_rng_seed(&r, seed);
    float *v = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) v[i] = scale * (float)(vene_rng_uniform(&r) - 0.5);
    return v;
}

typedef void (*gemm_fn)(const float *, int, const float *, int, const float *, float *, int, int, int, int, int);

static double ref_elem(int nt, const float *x, const float *W, int ldw, const float *bias, int K, int j) {
    double s = bias ? bias[j] : 0;
    for (int k = 0; k < K; k++) s += (double)x[k] * (nt ? W[(size_t)j * ldw + k] : W[(size_t)k * ldw + j]);
    return s;
}

/* One shape: M rows of x (row stride K + 3) against W, out with row stride N + 5. */
static void check_shape(int nt, int M, int K, int N, int with_bias) {
    const int ldx = K + 3, ldw = nt ? K + 1 : N + 2, ldo = N + 5;
    float *x = rnd((size_t)M * ldx, 11 + M, 2.0f), *W = rnd((size_t)(nt ? N : K) * ldw, 12 + K, 0.2f);
    float *bias = with_bias ? rnd((size_t)N, 13, 1.0f) : NULL;
    float *vec = calloc((size_t)M * ldo + 1, sizeof(float)), *port = calloc((size_t)M * ldo + 1, sizeof(float));
    float *one = calloc((size_t)N + 1, sizeof(float));
    gemm_fn f = nt ? vk_gemm_nt_ex : vk_gemm_nn_ex;
    f(x, ldx, W, ldw, bias, vec, ldo, M, K, N, 1);
    f(x, ldx, W, ldw, bias, port, ldo, M, K, N, 0);
    double worst = 0;
    int same_paths = 1, stable = 1;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double want = ref_elem(nt, x + (size_t)i * ldx, W, ldw, bias, K, j);
            worst = fmax(worst, fabs(vec[(size_t)i * ldo + j] - want) / fmax(1.0, fabs(want)));
        }
        same_paths &= !memcmp(vec + (size_t)i * ldo, port + (size_t)i * ldo, sizeof(float) * (size_t)N);
    }
    /* every third row alone, at the front of its own call */
    for (int i = 0; i < M; i += 3) {
        f(x + (size_t)i * ldx, ldx, W, ldw, bias, one, N, 1, K, N, 1);
        stable &= !memcmp(one, vec + (size_t)i * ldo, sizeof(float) * (size_t)N);
    }
    /* the last rows as a call of their own (a different tiling of the same rows) */
    if (M > 5) {
        float *tail = calloc((size_t)5 * ldo, sizeof(float));
        f(x + (size_t)(M - 5) * ldx, ldx, W, ldw, bias, tail, ldo, 5, K, N, 1);
        stable &= !memcmp(tail, vec + (size_t)(M - 5) * ldo, sizeof(float) * ((size_t)4 * ldo + N));
        free(tail);
    }
    const char *nm = nt ? "nt" : "nn";
    CHECK_MSG(worst <= 1e-5 * sqrt(K + 1.0), "%s %dx%dx%d: max relative error %.3g", nm, M, K, N, worst);
    CHECK_MSG(same_paths, "%s %dx%dx%d: the vector and portable paths differ", nm, M, K, N);
    CHECK_MSG(stable, "%s %dx%dx%d: a row differs from the same row in another call", nm, M, K, N);
    free(x), free(W), free(bias), free(vec), free(port), free(one);
}

typedef void (*acc_fn)(const float *, int, const float *, int, float *, int, int, int, int, int);

/* The accumulating form (the backward's dx += dy op(W)): out starts from c, vector and
 * portable paths agree bit for bit, a row alone equals the row in the call, and from
 * zeros it equals the plain product without bias. */
static void check_acc(int nt, int M, int K, int N) {
    const int ldx = K + 3, ldw = nt ? K + 1 : N + 2, ldo = N + 5;
    const size_t no = (size_t)M * ldo;
    float *x = rnd((size_t)M * ldx, 21 + M, 2.0f), *W = rnd((size_t)(nt ? N : K) * ldw, 22 + K, 0.2f);
    float *c = rnd(no, 23, 4.0f), *vec = malloc(sizeof(float) * no), *port = malloc(sizeof(float) * no);
    float *zero = calloc(no, sizeof(float)), *plain = calloc(no, sizeof(float)), *one = malloc(sizeof(float) * (size_t)N);
    acc_fn f = nt ? vk_gemm_nt_acc : vk_gemm_nn_acc;
    memcpy(vec, c, sizeof(float) * no);
    memcpy(port, c, sizeof(float) * no);
    f(x, ldx, W, ldw, vec, ldo, M, K, N, 1);
    f(x, ldx, W, ldw, port, ldo, M, K, N, 0);
    f(x, ldx, W, ldw, zero, ldo, M, K, N, 1);
    (nt ? vk_gemm_nt_ex : vk_gemm_nn_ex)(x, ldx, W, ldw, NULL, plain, ldo, M, K, N, 1);
    double worst = 0;
    int same_paths = 1, stable = 1;
    for (int i = 0; i < M; i++) {
        for (int j = 0; j < N; j++) {
            double want = c[(size_t)i * ldo + j] + ref_elem(nt, x + (size_t)i * ldx, W, ldw, NULL, K, j);
            worst = fmax(worst, fabs(vec[(size_t)i * ldo + j] - want) / fmax(1.0, fabs(want)));
        }
        same_paths &= !memcmp(vec + (size_t)i * ldo, port + (size_t)i * ldo, sizeof(float) * (size_t)N);
        same_paths &= !memcmp(zero + (size_t)i * ldo, plain + (size_t)i * ldo, sizeof(float) * (size_t)N);
    }
    for (int i = 0; i < M; i += 3) {
        memcpy(one, c + (size_t)i * ldo, sizeof(float) * (size_t)N);
        f(x + (size_t)i * ldx, ldx, W, ldw, one, N, 1, K, N, 1);
        stable &= !memcmp(one, vec + (size_t)i * ldo, sizeof(float) * (size_t)N);
    }
    const char *nm = nt ? "nt" : "nn";
    CHECK_MSG(worst <= 1e-5 * sqrt(K + 1.0), "%s acc %dx%dx%d: max relative error %.3g", nm, M, K, N, worst);
    CHECK_MSG(same_paths, "%s acc %dx%dx%d: paths differ, or from zeros it is not the plain product", nm, M, K, N);
    CHECK_MSG(stable, "%s acc %dx%dx%d: a row differs from the same row in another call", nm, M, K, N);
    free(x), free(W), free(c), free(vec), free(port), free(zero), free(plain), free(one);
}

/* The same product with one and with two threads (the columns split differently). */
static void check_threads(int nt, int M) {
    const int K = 300, N = 1000;
    float *x = rnd((size_t)M * K, 5, 1.0f), *W = rnd((size_t)K * N, 6, 0.1f), *b = rnd((size_t)N, 7, 1.0f);
    float *a = malloc(sizeof(float) * (size_t)M * N), *c = malloc(sizeof(float) * (size_t)M * N);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    if (nt) vk_gemm_nt(x, K, W, K, b, a, N, M, K, N);
    else vk_gemm_nn(x, K, W, N, b, a, N, M, K, N);
    omp_set_num_threads(2);
    if (nt) vk_gemm_nt(x, K, W, K, b, c, N, M, K, N);
    else vk_gemm_nn(x, K, W, N, b, c, N, M, K, N);
    omp_set_num_threads(saved);
    CHECK_MSG(!memcmp(a, c, sizeof(float) * (size_t)M * N), "%s, %d rows: one and two threads differ", nt ? "nt" : "nn", M);
    free(x), free(W), free(b), free(a), free(c);
}

int main(void) {
    /* rows around the tile heights (1..4, 4 x 24 tiles) and the paths (1-2 streamed rows;
     * 3-15: nn streamed tiles, nt rows across the lanes, one vector up to 8, two above; 16
     * and more packed, nn from 64 in deeper, narrower slices; 70's last five rows are a
     * streamed call), columns around the panel widths (8, 24, 64, the tail below 8), depths
     * around the 8-wide steps and the 256-deep slices */
    static const int Ms[] = {1, 2, 3, 4, 5, 7, 13, 16, 70};
    static const int Ks[] = {1, 7, 8, 64, 257, 600};
    static const int Ns[] = {1, 5, 8, 23, 24, 67, 200, 389};
    for (int nt = 0; nt < 2; nt++)
        for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
            for (size_t b = 0; b < sizeof Ks / sizeof *Ks; b++)
                for (size_t c = 0; c < sizeof Ns / sizeof *Ns; c++) check_shape(nt, Ms[a], Ks[b], Ns[c], (a + c) % 2);
    static const int Ka[] = {7, 64, 600}, Na[] = {5, 24, 389};
    for (int nt = 0; nt < 2; nt++)
        for (size_t a = 0; a < sizeof Ms / sizeof *Ms; a++)
            for (size_t b = 0; b < 3; b++)
                for (size_t c = 0; c < 3; c++) check_acc(nt, Ms[a], Ka[b], Na[c]);
    /* nt with 3-15 rows takes x in blocks of at most 2048 (8 lanes) or 1024 steps (16 lanes) */
    check_shape(1, 5, 2500, 40, 1), check_shape(1, 13, 2500, 30, 0), check_acc(1, 13, 2500, 29), check_acc(1, 8, 4500, 20);
    for (int nt = 0; nt < 2; nt++) check_threads(nt, 37), check_threads(nt, 8), check_threads(nt, 70);
    printf("vector kernels %s on this CPU\n", vk_gemm_vectorized() ? "used" : "not available (portable path only)");
    TEST_MAIN_END();
}
