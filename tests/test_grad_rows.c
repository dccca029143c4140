/* The row-restricted backward (core/kernels_rows.h, the rule in models/model.h) against
 * the full backward on the gpt2-tiny fixture.
 *
 * Intervenables: the same interventions trained with VENE_GRAD_ACTIVATIONS (restricted:
 * the engine declares the lowest position its setters write) and with VENE_GRAD_MODEL
 * (which must fall back to the full backward); the intervention gradients must agree to
 * 1e-6 of their largest entry. (The one exception, 2e-5: d(original) of the square
 * Boundless rotation, whose matrix-exponential backward amplifies the 1e-6 agreement of
 * its input dL/dW, checked at 1e-6 itself.) Since the activation gradients go through the
 * row-stable products (core/gemm.h) they agree bit for bit on this project's machines; the
 * tolerances stay for the attention backward's BLAS products, which may round by shape
 * elsewhere. The loss is sum(R * logits) with R dense over
 * every position, so gradient enters rows the restriction drops too. Cases: the last
 * position, a middle one, different positions per example, two interventions at
 * different layers and positions, a head intervention on "h.pos", logits at the last
 * position only, a left-padded example (which must keep all its rows: a padding query
 * attends to later positions, as in Hugging Face).
 *
 * The kernel (vk_attn_rows_backward) against the full attention kernels, with grouped
 * keys and values and a window, which GPT-2 does not reach.
 *
 * Run states: with declared rows and a row-honouring hook the captured site gradient
 * equals the full one on the kept rows and is zero elsewhere; a public backward hook, an
 * attention-weight hook or VENE_GRAD_MODEL turn the restriction off (full gradients, rows
 * < first nonzero and identical to an undeclared run's). */
#include <stdint.h>

#include "core/kernels_grad.h"
#include "core/kernels_rows.h"
#include "engine/engine.h"
#include "models/model.h"
#include "test.h"
#include "vene.h"

#define MODEL_DIR "fixtures/models/gpt2-tiny"
#define TOL 1e-6

static vene_model *model;
static int V, D, NL;

static uint64_t rng = 0x9E3779B97F4A7C15ULL;
static float frand(void) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}
static void fill_ids(int32_t *ids, int n) {
    for (int i = 0; i < n; i++) ids[i] = (int32_t)((frand() + 1.0f) * 400.0f);
}
/* Dense upstream gradient B x S x V: the same pseudo-random values for every run. */
static vene_tensor dense_dlogits(int B, int S, uint64_t seed) {
    rng = seed;
    size_t n = (size_t)B * S * V;
    float *d = malloc(n * sizeof(float));
    for (size_t i = 0; d && i < n; i++) d[i] = frand();
    return (vene_tensor){d, 3, {B, S, V}};
}

static double max_abs(const float *a, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fabs(a[i]) > m ? fabs(a[i]) : m;
    return m;
}
/* max |a - b| / max |b| */
static double rel_diff(const float *a, const float *b, int64_t n) {
    double d = 0, s = max_abs(b, n);
    for (int64_t i = 0; i < n; i++) d = fabs((double)a[i] - b[i]) > d ? fabs((double)a[i] - b[i]) : d;
    return s > 0 ? d / s : d;
}
static double worst_rel, worst_original;

/* ------------------------------------------------------------------ intervenables */

typedef struct ivcase {
    const char *name, *config, *locations;
    int B, S;
    const char *grads[5];  /* gradient names compared */
    int want_rows;         /* rows the restricted backward must run on */
    double tol_original;   /* tolerance for "<i>.rotate_layer.parametrizations.weight.original" (0: TOL) */
    int logit_last;        /* logits at the last position only (vene_call.logit_positions) */
    int pad;               /* example 0 starts with this many padding positions (attention mask 0) */
} ivcase;

/* Forward + backward in `mode`; *rows: rows the backward ran on. Returns the intervenable. */
static vene_intervenable *train_once(const ivcase *c, int mode, const int32_t *base_ids, const int32_t *src_ids,
                                     int *rows) {
    vene_error err = {0};
    vene_intervenable *iv = NULL;
    int rc = vene_intervenable_new(model, c->config, &iv, &err);
    if (!rc) rc = vene_intervenable_set_grad(iv, mode, &err);
    uint8_t mask[64];
    for (int i = 0; i < c->B * c->S && i < 64; i++) mask[i] = i >= c->pad;
    const uint8_t *am = c->pad ? mask : NULL;
    vene_batch base = {c->B, c->S, base_ids, NULL, am, NULL}, src = {c->B, c->S, src_ids, NULL, am, NULL};
    const vene_batch *srcs[1] = {&src};
    static const int last[4] = {-1, -1, -1, -1};
    vene_call call = {&base, srcs, 1, c->locations, NULL, NULL, 0, c->logit_last ? last : NULL};
    if (!rc) rc = vene_intervenable_forward(iv, &call, &err);
    vene_tensor d = dense_dlogits(c->B, c->logit_last ? 1 : c->S, 0xC0FFEEULL);
    if (!rc) rc = vene_intervenable_backward(iv, &d, NULL, &err);
    free(d.data);
    CHECK_MSG(rc == VENE_OK, "%s (mode %d): %s", c->name, mode, err.msg);
    *rows = iv ? iv->rs->grad_rows_last : -1;
    return iv;
}

static void check_ivcase(const ivcase *c) {
    int n = c->B * c->S, rows_r, rows_f;
    int32_t *ids = malloc(sizeof(int32_t) * 2 * (size_t)n);
    fill_ids(ids, 2 * n);
    vene_intervenable *r = train_once(c, VENE_GRAD_ACTIVATIONS, ids, ids + n, &rows_r);
    vene_intervenable *f = train_once(c, VENE_GRAD_MODEL, ids, ids + n, &rows_f);
    CHECK_MSG(rows_r == c->want_rows, "%s: restricted backward ran on %d rows, expected %d", c->name, rows_r,
              c->want_rows);
    CHECK_MSG(rows_f == n, "%s: VENE_GRAD_MODEL ran on %d rows, expected the full %d", c->name, rows_f, n);
    if (r && f) {
        const vene_tensor *lr = vene_intervenable_logits(r, 1), *lf = vene_intervenable_logits(f, 1);
        CHECK_MSG(lr && lf && rel_diff(lr->data, lf->data, vene_tensor_numel(lf)) == 0,
                  "%s: both modes must run the same forward", c->name);
    }
    for (int k = 0; r && f && k < 5 && c->grads[k]; k++) {
        double tol = strstr(c->grads[k], ".original") && c->tol_original > 0 ? c->tol_original : TOL;
        vene_error err = {0};
        vene_tensor gr, gf;
        int rc = vene_intervenable_grad(r, c->grads[k], &gr, &err);
        if (!rc) rc = vene_intervenable_grad(f, c->grads[k], &gf, &err);
        CHECK_MSG(rc == VENE_OK, "%s %s: %s", c->name, c->grads[k], err.msg);
        if (rc) continue;
        int64_t ne = vene_tensor_numel(&gf);
        double e = rel_diff(gr.data, gf.data, ne);
        if (tol == TOL) worst_rel = e > worst_rel ? e : worst_rel;
        else worst_original = e > worst_original ? e : worst_original;
        CHECK_MSG(vene_tensor_numel(&gr) == ne && max_abs(gf.data, ne) > 1e-6,
                  "%s %s: a real gradient of the full backward's shape", c->name, c->grads[k]);
        CHECK_MSG(e <= tol, "%s %s: restricted vs full differ by %.3g of the largest entry", c->name, c->grads[k], e);
    }
    vene_intervenable_free(r);
    vene_intervenable_free(f);
    free(ids);
}

#define LOWRANK(layer, comp) \
    "{\"layer\":" #layer ",\"component\":\"" comp "\",\"unit\":\"pos\",\"max_number_of_units\":1," \
    "\"low_rank_dimension\":2,\"intervention_type\":\"LowRankRotatedSpaceIntervention\"}"
#define ORIGINAL(i) #i ".rotate_layer.parametrizations.weight.original"
#define W(i) #i ".rotate_layer.weight"

static const ivcase iv_cases[] = {
    {"last position", "[" LOWRANK(2, "block_output") "]", "{\"sources->base\": 5}", 2, 6, {W(0), ORIGINAL(0)}, 2, 0, 0, 0},
    {"middle position", "[" LOWRANK(1, "block_output") "]", "{\"sources->base\": 2}", 2, 6, {W(0), ORIGINAL(0)}, 8, 0, 0, 0},
    {"positions per example", "[" LOWRANK(2, "mlp_output") "]",
     "{\"sources->base\": [[[[1], [4], [3]]], [[[1], [4], [3]]]]}", 3, 6, {W(0), ORIGINAL(0)}, 5 + 2 + 3, 0, 0, 0},
    {"two interventions", "[" LOWRANK(1, "block_output") ", {\"layer\":3,\"component\":\"attention_output\","
     "\"unit\":\"pos\",\"max_number_of_units\":1,\"intervention_type\":\"BoundlessRotatedSpaceIntervention\"}]",
     "{\"sources->base\": [[[[4], [5]], [[2], [3]]], [[[4], [5]], [[2], [3]]]]}", 2, 7,
     {W(0), ORIGINAL(0), W(1), ORIGINAL(1), "1.intervention_boundaries"}, (7 - 2) + (7 - 3), 2e-5, 0, 0},
    {"head query h.pos", "[{\"layer\":2,\"component\":\"head_query_output\",\"unit\":\"h.pos\","
     "\"max_number_of_units\":1,\"low_rank_dimension\":2,\"intervention_type\":\"LowRankRotatedSpaceIntervention\"}]",
     "{\"sources->base\": [[[[[1]], [[3]]]], [[[[1]], [[3]]]]]}", 2, 6, {W(0), ORIGINAL(0)}, 6, 0, 0, 0},
    {"logits at the last position", "[" LOWRANK(3, "block_input") "]", "{\"sources->base\": [[[[2], [5], [0], [4]]], "
     "[[[2], [5], [0], [4]]]]}", 4, 6, {W(0), ORIGINAL(0)}, 4 + 1 + 6 + 2, 0, 1, 0},
    /* example 0's padding queries attend to later positions: it keeps every row */
    {"left padding", "[" LOWRANK(2, "block_output") "]", "{\"sources->base\": [[[[3], [4]]], [[[3], [4]]]]}", 2, 6,
     {W(0), ORIGINAL(0)}, 6 + 2, 0, 0, 2},
};

/* ------------------------------------------------------------------ run states */

typedef struct capture {
    float *g;
    size_t n;
    int fired;
} capture;

static int capture_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)where, (void)err;
    capture *c = user;
    c->n = (size_t)vene_tensor_numel(t);
    free(c->g);
    c->g = malloc(c->n * sizeof(float));
    if (!c->g) return VENE_ERR_MEMORY;
    memcpy(c->g, t->data, c->n * sizeof(float));
    c->fired++;
    return VENE_OK;
}
static int noop_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)user, (void)where, (void)t, (void)err;
    return VENE_OK;
}

enum { HOOK_ROWS, HOOK_PUBLIC, HOOK_ROWS_ATTN, HOOK_ROWS_MODEL };

/* Backward of one forward (B 2 x S 7) with d(h[1] output) captured; first = NULL runs
 * the plain full backward. Returns the rows the backward ran on. */
static int run_capture(int how, const int *first, capture *cap, float **wgrad) {
    const int B = 2, S = 7;
    vene_error err = {0};
    vene_run *rs = NULL;
    int32_t ids[2 * 7];
    rng = 42;
    fill_ids(ids, B * S);
    vene_batch in = {B, S, ids, NULL, NULL, NULL};
    int site, layer, asite, alayer;
    int rc = vene_run_new(model, &rs, &err);
    if (!rc) rc = vene_run_set_grad(rs, how == HOOK_ROWS_MODEL ? VENE_GRAD_MODEL : VENE_GRAD_ACTIVATIONS, &err);
    if (!rc) rc = vene_model_find_site(model, "h[1].output", &site, &layer, &err);
    if (!rc) rc = vene_model_find_site(model, "h[2].attn.attn_dropout.input", &asite, &alayer, &err);
    if (!rc) rc = vene_forward(rs, &in, &err);
    if (!rc) rc = how == HOOK_PUBLIC ? vene_run_add_backward_hook(rs, site, layer, capture_hook, cap, &err)
                                     : vene_run_add_backward_hook_rows(rs, site, layer, capture_hook, cap, &err);
    if (!rc && how == HOOK_ROWS_ATTN) rc = vene_run_add_backward_hook_rows(rs, asite, alayer, noop_hook, NULL, &err);
    vene_run_set_grad_rows(rs, first);
    vene_tensor d = dense_dlogits(B, S, 7);
    if (!rc) rc = vene_backward(rs, &d, NULL, &err);
    free(d.data);
    vene_tensor wg;
    if (!rc && wgrad && how == HOOK_ROWS_MODEL && !(rc = vene_run_param_grad(rs, "h.0.attn.c_attn.weight", &wg, &err))) {
        *wgrad = malloc(sizeof(float) * (size_t)vene_tensor_numel(&wg));
        memcpy(*wgrad, wg.data, sizeof(float) * (size_t)vene_tensor_numel(&wg));
    }
    CHECK_MSG(rc == VENE_OK, "run-state backward (%d): %s", how, err.msg);
    int rows = rc ? -1 : rs->grad_rows_last;
    vene_run_free(rs);
    return rows;
}

static void check_run_states(void) {
    const int B = 2, S = 7, T = B * S;
    static const int first[2] = {4, 2};
    capture full = {0}, rows = {0}, pub = {0}, attn = {0}, mfull = {0}, mrows = {0};
    float *wfull = NULL, *wrows = NULL;
    CHECK(run_capture(HOOK_PUBLIC, NULL, &full, NULL) == T);
    CHECK_MSG(run_capture(HOOK_ROWS, first, &rows, NULL) == (S - 4) + (S - 2), "declared rows, row hook: restricted");
    CHECK_MSG(run_capture(HOOK_PUBLIC, first, &pub, NULL) == T, "a public backward hook turns the restriction off");
    CHECK_MSG(run_capture(HOOK_ROWS_ATTN, first, &attn, NULL) == T, "an attention-weight hook turns it off");
    CHECK_MSG(run_capture(HOOK_ROWS_MODEL, NULL, &mfull, &wfull) == T, "model gradients, undeclared");
    CHECK_MSG(run_capture(HOOK_ROWS_MODEL, first, &mrows, &wrows) == T, "VENE_GRAD_MODEL turns it off");
    int ok = full.fired == 1 && rows.fired == 1 && pub.fired == 1 && attn.fired == 1 && mrows.fired == 1 &&
             full.n == (size_t)T * D && rows.n == full.n && pub.n == full.n && attn.n == full.n && mrows.n == full.n;
    CHECK_MSG(ok, "every capture fired once with a B x S x D gradient");
    for (int b = 0; ok && b < B; b++) {
        const size_t at = (size_t)b * S * D, kept = (size_t)first[b] * D, n = (size_t)S * D;
        double e = rel_diff(rows.g + at + kept, full.g + at + kept, (int64_t)(n - kept));
        worst_rel = e > worst_rel ? e : worst_rel;
        CHECK_MSG(e <= TOL, "example %d: kept rows differ from the full backward by %.3g", b, e);
        CHECK_MSG(max_abs(rows.g + at, (int64_t)kept) == 0, "example %d: dropped rows are zero", b);
        CHECK_MSG(max_abs(full.g + at, (int64_t)kept) > 1e-6, "example %d: the full gradient there is not", b);
        CHECK_MSG(!memcmp(pub.g + at, full.g + at, n * sizeof(float)) && !memcmp(attn.g + at, full.g + at, n * sizeof(float)),
                  "example %d: fallbacks give the full backward's gradient, rows < first included", b);
        CHECK_MSG(!memcmp(mrows.g + at, mfull.g + at, n * sizeof(float)), "example %d: model-gradient fallback", b);
    }
    size_t nw = (size_t)D * 3 * D;
    CHECK_MSG(wfull && wrows && !memcmp(wfull, wrows, nw * sizeof(float)) && max_abs(wfull, (int64_t)nw) > 0,
              "weight gradients unchanged by declared rows");
    free(wfull), free(wrows);
    capture *all[] = {&full, &rows, &pub, &attn, &mfull, &mrows};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]->g);
}

/* ------------------------------------------------------------------ the attention kernel */

/* vk_attn_rows_backward against the full kernels fed the same upstream gradient on the
 * kept rows and zero elsewhere: dq and dv / dk of kept rows must agree (GQA, window). */
static void check_attn_kernel(int H, int KV, int window) {
    enum { B = 2, S = 7, HD = 4 };
    static const int first[B] = {3, 0};
    int start[B + 1];
    vk_rows r;
    const int n = vk_rows_init(&r, B, S, first, start), ldq = (H + 2 * KV) * HD, ldo = H * HD;
    float *qkv = malloc(sizeof(float) * B * S * ldq), *P = calloc((size_t)B * H * S * S, sizeof(float));
    float *dout = calloc((size_t)B * S * ldo, sizeof(float)), *dout_c = malloc(sizeof(float) * (size_t)n * ldo);
    float *dpf = calloc((size_t)B * H * S * S, sizeof(float)), *dpc = malloc(sizeof(float) * (size_t)H * n * S);
    float *df = calloc((size_t)B * S * ldq, sizeof(float)), *dc = calloc((size_t)n * ldq, sizeof(float));
    float *dfc = malloc(sizeof(float) * (size_t)n * ldq);
    rng = 1234 + (uint64_t)H * 31 + (uint64_t)window;
    for (int i = 0; i < B * S * ldq; i++) qkv[i] = frand();
    for (int b = 0; b < B; b++)
        for (int h = 0; h < H; h++)
            for (int i = 0; i < S; i++) { /* a softmax over the visible keys */
                float *row = P + (((size_t)b * H + h) * S + i) * S, sum = 0;
                for (int j = 0; j <= i; j++)
                    if (window <= 0 || i - j < window) sum += row[j] = expf(frand());
                for (int j = 0; j <= i; j++) row[j] /= sum;
            }
    for (int b = 0; b < B; b++)
        for (int i = first[b]; i < S; i++)
            for (int d = 0; d < ldo; d++) dout[((size_t)b * S + i) * ldo + d] = frand();
    vk_rows_gather(&r, dout, ldo, ldo, dout_c);
    const float *q = qkv, *k = qkv + H * HD, *v = qkv + (H + KV) * HD;
    vk_attn_values_backward(dout, ldo, P, v, ldq, dpf, df + (H + KV) * HD, ldq, B, S, H, KV, HD);
    vk_attn_scores_backward(dpf, P, q, ldq, k, ldq, df, ldq, df + H * HD, ldq, B, S, H, KV, HD, 2.0f, window);
    vk_attn_rows_backward(&r, dout_c, ldo, P, P, q, ldq, k, ldq, v, ldq, dpc, dc, ldq, dc + H * HD, ldq,
                          dc + (H + KV) * HD, ldq, H, KV, HD, 2.0f, window);
    vk_rows_gather(&r, df, ldq, ldq, dfc);
    double e = rel_diff(dc, dfc, (int64_t)n * ldq);
    worst_rel = e > worst_rel ? e : worst_rel;
    CHECK_MSG(e <= TOL && max_abs(dfc, (int64_t)n * ldq) > 0.1,
              "attention kernel (%d heads, %d kv, window %d): dq, dk, dv of the kept rows differ by %.3g", H, KV,
              window, e);
    free(qkv), free(P), free(dout), free(dout_c), free(dpf), free(dpc), free(df), free(dc), free(dfc);
}

int main(void) {
    check_attn_kernel(4, 4, 0);
    check_attn_kernel(4, 2, 0);
    check_attn_kernel(4, 1, 3);

    vene_error err = {0};
    if (vene_model_load(MODEL_DIR, NULL, &model, &err) != VENE_OK) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    vene_model_info info;
    vene_model_get_info(model, &info);
    V = info.vocab_size, D = info.d_model, NL = info.n_layer;
    CHECK(NL == 4 && D == 64);
    for (size_t i = 0; i < sizeof iv_cases / sizeof iv_cases[0]; i++) check_ivcase(&iv_cases[i]);
    check_run_states();
    printf("row-restricted backward: worst difference to the full backward %.3g of the largest entry (tolerance %g); "
           "square rotation's original %.3g (tolerance 2e-5)\n", worst_rel, TOL, worst_original);
    vene_model_free(model);
    TEST_MAIN_END();
}
