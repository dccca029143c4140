/* Rotary position embedding settings read from config.json (the base and `rope_scaling`)
 * and the inverse frequencies they give, as Hugging Face's rope initialisers compute
 * them in float32 (transformers 4.43 modeling_rope_utils). Shared by the LLaMA family
 * and GPT-NeoX. */
#ifndef VENE_MODELS_ROPE_H
#define VENE_MODELS_ROPE_H

#include "models/model.h"

enum { VENE_ROPE_DEFAULT = 0, VENE_ROPE_LINEAR, VENE_ROPE_DYNAMIC, VENE_ROPE_LLAMA3 };
#define VENE_ROPE_ALLOW(kind) (1u << (kind))

typedef struct vene_rope {
    int kind;                 /* VENE_ROPE_* */
    int dim;                  /* rotary width (even): frequencies dim / 2 */
    double theta;             /* base */
    double factor;            /* linear, dynamic, llama3 */
    double low_freq_factor, high_freq_factor;
    int original_max_pos;     /* llama3: original_max_position_embeddings */
    int max_pos;              /* max_position_embeddings (dynamic scales beyond it) */
} vene_rope;

/* Read `theta_key` (default theta_default) and `rope_scaling`: null, or an object with
 * "rope_type" (or "type") one of the kinds in `allowed` (a VENE_ROPE_ALLOW mask) and its
 * parameters. Errors name the folder and the key. */
int vene_rope_read(const vene_model *m, const char *theta_key, double theta_default, int dim, int max_pos,
                   unsigned allowed, vene_rope *r, vene_error *err);

/* dim / 2 inverse frequencies for a forward whose positions need `seq_len` (largest
 * position + 1): only "dynamic" depends on it, and only once seq_len > max_pos, where
 * the base grows as NTK-aware scaling prescribes. */
void vene_rope_inv_freq(const vene_rope *r, int seq_len, float *inv);

/* Positions the model accepts: max_pos, or max_pos x factor for "dynamic" (the range
 * dynamic scaling is meant to extend to). */
int vene_rope_max_positions(const vene_rope *r);

#endif
