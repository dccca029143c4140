#include "models/kv_cache.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int vene_kv_new(const vene_model *m, int B, int cap, vene_kv_cache **out, vene_error *err) {
    *out = NULL;
    if (B <= 0 || cap <= 0) return vene_errorf(err, VENE_ERR_ARG, "KV cache: batch %d and capacity %d must be positive", B, cap);
    if (m->n_ctx > 0 && cap > m->n_ctx)
        return vene_errorf(err, VENE_ERR_RANGE, "KV cache: %d positions exceed the model's %d", cap, m->n_ctx);
    vene_kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    kv->n_layer = m->n_layer;
    kv->B = B;
    kv->cap = cap;
    kv->width = m->n_kv_head * m->head_dim;
    size_t n = (size_t)m->n_layer * (size_t)B * (size_t)cap * (size_t)kv->width;
    kv->k = malloc(n * sizeof(float));
    kv->v = malloc(n * sizeof(float));
    kv->mask = malloc((size_t)B * (size_t)cap);
    if (!kv->k || !kv->v || !kv->mask) {
        vene_kv_free(kv);
        return vene_errorf(err, VENE_ERR_MEMORY, "KV cache: out of memory (%zu MB for %d x %d positions)",
                           2 * n * sizeof(float) >> 20, B, cap);
    }
    *out = kv;
    return VENE_OK;
}

void vene_kv_free(vene_kv_cache *kv) {
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv->mask);
    free(kv);
}

int vene_run_set_kv(vene_run *rs, vene_kv_cache *kv, vene_error *err) {
    if (kv && (kv->n_layer != rs->m->n_layer || kv->width != rs->m->n_kv_head * rs->m->head_dim))
        return vene_errorf(err, VENE_ERR_ARG, "KV cache made for another model (%d layers x %d, this one %d x %d)", kv->n_layer,
                           kv->width, rs->m->n_layer, rs->m->n_kv_head * rs->m->head_dim);
    if (kv) kv->len = 0;
    rs->kv = kv;
    return VENE_OK;
}

int vene_kv_past(const vene_run *rs) { return rs->kv ? rs->kv->len : 0; }

int vene_kv_begin(vene_run *rs, const vene_batch *b, size_t *extra_bytes, vene_error *err) {
    vene_kv_cache *kv = rs->kv;
    *extra_bytes = 0;
    if (!kv) return VENE_OK;
    if (!rs->m->arch->kv_cached)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: no KV-cached forward for this architecture", rs->m->arch->model_type);
    if (b->batch != kv->B)
        return vene_errorf(err, VENE_ERR_ARG, "KV cache holds %d examples, the batch has %d", kv->B, b->batch);
    if (b->seq > kv->cap - kv->len)
        return vene_errorf(err, VENE_ERR_RANGE, "KV cache full: %d positions stored, %d more do not fit in %d", kv->len,
                           b->seq, kv->cap);
    for (int i = 0; i < kv->B; i++)
        for (int s = 0; s < b->seq; s++)
            kv->mask[(size_t)i * kv->cap + kv->len + s] = b->attn_mask ? b->attn_mask[(size_t)i * b->seq + s] != 0 : 1;
    /* attention probabilities grow from B x H x S x S to B x H x S x (past + S) */
    *extra_bytes = (size_t)b->batch * (size_t)rs->m->n_head * (size_t)b->seq * (size_t)kv->len * sizeof(float) + 64;
    return VENE_OK;
}

void vene_kv_commit(vene_run *rs, int S) {
    if (rs->kv) rs->kv->len += S;
}

void vene_kv_layer(vene_run *rs, int layer, const float *k, const float *v, int ld, const uint8_t *mask, int B, int S,
                   vk_kv *out) {
    vene_kv_cache *kv = rs->kv;
    if (!kv) {
        *out = (vk_kv){k, v, ld, (int64_t)S * ld, S, 0, mask, S};
        return;
    }
    const size_t W = (size_t)kv->width, per_b = (size_t)kv->cap * W;
    float *K = kv->k + (size_t)layer * B * per_b, *V = kv->v + (size_t)layer * B * per_b;
    for (int b = 0; b < B; b++)
        for (int s = 0; s < S; s++) {
            size_t dst = b * per_b + (size_t)(kv->len + s) * W, src = ((size_t)b * S + s) * (size_t)ld;
            memcpy(K + dst, k + src, W * sizeof(float));
            memcpy(V + dst, v + src, W * sizeof(float));
        }
    *out = (vk_kv){K, V, (int)W, (int64_t)per_b, kv->len + S, kv->len, kv->mask, kv->cap};
}
