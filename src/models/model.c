/* Loading a model folder, site lookup, run state and hook dispatch: everything about
 * models that does not depend on the architecture. */
#include "models/model.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/kernels.h"
#include "models/kv_cache.h"
#include "io/json_keys.h"

static char *read_text_file(const char *path, size_t *len, vene_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        vene_errorf(err, VENE_ERR_IO, "%s: cannot open", path);
        return NULL;
    }
    struct stat sb; /* a directory opens, then reports a size of LONG_MAX */
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        vene_errorf(err, VENE_ERR_IO, "%s: not a regular file", path);
        return NULL;
    }
    if (fseek(f, 0, SEEK_END) != 0) goto fail;
    long n = ftell(f);
    if (n < 0 || fseek(f, 0, SEEK_SET) != 0) goto fail;
    char *buf = malloc((size_t)n + 1);
    if (!buf) {
        fclose(f);
        vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
        return NULL;
    }
    if (fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        goto fail;
    }
    buf[n] = '\0';
    fclose(f);
    if (len) *len = (size_t)n;
    return buf;
fail:
    fclose(f);
    vene_errorf(err, VENE_ERR_IO, "%s: read failed", path);
    return NULL;
}

int vene_config_int(const cJSON *cfg, const char *file, const char *key, int *out, vene_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v) return vene_errorf(err, VENE_ERR_FORMAT, "%s: missing key \"%s\"", file, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= -1e9 && v->valuedouble <= 1e9) ||
        v->valuedouble != (double)(int)v->valuedouble)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: key \"%s\" must be an integer (|n| <= 1e9)", file, key);
    *out = (int)v->valuedouble;
    return VENE_OK;
}

int vene_config_int_opt(const cJSON *cfg, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    return cJSON_IsNumber(v) && v->valuedouble >= -1e9 && v->valuedouble <= 1e9 ? (int)v->valuedouble : dflt;
}

double vene_config_num_opt(const cJSON *cfg, const char *key, double dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    return cJSON_IsNumber(v) ? v->valuedouble : dflt;
}

int vene_model_weight(vene_model *m, const char *name, int ndim, int64_t a, int64_t b, const float **out,
                      vene_error *err) {
    int64_t shape[2] = {a, b};
    int rc = vene_weights_get(m->weights, name, ndim, shape, out, err);
    if (rc != VENE_OK) return rc;
    if (m->n_param_tensors == m->cap_param_tensors) {
        int cap = m->cap_param_tensors ? 2 * m->cap_param_tensors : 64;
        vene_param *p = realloc(m->params, sizeof *p * (size_t)cap);
        if (!p) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        m->params = p;
        m->cap_param_tensors = cap;
    }
    vene_param *p = &m->params[m->n_param_tensors];
    if (!(p->name = strdup(name))) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    p->data = *out;
    p->ndim = ndim;
    p->shape[0] = a;
    p->shape[1] = ndim == 2 ? b : 1;
    p->numel = ndim == 1 ? a : a * b;
    p->offset = m->n_params;
    m->n_param_tensors++;
    m->n_params += p->numel;
    return rc;
}

int vene_config_int_or(const vene_model *m, const char *key, int dflt, int *out, vene_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->config, key);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return VENE_OK;
    }
    char file[4200];
    snprintf(file, sizeof file, "%s/config.json", m->dir);
    return vene_config_int(m->config, file, key, out, err);
}

int vene_config_num_or(const vene_model *m, const char *key, double dflt, double *out, vene_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->config, key);
    if (!v || cJSON_IsNull(v)) *out = dflt;
    else if (cJSON_IsNumber(v)) *out = v->valuedouble;
    else return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: key \"%s\" must be a number", m->dir, key);
    return VENE_OK;
}

int vene_config_bool_or(const vene_model *m, const char *key, int dflt, int *out, vene_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->config, key);
    if (!v || cJSON_IsNull(v)) *out = dflt;
    else if (cJSON_IsBool(v)) *out = cJSON_IsTrue(v);
    else return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: key \"%s\" must be true or false", m->dir, key);
    return VENE_OK;
}

static int class_allowed(const vene_arch *a, const char *cls) {
    for (const char *const *c = a->classes; *c; c++)
        if (strcmp(*c, cls) == 0) return 1;
    return 0;
}

int vene_model_load(const char *dir, const char *model_class, vene_model **out, vene_error *err) {
    if (!out) return vene_errorf(err, VENE_ERR_ARG, "vene_model_load: out is NULL");
    return vene_model_load_with(NULL, dir, model_class, out, err);
}

int vene_model_load_with(const vene_registry *reg, const char *dir, const char *model_class, vene_model **out,
                         vene_error *err) {
    *out = NULL;
    if (!dir || !*dir) return vene_errorf(err, VENE_ERR_ARG, "model folder path is empty");
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len = 0;
    char *text = read_text_file(path, &len, err);
    if (!text) return err ? err->code : VENE_ERR_IO;
    const char *end = NULL;
    cJSON *cfg = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!cfg || !cJSON_IsObject(cfg)) {
        long off = end ? (long)(end - text) : 0;
        free(text);
        cJSON_Delete(cfg);
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: not a JSON object (parse error near byte %ld)", path, off);
    }
    free(text);
    int rc = vene_json_unique_keys(cfg, path, err);
    if (rc) {
        cJSON_Delete(cfg);
        return rc;
    }
    vene_model *m = calloc(1, sizeof *m);
    if (!m) {
        cJSON_Delete(cfg);
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    }
    m->config = cfg;
    m->dir = strdup(dir);
    atomic_init(&m->refs, 1);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
    if (!cJSON_IsString(mt)) {
        rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: missing key \"model_type\" (a string)", path);
        goto fail;
    }
    m->arch = vene_registry_find(reg, mt->valuestring);
    if (!m->arch) {
        char names[512];
        vene_registry_names(reg, names, sizeof names);
        rc = vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: unknown model_type \"%s\" (supported: %s)", path,
                         mt->valuestring, names);
        goto fail;
    }
    const char *cls = model_class;
    if (!cls) {
        const cJSON *archs = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
        const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
        cls = cJSON_IsString(a0) ? a0->valuestring : m->arch->classes[0];
    }
    if (!class_allowed(m->arch, cls)) {
        rc = vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: model class \"%s\" is not supported for model_type \"%s\"",
                         path, cls, m->arch->model_type);
        goto fail;
    }
    m->model_class = strdup(cls);
    if ((rc = vene_weights_open(dir, &m->weights, err)) != VENE_OK) goto fail;
    if ((rc = m->arch->load(m, err)) != VENE_OK) goto fail;
    *out = m;
    return VENE_OK;
fail:
    vene_model_free(m);
    return rc;
}

static void model_destroy(vene_model *m) {
    if (m->arch && m->arch->free_impl) m->arch->free_impl(m);
    for (int i = 0; i < m->n_param_tensors; i++) free(m->params[i].name);
    free(m->params);
    vene_weights_free(m->weights);
    cJSON_Delete(m->config);
    free(m->model_class);
    free(m->dir);
    free(m);
}

/* Drop one reference (the caller's handle or a run state's); the last one releases. */
static void model_unref(const vene_model *cm) {
    vene_model *m = (vene_model *)cm; /* the count is not part of the model's value */
    if (atomic_fetch_sub(&m->refs, 1) == 1) model_destroy(m);
}

void vene_model_free(vene_model *m) {
    if (!m || atomic_exchange(&m->freed, 1)) return; /* a second free of a model still in use is ignored */
    model_unref(m);
}

void vene_model_get_info(const vene_model *m, vene_model_info *info) {
    memset(info, 0, sizeof *info);
    info->model_type = m->arch->model_type;
    info->model_class = m->model_class;
    info->path_prefix = m->path_prefix;
    info->n_layer = m->n_layer;
    info->d_model = m->d_model;
    info->n_head = m->n_head;
    info->head_dim = m->head_dim;
    info->d_ff = m->d_ff;
    info->vocab_size = m->vocab_size;
    info->n_ctx = m->n_ctx;
    info->has_lm_head = m->has_lm_head;
    info->n_params = m->n_params;
    info->weight_bytes = m->n_params * (int64_t)sizeof(float);
}

int vene_model_site_count(const vene_model *m) { return m->arch->n_sites; }

int vene_model_site(const vene_model *m, int index, vene_site_info *out) {
    if (index < 0 || index >= m->arch->n_sites) return VENE_ERR_RANGE;
    const vene_site_def *s = &m->arch->sites[index];
    out->path = s->path;
    out->is_input = s->is_input;
    out->layered = s->layered;
    out->shape = s->shape;
    return VENE_OK;
}

int vene_model_site_shape(const vene_model *m, int site, int B, int S, int64_t shape[VENE_MAX_DIMS]) {
    if (site < 0 || site >= m->arch->n_sites) return 0;
    return m->arch->site_shape(m, site, B, S, shape);
}

/* Split "h[3].attn.c_attn.output" into template "h[%d].attn.c_attn", layer 3, is_input 0.
 * Only the first bracketed integer is the layer. */
static int parse_site_path(const char *path, char *tmpl, size_t n, int *layer, int *is_input) {
    const char *dot = strrchr(path, '.');
    if (!dot) return 0;
    if (strcmp(dot + 1, "output") == 0) *is_input = 0;
    else if (strcmp(dot + 1, "input") == 0) *is_input = 1;
    else return 0;
    size_t o = 0;
    *layer = -1;
    for (const char *p = path; p < dot; p++) {
        if (o + 4 >= n) return 0;
        if (*p == '[' && *layer < 0) {
            const char *q = p + 1;
            if (!isdigit((unsigned char)*q)) return 0;
            long v = 0;
            while (isdigit((unsigned char)*q)) {
                v = v * 10 + (*q - '0');
                if (v > 1000000) return 0;
                q++;
            }
            if (*q != ']') return 0;
            *layer = (int)v;
            memcpy(tmpl + o, "[%d]", 4);
            o += 4;
            p = q;
            continue;
        }
        tmpl[o++] = *p;
    }
    tmpl[o] = '\0';
    return 1;
}

int vene_model_find_site(const vene_model *m, const char *path, int *site, int *layer, vene_error *err) {
    const char *p = path;
    size_t pl = strlen(m->path_prefix);
    if (pl && strncmp(p, m->path_prefix, pl) == 0) p += pl;
    char tmpl[512];
    int is_input = 0;
    if (!parse_site_path(p, tmpl, sizeof tmpl, layer, &is_input))
        return vene_errorf(err, VENE_ERR_ARG, "site \"%s\": expected a module path ending in .input or .output", path);
    for (int i = 0; i < m->arch->n_sites; i++) {
        const vene_site_def *s = &m->arch->sites[i];
        if (s->is_input == is_input && strcmp(s->path, tmpl) == 0) {
            if (s->layered && (*layer < 0 || *layer >= m->n_layer))
                return vene_errorf(err, VENE_ERR_RANGE, "site \"%s\": layer %d out of range (model has %d layers)",
                                   path, *layer, m->n_layer);
            *site = i;
            return VENE_OK;
        }
    }
    return vene_errorf(err, VENE_ERR_ARG, "site \"%s\": no such module input/output in %s (see `vene info`)", path,
                       m->model_class);
}

/* ---------------------------------------------------------------- run state */

int vene_run_new(const vene_model *m, vene_run **out, vene_error *err) {
    if (!out) return vene_errorf(err, VENE_ERR_ARG, "vene_run_new: out is NULL");
    *out = NULL;
    if (!m) return vene_errorf(err, VENE_ERR_ARG, "model is NULL");
    if (atomic_load(&m->freed)) return vene_errorf(err, VENE_ERR_STATE, "the model was freed (vene_model_free)");
    vene_run *rs = calloc(1, sizeof *rs);
    if (!rs) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    atomic_fetch_add(&((vene_model *)m)->refs, 1);
    rs->m = m;
    vk_blas_single_thread();
    rs->site_hooked = calloc((size_t)m->arch->n_sites, 1);
    rs->call_count = calloc((size_t)m->arch->n_sites * (size_t)(m->n_layer + 1), sizeof(int));
    rs->site_bhooked = calloc((size_t)m->arch->n_sites, 1);
    rs->bcall_count = calloc((size_t)m->arch->n_sites * (size_t)(m->n_layer + 1), sizeof(int));
    if (!rs->site_hooked || !rs->call_count || !rs->site_bhooked || !rs->bcall_count) {
        vene_run_free(rs);
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    }
    *out = rs;
    return VENE_OK;
}

void vene_run_free(vene_run *rs) {
    if (!rs) return;
    vene_arena_free(&rs->arena);
    vene_arena_free(&rs->garena);
    if (!rs->param_grads_borrowed) free(rs->param_grads);
    free(rs->hooks);
    free(rs->site_hooked);
    free(rs->call_count);
    free(rs->bhooks);
    free(rs->site_bhooked);
    free(rs->bcall_count);
    model_unref(rs->m);
    free(rs);
}

void vene_run_set_memory_limit(vene_run *rs, size_t bytes) { rs->arena.limit = bytes; }

int vene_run_add_hook(vene_run *rs, int site, int layer, vene_hook_fn fn, void *user, vene_error *err) {
    const vene_model *m = rs->m;
    if (site < 0 || site >= m->arch->n_sites)
        return vene_errorf(err, VENE_ERR_RANGE, "hook site %d out of range (model has %d sites)", site, m->arch->n_sites);
    if (m->arch->sites[site].layered ? (layer < 0 || layer >= m->n_layer) : layer != -1)
        return vene_errorf(err, VENE_ERR_RANGE, "hook on %s: layer %d out of range (model has %d layers)",
                           m->arch->sites[site].path, layer, m->n_layer);
    if (!fn) return vene_errorf(err, VENE_ERR_ARG, "hook function is NULL");
    if (rs->n_hooks == rs->cap_hooks) {
        int cap = rs->cap_hooks ? rs->cap_hooks * 2 : 16;
        vene_hook *h = realloc(rs->hooks, sizeof *h * (size_t)cap);
        if (!h) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        rs->hooks = h;
        rs->cap_hooks = cap;
    }
    rs->hooks[rs->n_hooks++] = (vene_hook){site, layer, fn, user, 0};
    rs->site_hooked[site] = 1;
    return VENE_OK;
}

void vene_run_clear_hooks(vene_run *rs) {
    rs->n_hooks = 0;
    memset(rs->site_hooked, 0, (size_t)rs->m->arch->n_sites);
}

int vene_run_fire(vene_run *rs, int site, int layer, vene_tensor *t, vene_error *err) {
    int *count = &rs->call_count[(size_t)site * (size_t)(rs->m->n_layer + 1) + (size_t)(layer + 1)];
    vene_hook_call where = {site, layer, *count};
    (*count)++;
    for (int i = 0; i < rs->n_hooks; i++) {
        const vene_hook *h = &rs->hooks[i];
        if (h->site != site || h->layer != layer) continue;
        int rc = h->fn(h->user, &where, t, err);
        if (rc != VENE_OK) return rc;
    }
    return VENE_OK;
}

void vene_run_set_logit_positions(vene_run *rs, const int *positions) { rs->logit_pos = positions; }

void vene_run_set_tail(vene_run *rs, int layer, const int *first) {
    rs->tail_layer = layer;
    rs->tail_first = first;
}

void vene_run_set_grad_keep_from(vene_run *rs, int layer) { rs->grad_keep_from = layer > 0 ? layer : 0; }

int vene_run_lowest_hooked_layer(const vene_run *rs) {
    int low = rs->n_hooks ? rs->m->n_layer : 0;
    for (int i = 0; i < rs->n_hooks; i++) {
        const int l = rs->hooks[i].layer < 0 ? 0 : rs->hooks[i].layer;
        low = l < low ? l : low;
    }
    return low;
}

int vene_run_tail_ok(const vene_run *rs, int B, int S, int site) {
    const int L = rs->tail_layer;
    if (!rs->tail_first || L < 0 || L >= rs->m->n_layer || rs->grad_mode || rs->kv || rs->resume) return 0;
    for (int b = 0; b < B; b++)
        if (rs->tail_first[b] < 0 || rs->tail_first[b] >= S) return 0;
    for (int i = 0; i < rs->n_hooks; i++) {
        const vene_hook *h = &rs->hooks[i];
        if (h->layer < 0 || h->layer > L || (h->layer == L && h->site != site)) return 0;
    }
    return 1;
}

/* Row b's position for rs->logit_pos, or -1 when out of range. */
int vene_run_logit_row(const vene_run *rs, int b) {
    int S = rs->S, p = rs->logit_pos[b];
    if (p < 0) p += S;
    return p < 0 || p >= S ? -1 : p;
}

int vene_run_lm_head(vene_run *rs, const float *W, int site_in, int site_out, vene_error *err) {
    const vene_model *m = rs->m;
    const vene_tensor *h = &rs->last_hidden;
    int B = (int)h->shape[0], S = (int)h->shape[1], D = (int)h->shape[2], V = m->vocab_size;
    VENE_FIRE(rs, site_in, -1, &rs->last_hidden, err);
    float *logits;
    if (rs->logit_pos) {
        /* one row per example: gather the rows, one B x D product */
        float *rows;
        VENE_ALLOC(rows, (size_t)B * D);
        for (int b = 0; b < B; b++) {
            int p = vene_run_logit_row(rs, b);
            if (p < 0)
                return vene_errorf(err, VENE_ERR_RANGE, "logit position %d of example %d outside the %d positions",
                                   rs->logit_pos[b], b, S);
            memcpy(rows + (size_t)b * D, h->data + ((size_t)b * S + p) * D, sizeof(float) * (size_t)D);
        }
        VENE_ALLOC(logits, (size_t)B * V);
        vk_linear_out_in(rows, W, NULL, logits, B, D, V);
        rs->logits = vene_tensor_3d(logits, B, 1, V);
    } else {
        VENE_ALLOC(logits, (size_t)B * S * V);
        vk_linear_out_in(h->data, W, NULL, logits, B * S, D, V);
        rs->logits = vene_tensor_3d(logits, B, S, V);
    }
    rs->has_logits = 1;
    VENE_FIRE(rs, site_out, -1, &rs->logits, err);
    return VENE_OK;
}

int vene_forward(vene_run *rs, const vene_batch *b, vene_error *err) {
    if (!rs) return vene_errorf(err, VENE_ERR_ARG, "vene_forward: run state is NULL");
    const vene_model *m = rs->m;
    if (atomic_load(&m->freed))
        return vene_errorf(err, VENE_ERR_STATE, "the model was freed (vene_model_free) while this run state still used it");
    if (!b || b->batch <= 0 || b->seq <= 0)
        return vene_errorf(err, VENE_ERR_ARG, "empty input: batch and sequence length must be positive");
    if (!b->ids && !b->embeds) return vene_errorf(err, VENE_ERR_ARG, "input has neither ids nor embeddings");
    if (m->n_ctx > 0 && b->seq > m->n_ctx)
        return vene_errorf(err, VENE_ERR_RANGE, "sequence of %d tokens is longer than the model's %d positions",
                           b->seq, m->n_ctx);
    if (b->ids) {
        for (int64_t i = 0; i < (int64_t)b->batch * b->seq; i++)
            if (b->ids[i] < 0 || b->ids[i] >= m->vocab_size)
                return vene_errorf(err, VENE_ERR_RANGE, "token id %d at [%lld, %lld] out of range (vocab size %d)",
                                   b->ids[i], (long long)(i / b->seq), (long long)(i % b->seq), m->vocab_size);
    }
    if (b->positions) {
        for (int64_t i = 0; i < (int64_t)b->batch * b->seq; i++)
            if (b->positions[i] < 0 || (m->n_ctx > 0 && b->positions[i] >= m->n_ctx))
                return vene_errorf(err, VENE_ERR_RANGE, "position id %d at [%lld, %lld] out of range (%d positions)",
                                   b->positions[i], (long long)(i / b->seq), (long long)(i % b->seq), m->n_ctx);
    }
    size_t kv_extra = 0;
    int rc = vene_kv_begin(rs, b, &kv_extra, err);
    if (rc) return rc;
    size_t need = m->arch->run_bytes(m, b->batch, b->seq) + kv_extra;
    if (rs->grad_mode) need += m->arch->grad_bytes(m, b->batch, b->seq);
    rs->saved = NULL;
    rc = vene_arena_reserve(&rs->arena, need, err);
    if (rc) return vene_error_prefix(err, "a forward of %d x %d tokens", b->batch, b->seq);
    vene_arena_reset(&rs->arena);
    memset(rs->call_count, 0, sizeof(int) * (size_t)m->arch->n_sites * (size_t)(m->n_layer + 1));
    rs->B = b->batch;
    rs->S = b->seq;
    rs->has_logits = 0;
    rc = m->arch->forward(rs, b, err);
    if (rc == VENE_OK) vene_kv_commit(rs, b->seq);
    return rc;
}

const vene_tensor *vene_run_logits(const vene_run *rs) { return rs->has_logits ? &rs->logits : NULL; }
const vene_tensor *vene_run_last_hidden(const vene_run *rs) { return rs->last_hidden.data ? &rs->last_hidden : NULL; }

/* ---------------------------------------------------------------- for registered architectures */

const char *vene_model_dir(const vene_model *m) { return m->dir; }
const vene_model *vene_run_model(const vene_run *rs) { return rs->m; }

int vene_model_config_int(const vene_model *m, const char *key, int required, int *out, vene_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->config, key);
    if ((!v || cJSON_IsNull(v)) && required)
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: missing key \"%s\" (an integer)", m->dir, key);
    return vene_config_int_or(m, key, *out, out, err);
}

int vene_model_config_number(const vene_model *m, const char *key, int required, double *out, vene_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(m->config, key);
    if (!v || cJSON_IsNull(v))
        return required ? vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: missing key \"%s\" (a number)", m->dir, key)
                        : VENE_OK;
    if (!cJSON_IsNumber(v))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: key \"%s\" must be a number", m->dir, key);
    *out = v->valuedouble;
    return VENE_OK;
}

int vene_model_tensor(vene_model *m, const char *name, int ndim, const int64_t *shape, const float **out,
                      vene_error *err) {
    int64_t n = 1;
    if (!name || !shape || !out || ndim < 1 || ndim > 4)
        return vene_errorf(err, VENE_ERR_ARG, "vene_model_tensor: a name, an out pointer and 1 to 4 dims are needed");
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0 || shape[i] > INT64_MAX / n)
            return vene_errorf(err, VENE_ERR_ARG, "vene_model_tensor %s: dim %d is %lld", name, i, (long long)shape[i]);
        n *= shape[i];
    }
    int rc = vene_weights_get(m->weights, name, ndim, shape, out, err);
    if (rc == VENE_OK) m->n_params += n;
    return rc;
}

float *vene_run_scratch(vene_run *rs, size_t n, vene_error *err) {
    float *p = vene_arena_floats(&rs->arena, n);
    if (!p)
        vene_errorf(err, VENE_ERR_MEMORY, "run scratch exhausted: scratch_floats of \"%s\" reported too little",
                    rs->m->arch->model_type);
    return p;
}

int vene_fire(vene_run *rs, int site, int layer, vene_tensor *t, vene_error *err) {
    const vene_model *m = rs->m;
    if (site < 0 || site >= m->arch->n_sites || !t || !t->data)
        return vene_errorf(err, VENE_ERR_ARG, "vene_fire: site %d out of range (%d sites) or no tensor", site,
                           m->arch->n_sites);
    if (m->arch->sites[site].layered ? (layer < 0 || layer >= m->n_layer) : layer != -1)
        return vene_errorf(err, VENE_ERR_RANGE, "vene_fire %s: layer %d out of range (model has %d layers)",
                           m->arch->sites[site].path, layer, m->n_layer);
    return rs->site_hooked[site] ? vene_run_fire(rs, site, layer, t, err) : VENE_OK;
}

int vene_run_set_outputs(vene_run *rs, const vene_tensor *last_hidden, const vene_tensor *logits, vene_error *err) {
    if (!last_hidden || !last_hidden->data || last_hidden->ndim < 1 || last_hidden->ndim > VENE_MAX_DIMS ||
        (logits && (!logits->data || logits->ndim < 1 || logits->ndim > VENE_MAX_DIMS)))
        return vene_errorf(err, VENE_ERR_ARG, "vene_run_set_outputs: last_hidden (and logits when given) need data "
                                              "and 1 to %d dims", VENE_MAX_DIMS);
    rs->last_hidden = *last_hidden;
    rs->has_logits = logits != NULL;
    if (logits) rs->logits = *logits;
    return VENE_OK;
}
