/* `vene train CONFIG` (docs/training.md): DAS / Boundless DAS / mask interventions / IIT
 * on a JSONL dataset, or plain training of the model when the config has no
 * interventions. Per batch: forward with interventions, cross-entropy at a position
 * against the label (or a soft target), backward, optimizer step; after each epoch the
 * held-out split is scored by interchange intervention accuracy (IIA). Deterministic for
 * a seed at a fixed thread count. */
#include <cjson/cJSON.h>
#include <libgen.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "engine/engine.h"
#include "engine/loss.h"
#include "train/dataset.h"
#include "train/progress.h"


typedef struct trainer {
    cJSON *j;
    char dir[4096];
    vene_model *m;
    vene_tokenizer *tok;
    vene_intervenable *iv;   /* NULL: plain model training */
    vene_run *rs;            /* plain training's run state */
    vene_optimizer *opt;
    ds_set train, eval;
    int *train_idx, n_train, *eval_idx, n_eval;
    int batch, epochs, accum, position, model_grads;
    int lm;                  /* objective "lm": next-token cross-entropy at every position */
    float boundary_coef, mask_coef;
    char *def_ul, *def_ss;
    uint64_t seed;
} trainer;

static int num(const cJSON *o, const char *key, double dflt, double lo, double hi, double *out, vene_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return VENE_OK;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
        return vene_errorf(err, VENE_ERR_ARG, "\"%s\": expected a number in [%g, %g]", key, lo, hi);
    *out = v->valuedouble;
    return VENE_OK;
}

static const char *str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static void rel_path(const trainer *t, const char *p, char *out, size_t n) {
    if (p[0] == '/') snprintf(out, n, "%s", p);
    else snprintf(out, n, "%s/%s", t->dir, p);
}

/* ---------------------------------------------------------------- one step (public API) */

int vene_train_step(vene_intervenable *iv, const vene_call *call, vene_loss_fn fn, void *user, vene_optimizer *opt,
                    float *loss, vene_error *err) {
    if (!iv || !call || !fn) return vene_errorf(err, VENE_ERR_ARG, "vene_train_step: NULL intervenable, call or loss");
    int rc = vene_intervenable_forward(iv, call, err);
    if (rc) return rc;
    const vene_tensor *lg = vene_intervenable_logits(iv, 1), *hd = vene_intervenable_last_hidden(iv, 1);
    vene_tensor dl = {0}, dh = {0};
    if (lg) dl = *lg, dl.data = calloc((size_t)vene_tensor_numel(lg), sizeof(float));
    if (hd) dh = *hd, dh.data = calloc((size_t)vene_tensor_numel(hd), sizeof(float));
    float l = 0;
    if ((lg && !dl.data) || (hd && !dh.data)) rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    else rc = fn(user, lg, hd, lg ? &dl : NULL, hd ? &dh : NULL, &l, err);
    if (!rc) rc = vene_intervenable_backward(iv, lg ? &dl : NULL, hd ? &dh : NULL, err);
    if (!rc && opt) rc = vene_optimizer_step(opt, NULL, err);
    free(dl.data);
    free(dh.data);
    if (loss) *loss = l;
    return rc;
}

/* ---------------------------------------------------------------- loss */

typedef struct loss_ctx {
    const ds_batch *b;
    const int *pos;   /* loss position per example in the logits tensor */
    int correct;
    int tokens;       /* predictions scored (lm: B x (S - 1); otherwise B) */
} loss_ctx;

/* Cross-entropy at each example's position against its label, or against its soft target. */
static int batch_loss(void *user, const vene_tensor *logits, const vene_tensor *hidden, vene_tensor *d_logits,
                      vene_tensor *d_hidden, float *loss, vene_error *err) {
    (void)hidden, (void)d_hidden;
    loss_ctx *c = user;
    if (!logits) return vene_errorf(err, VENE_ERR_ARG, "training needs a model with an LM or classification head");
    int rc = vene_loss_cross_entropy(logits, c->pos, -1, c->b->labels, d_logits, loss, &c->correct, err);
    if (rc) return rc;
    int B = c->b->base.batch, three = logits->ndim == 3;
    int64_t S = three ? logits->shape[1] : 1, V = logits->shape[logits->ndim - 1];
    double extra = 0;
    for (int b = 0; b < B; b++) {
        const ds_example *e = c->b->ex[b];
        if (!e->n_target) continue;
        /* soft target: -sum p log softmax; gradient softmax - p, in place of the one-hot */
        int64_t p = c->pos[b] < 0 ? c->pos[b] + S : c->pos[b];
        const float *row = logits->data + ((int64_t)b * S + p) * V;
        float *g = d_logits->data + ((int64_t)b * S + p) * V;
        double lz = vene_logsumexp(row, V, NULL), hard = lz - row[c->b->labels[b]], soft = 0;
        g[c->b->labels[b]] += 1.0f / (float)B;
        for (int k = 0; k < e->n_target; k++) {
            if (e->target_ids[k] >= V) return vene_errorf(err, VENE_ERR_RANGE, "target id %d past %lld classes", e->target_ids[k], (long long)V);
            soft += e->target_p[k] * (lz - row[e->target_ids[k]]);
            g[e->target_ids[k]] -= e->target_p[k] / (float)B;
        }
        extra += (soft - hard) / B;
    }
    *loss += (float)extra;
    return VENE_OK;
}

/* objective "lm": mean next-token cross-entropy over every position but the last (the
 * language-modelling loss of train-lm); `correct` counts top-1 hits. */
static int lm_loss(void *user, const vene_tensor *logits, const vene_tensor *hidden, vene_tensor *d_logits,
                   vene_tensor *d_hidden, float *loss, vene_error *err) {
    (void)hidden, (void)d_hidden;
    loss_ctx *c = user;
    if (!logits || logits->ndim != 3) return vene_errorf(err, VENE_ERR_ARG, "objective \"lm\" needs a language model's B x S x V logits");
    const vene_batch *in = &c->b->base;
    int64_t B = logits->shape[0], S = logits->shape[1], V = logits->shape[2], n = B * (S - 1);
    if (!in->ids || S < 2) return vene_errorf(err, VENE_ERR_ARG, "objective \"lm\" needs token ids and at least 2 positions");
    if (d_logits) memset(d_logits->data, 0, sizeof(float) * (size_t)vene_tensor_numel(logits));
    double total = 0;
    int hits = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t s = 0; s + 1 < S; s++) {
            int hit;
            total += vene_loss_row(logits->data + (b * S + s) * V, V, in->ids[b * S + s + 1],
                                   d_logits ? d_logits->data + (b * S + s) * V : NULL, 1.0 / (double)n, &hit);
            hits += hit;
        }
    *loss = (float)(total / (double)n);
    c->correct = hits;
    c->tokens = (int)n;
    return VENE_OK;
}

/* Boundless DAS pushes the boundary down (+ c * sum boundaries, pyvene's tutorial);
 * SigmoidMask is pushed sparse (+ c * sum sigmoid(mask / T), the L1 of the mask). */
static float penalties(trainer *t) {
    float add = 0;
    for (int i = 0; t->iv && i < t->iv->n; i++) {
        vene_slot *s = &t->iv->slots[i];
        vene_iv *v = s->iv;
        if (!s->iv_owner) continue;
        if (t->boundary_coef > 0 && v->type == VENE_IV_BOUNDLESS_ROTATED) {
            add += t->boundary_coef * v->boundary;
            v->grad_boundary += t->boundary_coef;
        }
        if (t->mask_coef > 0 && v->type == VENE_IV_SIGMOID_MASK && v->masks && v->grad_masks)
            for (int k = 0; k < v->masks_len; k++) {
                float m = 1.0f / (1.0f + expf(-v->masks[k] / v->temperature));
                add += t->mask_coef * m;
                v->grad_masks[k] += t->mask_coef * m * (1.0f - m) / v->temperature;
            }
    }
    return add;
}

/* ---------------------------------------------------------------- batches */

/* Consecutive indices with the signature of the first, up to `size`. */
static int take_batch(const ds_set *s, const int *idx, int n, int at, int size) {
    int k = 1;
    while (at + k < n && k < size && !strcmp(s->ex[idx[at + k]].sig, s->ex[idx[at]].sig)) k++;
    return k;
}

/* Group a shuffled order by signature (first-appearance order of the signatures, the
 * shuffled order within each), so batches stay full when templates differ. */
static int group_by_sig(const ds_set *s, int *idx, int n, vene_error *err) {
    int *out = malloc(sizeof(int) * (size_t)(n ? n : 1));
    char *used = calloc((size_t)(n ? n : 1), 1);
    if (!out || !used) {
        free(out), free(used);
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    }
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (used[i]) continue;
        for (int j = i; j < n; j++)
            if (!used[j] && !strcmp(s->ex[idx[j]].sig, s->ex[idx[i]].sig)) out[k++] = idx[j], used[j] = 1;
    }
    memcpy(idx, out, sizeof(int) * (size_t)n);
    free(out), free(used);
    return VENE_OK;
}

static void shuffle(int *idx, int n, vene_rng *r) {
    for (int i = n - 1; i > 0; i--) {
        int j = (int)(vene_rng_next(r) % (uint64_t)(i + 1)), t = idx[i];
        idx[i] = idx[j], idx[j] = t;
    }
}

/* One batch: forward (with interventions when configured), loss, and when training the
 * backward (the optimizer steps in the caller). *scored = predictions scored. */
static int run_batch(trainer *t, const ds_set *s, const int *idx, int n, int train, float *loss, int *correct,
                     int *scored, vene_error *err) {
    ds_batch b;
    int rc = ds_batch_make(s, idx, n, t->position, &b, err);
    vene_loss_fn fn = t->lm ? lm_loss : batch_loss;
    if (!rc) {
        if (!b.call.unit_locations) b.call.unit_locations = t->def_ul;
        if (!b.call.subspaces) b.call.subspaces = t->def_ss;
        loss_ctx lc = {&b, b.positions, 0, n};
        int *zeros = NULL;
        for (int i = 0; i < n && !rc && !t->lm; i++)
            if (b.labels[i] < 0) rc = vene_errorf(err, VENE_ERR_FORMAT, "example %d has no \"label\" (or \"target\")", idx[i]);
        if (!rc && !t->lm && t->iv && t->m->has_lm_head && b.base.seq > 1 && strcmp(t->m->arch->model_type, "mlp") != 0) {
            /* an LM head: logits only at the loss positions, which the loss then finds at 0 */
            b.call.logit_positions = b.positions;
            zeros = calloc((size_t)n, sizeof(int));
            lc.pos = zeros;
            if (!zeros) rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        }
        if (rc) {
        } else if (t->iv && train) {
            rc = vene_train_step(t->iv, &b.call, fn, &lc, NULL, loss, err);
        } else if (t->iv) {
            rc = vene_intervenable_forward(t->iv, &b.call, err);
            if (!rc) rc = fn(&lc, vene_intervenable_logits(t->iv, 1), NULL, NULL, NULL, loss, err);
        } else {
            rc = vene_forward(t->rs, &b.base, err);
            const vene_tensor *lg = rc ? NULL : vene_run_logits(t->rs);
            vene_tensor dl = {0};
            if (lg && train) dl = *lg, dl.data = calloc((size_t)vene_tensor_numel(lg), sizeof(float));
            if (!rc) rc = fn(&lc, lg, NULL, train ? &dl : NULL, NULL, loss, err);
            if (!rc && train) rc = vene_backward(t->rs, &dl, NULL, err);
            free(dl.data);
        }
        *correct = lc.correct;
        *scored = lc.tokens;
        free(zeros);
    }
    if (rc) vene_error_prefix(err, "batch of example %d (%s)", idx[0], s == &t->train ? "train" : "eval");
    ds_batch_free(&b);
    return rc;
}

static int evaluate(trainer *t, double *iia, double *loss, vene_error *err) {
    int hits = 0, rc = VENE_OK;
    double tot = 0, scored = 0;
    const ds_set *s = t->eval.n ? &t->eval : &t->train;
    for (int at = 0; at < t->n_eval && !rc;) {
        int k = take_batch(s, t->eval_idx, t->n_eval, at, t->batch), c = 0, m = 0;
        float l = 0;
        rc = run_batch(t, s, t->eval_idx + at, k, 0, &l, &c, &m, err);
        hits += c;
        tot += (double)l * m;
        scored += m;
        at += k;
    }
    *iia = scored ? hits / scored : 0;
    *loss = scored ? tot / scored : 0;
    return rc;
}

/* ---------------------------------------------------------------- setup */

static int parse_optimizer(trainer *t, int steps, vene_optim_config *c, vene_error *err) {
    vene_optim_config_default(c);
    const cJSON *o = cJSON_GetObjectItemCaseSensitive(t->j, "optimizer");
    if (o && !cJSON_IsNull(o) && !cJSON_IsObject(o)) return vene_errorf(err, VENE_ERR_ARG, "optimizer: expected an object");
    const char *type = o ? str(o, "type") : NULL, *sched = o ? str(o, "schedule") : NULL;
    if (type) {
        if (!strcmp(type, "adam")) c->kind = VENE_OPT_ADAM;
        else if (!strcmp(type, "adamw")) c->kind = VENE_OPT_ADAMW;
        else if (!strcmp(type, "sgd")) c->kind = VENE_OPT_SGD;
        else return vene_errorf(err, VENE_ERR_ARG, "optimizer.type: unknown \"%s\" (adam, adamw, sgd)", type);
    }
    if (sched) {
        if (!strcmp(sched, "constant")) c->schedule = VENE_SCHED_CONSTANT;
        else if (!strcmp(sched, "linear")) c->schedule = VENE_SCHED_LINEAR;
        else if (!strcmp(sched, "cosine")) c->schedule = VENE_SCHED_COSINE;
        else return vene_errorf(err, VENE_ERR_ARG, "optimizer.schedule: unknown \"%s\" (constant, linear, cosine)", sched);
    }
    double lr, wd, mom, blr, clip, warm, eps;
    int rc;
    if ((rc = num(o, "lr", 1e-3, 1e-12, 1e3, &lr, err)) || (rc = num(o, "weight_decay", 0, 0, 10, &wd, err)) ||
        (rc = num(o, "momentum", 0, 0, 1, &mom, err)) || (rc = num(o, "boundary_lr", 0, 0, 1e3, &blr, err)) ||
        (rc = num(o, "clip_norm", 0, 0, 1e9, &clip, err)) || (rc = num(o, "warmup", 0, 0, 1, &warm, err)) ||
        (rc = num(o, "eps", 1e-8, 0, 1, &eps, err)))
        return vene_error_prefix(err, "optimizer");
    c->lr = (float)lr, c->weight_decay = (float)wd, c->momentum = (float)mom, c->boundary_lr = (float)blr;
    c->clip_norm = (float)clip, c->eps = (float)eps;
    c->total_steps = steps;
    c->warmup_steps = (int)(warm * steps + 0.5);
    const cJSON *tj = cJSON_GetObjectItemCaseSensitive(t->j, "temperature");
    if (tj && !cJSON_IsNull(tj)) {
        double a, b;
        if ((rc = num(tj, "start", 50, 1e-9, 1e9, &a, err)) || (rc = num(tj, "end", 0.1, 1e-9, 1e9, &b, err)))
            return vene_error_prefix(err, "temperature");
        c->temperature_start = (float)a, c->temperature_end = (float)b;
    }
    c->train_model = t->model_grads;
    return VENE_OK;
}

static int load_split(trainer *t, vene_error *err) {
    char p[8192];
    const char *tr = str(t->j, "train"), *ev = str(t->j, "eval");
    if (!tr) return vene_errorf(err, VENE_ERR_ARG, "\"train\": expected the path of a JSONL dataset");
    rel_path(t, tr, p, sizeof p);
    int rc = ds_load(p, t->tok, &t->train, err);
    if (!rc && ev) {
        rel_path(t, ev, p, sizeof p);
        rc = ds_load(p, t->tok, &t->eval, err);
    }
    if (rc) return rc;
    double frac;
    if ((rc = num(t->j, "eval_fraction", ev ? 0 : 0.1, 0, 0.9, &frac, err))) return rc;
    int n = t->train.n;
    int *all = malloc(sizeof(int) * (size_t)n);
    if (!all) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    for (int i = 0; i < n; i++) all[i] = i;
    vene_rng r;
    vene_rng_seed(&r, t->seed ^ 0x5eed5eedULL);
    int n_held = ev ? 0 : (int)(frac * n);
    if (n_held) shuffle(all, n, &r); /* the held-out split is fixed by the seed */
    t->n_eval = ev ? t->eval.n : n_held;
    t->n_train = n - n_held;
    t->train_idx = malloc(sizeof(int) * (size_t)(t->n_train ? t->n_train : 1));
    t->eval_idx = malloc(sizeof(int) * (size_t)(t->n_eval ? t->n_eval : 1));
    if (!t->train_idx || !t->eval_idx) {
        free(all);
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    }
    memcpy(t->train_idx, all + n_held, sizeof(int) * (size_t)t->n_train);
    if (ev)
        for (int i = 0; i < t->n_eval; i++) t->eval_idx[i] = i;
    else memcpy(t->eval_idx, all, sizeof(int) * (size_t)t->n_eval);
    free(all);
    if (t->n_train == 0) return vene_errorf(err, VENE_ERR_ARG, "train: no training examples left after the held-out split");
    return t->n_eval ? group_by_sig(t->eval.n ? &t->eval : &t->train, t->eval_idx, t->n_eval, err) : VENE_OK;
}

static int setup(trainer *t, const vene_train_options *o, vene_error *err) {
    double v;
    int rc;
    const char *model = str(t->j, "model"), *cls = str(t->j, "model_class");
    if (!model) return vene_errorf(err, VENE_ERR_ARG, "\"model\": expected the path of a model folder");
    if ((rc = num(t->j, "seed", 0, 0, 9007199254740991.0, &v, err))) return rc;
    t->seed = o && o->seed >= 0 ? (uint64_t)o->seed : (uint64_t)v;
    if ((rc = num(t->j, "batch_size", 16, 1, 1 << 20, &v, err))) return rc;
    t->batch = (int)v;
    if ((rc = num(t->j, "epochs", 1, 1, 1e6, &v, err))) return rc;
    t->epochs = o && o->epochs > 0 ? o->epochs : (int)v;
    if ((rc = num(t->j, "grad_accum", 1, 1, 1e6, &v, err))) return rc;
    t->accum = (int)v;
    if ((rc = num(t->j, "position", -1, -1e9, 1e9, &v, err))) return rc;
    t->position = (int)v;
    if ((rc = num(t->j, "boundary_loss", 0, 0, 1e6, &v, err))) return rc;
    t->boundary_coef = (float)v;
    if ((rc = num(t->j, "mask_l1", 0, 0, 1e6, &v, err))) return rc;
    t->mask_coef = (float)v;
    const char *obj = str(t->j, "objective");
    if (obj && strcmp(obj, "lm") && strcmp(obj, "label"))
        return vene_errorf(err, VENE_ERR_ARG, "\"objective\": \"%s\" (expected \"label\" or \"lm\")", obj);
    t->lm = obj && !strcmp(obj, "lm");
    const cJSON *mg = cJSON_GetObjectItemCaseSensitive(t->j, "model_gradients");
    if (mg && !cJSON_IsBool(mg)) return vene_errorf(err, VENE_ERR_ARG, "\"model_gradients\": expected true or false");
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(t->j, "config");
    t->model_grads = cJSON_IsTrue(mg) || !cfg || cJSON_IsNull(cfg);
    char p[8192];
    rel_path(t, model, p, sizeof p);
    if ((rc = vene_model_load(p, cls, &t->m, err))) return vene_error_prefix(err, "model");
    vene_tokenizer_load(p, &t->tok, NULL); /* optional: only text inputs need it */
    if (t->model_grads && (rc = vene_model_set_trainable(t->m, err))) return rc;
    if ((rc = load_split(t, err))) return rc;
    const char *init = str(t->j, "init");
    if (cfg && !cJSON_IsNull(cfg)) {
        if (init) {
            rel_path(t, init, p, sizeof p);
            rc = vene_intervenable_load(t->m, p, &t->iv, err);
        } else {
            rc = vene_intervenable_from_json(t->m, cfg, &t->iv, err);
        }
        if (rc) return vene_error_prefix(err, init ? "init" : "config");
        vene_intervenable_set_seed(t->iv, t->seed);
        if ((rc = vene_intervenable_set_grad(t->iv, t->model_grads ? VENE_GRAD_MODEL : VENE_GRAD_ACTIVATIONS, err))) return rc;
        /* parameters exist after the first forward (lazy seeded initialisation) */
        ds_batch b;
        if ((rc = ds_batch_make(&t->train, t->train_idx, 1, t->position, &b, err))) return rc;
        if (!b.call.unit_locations) b.call.unit_locations = t->def_ul;
        if (!b.call.subspaces) b.call.subspaces = t->def_ss;
        rc = vene_intervenable_forward(t->iv, &b.call, err);
        ds_batch_free(&b);
        if (rc) return vene_error_prefix(err, "first training example");
    } else {
        if ((rc = vene_run_new(t->m, &t->rs, err)) || (rc = vene_run_set_grad(t->rs, VENE_GRAD_MODEL, err))) return rc;
    }
    int per_epoch = 0; /* batches per epoch, counted as the loop forms them: grouped by shape */
    if ((rc = group_by_sig(&t->train, t->train_idx, t->n_train, err))) return rc;
    for (int at = 0; at < t->n_train;) at += take_batch(&t->train, t->train_idx, t->n_train, at, t->batch), per_epoch++;
    vene_optim_config oc;
    if ((rc = parse_optimizer(t, (per_epoch * t->epochs + t->accum - 1) / t->accum, &oc, err))) return rc;
    if (o && o->lr > 0) oc.lr = o->lr;
    return vene_optimizer_new(t->iv, t->rs, &oc, &t->opt, err);
}

static void trainer_free(trainer *t) {
    vene_optimizer_free(t->opt);
    vene_intervenable_free(t->iv);
    vene_run_free(t->rs);
    vene_tokenizer_free(t->tok);
    ds_free(&t->train);
    ds_free(&t->eval);
    free(t->train_idx);
    free(t->eval_idx);
    free(t->def_ul);
    free(t->def_ss);
    vene_model_free(t->m);
    cJSON_Delete(t->j);
}

/* ---------------------------------------------------------------- the loop */

static int train_loop(trainer *t, const vene_train_options *o, vene_train_result *res, vene_error *err) {
    int rc = VENE_OK, quiet = o && o->quiet;
    vene_rng r;
    vene_rng_seed(&r, t->seed);
    int steps_per_epoch = 0;
    for (int at = 0; at < t->n_train;) at += take_batch(&t->train, t->train_idx, t->n_train, at, t->batch), steps_per_epoch++;
    double iia = 0, eval_loss = 0, t0 = vene_now();
    const char *metric = t->iv ? "IIA" : "accuracy";
    if (t->n_eval && (rc = evaluate(t, &iia, &eval_loss, err)) == VENE_OK && !quiet)
        fprintf(stderr, "before training: held-out %s %.3f (%d examples), loss %.4f\n", metric, iia, t->n_eval, eval_loss);
    if (rc) return rc;
    res->iia_before = iia;
    int micro = 0;
    for (int ep = 0; ep < t->epochs && !rc; ep++) {
        shuffle(t->train_idx, t->n_train, &r);
        if ((rc = group_by_sig(&t->train, t->train_idx, t->n_train, err))) break;
        char label[48];
        snprintf(label, sizeof label, "epoch %d/%d", ep + 1, t->epochs);
        vene_progress pg;
        vene_progress_start(&pg, label, t->n_train, quiet);
        double run_loss = 0;
        int seen = 0, hits = 0;
        for (int at = 0; at < t->n_train && !rc;) {
            int k = take_batch(&t->train, t->train_idx, t->n_train, at, t->batch), c = 0, scored = 0;
            float l = 0;
            rc = run_batch(t, &t->train, t->train_idx + at, k, 1, &l, &c, &scored, err);
            if (rc) break;
            l += penalties(t) / (float)t->accum;
            if (++micro % t->accum == 0) rc = vene_optimizer_step(t->opt, NULL, err);
            run_loss += (double)l * scored, seen += scored, hits += c;
            at += k;
            char extra[96];
            snprintf(extra, sizeof extra, "loss %.4f acc %.3f lr %.2g", run_loss / seen, (double)hits / seen,
                     (double)vene_optimizer_lr(t->opt));
            vene_progress_update(&pg, at, extra);
        }
        if (rc) break;
        res->train_loss = run_loss / (seen ? seen : 1);
        char extra[128];
        if (t->n_eval) {
            if ((rc = evaluate(t, &iia, &eval_loss, err))) break;
            snprintf(extra, sizeof extra, "loss %.4f | held-out %s %.3f loss %.4f", res->train_loss, metric, iia, eval_loss);
        } else {
            snprintf(extra, sizeof extra, "loss %.4f", res->train_loss);
        }
        vene_progress_end(&pg, extra);
    }
    res->iia = iia;
    res->eval_loss = eval_loss;
    res->interventions = t->iv != NULL;
    res->steps = vene_optimizer_steps(t->opt);
    res->seconds = vene_now() - t0;
    res->params = vene_optimizer_param_count(t->opt);
    res->grad_bytes = (int64_t)(t->iv ? vene_intervenable_grad_bytes(t->iv) : vene_run_grad_bytes(t->rs));
    return rc;
}

int vene_train_run(const char *config_path, const vene_train_options *o, vene_train_result *res, vene_error *err) {
    trainer t;
    vene_train_result local;
    memset(&t, 0, sizeof t);
    if (!res) res = &local;
    memset(res, 0, sizeof *res);
    if (!config_path) return vene_errorf(err, VENE_ERR_ARG, "vene_train_run: NULL config path");
    FILE *f = fopen(config_path, "rb");
    if (!f) return vene_errorf(err, VENE_ERR_IO, "%s: cannot open", config_path);
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, '\0', f);
    fclose(f);
    t.j = n > 0 ? cJSON_Parse(text) : NULL;
    free(text);
    if (!cJSON_IsObject(t.j)) {
        cJSON_Delete(t.j);
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: not a JSON object", config_path);
    }
    static const char *const keys[] = {"model", "model_class", "config", "init", "train", "eval", "eval_fraction",
                                       "unit_locations", "subspaces", "position", "batch_size", "epochs", "seed",
                                       "grad_accum", "optimizer", "temperature", "boundary_loss", "mask_l1",
                                       "model_gradients", "save", "save_model", "objective"};
    int rc = VENE_OK;
    for (const cJSON *c = t.j->child; c && !rc; c = c->next) {
        int ok = 0;
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) ok |= !strcmp(c->string, keys[k]);
        if (!ok) rc = vene_errorf(err, VENE_ERR_ARG, "unknown key \"%s\"", c->string);
    }
    char tmp[4096];
    snprintf(tmp, sizeof tmp, "%s", config_path);
    snprintf(t.dir, sizeof t.dir, "%s", dirname(tmp));
    const cJSON *ul = cJSON_GetObjectItemCaseSensitive(t.j, "unit_locations"), *ss = cJSON_GetObjectItemCaseSensitive(t.j, "subspaces");
    if (ul && !cJSON_IsNull(ul)) t.def_ul = cJSON_PrintUnformatted(ul);
    if (ss && !cJSON_IsNull(ss)) t.def_ss = cJSON_PrintUnformatted(ss);
    if (!rc) rc = setup(&t, o, err);
    if (!rc) rc = train_loop(&t, o, res, err);
    const char *save = o && o->out_dir ? o->out_dir : str(t.j, "save"), *save_model = str(t.j, "save_model");
    char p[8192];
    if (!rc && save && t.iv) {
        rel_path(&t, save, p, sizeof p);
        if ((rc = vene_intervenable_save(t.iv, o && o->out_dir ? save : p, err))) vene_error_prefix(err, "save");
    }
    if (!rc && save_model && t.model_grads) {
        rel_path(&t, save_model, p, sizeof p);
        if ((rc = vene_model_save(t.m, p, err))) vene_error_prefix(err, "save_model");
    }
    if (rc) vene_error_prefix(err, "%s", config_path);
    trainer_free(&t);
    return rc;
}
