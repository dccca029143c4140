/* GELU (core/gelu.c): the vector and the portable code give the same bits for every value
 * and at every place in the buffer (the tail past the last whole vector takes the
 * portable code), and both are within a few float roundings of the double-precision
 * 0.5 v (1 + tanh(sqrt(2/pi) (v + 0.044715 v^3))). */
#include <float.h>
#include <stdint.h>

#include "core/kernels.h"
#include "core/rng.h"
#include "test.h"

static double gelu_ref(double v) { return 0.5 * v * (1.0 + tanh(0.7978845608028654 * (v + 0.044715 * v * v * v))); }

int main(void) {
    enum { N = 200003 }; /* odd: a tail of 3 elements, and over the threading threshold */
    float *x = malloc(sizeof(float) * N), *vec = malloc(sizeof(float) * N), *port = malloc(sizeof(float) * N);
    float *shifted = malloc(sizeof(float) * N);
    vene_rng r;
    vene_rng_seed(&r, 7);
    static const float special[] = {0.0f, -0.0f, 1.0f, -1.0f, 1e-30f, -1e-30f, FLT_MIN, -FLT_MIN, 3.0f, -3.0f, 9.5f,
                                    -9.5f, 40.0f, -40.0f, 1e10f, -1e10f, FLT_MAX, -FLT_MAX, INFINITY, NAN};
    const int ns = (int)(sizeof special / sizeof *special);
    for (int i = 0; i < N; i++) {
        double u = vene_rng_uniform(&r);
        /* mostly where activations live, some far out in both tails */
        x[i] = i < ns ? special[i] : i % 10 == 0 ? (float)(60.0 * (u - 0.5)) : (float)(12.0 * (u - 0.5));
    }
    vk_gelu_tanh_ex(x, vec, N, 1);
    vk_gelu_tanh_ex(x, port, N, 0);
    CHECK_MSG(!memcmp(vec, port, sizeof(float) * N), "vector and portable GELU differ");
    /* every value once more at another offset: elements 0..2 are now in the tail */
    vk_gelu_tanh_ex(x + 3, shifted, N - 3, 1);
    CHECK_MSG(!memcmp(shifted, vec + 3, sizeof(float) * (N - 3)), "an element's GELU depends on its place");
    double worst = 0;
    long at = -1;
    for (int i = 0; i < N; i++) {
        if (!isfinite(x[i])) continue;
        double want = gelu_ref(x[i]), e = fabs(vec[i] - want) / fmax(fabs(want), 1e-6);
        if (e > worst) worst = e, at = i;
    }
    /* the exponent's argument is itself a float (about 40 near x = -4.5, so 4e-6 absolute
     * off): libm's expf in the same formula is 2.2e-6 off there */
    CHECK_MSG(worst < 3e-6, "worst relative error %.3g at x = %.9g", worst, at >= 0 ? x[at] : 0.0);
    CHECK(isnan(vec[ns - 1]));        /* NaN stays NaN */
    CHECK(vec[ns - 2] == INFINITY);   /* +inf -> +inf */
    CHECK(vec[17] == 0.0f);          /* gelu(-FLT_MAX) = -0 (exp overflows, as in torch) */
    CHECK(vec[0] == 0.0f);
    CHECK(fabs(vec[13]) < 1e-30);    /* gelu(-40) ~ -0 */
    CHECK(vec[12] == 40.0f);
    printf("GELU: worst relative error %.3g against double precision\n", worst);
    free(x), free(vec), free(port), free(shifted);
    TEST_MAIN_END();
}
