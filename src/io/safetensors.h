/* safetensors files: a memory-mapped, fully validated reader and an atomic writer.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ...,
 *  "__metadata__": {...}}, then the data; offsets are relative to the end of the header. */
#ifndef VENE_IO_SAFETENSORS_H
#define VENE_IO_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "vene.h"

typedef enum st_dtype {
    ST_F32, ST_F16, ST_BF16, ST_F64, ST_I64, ST_I32, ST_I16, ST_I8, ST_U8, ST_BOOL, ST_DTYPE_COUNT
} st_dtype;

const char *st_dtype_name(st_dtype d);   /* "F32" */
size_t st_dtype_size(st_dtype d);        /* bytes per element */

typedef struct st_tensor {
    const char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[VENE_MAX_DIMS];
    int64_t numel;
    const void *data;   /* points into the mapping; valid while the file is open */
    size_t nbytes;
} st_tensor;

typedef struct st_file st_file;

/* Open and validate: header length within the file, JSON well formed, every entry has a
 * known dtype, a shape whose element count matches its byte range, offsets in range and
 * non-overlapping. Errors name the file and the tensor. */
int st_open(const char *path, st_file **out, vene_error *err);
/* Same checks on an in-memory buffer (the buffer must outlive the st_file; used by fuzzers). */
int st_open_memory(const void *buf, size_t len, const char *label, st_file **out, vene_error *err);
void st_close(st_file *f);
/* Make a mapped file's pages writable (private copy-on-write: the file never changes). */
int st_make_writable(st_file *f, vene_error *err);

const char *st_path(const st_file *f);
int st_count(const st_file *f);
const st_tensor *st_at(const st_file *f, int i);
const st_tensor *st_find(const st_file *f, const char *name);

/* Copy a tensor's elements converted to float32 (F32, F16, BF16, F64, integer types) into
 * dst (numel floats). */
int st_to_f32(const st_tensor *t, float *dst, vene_error *err);
/* Copy an integer tensor (I64/I32/I16/I8/U8/BOOL) converted to int64 into dst. */
int st_to_i64(const st_tensor *t, int64_t *dst, vene_error *err);

/* Writer: collects tensors (copied), then writes them to `path` through a temporary file
 * in the same directory and a rename, so a half-written file never exists. */
typedef struct st_writer st_writer;
st_writer *st_writer_new(void);
int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape,
                  const void *data, vene_error *err);
int st_writer_add_f32(st_writer *w, const char *name, const vene_tensor *t, vene_error *err);
int st_writer_save(const st_writer *w, const char *path, vene_error *err);
void st_writer_free(st_writer *w);

#endif
