/* GGUF metadata reader (llama.cpp's model/vocabulary container), for vocabularies.
 *
 * Format (version 2 and 3, little-endian): "GGUF", u32 version, u64 tensor count, u64
 * key/value count, then that many entries: a string key, a u32 value type, the value.
 * Strings are a u64 byte count and the bytes (no NUL). An array is a u32 element type,
 * a u64 count and the elements. Tensor descriptions and data follow; this reader stops
 * before them.
 *
 * Everything is validated while opening: every length against the bytes left, every
 * type code, no nested arrays, no duplicate keys. After a successful open, the getters
 * cannot read outside the file. Messages name the file, the key and what was expected. */
#ifndef VENE_IO_GGUF_H
#define VENE_IO_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "vene.h"

typedef enum gguf_type {
    GGUF_UINT8, GGUF_INT8, GGUF_UINT16, GGUF_INT16, GGUF_UINT32, GGUF_INT32, GGUF_FLOAT32,
    GGUF_BOOL, GGUF_STRING, GGUF_ARRAY, GGUF_UINT64, GGUF_INT64, GGUF_FLOAT64, GGUF_TYPE_COUNT
} gguf_type;

const char *gguf_type_name(gguf_type t); /* "uint32", "array", ... */

/* A string inside the file: not NUL-terminated. */
typedef struct gguf_str {
    const char *ptr;
    uint64_t len;
} gguf_str;

typedef struct gguf_kv {
    gguf_str key;
    gguf_type type;          /* GGUF_ARRAY for arrays */
    gguf_type elem;          /* arrays: the element type */
    uint64_t n;              /* arrays: element count */
    const unsigned char *at; /* scalars: the value; strings: the length prefix; arrays: element 0 */
    const uint64_t *str_at;  /* string arrays: offset of each element's length prefix from `at` */
} gguf_kv;

typedef struct gguf_file gguf_file;

/* Maps the file read-only and validates its metadata (tensor data is never touched). */
int gguf_open(const char *path, gguf_file **out, vene_error *err);
/* The same on a buffer, which must outlive the gguf_file; `label` names it in messages. */
int gguf_open_memory(const void *buf, size_t len, const char *label, gguf_file **out, vene_error *err);
void gguf_close(gguf_file *g);

const char *gguf_label(const gguf_file *g);
uint32_t gguf_version(const gguf_file *g);
uint64_t gguf_kv_count(const gguf_file *g);
const gguf_kv *gguf_kv_at(const gguf_file *g, uint64_t i);
/* NULL when the key is absent. */
const gguf_kv *gguf_find(const gguf_file *g, const char *key);

/* Typed getters. When `found` is NULL the key is required; otherwise a missing key sets
 * *found = 0 and returns VENE_OK with *out untouched. A present key of the wrong type or
 * out of range is always an error. */
int gguf_get_str(const gguf_file *g, const char *key, gguf_str *out, int *found, vene_error *err);
/* Any integer type whose value lies in [lo, hi]. */
int gguf_get_int(const gguf_file *g, const char *key, int64_t lo, int64_t hi, int64_t *out, int *found,
                 vene_error *err);
int gguf_get_bool(const gguf_file *g, const char *key, int *out, int *found, vene_error *err);
/* An array; `elem` is the element type wanted, or GGUF_TYPE_COUNT for "any integer type". */
int gguf_get_array(const gguf_file *g, const char *key, gguf_type elem, const gguf_kv **out, int *found,
                   vene_error *err);

/* Elements of a validated array (i < kv->n; the caller checked the element type). */
gguf_str gguf_arr_str(const gguf_kv *kv, uint64_t i);
float gguf_arr_f32(const gguf_kv *kv, uint64_t i);
int64_t gguf_arr_int(const gguf_kv *kv, uint64_t i); /* any integer element type */

#endif
