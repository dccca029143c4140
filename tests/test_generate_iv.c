/* Interventions while generating (pyvene's generate, spec §10, and vene's schedules),
 * checked against a manual computation: a full, uncached forward over the generated
 * sequence with plain hooks that add the steering vector exactly where the gating says.
 * The generated tokens must be that forward's argmax at every position, and collected
 * activations must equal its activations. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "test.h"
#include "vene.h"

#define MODEL_DIR "fixtures/models/gpt2-tiny"
#define P 6
#define NEW 10
#define D 64

static const int32_t PROMPT[P] = {7454, 2402, 257, 640, 612, 373};
static const int32_t SHORT[3] = {464, 3139, 286};
static vene_model *M;
static int VOCAB;
static float VA[D], VB[D];

/* A plain hook: add `v` at the listed positions of every example (B x S x D sites), or
 * copy the tensor out (`copy`). */
typedef struct hook_add {
    const float *v;
    int pos[64], n_pos, all;
    float *copy;
} hook_add;

static int add_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)where;
    (void)err;
    hook_add *h = user;
    int64_t B = t->shape[0], S = t->shape[1], W = t->shape[2];
    if (h->copy) {
        memcpy(h->copy, t->data, sizeof(float) * (size_t)(B * S * W));
        return VENE_OK;
    }
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s < S; s++) {
            int on = h->all;
            for (int k = 0; k < h->n_pos; k++) on |= h->pos[k] == s;
            if (on)
                for (int64_t d = 0; d < W; d++) t->data[(b * S + s) * W + d] += h->v[d];
        }
    return VENE_OK;
}

static int site_of(const char *path, int *layer) {
    int site = -1;
    vene_error err = {0};
    CHECK_MSG(vene_model_find_site(M, path, &site, layer, &err) == VENE_OK, "%s", err.msg);
    return site;
}

static int argmax_at(const vene_tensor *logits, int s) {
    int64_t V = logits->shape[2];
    const float *r = logits->data + s * V;
    int best = 0;
    for (int v = 1; v < V; v++)
        if (r[v] > r[best]) best = v;
    return best;
}

static double max_diff(const float *a, const float *b, int n) {
    double w = 0;
    for (int i = 0; i < n; i++) w = fabs((double)a[i] - b[i]) > w ? fabs((double)a[i] - b[i]) : w;
    return w;
}

static vene_intervenable *make_iv(const char *config) {
    vene_intervenable *iv = NULL;
    vene_error err = {0};
    CHECK_MSG(vene_intervenable_new(M, config, &iv, &err) == VENE_OK, "%s", err.msg);
    return iv;
}

#define ADD(l, comp) "{\"layer\": " #l ", \"component\": \"" comp "\", \"intervention_type\": \"AdditionIntervention\"}"
#define COLLECT(l, comp) "{\"layer\": " #l ", \"component\": \"" comp "\", \"intervention_type\": \"CollectIntervention\"}"

/* Addition at every layer's mlp_output, only at decoding steps 2..4; Collect at h[0]'s MLP
 * output (after the addition) and at h[3]'s output on every step. */
static void check_steps_2_to_4(void) {
    vene_error err = {0};
    vene_intervenable *iv = make_iv("[" ADD(0, "mlp_output") "," ADD(1, "mlp_output") "," ADD(2, "mlp_output") "," ADD(
        3, "mlp_output") "," COLLECT(0, "mlp_output") "," COLLECT(3, "block_output") "]");
    if (!iv) return;
    vene_schedule sched = {.steps = VENE_STEPS_RANGE, .first = 2, .last = 4};
    for (int i = 0; i < 4; i++) CHECK(vene_intervenable_set_schedule(iv, i, &sched, &err) == VENE_OK);
    vene_tensor v = {.data = VA, .ndim = 1, .shape = {D}};
    const vene_tensor *reps[6] = {&v, &v, &v, &v, NULL, NULL};
    vene_batch base = {1, P, PROMPT, NULL, NULL, NULL};
    vene_call call = {.base = &base, .source_reps = reps, .output_original = 1};
    vene_gen_params p;
    vene_gen_params_init(&p, M);
    p.max_new_tokens = NEW;
    p.eos_token_id = -1;
    vene_gen_output out[2];
    CHECK_MSG(vene_intervenable_generate(iv, &call, &p, out, &err) == VENE_OK, "%s", err.msg);
    if (!out[1].ids) return;
    /* decoding steps 1..NEW-1 each collected once per Collect, prompt pass gated off */
    CHECK(vene_intervenable_collected_count(iv) == 2 * (NEW - 1));

    /* the original continuation is plain greedy decoding */
    vene_run *rs = NULL;
    CHECK(vene_run_new(M, &rs, &err) == VENE_OK);
    vene_gen_output plain;
    CHECK(vene_generate(rs, &base, &p, &plain, &err) == VENE_OK);
    CHECK(!memcmp(plain.ids, out[0].ids, sizeof(int32_t) * (P + NEW)));
    vene_gen_output_free(&plain);

    /* manual: the intervened sequence's fed tokens, uncached, vector added at steps 2..4
     * (positions P - 1 + t); and the same without the vector */
    const int L = P + NEW - 1;
    float *mlp0 = malloc(sizeof(float) * L * D), *h3 = malloc(sizeof(float) * L * D), *mlp0_plain = malloc(sizeof(float) * L * D);
    float *logits = malloc(sizeof(float) * (size_t)L * VOCAB);
    hook_add add = {.v = VA, .pos = {P + 1, P + 2, P + 3}, .n_pos = 3};
    hook_add cap0 = {.copy = mlp0}, cap3 = {.copy = h3}, cap0p = {.copy = mlp0_plain};
    int l0, site_mlp = -1, site_h = -1, l3;
    for (int l = 0; l < 4; l++) {
        char path[64];
        snprintf(path, sizeof path, "h[%d].mlp.output", l);
        int layer;
        site_mlp = site_of(path, &layer);
        CHECK(vene_run_add_hook(rs, site_mlp, layer, add_hook, &add, &err) == VENE_OK);
    }
    site_mlp = site_of("h[0].mlp.output", &l0);
    site_h = site_of("h[3].output", &l3);
    CHECK(vene_run_add_hook(rs, site_mlp, l0, add_hook, &cap0, &err) == VENE_OK);
    CHECK(vene_run_add_hook(rs, site_h, l3, add_hook, &cap3, &err) == VENE_OK);
    vene_batch whole = {1, L, out[1].ids, NULL, NULL, NULL};
    CHECK(vene_forward(rs, &whole, &err) == VENE_OK);
    memcpy(logits, vene_run_logits(rs)->data, sizeof(float) * (size_t)L * VOCAB);
    vene_run_clear_hooks(rs);
    CHECK(vene_run_add_hook(rs, site_mlp, l0, add_hook, &cap0p, &err) == VENE_OK);
    CHECK(vene_forward(rs, &whole, &err) == VENE_OK);

    vene_tensor lt = {.data = logits, .ndim = 3, .shape = {1, L, VOCAB}};
    int tokens_ok = 1, n_changed = 0;
    for (int t = 0; t < NEW; t++) {
        tokens_ok &= out[1].ids[P + t] == argmax_at(&lt, P - 1 + t);
        n_changed += out[1].ids[P + t] != out[0].ids[P + t];
    }
    CHECK_MSG(tokens_ok, "intervened tokens are not the argmax of the manual computation");
    CHECK_MSG(n_changed > 0, "the steering vector changed no token (test too weak)");
    double worst_h3 = 0, worst_mlp = 0, worst_delta = 0;
    for (int t = 1; t < NEW; t++) {
        int pos = P - 1 + t;
        const vene_tensor *c0 = vene_intervenable_collected(iv, t - 1), *c3 = vene_intervenable_collected(iv, NEW - 1 + t - 1);
        CHECK(c0 && c3 && vene_tensor_numel(c0) == D && vene_tensor_numel(c3) == D);
        if (!c0 || !c3) break;
        double a = max_diff(c0->data, mlp0 + pos * D, D), b = max_diff(c3->data, h3 + pos * D, D);
        worst_mlp = a > worst_mlp ? a : worst_mlp;
        worst_h3 = b > worst_h3 ? b : worst_h3;
        /* layer 0's MLP output before the addition depends on tokens only: the collected
         * value minus the unsteered one is the vector at steps 2..4, zero elsewhere */
        float delta[D];
        for (int d = 0; d < D; d++) delta[d] = c0->data[d] - mlp0_plain[pos * D + d];
        static const float zero[D];
        double e = max_diff(delta, t >= 2 && t <= 4 ? VA : zero, D);
        worst_delta = e > worst_delta ? e : worst_delta;
    }
    CHECK_MSG(worst_mlp < 1e-4 && worst_h3 < 1e-4, "collected vs manual: mlp0 %.3g, h3 %.3g", worst_mlp, worst_h3);
    CHECK_MSG(worst_delta < 1e-5, "steering outside steps 2..4 or wrong amount (%.3g)", worst_delta);
    printf("steps 2..4: %d of %d tokens changed; |collected - manual| mlp0 %.2e, h[3] %.2e; |delta - v| %.2e\n", n_changed,
           NEW, worst_mlp, worst_h3, worst_delta);
    free(mlp0);
    free(h3);
    free(mlp0_plain);
    free(logits);
    vene_gen_output_free(&out[0]);
    vene_gen_output_free(&out[1]);
    vene_run_free(rs);
    vene_intervenable_free(iv);
}

/* Generate with one Addition per listed location mode and compare with a full forward
 * that adds the vector at `pos` (or everywhere). */
static void check_pyvene_gating(const char *locations, int on_prompt, const int *pos, int n_pos, int all, const char *what) {
    vene_error err = {0};
    vene_intervenable *iv = make_iv("[" ADD(1, "block_output") "]");
    if (!iv) return;
    vene_tensor v = {.data = VB, .ndim = 1, .shape = {D}};
    const vene_tensor *reps[1] = {&v};
    vene_batch base = {1, P, PROMPT, NULL, NULL, NULL};
    vene_call call = {.base = &base, .source_reps = reps, .unit_locations = locations};
    vene_gen_params p;
    vene_gen_params_init(&p, M);
    p.max_new_tokens = NEW;
    p.eos_token_id = -1;
    p.intervene_on_prompt = on_prompt;
    vene_gen_output out[2];
    CHECK_MSG(vene_intervenable_generate(iv, &call, &p, out, &err) == VENE_OK, "%s: %s", what, err.msg);
    CHECK(out[0].ids == NULL); /* no original asked for */
    vene_run *rs = NULL;
    CHECK(vene_run_new(M, &rs, &err) == VENE_OK);
    hook_add add = {.v = VB, .n_pos = n_pos, .all = all};
    if (n_pos) memcpy(add.pos, pos, sizeof(int) * (size_t)n_pos);
    int layer, site = site_of("h[1].output", &layer);
    CHECK(vene_run_add_hook(rs, site, layer, add_hook, &add, &err) == VENE_OK);
    vene_batch whole = {1, P + NEW - 1, out[1].ids, NULL, NULL, NULL};
    CHECK(vene_forward(rs, &whole, &err) == VENE_OK);
    int ok = out[1].ids != NULL;
    for (int t = 0; ok && t < NEW; t++) ok &= out[1].ids[P + t] == argmax_at(vene_run_logits(rs), P - 1 + t);
    CHECK_MSG(ok, "%s: tokens differ from the manual computation", what);
    vene_gen_output_free(&out[1]);
    vene_run_free(rs);
    vene_intervenable_free(iv);
}

/* Per-request steering: row 0 gets VA, row 1 gets VB (two representations on one site,
 * each limited to its row); each row equals its own single-row run. */
static void check_per_row(void) {
    vene_error err = {0};
    vene_intervenable *iv = make_iv("[" ADD(1, "mlp_output") "," ADD(1, "mlp_output") "]");
    vene_intervenable *ia = make_iv("[" ADD(1, "mlp_output") "]"), *ib = make_iv("[" ADD(1, "mlp_output") "]");
    if (!iv || !ia || !ib) return;
    const uint8_t r0[2] = {1, 0}, r1[2] = {0, 1};
    vene_schedule s0 = {.rows = r0, .n_rows = 2}, s1 = {.rows = r1, .n_rows = 2};
    CHECK(vene_intervenable_set_schedule(iv, 0, &s0, &err) == VENE_OK && vene_intervenable_set_schedule(iv, 1, &s1, &err) == VENE_OK);
    vene_tensor va = {.data = VA, .ndim = 1, .shape = {D}}, vb = {.data = VB, .ndim = 1, .shape = {D}};
    const vene_tensor *both[2] = {&va, &vb}, *only_a[1] = {&va}, *only_b[1] = {&vb};
    int32_t ids[12];
    memcpy(ids, PROMPT, sizeof PROMPT);
    ids[6] = ids[7] = ids[8] = 0;
    memcpy(ids + 9, SHORT, sizeof SHORT);
    uint8_t mask[12] = {1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1};
    vene_batch batch = {2, P, ids, NULL, mask, NULL}, one = {1, P, PROMPT, NULL, NULL, NULL}, two = {1, 3, SHORT, NULL, NULL, NULL};
    vene_gen_params p;
    vene_gen_params_init(&p, M);
    p.max_new_tokens = NEW;
    p.eos_token_id = -1;
    vene_gen_output ob[2], oa[2], obb[2];
    vene_call c = {.base = &batch, .source_reps = both, .output_original = 1};
    CHECK_MSG(vene_intervenable_generate(iv, &c, &p, ob, &err) == VENE_OK, "%s", err.msg);
    c = (vene_call){.base = &one, .source_reps = only_a};
    CHECK(vene_intervenable_generate(ia, &c, &p, oa, &err) == VENE_OK);
    c = (vene_call){.base = &two, .source_reps = only_b};
    CHECK(vene_intervenable_generate(ib, &c, &p, obb, &err) == VENE_OK);
    if (ob[1].ids && oa[1].ids && obb[1].ids) {
        CHECK_MSG(!memcmp(ob[1].ids + P, oa[1].ids + P, sizeof(int32_t) * NEW), "row 0 is not steered by VA alone");
        CHECK_MSG(!memcmp(ob[1].ids + ob[1].len + P, obb[1].ids + 3, sizeof(int32_t) * NEW), "row 1 is not steered by VB alone");
        CHECK(memcmp(ob[1].ids, ob[0].ids, sizeof(int32_t) * 2 * (P + NEW)) != 0);
    }
    /* rows also limit a plain forward call: row 0 of [PROMPT, PROMPT] gets VA, row 1 VB */
    int32_t twice[12];
    memcpy(twice, PROMPT, sizeof PROMPT);
    memcpy(twice + P, PROMPT, sizeof PROMPT);
    vene_batch b2 = {2, P, twice, NULL, NULL, NULL};
    c = (vene_call){.base = &b2, .source_reps = both};
    CHECK(vene_intervenable_forward(iv, &c, &err) == VENE_OK);
    const vene_tensor *h2 = vene_intervenable_last_hidden(iv, 1);
    c = (vene_call){.base = &one, .source_reps = only_a};
    CHECK(vene_intervenable_forward(ia, &c, &err) == VENE_OK);
    c = (vene_call){.base = &one, .source_reps = only_b};
    CHECK(vene_intervenable_forward(ib, &c, &err) == VENE_OK);
    const vene_tensor *ha = vene_intervenable_last_hidden(ia, 1), *hb = vene_intervenable_last_hidden(ib, 1);
    CHECK(max_diff(h2->data, ha->data, P * D) < 1e-5 && max_diff(h2->data + P * D, hb->data, P * D) < 1e-5);
    CHECK(max_diff(ha->data, hb->data, P * D) > 1e-2);
    for (int w = 0; w < 2; w++) {
        vene_gen_output_free(&ob[w]);
        vene_gen_output_free(&oa[w]);
        vene_gen_output_free(&obb[w]);
    }
    vene_intervenable_free(iv);
    vene_intervenable_free(ia);
    vene_intervenable_free(ib);
}

/* A predicate schedule sees each row's tokens so far; "even steps" equals the list. */
typedef struct seen_ids {
    int calls, bad;
    const vene_gen_output *out; /* filled after the run: checked then */
    int32_t fed[NEW];
    int n_ids[NEW];
} seen_ids;

static int even_steps(void *user, int intervention, int step, int row, const int32_t *ids, int n_ids) {
    seen_ids *s = user;
    s->calls++;
    if (intervention != 0 || row != 0 || step < 1 || step >= NEW) s->bad++;
    else {
        s->fed[step] = ids[n_ids - 1];
        s->n_ids[step] = n_ids;
    }
    return step % 2 == 0;
}

static void check_predicate(void) {
    vene_error err = {0};
    vene_intervenable *iv = make_iv("[" ADD(2, "mlp_output") "]");
    if (!iv) return;
    vene_tensor v = {.data = VA, .ndim = 1, .shape = {D}};
    const vene_tensor *reps[1] = {&v};
    vene_batch base = {1, P, PROMPT, NULL, NULL, NULL};
    vene_call call = {.base = &base, .source_reps = reps};
    vene_gen_params p;
    vene_gen_params_init(&p, M);
    p.max_new_tokens = NEW;
    p.eos_token_id = -1;
    seen_ids seen = {0};
    vene_schedule fn = {.steps = VENE_STEPS_FN, .fn = even_steps, .user = &seen};
    const int evens[] = {0, 2, 4, 6, 8};
    vene_schedule list = {.steps = VENE_STEPS_LIST, .list = evens, .n_list = 5};
    vene_gen_output a[2], b[2], none[2];
    CHECK(vene_intervenable_set_schedule(iv, 0, &fn, &err) == VENE_OK);
    CHECK(vene_intervenable_generate(iv, &call, &p, a, &err) == VENE_OK);
    CHECK(vene_intervenable_set_schedule(iv, 0, &list, &err) == VENE_OK);
    CHECK(vene_intervenable_generate(iv, &call, &p, b, &err) == VENE_OK);
    CHECK(vene_intervenable_set_schedule(iv, 0, NULL, &err) == VENE_OK);
    CHECK(vene_intervenable_generate(iv, &call, &p, none, &err) == VENE_OK);
    CHECK(seen.calls == NEW - 1 && seen.bad == 0); /* asked at each decoding step, never for the prompt pass */
    if (a[1].ids && b[1].ids && none[1].ids) {
        for (int t = 1; t < NEW; t++) CHECK(seen.fed[t] == a[1].ids[P + t - 1] && seen.n_ids[t] == P + t);
        CHECK(!memcmp(a[1].ids, b[1].ids, sizeof(int32_t) * (P + NEW)));
        CHECK(memcmp(a[1].ids, none[1].ids, sizeof(int32_t) * (P + NEW)) != 0);
    }
    /* bad schedules are refused with the intervention named */
    vene_schedule bad = {.steps = VENE_STEPS_RANGE, .first = 5, .last = 2};
    CHECK(vene_intervenable_set_schedule(iv, 0, &bad, &err) == VENE_ERR_ARG && strstr(err.msg, "intervention 0"));
    bad = (vene_schedule){.steps = VENE_STEPS_FN};
    CHECK(vene_intervenable_set_schedule(iv, 0, &bad, &err) == VENE_ERR_ARG);
    CHECK(vene_intervenable_set_schedule(iv, 3, NULL, &err) == VENE_ERR_RANGE);
    for (int w = 0; w < 2; w++) {
        vene_gen_output_free(&a[w]);
        vene_gen_output_free(&b[w]);
        vene_gen_output_free(&none[w]);
    }
    vene_intervenable_free(iv);
}

/* A token callback that fails stops generation with its error; the intervenable and the
 * run state are then as before (no cache attached, no hooks, no gating left over). */
static int stop_after_3(void *user, const vene_token_event *ev, vene_error *err) {
    (void)ev;
    int *n = user;
    if (++*n < 3) return VENE_OK;
    snprintf(err->msg, sizeof err->msg, "enough");
    return err->code = VENE_ERR_STATE;
}

static void check_abort(void) {
    vene_error err = {0};
    vene_intervenable *iv = make_iv("[" ADD(1, "mlp_output") "]");
    vene_run *rs = NULL;
    CHECK(vene_run_new(M, &rs, &err) == VENE_OK);
    if (!iv || !rs) return;
    vene_tensor v = {.data = VA, .ndim = 1, .shape = {D}};
    const vene_tensor *reps[1] = {&v};
    vene_batch base = {1, P, PROMPT, NULL, NULL, NULL};
    vene_call call = {.base = &base, .source_reps = reps, .unit_locations = "{\"base\": 5}"};
    CHECK(vene_intervenable_forward(iv, &call, &err) == VENE_OK);
    float before[D];
    memcpy(before, vene_intervenable_last_hidden(iv, 1)->data + 5 * D, sizeof before);
    int n = 0;
    vene_gen_params p;
    vene_gen_params_init(&p, M);
    p.on_token = stop_after_3;
    p.user = &n;
    vene_gen_output out[2], one;
    /* pyvene: decoding steps are intervened at the locations of their one-token input */
    CHECK(vene_intervenable_generate(iv, &call, &p, out, &err) == VENE_ERR_RANGE);
    CHECK_MSG(strstr(err.msg, "pass 1") && strstr(err.msg, "location 5 past the sequence (size 1)"), "%s", err.msg);
    n = 0;
    p.intervene_on_prompt = 1;
    CHECK(vene_intervenable_generate(iv, &call, &p, out, &err) == VENE_ERR_STATE && !strcmp(err.msg, "enough"));
    CHECK(out[0].ids == NULL && out[1].ids == NULL && n == 3);
    n = 0;
    CHECK(vene_generate(rs, &base, &p, &one, &err) == VENE_ERR_STATE && one.ids == NULL);
    /* afterwards: a plain 6-token forward (no cache) and the same intervened forward */
    CHECK(vene_forward(rs, &base, &err) == VENE_OK && vene_run_logits(rs)->shape[1] == P);
    CHECK(vene_intervenable_forward(iv, &call, &err) == VENE_OK);
    CHECK(max_diff(before, vene_intervenable_last_hidden(iv, 1)->data + 5 * D, D) == 0);
    vene_run_free(rs);
    vene_intervenable_free(iv);
}

int main(void) {
    vene_error err = {0};
    if (vene_model_load(MODEL_DIR, NULL, &M, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    vene_model_info info;
    vene_model_get_info(M, &info);
    VOCAB = info.vocab_size;
    vene_rng rng;
    vene_rng_seed(&rng, 5);
    for (int d = 0; d < D; d++) VA[d] = (float)(3.0 * vene_rng_normal(&rng));
    for (int d = 0; d < D; d++) VB[d] = (float)(3.0 * vene_rng_normal(&rng));
    check_steps_2_to_4();
    /* intervene_on_prompt false, {"base": 0}: each decoding step's new token */
    int steps[NEW - 1];
    for (int t = 1; t < NEW; t++) steps[t - 1] = P - 1 + t;
    check_pyvene_gating(NULL, 0, steps, NEW - 1, 0, "new tokens");
    /* intervene_on_prompt true with locations: the prompt pass only, at position 3 */
    int three = 3;
    check_pyvene_gating("{\"base\": 3}", 1, &three, 1, 0, "prompt position 3");
    /* None locations with intervene_on_prompt: every position of every pass */
    check_pyvene_gating(NULL, 1, NULL, 0, 1, "whole tensor");
    check_per_row();
    check_predicate();
    check_abort();
    vene_model_free(M);
    TEST_MAIN_END();
}
