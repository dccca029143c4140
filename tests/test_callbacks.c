/* User callbacks (vene_intervenable_set_callback): the C form of pyvene's lambda
 * interventions (spec §8.13). Each is checked against the built-in intervention it
 * imitates, bit for bit. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "vene.h"

#define MODEL_DIR "fixtures/models/gpt2-tiny"
#define B 2
#define S 6

static vene_model *M;
static const int32_t BASE_IDS[B * S] = {464, 3139, 286, 8602, 318, 262, 40, 588, 257, 1310, 3290, 13};
static const int32_t SRC_IDS[B * S] = {464, 3139, 286, 8031, 318, 262, 1135, 1842, 284, 467, 1363, 13};

/* What a callback saw on its last call. */
typedef struct seen {
    int calls;
    int ndim;
    int64_t shape[VENE_MAX_DIMS];
    int had_source, source_same_shape;
    char subspaces[128];
    float *copy; /* the base block as received */
    int64_t n;
} seen;

static void note(seen *s, const vene_tensor *base, const vene_tensor *source, const char *ss) {
    s->calls++;
    s->ndim = base->ndim;
    memcpy(s->shape, base->shape, sizeof s->shape);
    s->had_source = source != NULL;
    s->source_same_shape = source && source->ndim == base->ndim &&
                           !memcmp(source->shape, base->shape, sizeof(int64_t) * (size_t)base->ndim);
    snprintf(s->subspaces, sizeof s->subspaces, "%s", ss);
    free(s->copy);
    s->n = vene_tensor_numel(base);
    s->copy = malloc(sizeof(float) * (size_t)s->n);
    memcpy(s->copy, base->data, sizeof(float) * (size_t)s->n);
}

/* lambda b, s: b * 0 */
static int cb_zero(void *user, vene_tensor *base, const vene_tensor *source, const char *ss, vene_error *err) {
    (void)err;
    if (user) note(user, base, source, ss);
    for (int64_t k = 0; k < vene_tensor_numel(base); k++) base->data[k] = 0.0f;
    return VENE_OK;
}

/* An observer: looks, writes nothing back (pyvene's lambda returning None). */
static int cb_observe(void *user, vene_tensor *base, const vene_tensor *source, const char *ss, vene_error *err) {
    (void)err;
    note(user, base, source, ss);
    return VENE_OK;
}

/* Observer that copies the block out and writes the copy back unchanged. */
static int cb_copy_back(void *user, vene_tensor *base, const vene_tensor *source, const char *ss, vene_error *err) {
    (void)err;
    seen *s = user;
    note(s, base, source, ss);
    memcpy(base->data, s->copy, sizeof(float) * (size_t)s->n);
    return VENE_OK;
}

/* A callback reports errors through err, like any library call. */
static int fail_with(vene_error *err, int code, const char *msg) {
    if (err) {
        err->code = code;
        snprintf(err->msg, sizeof err->msg, "%s", msg);
    }
    return code;
}

/* lambda b, s: s (interchange) */
static int cb_interchange(void *user, vene_tensor *base, const vene_tensor *source, const char *ss, vene_error *err) {
    if (user) note(user, base, source, ss);
    if (!source) return fail_with(err, VENE_ERR_ARG, "no source");
    memcpy(base->data, source->data, sizeof(float) * (size_t)vene_tensor_numel(base));
    return VENE_OK;
}

/* Zero only the coordinates listed in the subspaces JSON ("[[0,1]]": one row for all). */
static int cb_zero_subspace(void *user, vene_tensor *base, const vene_tensor *source, const char *ss, vene_error *err) {
    (void)err;
    if (user) note(user, base, source, ss);
    int ids[64], n = 0;
    for (const char *p = ss; *p && n < 64; p++)
        if (*p >= '0' && *p <= '9') {
            ids[n++] = (int)strtol(p, (char **)&p, 10);
            p--;
        }
    int64_t D = base->shape[base->ndim - 1], rows = vene_tensor_numel(base) / D;
    for (int64_t r = 0; r < rows; r++)
        for (int k = 0; k < n; k++) base->data[r * D + ids[k]] = 0.0f;
    return VENE_OK;
}

static int cb_fail(void *user, vene_tensor *base, const vene_tensor *source, const char *ss, vene_error *err) {
    (void)user;
    (void)base;
    (void)source;
    (void)ss;
    return fail_with(err, VENE_ERR_RANGE, "custom failure 42");
}

/* ---------------------------------------------------------------- running */

typedef struct result {
    float *orig, *out, *coll;
    int64_t n, n_coll;
} result;

static void result_free(result *r) {
    free(r->orig);
    free(r->out);
    free(r->coll);
    memset(r, 0, sizeof *r);
}

static float *dup(const vene_tensor *t, int64_t *n) {
    if (!t) return NULL;
    *n = vene_tensor_numel(t);
    float *p = malloc(sizeof(float) * (size_t)*n);
    memcpy(p, t->data, sizeof(float) * (size_t)*n);
    return p;
}

/* Build from config, optionally attach a callback to intervention 0, run one call. */
static int run(const char *config, vene_iv_callback cb, void *user, int with_source, const char *ul, const char *ss,
               result *r, vene_error *err) {
    memset(r, 0, sizeof *r);
    vene_intervenable *iv = NULL;
    int rc = vene_intervenable_new(M, config, &iv, err);
    if (rc) return rc;
    if (cb && (rc = vene_intervenable_set_callback(iv, 0, cb, user, err))) goto out;
    vene_batch base = {B, S, BASE_IDS, NULL, NULL, NULL}, src = {B, S, SRC_IDS, NULL, NULL, NULL};
    const vene_batch *srcs[1] = {&src};
    vene_call call = {.base = &base, .sources = srcs, .n_sources = with_source ? 1 : 0, .unit_locations = ul, .subspaces = ss, .output_original = 1};
    if ((rc = vene_intervenable_forward(iv, &call, err))) goto out;
    int64_t n;
    r->orig = dup(vene_intervenable_logits(iv, 0), &n);
    r->out = dup(vene_intervenable_logits(iv, 1), &r->n);
    if (vene_intervenable_collected_count(iv) > 0) r->coll = dup(vene_intervenable_collected(iv, 0), &r->n_coll);
out:
    vene_intervenable_free(iv);
    return rc;
}

static int same(const result *a, const result *b) {
    return a->out && b->out && a->n == b->n && !memcmp(a->out, b->out, sizeof(float) * (size_t)a->n);
}
static int unchanged(const result *a) { return a->out && !memcmp(a->out, a->orig, sizeof(float) * (size_t)a->n); }

#define CFG(type, comp) "{\"layer\": 1, \"component\": \"" comp "\", \"intervention_type\": \"" type "\"}"

static void test_zero(void) {
    vene_error err = {0};
    result a, b;
    seen s = {0};
    /* the configured type does not matter once a callback is attached */
    CHECK_MSG(run(CFG("VanillaIntervention", "mlp_output"), cb_zero, &s, 0, "{\"base\": 3}", NULL, &a, &err) == 0, "%s",
              err.msg);
    CHECK_MSG(run(CFG("ZeroIntervention", "mlp_output"), NULL, NULL, 0, "{\"base\": 3}", NULL, &b, &err) == 0, "%s", err.msg);
    CHECK_MSG(same(&a, &b), "zeroing callback == ZeroIntervention");
    CHECK(!unchanged(&a));
    CHECK(s.calls == 1);
    CHECK(s.ndim == 3 && s.shape[0] == B && s.shape[1] == 1 && s.shape[2] == 64);
    CHECK(!s.had_source);
    CHECK(!strcmp(s.subspaces, "null"));
    free(s.copy);
    result_free(&a);
    result_free(&b);
}

static void test_observer(void) {
    vene_error err = {0};
    result a, b, c;
    seen s1 = {0}, s2 = {0};
    CHECK(run(CFG("VanillaIntervention", "block_output"), cb_copy_back, &s1, 0, "{\"base\": 3}", NULL, &a, &err) == 0);
    CHECK_MSG(unchanged(&a), "copy-and-write-back observer leaves the output as it was");
    CHECK(run(CFG("ZeroIntervention", "block_output"), cb_observe, &s2, 0, "{\"base\": 3}", NULL, &b, &err) == 0);
    CHECK_MSG(unchanged(&b), "an observer that writes nothing leaves the output as it was");
    /* what the observer saw is the activation a CollectIntervention collects */
    CHECK(run(CFG("CollectIntervention", "block_output"), NULL, NULL, 0, "{\"base\": 3}", NULL, &c, &err) == 0);
    CHECK(c.coll && c.n_coll == s1.n && s1.copy && !memcmp(c.coll, s1.copy, sizeof(float) * (size_t)s1.n));
    CHECK(s2.copy && s2.n == s1.n && !memcmp(s1.copy, s2.copy, sizeof(float) * (size_t)s1.n));
    free(s1.copy);
    free(s2.copy);
    result_free(&a);
    result_free(&b);
    result_free(&c);
}

static void test_interchange(void) {
    vene_error err = {0};
    result a, b;
    seen s = {0};
    const char *ul = "{\"sources->base\": 3}";
    CHECK_MSG(run(CFG("VanillaIntervention", "block_output"), cb_interchange, &s, 1, ul, NULL, &a, &err) == 0, "%s", err.msg);
    CHECK_MSG(run(CFG("VanillaIntervention", "block_output"), NULL, NULL, 1, ul, NULL, &b, &err) == 0, "%s", err.msg);
    CHECK_MSG(same(&a, &b), "interchange callback == VanillaIntervention");
    CHECK(!unchanged(&a));
    CHECK(s.had_source && s.source_same_shape);
    result_free(&a);
    result_free(&b);

    /* head-level units hand the callback B x k_h x k_p x d blocks */
    const char *hcfg = "{\"layer\": 1, \"component\": \"head_attention_value_output\", \"unit\": \"h.pos\", "
                       "\"intervention_type\": \"VanillaIntervention\"}";
    const char *hul = "{\"sources->base\": [[[[[1]], [[3]]]], [[[[1]], [[3]]]]]}";
    CHECK_MSG(run(hcfg, cb_interchange, &s, 1, hul, NULL, &a, &err) == 0, "%s", err.msg);
    CHECK_MSG(run(hcfg, NULL, NULL, 1, hul, NULL, &b, &err) == 0, "%s", err.msg);
    CHECK(same(&a, &b));
    CHECK(s.ndim == 4 && s.shape[0] == B && s.shape[1] == 1 && s.shape[2] == 1 && s.shape[3] == 16);
    free(s.copy);
    result_free(&a);
    result_free(&b);
}

static void test_subspaces(void) {
    vene_error err = {0};
    result a, b;
    seen s = {0};
    CHECK_MSG(run(CFG("ZeroIntervention", "mlp_output"), cb_zero_subspace, &s, 0, "{\"base\": 3}", "[[[0, 5]]]", &a, &err) == 0,
              "%s", err.msg);
    CHECK_MSG(!strcmp(s.subspaces, "[[0,5]]"), "callback receives its subspaces entry: %s", s.subspaces);
    CHECK(run(CFG("ZeroIntervention", "mlp_output"), NULL, NULL, 0, "{\"base\": 3}", "[[[0, 5]]]", &b, &err) == 0);
    CHECK_MSG(same(&a, &b), "subspace-zeroing callback == ZeroIntervention with subspaces");
    CHECK(!unchanged(&a));
    free(s.copy);
    result_free(&a);
    result_free(&b);
}

static void test_errors(void) {
    vene_error err = {0};
    result a;
    int rc = run(CFG("VanillaIntervention", "mlp_output"), cb_fail, NULL, 0, "{\"base\": 3}", NULL, &a, &err);
    CHECK_MSG(rc == VENE_ERR_RANGE, "callback's code propagates: %s", vene_status_name(rc));
    CHECK_MSG(strstr(err.msg, "custom failure 42") != NULL, "callback's message propagates: %s", err.msg);
    CHECK_MSG(strstr(err.msg, "layer_1_comp_mlp_output_unit_pos_nunit_1#0") != NULL, "message names the intervention: %s",
              err.msg);
    result_free(&a);

    /* a callback that needs a source fails cleanly when the call gives none */
    rc = run(CFG("VanillaIntervention", "mlp_output"), cb_interchange, NULL, 0, "{\"base\": 3}", NULL, &a, &err);
    CHECK(rc == VENE_ERR_ARG && strstr(err.msg, "no source"));
    result_free(&a);

    vene_intervenable *iv = NULL;
    CHECK(vene_intervenable_new(M, CFG("VanillaIntervention", "mlp_output"), &iv, &err) == VENE_OK);
    if (iv) {
        CHECK(vene_intervenable_set_callback(iv, 1, cb_zero, NULL, &err) == VENE_ERR_RANGE);
        CHECK(vene_intervenable_set_callback(iv, -1, cb_zero, NULL, &err) == VENE_ERR_RANGE);
        vene_intervenable_free(iv);
    }
}

int main(void) {
    vene_error err = {0};
    if (vene_model_load(MODEL_DIR, NULL, &M, &err)) {
        fprintf(stderr, "cannot load %s: %s\n", MODEL_DIR, err.msg);
        return 1;
    }
    test_zero();
    test_observer();
    test_interchange();
    test_subspaces();
    test_errors();
    vene_model_free(M);
    TEST_MAIN_END();
}
