/* Training datasets: the JSONL format of `vene train` (docs/training.md) read into
 * examples, and batches built from examples that can share one forward. */
#ifndef VENE_TRAIN_DATASET_H
#define VENE_TRAIN_DATASET_H

#include <stdint.h>

#include "vene.h"

typedef struct ds_input {
    int len;            /* sequence length; 0 = absent (a null source) */
    int32_t *ids;       /* len ids, or NULL */
    float *embeds;      /* len x dim, or NULL */
    int dim;
} ds_input;

typedef struct ds_example {
    ds_input base;
    ds_input *src;      /* n_src entries */
    int n_src;
    int32_t label;
    int n_target;       /* soft target distribution ("target": {"id": p}), 0 = none */
    int32_t *target_ids;
    float *target_p;
    int position;       /* loss position; INT32_MIN = the config's default */
    char *ul, *ss;      /* unit_locations / subspaces JSON text or NULL */
    char *sig;          /* examples with equal signatures can share a batch */
} ds_example;

typedef struct ds_set {
    ds_example *ex;
    int n, cap;
} ds_set;

/* Read a JSONL file; text inputs need tok. Errors name the file, the line and the key. */
int ds_load(const char *path, const vene_tokenizer *tok, ds_set *out, vene_error *err);
void ds_free(ds_set *s);

/* A batch: inputs concatenated, owned; call points into it. */
typedef struct ds_batch {
    vene_batch base;
    vene_batch *srcs;
    const vene_batch **src_ptrs;
    int n_src;
    int32_t *labels;
    int *positions;
    const ds_example **ex;  /* the batch's examples (soft targets) */
    void *mem[8];
    vene_call call;
} ds_batch;

/* Examples idx[0..n) (same signature) into one batch. */
int ds_batch_make(const ds_set *s, const int *idx, int n, int default_position, ds_batch *b, vene_error *err);
void ds_batch_free(ds_batch *b);

#endif
