/* Training end to end: gradients through the whole engine (gather, intervention,
 * scatter, model backward) against finite differences for DAS on pyvene's MLP and on
 * GPT-2 and for IIT's model gradients; Adam against a hand computation; `vene train`
 * learning a task and being deterministic for a seed. */
#include "test.h"
#include "test_tmp.h"

#include <stdint.h>

#include "engine/engine.h"

static vene_error err;
static uint64_t st = 0x9E3779B97F4A7C15ULL;
static float frand(void) {
    st ^= st << 13, st ^= st >> 7, st ^= st << 17;
    return (float)((st >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

typedef struct {
    vene_intervenable *iv;
    const vene_call *call;
    const int32_t *labels;
} task;

static double task_loss(task *t, int backward) {
    vene_iv *v = t->iv->slots[0].iv;
    if (v->original) {
        int r = v->type == VENE_IV_LOWRANK_ROTATED ? v->low_rank : v->embed_dim;
        vene_orthogonal_weight(v->original, v->base, v->embed_dim, r, v->W, &err);
    }
    if (vene_intervenable_forward(t->iv, t->call, &err)) {
        fprintf(stderr, "forward: %s\n", err.msg);
        return NAN;
    }
    const vene_tensor *lg = vene_intervenable_logits(t->iv, 1);
    vene_tensor d = *lg;
    d.data = calloc((size_t)vene_tensor_numel(lg), sizeof(float));
    float l = 0;
    CHECK(vene_loss_cross_entropy(lg, NULL, -1, t->labels, &d, &l, NULL, &err) == VENE_OK);
    if (backward) CHECK_MSG(vene_intervenable_backward(t->iv, &d, NULL, &err) == VENE_OK, "%s", err.msg);
    free(d.data);
    return l;
}

/* FD over n entries of p (all when n is small) against the analytic gradient g. */
static void fd(const char *what, task *t, float *p, const float *g, int64_t n, double h, double tol) {
    double worst = 0, gmax = 1e-3;
    for (int64_t i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
    for (int64_t i = 0; i < n; i++) {
        float keep = p[i];
        p[i] = keep + (float)h;
        double lp = task_loss(t, 0);
        p[i] = keep - (float)h;
        double lm = task_loss(t, 0);
        p[i] = keep;
        worst = fmax(worst, fabs((lp - lm) / (2 * h) - g[i]) / gmax);
    }
    task_loss(t, 0);
    CHECK_MSG(worst < tol, "%s: worst relative difference %.3g against finite differences", what, worst);
}

static void das_case(const char *model, const char *cfg, const vene_batch *base, const vene_batch *src,
                     const char *ul, const char *ss, const int32_t *labels, int model_grads) {
    vene_model *m = NULL;
    vene_intervenable *iv = NULL;
    CHECK(vene_model_load(model, NULL, &m, &err) == VENE_OK);
    if (model_grads) CHECK(vene_model_set_trainable(m, &err) == VENE_OK);
    CHECK_MSG(vene_intervenable_new(m, cfg, &iv, &err) == VENE_OK, "%s", err.msg);
    CHECK(vene_intervenable_set_grad(iv, model_grads ? VENE_GRAD_MODEL : VENE_GRAD_ACTIVATIONS, &err) == VENE_OK);
    const vene_batch *srcs[1] = {src};
    vene_call call = {.base = base, .sources = srcs, .n_sources = 1, .unit_locations = ul, .subspaces = ss};
    task t = {iv, &call, labels};
    task_loss(&t, 0); /* initialise the parameters */
    vene_iv *v = iv->slots[0].iv;
    if (v->original) /* move away from the identity so the check is not degenerate */
        for (int i = 0; i < v->embed_dim * (v->type == VENE_IV_LOWRANK_ROTATED ? v->low_rank : v->embed_dim); i++)
            v->original[i] += 0.2f * frand();
    vene_intervenable_zero_grad(iv);
    task_loss(&t, 1);
    vene_tensor g;
    char what[160];
    if (v->original) {
        CHECK(vene_intervenable_grad(iv, "0.rotate_layer.parametrizations.weight.original", &g, &err) == VENE_OK);
        float *gc = malloc(sizeof(float) * (size_t)vene_tensor_numel(&g));
        memcpy(gc, g.data, sizeof(float) * (size_t)vene_tensor_numel(&g));
        snprintf(what, sizeof what, "%s: d(original)", model);
        fd(what, &t, v->original, gc, vene_tensor_numel(&g), 1e-2, 2e-2);
        free(gc);
    }
    if (model_grads) {
        /* a weight below the intervention: its gradient comes through both passes */
        const vene_param *p = &m->params[2];
        CHECK(vene_intervenable_grad(iv, p->name, &g, &err) == VENE_OK);
        int64_t n = p->numel < 24 ? p->numel : 24;
        float *gc = malloc(sizeof(float) * (size_t)n);
        memcpy(gc, g.data, sizeof(float) * (size_t)n);
        snprintf(what, sizeof what, "%s: IIT d(%s)", model, p->name);
        fd(what, &t, (float *)p->data, gc, n, 1e-2, 3e-2);
        free(gc);
    }
    vene_intervenable_free(iv);
    vene_model_free(m);
}

static void test_engine_gradients(void) {
    float be[3 * 16], se[3 * 16];
    for (int i = 0; i < 48; i++) be[i] = frand(), se[i] = frand();
    vene_batch b = {.batch = 3, .seq = 1, .embeds = be}, s = {.batch = 3, .seq = 1, .embeds = se};
    int32_t labels[3] = {0, 2, 1};
    das_case("golden/models/mlp-classifier",
             "{\"representations\": [{\"layer\": 0, \"component\": \"block_output\", \"unit\": \"pos\", "
             "\"intervention_type\": \"RotatedSpaceIntervention\"}]}",
             &b, &s, "{\"sources->base\": 0}", "[[0, 1, 2, 3, 4, 5, 6, 7]]", labels, 0);
    int32_t ids[10] = {464, 3139, 286, 8602, 318, 464, 3139, 286, 8031, 318};
    int32_t sids[10] = {464, 3139, 286, 8031, 318, 464, 3139, 286, 8602, 318};
    vene_batch gb = {.batch = 2, .seq = 5, .ids = ids}, gs = {.batch = 2, .seq = 5, .ids = sids};
    int32_t gl[2] = {10598, 7};
    das_case("fixtures/models/gpt2-tiny",
             "{\"representations\": [{\"layer\": 1, \"component\": \"block_output\", \"unit\": \"pos\", "
             "\"low_rank_dimension\": 2, \"intervention_type\": \"LowRankRotatedSpaceIntervention\"}]}",
             &gb, &gs, "{\"sources->base\": 3}", NULL, gl, 0);
    das_case("fixtures/models/gpt2-tiny",
             "{\"representations\": [{\"layer\": 1, \"component\": \"block_output\", \"unit\": \"pos\", "
             "\"intervention_type\": \"VanillaIntervention\"}]}",
             &gb, &gs, "{\"sources->base\": 3}", NULL, gl, 1);
}

/* One Adam step by hand: m = 0.1 g, v = 0.001 g^2, p -= lr * (m / 0.1) / (sqrt(v / 0.001) + eps). */
static void test_adam(void) {
    vene_model *m = NULL;
    vene_intervenable *iv = NULL;
    CHECK(vene_model_load("golden/models/mlp-classifier", NULL, &m, &err) == VENE_OK);
    CHECK(vene_intervenable_new(m, "{\"representations\": [{\"layer\": 0, \"component\": \"block_output\", "
                                   "\"intervention_type\": \"SigmoidMaskIntervention\"}]}", &iv, &err) == VENE_OK);
    CHECK(vene_intervenable_set_grad(iv, VENE_GRAD_ACTIVATIONS, &err) == VENE_OK);
    vene_iv *v = iv->slots[0].iv;
    v->masks = calloc(16, sizeof(float));
    v->masks_len = 16;
    CHECK(vene_iv_grad_alloc(v, &err) == VENE_OK);
    for (int i = 0; i < 16; i++) v->grad_masks[i] = (float)(i - 8) * 0.5f;
    vene_optim_config c;
    vene_optim_config_default(&c);
    c.lr = 0.1f;
    vene_optimizer *o = NULL;
    CHECK(vene_optimizer_new(iv, NULL, &c, &o, &err) == VENE_OK);
    CHECK(vene_optimizer_param_count(o) == 16);
    float gn = 0;
    CHECK(vene_optimizer_step(o, &gn, &err) == VENE_OK);
    double worst = 0;
    for (int i = 0; i < 16; i++) {
        double g = (i - 8) * 0.5, expect = g == 0 ? 0 : -0.1 * g / (fabs(g) + 1e-8);
        worst = fmax(worst, fabs(v->masks[i] - expect));
    }
    CHECK_MSG(worst < 1e-6, "Adam's first step moves each entry by lr * sign(g): worst %.3g", worst);
    CHECK(fabsf(gn - 9.2736f) < 1e-3f); /* 0.5 sqrt(sum k^2, k = -8..7) = 0.5 sqrt(344) */
    CHECK(v->grad_masks[3] == 0.0f);     /* zeroed after the step */
    vene_optimizer_free(o);
    c.lr = -1;
    CHECK(vene_optimizer_new(iv, NULL, &c, &o, &err) == VENE_ERR_ARG && strstr(err.msg, "lr"));
    vene_intervenable_free(iv);
    vene_model_free(m);
}

/* `vene train` on a toy task: make class 1 come out of the MLP by swapping one rotated
 * coordinate from a source that carries it; IIA rises, and two runs agree to the bit. */
static void test_train_run(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vene-test-train-XXXXXX");
    CHECK(mkdtemp(tmpdir) != NULL);
    const char *dir = tmpdir;
    char path[512];
    snprintf(path, sizeof path, "%s", tpath("data.jsonl"));
    FILE *f = fopen(path, "w");
    for (int i = 0; i < 300; i++) {
        fprintf(f, "{\"base\": {\"embeds\": [[");
        for (int k = 0; k < 16; k++) fprintf(f, "%s%.4f", k ? ", " : "", frand());
        fprintf(f, "]]}, \"sources\": [{\"embeds\": [[");
        for (int k = 0; k < 16; k++) fprintf(f, "%s%.4f", k ? ", " : "", frand() + (k < 4 ? 3.0f : 0.0f));
        fprintf(f, "]]}], \"label\": %d}\n", i % 3);
    }
    fclose(f);
    char cfg[512];
    snprintf(cfg, sizeof cfg, "%s/train.json", dir);
    f = fopen(cfg, "w");
    fprintf(f, "{\"model\": \"%s/golden/models/mlp-classifier\", \"config\": {\"representations\": [{\"layer\": 1, "
               "\"component\": \"block_output\", \"low_rank_dimension\": 4, \"intervention_type\": "
               "\"LowRankRotatedSpaceIntervention\"}]}, \"train\": \"data.jsonl\", \"eval_fraction\": 0.2, "
               "\"unit_locations\": {\"sources->base\": 0}, \"batch_size\": 16, \"epochs\": 3, \"seed\": 5, "
               "\"optimizer\": {\"type\": \"adamw\", \"lr\": 0.01, \"weight_decay\": 0.01, \"warmup\": 0.1, "
               "\"schedule\": \"linear\"}, \"save\": \"out\"}\n", getcwd(path, sizeof path));
    fclose(f);
    vene_train_options o = {.quiet = 1, .seed = -1};
    vene_train_result r1, r2;
    CHECK_MSG(vene_train_run(cfg, &o, &r1, &err) == VENE_OK, "%s", err.msg);
    CHECK_MSG(vene_train_run(cfg, &o, &r2, &err) == VENE_OK, "%s", err.msg);
    CHECK(r1.steps == 3 * 15 && r1.params == 64);
    CHECK_MSG(r1.iia == r2.iia && r1.train_loss == r2.train_loss, "deterministic: %.17g vs %.17g", r1.train_loss,
              r2.train_loss);
    CHECK(r1.iia_before >= 0 && r1.iia_before <= 1);
    snprintf(path, sizeof path, "%s/out/config.json", dir);
    FILE *saved = fopen(path, "r");
    CHECK(saved != NULL);
    if (saved) fclose(saved);
    /* Boundless DAS with pyvene's tutorial recipe: boundary lr 1e-2, boundary loss,
     * temperature linspace(50 -> 0.1) set after each step: the saved temperature is the
     * schedule's end and the boundary moved */
    f = fopen(cfg, "w");
    fprintf(f, "{\"model\": \"%s/golden/models/mlp-classifier\", \"config\": {\"representations\": [{\"layer\": 1, "
               "\"component\": \"block_output\", \"intervention_type\": \"BoundlessRotatedSpaceIntervention\"}]}, "
               "\"train\": \"data.jsonl\", \"unit_locations\": {\"sources->base\": 0}, \"batch_size\": 32, "
               "\"epochs\": 2, \"optimizer\": {\"lr\": 0.001, \"boundary_lr\": 0.01, \"warmup\": 0.1, "
               "\"schedule\": \"linear\"}, \"temperature\": {\"start\": 50, \"end\": 0.1}, \"boundary_loss\": 1.0, "
               "\"save\": \"bdas\"}\n", getcwd(path, sizeof path));
    fclose(f);
    CHECK_MSG(vene_train_run(cfg, &o, &r1, &err) == VENE_OK, "%s", err.msg);
    CHECK(r1.params == 16 * 16 + 1); /* the rotation and the boundary; the temperature is fixed */
    vene_model *bm = NULL;
    vene_intervenable *bi = NULL;
    CHECK(vene_model_load("golden/models/mlp-classifier", NULL, &bm, &err) == VENE_OK);
    CHECK_MSG(vene_intervenable_load(bm, tpath("bdas"), &bi, &err) == VENE_OK, "%s", err.msg);
    if (bi) {
        CHECK_MSG(fabsf(bi->slots[0].iv->temperature - 0.1f) < 1e-6f, "temperature %g", bi->slots[0].iv->temperature);
        CHECK_MSG(bi->slots[0].iv->boundary != 0.5f, "boundary %g", bi->slots[0].iv->boundary);
    }
    vene_intervenable_free(bi);
    vene_model_free(bm);
    /* bad configs name the key */
    f = fopen(cfg, "w");
    fprintf(f, "{\"model\": \"x\", \"trian\": \"data.jsonl\"}");
    fclose(f);
    CHECK(vene_train_run(cfg, &o, &r1, &err) == VENE_ERR_ARG && strstr(err.msg, "trian"));
    rm_tree(dir);
}

/* Logits at one position per example: the same rows, and the same DAS gradient. */
static void test_logit_positions(void) {
    vene_model *m = NULL;
    vene_intervenable *iv = NULL;
    CHECK(vene_model_load("fixtures/models/gpt2-tiny", NULL, &m, &err) == VENE_OK);
    CHECK(vene_intervenable_new(m, "{\"representations\": [{\"layer\": 1, \"component\": \"block_output\", "
                                   "\"low_rank_dimension\": 1, \"intervention_type\": \"LowRankRotatedSpaceIntervention\"}]}",
                                &iv, &err) == VENE_OK);
    CHECK(vene_intervenable_set_grad(iv, VENE_GRAD_ACTIVATIONS, &err) == VENE_OK);
    int32_t ids[10] = {464, 3139, 286, 8602, 318, 464, 3139, 286, 8031, 318}, sids[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    vene_batch b = {.batch = 2, .seq = 5, .ids = ids}, s = {.batch = 2, .seq = 5, .ids = sids};
    const vene_batch *srcs[1] = {&s};
    int pos[2] = {-1, 2}, abs_pos[2] = {4, 2};
    int32_t labels[2] = {10598, 7};
    float *grads[2];
    vene_tensor rows[2];
    for (int k = 0; k < 2; k++) {
        vene_call call = {.base = &b, .sources = srcs, .n_sources = 1, .unit_locations = "{\"sources->base\": 1}",
                          .logit_positions = k ? pos : NULL};
        CHECK(vene_intervenable_forward(iv, &call, &err) == VENE_OK);
        const vene_tensor *lg = vene_intervenable_logits(iv, 1);
        CHECK(lg->shape[1] == (k ? 1 : 5));
        rows[k] = *lg;
        rows[k].data = malloc(sizeof(float) * (size_t)vene_tensor_numel(lg));
        memcpy(rows[k].data, lg->data, sizeof(float) * (size_t)vene_tensor_numel(lg));
        vene_tensor d = *lg;
        d.data = calloc((size_t)vene_tensor_numel(lg), sizeof(float));
        float l;
        CHECK(vene_loss_cross_entropy(lg, k ? NULL : abs_pos, 0, labels, &d, &l, NULL, &err) == VENE_OK);
        vene_intervenable_zero_grad(iv);
        CHECK(vene_intervenable_backward(iv, &d, NULL, &err) == VENE_OK);
        free(d.data);
        vene_tensor g;
        CHECK(vene_intervenable_grad(iv, "0.rotate_layer.weight", &g, &err) == VENE_OK);
        grads[k] = malloc(sizeof(float) * 64);
        memcpy(grads[k], g.data, sizeof(float) * 64);
    }
    int64_t V = rows[0].shape[2];
    double dr = 0, dg = 0;
    for (int e = 0; e < 2; e++)
        for (int64_t v = 0; v < V; v++)
            dr = fmax(dr, fabs(rows[0].data[((int64_t)e * 5 + abs_pos[e]) * V + v] - rows[1].data[(int64_t)e * V + v]));
    for (int i = 0; i < 64; i++) dg = fmax(dg, fabs(grads[0][i] - grads[1][i]));
    CHECK_MSG(dr < 1e-5 && dg < 1e-6, "logit positions: rows differ by %.3g, gradients by %.3g", dr, dg);
    for (int k = 0; k < 2; k++) free(rows[k].data), free(grads[k]);
    vene_intervenable_free(iv);
    vene_model_free(m);
}

int main(void) {
    test_logit_positions();
    test_engine_gradients();
    test_adam();
    test_train_run();
    TEST_MAIN_END();
}
