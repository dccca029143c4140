/* Internals shared by interventions.c (types, parameters, localist maths),
 * iv_rotation.c (the rotation family on flattened blocks) and orthogonal.c. */
#ifndef VENE_ENGINE_IV_INTERNAL_H
#define VENE_ENGINE_IV_INTERNAL_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/interventions.h"

/* The coordinates an intervention touches, per example: set s is c[off[s] .. off[s+1]).
 * n_sets is 1 (one set for every example) or B (set b for example b). */
typedef struct iv_coords {
    int n_sets;
    int *off;
    int *c;
} iv_coords;

/* Builds the selection for a block of B examples whose selectable axis is `width` wide.
 * Without subspaces: the prefix [0, K) with K = prefix (prefix < 0 or >= width: all).
 * With subspaces: row r's ids expanded through the partition (in the order listed) or
 * taken as coordinates; 1 row or B rows. Errors name the type, the id and the sizes. */
int iv_coords_build(const vene_iv *iv, const vene_subspaces *ss, int64_t B, int width, int prefix,
                    iv_coords *out, vene_error *err);
void iv_coords_free(iv_coords *c);
static inline int iv_coords_set(const iv_coords *c, int64_t example) {
    return c->n_sets == 1 ? 0 : (int)example;
}

/* Rotation family (Rotated, LowRank, Boundless, SigmoidMaskRotated) on a block whose
 * source has already been brought to the base's shape (src has numel(base) floats). */
int iv_apply_rotation(const vene_iv *iv, vene_tensor *base, const float *src, const vene_subspaces *ss,
                      vene_error *err);

/* A random n x n orthogonal matrix in double (QR of a seeded Gaussian matrix, columns
 * signed so that R has a positive diagonal, as torch.nn.init.orthogonal_ does). */
int iv_random_orthogonal(int n, uint64_t seed, double *Q, vene_error *err);

/* "[2, 3, 6]" into buf. */
const char *iv_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

static inline float iv_sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

#endif
