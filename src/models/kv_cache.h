/* Key/value cache for incremental decoding (the past_key_values of Hugging Face).
 *
 * While a cache is attached to a run state, every vene_forward appends its S new positions
 * to the cache and attends over everything stored so far, so a decoding step costs one
 * token per example instead of the whole sequence. A forward only commits its positions
 * when it succeeds; a failed or stopped one leaves the cache as it was.
 *
 * Keys and values are stored after the hooks on the projections fired: an intervention on
 * a key or value (or anything upstream of them) at step t stays in the cache, which is
 * exactly what a Hugging Face cache holds under pyvene's hooks. */
#ifndef VENE_MODELS_KV_CACHE_H
#define VENE_MODELS_KV_CACHE_H

#include "core/kernels.h"
#include "models/model.h"

typedef struct vene_kv_cache {
    int n_layer, B, cap, width; /* width = n_kv_head * head_dim */
    int len;                    /* positions stored per example */
    float *k, *v;               /* [n_layer][B][cap][width] */
    uint8_t *mask;              /* [B][cap]: 1 = attend, 0 = padding */
} vene_kv_cache;

/* A cache for B examples of up to cap positions (cap <= the model's n_ctx). */
int vene_kv_new(const vene_model *m, int B, int cap, vene_kv_cache **out, vene_error *err);
void vene_kv_free(vene_kv_cache *kv);

/* Attach kv (emptied) to rs, or detach with NULL. The cache is borrowed: it must outlive
 * the attachment. */
int vene_run_set_kv(vene_run *rs, vene_kv_cache *kv, vene_error *err);
/* Positions already cached (0 without a cache): the offset of this forward's first token. */
int vene_kv_past(const vene_run *rs);

/* vene_forward's side: check that batch b fits, store its padding mask, and report the
 * extra scratch its attention needs; commit makes its S positions part of the cache. */
int vene_kv_begin(vene_run *rs, const vene_batch *b, size_t *extra_bytes, vene_error *err);
void vene_kv_commit(vene_run *rs, int S);

/* Inside a forward, layer `layer`: the keys and values attention reads. k and v are this
 * pass's B x S rows (row stride ld). Without a cache they are used in place; with one they
 * are appended and the view covers every cached position. */
void vene_kv_layer(vene_run *rs, int layer, const float *k, const float *v, int ld, const uint8_t *mask, int B, int S,
                   vk_kv *out);

#endif
