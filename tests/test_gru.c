/* pyvene's GRUForClassification ("model_type": "gru") against an independent plain-PyTorch
 * reference (tests/fixtures/gru_ref.safetensors, made by tools/make_gru_fixtures.py):
 * plain forwards (logits B x labels and the stacked top states B x S x h_dim) of the golden
 * gru-classifier and of gru-emb3 (embeddings, positions, no bias, 3 cells), attention-mask
 * pooling, in-place edits by hooks at per-step cell sites (which must propagate to later
 * steps and higher layers), per-step call counters, site and component tables, and bad
 * inputs. The golden cases' original.logits (no intervention) are checked too.
 *
 * Tolerance: |got - want| <= 1e-4 * max(1, max|want|). */
#include <stdint.h>

#include "io/safetensors.h"
#include "models/model.h"
#include "test.h"
#include "vene.h"

#define MODEL_A "golden/models/gru-classifier"
#define MODEL_B "fixtures/gru/gru-emb3"
#define REF "fixtures/gru_ref.safetensors"
#define TOL 1e-4

static st_file *ref;

/* A float tensor of the reference file copied out (caller frees), with its shape. */
static float *ref_f32(const char *name, int64_t *shape, int *ndim) {
    const st_tensor *t = st_find(ref, name);
    vene_error err = {0};
    if (!t) return NULL;
    float *d = malloc(sizeof(float) * (size_t)t->numel);
    if (!d || st_to_f32(t, d, &err) != VENE_OK) {
        free(d);
        return NULL;
    }
    if (shape) memcpy(shape, t->shape, sizeof(int64_t) * (size_t)t->ndim);
    if (ndim) *ndim = t->ndim;
    return d;
}

/* An integer tensor as int32 (caller frees). */
static int32_t *ref_i32(const char *name) {
    const st_tensor *t = st_find(ref, name);
    vene_error err = {0};
    if (!t) return NULL;
    int64_t *tmp = malloc(sizeof(int64_t) * (size_t)t->numel);
    int32_t *d = malloc(sizeof(int32_t) * (size_t)t->numel);
    if (!tmp || !d || st_to_i64(t, tmp, &err) != VENE_OK) {
        free(tmp);
        free(d);
        return NULL;
    }
    for (int64_t i = 0; i < t->numel; i++) d[i] = (int32_t)tmp[i];
    free(tmp);
    return d;
}

/* One in-place edit at (site, layer) when where->call == step. */
typedef enum { ED_ZERO_ROW1, ED_SCALE2, ED_ADD_THIRD0, ED_NEG, ED_ZERO } edit_kind;
typedef struct edit {
    int site, layer, step;
    edit_kind kind;
    int fired;
} edit;

static int edit_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)err;
    edit *e = user;
    if (where->call != e->step) return VENE_OK;
    e->fired++;
    int64_t B = t->shape[0], W = t->shape[1], n = vene_tensor_numel(t);
    switch (e->kind) {
    case ED_ZERO_ROW1:
        for (int64_t i = 0; i < W; i++) t->data[W + i] = 0.0f;
        break;
    case ED_SCALE2:
        for (int64_t i = 0; i < n; i++) t->data[i] *= 2.0f;
        break;
    case ED_ADD_THIRD0:
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < W / 3; i++) t->data[b * W + i] += 0.5f;
        break;
    case ED_NEG:
        for (int64_t i = 0; i < n; i++) t->data[i] = -t->data[i];
        break;
    case ED_ZERO:
        for (int64_t i = 0; i < n; i++) t->data[i] = 0.0f;
        break;
    }
    return VENE_OK;
}

static int site_of(const vene_model *m, const char *path, int *layer) {
    int site = -1;
    vene_error err = {0};
    if (vene_model_find_site(m, path, &site, layer, &err) != VENE_OK) {
        fprintf(stderr, "  %s\n", err.msg);
        return -1;
    }
    return site;
}

/* Run reference case `name` on model m (with an optional edit at `path`) and compare. */
static void run_case(const vene_model *m, const char *name, const char *path, edit_kind kind, int step) {
    char key[128];
    int64_t xs[VENE_MAX_DIMS] = {0}, ls[VENE_MAX_DIMS] = {0}, hs[VENE_MAX_DIMS] = {0};
    int nd = 0, lnd = 0, hnd = 0;
    snprintf(key, sizeof key, "%s.x", name);
    float *x = ref_f32(key, xs, &nd);
    snprintf(key, sizeof key, "%s.ids", name);
    int32_t *ids = ref_i32(key);
    if (ids) {
        const st_tensor *t = st_find(ref, key);
        xs[0] = t->shape[0];
        xs[1] = t->shape[1];
    }
    snprintf(key, sizeof key, "%s.positions", name);
    int32_t *pos = ref_i32(key);
    snprintf(key, sizeof key, "%s.mask", name);
    int32_t *mask32 = ref_i32(key);
    snprintf(key, sizeof key, "%s.logits", name);
    float *want_logits = ref_f32(key, ls, &lnd);
    snprintf(key, sizeof key, "%s.hidden", name);
    float *want_hidden = ref_f32(key, hs, &hnd);
    CHECK_MSG((x || ids) && want_logits && want_hidden, "reference case %s incomplete", name);
    if (!(x || ids) || !want_logits || !want_hidden) goto done;
    int B = (int)xs[0], S = (int)xs[1];
    uint8_t *mask = NULL;
    if (mask32) {
        mask = malloc((size_t)B * S);
        for (int i = 0; i < B * S; i++) mask[i] = (uint8_t)(mask32[i] != 0);
    }
    vene_batch batch = {.batch = B, .seq = S, .ids = ids, .embeds = x, .attn_mask = mask, .positions = pos};
    vene_run *rs = NULL;
    vene_error err = {0};
    CHECK(vene_run_new(m, &rs, &err) == VENE_OK);
    edit e = {0};
    if (path) {
        e.site = site_of(m, path, &e.layer);
        e.step = step;
        e.kind = kind;
        CHECK(e.site >= 0 && vene_run_add_hook(rs, e.site, e.layer, edit_hook, &e, &err) == VENE_OK);
    }
    int rc = vene_forward(rs, &batch, &err);
    CHECK_MSG(rc == VENE_OK, "%s: %s", name, err.msg);
    if (path) CHECK_MSG(e.fired == 1, "%s: edit at %s step %d fired %d times", name, path, step, e.fired);
    const vene_tensor *lg = vene_run_logits(rs), *lh = vene_run_last_hidden(rs);
    if (rc == VENE_OK && lg && lh) {
        CHECK(lg->ndim == 2 && lg->shape[0] == ls[0] && lg->shape[1] == ls[1] && lnd == 2);
        CHECK(lh->ndim == 3 && lh->shape[0] == hs[0] && lh->shape[1] == hs[1] && lh->shape[2] == hs[2]);
        snprintf(key, sizeof key, "%s logits", name);
        CHECK_CLOSE(lg->data, want_logits, (long)(ls[0] * ls[1]), TOL, key);
        snprintf(key, sizeof key, "%s last_hidden", name);
        CHECK_CLOSE(lh->data, want_hidden, (long)(hs[0] * hs[1] * hs[2]), TOL, key);
    } else {
        CHECK_MSG(0, "%s: no logits / last_hidden", name);
    }
    vene_run_free(rs);
    free(mask);
done:
    free(x);
    free(ids);
    free(pos);
    free(mask32);
    free(want_logits);
    free(want_hidden);
}

/* original.logits of a golden case (no intervention) from its base inputs_embeds. */
static void golden_original(const vene_model *m, const char *cs) {
    char path[256];
    st_file *in = NULL, *ex = NULL;
    vene_error err = {0};
    snprintf(path, sizeof path, "golden/cases/%s/inputs.safetensors", cs);
    CHECK(st_open(path, &in, &err) == VENE_OK);
    snprintf(path, sizeof path, "golden/cases/%s/expected.safetensors", cs);
    CHECK(st_open(path, &ex, &err) == VENE_OK);
    const st_tensor *x = in ? st_find(in, "gru_base") : NULL, *e = ex ? st_find(ex, "original.logits") : NULL;
    CHECK(x && e && x->ndim == 3 && e->ndim == 2);
    if (x && e && x->ndim == 3 && e->ndim == 2) {
        float *xf = malloc(sizeof(float) * (size_t)x->numel), *ef = malloc(sizeof(float) * (size_t)e->numel);
        CHECK(st_to_f32(x, xf, &err) == VENE_OK && st_to_f32(e, ef, &err) == VENE_OK);
        vene_batch b = {.batch = (int)x->shape[0], .seq = (int)x->shape[1], .embeds = xf};
        vene_run *rs = NULL;
        CHECK(vene_run_new(m, &rs, &err) == VENE_OK);
        CHECK_MSG(vene_forward(rs, &b, &err) == VENE_OK, "%s", err.msg);
        const vene_tensor *lg = vene_run_logits(rs);
        CHECK(lg && lg->ndim == 2 && lg->shape[0] == e->shape[0] && lg->shape[1] == e->shape[1]);
        if (lg) CHECK_CLOSE(lg->data, ef, (long)e->numel, TOL, cs);
        vene_run_free(rs);
        free(xf);
        free(ef);
    }
    st_close(in);
    st_close(ex);
}

/* Records where->call of every firing; checks the tensor shape. */
typedef struct counter {
    int calls[64];
    int n, bad_shape;
    int64_t w;
} counter;

static int count_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)err;
    counter *c = user;
    if (c->n < 64) c->calls[c->n] = where->call;
    c->n++;
    if (t->ndim != 2 || t->shape[0] != 3 || t->shape[1] != c->w) c->bad_shape = 1;
    return VENE_OK;
}

static const vene_component_def *component(const vene_model *m, const char *name) {
    for (int i = 0; i < m->arch->n_components; i++)
        if (!strcmp(m->arch->components[i].name, name)) return &m->arch->components[i];
    return NULL;
}

static void test_tables(const vene_model *m) {
    vene_model_info info;
    vene_model_get_info(m, &info);
    CHECK(!strcmp(info.model_type, "gru") && !strcmp(info.model_class, "GRUForClassification"));
    CHECK(!strcmp(info.path_prefix, "gru.") && info.has_lm_head && info.n_layer == 2 && info.d_model == 32);
    CHECK(info.n_ctx == 512);
    CHECK(info.n_params == 4 * (96 * 32 + 96) + 2 * 32);

    int layer = -9;
    int s = site_of(m, "gru.cells[1].output", &layer);
    CHECK(s >= 0 && layer == 1);
    CHECK(site_of(m, "cells[1].output", &layer) == s);
    int64_t shape[VENE_MAX_DIMS];
    CHECK(vene_model_site_shape(m, s, 3, 7, shape) == 2 && shape[0] == 3 && shape[1] == 32);
    s = site_of(m, "gru.cells[0].x2h.output", &layer);
    CHECK(s >= 0 && layer == 0 && vene_model_site_shape(m, s, 3, 7, shape) == 2 && shape[1] == 96);
    s = site_of(m, "score.output", &layer);
    CHECK(s >= 0 && layer == -1 && vene_model_site_shape(m, s, 3, 7, shape) == 2 && shape[1] == 2);
    CHECK(site_of(m, "cells[0].reset_act.input", &layer) >= 0);
    CHECK(site_of(m, "cells[0].new_act.output", &layer) >= 0);
    CHECK(site_of(m, "cells[0].h2h.input", &layer) >= 0);
    vene_error err = {0};
    CHECK(vene_model_find_site(m, "cells[2].output", &s, &layer, &err) == VENE_ERR_RANGE);

    static const struct { const char *name; int width, split; const char *path; int in; } comps[] = {
        {"cell_input", 32, VENE_SPLIT_NONE, "cells[%d]", 1},
        {"cell_output", 32, VENE_SPLIT_NONE, "cells[%d]", 0},
        {"reset_gate_input", 32, VENE_SPLIT_NONE, "cells[%d].reset_act", 1},
        {"update_gate_output", 32, VENE_SPLIT_NONE, "cells[%d].update_act", 0},
        {"new_gate_input", 32, VENE_SPLIT_NONE, "cells[%d].new_act", 1},
        {"x2h_output", 96, VENE_SPLIT_NONE, "cells[%d].x2h", 0},
        {"h2h_output", 96, VENE_SPLIT_NONE, "cells[%d].h2h", 0},
        {"reset_x2h_output", 32, VENE_SPLIT_THIRD0, "cells[%d].x2h", 0},
        {"update_x2h_output", 32, VENE_SPLIT_THIRD1, "cells[%d].x2h", 0},
        {"new_h2h_output", 32, VENE_SPLIT_THIRD2, "cells[%d].h2h", 0},
    };
    CHECK(m->arch->n_components == 16);
    for (size_t i = 0; i < sizeof comps / sizeof comps[0]; i++) {
        const vene_component_def *c = component(m, comps[i].name);
        CHECK_MSG(c && m->arch->component_width(m, c) == comps[i].width && c->split == comps[i].split &&
                      !strcmp(c->path, comps[i].path) && c->is_input == comps[i].in && !c->head_split,
                  "component %s", comps[i].name);
    }
}

/* Cell sites fire once per time step: where->call runs 0..S-1 for each layer. */
static void test_call_counts(const vene_model *m) {
    int64_t xs[VENE_MAX_DIMS];
    float *x = ref_f32("a_b3.x", xs, NULL);
    CHECK(x && xs[0] == 3 && xs[1] == 7);
    if (!x) return;
    vene_run *rs = NULL;
    vene_error err = {0};
    CHECK(vene_run_new(m, &rs, &err) == VENE_OK);
    int l1 = 0, l0 = 0, lx = 0;
    int s_out = site_of(m, "cells[1].output", &l1), s_in = site_of(m, "cells[0].input", &l0);
    int s_x2h = site_of(m, "cells[0].x2h.output", &lx);
    counter c_out = {.w = 32}, c_in = {.w = 32}, c_x2h = {.w = 96};
    CHECK(vene_run_add_hook(rs, s_out, 1, count_hook, &c_out, &err) == VENE_OK);
    CHECK(vene_run_add_hook(rs, s_in, 0, count_hook, &c_in, &err) == VENE_OK);
    CHECK(vene_run_add_hook(rs, s_x2h, 0, count_hook, &c_x2h, &err) == VENE_OK);
    vene_batch b = {.batch = 3, .seq = 7, .embeds = x};
    for (int rep = 0; rep < 2; rep++) { /* counters restart with every forward */
        c_out.n = c_in.n = c_x2h.n = 0;
        CHECK(vene_forward(rs, &b, &err) == VENE_OK);
        CHECK(c_out.n == 7 && c_in.n == 7 && c_x2h.n == 7);
        CHECK(!c_out.bad_shape && !c_in.bad_shape && !c_x2h.bad_shape);
        int seq_ok = 1;
        for (int t = 0; t < 7; t++)
            seq_ok &= c_out.calls[t] == t && c_in.calls[t] == t && c_x2h.calls[t] == t;
        CHECK(seq_ok);
    }
    vene_run_free(rs);
    free(x);
}

static void test_errors(const vene_model *a) {
    vene_error err = {0};
    vene_run *rs = NULL;
    CHECK(vene_run_new(a, &rs, &err) == VENE_OK);
    int32_t ids[4] = {1, 2, 3, 4};
    vene_batch b = {.batch = 1, .seq = 4, .ids = ids};
    CHECK(vene_forward(rs, &b, &err) == VENE_ERR_ARG && strstr(err.msg, "inputs_embeds"));
    float x[4 * 32] = {0};
    int32_t pos[4] = {0, 1, 2, 3};
    vene_batch bp = {.batch = 1, .seq = 4, .embeds = x, .positions = pos};
    CHECK(vene_forward(rs, &bp, &err) == VENE_ERR_ARG && strstr(err.msg, "include_emb"));
    vene_run_free(rs);
    vene_model *m = NULL;
    CHECK(vene_model_load(MODEL_A, "GRULMHeadModel", &m, &err) == VENE_ERR_UNSUPPORTED && !m);
    /* the bare GRUModel: no prefix, no logits, same states */
    CHECK(vene_model_load(MODEL_A, "GRUModel", &m, &err) == VENE_OK);
    if (m) {
        int64_t xs[VENE_MAX_DIMS];
        float *xa = ref_f32("a_b3.x", xs, NULL), *want = ref_f32("a_b3.hidden", NULL, NULL);
        vene_batch bb = {.batch = 3, .seq = 7, .embeds = xa};
        CHECK(vene_run_new(m, &rs, &err) == VENE_OK);
        CHECK(xa && want && vene_forward(rs, &bb, &err) == VENE_OK);
        CHECK(vene_run_logits(rs) == NULL);
        const vene_tensor *lh = vene_run_last_hidden(rs);
        CHECK(lh && lh->ndim == 3 && lh->shape[1] == 7);
        if (lh && want) CHECK_CLOSE(lh->data, want, 3 * 7 * 32, TOL, "GRUModel last_hidden");
        int layer;
        CHECK(site_of(m, "cells[0].output", &layer) >= 0);
        vene_run_free(rs);
        vene_model_free(m);
        free(xa);
        free(want);
    }
}

int main(void) {
    vene_error err = {0};
    CHECK_MSG(st_open(REF, &ref, &err) == VENE_OK, "%s", err.msg);
    vene_model *a = NULL, *b = NULL;
    CHECK_MSG(vene_model_load(MODEL_A, NULL, &a, &err) == VENE_OK, "%s", err.msg);
    CHECK_MSG(vene_model_load(MODEL_B, NULL, &b, &err) == VENE_OK, "%s", err.msg);
    if (!ref || !a || !b) TEST_MAIN_END();

    test_tables(a);
    golden_original(a, "t101_gru_zero_t3_intended");
    golden_original(a, "t101_gru_interchange_6_3_intended");

    run_case(a, "a_b1", NULL, ED_ZERO, 0);
    run_case(a, "a_b3", NULL, ED_ZERO, 0);
    run_case(a, "a_b3_mask", NULL, ED_ZERO, 0);
    /* in-place edits at one step: later steps and higher layers read the edited state */
    run_case(a, "a_b3_zero_l0_t3_row1", "gru.cells[0].output", ED_ZERO_ROW1, 3);
    run_case(a, "a_b3_scale_in1_t2", "gru.cells[1].input", ED_SCALE2, 2);
    run_case(a, "a_b3_reset_x2h_l1_t4", "gru.cells[1].x2h.output", ED_ADD_THIRD0, 4);
    run_case(a, "a_b3_neg_h2h_in_l1_t5", "gru.cells[1].h2h.input", ED_NEG, 5);
    run_case(a, "a_b3_new_act_l0_t1", "gru.cells[0].new_act.output", ED_ZERO, 1);

    vene_model_info info;
    vene_model_get_info(b, &info);
    CHECK(info.n_layer == 3 && info.d_model == 8 && info.vocab_size == 20 && info.n_ctx == 16);
    CHECK(info.n_params == 20 * 8 + 16 * 8 + 3 * 2 * 24 * 8 + 3 * 8);
    run_case(b, "b_ids", NULL, ED_ZERO, 0);
    run_case(b, "b_ids_pos", NULL, ED_ZERO, 0);
    run_case(b, "b_embeds", NULL, ED_ZERO, 0);

    test_call_counts(a);
    test_errors(a);
    vene_model_free(a);
    vene_model_free(b);
    st_close(ref);
    TEST_MAIN_END();
}
