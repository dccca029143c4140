/* Small deterministic random number generators for seeded initialisation.
 *
 *  - vene_rng: xoshiro256** seeded through splitmix64, with Box–Muller normals. The same
 *    seed gives the same stream on every platform. Used for vene's own initialisations
 *    (e.g. a random orthogonal rotation when no checkpoint is given).
 *  - vene_mt: MT19937 with numpy.random.RandomState's legacy conventions (integer seed ->
 *    init_genrand, 53-bit doubles, Marsaglia polar gaussians with a cached spare), so that
 *    vene_mt_seed(1) followed by vene_mt_gauss reproduces numpy.random.RandomState(1).randn
 *    exactly (pyvene's NoiseIntervention draws its noise that way).
 *
 * Both are plain values: no global state, copyable, one per thread. */
#ifndef VENE_CORE_RNG_H
#define VENE_CORE_RNG_H

#include <stdint.h>

typedef struct vene_rng {
    uint64_t s[4];
    int has_spare;
    double spare;
} vene_rng;

/* splitmix64 step: advances *state and returns the next output. */
uint64_t vene_splitmix64(uint64_t *state);

void vene_rng_seed(vene_rng *r, uint64_t seed);
uint64_t vene_rng_next(vene_rng *r);       /* 64 random bits */
double vene_rng_uniform(vene_rng *r);      /* [0, 1), 53-bit resolution */
double vene_rng_normal(vene_rng *r);       /* standard normal (Box–Muller, pairs cached) */

typedef struct vene_mt {
    uint32_t mt[624];
    int mti;
    int has_gauss;
    double gauss;
} vene_mt;

void vene_mt_seed(vene_mt *m, uint32_t seed);   /* numpy RandomState(seed) for an int seed */
uint32_t vene_mt_next32(vene_mt *m);
double vene_mt_double(vene_mt *m);              /* numpy random_sample: [0, 1) */
double vene_mt_gauss(vene_mt *m);               /* numpy standard_normal / randn */

#endif
