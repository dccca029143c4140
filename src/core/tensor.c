#include "core/tensor.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"

int64_t vene_tensor_numel(const vene_tensor *t) {
    if (!t || t->ndim < 0) return 0; /* a 0-d tensor is a scalar: 1 element */
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}

vene_tensor vene_tensor_view(float *data, int ndim, const int64_t *shape) {
    vene_tensor t;
    memset(&t, 0, sizeof t);
    t.data = data;
    t.ndim = ndim > VENE_MAX_DIMS ? VENE_MAX_DIMS : ndim;
    for (int i = 0; i < t.ndim; i++) t.shape[i] = shape[i];
    return t;
}

vene_tensor vene_tensor_2d(float *data, int64_t a, int64_t b) {
    int64_t s[2] = {a, b};
    return vene_tensor_view(data, 2, s);
}

vene_tensor vene_tensor_3d(float *data, int64_t a, int64_t b, int64_t c) {
    int64_t s[3] = {a, b, c};
    return vene_tensor_view(data, 3, s);
}

vene_tensor vene_tensor_4d(float *data, int64_t a, int64_t b, int64_t c, int64_t d) {
    int64_t s[4] = {a, b, c, d};
    return vene_tensor_view(data, 4, s);
}

int vene_tensor_same_shape(const vene_tensor *a, const vene_tensor *b) {
    if (a->ndim != b->ndim) return 0;
    for (int i = 0; i < a->ndim; i++)
        if (a->shape[i] != b->shape[i]) return 0;
    return 1;
}

const char *vene_shape_str(const vene_tensor *t, char *buf, size_t n) {
    size_t off = 0;
    off += (size_t)snprintf(buf + off, n - off, "[");
    for (int i = 0; i < t->ndim && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, i ? ", %lld" : "%lld", (long long)t->shape[i]);
    if (off < n) snprintf(buf + off, n - off, "]");
    return buf;
}

int vene_arena_reserve(vene_arena *a, size_t bytes, vene_error *err) {
    if (a->limit && bytes > a->limit) {
        char need[64], lim[64];
        return vene_errorf(err, VENE_ERR_MEMORY, "needs %s of run memory, over the memory limit of %s",
                           vene_bytes_str(bytes, need, sizeof need), vene_bytes_str(a->limit, lim, sizeof lim));
    }
    bytes = (bytes + 63) & ~(size_t)63;
    if (bytes <= a->cap) return VENE_OK;
    free(a->base);
    a->base = NULL;
    a->cap = a->used = 0;
    if (posix_memalign((void **)&a->base, 64, bytes) != 0 || !a->base)
        return vene_errorf(err, VENE_ERR_MEMORY, "cannot allocate %zu bytes of run memory", bytes);
    a->cap = bytes;
    return VENE_OK;
}

float *vene_arena_floats(vene_arena *a, size_t n) {
    size_t bytes = (n * sizeof(float) + 63) & ~(size_t)63;
    if (a->used + bytes > a->cap) return NULL;
    float *p = (float *)(a->base + a->used);
    a->used += bytes;
    if (a->used > a->high_water) a->high_water = a->used;
    return p;
}

void vene_arena_reset(vene_arena *a) { a->used = 0; }

void vene_arena_free(vene_arena *a) {
    free(a->base);
    memset(a, 0, sizeof *a);
}

const char *vene_bytes_str(uint64_t bytes, char *buf, size_t n) {
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"};
    double v = (double)bytes / 1024;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    snprintf(buf, n, "%.1f %s (%llu bytes)", v, unit[u], (unsigned long long)bytes);
    return buf;
}
