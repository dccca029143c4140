/* The GPT-2 runtime against the PyTorch reference fixtures (tests/fixtures/gpt2_ref,
 * made by tools/make_fixtures.py): every hook site stored in a fixture is captured with
 * a hook and compared, plus logits and last_hidden_state, for the LM and the bare class.
 * Then hooks that modify activations, hook order, VENE_STOP and hook errors.
 *
 * Tolerance: |got - want| <= 1e-4 * max(1, max|want|) over the compared elements.
 * Padded batches are compared on the rows of non-padded query positions (the check), and
 * also on every element including pad positions (the reference reproduces HF's literal
 * masking, so the runtime matches those too). */
#include <stdint.h>

#include "io/safetensors.h"
#include "test.h"
#include "vene.h"

#define MODEL_DIR "fixtures/models/gpt2-tiny"
#define REF_DIR "fixtures/gpt2_ref"
#define TOL 1e-4
#define MAX_CAPS 256

/* ------------------------------------------------------------------ reference case */

typedef struct ref_case {
    st_file *f;
    int B, S;
    int32_t *ids, *pos;
    uint8_t *mask;
    int padded; /* some mask entry is 0 */
} ref_case;

static int load_i64_2d(st_file *f, const char *name, int B, int S, int64_t *dst) {
    const st_tensor *t = st_find(f, name);
    vene_error err = {0};
    if (!t || t->ndim != 2 || t->shape[0] != B || t->shape[1] != S) return 0;
    return st_to_i64(t, dst, &err) == VENE_OK;
}

static int ref_open(ref_case *c, const char *name) {
    char path[256];
    vene_error err = {0};
    memset(c, 0, sizeof *c);
    snprintf(path, sizeof path, "%s/%s.safetensors", REF_DIR, name);
    if (st_open(path, &c->f, &err) != VENE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 0;
    }
    const st_tensor *ids = st_find(c->f, "input_ids");
    if (!ids || ids->ndim != 2) return 0;
    c->B = (int)ids->shape[0];
    c->S = (int)ids->shape[1];
    size_t n = (size_t)c->B * (size_t)c->S;
    int64_t *tmp = malloc(n * sizeof *tmp);
    c->ids = malloc(n * sizeof *c->ids);
    c->pos = malloc(n * sizeof *c->pos);
    c->mask = malloc(n);
    if (!tmp || !c->ids || !c->pos || !c->mask) {
        free(tmp);
        return 0;
    }
    int ok = load_i64_2d(c->f, "input_ids", c->B, c->S, tmp);
    for (size_t i = 0; ok && i < n; i++) c->ids[i] = (int32_t)tmp[i];
    ok = ok && load_i64_2d(c->f, "attention_mask", c->B, c->S, tmp);
    for (size_t i = 0; ok && i < n; i++) {
        c->mask[i] = (uint8_t)(tmp[i] != 0);
        if (!c->mask[i]) c->padded = 1;
    }
    ok = ok && load_i64_2d(c->f, "position_ids", c->B, c->S, tmp);
    for (size_t i = 0; ok && i < n; i++) c->pos[i] = (int32_t)tmp[i];
    free(tmp);
    return ok;
}

static void ref_close(ref_case *c) {
    st_close(c->f);
    free(c->ids);
    free(c->pos);
    free(c->mask);
    memset(c, 0, sizeof *c);
}

static float *ref_f32(const st_tensor *t) {
    vene_error err = {0};
    float *d = malloc((size_t)t->numel * sizeof *d);
    if (d && st_to_f32(t, d, &err) != VENE_OK) {
        free(d);
        d = NULL;
    }
    return d;
}

/* ------------------------------------------------------------------ comparison */

typedef struct cmp_result {
    double worst;      /* max |got - want| over compared elements */
    double scale;      /* max(1, max |want|) over compared elements */
    long compared;
} cmp_result;

/* Compare two tensors of the same shape. With a mask (B x S), compare only the elements
 * whose query position is unpadded: [b, s, ...] for 3-D tensors, [b, h, s, :] for 4-D
 * attention weights. */
static cmp_result compare(const float *got, const float *want, int ndim, const int64_t *shape, const uint8_t *mask) {
    cmp_result r = {0, 1, 0};
    long n = 1;
    for (int d = 0; d < ndim; d++) n *= (long)shape[d];
    long B = shape[0], S = ndim == 4 ? shape[2] : shape[1];
    long inner = ndim == 4 ? shape[3] : (ndim >= 3 ? shape[2] : 1);
    long H = ndim == 4 ? shape[1] : 1;
    for (int pass = 0; pass < 2; pass++) {
        for (long i = 0; i < n; i++) {
            if (mask) {
                long row = i / inner;          /* (b, [h,] s) row index */
                long s = row % S, b = row / S / H;
                if (b >= B || !mask[b * S + s]) continue;
            }
            if (pass == 0) {
                double a = fabs((double)want[i]);
                if (a > r.scale) r.scale = a;
            } else {
                double d = fabs((double)got[i] - (double)want[i]);
                if (!(d <= r.worst)) r.worst = d; /* NaN makes worst NaN-sticky below */
                if (d != d) r.worst = INFINITY;
                r.compared++;
            }
        }
    }
    return r;
}

static int cmp_ok(cmp_result r) { return r.worst <= TOL * r.scale; }

/* ------------------------------------------------------------------ capture hooks */

typedef struct capture {
    char name[96];
    int site, layer;
    int fired;          /* times the hook was called */
    int first_call;     /* where->call on the first firing */
    int where_ok;       /* where->site/layer matched the registration */
    float *data;
    vene_tensor t;
} capture;

static int capture_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)err;
    capture *c = user;
    if (c->fired++ == 0) {
        c->first_call = where->call;
        c->where_ok = where->site == c->site && where->layer == c->layer;
        size_t n = (size_t)vene_tensor_numel(t);
        free(c->data);
        c->data = malloc(n * sizeof(float));
        if (!c->data) {
            if (err) {
                err->code = VENE_ERR_MEMORY;
                snprintf(err->msg, sizeof err->msg, "capture %s: out of memory", c->name);
            }
            return VENE_ERR_MEMORY;
        }
        memcpy(c->data, t->data, n * sizeof(float));
        c->t = *t;
        c->t.data = c->data;
    }
    return VENE_OK;
}

static void captures_free(capture *caps, int n) {
    for (int i = 0; i < n; i++) free(caps[i].data);
}

static int is_site_name(const char *name) {
    static const char *const not_sites[] = {"input_ids", "attention_mask", "position_ids", "logits",
                                            "last_hidden_state", "logits_positions", "logits_at_positions"};
    for (size_t i = 0; i < sizeof not_sites / sizeof not_sites[0]; i++)
        if (!strcmp(name, not_sites[i])) return 0;
    return 1;
}

/* ------------------------------------------------------------------ one reference case */

typedef struct case_stats {
    int sites;
    double worst_rel;    /* worst |diff| / tolerance-scale over everything compared (masked) */
    double worst_abs;
    char worst_name[96];
    double worst_full;   /* same, comparing pad positions too */
    char worst_full_name[96];
} case_stats;

static void note(case_stats *cs, const char *name, cmp_result masked, cmp_result full) {
    if (masked.worst / masked.scale > cs->worst_rel || !cs->worst_name[0]) {
        cs->worst_rel = masked.worst / masked.scale;
        cs->worst_abs = masked.worst;
        snprintf(cs->worst_name, sizeof cs->worst_name, "%s", name);
    }
    if (full.worst / full.scale > cs->worst_full || !cs->worst_full_name[0]) {
        cs->worst_full = full.worst / full.scale;
        snprintf(cs->worst_full_name, sizeof cs->worst_full_name, "%s", name);
    }
}

/* Compare got (shape of `want`) against the fixture tensor `want`; checks the masked rows
 * and, for padded cases, every element. */
static void check_tensor(case_stats *cs, const ref_case *c, const char *what, const float *got, int got_ndim,
                         const int64_t *got_shape, const st_tensor *want) {
    int same = got_ndim == want->ndim;
    for (int d = 0; same && d < got_ndim; d++) same = got_shape[d] == want->shape[d];
    CHECK_MSG(same, "%s: shape differs from the reference", what);
    if (!same) return;
    float *w = ref_f32(want);
    CHECK(w != NULL);
    if (!w) return;
    cmp_result masked = compare(got, w, want->ndim, want->shape, c->padded ? c->mask : NULL);
    CHECK_MSG(cmp_ok(masked), "%s: max diff %.3g > %.3g (unpadded rows)", what, masked.worst, TOL * masked.scale);
    CHECK(masked.compared > 0);
    cmp_result full = masked;
    if (c->padded) {
        full = compare(got, w, want->ndim, want->shape, NULL);
        CHECK_MSG(cmp_ok(full), "%s: max diff %.3g > %.3g (including pad positions)", what, full.worst,
                  TOL * full.scale);
    }
    note(cs, what, masked, full);
    free(w);
}

static void run_case(const vene_model *m, const char *case_name, int lm) {
    ref_case c;
    int ok = ref_open(&c, case_name);
    CHECK_MSG(ok, "cannot read fixture %s", case_name);
    if (!ok) {
        ref_close(&c);
        return;
    }
    vene_model_info info;
    vene_model_get_info(m, &info);
    vene_error err = {0};
    vene_run *rs = NULL;
    CHECK(vene_run_new(m, &rs, &err) == VENE_OK);
    if (!rs) {
        ref_close(&c);
        return;
    }
    static capture caps[MAX_CAPS];
    int n_caps = 0;
    memset(caps, 0, sizeof caps);
    for (int i = 0; i < st_count(c.f); i++) {
        const st_tensor *t = st_at(c.f, i);
        if (!is_site_name(t->name)) continue;
        if (n_caps == MAX_CAPS) break;
        capture *cp = &caps[n_caps];
        snprintf(cp->name, sizeof cp->name, "%s", t->name);
        int rc = vene_model_find_site(m, t->name, &cp->site, &cp->layer, &err);
        CHECK_MSG(rc == VENE_OK, "find_site %s: %s", t->name, err.msg);
        if (rc) continue;
        rc = vene_run_add_hook(rs, cp->site, cp->layer, capture_hook, cp, &err);
        CHECK_MSG(rc == VENE_OK, "add_hook %s: %s", t->name, err.msg);
        if (rc) continue;
        n_caps++;
    }
    /* lm_head.output is not stored (it equals logits); capture it to compare with logits. */
    capture head = {.name = "lm_head.output"};
    if (lm) {
        int rc = vene_model_find_site(m, "lm_head.output", &head.site, &head.layer, &err);
        CHECK_MSG(rc == VENE_OK, "%s", err.msg);
        if (!rc) CHECK(vene_run_add_hook(rs, head.site, head.layer, capture_hook, &head, &err) == VENE_OK);
    }
    vene_batch b = {.batch = c.B, .seq = c.S, .ids = c.ids, .attn_mask = c.mask, .positions = c.pos};
    int rc = vene_forward(rs, &b, &err);
    CHECK_MSG(rc == VENE_OK, "%s: forward: %s", case_name, err.msg);

    case_stats cs;
    memset(&cs, 0, sizeof cs);
    if (rc == VENE_OK) {
        for (int i = 0; i < n_caps; i++) {
            capture *cp = &caps[i];
            if (!lm && !strncmp(cp->name, "lm_head", 7)) {
                /* the bare class has no LM head: the site resolves but never fires */
                CHECK_MSG(cp->fired == 0, "%s: bare model fired %s", case_name, cp->name);
                continue;
            }
            CHECK_MSG(cp->fired == 1, "%s: site %s fired %d times", case_name, cp->name, cp->fired);
            CHECK_MSG(cp->first_call == 0 && cp->where_ok, "%s: site %s: hook call info wrong", case_name, cp->name);
            if (!cp->data) continue;
            /* the site's declared shape agrees with what fired */
            int64_t shape[VENE_MAX_DIMS];
            int nd = vene_model_site_shape(m, cp->site, c.B, c.S, shape);
            int same = nd == cp->t.ndim;
            for (int d = 0; same && d < nd; d++) same = shape[d] == cp->t.shape[d];
            CHECK_MSG(same, "%s: site %s: vene_model_site_shape disagrees with the fired tensor", case_name, cp->name);
            check_tensor(&cs, &c, cp->name, cp->data, cp->t.ndim, cp->t.shape, st_find(c.f, cp->name));
            cs.sites++;
        }
        const vene_tensor *hid = vene_run_last_hidden(rs);
        CHECK(hid != NULL);
        const st_tensor *want_hid = st_find(c.f, "last_hidden_state");
        CHECK(want_hid != NULL);
        if (hid && want_hid) check_tensor(&cs, &c, "last_hidden_state", hid->data, hid->ndim, hid->shape, want_hid);

        const vene_tensor *logits = vene_run_logits(rs);
        if (!lm) {
            CHECK_MSG(logits == NULL, "bare model returned logits");
        } else {
            CHECK(logits != NULL);
            const st_tensor *want = st_find(c.f, "logits");
            const st_tensor *wpos = st_find(c.f, "logits_positions");
            const st_tensor *wat = st_find(c.f, "logits_at_positions");
            CHECK(want != NULL || (wpos && wat));
            if (logits && want) check_tensor(&cs, &c, "logits", logits->data, logits->ndim, logits->shape, want);
            if (logits && wpos && wat && wpos->ndim == 1 && wat->ndim == 3 && wat->shape[0] == c.B &&
                wat->shape[1] == wpos->shape[0] && wat->shape[2] == logits->shape[2]) {
                /* logits_at_positions = logits[:, positions, :] */
                int64_t np = wpos->shape[0], V = logits->shape[2];
                int64_t *p = malloc(sizeof(int64_t) * (size_t)np);
                float *sel = malloc(sizeof(float) * (size_t)(c.B * np * V));
                CHECK(p && sel && st_to_i64(wpos, p, &err) == VENE_OK);
                if (p && sel) {
                    int okp = 1;
                    for (int bb = 0; bb < c.B; bb++)
                        for (int64_t k = 0; k < np; k++) {
                            okp &= p[k] >= 0 && p[k] < c.S;
                            if (p[k] < 0 || p[k] >= c.S) continue;
                            memcpy(sel + ((size_t)bb * np + k) * V, logits->data + ((size_t)bb * c.S + p[k]) * V,
                                   sizeof(float) * (size_t)V);
                        }
                    CHECK(okp);
                    int64_t shp[3] = {c.B, np, V};
                    if (okp) check_tensor(&cs, &c, "logits_at_positions", sel, 3, shp, wat);
                }
                free(p);
                free(sel);
            } else if (wpos || wat) {
                CHECK_MSG(0, "%s: malformed logits_positions / logits_at_positions", case_name);
            }
            /* lm_head.output is the logits tensor itself */
            CHECK(head.fired == 1);
            if (logits && head.data) {
                cmp_result r = compare(head.data, logits->data, logits->ndim, logits->shape, NULL);
                CHECK_MSG(r.worst == 0, "lm_head.output differs from the logits");
            }
        }
        if (!lm) CHECK_MSG(head.fired == 0, "bare model fired lm_head");
    }
    printf("%-14s %-15s B=%d S=%-3d %3d sites  worst %-34s %.3g (%.3g of tol)", case_name,
           lm ? "GPT2LMHeadModel" : "GPT2Model", c.B, c.S, cs.sites, cs.worst_name, cs.worst_abs,
           cs.worst_rel / TOL);
    if (c.padded) printf("; with pads worst %s %.3g of tol", cs.worst_full_name, cs.worst_full / TOL);
    printf("\n");
    free(head.data);
    captures_free(caps, n_caps);
    vene_run_free(rs);
    ref_close(&c);
}

/* ------------------------------------------------------------------ hooks that act */

static int zero_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)where;
    (void)err;
    int *count = user;
    (*count)++;
    memset(t->data, 0, sizeof(float) * (size_t)vene_tensor_numel(t));
    return VENE_OK;
}

static int stop_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)where;
    (void)t;
    (void)err;
    int *count = user;
    (*count)++;
    return VENE_STOP;
}

static int fail_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)where;
    (void)t;
    int *count = user;
    (*count)++;
    if (err) {
        err->code = VENE_ERR_RANGE;
        snprintf(err->msg, sizeof err->msg, "custom hook failure at layer %d", where->layer);
    }
    return VENE_ERR_RANGE;
}

static int all_zero(const float *p, int64_t n) {
    for (int64_t i = 0; i < n; i++)
        if (p[i] != 0.0f) return 0;
    return 1;
}

static int add_capture(vene_run *rs, const vene_model *m, capture *cp, const char *name) {
    vene_error err = {0};
    memset(cp, 0, sizeof *cp);
    snprintf(cp->name, sizeof cp->name, "%s", name);
    int rc = vene_model_find_site(m, name, &cp->site, &cp->layer, &err);
    if (!rc) rc = vene_run_add_hook(rs, cp->site, cp->layer, capture_hook, cp, &err);
    CHECK_MSG(rc == VENE_OK, "capture %s: %s", name, err.msg);
    return rc;
}

static void reset_capture(capture *cp) {
    free(cp->data);
    cp->data = NULL;
    cp->fired = 0;
}

/* |got - want| within tolerance against the fixture tensor `name` (unmasked; spain_b1). */
static int matches_ref(const ref_case *c, const char *name, const float *got) {
    const st_tensor *t = st_find(c->f, name);
    if (!t || !got) return 0;
    float *w = ref_f32(t);
    if (!w) return 0;
    cmp_result r = compare(got, w, t->ndim, t->shape, NULL);
    free(w);
    return cmp_ok(r);
}

static double diff_ref(const ref_case *c, const char *name, const float *got) {
    const st_tensor *t = st_find(c->f, name);
    if (!t || !got) return -1;
    float *w = ref_f32(t);
    if (!w) return -1;
    cmp_result r = compare(got, w, t->ndim, t->shape, NULL);
    free(w);
    return r.worst;
}

static void test_hooks(const vene_model *m) {
    ref_case c;
    int ok = ref_open(&c, "spain_b1");
    CHECK(ok);
    vene_error err = {0};
    vene_run *rs = NULL;
    if (!ok || vene_run_new(m, &rs, &err) != VENE_OK) {
        CHECK(0);
        ref_close(&c);
        return;
    }
    vene_batch b = {.batch = c.B, .seq = c.S, .ids = c.ids, .attn_mask = c.mask, .positions = c.pos};
    int64_t T = (int64_t)c.B * c.S;
    vene_model_info info;
    vene_model_get_info(m, &info);
    const int D = info.d_model;

    /* 1. zero h[1].output: earlier sites unchanged, the hook registered before the zeroing
     *    one sees the original values, later ones see zeros, downstream results change. */
    capture h0, h1_before, h1_after, h2_in, lnf;
    int zeroed = 0, s1, l1;
    add_capture(rs, m, &h0, "h[0].output");
    add_capture(rs, m, &h1_before, "h[1].output");
    CHECK(vene_model_find_site(m, "h[1].output", &s1, &l1, &err) == VENE_OK && l1 == 1);
    CHECK(vene_run_add_hook(rs, s1, l1, zero_hook, &zeroed, &err) == VENE_OK);
    add_capture(rs, m, &h1_after, "h[1].output");
    add_capture(rs, m, &h2_in, "h[2].input");
    add_capture(rs, m, &lnf, "ln_f.output");
    int rc = vene_forward(rs, &b, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    CHECK(zeroed == 1);
    CHECK_MSG(matches_ref(&c, "h[0].output", h0.data), "h[0].output changed by a later hook");
    CHECK_MSG(matches_ref(&c, "h[1].output", h1_before.data), "hook before the zeroing one saw modified data");
    CHECK_MSG(h1_after.data && all_zero(h1_after.data, T * D), "hook after the zeroing one did not see zeros");
    CHECK_MSG(h2_in.data && all_zero(h2_in.data, T * D), "h[2].input is not the zeroed h[1].output");
    double d_lnf = diff_ref(&c, "ln_f.output", lnf.data);
    CHECK_MSG(d_lnf > 1e-2, "ln_f.output did not change after zeroing h[1].output (diff %g)", d_lnf);
    double d_hid = diff_ref(&c, "last_hidden_state", vene_run_last_hidden(rs)->data);
    CHECK_MSG(d_hid > 1e-2, "last_hidden_state did not change (diff %g)", d_hid);
    const vene_tensor *lg = vene_run_logits(rs);
    double d_log = lg ? diff_ref(&c, "logits", lg->data) : -1;
    CHECK_MSG(d_log > 1e-2, "logits did not change (diff %g)", d_log);
    /* with h[2].input zero, layers 2.. see only zeros: ln_f.output is the same for every
     * token (nothing token-dependent is left) */
    if (lnf.data) {
        int same_rows = 1;
        for (int s = 1; s < c.S; s++)
            for (int d = 0; d < D; d++) same_rows &= fabsf(lnf.data[(size_t)s * D + d] - lnf.data[d]) <= 1e-5f;
        CHECK_MSG(same_rows, "after zeroing the residual, positions still differ");
    }
    printf("hooks: zeroing h[1].output moves ln_f.output by %.3g, logits by %.3g\n", d_lnf, d_log);

    /* 2. a second forward on the same run: call counters restart, same result */
    float *lnf_first = lnf.data;
    lnf.data = NULL;
    reset_capture(&h0);
    reset_capture(&lnf);
    h0.first_call = -1;
    rc = vene_forward(rs, &b, &err);
    CHECK(rc == VENE_OK);
    CHECK(h0.fired == 1 && h0.first_call == 0);
    CHECK(zeroed == 2);
    CHECK(lnf.data && lnf_first && memcmp(lnf.data, lnf_first, sizeof(float) * (size_t)(T * D)) == 0);
    free(lnf_first);

    /* 3. clear hooks: the forward is the reference again */
    vene_run_clear_hooks(rs);
    reset_capture(&lnf);
    rc = vene_forward(rs, &b, &err);
    CHECK(rc == VENE_OK);
    CHECK(lnf.fired == 0);
    CHECK(zeroed == 2);
    CHECK_MSG(matches_ref(&c, "last_hidden_state", vene_run_last_hidden(rs)->data), "hooks not cleared");
    lg = vene_run_logits(rs);
    CHECK(lg && matches_ref(&c, "logits", lg->data));
    float *logits_a = NULL;
    if (lg) {
        logits_a = malloc(sizeof(float) * (size_t)vene_tensor_numel(lg));
        if (logits_a) memcpy(logits_a, lg->data, sizeof(float) * (size_t)vene_tensor_numel(lg));
    }

    /* 4. VENE_STOP ends the forward: later sites do not fire */
    reset_capture(&h1_before);
    reset_capture(&h1_after);
    reset_capture(&h2_in);
    int stops = 0;
    add_capture(rs, m, &h1_before, "h[1].output");
    CHECK(vene_run_add_hook(rs, s1, l1, stop_hook, &stops, &err) == VENE_OK);
    add_capture(rs, m, &h1_after, "h[1].output");
    add_capture(rs, m, &h2_in, "h[2].input");
    rc = vene_forward(rs, &b, &err);
    CHECK_MSG(rc == VENE_STOP, "forward returned %d (%s), want VENE_STOP", rc, vene_status_name(rc));
    CHECK(stops == 1);
    CHECK(h1_before.fired == 1);
    CHECK_MSG(h1_after.fired == 0, "a hook after the stopping one still fired");
    CHECK_MSG(h2_in.fired == 0, "h[2].input fired after VENE_STOP");
    CHECK(matches_ref(&c, "h[1].output", h1_before.data));

    /* 5. a hook error aborts with its code and message */
    vene_run_clear_hooks(rs);
    reset_capture(&h2_in);
    int fails = 0, s2, l2;
    CHECK(vene_model_find_site(m, "h[2].attn.c_attn.output", &s2, &l2, &err) == VENE_OK && l2 == 2);
    CHECK(vene_run_add_hook(rs, s2, l2, fail_hook, &fails, &err) == VENE_OK);
    add_capture(rs, m, &h2_in, "h[3].input");
    memset(&err, 0, sizeof err);
    rc = vene_forward(rs, &b, &err);
    CHECK_MSG(rc == VENE_ERR_RANGE, "hook error: forward returned %d", rc);
    CHECK(fails == 1);
    CHECK(strstr(err.msg, "custom hook failure at layer 2") != NULL);
    CHECK(h2_in.fired == 0);

    /* 6. after a stop and an error the run state still works, and is deterministic */
    vene_run_clear_hooks(rs);
    rc = vene_forward(rs, &b, &err);
    CHECK(rc == VENE_OK);
    lg = vene_run_logits(rs);
    CHECK(lg && logits_a && memcmp(lg->data, logits_a, sizeof(float) * (size_t)vene_tensor_numel(lg)) == 0);
    free(logits_a);

    /* 7. defaults: no mask and no positions (= arange) give the same result for b = 1 */
    vene_batch bd = {.batch = c.B, .seq = c.S, .ids = c.ids};
    rc = vene_forward(rs, &bd, &err);
    CHECK(rc == VENE_OK);
    CHECK(matches_ref(&c, "last_hidden_state", vene_run_last_hidden(rs)->data));

    /* 8. inputs_embeds: the reference's wte.output as embeddings gives the same result,
     *    and wte.output does not fire (no embedding lookup happens) */
    const st_tensor *wte = st_find(c.f, "wte.output");
    float *emb = wte ? ref_f32(wte) : NULL;
    CHECK(emb != NULL);
    capture wte_cap;
    add_capture(rs, m, &wte_cap, "wte.output");
    vene_batch be = {.batch = c.B, .seq = c.S, .embeds = emb, .positions = c.pos};
    rc = vene_forward(rs, &be, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    CHECK(wte_cap.fired == 0);
    CHECK(matches_ref(&c, "last_hidden_state", vene_run_last_hidden(rs)->data));
    free(emb);

    /* 9. the same run across shapes: a bigger batch then the small one again */
    ref_case c2;
    if (ref_open(&c2, "b2_left_pad")) {
        vene_run_clear_hooks(rs);
        vene_batch b2 = {.batch = c2.B, .seq = c2.S, .ids = c2.ids, .attn_mask = c2.mask, .positions = c2.pos};
        CHECK(vene_forward(rs, &b2, &err) == VENE_OK);
        CHECK(matches_ref(&c2, "last_hidden_state", vene_run_last_hidden(rs)->data));
        CHECK(vene_forward(rs, &b, &err) == VENE_OK);
        CHECK(matches_ref(&c, "last_hidden_state", vene_run_last_hidden(rs)->data));
        const vene_tensor *h = vene_run_last_hidden(rs);
        CHECK(h->ndim == 3 && h->shape[0] == c.B && h->shape[1] == c.S && h->shape[2] == D);
    } else {
        CHECK(0);
    }
    ref_close(&c2);

    capture *all[] = {&h0, &h1_before, &h1_after, &h2_in, &lnf, &wte_cap};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]->data);
    vene_run_free(rs);
    ref_close(&c);
}

/* ------------------------------------------------------------------ site names */

static void test_site_names(const vene_model *lm, const vene_model *bare) {
    vene_error err = {0};
    int s1 = -1, l1 = -9, s2 = -2, l2 = -8;
    CHECK(vene_model_find_site(lm, "h[3].attn.c_attn.output", &s1, &l1, &err) == VENE_OK);
    CHECK(vene_model_find_site(lm, "transformer.h[3].attn.c_attn.output", &s2, &l2, &err) == VENE_OK);
    CHECK(s1 == s2 && l1 == 3 && l2 == 3);
    CHECK(vene_model_find_site(bare, "h[3].attn.c_attn.output", &s2, &l2, &err) == VENE_OK);
    CHECK(s1 == s2 && l2 == 3);
    CHECK(vene_model_find_site(lm, "ln_f.output", &s1, &l1, &err) == VENE_OK && l1 == -1);
    vene_model_info a, b;
    vene_model_get_info(lm, &a);
    vene_model_get_info(bare, &b);
    CHECK(a.has_lm_head == 1 && b.has_lm_head == 0);
    CHECK(!strcmp(a.path_prefix, "transformer.") && !strcmp(b.path_prefix, ""));
    CHECK(!strcmp(a.model_class, "GPT2LMHeadModel") && !strcmp(b.model_class, "GPT2Model"));
    CHECK(a.n_layer == 4 && a.d_model == 64 && a.n_head == 4 && a.head_dim == 16 && a.d_ff == 256);
    CHECK(a.vocab_size == 50257 && a.n_ctx == 128);
    CHECK_MSG(a.n_params == 3424704, "n_params %lld", (long long)a.n_params);
    CHECK(b.n_params == a.n_params); /* the LM head is tied to wte */
    /* every site of the table resolves back to itself */
    int n = vene_model_site_count(lm), bad = 0;
    for (int i = 0; i < n; i++) {
        vene_site_info si;
        if (vene_model_site(lm, i, &si) != VENE_OK) {
            bad++;
            continue;
        }
        char name[160], tmpl[160];
        snprintf(tmpl, sizeof tmpl, "%s.%s", si.path, si.is_input ? "input" : "output");
        if (si.layered) {
            const char *pct = strstr(tmpl, "%d");
            if (!pct) {
                bad++;
                continue;
            }
            snprintf(name, sizeof name, "%.*s2%s", (int)(pct - tmpl), tmpl, pct + 2);
        } else {
            snprintf(name, sizeof name, "%s", tmpl);
        }
        int s, l;
        if (vene_model_find_site(lm, name, &s, &l, &err) != VENE_OK || s != i || l != (si.layered ? 2 : -1)) bad++;
    }
    CHECK_MSG(bad == 0, "%d sites do not resolve to themselves", bad);
    CHECK(n >= 34);
}

/* The comparison helper itself: masked rows are skipped, unmasked ones are not, NaN fails. */
static void test_compare_self(void) {
    /* B=2, S=3, D=2: example 1 has its last position padded */
    const uint8_t mask[6] = {1, 1, 1, 1, 1, 0};
    float want[12], got[12];
    for (int i = 0; i < 12; i++) want[i] = got[i] = (float)i;
    const int64_t shp[3] = {2, 3, 2};
    got[11] = 100.0f; /* [1, 2, 1]: a pad position */
    CHECK(cmp_ok(compare(got, want, 3, shp, mask)));
    CHECK(!cmp_ok(compare(got, want, 3, shp, NULL)));
    got[11] = 11.0f;
    got[9] = 9.5f; /* [1, 1, 1]: not padded */
    CHECK(!cmp_ok(compare(got, want, 3, shp, mask)));
    got[9] = NAN;
    CHECK(!cmp_ok(compare(got, want, 3, shp, mask)));
    /* attention weights B=2, H=2, S=3, S=3: query row s=2 of example 1 is padded */
    float wa[36], ga[36];
    for (int i = 0; i < 36; i++) wa[i] = ga[i] = (float)i / 36.0f;
    const int64_t sa[4] = {2, 2, 3, 3};
    ga[1 * 18 + 1 * 9 + 2 * 3 + 0] = 5.0f; /* [1, 1, 2, 0]: padded query row */
    CHECK(cmp_ok(compare(ga, wa, 4, sa, mask)));
    CHECK(!cmp_ok(compare(ga, wa, 4, sa, NULL)));
    ga[1 * 18 + 1 * 9 + 1 * 3 + 2] = 5.0f; /* [1, 1, 1, 2]: unpadded query row */
    CHECK(!cmp_ok(compare(ga, wa, 4, sa, mask)));
}

int main(void) {
    test_compare_self();
    vene_error err = {0};
    vene_model *lm = NULL, *bare = NULL;
    int rc = vene_model_load(MODEL_DIR, NULL, &lm, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    rc = vene_model_load(MODEL_DIR, "GPT2Model", &bare, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (!lm || !bare) {
        vene_model_free(lm);
        vene_model_free(bare);
        TEST_MAIN_END();
    }
    static const char *const cases[] = {"spain_b1", "b2_right_pad", "b2_left_pad", "long_b1"};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(lm, cases[i], 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) run_case(bare, cases[i], 0);
    test_site_names(lm, bare);
    test_hooks(lm);
    vene_model_free(bare);
    vene_model_free(lm);
    TEST_MAIN_END();
}
