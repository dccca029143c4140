/* Optimisers over an intervenable's trainable tensors (and the model's weights for IIT
 * or language-model training): SGD (momentum), Adam and AdamW as torch.optim defines them,
 * global-norm clipping as torch.nn.utils.clip_grad_norm_, and transformers' warm-up +
 * linear / cosine schedules. After each step the rotations' effective weights are
 * re-derived from `original` (the orthogonal parametrisation) and gradients are zeroed. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/engine.h"

typedef struct opt_param {
    float *p;
    const float *g;
    int64_t n;
    float lr_scale;      /* boundary lr / lr */
    float *m, *v;        /* moments (owned) */
} opt_param;

struct vene_optimizer {
    vene_optim_config c;
    vene_intervenable *iv;
    vene_run *rs;
    opt_param *ps;
    int n, cap, step;
};

void vene_optim_config_default(vene_optim_config *c) {
    memset(c, 0, sizeof *c);
    c->kind = VENE_OPT_ADAM;
    c->lr = 1e-3f;
    c->beta1 = 0.9f;
    c->beta2 = 0.999f;
    c->eps = 1e-8f;
    c->schedule = VENE_SCHED_CONSTANT;
}

static int add_param(vene_optimizer *o, float *p, const float *g, int64_t n, float lr_scale, vene_error *err) {
    if (!p || !g || n <= 0) return VENE_OK;
    if (o->n == o->cap) {
        int cap = o->cap ? 2 * o->cap : 16;
        opt_param *q = realloc(o->ps, sizeof *q * (size_t)cap);
        if (!q) return vene_errorf(err, VENE_ERR_MEMORY, "optimizer: out of memory");
        o->ps = q;
        o->cap = cap;
    }
    opt_param *q = &o->ps[o->n];
    memset(q, 0, sizeof *q);
    q->p = p, q->g = g, q->n = n, q->lr_scale = lr_scale;
    int moments = o->c.kind != VENE_OPT_SGD || o->c.momentum != 0.0f;
    if (moments && !(q->m = calloc((size_t)n, sizeof(float))))
        return vene_errorf(err, VENE_ERR_MEMORY, "optimizer: out of memory for %lld moments", (long long)n);
    if (o->c.kind != VENE_OPT_SGD && !(q->v = calloc((size_t)n, sizeof(float)))) {
        free(q->m);
        return vene_errorf(err, VENE_ERR_MEMORY, "optimizer: out of memory for %lld moments", (long long)n);
    }
    o->n++;
    return VENE_OK;
}

static int check_config(const vene_optim_config *c, vene_error *err) {
    if (c->kind < VENE_OPT_SGD || c->kind > VENE_OPT_ADAMW) return vene_errorf(err, VENE_ERR_ARG, "optimizer: unknown kind %d", c->kind);
    if (!(c->lr > 0) || !isfinite(c->lr)) return vene_errorf(err, VENE_ERR_ARG, "optimizer: lr must be positive (got %g)", c->lr);
    if (c->beta1 < 0 || c->beta1 >= 1 || c->beta2 < 0 || c->beta2 >= 1)
        return vene_errorf(err, VENE_ERR_ARG, "optimizer: betas must lie in [0, 1) (got %g, %g)", c->beta1, c->beta2);
    if (c->warmup_steps < 0 || c->total_steps < 0 || (c->schedule != VENE_SCHED_CONSTANT && c->total_steps <= 0))
        return vene_errorf(err, VENE_ERR_ARG, "optimizer: a linear or cosine schedule needs total_steps > 0 and warmup_steps >= 0");
    return VENE_OK;
}

static int add_model_params(vene_optimizer *o, vene_run *rs, vene_error *err) {
    const vene_model *m = rs->m;
    if (!rs->param_grads)
        return vene_errorf(err, VENE_ERR_STATE, "optimizer: train_model needs weight gradients (VENE_GRAD_MODEL)");
    if (!vene_model_is_trainable(m))
        return vene_errorf(err, VENE_ERR_STATE, "optimizer: the model's weights are read-only (vene_model_set_trainable)");
    int rc = VENE_OK;
    for (int i = 0; i < m->n_param_tensors && !rc; i++)
        rc = add_param(o, (float *)m->params[i].data, rs->param_grads + m->params[i].offset, m->params[i].numel, 1.0f, err);
    return rc;
}

int vene_optimizer_new(vene_intervenable *iv, vene_run *rs, const vene_optim_config *c, vene_optimizer **out,
                       vene_error *err) {
    *out = NULL;
    if (!c || (!iv && !rs)) return vene_errorf(err, VENE_ERR_ARG, "vene_optimizer_new: needs a config and an intervenable or a run");
    int rc = check_config(c, err);
    if (rc) return rc;
    vene_optimizer *o = calloc(1, sizeof *o);
    if (!o) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    o->c = *c;
    o->iv = iv;
    o->rs = iv ? iv->rs : rs;
    for (int i = 0; iv && i < iv->n && !rc; i++) {
        vene_slot *s = &iv->slots[i];
        if (!s->iv_owner) continue; /* linked slots share their owner's parameters */
        vene_iv *v = s->iv;
        if ((rc = vene_iv_grad_alloc(v, err))) break;
        int r = v->type == VENE_IV_LOWRANK_ROTATED ? v->low_rank : v->embed_dim;
        if (v->original && v->base) rc = add_param(o, v->original, v->grad_original, (int64_t)v->embed_dim * r, 1.0f, err);
        if (!rc && v->type == VENE_IV_BOUNDLESS_ROTATED)
            rc = add_param(o, &v->boundary, &v->grad_boundary, 1, c->boundary_lr > 0 ? c->boundary_lr / c->lr : 1.0f, err);
        if (!rc && v->masks && v->grad_masks) rc = add_param(o, v->masks, v->grad_masks, v->masks_len, 1.0f, err);
        for (int k = 0; k < 4 && !rc && v->type == VENE_IV_AUTOENCODER; k++) {
            int64_t n = k == 1 ? v->low_rank : k == 3 ? v->embed_dim : (int64_t)v->embed_dim * v->low_rank;
            if (!v->ae_grad[k] && !(v->ae_grad[k] = calloc((size_t)n, sizeof(float))))
                rc = vene_errorf(err, VENE_ERR_MEMORY, "optimizer: out of memory");
            if (!rc) rc = add_param(o, v->ae[k], v->ae_grad[k], n, 1.0f, err);
        }
    }
    if (!rc && c->train_model) rc = add_model_params(o, o->rs, err);
    if (!rc && o->n == 0) rc = vene_errorf(err, VENE_ERR_ARG, "optimizer: nothing to train (no trainable intervention; train_model off)");
    if (rc) {
        vene_optimizer_free(o);
        return rc;
    }
    *out = o;
    return VENE_OK;
}

float vene_optimizer_lr(const vene_optimizer *o) {
    const vene_optim_config *c = &o->c;
    int t = o->step;
    double f = 1.0;
    if (c->schedule != VENE_SCHED_CONSTANT || c->warmup_steps > 0) {
        if (t < c->warmup_steps) f = (double)t / c->warmup_steps;
        else if (c->schedule == VENE_SCHED_LINEAR)
            f = fmax(0.0, (double)(c->total_steps - t) / fmax(1.0, (double)(c->total_steps - c->warmup_steps)));
        else if (c->schedule == VENE_SCHED_COSINE) {
            double prog = (double)(t - c->warmup_steps) / fmax(1.0, (double)(c->total_steps - c->warmup_steps));
            f = 0.5 * (1.0 + cos(M_PI * fmin(1.0, prog)));
        }
    }
    return (float)(c->lr * f);
}

int vene_optimizer_steps(const vene_optimizer *o) { return o->step; }

/* pyvene's temperature schedule: linspace(start, end, total_steps), set after each step. */
static void set_temperatures(vene_optimizer *o) {
    const vene_optim_config *c = &o->c;
    if (!o->iv || c->temperature_start <= 0 || c->temperature_end <= 0 || c->total_steps <= 0) return;
    int t = o->step < c->total_steps ? o->step : c->total_steps - 1;
    double a = c->temperature_start, b = c->temperature_end;
    double T = c->total_steps > 1 ? a + (b - a) * t / (c->total_steps - 1) : b;
    for (int i = 0; i < o->iv->n; i++) {
        vene_iv *v = o->iv->slots[i].iv;
        if (v->type == VENE_IV_BOUNDLESS_ROTATED || v->type == VENE_IV_SIGMOID_MASK_ROTATED || v->type == VENE_IV_SIGMOID_MASK)
            v->temperature = (float)T;
    }
}

int vene_optimizer_step(vene_optimizer *o, float *grad_norm, vene_error *err) {
    if (!o) return vene_errorf(err, VENE_ERR_ARG, "vene_optimizer_step: NULL optimizer");
    const vene_optim_config *c = &o->c;
    int rc = VENE_OK;
    for (int i = 0; o->iv && i < o->iv->n && !rc; i++)
        if (o->iv->slots[i].iv_owner) rc = vene_iv_grad_finish(o->iv->slots[i].iv, err);
    if (rc) return rc;
    double nrm = 0;
    for (int k = 0; k < o->n; k++)
        for (int64_t i = 0; i < o->ps[k].n; i++) nrm += (double)o->ps[k].g[i] * o->ps[k].g[i];
    nrm = sqrt(nrm);
    if (grad_norm) *grad_norm = (float)nrm;
    if (!isfinite(nrm))
        return vene_errorf(err, VENE_ERR_STATE, "optimizer step %d: the gradient is not finite (lower the learning rate?)", o->step);
    float clip = c->clip_norm > 0 && nrm > c->clip_norm ? (float)(c->clip_norm / (nrm + 1e-6)) : 1.0f;
    float lr = vene_optimizer_lr(o);
    int t = o->step + 1;
    float bc1 = 1.0f - powf(c->beta1, (float)t), bc2 = 1.0f - powf(c->beta2, (float)t);
    for (int k = 0; k < o->n; k++) {
        opt_param *q = &o->ps[k];
        float a = lr * q->lr_scale;
        for (int64_t i = 0; i < q->n; i++) {
            float g = q->g[i] * clip, p = q->p[i];
            if (c->kind == VENE_OPT_ADAMW) p -= a * c->weight_decay * p;
            else if (c->weight_decay != 0.0f) g += c->weight_decay * p;
            if (c->kind == VENE_OPT_SGD) {
                if (q->m) g = q->m[i] = c->momentum * q->m[i] + g; /* torch: buf = momentum * buf + g (dampening 0) */
                p -= a * g;
            } else {
                q->m[i] = c->beta1 * q->m[i] + (1.0f - c->beta1) * g;
                q->v[i] = c->beta2 * q->v[i] + (1.0f - c->beta2) * g * g;
                p -= a * (q->m[i] / bc1) / (sqrtf(q->v[i] / bc2) + c->eps);
            }
            q->p[i] = p;
        }
    }
    /* re-derive the rotations' W from the updated `original` */
    for (int i = 0; o->iv && i < o->iv->n && !rc; i++) {
        vene_iv *v = o->iv->slots[i].iv;
        if (!o->iv->slots[i].iv_owner || !v->original || !v->base || !v->W) continue;
        int r = v->type == VENE_IV_LOWRANK_ROTATED ? v->low_rank : v->embed_dim;
        rc = vene_orthogonal_weight(v->original, v->base, v->embed_dim, r, v->W, err);
    }
    o->step++;
    set_temperatures(o);
    if (o->iv) vene_intervenable_zero_grad(o->iv);
    else vene_run_zero_grad(o->rs);
    return rc;
}

void vene_optimizer_free(vene_optimizer *o) {
    if (!o) return;
    for (int k = 0; k < o->n; k++) {
        free(o->ps[k].m);
        free(o->ps[k].v);
    }
    free(o->ps);
    free(o);
}

int64_t vene_optimizer_param_count(const vene_optimizer *o) {
    int64_t n = 0;
    for (int k = 0; o && k < o->n; k++) n += o->ps[k].n;
    return n;
}
