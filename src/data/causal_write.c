/* Datasets from a causal model: factual and counterfactual examples (pyvene's
 * generate_factual_dataset / generate_counterfactual_dataset), encoded as `vene train`
 * INPUTs and written as JSONL through a temporary file and a rename. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/rng.h"
#include "core/strbuf.h"
#include "data/causal.h"

/* ---------------------------------------------------------------- text buffer */

static void sb_int(vene_strbuf *b, long long v) {
    char t[32];
    snprintf(t, sizeof t, "%lld", v);
    vene_strbuf_str(b, t);
}

/* The shortest decimal that reads back as the same float32 ("0.37", not "0.370000005"). */
static void sb_float(vene_strbuf *b, float f) {
    char t[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(t, sizeof t, "%.*g", p, (double)f);
        if (strtof(t, NULL) == f) break;
    }
    vene_strbuf_str(b, t);
}

static void sb_json_string(vene_strbuf *b, const char *s) {
    vene_strbuf_str(b, "\"");
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        char t[8];
        if (*c == '"' || *c == '\\') {
            t[0] = '\\';
            t[1] = (char)*c;
            vene_strbuf_put(b, t, 2);
        } else if (*c == '\n' || *c == '\t' || *c == '\r') {
            vene_strbuf_str(b, *c == '\n' ? "\\n" : *c == '\t' ? "\\t" : "\\r");
        } else if (*c < 0x20) {
            snprintf(t, sizeof t, "\\u%04x", *c);
            vene_strbuf_str(b, t);
        } else {
            vene_strbuf_put(b, (const char *)c, 1);
        }
    }
    vene_strbuf_str(b, "\"");
}

/* ---------------------------------------------------------------- input builder */

enum { IN_NONE, IN_EMBEDS, IN_IDS, IN_TEXT };

struct vene_causal_input {
    int kind;
    int dim, rows;
    float *embeds; /* rows x dim */
    size_t cap_embeds;
    int32_t *ids;
    int n_ids;
    size_t cap_ids;
    vene_strbuf text;
};

static int set_kind(vene_causal_input *in, int kind, vene_error *err) {
    static const char *names[] = {"", "embeds", "ids", "text"};
    if (in->kind != IN_NONE && in->kind != kind)
        return vene_errorf(err, VENE_ERR_ARG, "encoder: an input holds one kind; it has %s, %s was added",
                           names[in->kind], names[kind]);
    in->kind = kind;
    return VENE_OK;
}

/* Grow *p (elem bytes each) to hold need elements. */
static int grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return 1;
    size_t c = *cap ? *cap : 64;
    while (c < need) c *= 2;
    void *np = realloc(*p, c * elem);
    if (!np) return 0;
    *p = np;
    *cap = c;
    return 1;
}

int vene_causal_input_embeds(vene_causal_input *in, const float *row, int dim, vene_error *err) {
    if (!in || !row || dim < 1) return vene_errorf(err, VENE_ERR_ARG, "encoder: embeds row missing or empty");
    int rc = set_kind(in, IN_EMBEDS, err);
    if (rc) return rc;
    if (in->rows > 0 && dim != in->dim)
        return vene_errorf(err, VENE_ERR_ARG, "encoder: embeds row %d has %d values, row 0 has %d", in->rows, dim,
                           in->dim);
    for (int c = 0; c < dim; c++)
        if (!isfinite(row[c]))
            return vene_errorf(err, VENE_ERR_ARG, "encoder: embeds row %d, column %d is not finite", in->rows, c);
    if (!grow((void **)&in->embeds, &in->cap_embeds, (size_t)(in->rows + 1) * (size_t)dim, sizeof(float)))
        return vene_errorf(err, VENE_ERR_MEMORY, "encoder: out of memory");
    memcpy(in->embeds + (size_t)in->rows * (size_t)dim, row, (size_t)dim * sizeof(float));
    in->dim = dim;
    in->rows++;
    return VENE_OK;
}

int vene_causal_input_ids(vene_causal_input *in, const int32_t *ids, int n, vene_error *err) {
    if (!in || !ids || n < 1) return vene_errorf(err, VENE_ERR_ARG, "encoder: ids missing or empty");
    int rc = set_kind(in, IN_IDS, err);
    if (rc) return rc;
    for (int i = 0; i < n; i++)
        if (ids[i] < 0) return vene_errorf(err, VENE_ERR_RANGE, "encoder: token id %d at %d is negative", ids[i], i);
    if (!grow((void **)&in->ids, &in->cap_ids, (size_t)in->n_ids + (size_t)n, sizeof(int32_t)))
        return vene_errorf(err, VENE_ERR_MEMORY, "encoder: out of memory");
    memcpy(in->ids + in->n_ids, ids, (size_t)n * sizeof(int32_t));
    in->n_ids += n;
    return VENE_OK;
}

int vene_causal_input_text(vene_causal_input *in, const char *text, vene_error *err) {
    if (!in || !text) return vene_errorf(err, VENE_ERR_ARG, "encoder: text missing");
    int rc = set_kind(in, IN_TEXT, err);
    if (rc) return rc;
    vene_strbuf_str(&in->text, text);
    return in->text.oom ? vene_errorf(err, VENE_ERR_MEMORY, "encoder: out of memory") : VENE_OK;
}

void vene_causal_set_encoder(vene_causal *cm, vene_causal_encoder fn, void *user) {
    if (!cm) return;
    cm->enc = fn;
    cm->enc_user = user;
}

int vene_causal_set_features(vene_causal *cm, int var, int dim, const float *table, vene_error *err) {
    if (!cm || var < 0 || var >= cm->n)
        return vene_errorf(err, VENE_ERR_RANGE, "causal model: features: variable index %d out of range", var);
    vene_causal_var *v = &cm->v[var];
    if (v->n_parents > 0)
        return vene_errorf(err, VENE_ERR_ARG, "causal model: features: %s is not an input variable", v->name);
    if (dim < 1 || !table) return vene_errorf(err, VENE_ERR_ARG, "causal model: features of %s: empty table", v->name);
    size_t n = (size_t)v->n_values * (size_t)dim;
    for (size_t i = 0; i < n; i++)
        if (!isfinite(table[i]))
            return vene_errorf(err, VENE_ERR_ARG, "causal model: features of %s: value %s, column %d is not finite",
                               v->name, v->value_names[i / (size_t)dim], (int)(i % (size_t)dim));
    float *f = malloc(n * sizeof *f);
    if (!f) return vene_errorf(err, VENE_ERR_MEMORY, "causal model: out of memory");
    memcpy(f, table, n * sizeof *f);
    free(v->features);
    v->features = f;
    v->feat_dim = dim;
    return VENE_OK;
}

int vene_causal_set_labels(vene_causal *cm, int var, const int *labels, vene_error *err) {
    if (!cm || var < 0 || var >= cm->n)
        return vene_errorf(err, VENE_ERR_RANGE, "causal model: labels: variable index %d out of range", var);
    vene_causal_var *v = &cm->v[var];
    if (!labels) return vene_errorf(err, VENE_ERR_ARG, "causal model: labels of %s: NULL", v->name);
    int *l = malloc((size_t)v->n_values * sizeof *l);
    if (!l) return vene_errorf(err, VENE_ERR_MEMORY, "causal model: out of memory");
    memcpy(l, labels, (size_t)v->n_values * sizeof *l);
    free(v->labels);
    v->labels = l;
    return VENE_OK;
}

/* pyvene's input_to_tensor: the input variables' features, concatenated in variable order. */
static int default_encode(const vene_causal *cm, const int *setting, vene_causal_input *in, vene_error *err) {
    int dim = 0;
    for (int i = 0; i < cm->n; i++) {
        const vene_causal_var *v = &cm->v[i];
        if (!v->is_input) continue;
        if (!v->features)
            return vene_errorf(err, VENE_ERR_STATE, "causal model: input variable %s has no features and the model "
                               "has no encoder (vene_causal_set_features / vene_causal_set_encoder)", v->name);
        dim += v->feat_dim;
    }
    float *row = malloc((size_t)dim * sizeof *row);
    if (!row) return vene_errorf(err, VENE_ERR_MEMORY, "causal model: out of memory");
    int at = 0;
    for (int i = 0; i < cm->n; i++) {
        const vene_causal_var *v = &cm->v[i];
        if (!v->is_input) continue;
        memcpy(row + at, v->features + (size_t)setting[i] * (size_t)v->feat_dim, (size_t)v->feat_dim * sizeof *row);
        at += v->feat_dim;
    }
    int rc = vene_causal_input_embeds(in, row, dim, err);
    free(row);
    return rc;
}

/* Encode one setting and append the INPUT object to b. */
static int encode(const vene_causal *cm, const int *setting, vene_causal_input *in, vene_strbuf *b, vene_error *err) {
    in->kind = IN_NONE;
    in->rows = in->n_ids = 0;
    in->text.n = 0;
    if (in->text.p) in->text.p[0] = '\0';
    int rc = cm->enc ? cm->enc(cm->enc_user, cm, setting, in, err) : default_encode(cm, setting, in, err);
    if (rc) return rc;
    if (in->kind == IN_EMBEDS) {
        vene_strbuf_str(b, "{\"embeds\": [");
        for (int r = 0; r < in->rows; r++) {
            vene_strbuf_str(b, r ? ", [" : "[");
            for (int c = 0; c < in->dim; c++) {
                if (c) vene_strbuf_str(b, ", ");
                sb_float(b, in->embeds[(size_t)r * (size_t)in->dim + (size_t)c]);
            }
            vene_strbuf_str(b, "]");
        }
        vene_strbuf_str(b, "]}");
    } else if (in->kind == IN_IDS) {
        vene_strbuf_str(b, "{\"ids\": [");
        for (int i = 0; i < in->n_ids; i++) {
            if (i) vene_strbuf_str(b, ", ");
            sb_int(b, in->ids[i]);
        }
        vene_strbuf_str(b, "]}");
    } else if (in->kind == IN_TEXT) {
        vene_strbuf_str(b, "{\"text\": ");
        sb_json_string(b, in->text.p ? in->text.p : "");
        vene_strbuf_str(b, "}");
    } else {
        return vene_errorf(err, VENE_ERR_STATE, "encoder produced nothing");
    }
    return VENE_OK;
}

/* ---------------------------------------------------------------- examples */

/* A splitmix64 state for (seed, stream tag, index): example i depends on nothing else. */
static uint64_t stream(uint64_t seed, uint64_t tag, uint64_t i) {
    uint64_t s = seed ^ (tag * 0xD1B54A32D192ED03ULL);
    s = vene_splitmix64(&s) ^ i;
    return vene_splitmix64(&s);
}

static int check_dataset(vene_causal *cm, const vene_causal_dataset *d, int *output, vene_error *err) {
    int rc = vene_causal_check(cm, err);
    if (rc) return rc;
    if (!d) return vene_errorf(err, VENE_ERR_ARG, "dataset: no options");
    if (d->size < 0) return vene_errorf(err, VENE_ERR_ARG, "dataset: size %lld is negative", (long long)d->size);
    *output = d->output;
    if (*output == -1) {
        int n = 0;
        for (int i = 0; i < cm->n; i++)
            if (cm->v[i].is_output && n++ == 0) *output = i;
        if (n != 1) return vene_errorf(err, VENE_ERR_ARG, "dataset: the model has %d outputs: name the labelled one", n);
    }
    if (*output < 0 || *output >= cm->n)
        return vene_errorf(err, VENE_ERR_RANGE, "dataset: output variable index %d out of range (%d variables)",
                           d->output, cm->n);
    if (d->n_vars < 0 || d->n_vars > VENE_CAUSAL_MAX_IV || (d->n_vars > 0 && !d->vars))
        return vene_errorf(err, VENE_ERR_ARG, "dataset: %d intervened variables (at most %d)", d->n_vars,
                           VENE_CAUSAL_MAX_IV);
    for (int i = 0; i < d->n_vars; i++) {
        if (d->vars[i] < 0 || d->vars[i] >= cm->n)
            return vene_errorf(err, VENE_ERR_RANGE, "dataset: intervened variable %d: index %d out of range (%d "
                               "variables)", i, d->vars[i], cm->n);
        for (int j = 0; j < i; j++)
            if (d->vars[j] == d->vars[i])
                return vene_errorf(err, VENE_ERR_ARG, "dataset: variable %s intervened twice",
                                   cm->v[d->vars[i]].name);
    }
    return VENE_OK;
}

static int label_of(const vene_causal *cm, int var, int value) {
    return cm->v[var].labels ? cm->v[var].labels[value] : value;
}

static int draw(vene_causal *cm, int balanced, int var, int value, uint64_t *rng, int *setting, vene_error *err) {
    return balanced ? vene_causal_sample_balanced(cm, var, value, rng, setting, err)
                    : vene_causal_sample_input(cm, rng, setting, err);
}

static int sample_checked(vene_causal *cm, const vene_causal_dataset *d, int out, int64_t index,
                          vene_causal_example *ex, vene_error *err) {
    uint64_t rng = stream(d->seed, 1, (uint64_t)index);
    int rc = draw(cm, d->balanced, out, -1, &rng, ex->base, err);
    if (rc) return rc;
    ex->base_label = ex->label = label_of(cm, out, ex->base[out]);
    ex->intervention_id = -1;
    if (d->n_vars == 0) return VENE_OK;
    /* The intervention (subset and target values) is shared by a block, as pyvene reuses
     * one sampled intervention for batch_size examples. */
    uint64_t brng = stream(d->seed, 2, (uint64_t)(d->block > 1 ? index / d->block : index));
    unsigned full = (1u << d->n_vars) - 1u;
    unsigned mask = d->subsets ? 1u + (unsigned)vene_causal_below(&brng, full) : full;
    int target[VENE_CAUSAL_MAX_IV], vars[VENE_CAUSAL_MAX_IV];
    const int *srcs[VENE_CAUSAL_MAX_IV];
    int k = 0;
    for (int i = 0; i < d->n_vars && !rc; i++) {
        target[i] = -1;
        if (d->balanced) rc = vene_causal_balanced_value(cm, d->vars[i], &brng, &target[i], err);
    }
    for (int i = 0; i < d->n_vars && !rc; i++) {
        int *row = ex->sources + (size_t)i * (size_t)cm->n;
        if (!(mask & (1u << i))) {
            for (int j = 0; j < cm->n; j++) row[j] = -1;
            continue;
        }
        if ((rc = draw(cm, d->balanced, d->vars[i], target[i], &rng, row, err))) break;
        vars[k] = d->vars[i];
        srcs[k++] = row;
    }
    if (rc) return rc;
    int *setting = malloc((size_t)cm->n * sizeof *setting);
    if (!setting) return vene_errorf(err, VENE_ERR_MEMORY, "dataset: out of memory");
    rc = vene_causal_interchange(cm, ex->base, k, vars, srcs, setting, err);
    if (!rc) ex->label = label_of(cm, out, setting[out]);
    free(setting);
    ex->intervention_id = (int)mask - 1;
    return rc;
}

int vene_causal_sample_example(vene_causal *cm, const vene_causal_dataset *d, int64_t index,
                               vene_causal_example *ex, vene_error *err) {
    int out, rc = check_dataset(cm, d, &out, err);
    if (rc) return rc;
    if (!ex || !ex->base || (d->n_vars > 0 && !ex->sources))
        return vene_errorf(err, VENE_ERR_ARG, "dataset: example buffers missing");
    rc = sample_checked(cm, d, out, index, ex, err);
    return rc ? vene_error_prefix(err, "example %lld", (long long)index) : VENE_OK;
}

/* ---------------------------------------------------------------- JSONL */

static int format_example(const vene_causal *cm, const vene_causal_dataset *d, const vene_causal_example *ex,
                          vene_causal_input *in, vene_strbuf *b, vene_error *err) {
    b->n = 0;
    vene_strbuf_str(b, "{\"base\": ");
    int rc = encode(cm, ex->base, in, b, err);
    if (!rc && d->n_vars > 0) {
        vene_strbuf_str(b, ", \"sources\": [");
        for (int i = 0; i < d->n_vars && !rc; i++) {
            const int *row = ex->sources + (size_t)i * (size_t)cm->n;
            if (i) vene_strbuf_str(b, ", ");
            if (row[0] < 0) vene_strbuf_str(b, "null"); /* a drawn source has every entry set */
            else rc = encode(cm, row, in, b, err);
        }
        vene_strbuf_str(b, "]");
    }
    if (rc) return rc;
    vene_strbuf_str(b, ", \"label\": ");
    sb_int(b, ex->label);
    if (d->n_vars > 0) {
        vene_strbuf_str(b, ", \"base_label\": ");
        sb_int(b, ex->base_label);
        vene_strbuf_str(b, ", \"intervention_id\": ");
        sb_int(b, ex->intervention_id);
    }
    vene_strbuf_str(b, "}\n");
    return b->oom ? vene_errorf(err, VENE_ERR_MEMORY, "out of memory") : VENE_OK;
}

int vene_causal_write_jsonl(vene_causal *cm, const vene_causal_dataset *d, const char *path, vene_error *err) {
    int out, rc = check_dataset(cm, d, &out, err);
    if (rc) return rc;
    if (!path || !path[0]) return vene_errorf(err, VENE_ERR_ARG, "dataset: no output path");
    size_t tl = strlen(path) + 16;
    char *tmp = malloc(tl);
    int *base = malloc((size_t)cm->n * sizeof *base);
    int *sources = malloc((size_t)cm->n * (size_t)(d->n_vars ? d->n_vars : 1) * sizeof *sources);
    vene_causal_input in = {0};
    vene_strbuf line = {0};
    FILE *f = NULL;
    if (!tmp || !base || !sources) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
        goto out;
    }
    snprintf(tmp, tl, "%s.tmpXXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        rc = vene_errorf(err, VENE_ERR_IO, "%s: cannot create a temporary file: %s", path, strerror(errno));
        goto out;
    }
    (void)fchmod(fd, 0644); /* mkstemp makes 0600; a dataset is an ordinary file */
    if (!(f = fdopen(fd, "w"))) {
        close(fd);
        rc = vene_errorf(err, VENE_ERR_IO, "%s: cannot open a temporary file: %s", path, strerror(errno));
        goto out;
    }
    vene_causal_example ex = {.base = base, .sources = sources};
    for (int64_t i = 0; i < d->size && !rc; i++) {
        rc = sample_checked(cm, d, out, i, &ex, err);
        if (!rc) rc = format_example(cm, d, &ex, &in, &line, err);
        if (rc) vene_error_prefix(err, "%s: example %lld", path, (long long)i);
        else if (fwrite(line.p, 1, line.n, f) != line.n)
            rc = vene_errorf(err, VENE_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    }
    if (!rc && (fflush(f) != 0 || fsync(fileno(f)) != 0))
        rc = vene_errorf(err, VENE_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    if (fclose(f) != 0 && !rc) rc = vene_errorf(err, VENE_ERR_IO, "%s: write failed: %s", path, strerror(errno));
    f = NULL;
    if (!rc && rename(tmp, path) != 0)
        rc = vene_errorf(err, VENE_ERR_IO, "%s: cannot rename the temporary file into place: %s", path,
                         strerror(errno));
    if (rc) unlink(tmp);
out:
    free(tmp);
    free(base);
    free(sources);
    free(in.embeds);
    free(in.ids);
    free(in.text.p);
    free(line.p);
    return rc;
}
