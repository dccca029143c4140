/* Whole-model backwards of the LLaMA family, GPT-NeoX and pyvene's GRU against central
 * finite differences, on every fixture model of those families. The loss is
 * L = sum(R1 * logits) + sum(R2 * last_hidden) for fixed random R1, R2 (zero at the
 * positions of left padding: a padding query that sees only padding keys has constant
 * scores, which autograd, and vene like it, still differentiates; the PyTorch fixtures
 * of test_grad_family_ref.c cover those rows). Per model:
 *  - weights: sampled entries (the largest gradient and random ones) of every weight
 *    tensor, perturbed in place (vene_model_set_trainable);
 *  - sites: backward hooks on every site of every layer fire in exact reverse order of
 *    the forward hooks with the same where->call, and what each sees is the derivative
 *    of L with respect to the tensor as its forward hook saw it (perturbed by a forward
 *    hook at that call);
 *  - in-place edits: forward hooks that scale a tensor at sites read by several kernels,
 *    with backward hooks that scale the gradient alike (the edit's own backward), give
 *    weight gradients that still match finite differences. */
#include <stdint.h>

#include "models/model.h"
#include "test.h"

static vene_error err;
static uint64_t st = 0x2545F4914F6CDD1DULL;
static float frand(void) {
    st ^= st << 13, st ^= st >> 7, st ^= st << 17;
    return (float)((st >> 11) * (1.0 / 9007199254740992.0)) * 2.0f - 1.0f;
}

typedef struct fcase {
    const char *dir;
    int B, S;
    int pad;             /* 1: row 1 left-padded by 3 (HF generate's positions); 2: right-padded by 2 */
    int embeds;          /* give inputs_embeds (GRU without embeddings) */
    const char *edits[3]; /* sites scaled in place by the in-place edit check */
} fcase;

/* ---------------------------------------------------------------- inputs and loss */

typedef struct setup {
    vene_model *m;
    vene_batch b;
    int32_t *ids, *pos;
    uint8_t *mask;
    float *emb, *R1, *R2; /* R1 NULL for bare models */
    int64_t n1, n2;
} setup;

static void setup_free(setup *s) {
    free(s->ids), free(s->pos), free(s->mask), free(s->emb), free(s->R1), free(s->R2);
    vene_model_free(s->m);
}

static int setup_make(setup *s, const fcase *c) {
    memset(s, 0, sizeof *s);
    if (vene_model_load(c->dir, NULL, &s->m, &err) != VENE_OK || vene_model_set_trainable(s->m, &err) != VENE_OK) {
        CHECK_MSG(0, "%s: %s", c->dir, err.msg);
        return 0;
    }
    const vene_model *m = s->m;
    const int B = c->B, S = c->S, T = B * S;
    s->ids = malloc(sizeof(int32_t) * T), s->pos = malloc(sizeof(int32_t) * T), s->mask = malloc((size_t)T);
    for (int i = 0; i < T; i++) {
        s->ids[i] = 1 + (int32_t)((frand() + 1.0f) * 0.5f * (float)(m->vocab_size - 2));
        s->mask[i] = 1;
        s->pos[i] = i % S;
    }
    if (c->pad == 1)
        for (int j = 0; j < S; j++) {
            s->mask[S + j] = j >= 3;
            s->pos[S + j] = j >= 3 ? j - 3 : 1;
            if (j < 3) s->ids[S + j] = 0;
        }
    if (c->pad == 2) s->mask[2 * S - 1] = s->mask[2 * S - 2] = 0;
    s->b = (vene_batch){.batch = B, .seq = S, .attn_mask = c->pad ? s->mask : NULL};
    if (c->embeds) {
        s->emb = malloc(sizeof(float) * (size_t)T * m->d_model);
        for (int64_t i = 0; i < (int64_t)T * m->d_model; i++) s->emb[i] = frand();
        s->b.embeds = s->emb;
    } else {
        s->b.ids = s->ids;
        s->b.positions = s->pos;
    }
    vene_run *rs = NULL;
    int ok = vene_run_new(m, &rs, &err) == VENE_OK && vene_forward(rs, &s->b, &err) == VENE_OK;
    CHECK_MSG(ok, "%s: %s", c->dir, err.msg);
    if (ok) {
        const vene_tensor *lg = vene_run_logits(rs), *h = vene_run_last_hidden(rs);
        s->n2 = vene_tensor_numel(h);
        s->R2 = malloc(sizeof(float) * (size_t)s->n2);
        for (int64_t i = 0; i < s->n2; i++) s->R2[i] = frand();
        if (lg) {
            s->n1 = vene_tensor_numel(lg);
            s->R1 = malloc(sizeof(float) * (size_t)s->n1);
            for (int64_t i = 0; i < s->n1; i++) s->R1[i] = frand();
        }
        if (c->pad == 1) { /* no loss at the left padding */
            int64_t V = s->n1 / T, D = s->n2 / T;
            for (int j = 0; j < 3; j++) {
                if (s->R1) memset(s->R1 + (int64_t)(S + j) * V, 0, sizeof(float) * (size_t)V);
                memset(s->R2 + (int64_t)(S + j) * D, 0, sizeof(float) * (size_t)D);
            }
        }
    }
    vene_run_free(rs);
    return ok;
}

static double loss_of(vene_run *rs, const setup *s) {
    if (vene_forward(rs, &s->b, &err) != VENE_OK) {
        fprintf(stderr, "forward: %s\n", err.msg);
        return NAN;
    }
    const vene_tensor *lg = vene_run_logits(rs), *h = vene_run_last_hidden(rs);
    double l = 0;
    for (int64_t i = 0; s->R1 && i < s->n1; i++) l += (double)s->R1[i] * lg->data[i];
    for (int64_t i = 0; i < s->n2; i++) l += (double)s->R2[i] * h->data[i];
    return l;
}

static int backward(vene_run *rs, const setup *s) {
    const vene_tensor *lg = vene_run_logits(rs), *h = vene_run_last_hidden(rs);
    vene_tensor d1 = lg ? *lg : (vene_tensor){0}, d2 = *h;
    d1.data = s->R1;
    d2.data = s->R2;
    int rc = vene_backward(rs, s->R1 ? &d1 : NULL, &d2, &err);
    CHECK_MSG(rc == VENE_OK, "backward: %s", err.msg);
    return rc;
}

/* ---------------------------------------------------------------- hooks */

typedef struct rec {
    int site, layer, call;
    vene_tensor g; /* backward: a copy of the gradient */
} rec;

typedef struct recs {
    rec *r;
    int n, cap, copy;
} recs;

static int record_hook(void *user, const vene_hook_call *w, vene_tensor *t, vene_error *e) {
    (void)e;
    recs *R = user;
    if (R->n == R->cap) {
        R->cap = R->cap ? 2 * R->cap : 256;
        R->r = realloc(R->r, sizeof(rec) * (size_t)R->cap);
    }
    rec *x = &R->r[R->n++];
    *x = (rec){w->site, w->layer, w->call, {0}};
    if (R->copy) {
        x->g = *t;
        x->g.data = malloc(sizeof(float) * (size_t)vene_tensor_numel(t));
        memcpy(x->g.data, t->data, sizeof(float) * (size_t)vene_tensor_numel(t));
    }
    return VENE_OK;
}

static void recs_free(recs *R) {
    for (int i = 0; i < R->n; i++) free(R->r[i].g.data);
    free(R->r);
}

/* Register fn on every site of every layer (forward or backward hooks). */
static void hook_all(vene_run *rs, const vene_model *m, int back, vene_hook_fn fn, void *user) {
    for (int s = 0; s < vene_model_site_count(m); s++) {
        vene_site_info si;
        vene_model_site(m, s, &si);
        for (int l = si.layered ? 0 : -1; l < (si.layered ? m->n_layer : 0); l++) {
            int rc = back ? vene_run_add_backward_hook(rs, s, l, fn, user, &err) : vene_run_add_hook(rs, s, l, fn, user, &err);
            CHECK_MSG(rc == VENE_OK, "%s", err.msg);
        }
    }
}

typedef struct poke {
    int call;
    int64_t idx;
    float h;
} poke;

static int poke_hook(void *user, const vene_hook_call *w, vene_tensor *t, vene_error *e) {
    (void)e;
    const poke *p = user;
    if (w->call == p->call) t->data[p->idx] += p->h;
    return VENE_OK;
}

static int scale_hook(void *user, const vene_hook_call *w, vene_tensor *t, vene_error *e) {
    (void)user, (void)w, (void)e;
    for (int64_t i = 0; i < vene_tensor_numel(t); i++) t->data[i] *= 1.5f;
    return VENE_OK;
}

/* ---------------------------------------------------------------- checks */

static int64_t pick(const float *g, int64_t n, int largest) {
    int64_t i = (int64_t)(((frand() + 1.0f) / 2.0f) * (float)(n - 1));
    for (int64_t j = 0; largest && j < n; j++)
        if (fabs(g[j]) > fabs(g[i])) i = j;
    return i;
}

/* Sampled finite differences on every weight tensor; the worst error relative to the
 * tensor's largest gradient. */
static double check_weights(vene_run *rs, vene_run *fd, const setup *s, const char **worst_name) {
    const vene_model *m = s->m;
    CHECK(vene_run_set_grad(rs, VENE_GRAD_MODEL, &err) == VENE_OK);
    vene_run_zero_grad(rs);
    if (vene_forward(rs, &s->b, &err) != VENE_OK || backward(rs, s)) return INFINITY;
    double worst = 0;
    for (int k = 0; k < m->n_param_tensors; k++) {
        vene_param *p = &m->params[k];
        float *w = (float *)p->data;
        const float *g = rs->param_grads + p->offset;
        double gmax = 1e-2;
        for (int64_t i = 0; i < p->numel; i++) gmax = fmax(gmax, fabs(g[i]));
        for (int smp = 0; smp < 4; smp++) {
            int64_t i = pick(g, p->numel, smp == 0);
            const float h = 3e-3f, keep = w[i]; /* 1e-2 leaves 2% of curvature in the GRU's largest gradients */
            w[i] = keep + h;
            double lp = loss_of(fd, s);
            w[i] = keep - h;
            double lm = loss_of(fd, s);
            w[i] = keep;
            double e = fabs((lp - lm) / (2.0 * h) - g[i]) / gmax;
            if (!(e <= worst)) worst = e, *worst_name = p->name;
        }
    }
    return worst;
}

/* Reverse hook order, and every site's gradient against a perturbation at its call. */
static double check_sites(vene_run *rs, vene_run *fd, const setup *s, const char **worst_site) {
    const vene_model *m = s->m;
    recs fw = {0}, bw = {.copy = 1};
    CHECK(vene_run_set_grad(rs, VENE_GRAD_ACTIVATIONS, &err) == VENE_OK);
    hook_all(rs, m, 0, record_hook, &fw);
    hook_all(rs, m, 1, record_hook, &bw);
    double worst = INFINITY;
    if (vene_forward(rs, &s->b, &err) == VENE_OK && !backward(rs, s)) {
        int same = fw.n == bw.n && fw.n > 0;
        for (int i = 0; same && i < fw.n; i++) {
            const rec *a = &fw.r[i], *b = &bw.r[fw.n - 1 - i];
            same = a->site == b->site && a->layer == b->layer && a->call == b->call;
        }
        CHECK_MSG(same, "%s: %d forward and %d backward hook calls, not in exact reverse order", m->dir, fw.n, bw.n);
        worst = 0;
        for (int i = 0; i < bw.n; i++) {
            const rec *r = &bw.r[i];
            int64_t n = vene_tensor_numel(&r->g);
            double gmax = 1e-2;
            for (int64_t j = 0; j < n; j++) gmax = fmax(gmax, fabs(r->g.data[j]));
            for (int smp = 0; smp < 2; smp++) {
                poke p = {r->call, pick(r->g.data, n, smp == 0), 1e-2f};
                vene_run_clear_hooks(fd);
                vene_run_add_hook(fd, r->site, r->layer, poke_hook, &p, &err);
                double lp = loss_of(fd, s);
                p.h = -p.h;
                double lm = loss_of(fd, s);
                double e = fabs((lp - lm) / 2e-2 - r->g.data[p.idx]) / gmax;
                if (!(e <= worst)) worst = e, *worst_site = m->arch->sites[r->site].path;
            }
        }
        vene_run_clear_hooks(fd);
    }
    vene_run_clear_hooks(rs);
    vene_run_clear_backward_hooks(rs);
    recs_free(&fw);
    recs_free(&bw);
    return worst;
}

/* Weight gradients under in-place edits: each site scaled by 1.5 forward and backward. */
static double check_edits(vene_run *rs, vene_run *fd, const setup *s, const fcase *c, const char **worst_name) {
    for (int i = 0; i < 3 && c->edits[i]; i++) {
        int site, layer;
        int rc = vene_model_find_site(s->m, c->edits[i], &site, &layer, &err);
        CHECK_MSG(rc == VENE_OK, "%s", err.msg);
        if (rc) return INFINITY;
        vene_run_add_hook(rs, site, layer, scale_hook, NULL, &err);
        vene_run_add_backward_hook(rs, site, layer, scale_hook, NULL, &err);
        vene_run_add_hook(fd, site, layer, scale_hook, NULL, &err);
    }
    double worst = check_weights(rs, fd, s, worst_name);
    vene_run_clear_hooks(rs);
    vene_run_clear_backward_hooks(rs);
    vene_run_clear_hooks(fd);
    return worst;
}

static void check_model(const fcase *c) {
    setup s;
    if (!setup_make(&s, c)) {
        setup_free(&s);
        return;
    }
    vene_run *rs = NULL, *fd = NULL;
    CHECK(vene_run_new(s.m, &rs, &err) == VENE_OK && vene_run_new(s.m, &fd, &err) == VENE_OK);
    const char *wn = "", *sn = "", *en = "";
    double ew = check_weights(rs, fd, &s, &wn);
    double es = check_sites(rs, fd, &s, &sn);
    double ee = c->edits[0] ? check_edits(rs, fd, &s, c, &en) : 0;
    const double tol = 1e-2;
    CHECK_MSG(ew < tol, "%s: weights: worst relative difference %.3g (%s)", c->dir, ew, wn);
    CHECK_MSG(es < tol, "%s: sites: worst relative difference %.3g (%s)", c->dir, es, sn);
    CHECK_MSG(ee < tol, "%s: in-place edits: worst relative difference %.3g (%s)", c->dir, ee, en);
    printf("%-36s %3d weight tensors %.1e (%s); sites %.1e (%s); edited %.1e\n", c->dir, s.m->n_param_tensors, ew, wn,
           es, sn, ee);
    vene_run_free(rs);
    vene_run_free(fd);
    setup_free(&s);
}

int main(int argc, char **argv) {
    static const fcase cases[] = {
        {"fixtures/models/mistral-tiny", 2, 10, 1, 0,
         {"layers[0].self_attn.v_proj.input", "layers[0].self_attn.k_proj.input", "layers[1].mlp.up_proj.input"}},
        {"fixtures/models/qwen2-tiny", 2, 9, 1, 0, {"layers[1].self_attn.k_proj.input"}},
        {"fixtures/models/gemma-tiny", 2, 9, 1, 0, {"layers[0].mlp.up_proj.input", "embed_tokens.output"}},
        {"fixtures/models/llama3-tiny", 2, 10, 1, 0, {0}},
        {"fixtures/models/llama-dynamic", 2, 12, 0, 0, {0}},
        {"golden/models/llama-tiny", 2, 7, 1, 0, {0}},
        {"fixtures/models/pythia-tiny", 2, 10, 1, 0,
         {"layers[0].post_attention_layernorm.input", "layers[1].attention.attention_dropout.output"}},
        {"fixtures/models/neox-seq-tiny", 2, 9, 1, 0, {"layers[0].attention.attention_dropout.input"}},
        {"golden/models/gru-classifier", 2, 5, 2, 1, {"cells[0].h2h.input", "cells[1].reset_act.output"}},
        {"fixtures/gru/gru-emb3", 2, 6, 0, 0, {"cells[1].h2h.input", "cells[0].new_act.input"}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (argc < 2 || strstr(cases[i].dir, argv[1])) check_model(&cases[i]);
    TEST_MAIN_END();
}
