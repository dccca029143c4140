/* Architectures registered from outside the library (vene.h, "user-defined
 * architectures"): a caller-owned registry of validated copies of vene_arch_spec, each
 * wrapped as an internal vene_arch whose functions forward to the spec's, and pyvene's
 * dimension proposals evaluated against config.json at load time. */
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "models/model.h"

typedef struct user_arch {
    vene_arch arch;            /* arch.data points back here */
    vene_arch_spec spec;       /* the caller's functions and user pointer */
    char **strings;            /* every string copied, owned */
    int n_strings;
    const char **classes;      /* NULL-terminated, into strings */
    vene_site_def *sites;
    vene_component_def *components;
    const char **dims;         /* per component, NULL = d_model */
} user_arch;

struct vene_registry {
    user_arch **archs;
    int n, cap;
};

/* A loaded model's impl: the loader's state and the component widths. */
typedef struct user_impl {
    void *impl;
    int *widths;
} user_impl;

static void user_arch_free(user_arch *u) {
    if (!u) return;
    for (int i = 0; i < u->n_strings; i++) free(u->strings[i]);
    free(u->strings);
    free(u->classes);
    free(u->sites);
    free(u->components);
    free(u->dims);
    free(u);
}

int vene_registry_new(vene_registry **out, vene_error *err) {
    *out = calloc(1, sizeof **out);
    return *out ? VENE_OK : vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
}

void vene_registry_free(vene_registry *r) {
    if (!r) return;
    for (int i = 0; i < r->n; i++) user_arch_free(r->archs[i]);
    free(r->archs);
    free(r);
}

const vene_arch *vene_registry_find(const vene_registry *r, const char *model_type) {
    for (int i = 0; r && model_type && i < r->n; i++)
        if (strcmp(r->archs[i]->arch.model_type, model_type) == 0) return &r->archs[i]->arch;
    return vene_arch_find(model_type);
}

void vene_registry_names(const vene_registry *r, char *buf, size_t n) {
    vene_arch_names(buf, n);
    size_t o = strlen(buf);
    for (int i = 0; r && i < r->n && o < n; i++) o += (size_t)snprintf(buf + o, n - o, ", %s", r->archs[i]->arch.model_type);
}

/* ---------------------------------------------------------------- validation and copying */

static const char *keep(user_arch *u, const char *s) {
    if (!s) return NULL;
    char *c = strdup(s);
    if (!c) return NULL;
    u->strings[u->n_strings++] = c;
    return c;
}

/* A site template: layered ones hold "[%d]" once and no other '%'; others no '%' or '['
 * (vene_model_find_site turns the first "[k]" of a path into "[%d]"). */
static int template_ok(const char *path, int layered) {
    if (!path || !*path) return 0;
    const char *d = strstr(path, "[%d]");
    if (layered) {
        if (!d || strchr(path, '%') != d + 1 || strchr(d + 2, '%') || memchr(path, '[', (size_t)(d - path))) return 0;
    } else if (strchr(path, '%') || strchr(path, '[')) {
        return 0;
    }
    size_t n = strlen(path);
    return path[n - 1] != '.' && path[0] != '.';
}

/* Syntax of dimension proposals: alternatives by '|', each tokens by '*' or '/', a token
 * an integer or a (dotted) identifier. */
static int dim_syntax_ok(const char *p) {
    for (;;) {
        if (isdigit((unsigned char)*p)) {
            while (isdigit((unsigned char)*p)) p++;
        } else if (isalpha((unsigned char)*p) || *p == '_') {
            while (isalnum((unsigned char)*p) || *p == '_' || *p == '.') p++;
            if (p[-1] == '.') return 0;
        } else {
            return 0;
        }
        if (*p == '\0') return 1;
        if (*p != '*' && *p != '/' && *p != '|') return 0;
        p++;
    }
}

/* ---------------------------------------------------------------- the wrapped architecture */

/* One token's value: an integer literal, or a number at a (dotted) config.json key. */
static int dim_token(const cJSON *cfg, const char *t, size_t n, double *v) {
    if (isdigit((unsigned char)t[0])) {
        *v = 0;
        for (size_t i = 0; i < n; i++) *v = *v * 10 + (t[i] - '0');
        return 1;
    }
    const cJSON *node = cfg;
    while (n > 0 && node) {
        const char *dot = memchr(t, '.', n);
        size_t len = dot ? (size_t)(dot - t) : n;
        char key[128];
        if (len >= sizeof key) return 0;
        memcpy(key, t, len);
        key[len] = '\0';
        node = cJSON_GetObjectItemCaseSensitive(node, key);
        t += dot ? len + 1 : len;
        n -= dot ? len + 1 : len;
    }
    if (!cJSON_IsNumber(node)) return 0;
    *v = node->valuedouble;
    return 1;
}

/* pyvene's resolver: the first proposal whose keys all exist, evaluated left to right
 * ('/' truncating like int(a / b)); a missing key falls through to the next proposal
 * (pyvene raises instead, spec §5.1). 0 when none resolves to a positive int. */
static int eval_dims(const cJSON *cfg, const char *s) {
    while (*s) {
        size_t alt = strcspn(s, "|");
        double acc = 0;
        int ok = 1;
        char op = 0;
        for (size_t i = 0; ok && i < alt;) {
            size_t n = strcspn(s + i, "*/|");
            if (n > alt - i) n = alt - i;
            double v;
            ok = dim_token(cfg, s + i, n, &v);
            if (ok) acc = op == '*' ? acc * v : op == '/' ? (v != 0 ? (double)(long long)(acc / v) : -1) : v;
            i += n;
            if (i < alt) op = s[i++];
        }
        if (ok && acc >= 1 && acc <= INT_MAX && acc == (double)(long long)acc) return (int)acc;
        s += alt + (s[alt] == '|');
    }
    return 0;
}

static const user_arch *user_of(const vene_model *m) { return m->arch->data; }

static int user_load(vene_model *m, vene_error *err) {
    const user_arch *u = user_of(m);
    user_impl *ui = calloc(1, sizeof *ui);
    if (!ui) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    m->impl = ui;
    m->path_prefix = "";
    vene_arch_dims d;
    memset(&d, 0, sizeof d);
    int rc = u->spec.load(u->spec.user, m, &d, &ui->impl, err);
    if (rc) return rc;
    if (d.n_layer < 0 || d.n_layer > 100000 || d.d_model <= 0 || d.n_head < 0 || d.n_kv_head < 0 || d.head_dim < 0 ||
        d.d_ff < 0 || d.vocab_size < 0 || d.n_ctx < 0)
        return vene_errorf(err, VENE_ERR_ARG,
                           "%s: the \"%s\" loader reported impossible sizes (n_layer %d, d_model %d, n_head %d, "
                           "n_kv_head %d, head_dim %d, d_ff %d, vocab_size %d, n_ctx %d)",
                           m->dir, u->arch.model_type, d.n_layer, d.d_model, d.n_head, d.n_kv_head, d.head_dim, d.d_ff,
                           d.vocab_size, d.n_ctx);
    m->n_layer = d.n_layer;
    m->d_model = d.d_model;
    m->n_head = d.n_head;
    m->n_kv_head = d.n_kv_head;
    m->head_dim = d.head_dim;
    m->d_ff = d.d_ff;
    m->vocab_size = d.vocab_size;
    m->n_ctx = d.n_ctx;
    m->has_lm_head = !!d.has_lm_head;
    if (!(ui->widths = calloc((size_t)u->arch.n_components + 1, sizeof *ui->widths)))
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    for (int i = 0; i < u->arch.n_components; i++) {
        const vene_component_def *c = &u->components[i];
        ui->widths[i] = u->dims[i] ? eval_dims(m->config, u->dims[i]) : m->d_model;
        if (ui->widths[i] <= 0)
            return vene_errorf(err, VENE_ERR_FORMAT,
                               "%s/config.json: component \"%s\": no dimension proposal of \"%s\" resolves to a "
                               "positive integer",
                               m->dir, c->name, u->dims[i]);
        if ((c->head_split == 1 && m->n_head <= 0) || (c->head_split == 2 && m->n_kv_head <= 0))
            return vene_errorf(err, VENE_ERR_ARG, "%s: component \"%s\" splits into heads but the loader reported none",
                               m->dir, c->name);
    }
    return VENE_OK;
}

static void user_free_impl(vene_model *m) {
    user_impl *ui = m->impl;
    const user_arch *u = user_of(m);
    if (ui && ui->impl && u->spec.free_impl) u->spec.free_impl(u->spec.user, ui->impl);
    if (ui) free(ui->widths);
    free(ui);
    m->impl = NULL;
}

static size_t user_run_bytes(const vene_model *m, int B, int S) {
    const user_arch *u = user_of(m);
    size_t floats = u->spec.scratch_floats(u->spec.user, m, B, S);
    return floats > (SIZE_MAX - 64) / sizeof(float) ? SIZE_MAX : floats * sizeof(float) + 64;
}

static int user_forward(vene_run *rs, const vene_batch *b, vene_error *err) {
    const user_arch *u = user_of(rs->m);
    memset(&rs->last_hidden, 0, sizeof rs->last_hidden);
    int rc = u->spec.forward(u->spec.user, rs, b, err);
    if (rc == VENE_OK && !rs->last_hidden.data)
        return vene_errorf(err, VENE_ERR_STATE, "the forward of \"%s\" ended without vene_run_set_outputs",
                           u->arch.model_type);
    if (rc == VENE_OK && rs->m->has_lm_head && !rs->has_logits)
        return vene_errorf(err, VENE_ERR_STATE, "the forward of \"%s\" (with an LM head) reported no logits",
                           u->arch.model_type);
    return rc;
}

static int user_site_shape(const vene_model *m, int site, int B, int S, int64_t *shape) {
    const user_arch *u = user_of(m);
    int nd = u->spec.site_shape(u->spec.user, m, site, B, S, shape);
    return nd >= 0 && nd <= VENE_MAX_DIMS ? nd : 0;
}

static int user_component_width(const vene_model *m, const vene_component_def *c) {
    const user_impl *ui = m->impl;
    return ui->widths[c - m->arch->components];
}

int vene_arch_is_user(const vene_arch *a) { return a->load == user_load; }

void *vene_model_impl(const vene_model *m) {
    return m && vene_arch_is_user(m->arch) && m->impl ? ((user_impl *)m->impl)->impl : NULL;
}

/* ---------------------------------------------------------------- registry */

static int spec_error(vene_error *err, const vene_arch_spec *s, const char *what) {
    return vene_errorf(err, VENE_ERR_ARG, "architecture \"%s\": %s", s->model_type ? s->model_type : "(null)", what);
}

int vene_registry_add(vene_registry *r, const vene_arch_spec *s, vene_error *err) {
    if (!r || !s) return vene_errorf(err, VENE_ERR_ARG, "vene_registry_add: registry and spec must not be NULL");
    if (!s->model_type || !*s->model_type) return spec_error(err, s, "model_type is empty");
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->archs[i]->arch.model_type, s->model_type)) return spec_error(err, s, "already in this registry");
    if (!s->load || !s->forward || !s->scratch_floats || !s->site_shape)
        return spec_error(err, s, "load, scratch_floats, forward and site_shape are required");
    if (!s->classes || !s->classes[0]) return spec_error(err, s, "needs at least one class name");
    if (s->n_sites <= 0 || s->n_sites > 4096 || !s->sites) return spec_error(err, s, "needs 1 to 4096 sites");
    if (s->n_components < 0 || s->n_components > 4096 || (s->n_components && !s->components))
        return spec_error(err, s, "n_components out of range");
    int n_classes = 0;
    while (s->classes[n_classes]) n_classes++;
    for (int i = 0; i < s->n_sites; i++) {
        const vene_site_info *a = &s->sites[i];
        if (!template_ok(a->path, a->layered))
            return vene_errorf(err, VENE_ERR_ARG,
                               "architecture \"%s\": sites[%d] path \"%s\" must hold \"[%%d]\" exactly once when "
                               "layered and no '%%' or '[' otherwise",
                               s->model_type, i, a->path ? a->path : "(null)");
        for (int j = 0; j < i; j++)
            if (!strcmp(s->sites[j].path, a->path) && !s->sites[j].is_input == !a->is_input)
                return vene_errorf(err, VENE_ERR_ARG, "architecture \"%s\": sites[%d] repeats sites[%d] (%s)",
                                   s->model_type, i, j, a->path);
    }
    for (int i = 0; i < s->n_components; i++) {
        const vene_component_spec *c = &s->components[i];
        int site = -1;
        for (int j = 0; c->site && j < s->n_sites; j++)
            if (!strcmp(s->sites[j].path, c->site) && !s->sites[j].is_input == !c->is_input) site = j;
        if (!c->name || !*c->name || site < 0 || c->third < 0 || c->third > 3 || c->heads < 0 || c->heads > 2 ||
            (c->dim && !dim_syntax_ok(c->dim)) || !s->sites[site].layered)
            return vene_errorf(err, VENE_ERR_ARG,
                               "architecture \"%s\": components[%d] (%s) needs a name, a layered site of the spec "
                               "with the same is_input, third 0-3, heads 0-2 and dimension proposals like "
                               "\"n_inner|n_embd*4\"",
                               s->model_type, i, c->name ? c->name : "(null)");
        for (int j = 0; j < i; j++)
            if (!strcmp(s->components[j].name, c->name))
                return vene_errorf(err, VENE_ERR_ARG, "architecture \"%s\": component \"%s\" is listed twice",
                                   s->model_type, c->name);
    }
    user_arch *u = calloc(1, sizeof *u);
    int max_strings = 1 + n_classes + 2 * s->n_sites + 3 * s->n_components;
    if (u) {
        u->strings = calloc((size_t)max_strings, sizeof *u->strings);
        u->classes = calloc((size_t)n_classes + 1, sizeof *u->classes);
        u->sites = calloc((size_t)s->n_sites, sizeof *u->sites);
        u->components = calloc((size_t)s->n_components + 1, sizeof *u->components);
        u->dims = calloc((size_t)s->n_components + 1, sizeof *u->dims);
    }
    user_arch **grown = NULL;
    if (u && r->n == r->cap) {
        grown = realloc(r->archs, sizeof *grown * (size_t)(r->cap ? 2 * r->cap : 4));
        if (grown) {
            r->archs = grown;
            r->cap = r->cap ? 2 * r->cap : 4;
        }
    }
    int ok = u && u->strings && u->classes && u->sites && u->components && u->dims && r->n < r->cap;
    const char *mt = ok ? keep(u, s->model_type) : NULL;
    ok = ok && mt;
    for (int i = 0; ok && i < n_classes; i++) ok = (u->classes[i] = keep(u, s->classes[i])) != NULL;
    for (int i = 0; ok && i < s->n_sites; i++) {
        const vene_site_info *a = &s->sites[i];
        u->sites[i] = (vene_site_def){keep(u, a->path), (uint8_t)!!a->is_input, (uint8_t)!!a->layered,
                                      keep(u, a->shape ? a->shape : "")};
        ok = u->sites[i].path && u->sites[i].shape;
    }
    for (int i = 0; ok && i < s->n_components; i++) {
        const vene_component_spec *c = &s->components[i];
        u->components[i] = (vene_component_def){keep(u, c->name), keep(u, c->site), (uint8_t)!!c->is_input,
                                                (uint8_t)c->third, (uint8_t)c->heads};
        u->dims[i] = c->dim ? keep(u, c->dim) : NULL;
        ok = u->components[i].name && u->components[i].path && (!c->dim || u->dims[i]);
    }
    if (!ok) {
        user_arch_free(u);
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    }
    u->arch = (vene_arch){.load = user_load,
                          .free_impl = user_free_impl,
                          .run_bytes = user_run_bytes,
                          .forward = user_forward,
                          .site_shape = user_site_shape,
                          .component_width = user_component_width};
    u->arch.model_type = mt;
    u->arch.classes = u->classes;
    u->arch.sites = u->sites;
    u->arch.n_sites = s->n_sites;
    u->arch.components = u->components;
    u->arch.n_components = s->n_components;
    u->arch.data = u;
    u->spec = *s;
    r->archs[r->n++] = u;
    return VENE_OK;
}
