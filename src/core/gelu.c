/* GPT-2's gelu_new with its own exponential, eight elements per AVX2 instruction.
 *
 * gelu(v) = 0.5 v (1 + tanh u) = v / (1 + exp(-2u)),  u = sqrt(2/pi) (v + 0.044715 v^3).
 * libm's expf is scalar and was 5% of a DAS training step. Here exp is range reduction
 * (z = n ln2 + r, |r| <= ln2/2, ln2 split in two so n ln2 is exact) and a degree-7
 * polynomial for e^r (Cephes' expf coefficients), within 2 ulp of expf.
 *
 * Bit-for-bit contract: the AVX2 code and the portable code run the same float operations
 * in the same order (every multiply-add an explicit fma, rounding to nearest, MAXPS/MINPS
 * written as the comparisons they are), so an element's result never depends on where it
 * sits in the buffer: a row's activations stay batch-invariant (core/gemm.h). */
#include "core/kernels.h"

#include "core/gemm.h"

#include <math.h>
#include <stdint.h>
#include <string.h>

/* no a * b + c fused behind our back (gcc in ISO C mode never fuses; clang needs telling) */
#ifdef __clang__
#pragma STDC FP_CONTRACT OFF
#endif

#define GELU_C2 (-1.5957691216057308f) /* -2 sqrt(2/pi) */
#define GELU_K 0.044715f
#define EXP_HI 88.3f  /* exp(88.3) < FLT_MAX and n <= 127 */
#define EXP_LO -87.3f /* n >= -126: 2^n stays a normal number */
#define LOG2E 1.44269504088896341f
#define LN2_HI 0.693359375f /* 9 significant bits: n * LN2_HI is exact */
#define LN2_LO -2.12194440e-4f
static const float exp_poly[6] = {1.9875691500e-4f, 1.3981999507e-3f, 8.3334519073e-3f,
                                  4.1665795894e-2f, 1.6666665459e-1f, 5.0000001201e-1f};

static float gelu_one(float v) {
    float t = v * v;
    t = t * v;
    const float z0 = fmaf(GELU_K, t, v) * GELU_C2;
    float z = z0 > EXP_LO ? z0 : EXP_LO; /* MAXPS(z, lo): a NaN becomes lo, and the division keeps v's NaN */
    z = z < EXP_HI ? z : EXP_HI;
    const float n = rintf(z * LOG2E);
    float r = fmaf(-n, LN2_HI, z);
    r = fmaf(-n, LN2_LO, r);
    float p = exp_poly[0];
    for (int i = 1; i < 6; i++) p = fmaf(p, r, exp_poly[i]);
    const float r2 = r * r;
    float e = fmaf(p, r2, r) + 1.0f;
    const int32_t bits = ((int32_t)n + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    e = e * scale;
    e = z0 > EXP_HI ? INFINITY : e; /* past the range exp overflows: gelu(v) = v / inf = -0 */
    return v / (1.0f + e);
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

__attribute__((target("avx2,fma"))) static void gelu_avx2(const float *x, float *out, int64_t n) {
    const __m256 k = _mm256_set1_ps(GELU_K), c2 = _mm256_set1_ps(GELU_C2), lo = _mm256_set1_ps(EXP_LO);
    const __m256 hi = _mm256_set1_ps(EXP_HI), log2e = _mm256_set1_ps(LOG2E), one = _mm256_set1_ps(1.0f);
    const __m256 ln2_hi = _mm256_set1_ps(LN2_HI), ln2_lo = _mm256_set1_ps(LN2_LO), inf = _mm256_set1_ps(INFINITY);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        __m256 t = _mm256_mul_ps(_mm256_mul_ps(v, v), v);
        const __m256 z0 = _mm256_mul_ps(_mm256_fmadd_ps(k, t, v), c2);
        const __m256 z = _mm256_min_ps(_mm256_max_ps(z0, lo), hi);
        const __m256 nn = _mm256_round_ps(_mm256_mul_ps(z, log2e), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        __m256 r = _mm256_fnmadd_ps(nn, ln2_hi, z);
        r = _mm256_fnmadd_ps(nn, ln2_lo, r);
        __m256 p = _mm256_set1_ps(exp_poly[0]);
        for (int j = 1; j < 6; j++) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(exp_poly[j]));
        __m256 e = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), one);
        const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(nn), _mm256_set1_epi32(127)), 23);
        e = _mm256_mul_ps(e, _mm256_castsi256_ps(bits));
        e = _mm256_blendv_ps(e, inf, _mm256_cmp_ps(z0, hi, _CMP_GT_OQ));
        _mm256_storeu_ps(out + i, _mm256_div_ps(v, _mm256_add_ps(one, e)));
    }
}
#define GELU_VECTOR 1
#endif

void vk_gelu_tanh_ex(const float *x, float *out, int64_t n, int simd) {
#ifdef GELU_VECTOR
    if (simd && vk_gemm_vectorized()) {
        const int64_t chunks = n / 8;
        /* whole vectors split over the threads; the last n % 8 elements take the portable code */
#pragma omp parallel for schedule(static) if (n > 65536)
        for (int64_t c = 0; c < chunks; c += 512) {
            const int64_t len = chunks - c < 512 ? chunks - c : 512;
            gelu_avx2(x + 8 * c, out + 8 * c, 8 * len);
        }
        for (int64_t i = 8 * chunks; i < n; i++) out[i] = gelu_one(x[i]);
        return;
    }
#else
    (void)simd;
#endif
#pragma omp parallel for schedule(static) if (n > 65536)
    for (int64_t i = 0; i < n; i++) out[i] = gelu_one(x[i]);
}

void vk_gelu_tanh(const float *x, float *out, int64_t n) { vk_gelu_tanh_ex(x, out, n, 1); }
