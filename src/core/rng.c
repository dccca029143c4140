#include "core/rng.h"

#include <math.h>

/* ---------------------------------------------------------------- xoshiro256** */

uint64_t vene_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

void vene_rng_seed(vene_rng *r, uint64_t seed) {
    uint64_t st = seed;
    for (int i = 0; i < 4; i++) r->s[i] = vene_splitmix64(&st);
    r->has_spare = 0;
    r->spare = 0.0;
}

static uint64_t rotl64(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

uint64_t vene_rng_next(vene_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = rotl64(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl64(s[3], 45);
    return result;
}

double vene_rng_uniform(vene_rng *r) { return (double)(vene_rng_next(r) >> 11) * 0x1.0p-53; }

double vene_rng_normal(vene_rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1;
    do u1 = vene_rng_uniform(r);
    while (u1 <= 0.0);
    double u2 = vene_rng_uniform(r);
    double rad = sqrt(-2.0 * log(u1));
    double ang = 6.283185307179586476925 * u2;
    r->spare = rad * sin(ang);
    r->has_spare = 1;
    return rad * cos(ang);
}

/* ---------------------------------------------------------------- MT19937 (numpy legacy) */

enum { MT_N = 624, MT_M = 397 };

void vene_mt_seed(vene_mt *m, uint32_t seed) {
    m->mt[0] = seed;
    for (int i = 1; i < MT_N; i++)
        m->mt[i] = 1812433253U * (m->mt[i - 1] ^ (m->mt[i - 1] >> 30)) + (uint32_t)i;
    m->mti = MT_N;
    m->has_gauss = 0;
    m->gauss = 0.0;
}

static void mt_refill(vene_mt *m) {
    const uint32_t upper = 0x80000000U, lower = 0x7fffffffU, matrix = 0x9908b0dfU;
    for (int i = 0; i < MT_N; i++) {
        uint32_t y = (m->mt[i] & upper) | (m->mt[(i + 1) % MT_N] & lower);
        m->mt[i] = m->mt[(i + MT_M) % MT_N] ^ (y >> 1) ^ ((y & 1U) ? matrix : 0U);
    }
    m->mti = 0;
}

uint32_t vene_mt_next32(vene_mt *m) {
    if (m->mti >= MT_N) mt_refill(m);
    uint32_t y = m->mt[m->mti++];
    y ^= y >> 11;
    y ^= (y << 7) & 0x9d2c5680U;
    y ^= (y << 15) & 0xefc60000U;
    y ^= y >> 18;
    return y;
}

double vene_mt_double(vene_mt *m) {
    uint32_t a = vene_mt_next32(m) >> 5, b = vene_mt_next32(m) >> 6;
    return ((double)a * 67108864.0 + (double)b) / 9007199254740992.0;
}

double vene_mt_gauss(vene_mt *m) {
    if (m->has_gauss) {
        m->has_gauss = 0;
        return m->gauss;
    }
    double x1, x2, r2;
    do {
        x1 = 2.0 * vene_mt_double(m) - 1.0;
        x2 = 2.0 * vene_mt_double(m) - 1.0;
        r2 = x1 * x1 + x2 * x2;
    } while (r2 >= 1.0 || r2 == 0.0);
    double f = sqrt(-2.0 * log(r2) / r2);
    m->gauss = f * x1;
    m->has_gauss = 1;
    return f * x2;
}
