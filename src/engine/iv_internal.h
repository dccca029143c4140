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

/* How a rotation-family type flattens a block into N rows of width F = embed_dim
 * (permute: a 4-D block is first permuted by iv_permute_4d). Checks W and the width. */
typedef struct iv_flat {
    int64_t N, F, rows_per_ex;
    int permute;
} iv_flat;
int iv_rotation_flat(const vene_iv *iv, const vene_tensor *base, iv_flat *f, vene_error *err);
/* Boundless / SigmoidMaskRotated mixing weights m[embed_dim]. */
int iv_rotation_mask(const vene_iv *iv, float *m, vene_error *err);
/* B x k1 x k2 x d <-> (B*k2) x (k1*d) (back = 1: the inverse). */
void iv_permute_4d(const int64_t *sh, const float *in, float *out, int back);

/* Rotation family (Rotated, LowRank, Boundless, SigmoidMaskRotated) on a block whose
 * source has already been brought to the base's shape (src has numel(base) floats). */
int iv_apply_rotation(const vene_iv *iv, vene_tensor *base, const float *src, const vene_subspaces *ss,
                      vene_error *err);

/* A random n x n orthogonal matrix in double (QR of a seeded Gaussian matrix, columns
 * signed so that R has a positive diagonal, as torch.nn.init.orthogonal_ does). */
int iv_random_orthogonal(int n, uint64_t seed, double *Q, vene_error *err);

/* expm(A) (n x n, double) by scaling and squaring with Padé 13 (orthogonal.c). */
int iv_expm(int n, const double *A, double *R, vene_error *err);
/* Q (n x m) = first m columns of H_0 ... H_{m-1} (LAPACK orgqr convention, orthogonal.c);
 * returns -1 when out of memory. */
int iv_householder_q(int n, int m, const double *V, int ldv, const double *tau, double *Q);
/* out (E x r) = base X, or base^T X (trans), for the float E x E base of a rotation, in
 * double. Returns -1 when out of memory. */
int iv_base_times(const float *base, int E, int r, int trans, const double *X, double *out);

/* Rotation family backward (iv_rotation_grad.c): x and src are the block and the source as
 * the forward saw them (src broadcast to x's shape); g holds d(out) and becomes d(x);
 * dsrc (NULL = not wanted) accumulates d(src); parameter gradients accumulate in iv. */
int iv_rotation_backward(vene_iv *iv, const vene_tensor *x, const float *src, const vene_subspaces *ss,
                         vene_tensor *g, float *dsrc, vene_error *err);
/* The source as a full base-shaped block (broadcast when needed; *owned to free). */
int iv_source_full(const vene_iv *iv, const vene_tensor *base, const vene_tensor *source, const float **full,
                   float **owned, vene_error *err);

/* AutoencoderIntervention (iv_autoencoder.c): forward, backward, parameters. */
int iv_autoencoder_apply(const vene_iv *iv, vene_tensor *base, const float *src, const vene_subspaces *ss,
                         vene_error *err);
int iv_autoencoder_backward(vene_iv *iv, const vene_tensor *x, const float *src, const vene_subspaces *ss,
                            vene_tensor *g, float *dsrc, vene_error *err);
/* 1 when name is one of its parameters (loaded), 0 when not, < 0 on error. */
int iv_autoencoder_set_param(vene_iv *iv, const char *name, const float *data, int ndim, const int64_t *shape,
                             vene_error *err);
int iv_autoencoder_finalize(vene_iv *iv, uint64_t seed, vene_error *err);
extern const char *const iv_autoencoder_names[4];

/* "[2, 3, 6]" into buf. */
const char *iv_shape_str(int ndim, const int64_t *shape, char *buf, size_t n);

static inline float iv_sigmoidf(float x) { return 1.0f / (1.0f + expf(-x)); }

#endif
