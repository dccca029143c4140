/* GPT-2 reverse mode against the PyTorch autograd reference (tests/fixtures/gpt2_grad,
 * made by tools/make_grad_fixtures.py): loss = sum(R1 * logits) + sum(R2 * last_hidden),
 * so vene_backward gets d_logits = R1, d_hidden = R2. Compared: every weight gradient
 * (wte on a stored subset of rows, and every other wte row must be exactly zero) and the
 * stored site gradients, captured with backward hooks. Then accumulation, zero_grad,
 * VENE_GRAD_ACTIVATIONS, a hook that stops the backward, and error cases.
 *
 * Tolerance: max |got - want| <= 1e-3 * max |want| per tensor (the float32 reference is
 * within 1e-6 of float64 autograd). */
#include <stdint.h>

#include "io/safetensors.h"
#include "test.h"
#include "vene.h"

#define MODEL_DIR "fixtures/models/gpt2-tiny"
#define GRAD_DIR "fixtures/gpt2_grad"
#define TOL 1e-3
#define MAX_SITES 32

/* ------------------------------------------------------------------ fixture case */

typedef struct gcase {
    st_file *f;
    int B, S, V, lm;
    int32_t *ids, *pos;     /* one block: ids, then pos, then mask */
    uint8_t *mask;
    int64_t *cols, n_cols;  /* vocabulary columns where d_logits is nonzero */
    vene_tensor d_logits;   /* dense B x S x V (owned), data NULL for the bare class */
    vene_tensor d_hidden;   /* B x S x D (owned) */
} gcase;

/* A fixture tensor converted to float32 (as_f32) or int64; NULL when absent or unreadable. */
static void *tensor_read(const st_tensor *t, int as_f32) {
    vene_error err = {0};
    void *d = t ? malloc((as_f32 ? sizeof(float) : sizeof(int64_t)) * (size_t)t->numel) : NULL;
    if (d && (as_f32 ? st_to_f32(t, d, &err) : st_to_i64(t, d, &err)) != VENE_OK) {
        free(d);
        d = NULL;
    }
    return d;
}
static float *tensor_f32(const st_tensor *t) { return tensor_read(t, 1); }
static int64_t *tensor_i64(const st_tensor *t) { return tensor_read(t, 0); }

static void case_close(gcase *c) {
    st_close(c->f);
    free(c->ids); /* pos and mask share its block */
    free(c->cols);
    free(c->d_logits.data);
    free(c->d_hidden.data);
    memset(c, 0, sizeof *c);
}

static int case_open(gcase *c, const char *name, int V) {
    char path[256];
    vene_error err = {0};
    memset(c, 0, sizeof *c);
    snprintf(path, sizeof path, "%s/%s.safetensors", GRAD_DIR, name);
    int rc = st_open(path, &c->f, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc) return 0;
    const st_tensor *ids = st_find(c->f, "input_ids"), *dh = st_find(c->f, "d_hidden");
    if (!ids || ids->ndim != 2 || !dh || dh->ndim != 3) return 0;
    c->B = (int)ids->shape[0];
    c->S = (int)ids->shape[1];
    c->V = V;
    size_t n = (size_t)c->B * (size_t)c->S;
    int64_t *i = tensor_i64(ids), *m = tensor_i64(st_find(c->f, "attention_mask"));
    int64_t *p = tensor_i64(st_find(c->f, "position_ids"));
    c->ids = malloc(n * (2 * sizeof(int32_t) + 1));
    int ok = i && m && p && c->ids;
    if (ok) {
        c->pos = c->ids + n;
        c->mask = (uint8_t *)(c->pos + n);
    }
    for (size_t k = 0; ok && k < n; k++) {
        c->ids[k] = (int32_t)i[k];
        c->pos[k] = (int32_t)p[k];
        c->mask[k] = (uint8_t)(m[k] != 0);
    }
    free(i);
    free(m);
    free(p);
    c->d_hidden = (vene_tensor){tensor_f32(dh), 3, {dh->shape[0], dh->shape[1], dh->shape[2]}};
    ok = ok && c->d_hidden.data;
    const st_tensor *cols = st_find(c->f, "d_logits_cols"), *vals = st_find(c->f, "d_logits_vals");
    c->lm = cols != NULL;
    if (ok && c->lm) {
        /* scatter R1 into a dense zero B x S x V tensor */
        c->n_cols = cols->numel;
        c->cols = tensor_i64(cols);
        float *v = tensor_f32(vals);
        float *d = calloc(n * (size_t)V, sizeof(float));
        ok = c->cols && v && d && vals->ndim == 3 && vals->shape[2] == c->n_cols && (size_t)vals->numel == n * c->n_cols;
        for (size_t r = 0; ok && r < n; r++)
            for (int64_t k = 0; k < c->n_cols; k++) {
                ok &= c->cols[k] >= 0 && c->cols[k] < V;
                if (ok) d[r * (size_t)V + (size_t)c->cols[k]] = v[r * (size_t)c->n_cols + (size_t)k];
            }
        free(v);
        c->d_logits = (vene_tensor){d, 3, {c->B, c->S, V}};
    }
    return ok;
}

/* ------------------------------------------------------------------ comparison */

/* max |got - want| / max |want| (NaN counts as infinitely wrong) */
static double rel_err(const float *got, const float *want, int64_t n, double scale_times) {
    double worst = 0, scale = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        double w = scale_times * want[i], d = fabs((double)got[i] - w);
        if (fabs(w) > scale) scale = fabs(w);
        if (!(d <= worst)) worst = d == d ? d : INFINITY;
    }
    return worst / scale;
}

/* Worst relative error per tensor class, for the report. */
enum { K_WTE, K_WPE, K_LN, K_ATTN, K_MLP, K_SITE, K_COUNT };
static const char *const class_names[K_COUNT] = {"wte", "wpe", "ln_*", "attn.*", "mlp.*", "sites"};
static double class_worst[K_COUNT];

static int class_of(const char *param) {
    if (!strncmp(param, "wte", 3)) return K_WTE;
    if (!strncmp(param, "wpe", 3)) return K_WPE;
    if (strstr(param, ".attn.")) return K_ATTN;
    if (strstr(param, ".mlp.")) return K_MLP;
    return K_LN;
}

static void note(int k, double e) {
    if (!(e <= class_worst[k])) class_worst[k] = e;
}

/* ------------------------------------------------------------------ backward hooks */

typedef struct capture {
    const char *name;
    int site, layer, fired;
    vene_tensor t; /* copy of the gradient (owned data) */
} capture;

static int capture_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    capture *c = user;
    c->fired++;
    if (where->site != c->site || where->layer != c->layer) {
        if (err) snprintf(err->msg, sizeof err->msg, "capture %s: fired for site %d layer %d", c->name, where->site,
                          where->layer);
        return VENE_ERR_STATE;
    }
    size_t n = (size_t)vene_tensor_numel(t);
    free(c->t.data);
    c->t = *t;
    c->t.data = malloc(n * sizeof(float));
    if (!c->t.data) return VENE_ERR_MEMORY;
    memcpy(c->t.data, t->data, n * sizeof(float));
    return VENE_OK;
}

static int is_site_name(const char *name) {
    static const char *const other[] = {"input_ids", "attention_mask", "position_ids", "d_hidden", "d_logits_cols",
                                        "d_logits_vals"};
    for (size_t i = 0; i < sizeof other / sizeof other[0]; i++)
        if (!strcmp(name, other[i])) return 0;
    return strncmp(name, "param", 5) != 0;
}

/* Registers a capture on every site gradient stored in the case; returns their count. */
static int hook_sites(vene_run *rs, const vene_model *m, const gcase *c, capture *caps) {
    int n = 0;
    vene_error err = {0};
    for (int i = 0; i < st_count(c->f) && n < MAX_SITES; i++) {
        const char *name = st_at(c->f, i)->name;
        if (!is_site_name(name)) continue;
        capture *cp = &caps[n];
        memset(cp, 0, sizeof *cp);
        cp->name = name;
        int rc = vene_model_find_site(m, name, &cp->site, &cp->layer, &err);
        if (!rc) rc = vene_run_add_backward_hook(rs, cp->site, cp->layer, capture_hook, cp, &err);
        CHECK_MSG(rc == VENE_OK, "%s: %s", name, err.msg);
        if (!rc) n++;
    }
    return n;
}

static void check_sites(const gcase *c, const char *what, capture *caps, int n, int fired) {
    CHECK(n >= 14);
    for (int i = 0; i < n; i++) {
        capture *cp = &caps[i];
        const st_tensor *want = st_find(c->f, cp->name);
        CHECK_MSG(cp->fired == fired, "%s: backward hook on %s fired %d times, expected %d", what, cp->name, cp->fired,
                  fired);
        int same = cp->t.data && cp->t.ndim == want->ndim;
        for (int d = 0; same && d < want->ndim; d++) same = cp->t.shape[d] == want->shape[d];
        CHECK_MSG(same, "%s: gradient of %s has the wrong shape", what, cp->name);
        float *w = same ? tensor_f32(want) : NULL;
        if (w) {
            double e = rel_err(cp->t.data, w, want->numel, 1.0);
            CHECK_MSG(e <= TOL, "%s: gradient at site %s: relative error %.3g", what, cp->name, e);
            note(K_SITE, e);
        }
        free(w);
    }
}

static void captures_free(capture *caps, int n) {
    for (int i = 0; i < n; i++) free(caps[i].t.data);
}

/* ------------------------------------------------------------------ weight gradients */

/* Every weight's gradient against times x the reference; returns the weights compared. */
static int check_params(vene_run *rs, const gcase *c, const char *what, double times) {
    vene_error err = {0};
    int compared = 0;
    const st_tensor *rows_t = st_find(c->f, "param_rows.wte.weight");
    for (int i = 0; i < st_count(c->f); i++) {
        const st_tensor *want = st_at(c->f, i);
        if (strncmp(want->name, "param.", 6) != 0) continue;
        const char *name = want->name + 6;
        vene_tensor g;
        int rc = vene_run_param_grad(rs, name, &g, &err);
        CHECK_MSG(rc == VENE_OK, "%s: %s", what, err.msg);
        if (rc) continue;
        float *w = tensor_f32(want), *got = g.data;
        int is_wte = !strcmp(name, "wte.weight");
        float *sel = NULL;
        if (is_wte && rows_t && w) { /* only some rows are stored: gather them */
            int64_t *rows = tensor_i64(rows_t), D = g.shape[1];
            sel = malloc(sizeof(float) * (size_t)(rows_t->numel * D));
            for (int64_t r = 0; rows && sel && r < rows_t->numel; r++)
                memcpy(sel + r * D, g.data + rows[r] * D, sizeof(float) * (size_t)D);
            free(rows);
            got = sel;
        }
        CHECK(w && got && (is_wte || vene_tensor_numel(&g) == want->numel));
        if (w && got) {
            double e = rel_err(got, w, want->numel, times);
            CHECK_MSG(e <= TOL, "%s: gradient of %s: relative error %.3g", what, name, e);
            note(class_of(name), e);
            compared++;
        }
        free(sel);
        free(w);
    }
    return compared;
}

/* Every wte row that is neither an input token nor a d_logits column gets no gradient. */
static void check_wte_zero_rows(vene_run *rs, const gcase *c) {
    vene_tensor g;
    vene_error err = {0};
    if (vene_run_param_grad(rs, "wte.weight", &g, &err) != VENE_OK) return;
    int64_t V = g.shape[0], D = g.shape[1], nonzero = 0;
    uint8_t *live = calloc((size_t)V, 1);
    if (!live) return;
    for (int i = 0; i < c->B * c->S; i++) live[c->ids[i]] = 1;
    for (int64_t k = 0; k < c->n_cols; k++) live[c->cols[k]] = 1;
    for (int64_t r = 0; r < V; r++)
        for (int64_t d = 0; d < D && !live[r]; d++) nonzero += g.data[r * D + d] != 0.0f;
    CHECK_MSG(nonzero == 0, "wte gradient: %lld nonzero entries in rows without a token or a logit gradient",
              (long long)nonzero);
    free(live);
}

/* Every weight of the model file has a reference gradient (none silently skipped). */
static void check_coverage(const gcase *c) {
    st_file *mf = NULL;
    vene_error err = {0};
    CHECK_MSG(st_open(MODEL_DIR "/model.safetensors", &mf, &err) == VENE_OK, "%s", err.msg);
    if (!mf) return;
    int missing = 0;
    for (int i = 0; i < st_count(mf); i++) {
        const char *n = st_at(mf, i)->name;
        if (!strncmp(n, "transformer.", 12)) n += 12;
        char key[256];
        snprintf(key, sizeof key, "param.%s", n);
        if (!st_find(c->f, key)) {
            fprintf(stderr, "  no reference gradient for %s\n", n);
            missing++;
        }
    }
    CHECK(missing == 0 && st_count(mf) == 52);
    st_close(mf);
}

static int all_param_grads_zero(vene_run *rs, const gcase *c) {
    vene_error err = {0};
    for (int i = 0; i < st_count(c->f); i++) {
        const char *name = st_at(c->f, i)->name;
        vene_tensor g;
        if (strncmp(name, "param.", 6) || vene_run_param_grad(rs, name + 6, &g, &err)) continue;
        for (int64_t k = 0; k < vene_tensor_numel(&g); k++)
            if (g.data[k] != 0.0f) return 0;
    }
    return 1;
}

/* ------------------------------------------------------------------ one case */

static int forward_backward(vene_run *rs, const gcase *c, vene_error *err) {
    vene_batch b = {.batch = c->B, .seq = c->S, .ids = c->ids, .attn_mask = c->mask, .positions = c->pos};
    int rc = vene_forward(rs, &b, err);
    if (!rc) rc = vene_backward(rs, c->lm ? &c->d_logits : NULL, &c->d_hidden, err);
    return rc;
}

static void run_case(const vene_model *lm, const vene_model *bare, const char *name) {
    vene_model_info info;
    vene_model_get_info(lm, &info);
    gcase c;
    int ok = case_open(&c, name, info.vocab_size);
    CHECK_MSG(ok, "cannot read fixture %s", name);
    const vene_model *m = c.lm ? lm : bare;
    vene_run *rs = NULL;
    vene_error err = {0};
    if (!ok || vene_run_new(m, &rs, &err) != VENE_OK) {
        case_close(&c);
        return;
    }
    check_coverage(&c);
    capture caps[MAX_SITES];
    int n = hook_sites(rs, m, &c, caps);
    CHECK(vene_run_set_grad(rs, VENE_GRAD_MODEL, &err) == VENE_OK);
    int rc = forward_backward(rs, &c, &err);
    CHECK_MSG(rc == VENE_OK, "%s: %s", name, err.msg);
    if (rc == VENE_OK) {
        check_sites(&c, name, caps, n, 1);
        CHECK(check_params(rs, &c, name, 1.0) == 52);
        if (c.lm) check_wte_zero_rows(rs, &c);

        /* a second backward adds the same gradients again; site gradients do not add up */
        CHECK(vene_backward(rs, c.lm ? &c.d_logits : NULL, &c.d_hidden, &err) == VENE_OK);
        check_sites(&c, "second backward", caps, n, 2);
        CHECK(check_params(rs, &c, "accumulated twice", 2.0) == 52);
        vene_run_zero_grad(rs);
        CHECK_MSG(all_param_grads_zero(rs, &c), "%s: vene_run_zero_grad left a nonzero gradient", name);
        CHECK(vene_backward(rs, c.lm ? &c.d_logits : NULL, &c.d_hidden, &err) == VENE_OK);
        CHECK(check_params(rs, &c, "after zero_grad", 1.0) == 52);
    }
    CHECK(vene_run_grad_bytes(rs) >= sizeof(float) * (size_t)info.n_params);

    /* activations only: the same site gradients, and no weight gradients to ask for */
    captures_free(caps, n);
    vene_run_clear_backward_hooks(rs);
    n = hook_sites(rs, m, &c, caps);
    CHECK(vene_run_set_grad(rs, VENE_GRAD_ACTIVATIONS, &err) == VENE_OK);
    rc = forward_backward(rs, &c, &err);
    CHECK_MSG(rc == VENE_OK, "%s (activations): %s", name, err.msg);
    if (rc == VENE_OK) check_sites(&c, "VENE_GRAD_ACTIVATIONS", caps, n, 1);
    vene_tensor g;
    err.msg[0] = 0;
    CHECK(vene_run_param_grad(rs, "h.0.mlp.c_fc.weight", &g, &err) == VENE_ERR_STATE);
    CHECK_MSG(strstr(err.msg, "VENE_GRAD_MODEL") != NULL, "message: %s", err.msg);
    printf("%-15s %-15s B=%d S=%d: 52 weight gradients, %d site gradients within %.0e\n", name,
           c.lm ? "GPT2LMHeadModel" : "GPT2Model", c.B, c.S, n, TOL);
    captures_free(caps, n);
    vene_run_free(rs);
    case_close(&c);
}

/* ------------------------------------------------------------------ stopping early */

static int stop_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)where;
    (void)t;
    (void)err;
    (*(int *)user)++;
    return VENE_STOP;
}

/* VENE_STOP at h[2].output: the layers above have their gradients, those below none. */
static void test_stop(const vene_model *lm) {
    vene_model_info info;
    vene_model_get_info(lm, &info);
    gcase c;
    vene_run *rs = NULL;
    vene_error err = {0};
    int site, layer, stops = 0;
    if (!case_open(&c, "lm_b1", info.vocab_size) || vene_run_new(lm, &rs, &err)) {
        CHECK(0);
        case_close(&c);
        return;
    }
    CHECK(vene_model_find_site(lm, "h[2].output", &site, &layer, &err) == VENE_OK);
    CHECK(vene_run_add_backward_hook(rs, site, layer, stop_hook, &stops, &err) == VENE_OK);
    CHECK(vene_run_set_grad(rs, VENE_GRAD_MODEL, &err) == VENE_OK);
    CHECK_MSG(forward_backward(rs, &c, &err) == VENE_OK, "%s", err.msg);
    CHECK(stops == 1);
    static const char *const above[] = {"h.3.mlp.c_fc.weight", "h.3.attn.c_attn.weight", "ln_f.weight"};
    static const char *const below[] = {"h.2.mlp.c_proj.weight", "h.0.attn.c_attn.weight", "wpe.weight"};
    for (int i = 0; i < 3; i++) {
        vene_tensor g;
        char key[64];
        snprintf(key, sizeof key, "param.%s", above[i]);
        float *w = tensor_f32(st_find(c.f, key));
        CHECK(w && vene_run_param_grad(rs, above[i], &g, &err) == VENE_OK);
        if (w) CHECK_MSG(rel_err(g.data, w, vene_tensor_numel(&g), 1.0) <= TOL, "stopped backward: %s", above[i]);
        free(w);
        CHECK(vene_run_param_grad(rs, below[i], &g, &err) == VENE_OK);
        double s = 0;
        for (int64_t k = 0; k < vene_tensor_numel(&g); k++) s += fabs(g.data[k]);
        CHECK_MSG(s == 0, "stopped backward: %s has a gradient", below[i]);
    }
    vene_run_free(rs);
    case_close(&c);
}

/* ------------------------------------------------------------------ errors */

static void expect_err(int rc, int code, const vene_error *err, const char *a, const char *b) {
    CHECK_MSG(rc == code, "got %s, expected %s (%s)", vene_status_name(rc), vene_status_name(code), err->msg);
    CHECK_MSG(strstr(err->msg, a) && (!b || strstr(err->msg, b)), "message \"%s\" should name \"%s\"%s%s", err->msg,
              a, b ? " and " : "", b ? b : "");
}

static void test_errors(const vene_model *lm, const vene_model *bare) {
    vene_model_info info;
    vene_model_get_info(lm, &info);
    gcase c;
    vene_run *rs = NULL, *rb = NULL;
    vene_error err = {0};
    if (!case_open(&c, "lm_b1", info.vocab_size) || vene_run_new(lm, &rs, &err) || vene_run_new(bare, &rb, &err)) {
        CHECK(0);
        vene_run_free(rs);
        case_close(&c);
        return;
    }
    vene_batch b = {.batch = c.B, .seq = c.S, .ids = c.ids, .attn_mask = c.mask, .positions = c.pos};
    /* no grad mode */
    CHECK(vene_forward(rs, &b, &err) == VENE_OK);
    expect_err(vene_backward(rs, &c.d_logits, &c.d_hidden, &err), VENE_ERR_STATE, &err, "vene_run_set_grad", NULL);
    expect_err(vene_run_param_grad(rs, "wte.weight", &(vene_tensor){0}, &err), VENE_ERR_STATE, &err,
               "VENE_GRAD_MODEL", NULL);
    expect_err(vene_run_set_grad(rs, 3, &err), VENE_ERR_ARG, &err, "mode 3", NULL);
    /* grad mode switched on after the forward: nothing was kept */
    CHECK(vene_run_set_grad(rs, VENE_GRAD_MODEL, &err) == VENE_OK);
    expect_err(vene_backward(rs, &c.d_logits, &c.d_hidden, &err), VENE_ERR_STATE, &err, "no forward", NULL);
    CHECK(vene_forward(rs, &b, &err) == VENE_OK);
    /* wrong shapes, named with both shapes */
    vene_tensor bad = c.d_logits;
    bad.shape[2] = info.vocab_size - 1;
    expect_err(vene_backward(rs, &bad, NULL, &err), VENE_ERR_ARG, &err, "d_logits", "[1, 5, 50256]");
    CHECK(strstr(err.msg, "[1, 5, 50257]") != NULL);
    bad = c.d_hidden;
    bad.ndim = 2;
    bad.shape[1] = c.S * info.d_model;
    expect_err(vene_backward(rs, NULL, &bad, &err), VENE_ERR_ARG, &err, "d_hidden", "[1, 5, 64]");
    expect_err(vene_run_param_grad(rs, "h.9.mlp.c_fc.weight", &(vene_tensor){0}, &err), VENE_ERR_ARG, &err,
               "h.9.mlp.c_fc.weight", NULL);
    expect_err(vene_run_add_backward_hook(rs, 100000, -1, stop_hook, NULL, &err), VENE_ERR_RANGE, &err, "100000",
               NULL);
    /* the failed calls left the run usable; the class prefix is accepted */
    CHECK_MSG(vene_backward(rs, &c.d_logits, &c.d_hidden, &err) == VENE_OK, "%s", err.msg);
    vene_tensor g;
    CHECK(vene_run_param_grad(rs, "transformer.h.0.ln_1.weight", &g, &err) == VENE_OK && g.ndim == 1 &&
          g.shape[0] == info.d_model);
    /* the bare class has no logits to take a gradient from */
    CHECK(vene_run_set_grad(rb, VENE_GRAD_ACTIVATIONS, &err) == VENE_OK);
    CHECK(vene_forward(rb, &b, &err) == VENE_OK);
    expect_err(vene_backward(rb, &c.d_logits, NULL, &err), VENE_ERR_ARG, &err, "d_logits", "GPT2Model");
    vene_run_free(rs);
    vene_run_free(rb);
    case_close(&c);
}

int main(void) {
    vene_model *lm = NULL, *bare = NULL;
    vene_error err = {0};
    int rc = vene_model_load(MODEL_DIR, "GPT2LMHeadModel", &lm, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (!rc) rc = vene_model_load(MODEL_DIR, "GPT2Model", &bare, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc == VENE_OK) {
        run_case(lm, bare, "lm_b1");
        run_case(lm, bare, "lm_b2_left_pad");
        run_case(lm, bare, "bare_b2");
        test_stop(lm);
        test_errors(lm, bare);
        printf("worst relative error per class:");
        for (int k = 0; k < K_COUNT; k++) printf(" %s %.2g", class_names[k], class_worst[k]);
        printf("\n");
    }
    vene_model_free(lm);
    vene_model_free(bare);
    TEST_MAIN_END();
}
