/* The next token from one row of logits: greedy, or temperature / top-k / top-p sampling
 * (the order and rules of Hugging Face's logits warpers; see vene_gen_params in vene.h). */
#ifndef VENE_ENGINE_SAMPLE_H
#define VENE_ENGINE_SAMPLE_H

#include <stdint.h>

#include "core/rng.h"
#include "vene.h"

typedef struct vene_scored {
    float z;
    int32_t id;
} vene_scored;

/* Scratch for one vocabulary, reused across calls. */
typedef struct vene_sampler {
    int V;
    float *z;          /* scaled logits, then quickselect scratch */
    vene_scored *cand; /* candidates */
} vene_sampler;

int vene_sampler_init(vene_sampler *s, int V, vene_error *err);
void vene_sampler_free(vene_sampler *s);

/* The token for logits[0 .. V-1]; draws one uniform from rng when sampling. */
int32_t vene_sample(vene_sampler *s, const float *logits, const vene_gen_params *p, vene_rng *rng);

#endif
