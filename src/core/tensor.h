/* Float32 tensor helpers and the bump arena that makes a forward allocation-free. */
#ifndef VENE_CORE_TENSOR_H
#define VENE_CORE_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "vene.h"

/* Make a tensor view over data with the given shape (ndim <= VENE_MAX_DIMS). */
vene_tensor vene_tensor_view(float *data, int ndim, const int64_t *shape);
vene_tensor vene_tensor_2d(float *data, int64_t a, int64_t b);
vene_tensor vene_tensor_3d(float *data, int64_t a, int64_t b, int64_t c);
vene_tensor vene_tensor_4d(float *data, int64_t a, int64_t b, int64_t c, int64_t d);
int vene_tensor_same_shape(const vene_tensor *a, const vene_tensor *b);
/* "[1, 5, 64]" into buf. */
const char *vene_shape_str(const vene_tensor *t, char *buf, size_t n);

/* One block of 64-byte aligned memory handed out by bumping an offset. Reset between
 * forwards; grown (reallocated) only between forwards, never during one. */
typedef struct vene_arena {
    unsigned char *base;
    size_t cap, used, high_water;
    size_t limit;            /* most bytes a reservation may take; 0 = no limit */
} vene_arena;

int vene_arena_reserve(vene_arena *a, size_t bytes, vene_error *err);
/* NULL when the reservation is exhausted (a sizing bug: callers report it). */
float *vene_arena_floats(vene_arena *a, size_t n);
void vene_arena_reset(vene_arena *a);
void vene_arena_free(vene_arena *a);

/* "1.5 MiB (1605696 bytes)" into buf: sizes in messages about memory limits. */
const char *vene_bytes_str(uint64_t bytes, char *buf, size_t n);
/* a * b, or UINT64_MAX when the product does not fit (memory estimates saturate). */
static inline uint64_t vene_sat_mul(uint64_t a, uint64_t b) { return b && a > UINT64_MAX / b ? UINT64_MAX : a * b; }
static inline uint64_t vene_sat_add(uint64_t a, uint64_t b) { return a > UINT64_MAX - b ? UINT64_MAX : a + b; }

#endif
