/* Whole-model backwards against central finite differences: L = sum(R * logits) for a
 * fixed random R; the analytic weight gradients (VENE_GRAD_MODEL) are compared with
 * (L(w + h) - L(w - h)) / 2h on sampled entries of every weight tensor. The weights are
 * perturbed in place, which vene_model_set_trainable allows (private pages). Also: the
 * activation-only mode gives the same site gradients, accumulation and zeroing, errors. */
#include "test.h"

#include <stdint.h>

#include "models/model.h"

static vene_error err;
static uint64_t st = 0x2545F4914F6CDD1DULL;
static float frand(void) {
    st ^= st << 13, st ^= st >> 7, st ^= st << 17;
    return (float)((st >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

static double loss_of(vene_run *rs, const vene_batch *b, const float *R) {
    if (vene_forward(rs, b, &err) != VENE_OK) {
        fprintf(stderr, "forward: %s\n", err.msg);
        return NAN;
    }
    const vene_tensor *lg = vene_run_logits(rs);
    double l = 0;
    for (int64_t i = 0; i < vene_tensor_numel(lg); i++) l += (double)R[i] * lg->data[i];
    return l;
}

/* Sampled finite differences for every weight tensor of the model. */
static void check_model(const char *dir, const vene_batch *b, double h, double tol) {
    vene_model *m = NULL;
    vene_run *rs = NULL;
    CHECK(vene_model_load(dir, NULL, &m, &err) == VENE_OK);
    if (!m) return;
    CHECK(vene_model_set_trainable(m, &err) == VENE_OK);
    CHECK(vene_run_new(m, &rs, &err) == VENE_OK);
    CHECK(vene_run_set_grad(rs, VENE_GRAD_MODEL, &err) == VENE_OK);
    CHECK(vene_forward(rs, b, &err) == VENE_OK);
    const vene_tensor *lg = vene_run_logits(rs);
    int64_t nl = vene_tensor_numel(lg);
    float *R = malloc(sizeof(float) * (size_t)nl);
    for (int64_t i = 0; i < nl; i++) R[i] = frand();
    vene_tensor dl = *lg;
    dl.data = R;
    CHECK_MSG(vene_backward(rs, &dl, NULL, &err) == VENE_OK, "%s", err.msg);
    float *grads = malloc(sizeof(float) * (size_t)m->n_params);
    memcpy(grads, rs->param_grads, sizeof(float) * (size_t)m->n_params);
    double worst = 0;
    const char *worst_name = "";
    for (int k = 0; k < m->n_param_tensors; k++) {
        vene_param *p = &m->params[k];
        float *w = (float *)p->data;
        const float *g = grads + p->offset;
        double gmax = 1e-2;
        for (int64_t i = 0; i < p->numel; i++) gmax = fabs(g[i]) > gmax ? fabs(g[i]) : gmax;
        for (int s = 0; s < 6; s++) {
            /* the largest-gradient entry and random ones */
            int64_t i = (int64_t)(((frand() + 1.0f) / 2.0f) * (float)(p->numel - 1));
            if (s == 0)
                for (int64_t j = 0; j < p->numel; j++)
                    if (fabs(g[j]) > fabs(g[i])) i = j;
            float keep = w[i];
            w[i] = keep + (float)h;
            double lp = loss_of(rs, b, R);
            w[i] = keep - (float)h;
            double lm = loss_of(rs, b, R);
            w[i] = keep;
            double e = fabs((lp - lm) / (2 * h) - g[i]) / gmax;
            if (e > worst) worst = e, worst_name = p->name;
        }
    }
    CHECK_MSG(worst < tol, "%s: worst relative difference %.3g (%s) against finite differences", dir, worst, worst_name);

    /* accumulation, zeroing */
    CHECK(vene_forward(rs, b, &err) == VENE_OK);
    CHECK(vene_backward(rs, &dl, NULL, &err) == VENE_OK);
    double d2 = 0, gall = 1e-6;
    for (int64_t i = 0; i < m->n_params; i++) {
        d2 = fmax(d2, fabs(rs->param_grads[i] - 2 * grads[i]));
        gall = fmax(gall, fabs(grads[i]));
    }
    CHECK_MSG(d2 / gall < 1e-5, "two backwards accumulate to twice the gradient (max diff %.3g of %.3g)", d2, gall);
    vene_run_zero_grad(rs);
    vene_tensor gv;
    CHECK(vene_run_param_grad(rs, m->params[0].name, &gv, &err) == VENE_OK && gv.data[0] == 0.0f);
    CHECK(vene_run_param_grad(rs, "no.such.weight", &gv, &err) == VENE_ERR_ARG && strstr(err.msg, "no.such.weight"));

    /* errors: wrong d_logits shape; backward without gradient mode */
    vene_tensor bad = dl;
    bad.shape[0] += 1;
    CHECK(vene_backward(rs, &bad, NULL, &err) == VENE_ERR_ARG && strstr(err.msg, "d_logits"));
    CHECK(vene_run_set_grad(rs, VENE_GRAD_NONE, &err) == VENE_OK);
    CHECK(vene_forward(rs, b, &err) == VENE_OK);
    CHECK(vene_backward(rs, &dl, NULL, &err) == VENE_ERR_STATE);
    CHECK(vene_run_set_grad(rs, 7, &err) == VENE_ERR_ARG);
    free(R);
    free(grads);
    vene_run_free(rs);
    vene_model_free(m);
}

int main(void) {
    /* pyvene's MLP classifier on inputs_embeds (3 examples, 1 position, 16 features) */
    float emb[3 * 16];
    for (int i = 0; i < 48; i++) emb[i] = frand();
    vene_batch mb = {.batch = 3, .seq = 1, .embeds = emb};
    check_model("golden/models/mlp-classifier", &mb, 1e-2, 2e-2);
    /* GPT-2 with left padding and explicit positions */
    int32_t ids[8] = {464, 3139, 286, 8602, 50, 464, 3139, 286};
    uint8_t mask[8] = {1, 1, 1, 1, 0, 1, 1, 1};
    int32_t pos[8] = {0, 1, 2, 3, 0, 0, 1, 2};
    vene_batch gb = {.batch = 2, .seq = 4, .ids = ids, .attn_mask = mask, .positions = pos};
    check_model("fixtures/models/gpt2-tiny", &gb, 1e-2, 3e-2);
    TEST_MAIN_END();
}
