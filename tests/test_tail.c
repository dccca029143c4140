/* The deepest read layer on the rows read (vene_run_set_tail, models/model.h; GPT-2's
 * gpt2_tail.c) on the gpt2-tiny fixture.
 *
 * Run states: with a tail declared, the forward stops after that layer (VENE_STOP) and its
 * output rows s >= first[b] equal a full forward's bit for bit, at the first and the last
 * layer, with a left-padded example. It declines (full forward, every row equal) with a
 * hook elsewhere in that layer or past it, with gradients, and for a first[b] outside the
 * sequence. Engine: interchange interventions whose source pass takes the tail (counted)
 * give the same intervened logits bit for bit as with model gradients on, where every
 * source pass runs whole: one or two representations (the tail at the deeper one), and a
 * getter on another site than the layer's output, which the model declines. */
#include <stdint.h>

#include "engine/engine.h"
#include "models/model.h"
#include "test.h"
#include "vene.h"

#define MODEL_DIR "fixtures/models/gpt2-tiny"
enum { B = 3, S = 7 };

static vene_model *model;
static int D, NL;

typedef struct capture {
    float *buf;
    int fired;
} capture;

static int capture_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)where, (void)err;
    capture *c = user;
    memcpy(c->buf, t->data, sizeof(float) * (size_t)vene_tensor_numel(t));
    c->fired++;
    return VENE_OK;
}

static int noop_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)user, (void)where, (void)t, (void)err;
    return VENE_OK;
}

static void fill_ids(int32_t *ids, uint8_t *mask) {
    for (int i = 0; i < B * S; i++) ids[i] = (int32_t)((i * 7919 + 13) % 900);
    for (int i = 0; i < B * S; i++) mask[i] = !(i / S == 2 && i % S < 2); /* example 2: two pads in front */
}

enum { PLAIN, EXTRA_HOOK, LATER_HOOK, GRAD, BAD_FIRST };

/* h[L].output of one forward; tail != NULL declares it. Returns vene_forward's status. */
static int run(int L, const int *tail, int how, capture *cap, int *tail_runs) {
    int32_t ids[B * S];
    uint8_t mask[B * S];
    fill_ids(ids, mask);
    vene_batch in = {B, S, ids, NULL, mask, NULL};
    vene_error err = {0};
    vene_run *rs = NULL;
    char path[64];
    int site, layer, rc = vene_run_new(model, &rs, &err);
    snprintf(path, sizeof path, "h[%d].output", L);
    if (!rc) rc = vene_model_find_site(model, path, &site, &layer, &err);
    if (!rc) rc = vene_run_add_hook(rs, site, layer, capture_hook, cap, &err);
    if (!rc && how == EXTRA_HOOK) {
        snprintf(path, sizeof path, "h[%d].mlp.output", L);
        if (!(rc = vene_model_find_site(model, path, &site, &layer, &err))) rc = vene_run_add_hook(rs, site, layer, noop_hook, NULL, &err);
    }
    if (!rc && how == LATER_HOOK) {
        snprintf(path, sizeof path, "h[%d].input", L + 1);
        if (!(rc = vene_model_find_site(model, path, &site, &layer, &err))) rc = vene_run_add_hook(rs, site, layer, noop_hook, NULL, &err);
    }
    if (!rc && how == GRAD) rc = vene_run_set_grad(rs, VENE_GRAD_ACTIVATIONS, &err);
    CHECK_MSG(rc == VENE_OK, "setting up: %s", err.msg);
    static const int bad[B] = {3, S, 1};
    if (tail) vene_run_set_tail(rs, L, how == BAD_FIRST ? bad : tail);
    if (!rc) rc = vene_forward(rs, &in, &err);
    *tail_runs = rs->tail_runs;
    vene_run_free(rs);
    return rc;
}

static void check_run_states(int L) {
    static const int first[B] = {6, 2, 0};
    const size_t n = (size_t)B * S * D;
    capture full = {calloc(n, sizeof(float)), 0}, part = {calloc(n, sizeof(float)), 0};
    int runs = -1;
    CHECK(run(L, NULL, PLAIN, &full, &runs) == VENE_OK && full.fired == 1 && runs == 0);
    CHECK_MSG(run(L, first, PLAIN, &part, &runs) == VENE_STOP && part.fired == 1 && runs == 1,
              "layer %d: a declared tail stops after the layer", L);
    int same = 1;
    for (int b = 0; b < B; b++)
        same &= !memcmp(part.buf + ((size_t)b * S + first[b]) * D, full.buf + ((size_t)b * S + first[b]) * D,
                        sizeof(float) * (size_t)(S - first[b]) * D);
    CHECK_MSG(same, "layer %d: the kept rows differ from the full forward's", L);
    static const char *const why[] = {"", "another hook in that layer", "a hook past it", "gradients", "a first row past the sequence"};
    for (int how = EXTRA_HOOK; how <= BAD_FIRST; how++) {
        if (how == LATER_HOOK && L == NL - 1) continue;
        memset(part.buf, 0, n * sizeof(float));
        part.fired = 0;
        int rc = run(L, first, how, &part, &runs);
        CHECK_MSG(rc == VENE_OK && runs == 0 && part.fired == 1 && !memcmp(part.buf, full.buf, n * sizeof(float)),
                  "layer %d, %s: the tail must be declined (rc %d, tail runs %d)", L, why[how], rc, runs);
    }
    free(full.buf), free(part.buf);
}

#define LOWRANK(L, COMP) \
    "{\"layer\":" #L ",\"component\":\"" COMP "\",\"unit\":\"pos\",\"max_number_of_units\":1," \
    "\"low_rank_dimension\":2,\"intervention_type\":\"LowRankRotatedSpaceIntervention\"}"
#define GROUPED(L) \
    "{\"layer\":" #L ",\"component\":\"block_output\",\"unit\":\"pos\",\"max_number_of_units\":1," \
    "\"group_key\":0,\"intervention_type\":\"VanillaIntervention\"}"
#define AT_ONE "[[[5], [2], [6]]], [[[4], [2], [6]]]"
#define AT_TWO "[[[5], [2], [6]], [[3], [1], [6]]], [[[4], [2], [6]], [[6], [0], [5]]]"

typedef struct engine_case {
    const char *name, *reprs, *where;
    int tail; /* source passes expected to take the tail (one per intervention group) */
} engine_case;

static const engine_case engine_cases[] = {
    {"block_output, layer 1", "[" LOWRANK(1, "block_output") "]", "{\"sources->base\": [" AT_ONE "]}", 1},
    {"block_output, last layer", "[" LOWRANK(3, "block_output") "]", "{\"sources->base\": [" AT_ONE "]}", 1},
    {"layers 1 and 3 (a group each: two tails)", "[" LOWRANK(1, "block_output") "," LOWRANK(3, "block_output") "]",
     "{\"sources->base\": [" AT_TWO "]}", 2},
    {"layers 1 and 3 in one group (one tail, at 3)", "[" GROUPED(1) "," GROUPED(3) "]",
     "{\"sources->base\": [" AT_TWO "]}", 1},
    {"mlp_output (declined)", "[" LOWRANK(1, "mlp_output") "]", "{\"sources->base\": [" AT_ONE "]}", 0},
};

/* Intervened logits of one interchange call (B x S x V, caller frees). */
static float *intervene(const engine_case *c, int mode, int *tail_runs, size_t *n) {
    char cfg[1024];
    snprintf(cfg, sizeof cfg, "{\"representations\":%s}", c->reprs);
    int32_t base_ids[B * S], src_ids[B * S];
    uint8_t mask[B * S];
    fill_ids(base_ids, mask);
    for (int i = 0; i < B * S; i++) src_ids[i] = (base_ids[i] * 31 + 7) % 900;
    vene_batch base = {B, S, base_ids, NULL, NULL, NULL}, src = {B, S, src_ids, NULL, NULL, NULL};
    const vene_batch *srcs[1] = {&src};
    vene_call call = {.base = &base, .sources = srcs, .n_sources = 1, .unit_locations = c->where};
    vene_error err = {0};
    vene_intervenable *iv = NULL;
    int rc = vene_intervenable_new(model, cfg, &iv, &err);
    if (!rc && mode != VENE_GRAD_NONE) rc = vene_intervenable_set_grad(iv, mode, &err);
    if (!rc) rc = vene_intervenable_forward(iv, &call, &err);
    CHECK_MSG(rc == VENE_OK, "%s (grad %d): %s", c->name, mode, err.msg);
    float *out = NULL;
    const vene_tensor *lg = rc ? NULL : vene_intervenable_logits(iv, 1);
    if (lg && (out = malloc(sizeof(float) * (size_t)vene_tensor_numel(lg)))) {
        *n = (size_t)vene_tensor_numel(lg);
        memcpy(out, lg->data, sizeof(float) * *n);
    }
    *tail_runs = iv ? iv->rs->tail_runs : -1;
    vene_intervenable_free(iv);
    return out;
}

static void check_engine(const engine_case *c) {
    int r_none = -1, r_act = -1, r_model = -1;
    size_t n1 = 0, n2 = 0, n3 = 0;
    float *none = intervene(c, VENE_GRAD_NONE, &r_none, &n1), *act = intervene(c, VENE_GRAD_ACTIVATIONS, &r_act, &n2);
    float *whole = intervene(c, VENE_GRAD_MODEL, &r_model, &n3);
    CHECK_MSG(r_none == c->tail && r_act == c->tail && r_model == 0, "%s: tail runs %d / %d / %d (expected %d / %d / 0)",
              c->name, r_none, r_act, r_model, c->tail, c->tail);
    CHECK_MSG(none && act && whole && n1 == n3 && n2 == n3 && !memcmp(none, whole, n1 * sizeof(float)) &&
                  !memcmp(act, whole, n1 * sizeof(float)),
              "%s: intervened logits differ from those of a whole source pass", c->name);
    free(none), free(act), free(whole);
}

int main(void) {
    vene_error err = {0};
    if (vene_model_load(MODEL_DIR, NULL, &model, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    vene_model_info info;
    vene_model_get_info(model, &info);
    D = info.d_model, NL = info.n_layer;
    check_run_states(0);
    check_run_states(NL - 1);
    for (size_t i = 0; i < sizeof engine_cases / sizeof *engine_cases; i++) check_engine(&engine_cases[i]);
    vene_model_free(model);
    TEST_MAIN_END();
}
