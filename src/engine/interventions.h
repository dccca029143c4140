/* pyvene's intervention maths on gathered blocks (spec §7, §8).
 *
 * The engine gathers the activation at the requested units into a contiguous block
 * (B x k x D for "pos", B x k x S x d for "h", B x k_h x k_p x d for "h.pos", B x D for
 * "t"), calls vene_iv_apply, and scatters the block back. This file knows nothing about
 * models or locations: only blocks, subspaces and parameters. */
#ifndef VENE_ENGINE_INTERVENTIONS_H
#define VENE_ENGINE_INTERVENTIONS_H

#include <stdint.h>

#include "io/safetensors.h"
#include "vene.h"

typedef enum vene_iv_type {
    VENE_IV_VANILLA,
    VENE_IV_ADDITION,
    VENE_IV_SUBTRACTION,
    VENE_IV_ZERO,
    VENE_IV_COLLECT,
    VENE_IV_NOISE,
    VENE_IV_SKIP,
    VENE_IV_ROTATED,
    VENE_IV_LOWRANK_ROTATED,
    VENE_IV_BOUNDLESS_ROTATED,
    VENE_IV_SIGMOID_MASK_ROTATED,
    VENE_IV_SIGMOID_MASK,
    VENE_IV_AUTOENCODER,
    VENE_IV_CALLBACK,          /* user function; applied by the engine, not here */
    VENE_IV_TYPE_COUNT
} vene_iv_type;

/* "VanillaIntervention" (also accepts "<class 'pyvene.models.interventions.X'>" and
 * "pyvene.X"). Returns -1 when unknown. */
int vene_iv_type_from_name(const char *name);
/* pyvene class name, e.g. "LowRankRotatedSpaceIntervention". */
const char *vene_iv_type_name(vene_iv_type t);
int vene_iv_is_localist(vene_iv_type t);      /* works per unit on the last dim: no flattening */
int vene_iv_needs_source(vene_iv_type t);     /* false for Zero, Collect, Noise */
int vene_iv_is_trainable(vene_iv_type t);     /* has learnable parameters */

/* A subspace partition: part j is the coordinate list coords[offsets[j] .. offsets[j+1]). */
typedef struct vene_partition {
    int n;
    int *offsets;   /* n + 1 */
    int *coords;
} vene_partition;

typedef struct vene_iv {
    vene_iv_type type;
    int embed_dim;         /* E = component width x max_number_of_units; -1 = None */
    int interchange_dim;   /* -1 = the whole last dimension */
    int keep_last_dim;
    int low_rank;          /* r for LowRankRotatedSpace */
    vene_partition part;   /* part.n == 0: no partition */
    /* Parameters, owned; NULL until set or initialised. Names are pyvene's state-dict names. */
    float *original;       /* "rotate_layer.parametrizations.weight.original", E x r */
    float *base;           /* "rotate_layer.parametrizations.weight.0.base", E x E */
    float *W;              /* "rotate_layer.weight", effective E x r (r = E for full rotations) */
    float boundary;        /* "intervention_boundaries" [1] */
    float temperature;     /* "temperature" [] */
    float *masks;          /* "masks" [E] (SigmoidMaskRotated) or "mask" [D] (SigmoidMask) */
    int masks_len;
    double *noise;         /* "noise" 1 x 4 x D, float64 */
    int noise_units, noise_dim;
    float noise_level;     /* "noise_level" [] */
    float *source_repr;    /* constant source ("source_representation"), owned */
    int64_t source_repr_numel;
    /* Gradients (owned; allocated by vene_iv_grad_alloc): of the effective W, of the
     * trainable `original` (from grad_W by vene_iv_grad_finish), of the boundary and of
     * masks/mask. The temperature is a fixed hyper-parameter (spec §16 #17, intended). */
    float *grad_W, *grad_original, *grad_masks;
    float grad_boundary;
    /* AutoencoderIntervention (iv_autoencoder.c): latent width (carried as low_rank), the
     * "autoencoder.encoder.0.{weight,bias}" (L x E, L) and "autoencoder.decoder.0.{weight,
     * bias}" (E x L, E) parameters and their gradients, all owned */
    float *ae[4], *ae_grad[4];
} vene_iv;

/* Initialise for a type with pyvene's defaults (temperature 50, boundary 0.5, masks 100,
 * SigmoidMask mask 0 / temperature 0.01, noise level 0.13462981581687927...). embed_dim may
 * be -1. low_rank is used by LowRankRotatedSpace. Parameters stay NULL until
 * vene_iv_set_param or vene_iv_finalize. */
int vene_iv_init(vene_iv *iv, vene_iv_type type, int embed_dim, int low_rank, vene_error *err);
/* partition_json-like input: n parts, each either a [begin, end) range (is_range[j] = 1,
 * vals a pair) or an explicit coordinate list. */
int vene_iv_set_partition(vene_iv *iv, int n, const int *lens, const int *const *vals,
                          const int *is_range, vene_error *err);
/* Load one parameter by its pyvene state-dict name from a tensor; checks shape and dtype.
 * Unknown names for the type are errors naming the parameter and the type. */
int vene_iv_set_param(vene_iv *iv, const char *name, const st_tensor *t, vene_error *err);
/* Complete the parameters: W from original and base when W is absent (orthogonal
 * parametrisation, spec §8.12), or a deterministic seeded initialisation when nothing was
 * given (W orthonormal, original = -I pattern, base = completion). */
int vene_iv_finalize(vene_iv *iv, uint64_t seed, vene_error *err);
void vene_iv_free(vene_iv *iv);

/* Subspace selection for one call: n_rows == 0 means none; 1 row applies to every example;
 * B rows: row b applies to example b. Ids index the partition when there is one, else
 * coordinates directly. */
typedef struct vene_subspaces {
    int n_rows;
    const int *row_offsets;   /* n_rows + 1 */
    const int *ids;
} vene_subspaces;

/* Apply the intervention to the gathered base block in place.
 *  base:   B x ... block (see top). Flattened internally for distributed types (spec §8.1,
 *          Boundless included): 3-D B x k x D -> B x (k*D); 4-D B x k1 x k2 x d ->
 *          B x k2 x (k1*d) (heads concatenated per position); then restored.
 *  source: same shape as base, or any shape whose last dim equals base's (broadcast), or
 *          NULL for types that need none (a constant source comes from iv->source_repr when
 *          source is NULL).
 *  collected: for Collect, receives a newly allocated block (base[..., C]) owned by the
 *          caller (free collected->data with free()); NULL for other types.
 * Errors: subspace id past the partition or dimension, shape mismatches, noise units != 4;
 * each message names what was wrong with sizes. */
int vene_iv_apply(const vene_iv *iv, vene_tensor *base, const vene_tensor *source,
                  const vene_subspaces *ss, vene_tensor *collected, vene_error *err);

/* ---- reverse mode (iv_grad.c) ---- */

/* Allocate (zeroed) gradient buffers for the type's trainable parameters; idempotent. */
int vene_iv_grad_alloc(vene_iv *iv, vene_error *err);
void vene_iv_zero_grad(vene_iv *iv);
/* Backward of vene_iv_apply: x is the base block as apply received it (before the
 * intervention), source as given to apply; g holds d(out) on entry and d(x) on return;
 * dsrc (NULL = not wanted) accumulates d(source) in the full base-shaped layout (so only
 * for sources of the base's shape). Parameter gradients accumulate into grad_W,
 * grad_boundary, grad_masks. Collect, Noise and Zero have no parameters; callbacks have
 * no backward (VENE_ERR_UNSUPPORTED). */
int vene_iv_backward(vene_iv *iv, const vene_tensor *x, const vene_tensor *source, const vene_subspaces *ss,
                     vene_tensor *g, float *dsrc, vene_error *err);
/* grad_original from grad_W through the orthogonal parametrisation (call once after the
 * backward(s) of a step, before the optimizer reads grad_original). */
int vene_iv_grad_finish(vene_iv *iv, vene_error *err);
/* d(original) from d(W) for W = base * Q(original) (overwrites d_original). */
int vene_orthogonal_backward(const float *original, const float *base, int E, int r, const float *dW,
                             float *d_original, vene_error *err);

/* Orthogonal parametrisation (spec §8.12): W (E x r) = base (E x E) * Q(original (E x r)).
 * Square: Q = expm(tril(O) - tril(O)^T). Tall: Householder product with tau = 2/(1+|v|^2),
 * columns multiplied by (int)O_jj. Computed in double. */
int vene_orthogonal_weight(const float *original, const float *base, int E, int r, float *W,
                           vene_error *err);

#endif
