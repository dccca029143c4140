/* Model-folder weights: one or several memory-mapped safetensors files, looked up by
 * state-dict name (with prefix fallbacks) and handed out as float32. */
#include "io/weights.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "io/json_keys.h"

#define INDEX_NAME "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"
#define INDEX_MAX_BYTES ((long)256 * 1024 * 1024)

typedef struct wfile {
    st_file *f;
    float **conv;   /* per tensor (st_at index): owned float32 copy, or NULL */
} wfile;

struct vene_weights {
    char *dir;
    char *label;        /* what messages name: the single file or the index */
    wfile *files;
    int nfiles;
    char **prefixes;    /* owned, nprefix entries */
    int nprefix;
    int64_t owned_bytes;
};

static const char *const default_prefixes[] = {"transformer.", "model.", NULL};

static char *path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t at = a;
    if (a > 0 && dir[a - 1] != '/') p[at++] = '/';
    memcpy(p + at, name, b + 1);
    return p;
}

static int is_file(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

static void free_prefixes(vene_weights *w) {
    for (int i = 0; i < w->nprefix; i++) free(w->prefixes[i]);
    free(w->prefixes);
    w->prefixes = NULL;
    w->nprefix = 0;
}

/* Copy a NULL-terminated list; on failure the old list stays. */
static int copy_prefixes(vene_weights *w, const char *const *list) {
    int n = 0;
    while (list && list[n]) n++;
    char **np = NULL;
    if (n > 0) {
        np = calloc((size_t)n, sizeof *np);
        if (!np) return 0;
        for (int i = 0; i < n; i++) {
            if (!(np[i] = strdup(list[i]))) {
                for (int j = 0; j < i; j++) free(np[j]);
                free(np);
                return 0;
            }
        }
    }
    free_prefixes(w);
    w->prefixes = np;
    w->nprefix = n;
    return 1;
}

void vene_weights_set_prefixes(vene_weights *w, const char *const *prefixes) {
    if (w) (void)copy_prefixes(w, prefixes);
}

void vene_weights_free(vene_weights *w) {
    if (!w) return;
    for (int i = 0; i < w->nfiles; i++) {
        wfile *wf = &w->files[i];
        if (wf->conv) {
            int n = st_count(wf->f);
            for (int j = 0; j < n; j++) free(wf->conv[j]);
            free(wf->conv);
        }
        st_close(wf->f);
    }
    free(w->files);
    free_prefixes(w);
    free(w->dir);
    free(w->label);
    free(w);
}

static int add_file(vene_weights *w, const char *path, vene_error *err) {
    wfile *nf = realloc(w->files, (size_t)(w->nfiles + 1) * sizeof *nf);
    if (!nf) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
    w->files = nf;
    wfile *wf = &w->files[w->nfiles];
    memset(wf, 0, sizeof *wf);
    int rc = st_open(path, &wf->f, err);
    if (rc != VENE_OK) return rc;
    int n = st_count(wf->f);
    if (n > 0 && !(wf->conv = calloc((size_t)n, sizeof *wf->conv))) {
        st_close(wf->f);
        return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
    }
    w->nfiles++;
    return VENE_OK;
}

/* Read a whole (small) text file, NUL-terminated. */
static int read_text(const char *path, char **out, vene_error *err) {
    *out = NULL;
    FILE *fp = fopen(path, "rb");
    if (!fp) return vene_errorf(err, VENE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fileno(fp), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(fp);
        return vene_errorf(err, VENE_ERR_IO, "%s: not a regular file", path);
    }
    int rc = VENE_OK;
    char *buf = NULL;
    long n = -1;
    if (fseek(fp, 0, SEEK_END) == 0) n = ftell(fp);
    if (n < 0 || fseek(fp, 0, SEEK_SET) != 0) {
        rc = vene_errorf(err, VENE_ERR_IO, "%s: cannot determine size", path);
    } else if (n > INDEX_MAX_BYTES) {
        rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: %ld bytes, larger than the %ld-byte limit", path, n,
                         INDEX_MAX_BYTES);
    } else if (!(buf = malloc((size_t)n + 1))) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
    } else if (fread(buf, 1, (size_t)n, fp) != (size_t)n) {
        rc = vene_errorf(err, VENE_ERR_IO, "%s: read failed", path);
    } else {
        buf[n] = '\0';
        *out = buf;
        buf = NULL;
    }
    free(buf);
    fclose(fp);
    return rc;
}

/* A shard name must stay inside the folder. */
static int shard_name_ok(const char *s) {
    if (!s[0] || s[0] == '/') return 0;
    const char *p = s;
    while (*p) {
        const char *q = strchr(p, '/');
        size_t len = q ? (size_t)(q - p) : strlen(p);
        if (len == 2 && p[0] == '.' && p[1] == '.') return 0;
        if (!q) break;
        p = q + 1;
    }
    return 1;
}

static int open_sharded(vene_weights *w, const char *index_path, vene_error *err) {
    char *text = NULL;
    int rc = read_text(index_path, &text, err);
    if (rc != VENE_OK) return rc;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const char **shards = NULL;
    int nshards = 0;
    if (!root || !cJSON_IsObject(root)) {
        rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: not a JSON object", index_path);
        goto out;
    }
    if ((rc = vene_json_unique_keys(root, index_path, err))) goto out;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!map) {
        rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: missing \"weight_map\"", index_path);
        goto out;
    }
    if (!cJSON_IsObject(map)) {
        rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: \"weight_map\" is not an object", index_path);
        goto out;
    }
    int nent = cJSON_GetArraySize(map);
    if (nent == 0) {
        rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: \"weight_map\" is empty", index_path);
        goto out;
    }
    shards = malloc((size_t)nent * sizeof *shards);
    if (!shards) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", index_path);
        goto out;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, map) {
        if (!cJSON_IsString(e)) {
            rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: weight_map entry '%s' is not a file name string",
                             index_path, e->string ? e->string : "?");
            goto out;
        }
        if (!shard_name_ok(e->valuestring)) {
            rc = vene_errorf(err, VENE_ERR_FORMAT,
                             "%s: weight_map entry '%s': shard '%s' is not a file inside the folder",
                             index_path, e->string ? e->string : "?", e->valuestring);
            goto out;
        }
        int seen = 0;
        for (int i = 0; i < nshards && !seen; i++) seen = strcmp(shards[i], e->valuestring) == 0;
        if (!seen) shards[nshards++] = e->valuestring;
    }
    for (int i = 0; i < nshards; i++) {
        char *p = path_join(w->dir, shards[i]);
        if (!p) {
            rc = vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", index_path);
            goto out;
        }
        rc = add_file(w, p, err);
        free(p);
        if (rc != VENE_OK) goto out;
    }
    /* Every mapped tensor must be in the shard the index names. */
    cJSON_ArrayForEach(e, map) {
        int fi = 0;
        while (fi < nshards && strcmp(shards[fi], e->valuestring) != 0) fi++;
        if (!st_find(w->files[fi].f, e->string)) {
            rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: tensor '%s' is mapped to %s but missing from it",
                             index_path, e->string, st_path(w->files[fi].f));
            goto out;
        }
    }
out:
    free(shards);
    cJSON_Delete(root);
    return rc;
}

int vene_weights_open(const char *dir, vene_weights **out, vene_error *err) {
    if (!out) return vene_errorf(err, VENE_ERR_ARG, "vene_weights_open: out is NULL");
    *out = NULL;
    if (!dir) return vene_errorf(err, VENE_ERR_ARG, "vene_weights_open: dir is NULL");
    vene_weights *w = calloc(1, sizeof *w);
    if (!w || !(w->dir = strdup(dir)) || !copy_prefixes(w, default_prefixes)) {
        vene_weights_free(w);
        return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", dir);
    }
    char *index = path_join(dir, INDEX_NAME), *single = path_join(dir, SINGLE_NAME);
    int rc = VENE_OK;
    if (!index || !single) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", dir);
    } else if (is_file(index)) {
        w->label = index;
        index = NULL;
        rc = open_sharded(w, w->label, err);
    } else if (is_file(single)) {
        w->label = single;
        single = NULL;
        rc = add_file(w, w->label, err);
    } else {
        rc = vene_errorf(err, VENE_ERR_IO, "%s: no weights: neither %s nor %s found in the folder", dir,
                         INDEX_NAME, SINGLE_NAME);
    }
    free(index);
    free(single);
    if (rc != VENE_OK) {
        vene_weights_free(w);
        return rc;
    }
    *out = w;
    return VENE_OK;
}

/* Exact lookup over every file; *fi receives the file index. */
static const st_tensor *find_exact(const vene_weights *w, const char *name, int *fi) {
    for (int i = 0; i < w->nfiles; i++) {
        const st_tensor *t = st_find(w->files[i].f, name);
        if (t) {
            if (fi) *fi = i;
            return t;
        }
    }
    return NULL;
}

/* Direct, then each prefix stripped, then each prefix prepended. */
static const st_tensor *resolve(const vene_weights *w, const char *name, int *fi) {
    const st_tensor *t = find_exact(w, name, fi);
    if (t) return t;
    for (int i = 0; i < w->nprefix; i++) {
        size_t pl = strlen(w->prefixes[i]);
        if (pl && strncmp(name, w->prefixes[i], pl) == 0 && (t = find_exact(w, name + pl, fi))) return t;
    }
    size_t nl = strlen(name);
    for (int i = 0; i < w->nprefix; i++) {
        size_t pl = strlen(w->prefixes[i]);
        if (!pl) continue;
        char stackbuf[256], *buf = pl + nl + 1 <= sizeof stackbuf ? stackbuf : malloc(pl + nl + 1);
        if (!buf) return NULL;
        memcpy(buf, w->prefixes[i], pl);
        memcpy(buf + pl, name, nl + 1);
        t = find_exact(w, buf, fi);
        if (buf != stackbuf) free(buf);
        if (t) return t;
    }
    return NULL;
}

int vene_weights_find(const vene_weights *w, const char *name, const st_tensor **t) {
    if (t) *t = NULL;
    if (!w || !name || !t) return VENE_ERR_ARG;
    *t = resolve(w, name, NULL);
    return *t ? VENE_OK : VENE_ERR_FORMAT;
}

int vene_weights_has(const vene_weights *w, const char *name) {
    return w && name && resolve(w, name, NULL) != NULL;
}

int64_t vene_weights_owned_bytes(const vene_weights *w) { return w ? w->owned_bytes : 0; }

static void shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t at = 0;
    int k = snprintf(buf, n, "[");
    if (k > 0) at = (size_t)k;
    for (int i = 0; i < ndim && at < n; i++) {
        k = snprintf(buf + at, n - at, "%s%lld", i ? ", " : "", (long long)shape[i]);
        if (k > 0) at += (size_t)k;
    }
    if (at < n) snprintf(buf + at, n - at, "]");
}

static int host_little_endian(void) {
    const uint16_t one = 1;
    unsigned char b;
    memcpy(&b, &one, 1);
    return b == 1;
}

int vene_weights_get(vene_weights *w, const char *name, int ndim, const int64_t *shape,
                     const float **out, vene_error *err) {
    if (out) *out = NULL;
    if (!w || !name || !out)
        return vene_errorf(err, VENE_ERR_ARG, "vene_weights_get: NULL argument (tensor '%s')",
                           name ? name : "?");
    if (ndim < 0 || ndim > VENE_MAX_DIMS || (ndim > 0 && !shape))
        return vene_errorf(err, VENE_ERR_ARG, "vene_weights_get: tensor '%s': invalid expected shape",
                           name);
    int fi = -1;
    const st_tensor *t = resolve(w, name, &fi);
    if (!t) {
        char tried[256] = "";
        size_t at = 0;
        for (int i = 0; i < w->nprefix && at < sizeof tried; i++) {
            int k = snprintf(tried + at, sizeof tried - at, "%s'%s'", i ? ", " : "", w->prefixes[i]);
            if (k > 0) at += (size_t)k;
        }
        if (w->nprefix)
            return vene_errorf(err, VENE_ERR_FORMAT,
                               "%s: missing tensor '%s' (also tried with prefixes %s stripped or added)",
                               w->label, name, tried);
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: missing tensor '%s'", w->label, name);
    }
    const char *file = st_path(w->files[fi].f);
    int same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (!same) {
        char want[160], have[160];
        shape_str(ndim, shape, want, sizeof want);
        shape_str(t->ndim, t->shape, have, sizeof have);
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: tensor '%s': expected shape %s, found %s", file,
                           t->name, want, have);
    }
    switch (t->dtype) {
    case ST_F32:
        if (host_little_endian() && ((uintptr_t)t->data % _Alignof(float)) == 0) {
            *out = t->data;
            return VENE_OK;
        }
        break;
    case ST_F16:
    case ST_BF16:
    case ST_F64:
        break;
    default:
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s: tensor '%s' has dtype %s; weights must be F32, F16, BF16 or F64", file,
                           t->name, st_dtype_name(t->dtype));
    }
    /* Convert (or realign) once; later calls reuse the copy. */
    wfile *wf = &w->files[fi];
    ptrdiff_t idx = t - st_at(wf->f, 0);
    float **slot = &wf->conv[idx];
    if (!*slot) {
        size_t n = (size_t)t->numel;
        float *buf = malloc(n ? n * sizeof(float) : 1);
        if (!buf)
            return vene_errorf(err, VENE_ERR_MEMORY, "%s: tensor '%s': out of memory for %zu floats",
                               file, t->name, n);
        int rc = st_to_f32(t, buf, err);
        if (rc != VENE_OK) {
            free(buf);
            vene_error_prefix(err, "%s", file);
            return rc;
        }
        *slot = buf;
        w->owned_bytes += (int64_t)(n * sizeof(float));
    }
    *out = *slot;
    return VENE_OK;
}

int vene_weights_make_writable(vene_weights *w, vene_error *err) {
    for (int i = 0; i < w->nfiles; i++) {
        int rc = st_make_writable(w->files[i].f, err);
        if (rc) return rc;
    }
    return VENE_OK;
}
