/* GGUF metadata reader: every count and length is checked against the bytes left before
 * it is used, so a hostile file can neither read past the buffer nor make us allocate
 * more than a small multiple of its own size. */
#include "io/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"

#define GGUF_MAX_KEY 65535 /* the format's own limit on key length */

static const char *const type_names[GGUF_TYPE_COUNT] = {
    "uint8", "int8", "uint16", "int16", "uint32", "int32", "float32",
    "bool",  "string", "array", "uint64", "int64", "float64"};
static const uint8_t type_sizes[GGUF_TYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *gguf_type_name(gguf_type t) { return (unsigned)t < GGUF_TYPE_COUNT ? type_names[t] : "?"; }

struct gguf_file {
    char *label;
    const unsigned char *base;
    size_t len;
    int mapped;
    uint32_t version;
    uint64_t n_tensors, n_kv;
    gguf_kv *kv;          /* file order */
    const gguf_kv **sorted; /* by key, for lookups */
};

/* ---------------------------------------------------------------- reading */

typedef struct cursor {
    const gguf_file *g;
    const unsigned char *p, *end;
} cursor;

static uint64_t rd_u64(const unsigned char *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

static uint32_t rd_u32(const unsigned char *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static size_t left(const cursor *c) { return (size_t)(c->end - c->p); }
static size_t offset(const cursor *c) { return (size_t)(c->p - c->g->base); }

/* `what` describes the item for the message ("key of entry 3", "value of \"x\""). */
static int take(cursor *c, uint64_t n, const unsigned char **at, const char *what, vene_error *err) {
    if (n > left(c))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: %s needs %llu bytes at offset %zu but only %zu remain",
                           c->g->label, what, (unsigned long long)n, offset(c), left(c));
    *at = c->p;
    c->p += n;
    return VENE_OK;
}

static int take_u32(cursor *c, uint32_t *v, const char *what, vene_error *err) {
    const unsigned char *p = NULL;
    int rc = take(c, 4, &p, what, err);
    if (!rc) *v = rd_u32(p);
    return rc;
}

static int take_u64(cursor *c, uint64_t *v, const char *what, vene_error *err) {
    const unsigned char *p = NULL;
    int rc = take(c, 8, &p, what, err);
    if (!rc) *v = rd_u64(p);
    return rc;
}

static int take_str(cursor *c, gguf_str *s, const char *what, vene_error *err) {
    const unsigned char *p = NULL;
    uint64_t n;
    int rc = take_u64(c, &n, what, err);
    if (!rc) rc = take(c, n, &p, what, err);
    if (!rc) *s = (gguf_str){(const char *)p, n};
    return rc;
}

static int take_type(cursor *c, gguf_type *t, const char *what, vene_error *err) {
    uint32_t v;
    int rc = take_u32(c, &v, what, err);
    if (rc) return rc;
    if (v >= GGUF_TYPE_COUNT)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: %s: unknown value type %u (expected 0..%d)", c->g->label,
                           what, v, GGUF_TYPE_COUNT - 1);
    *t = (gguf_type)v;
    return VENE_OK;
}

static int check_bools(const gguf_file *g, const gguf_kv *kv, const unsigned char *p, uint64_t n,
                       vene_error *err) {
    for (uint64_t i = 0; i < n; i++)
        if (p[i] > 1)
            return vene_errorf(err, VENE_ERR_FORMAT, "%s: key \"%.*s\": bool element %llu is %u (expected 0 or 1)",
                               g->label, (int)kv->key.len, kv->key.ptr, (unsigned long long)i, p[i]);
    return VENE_OK;
}

static int read_array(cursor *c, gguf_kv *kv, const char *what, vene_error *err) {
    const gguf_file *g = c->g;
    int rc = take_type(c, &kv->elem, what, err);
    if (!rc) rc = take_u64(c, &kv->n, what, err);
    if (rc) return rc;
    if (kv->elem == GGUF_ARRAY)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: %s: arrays of arrays are not supported", g->label, what);
    kv->at = c->p;
    if (kv->elem != GGUF_STRING) {
        size_t size = type_sizes[kv->elem];
        if (kv->n > left(c) / size)
            return vene_errorf(err, VENE_ERR_FORMAT,
                               "%s: %s: %llu elements of %s need more than the %zu bytes left at offset %zu",
                               g->label, what, (unsigned long long)kv->n, type_names[kv->elem], left(c), offset(c));
        c->p += kv->n * size;
        return kv->elem == GGUF_BOOL ? check_bools(g, kv, kv->at, kv->n, err) : VENE_OK;
    }
    /* Each string takes at least its 8-byte length, which bounds the offset table by the
     * file size before it is allocated. */
    if (kv->n > left(c) / 8)
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s: %s: %llu strings need more than the %zu bytes left at offset %zu", g->label, what,
                           (unsigned long long)kv->n, left(c), offset(c));
    uint64_t *offs = malloc((kv->n ? kv->n : 1) * sizeof *offs);
    if (!offs) return vene_errorf(err, VENE_ERR_MEMORY, "%s: %s: out of memory", g->label, what);
    kv->str_at = offs;
    for (uint64_t i = 0; i < kv->n; i++) {
        offs[i] = (uint64_t)(c->p - kv->at);
        gguf_str s;
        if ((rc = take_str(c, &s, what, err)))
            return vene_error_prefix(err, "element %llu", (unsigned long long)i);
    }
    return VENE_OK;
}

static int read_value(cursor *c, gguf_kv *kv, const char *what, vene_error *err) {
    int rc = take_type(c, &kv->type, what, err);
    if (rc) return rc;
    if (kv->type == GGUF_ARRAY) return read_array(c, kv, what, err);
    kv->at = c->p;
    if (kv->type == GGUF_STRING) {
        gguf_str s;
        return take_str(c, &s, what, err);
    }
    const unsigned char *p = NULL;
    rc = take(c, type_sizes[kv->type], &p, what, err);
    return !rc && kv->type == GGUF_BOOL ? check_bools(c->g, kv, p, 1, err) : rc;
}

static int key_cmp(const gguf_str *a, const char *b, size_t blen) {
    size_t n = a->len < blen ? (size_t)a->len : blen;
    int d = memcmp(a->ptr, b, n);
    return d ? d : (a->len > blen) - (a->len < blen);
}

static int cmp_kv(const void *x, const void *y) {
    const gguf_kv *a = *(const gguf_kv *const *)x, *b = *(const gguf_kv *const *)y;
    return key_cmp(&a->key, b->key.ptr, (size_t)b->key.len);
}

static int parse(gguf_file *g, vene_error *err) {
    cursor c = {g, g->base, g->base + g->len};
    const unsigned char *magic = NULL;
    int rc = take(&c, 4, &magic, "the magic \"GGUF\"", err);
    if (rc) return rc;
    if (memcmp(magic, "GGUF", 4) != 0)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: not a GGUF file (the first 4 bytes are not \"GGUF\")",
                           g->label);
    if ((rc = take_u32(&c, &g->version, "the version", err))) return rc;
    if (g->version == 1)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: GGUF version 1 is not supported (expected 2 or 3)",
                           g->label);
    if (g->version != 2 && g->version != 3)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED,
                           "%s: GGUF version %u is not supported (expected 2 or 3; a big-endian file reads as "
                           "0x%08x)", g->label, g->version, g->version);
    if ((rc = take_u64(&c, &g->n_tensors, "the tensor count", err))) return rc;
    if ((rc = take_u64(&c, &g->n_kv, "the key/value count", err))) return rc;
    /* An entry takes at least 8 (key length) + 1 (key) + 4 (type) + 1 (value) bytes. */
    if (g->n_kv > left(&c) / 14)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: %llu key/value entries cannot fit in the %zu bytes left",
                           g->label, (unsigned long long)g->n_kv, left(&c));
    g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof *g->kv);
    g->sorted = malloc((g->n_kv ? g->n_kv : 1) * sizeof *g->sorted);
    if (!g->kv || !g->sorted) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", g->label);
    for (uint64_t i = 0; i < g->n_kv; i++) {
        gguf_kv *kv = &g->kv[i];
        char what[128];
        snprintf(what, sizeof what, "the key of entry %llu", (unsigned long long)i);
        if ((rc = take_str(&c, &kv->key, what, err))) return rc;
        if (kv->key.len == 0 || kv->key.len > GGUF_MAX_KEY || memchr(kv->key.ptr, 0, (size_t)kv->key.len))
            return vene_errorf(err, VENE_ERR_FORMAT,
                               "%s: entry %llu: key of %llu bytes (expected 1..%d bytes without NUL)", g->label,
                               (unsigned long long)i, (unsigned long long)kv->key.len, GGUF_MAX_KEY);
        snprintf(what, sizeof what, "the value of \"%.*s\"", kv->key.len > 80 ? 80 : (int)kv->key.len,
                 kv->key.ptr);
        if ((rc = read_value(&c, kv, what, err))) return rc;
        g->sorted[i] = kv;
    }
    qsort(g->sorted, (size_t)g->n_kv, sizeof *g->sorted, cmp_kv);
    for (uint64_t i = 1; i < g->n_kv; i++)
        if (cmp_kv(&g->sorted[i - 1], &g->sorted[i]) == 0)
            return vene_errorf(err, VENE_ERR_FORMAT, "%s: key \"%.*s\" appears more than once", g->label,
                               (int)g->sorted[i]->key.len, g->sorted[i]->key.ptr);
    return VENE_OK;
}

/* ---------------------------------------------------------------- open / close */

void gguf_close(gguf_file *g) {
    if (!g) return;
    if (g->kv)
        for (uint64_t i = 0; i < g->n_kv; i++) free((void *)g->kv[i].str_at);
    free(g->kv);
    free(g->sorted);
    if (g->mapped) munmap((void *)g->base, g->len);
    free(g->label);
    free(g);
}

static int finish_open(gguf_file *g, gguf_file **out, vene_error *err) {
    int rc = parse(g, err);
    if (rc) {
        gguf_close(g);
        return rc;
    }
    *out = g;
    return VENE_OK;
}

static gguf_file *new_file(const char *label) {
    gguf_file *g = calloc(1, sizeof *g);
    if (g && !(g->label = strdup(label))) {
        free(g);
        g = NULL;
    }
    return g;
}

int gguf_open_memory(const void *buf, size_t len, const char *label, gguf_file **out, vene_error *err) {
    if (!out) return vene_errorf(err, VENE_ERR_ARG, "gguf_open_memory: out is NULL");
    *out = NULL;
    if (!buf && len) return vene_errorf(err, VENE_ERR_ARG, "gguf_open_memory: buffer is NULL");
    gguf_file *g = new_file(label ? label : "(memory)");
    if (!g) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    g->base = len ? buf : (const unsigned char *)"";
    g->len = len;
    return finish_open(g, out, err);
}

int gguf_open(const char *path, gguf_file **out, vene_error *err) {
    if (!out) return vene_errorf(err, VENE_ERR_ARG, "gguf_open: out is NULL");
    *out = NULL;
    if (!path) return vene_errorf(err, VENE_ERR_ARG, "gguf_open: path is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vene_errorf(err, VENE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    int rc = VENE_OK;
    if (fstat(fd, &sb) != 0) rc = vene_errorf(err, VENE_ERR_IO, "%s: cannot stat: %s", path, strerror(errno));
    else if (!S_ISREG(sb.st_mode)) rc = vene_errorf(err, VENE_ERR_IO, "%s: not a regular file", path);
    else if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX)
        rc = vene_errorf(err, VENE_ERR_IO, "%s: file too large to map", path);
    gguf_file *g = rc ? NULL : new_file(path);
    if (!rc && !g) rc = vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
    if (!rc) {
        g->len = (size_t)sb.st_size;
        g->base = (const unsigned char *)"";
        if (g->len) {
            /* Only the metadata at the front is read; the tensor data is never paged in. */
            void *m = mmap(NULL, g->len, PROT_READ, MAP_PRIVATE, fd, 0);
            if (m == MAP_FAILED) rc = vene_errorf(err, VENE_ERR_IO, "%s: cannot mmap: %s", path, strerror(errno));
            else g->base = m, g->mapped = 1;
        }
    }
    close(fd);
    if (rc) {
        gguf_close(g);
        return rc;
    }
    return finish_open(g, out, err);
}

/* ---------------------------------------------------------------- lookups */

const char *gguf_label(const gguf_file *g) { return g->label; }
uint32_t gguf_version(const gguf_file *g) { return g->version; }
uint64_t gguf_kv_count(const gguf_file *g) { return g->n_kv; }
const gguf_kv *gguf_kv_at(const gguf_file *g, uint64_t i) { return i < g->n_kv ? &g->kv[i] : NULL; }

const gguf_kv *gguf_find(const gguf_file *g, const char *key) {
    size_t lo = 0, hi = (size_t)g->n_kv, klen = strlen(key);
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int d = key_cmp(&g->sorted[mid]->key, key, klen);
        if (d == 0) return g->sorted[mid];
        if (d < 0) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

static int is_int_type(gguf_type t) {
    return t <= GGUF_INT32 || t == GGUF_UINT64 || t == GGUF_INT64;
}

static const char *kv_type_desc(const gguf_kv *kv, char *buf, size_t n) {
    if (kv->type == GGUF_ARRAY) snprintf(buf, n, "an array of %s", type_names[kv->elem]);
    else snprintf(buf, n, "a %s", type_names[kv->type]);
    return buf;
}

/* Finds key; a missing key is an error unless `found` is given. Returns VENE_OK with
 * *kv == NULL for an optional key that is absent. */
static int lookup(const gguf_file *g, const char *key, const gguf_kv **kv, int *found, vene_error *err) {
    *kv = gguf_find(g, key);
    if (found) *found = *kv != NULL;
    if (!*kv && !found) return vene_errorf(err, VENE_ERR_FORMAT, "%s: key \"%s\" is missing", g->label, key);
    return VENE_OK;
}

static int wrong_type(const gguf_file *g, const char *key, const gguf_kv *kv, const char *want, vene_error *err) {
    char got[64];
    return vene_errorf(err, VENE_ERR_FORMAT, "%s: key \"%s\": expected %s, got %s", g->label, key, want,
                       kv_type_desc(kv, got, sizeof got));
}

int gguf_get_str(const gguf_file *g, const char *key, gguf_str *out, int *found, vene_error *err) {
    const gguf_kv *kv;
    int rc = lookup(g, key, &kv, found, err);
    if (rc || !kv) return rc;
    if (kv->type != GGUF_STRING) return wrong_type(g, key, kv, "a string", err);
    *out = (gguf_str){(const char *)kv->at + 8, rd_u64(kv->at)};
    return VENE_OK;
}

/* Value of an integer at p; unsigned 64-bit values past INT64_MAX saturate (callers
 * range-check). */
static int64_t int_at(gguf_type t, const unsigned char *p) {
    switch (t) {
    case GGUF_UINT8: return p[0];
    case GGUF_INT8: return (int8_t)p[0];
    case GGUF_UINT16: return (uint16_t)(p[0] | p[1] << 8);
    case GGUF_INT16: return (int16_t)(uint16_t)(p[0] | p[1] << 8);
    case GGUF_UINT32: return rd_u32(p);
    case GGUF_INT32: return (int32_t)rd_u32(p);
    case GGUF_UINT64: {
        uint64_t v = rd_u64(p);
        return v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v;
    }
    default: return (int64_t)rd_u64(p); /* GGUF_INT64 */
    }
}

int gguf_get_int(const gguf_file *g, const char *key, int64_t lo, int64_t hi, int64_t *out, int *found,
                 vene_error *err) {
    const gguf_kv *kv;
    int rc = lookup(g, key, &kv, found, err);
    if (rc || !kv) return rc;
    if (!is_int_type(kv->type)) return wrong_type(g, key, kv, "an integer", err);
    int64_t v = int_at(kv->type, kv->at);
    if (v < lo || v > hi)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: key \"%s\" is %lld (expected %lld..%lld)", g->label, key,
                           (long long)v, (long long)lo, (long long)hi);
    *out = v;
    return VENE_OK;
}

int gguf_get_bool(const gguf_file *g, const char *key, int *out, int *found, vene_error *err) {
    const gguf_kv *kv;
    int rc = lookup(g, key, &kv, found, err);
    if (rc || !kv) return rc;
    if (kv->type != GGUF_BOOL) return wrong_type(g, key, kv, "a bool", err);
    *out = kv->at[0];
    return VENE_OK;
}

int gguf_get_array(const gguf_file *g, const char *key, gguf_type elem, const gguf_kv **out, int *found,
                   vene_error *err) {
    const gguf_kv *kv;
    int rc = lookup(g, key, &kv, found, err);
    if (rc || !kv) return rc;
    int ok = kv->type == GGUF_ARRAY && (elem == GGUF_TYPE_COUNT ? is_int_type(kv->elem) : kv->elem == elem);
    if (!ok) {
        char want[64];
        snprintf(want, sizeof want, "an array of %s", elem == GGUF_TYPE_COUNT ? "integers" : type_names[elem]);
        return wrong_type(g, key, kv, want, err);
    }
    *out = kv;
    return VENE_OK;
}

gguf_str gguf_arr_str(const gguf_kv *kv, uint64_t i) {
    const unsigned char *p = kv->at + kv->str_at[i];
    return (gguf_str){(const char *)p + 8, rd_u64(p)};
}

float gguf_arr_f32(const gguf_kv *kv, uint64_t i) {
    uint32_t bits = rd_u32(kv->at + 4 * i);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

int64_t gguf_arr_int(const gguf_kv *kv, uint64_t i) {
    return int_at(kv->elem, kv->at + (size_t)i * type_sizes[kv->elem]);
}
