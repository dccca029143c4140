/* safetensors reader (mmap + full validation) and atomic writer. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* O_TMPFILE */
#endif
#include "io/safetensors.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/strbuf.h"

/* The Python library refuses headers over 100 MB; so do we. */
#define ST_MAX_HEADER ((uint64_t)100 * 1000 * 1000)
/* Offsets and dims travel through JSON doubles: keep them exactly representable. */
#define ST_MAX_INT ((double)(1ULL << 53))

/* ---------------------------------------------------------------- dtypes */

static const char *const dtype_names[ST_DTYPE_COUNT] = {"F32", "F16", "BF16", "F64", "I64",
                                                        "I32", "I16", "I8",   "U8",  "BOOL"};
static const size_t dtype_sizes[ST_DTYPE_COUNT] = {4, 2, 2, 8, 8, 4, 2, 1, 1, 1};

const char *st_dtype_name(st_dtype d) {
    return (unsigned)d < ST_DTYPE_COUNT ? dtype_names[d] : "?";
}

size_t st_dtype_size(st_dtype d) { return (unsigned)d < ST_DTYPE_COUNT ? dtype_sizes[d] : 0; }

static int dtype_from_name(const char *s, st_dtype *out) {
    for (int i = 0; i < ST_DTYPE_COUNT; i++) {
        if (strcmp(s, dtype_names[i]) == 0) {
            *out = (st_dtype)i;
            return 1;
        }
    }
    return 0;
}

static int host_little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

/* ---------------------------------------------------------------- reader */

struct st_file {
    char *path;              /* label used in messages */
    const unsigned char *base;
    size_t len;
    int mapped;              /* base is our mmap (unmap on close) */
    int n;
    st_tensor *tensors;      /* header order */
    const st_tensor **by_name;
};

static void shape_to_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t at = 0;
    int w = snprintf(buf, n, "[");
    if (w > 0) at = (size_t)w;
    for (int i = 0; i < ndim && at < n; i++) {
        w = snprintf(buf + at, n - at, "%s%lld", i ? ", " : "", (long long)shape[i]);
        if (w > 0) at += (size_t)w;
    }
    if (at < n) snprintf(buf + at, n - at, "]");
}

/* A JSON number that is a non-negative integer below 2^53. */
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0) || d >= ST_MAX_INT || floor(d) != d) return 0;
    *out = (uint64_t)d;
    return 1;
}

typedef struct range_ref {
    uint64_t begin, end;
    const char *name;
} range_ref;

static int cmp_range(const void *a, const void *b) {
    const range_ref *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return 0;
}

static int cmp_tensor_ptr_name(const void *a, const void *b) {
    const st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

static int cmp_key_tensor(const void *key, const void *elem) {
    const st_tensor *const *t = elem;
    return strcmp((const char *)key, (*t)->name);
}

static void file_free(st_file *f) {
    if (!f) return;
    if (f->tensors) {
        for (int i = 0; i < f->n; i++) free((char *)f->tensors[i].name);
        free(f->tensors);
    }
    free(f->by_name);
    if (f->mapped && f->base) munmap((void *)f->base, f->len);
    free(f->path);
    free(f);
}

/* Parse one header entry into t (name already set). */
static int parse_entry(const char *label, const cJSON *e, uint64_t data_len, st_tensor *t,
                       range_ref *r, const unsigned char *data, vene_error *err) {
    const char *name = t->name;
    if (!cJSON_IsObject(e))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: tensor '%s': header entry is not a JSON object",
                           label, name);
    const cJSON *jd = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *js = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *jo = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!jd) return vene_errorf(err, VENE_ERR_FORMAT, "%s: tensor '%s': missing \"dtype\"", label, name);
    if (!js) return vene_errorf(err, VENE_ERR_FORMAT, "%s: tensor '%s': missing \"shape\"", label, name);
    if (!jo)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: tensor '%s': missing \"data_offsets\"", label, name);
    if (!cJSON_IsString(jd))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: tensor '%s': \"dtype\" is not a string", label, name);
    if (!dtype_from_name(jd->valuestring, &t->dtype))
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s: tensor '%s': unknown dtype \"%.40s\" (expected F32, F16, BF16, F64, "
                           "I64, I32, I16, I8, U8 or BOOL)",
                           label, name, jd->valuestring);
    if (!cJSON_IsArray(js))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: tensor '%s': \"shape\" is not an array", label, name);
    int nd = cJSON_GetArraySize(js);
    if (nd > VENE_MAX_DIMS)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: tensor '%s': %d dimensions, at most %d supported",
                           label, name, nd, VENE_MAX_DIMS);
    t->ndim = nd;
    int i = 0, has_zero = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, js) {
        uint64_t v;
        if (!json_uint(d, &v)) {
            if (cJSON_IsNumber(d) && d->valuedouble < 0)
                return vene_errorf(err, VENE_ERR_FORMAT, "%s: tensor '%s': negative dimension %g at %d",
                                   label, name, d->valuedouble, i);
            return vene_errorf(err, VENE_ERR_FORMAT,
                               "%s: tensor '%s': shape[%d] is not a non-negative integer", label, name, i);
        }
        if (v == 0) has_zero = 1;
        t->shape[i++] = (int64_t)v;
    }
    uint64_t numel = has_zero ? 0 : 1;
    int overflow = 0;
    for (int k = 0; k < nd && numel; k++) {
        uint64_t v = (uint64_t)t->shape[k];
        if (numel > UINT64_MAX / v) {
            overflow = 1;
            break;
        }
        numel *= v;
    }
    if (!cJSON_IsArray(jo) || cJSON_GetArraySize(jo) != 2)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: tensor '%s': \"data_offsets\" is not [begin, end]",
                           label, name);
    uint64_t begin, end;
    if (!json_uint(jo->child, &begin) || !json_uint(jo->child->next, &end))
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s: tensor '%s': \"data_offsets\" are not non-negative integers", label, name);
    if (begin > end)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: tensor '%s': data_offsets begin %llu > end %llu",
                           label, name, (unsigned long long)begin, (unsigned long long)end);
    if (end > data_len)
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s: tensor '%s': data_offsets [%llu, %llu] past the end of the data section "
                           "(%llu bytes)",
                           label, name, (unsigned long long)begin, (unsigned long long)end,
                           (unsigned long long)data_len);
    size_t es = dtype_sizes[t->dtype];
    /* numel can only be huge with every dim non-zero; then the bytes cannot fit the file. */
    if (overflow || numel > (uint64_t)INT64_MAX / es || numel * es != end - begin) {
        char sh[160];
        shape_to_str(t->ndim, t->shape, sh, sizeof sh);
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s: tensor '%s': shape %s of %s needs %s%llu bytes but data_offsets "
                           "[%llu, %llu] hold %llu",
                           label, name, sh, dtype_names[t->dtype], overflow ? "over " : "",
                           overflow ? (unsigned long long)UINT64_MAX
                                    : (unsigned long long)(numel * (uint64_t)es),
                           (unsigned long long)begin, (unsigned long long)end,
                           (unsigned long long)(end - begin));
    }
    t->numel = (int64_t)numel;
    t->data = data + begin;
    t->nbytes = (size_t)(end - begin);
    r->begin = begin;
    r->end = end;
    r->name = name;
    return VENE_OK;
}

static int check_metadata(const char *label, const cJSON *m, vene_error *err) {
    if (!cJSON_IsObject(m))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: \"__metadata__\" is not a JSON object", label);
    const cJSON *v;
    cJSON_ArrayForEach(v, m) {
        if (!cJSON_IsString(v))
            return vene_errorf(err, VENE_ERR_FORMAT, "%s: \"__metadata__\" key '%s' is not a string",
                               label, v->string ? v->string : "?");
    }
    return VENE_OK;
}

/* Validate buf[0..len) and fill f (whose path/base/len are set). */
static int parse_file(st_file *f, vene_error *err) {
    const char *label = f->path;
    const unsigned char *b = f->base;
    if (f->len < 8)
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s: file is %zu bytes, too short for the 8-byte safetensors header length",
                           label, f->len);
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = (hlen << 8) | b[i];
    if (hlen > f->len - 8)
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s: header length %llu runs past the end of the file (%zu bytes; truncated?)",
                           label, (unsigned long long)hlen, f->len);
    if (hlen > ST_MAX_HEADER)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: header length %llu exceeds the %llu-byte limit",
                           label, (unsigned long long)hlen, (unsigned long long)ST_MAX_HEADER);
    if (hlen < 2)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: header of %llu bytes is not a JSON object", label,
                           (unsigned long long)hlen);
    /* Parse from a NUL-terminated copy (the header only; the data stays mapped). */
    char *text = malloc((size_t)hlen + 1);
    if (!text) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory for the header", label);
    memcpy(text, b + 8, (size_t)hlen);
    text[hlen] = '\0';
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 0);
    int rc = VENE_OK;
    if (!root) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: header is not valid JSON (error near byte %zu)",
                         label, at);
        goto done;
    }
    for (const char *p = end; p < text + hlen; p++) {
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            rc = vene_errorf(err, VENE_ERR_FORMAT,
                             "%s: header has trailing bytes after the JSON object (at byte %zu)", label,
                             (size_t)(p - text));
            goto done;
        }
    }
    if (!cJSON_IsObject(root)) {
        rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: header is JSON but not an object", label);
        goto done;
    }
    int count = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (!e->string) {
            rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: header entry without a name", label);
            goto done;
        }
        if (strcmp(e->string, "__metadata__") == 0) {
            if ((rc = check_metadata(label, e, err)) != VENE_OK) goto done;
            continue;
        }
        count++;
    }
    uint64_t data_len = f->len - 8 - hlen;
    const unsigned char *data = b + 8 + hlen;
    range_ref *ranges = NULL;
    if (count > 0) {
        f->tensors = calloc((size_t)count, sizeof *f->tensors);
        f->by_name = malloc((size_t)count * sizeof *f->by_name);
        ranges = malloc((size_t)count * sizeof *ranges);
        if (!f->tensors || !f->by_name || !ranges) {
            free(ranges);
            rc = vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory for %d tensors", label, count);
            goto done;
        }
    }
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        st_tensor *t = &f->tensors[f->n];
        t->name = strdup(e->string);
        if (!t->name) {
            rc = vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", label);
            break;
        }
        f->n++;
        if ((rc = parse_entry(label, e, data_len, t, &ranges[f->n - 1], data, err)) != VENE_OK) break;
    }
    if (rc == VENE_OK && count > 0) {
        /* Names unique (JSON allows repeated keys; a state dict does not). */
        for (int i = 0; i < count; i++) f->by_name[i] = &f->tensors[i];
        qsort(f->by_name, (size_t)count, sizeof *f->by_name, cmp_tensor_ptr_name);
        for (int i = 1; i < count; i++) {
            if (strcmp(f->by_name[i - 1]->name, f->by_name[i]->name) == 0) {
                rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: tensor '%s' appears twice in the header",
                                 label, f->by_name[i]->name);
                break;
            }
        }
    }
    if (rc == VENE_OK && count > 1) {
        /* Byte ranges may not overlap (empty ranges occupy nothing). */
        qsort(ranges, (size_t)count, sizeof *ranges, cmp_range);
        const range_ref *last = NULL;
        for (int i = 0; i < count; i++) {
            if (ranges[i].begin == ranges[i].end) continue;
            if (last && ranges[i].begin < last->end) {
                rc = vene_errorf(err, VENE_ERR_FORMAT,
                                 "%s: tensor '%s' data_offsets [%llu, %llu] overlap tensor '%s' "
                                 "[%llu, %llu]",
                                 label, ranges[i].name, (unsigned long long)ranges[i].begin,
                                 (unsigned long long)ranges[i].end, last->name,
                                 (unsigned long long)last->begin, (unsigned long long)last->end);
                break;
            }
            if (!last || ranges[i].end > last->end) last = &ranges[i];
        }
    }
    free(ranges);
done:
    cJSON_Delete(root);
    free(text);
    return rc;
}

static int finish_open(st_file *f, st_file **out, vene_error *err) {
    int rc = parse_file(f, err);
    if (rc != VENE_OK) {
        file_free(f);
        return rc;
    }
    *out = f;
    return VENE_OK;
}

int st_open(const char *path, st_file **out, vene_error *err) {
    if (!out) return vene_errorf(err, VENE_ERR_ARG, "st_open: out is NULL");
    *out = NULL;
    if (!path) return vene_errorf(err, VENE_ERR_ARG, "st_open: path is NULL");
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return vene_errorf(err, VENE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        int e = errno;
        close(fd);
        return vene_errorf(err, VENE_ERR_IO, "%s: cannot stat: %s", path, strerror(e));
    }
    if (!S_ISREG(sb.st_mode)) {
        close(fd);
        return vene_errorf(err, VENE_ERR_IO, "%s: not a regular file", path);
    }
    if ((uint64_t)sb.st_size > (uint64_t)SIZE_MAX) {
        close(fd);
        return vene_errorf(err, VENE_ERR_IO, "%s: file too large to map", path);
    }
    st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(path))) {
        free(f);
        close(fd);
        return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
    }
    f->len = (size_t)sb.st_size;
    if (f->len > 0) {
        void *m = mmap(NULL, f->len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            int e = errno;
            close(fd);
            file_free(f);
            return vene_errorf(err, VENE_ERR_IO, "%s: cannot mmap: %s", path, strerror(e));
        }
        f->base = m;
        f->mapped = 1;
    } else {
        f->base = (const unsigned char *)"";
    }
    close(fd);
    return finish_open(f, out, err);
}

int st_open_memory(const void *buf, size_t len, const char *label, st_file **out, vene_error *err) {
    if (!out) return vene_errorf(err, VENE_ERR_ARG, "st_open_memory: out is NULL");
    *out = NULL;
    if (!label) label = "<memory>";
    if (!buf && len) return vene_errorf(err, VENE_ERR_ARG, "%s: buffer is NULL", label);
    st_file *f = calloc(1, sizeof *f);
    if (!f || !(f->path = strdup(label))) {
        free(f);
        return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", label);
    }
    f->base = buf ? buf : (const void *)"";
    f->len = len;
    return finish_open(f, out, err);
}

int st_make_writable(st_file *f, vene_error *err) {
    if (!f->mapped) return vene_errorf(err, VENE_ERR_STATE, "%s: not a mapped file, cannot be made writable", f->path);
    /* the mapping is MAP_PRIVATE: writes go to private copy-on-write pages, never to the file */
    if (f->len && mprotect((void *)f->base, f->len, PROT_READ | PROT_WRITE) != 0)
        return vene_errorf(err, VENE_ERR_IO, "%s: cannot make the mapping writable: %s", f->path, strerror(errno));
    return VENE_OK;
}

void st_close(st_file *f) { file_free(f); }

const char *st_path(const st_file *f) { return f ? f->path : NULL; }
int st_count(const st_file *f) { return f ? f->n : 0; }

const st_tensor *st_at(const st_file *f, int i) {
    if (!f || i < 0 || i >= f->n) return NULL;
    return &f->tensors[i];
}

const st_tensor *st_find(const st_file *f, const char *name) {
    if (!f || !name || f->n == 0) return NULL;
    const st_tensor *const *hit =
        bsearch(name, f->by_name, (size_t)f->n, sizeof *f->by_name, cmp_key_tensor);
    return hit ? *hit : NULL;
}

/* ---------------------------------------------------------------- conversion */

static inline uint16_t rd16(const unsigned char *p) { return (uint16_t)(p[0] | (p[1] << 8)); }
static inline uint32_t rd32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}
static inline uint64_t rd64(const unsigned char *p) {
    return (uint64_t)rd32(p) | ((uint64_t)rd32(p + 4) << 32);
}
static inline float bits_f32(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t ex = (h >> 10) & 0x1fu, man = h & 0x3ffu;
    if (ex == 0) {
        /* zero or subnormal: man * 2^-24, exact in float32 */
        float v = (float)man * (1.0f / 16777216.0f);
        return sign ? -v : v;
    }
    if (ex == 31) return bits_f32(sign | 0x7f800000u | (man << 13)); /* inf / nan (payload kept) */
    return bits_f32(sign | ((ex + 112u) << 23) | (man << 13));
}

static int check_tensor_arg(const st_tensor *t, const void *dst, const char *fn, vene_error *err) {
    if (!t) return vene_errorf(err, VENE_ERR_ARG, "%s: tensor is NULL", fn);
    if ((unsigned)t->dtype >= ST_DTYPE_COUNT)
        return vene_errorf(err, VENE_ERR_ARG, "%s: tensor '%s' has an invalid dtype %d", fn,
                           t->name ? t->name : "?", (int)t->dtype);
    if (t->numel < 0 || (uint64_t)t->numel * dtype_sizes[t->dtype] != t->nbytes)
        return vene_errorf(err, VENE_ERR_ARG, "%s: tensor '%s' has inconsistent numel/nbytes", fn,
                           t->name ? t->name : "?");
    if (t->numel > 0 && (!dst || !t->data))
        return vene_errorf(err, VENE_ERR_ARG, "%s: tensor '%s': NULL data or destination", fn,
                           t->name ? t->name : "?");
    return VENE_OK;
}

int st_to_f32(const st_tensor *t, float *dst, vene_error *err) {
    int rc = check_tensor_arg(t, dst, "st_to_f32", err);
    if (rc != VENE_OK) return rc;
    const unsigned char *p = t->data;
    size_t n = (size_t)t->numel;
    switch (t->dtype) {
    case ST_F32:
        if (host_little_endian()) {
            if (n) memcpy(dst, p, n * 4);
        } else {
            for (size_t i = 0; i < n; i++) dst[i] = bits_f32(rd32(p + 4 * i));
        }
        break;
    case ST_F16:
        for (size_t i = 0; i < n; i++) dst[i] = f16_to_f32(rd16(p + 2 * i));
        break;
    case ST_BF16:
        for (size_t i = 0; i < n; i++) dst[i] = bits_f32((uint32_t)rd16(p + 2 * i) << 16);
        break;
    case ST_F64:
        for (size_t i = 0; i < n; i++) {
            uint64_t u = rd64(p + 8 * i);
            double d;
            memcpy(&d, &u, 8);
            dst[i] = (float)d;
        }
        break;
    case ST_I64:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int64_t)rd64(p + 8 * i);
        break;
    case ST_I32:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int32_t)rd32(p + 4 * i);
        break;
    case ST_I16:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int16_t)rd16(p + 2 * i);
        break;
    case ST_I8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)(int8_t)p[i];
        break;
    case ST_U8:
        for (size_t i = 0; i < n; i++) dst[i] = (float)p[i];
        break;
    case ST_BOOL:
        for (size_t i = 0; i < n; i++) dst[i] = p[i] ? 1.0f : 0.0f;
        break;
    default:
        break;
    }
    return VENE_OK;
}

int st_to_i64(const st_tensor *t, int64_t *dst, vene_error *err) {
    int rc = check_tensor_arg(t, dst, "st_to_i64", err);
    if (rc != VENE_OK) return rc;
    const unsigned char *p = t->data;
    size_t n = (size_t)t->numel;
    switch (t->dtype) {
    case ST_I64:
        for (size_t i = 0; i < n; i++) dst[i] = (int64_t)rd64(p + 8 * i);
        break;
    case ST_I32:
        for (size_t i = 0; i < n; i++) dst[i] = (int32_t)rd32(p + 4 * i);
        break;
    case ST_I16:
        for (size_t i = 0; i < n; i++) dst[i] = (int16_t)rd16(p + 2 * i);
        break;
    case ST_I8:
        for (size_t i = 0; i < n; i++) dst[i] = (int8_t)p[i];
        break;
    case ST_U8:
        for (size_t i = 0; i < n; i++) dst[i] = p[i];
        break;
    case ST_BOOL:
        for (size_t i = 0; i < n; i++) dst[i] = p[i] ? 1 : 0;
        break;
    default:
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "tensor '%s' has dtype %s, expected an integer type (I64, I32, I16, I8, U8 "
                           "or BOOL)",
                           t->name ? t->name : "?", dtype_names[t->dtype]);
    }
    return VENE_OK;
}

/* ---------------------------------------------------------------- writer */

typedef struct st_wentry {
    char *name;
    st_dtype dtype;
    int ndim;
    int64_t shape[VENE_MAX_DIMS];
    unsigned char *data;
    size_t nbytes;
} st_wentry;

struct st_writer {
    st_wentry *e;
    int n, cap;
};

st_writer *st_writer_new(void) { return calloc(1, sizeof(st_writer)); }

void st_writer_free(st_writer *w) {
    if (!w) return;
    for (int i = 0; i < w->n; i++) {
        free(w->e[i].name);
        free(w->e[i].data);
    }
    free(w->e);
    free(w);
}

int st_writer_add(st_writer *w, const char *name, st_dtype dtype, int ndim, const int64_t *shape,
                  const void *data, vene_error *err) {
    if (!w) return vene_errorf(err, VENE_ERR_ARG, "st_writer_add: writer is NULL");
    if (!name || !name[0]) return vene_errorf(err, VENE_ERR_ARG, "st_writer_add: empty tensor name");
    if (strcmp(name, "__metadata__") == 0)
        return vene_errorf(err, VENE_ERR_ARG, "st_writer_add: '__metadata__' is reserved");
    if ((unsigned)dtype >= ST_DTYPE_COUNT)
        return vene_errorf(err, VENE_ERR_ARG, "st_writer_add: tensor '%s': invalid dtype %d", name,
                           (int)dtype);
    if (ndim < 0 || ndim > VENE_MAX_DIMS)
        return vene_errorf(err, VENE_ERR_ARG, "st_writer_add: tensor '%s': ndim %d outside 0..%d", name,
                           ndim, VENE_MAX_DIMS);
    if (ndim > 0 && !shape)
        return vene_errorf(err, VENE_ERR_ARG, "st_writer_add: tensor '%s': shape is NULL", name);
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0 || (double)shape[i] >= ST_MAX_INT)
            return vene_errorf(err, VENE_ERR_ARG, "st_writer_add: tensor '%s': dimension %d is %lld", name,
                               i, (long long)shape[i]);
    }
    for (int i = 0; i < ndim; i++) {
        if (shape[i] == 0) {
            numel = 0;
            break;
        }
    }
    for (int i = 0; i < ndim && numel; i++) {
        if (numel > (uint64_t)(SIZE_MAX / 8) / (uint64_t)shape[i])
            return vene_errorf(err, VENE_ERR_ARG, "st_writer_add: tensor '%s': too many elements", name);
        numel *= (uint64_t)shape[i];
    }
    size_t es = dtype_sizes[dtype];
    size_t nbytes = (size_t)numel * es;
    if (nbytes && !data)
        return vene_errorf(err, VENE_ERR_ARG, "st_writer_add: tensor '%s': data is NULL", name);
    for (int i = 0; i < w->n; i++) {
        if (strcmp(w->e[i].name, name) == 0)
            return vene_errorf(err, VENE_ERR_ARG, "st_writer_add: tensor '%s' added twice", name);
    }
    if (w->n == w->cap) {
        int nc = w->cap ? w->cap * 2 : 16;
        st_wentry *ne = realloc(w->e, (size_t)nc * sizeof *ne);
        if (!ne) return vene_errorf(err, VENE_ERR_MEMORY, "st_writer_add: tensor '%s': out of memory", name);
        w->e = ne;
        w->cap = nc;
    }
    st_wentry *e = &w->e[w->n];
    memset(e, 0, sizeof *e);
    e->name = strdup(name);
    e->data = malloc(nbytes ? nbytes : 1);
    if (!e->name || !e->data) {
        free(e->name);
        free(e->data);
        return vene_errorf(err, VENE_ERR_MEMORY, "st_writer_add: tensor '%s': out of memory (%zu bytes)",
                           name, nbytes);
    }
    if (nbytes) {
        memcpy(e->data, data, nbytes);
        if (!host_little_endian() && es > 1) {
            for (size_t off = 0; off < nbytes; off += es) {
                for (size_t a = 0, b = es - 1; a < b; a++, b--) {
                    unsigned char c = e->data[off + a];
                    e->data[off + a] = e->data[off + b];
                    e->data[off + b] = c;
                }
            }
        }
    }
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->nbytes = nbytes;
    w->n++;
    return VENE_OK;
}

int st_writer_add_f32(st_writer *w, const char *name, const vene_tensor *t, vene_error *err) {
    if (!t) return vene_errorf(err, VENE_ERR_ARG, "st_writer_add_f32: tensor '%s' is NULL", name ? name : "?");
    return st_writer_add(w, name, ST_F32, t->ndim, t->shape, t->data, err);
}

/* Order of the Python library (safetensors' Rust core): larger dtypes first, so every
 * tensor stays aligned to its element size, then by name. Rank = Rust's Dtype order. */
static int dtype_rank(st_dtype d) {
    static const int rank[ST_DTYPE_COUNT] = {
        [ST_BOOL] = 0, [ST_U8] = 1,  [ST_I8] = 2,  [ST_I16] = 3, [ST_F16] = 4,
        [ST_BF16] = 5, [ST_I32] = 6, [ST_F32] = 7, [ST_F64] = 8, [ST_I64] = 9};
    return rank[d];
}

static int cmp_wentry(const void *a, const void *b) {
    const st_wentry *const *x = a, *const *y = b;
    int rx = dtype_rank((*x)->dtype), ry = dtype_rank((*y)->dtype);
    if (rx != ry) return rx > ry ? -1 : 1;
    return strcmp((*x)->name, (*y)->name);
}

static void sb_u64(vene_strbuf *s, uint64_t v) {
    char b[32];
    int k = snprintf(b, sizeof b, "%llu", (unsigned long long)v);
    vene_strbuf_put(s, b, (size_t)k);
}
/* JSON string literal, escaped as serde_json does. */
static void sb_json_str(vene_strbuf *s, const char *str) {
    vene_strbuf_put(s, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        char b[8];
        switch (*p) {
        case '"': vene_strbuf_put(s, "\\\"", 2); break;
        case '\\': vene_strbuf_put(s, "\\\\", 2); break;
        case '\b': vene_strbuf_put(s, "\\b", 2); break;
        case '\f': vene_strbuf_put(s, "\\f", 2); break;
        case '\n': vene_strbuf_put(s, "\\n", 2); break;
        case '\r': vene_strbuf_put(s, "\\r", 2); break;
        case '\t': vene_strbuf_put(s, "\\t", 2); break;
        default:
            if (*p < 0x20) {
                snprintf(b, sizeof b, "\\u%04x", *p);
                vene_strbuf_put(s, b, 6);
            } else {
                vene_strbuf_put(s, (const char *)p, 1);
            }
        }
    }
    vene_strbuf_put(s, "\"", 1);
}

static int write_all(int fd, const void *buf, size_t n) {
    const unsigned char *p = buf;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? ((size_t)1 << 30) : n;
        ssize_t k = write(fd, p, chunk);
        if (k < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        if (k == 0) {
            errno = EIO;
            return -1;
        }
        p += k;
        n -= (size_t)k;
    }
    return 0;
}

/* An unnamed file in path's folder (O_TMPFILE), named only once it is complete, so a
 * process killed while writing leaves nothing behind; -1 where unsupported. */
static int open_unnamed(const char *path) {
#ifdef O_TMPFILE
    if (access("/proc/self/fd", X_OK) != 0) return -1; /* naming it goes through /proc */
    char *dir = strdup(path);
    if (!dir) return -1;
    char *slash = strrchr(dir, '/');
    const char *d = slash == dir ? "/" : slash ? (*slash = '\0', dir) : ".";
    int fd = open(d, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0644);
    free(dir);
    return fd;
#else
    (void)path;
    return -1;
#endif
}

/* Give the unnamed file fd the name tmp (a stale file of that name is replaced). */
static int name_unnamed(int fd, const char *tmp) {
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0) return 0;
    if (errno != EEXIST || unlink(tmp) != 0) return -1;
    return linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW);
}

int st_writer_save(const st_writer *w, const char *path, vene_error *err) {
    if (!w) return vene_errorf(err, VENE_ERR_ARG, "st_writer_save: writer is NULL");
    if (!path || !path[0]) return vene_errorf(err, VENE_ERR_ARG, "st_writer_save: empty path");
    int rc = VENE_OK;
    const st_wentry **order = NULL;
    vene_strbuf hdr = {0};
    char *tmp = NULL;
    int fd = -1;
    if (w->n > 0) {
        order = malloc((size_t)w->n * sizeof *order);
        if (!order) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
        for (int i = 0; i < w->n; i++) order[i] = &w->e[i];
        qsort(order, (size_t)w->n, sizeof *order, cmp_wentry);
    }
    /* Header: {"name":{"dtype":"F32","shape":[..],"data_offsets":[b,e]},...} padded with
     * spaces to a multiple of 8 so the data section starts 8-byte aligned. */
    vene_strbuf_str(&hdr, "{");
    uint64_t off = 0;
    for (int i = 0; i < w->n; i++) {
        const st_wentry *e = order[i];
        if (i) vene_strbuf_str(&hdr, ",");
        sb_json_str(&hdr, e->name);
        vene_strbuf_str(&hdr, ":{\"dtype\":\"");
        vene_strbuf_str(&hdr, dtype_names[e->dtype]);
        vene_strbuf_str(&hdr, "\",\"shape\":[");
        for (int d = 0; d < e->ndim; d++) {
            if (d) vene_strbuf_str(&hdr, ",");
            sb_u64(&hdr, (uint64_t)e->shape[d]);
        }
        vene_strbuf_str(&hdr, "],\"data_offsets\":[");
        sb_u64(&hdr, off);
        vene_strbuf_str(&hdr, ",");
        off += e->nbytes;
        sb_u64(&hdr, off);
        vene_strbuf_str(&hdr, "]}");
    }
    vene_strbuf_str(&hdr, "}");
    while (!hdr.oom && hdr.n % 8) vene_strbuf_str(&hdr, " ");
    if (hdr.oom) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory building the header", path);
        goto out;
    }
    size_t tl = strlen(path) + 32;
    tmp = malloc(tl);
    if (!tmp) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
        goto out;
    }
    snprintf(tmp, tl, "%s.tmp.%ld", path, (long)getpid());
    fd = open_unnamed(path);
    int unnamed = fd >= 0;
    if (!unnamed) fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = vene_errorf(err, VENE_ERR_IO, "%s: cannot create temporary file %s: %s", path, tmp,
                         strerror(errno));
        goto out;
    }
    unsigned char len8[8];
    uint64_t hl = hdr.n;
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)(hl >> (8 * i));
    int ok = write_all(fd, len8, 8) == 0 && write_all(fd, hdr.p, hdr.n) == 0;
    for (int i = 0; ok && i < w->n; i++) {
        if (order[i]->nbytes) ok = write_all(fd, order[i]->data, order[i]->nbytes) == 0;
    }
    if (!ok) {
        rc = vene_errorf(err, VENE_ERR_IO, "%s: write failed: %s", tmp, strerror(errno));
        goto out;
    }
    if (fsync(fd) != 0) {
        rc = vene_errorf(err, VENE_ERR_IO, "%s: fsync failed: %s", tmp, strerror(errno));
        goto out;
    }
    if (unnamed && name_unnamed(fd, tmp) != 0) {
        rc = vene_errorf(err, VENE_ERR_IO, "%s: cannot name temporary file %s: %s", path, tmp, strerror(errno));
        free(tmp); /* nothing was created under that name */
        tmp = NULL;
        goto out;
    }
    int cfd = fd;
    fd = -1;
    if (close(cfd) != 0) {
        rc = vene_errorf(err, VENE_ERR_IO, "%s: close failed: %s", tmp, strerror(errno));
        goto out;
    }
    if (rename(tmp, path) != 0) {
        rc = vene_errorf(err, VENE_ERR_IO, "%s: cannot rename %s into place: %s", path, tmp,
                         strerror(errno));
        goto out;
    }
    /* Make the rename durable too (best effort). */
    {
        char *dir = strdup(path);
        if (dir) {
            char *slash = strrchr(dir, '/');
            const char *d = ".";
            if (slash == dir) d = "/";
            else if (slash) {
                *slash = '\0';
                d = dir;
            }
            int dfd = open(d, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
            if (dfd >= 0) {
                (void)fsync(dfd);
                close(dfd);
            }
            free(dir);
        }
    }
    free(tmp);
    tmp = NULL;
out:
    if (fd >= 0) close(fd);
    if (tmp) {
        unlink(tmp); /* never leave a half-written file behind */
        free(tmp);
    }
    free(hdr.p);
    free(order);
    return rc;
}
