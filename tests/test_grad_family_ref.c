/* LLaMA-family and GPT-NeoX reverse mode against PyTorch autograd
 * (tests/fixtures/family_grad, made by tools/make_family_grad_fixtures.py): a Mistral-,
 * a Gemma- and a Pythia-shaped model, batch 2 with one left-padded row, loss
 * sum(d_logits * logits) + sum(d_hidden * last_hidden). Every weight's gradient and the
 * stored site gradients (backward hooks) must be within 1e-3 of the reference, relative
 * to the tensor's largest entry; with VENE_GRAD_ACTIVATIONS the site gradients again. */
#include <stdint.h>

#include "io/safetensors.h"
#include "models/model.h"
#include "test.h"

#define TOL 1e-3
#define MAX_SITES 24

static vene_error err;

/* A fixture tensor as float32 (NULL when absent). */
static float *f32(const st_file *f, const char *name, int64_t *n) {
    const st_tensor *t = st_find(f, name);
    float *d = t ? malloc(sizeof(float) * (size_t)t->numel) : NULL;
    if (d && st_to_f32(t, d, &err) != VENE_OK) free(d), d = NULL;
    if (n) *n = d ? t->numel : 0;
    return d;
}

/* An I64 [B,S] fixture tensor as int32 / uint8. */
static int ints(const st_file *f, const char *name, int32_t *out32, uint8_t *out8, int64_t n) {
    const st_tensor *t = st_find(f, name);
    if (!t || t->numel != n) return 0;
    int64_t *d = malloc(sizeof(int64_t) * (size_t)n);
    int ok = d && st_to_i64(t, d, &err) == VENE_OK;
    for (int64_t i = 0; ok && i < n; i++) {
        if (out32) out32[i] = (int32_t)d[i];
        if (out8) out8[i] = d[i] != 0;
    }
    free(d);
    return ok;
}

static double rel_err(const float *got, const float *want, int64_t n) {
    double worst = 0, scale = 1e-30;
    for (int64_t i = 0; i < n; i++) {
        scale = fmax(scale, fabs(want[i]));
        double d = fabs((double)got[i] - want[i]);
        if (!(d <= worst)) worst = d == d ? d : INFINITY;
    }
    return worst / scale;
}

typedef struct capture {
    const char *name;
    int fired;
    float *g;
    int64_t n;
} capture;

static int capture_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *e) {
    (void)where, (void)e;
    capture *c = user;
    c->fired++;
    c->n = vene_tensor_numel(t);
    free(c->g);
    c->g = malloc(sizeof(float) * (size_t)c->n);
    memcpy(c->g, t->data, sizeof(float) * (size_t)c->n);
    return VENE_OK;
}

static int is_site(const char *name) {
    return strcmp(name, "input_ids") && strcmp(name, "attention_mask") && strcmp(name, "position_ids") &&
           strcmp(name, "d_hidden") && strcmp(name, "d_logits") && strncmp(name, "param.", 6);
}

/* Backward with capture hooks on every stored site; the worst site error. */
static double run_sites(vene_run *rs, const vene_model *m, const st_file *f, const vene_batch *b,
                        const vene_tensor *dl, const vene_tensor *dh, const char **worst_site) {
    capture caps[MAX_SITES];
    int n = 0;
    vene_run_clear_backward_hooks(rs);
    for (int i = 0; i < st_count(f) && n < MAX_SITES; i++) {
        const char *name = st_at(f, i)->name;
        int site, layer;
        if (!is_site(name)) continue;
        caps[n] = (capture){name, 0, NULL, 0};
        int rc = vene_model_find_site(m, name, &site, &layer, &err);
        if (!rc) rc = vene_run_add_backward_hook(rs, site, layer, capture_hook, &caps[n], &err);
        CHECK_MSG(rc == VENE_OK, "%s: %s", name, err.msg);
        n += rc == VENE_OK;
    }
    CHECK(n >= 12);
    double worst = INFINITY;
    int rc = vene_forward(rs, b, &err);
    if (!rc) rc = vene_backward(rs, dl, dh, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (!rc) worst = 0;
    for (int i = 0; !rc && i < n; i++) {
        int64_t nw;
        float *want = f32(f, caps[i].name, &nw);
        CHECK_MSG(caps[i].fired == 1 && caps[i].n == nw, "%s: fired %d times, %lld values (want 1, %lld)", caps[i].name,
                  caps[i].fired, (long long)caps[i].n, (long long)nw);
        double e = caps[i].fired == 1 && caps[i].n == nw ? rel_err(caps[i].g, want, nw) : INFINITY;
        CHECK_MSG(e <= TOL, "gradient at %s: relative error %.3g", caps[i].name, e);
        if (!(e <= worst)) worst = e, *worst_site = caps[i].name;
        free(want);
    }
    for (int i = 0; i < n; i++) free(caps[i].g);
    vene_run_clear_backward_hooks(rs);
    return worst;
}

static void run_case(const char *name) {
    char path[256];
    snprintf(path, sizeof path, "fixtures/family_grad/%s.safetensors", name);
    st_file *f = NULL;
    vene_model *m = NULL;
    vene_run *rs = NULL;
    CHECK_MSG(st_open(path, &f, &err) == VENE_OK, "%s", err.msg);
    snprintf(path, sizeof path, "fixtures/models/%s", name);
    CHECK_MSG(vene_model_load(path, NULL, &m, &err) == VENE_OK && vene_run_new(m, &rs, &err) == VENE_OK, "%s", err.msg);
    const st_tensor *it = f ? st_find(f, "input_ids") : NULL;
    if (!rs || !it || it->ndim != 2) {
        CHECK(0);
        vene_run_free(rs), vene_model_free(m), st_close(f);
        return;
    }
    const int B = (int)it->shape[0], S = (int)it->shape[1];
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(2 * B * S));
    uint8_t *mask = malloc((size_t)(B * S));
    CHECK(ints(f, "input_ids", ids, NULL, B * S) && ints(f, "position_ids", ids + B * S, NULL, B * S) &&
          ints(f, "attention_mask", NULL, mask, B * S));
    vene_batch b = {.batch = B, .seq = S, .ids = ids, .attn_mask = mask, .positions = ids + B * S};
    int64_t n1, n2;
    float *r1 = f32(f, "d_logits", &n1), *r2 = f32(f, "d_hidden", &n2);
    vene_model_info info;
    vene_model_get_info(m, &info);
    vene_tensor dl = {r1, 3, {B, S, info.vocab_size}}, dh = {r2, 3, {B, S, info.d_model}};
    CHECK(r2 && n2 == (int64_t)B * S * info.d_model && (!info.has_lm_head || n1 == (int64_t)B * S * info.vocab_size));

    /* weights: every one has a reference, and each matches */
    CHECK(vene_run_set_grad(rs, VENE_GRAD_MODEL, &err) == VENE_OK);
    const char *ws = "", *wp = "", *as = "";
    double esite = run_sites(rs, m, f, &b, r1 ? &dl : NULL, &dh, &ws), eparam = 0;
    int compared = 0;
    for (int i = 0; i < st_count(f); i++) {
        const char *pn = st_at(f, i)->name;
        vene_tensor g;
        if (strncmp(pn, "param.", 6)) continue;
        int rc = vene_run_param_grad(rs, pn + 6, &g, &err);
        CHECK_MSG(rc == VENE_OK, "%s", err.msg);
        int64_t nw;
        float *want = f32(f, pn, &nw);
        double e = !rc && vene_tensor_numel(&g) == nw ? rel_err(g.data, want, nw) : INFINITY;
        CHECK_MSG(e <= TOL, "%s: gradient of %s: relative error %.3g", name, pn + 6, e);
        if (!(e <= eparam)) eparam = e, wp = pn + 6;
        compared++;
        free(want);
    }
    CHECK_MSG(compared == m->n_param_tensors, "%s: %d reference weight gradients for %d weights", name, compared,
              m->n_param_tensors);

    /* activations only: the same site gradients */
    CHECK(vene_run_set_grad(rs, VENE_GRAD_ACTIVATIONS, &err) == VENE_OK);
    double eact = run_sites(rs, m, f, &b, r1 ? &dl : NULL, &dh, &as);
    printf("%-13s B=%d S=%d: %d weight gradients, worst %.2e (%s); sites worst %.2e (%s), activations-only %.2e\n",
           name, B, S, compared, eparam, wp, esite, ws, eact);
    free(ids), free(mask), free(r1), free(r2);
    vene_run_free(rs);
    vene_model_free(m);
    st_close(f);
}

int main(void) {
    run_case("mistral-tiny");
    run_case("gemma-tiny");
    run_case("pythia-tiny");
    TEST_MAIN_END();
}
