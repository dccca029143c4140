/* Reverse mode through an intervenable model (DAS and IIT).
 *
 * Forward in gradient mode: every setter saves the block and the source it saw. Backward:
 * one backward hook per setter on the base run maps d(out) to d(block) through the
 * intervention (vene_iv_backward), accumulating parameter gradients; with model
 * gradients on (IIT) it also produces d(source block), which the source pass's own
 * backward injects at its getter site, so gradients reach the model through both runs
 * (spec §13, pyvene_101's IIT). Without model gradients the base backward stops once its
 * lowest setter has fired: nothing below it needs a gradient. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/engine.h"
#include "engine/iv_internal.h"

static void free_tensor(vene_tensor *t) {
    free(t->data);
    memset(t, 0, sizeof *t);
}

static int copy_block(vene_tensor *dst, const vene_tensor *src, vene_error *err) {
    size_t n = (size_t)vene_tensor_numel(src);
    float *d = malloc((n ? n : 1) * sizeof(float));
    if (!d) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory saving a block for backward");
    memcpy(d, src->data, n * sizeof(float));
    *dst = *src;
    dst->data = d;
    return VENE_OK;
}

void vene_slot_free_backward(vene_slot *s) {
    free_tensor(&s->bw_x);
    free_tensor(&s->bw_src);
    free(s->bw_dcache);
    s->bw_dcache = NULL;
    s->bw_saved = 0;
}

int vene_slot_save_for_backward(vene_slot *s, const vene_tensor *x, const vene_tensor *src, vene_error *err) {
    vene_slot_free_backward(s);
    if (s->iv->type == VENE_IV_COLLECT) return VENE_OK; /* the block passes through unchanged */
    if (s->setter_calls > 0)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "representations[%d] (%s): gradients through a site that fires "
                           "more than once per forward are not supported", s->index, s->key);
    int rc = copy_block(&s->bw_x, x, err);
    if (!rc && src) rc = copy_block(&s->bw_src, src, err);
    if (!rc) s->bw_saved = 1;
    return rc;
}

int vene_intervenable_source_rs(vene_intervenable *iv, int g, vene_run **out, vene_error *err) {
    if (iv->grad_mode != VENE_GRAD_MODEL) {
        *out = iv->rs;
        return VENE_OK;
    }
    if (!iv->src_rs && !(iv->src_rs = calloc((size_t)iv->G, sizeof *iv->src_rs)))
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    if (!iv->src_rs[g]) {
        int rc = vene_run_new(iv->m, &iv->src_rs[g], err);
        if (!rc) rc = vene_run_share_grads(iv->src_rs[g], iv->rs, err);
        if (rc) return rc;
    }
    *out = iv->src_rs[g];
    return VENE_OK;
}

void vene_intervenable_free_grad(vene_intervenable *iv) {
    for (int g = 0; iv->src_rs && g < iv->G; g++) vene_run_free(iv->src_rs[g]);
    free(iv->src_rs);
    iv->src_rs = NULL;
}

int vene_intervenable_set_grad(vene_intervenable *iv, int mode, vene_error *err) {
    if (!iv) return vene_errorf(err, VENE_ERR_ARG, "vene_intervenable_set_grad: NULL intervenable");
    if (mode != VENE_GRAD_NONE && iv->serial)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "config.mode \"serial\": gradients through serial chains are not supported");
    for (int i = 0; mode != VENE_GRAD_NONE && i < iv->n; i++)
        if (iv->slots[i].where.unit == VENE_UNIT_T)
            return vene_errorf(err, VENE_ERR_UNSUPPORTED, "representations[%d]: gradients through unit \"t\" are not supported",
                               i);
    int rc = vene_run_set_grad(iv->rs, mode, err);
    if (rc) return rc;
    vene_intervenable_free_grad(iv);
    iv->grad_mode = mode;
    for (int i = 0; i < iv->n; i++)
        if (iv->slots[i].iv_owner && (rc = vene_iv_grad_alloc(iv->slots[i].iv, err))) return rc;
    return VENE_OK;
}

static int setter_back(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)where;
    vene_slot *s = user;
    vene_intervenable *iv = s->owner;
    char who[400];
    snprintf(who, sizeof who, "backward of representations[%d] (%s)", s->index, s->key);
    vene_tensor gb = {0};
    int rc = vene_gather(&s->where, &s->base_loc, t, &gb, who, err);
    if (rc) return rc;
    float *dsrc = NULL;
    if (iv->grad_mode == VENE_GRAD_MODEL && s->has_cache &&
        vene_tensor_numel(&s->cache) == vene_tensor_numel(&s->bw_x)) {
        if (!s->bw_dcache && !(s->bw_dcache = calloc((size_t)vene_tensor_numel(&s->bw_x), sizeof(float)))) {
            free(gb.data);
            return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", who);
        }
        dsrc = s->bw_dcache;
    }
    rc = vene_iv_backward(s->iv, &s->bw_x, s->bw_src.data ? &s->bw_src : NULL, s->ss_present ? &s->ss : NULL, &gb,
                          dsrc, err);
    if (!rc) rc = vene_scatter(&s->where, &s->base_loc, t, &gb, who, err);
    else vene_error_prefix(err, "%s", who);
    free(gb.data);
    if (rc) return rc;
    return --iv->bw_pending == 0 && iv->grad_mode != VENE_GRAD_MODEL ? VENE_STOP : VENE_OK;
}

/* Source pass backward: add the setter's d(source block) at the getter's locations. */
static int getter_back(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)where;
    vene_slot *s = user;
    char who[400];
    snprintf(who, sizeof who, "backward of the source of representations[%d] (%s)", s->index, s->key);
    vene_tensor gb = {0};
    int rc = vene_gather(&s->where, &s->src_loc, t, &gb, who, err);
    if (rc) return rc;
    int64_t n = vene_tensor_numel(&gb);
    for (int64_t i = 0; i < n; i++) gb.data[i] += s->bw_dcache[i];
    rc = vene_scatter(&s->where, &s->src_loc, t, &gb, who, err);
    free(gb.data);
    return rc;
}

/* The rows the setters' backward hooks read: per example, the lowest position any of them
 * writes (models/model.h's row restriction). NULL (the full backward) when a setter reads
 * whole sequences (a head or attention-weight unit without positions) or with model
 * gradients, which need every row. Caller frees. */
static int *first_rows(const vene_intervenable *iv) {
    const vene_run *rs = iv->rs;
    const int B = rs->B, S = rs->S;
    if (iv->grad_mode != VENE_GRAD_ACTIVATIONS || B <= 0 || S <= 0) return NULL;
    int *first = malloc(sizeof(int) * (size_t)B);
    if (!first) return NULL; /* the full backward needs nothing more */
    for (int b = 0; b < B; b++) first[b] = S - 1;
    for (int i = 0; i < iv->n; i++) {
        const vene_slot *s = &iv->slots[i];
        if (!s->bw_saved) continue;
        int64_t shape[VENE_MAX_DIMS];
        if (iv->m->arch->site_shape(iv->m, s->where.site, B, S, shape) != 3 ||
            !vene_loc_lowest_positions(&s->where, &s->base_loc, B, first)) {
            free(first);
            return NULL;
        }
    }
    return first;
}

int vene_intervenable_backward(vene_intervenable *iv, const vene_tensor *d_logits, const vene_tensor *d_hidden,
                               vene_error *err) {
    if (!iv) return vene_errorf(err, VENE_ERR_ARG, "vene_intervenable_backward: NULL intervenable");
    if (iv->grad_mode == VENE_GRAD_NONE)
        return vene_errorf(err, VENE_ERR_STATE, "vene_intervenable_backward: gradients are off (vene_intervenable_set_grad "
                           "before the forward)");
    vene_run_clear_backward_hooks(iv->rs);
    iv->bw_pending = 0;
    int rc = VENE_OK;
    for (int g = 0; g < iv->G && !rc; g++)
        for (int i = 0; i < iv->n && !rc; i++) {
            vene_slot *s = &iv->slots[i];
            if (s->group != g || !s->bw_saved) continue;
            if (s->cb) return vene_errorf(err, VENE_ERR_UNSUPPORTED, "representations[%d] (%s): a callback intervention has no backward",
                                          i, s->key);
            /* setter_back reads and writes only the rows at its base locations */
            rc = vene_run_add_backward_hook_rows(iv->rs, s->where.site, s->where.layer, setter_back, s, err);
            if (!rc) iv->bw_pending++;
        }
    if (rc) return rc;
    if (iv->bw_pending == 0 && iv->grad_mode != VENE_GRAD_MODEL) return VENE_OK; /* nothing trainable was on the path */
    int *first = first_rows(iv);
    vene_run_set_grad_rows(iv->rs, first);
    rc = vene_backward(iv->rs, d_logits, d_hidden, err);
    vene_run_set_grad_rows(iv->rs, NULL);
    free(first);
    vene_run_clear_backward_hooks(iv->rs);
    if (rc || iv->grad_mode != VENE_GRAD_MODEL || !iv->src_rs) return rc;
    for (int g = 0; g < iv->G && !rc; g++) {
        vene_run *rs = iv->src_rs[g];
        if (!rs || !rs->saved) continue;
        vene_run_clear_backward_hooks(rs);
        int any = 0;
        for (int i = 0; i < iv->n && !rc; i++) {
            vene_slot *s = &iv->slots[i];
            if (s->group != g || !s->bw_dcache) continue;
            int site = s->iv->type == VENE_IV_SKIP ? s->where.input_site : s->where.site;
            rc = vene_run_add_backward_hook(rs, site, s->where.layer, getter_back, s, err);
            any = 1;
        }
        if (!rc && any) rc = vene_backward(rs, NULL, NULL, err);
        vene_run_clear_backward_hooks(rs);
        if (rc) vene_error_prefix(err, "backward of sources[%d]", g);
    }
    return rc;
}

void vene_intervenable_zero_grad(vene_intervenable *iv) {
    if (!iv) return;
    for (int i = 0; i < iv->n; i++)
        if (iv->slots[i].iv_owner) vene_iv_zero_grad(iv->slots[i].iv);
    vene_run_zero_grad(iv->rs);
}

/* "<index>.<param>" or "<key>.<param>": the slot and the parameter name. */
static vene_slot *slot_of(vene_intervenable *iv, const char *name, const char **param) {
    char *end;
    long i = strtol(name, &end, 10);
    if (end != name && *end == '.' && i >= 0 && i < iv->n) {
        *param = end + 1;
        return &iv->slots[i];
    }
    for (int k = 0; k < iv->n; k++) {
        size_t kl = strlen(iv->slots[k].key);
        if (strncmp(name, iv->slots[k].key, kl) == 0 && name[kl] == '.') {
            *param = name + kl + 1;
            return &iv->slots[k];
        }
    }
    return NULL;
}

int vene_intervenable_grad(vene_intervenable *iv, const char *name, vene_tensor *out, vene_error *err) {
    if (!iv || !name || !out) return vene_errorf(err, VENE_ERR_ARG, "vene_intervenable_grad: NULL argument");
    const char *param = NULL;
    vene_slot *s = slot_of(iv, name, &param);
    if (!s) return vene_run_param_grad(iv->rs, name, out, err);
    vene_iv *v = s->iv;
    int E = v->embed_dim, r = v->type == VENE_IV_LOWRANK_ROTATED ? v->low_rank : v->embed_dim;
    int64_t shape[2] = {E, r};
    if (!strcmp(param, "rotate_layer.weight") && v->grad_W) {
        *out = vene_tensor_view(v->grad_W, 2, shape);
        return VENE_OK;
    }
    if (!strcmp(param, "rotate_layer.parametrizations.weight.original") && v->grad_original) {
        int rc = vene_iv_grad_finish(v, err);
        if (rc) return rc;
        *out = vene_tensor_view(v->grad_original, 2, shape);
        return VENE_OK;
    }
    if ((!strcmp(param, "masks") || !strcmp(param, "mask")) && v->grad_masks) {
        int64_t n = v->masks_len;
        *out = vene_tensor_view(v->grad_masks, 1, &n);
        return VENE_OK;
    }
    for (int k = 0; k < 4; k++)
        if (!strcmp(param, iv_autoencoder_names[k]) && v->ae_grad[k]) {
            int64_t sh[2] = {k == 0 ? v->low_rank : v->embed_dim, k == 0 ? v->embed_dim : v->low_rank};
            int64_t n1 = k == 1 ? v->low_rank : v->embed_dim;
            *out = k == 0 || k == 2 ? vene_tensor_view(v->ae_grad[k], 2, sh) : vene_tensor_view(v->ae_grad[k], 1, &n1);
            return VENE_OK;
        }
    if (!strcmp(param, "intervention_boundaries")) {
        int64_t n = 1;
        *out = vene_tensor_view(&v->grad_boundary, 1, &n);
        return VENE_OK;
    }
    return vene_errorf(err, VENE_ERR_ARG, "\"%s\": intervention %d (%s, %s) has no gradient named \"%s\" (gradients on? "
                       "a backward run?)", name, s->index, s->key, vene_iv_type_name(v->type), param);
}

size_t vene_intervenable_grad_bytes(const vene_intervenable *iv) {
    if (!iv) return 0;
    size_t n = vene_run_grad_bytes(iv->rs);
    for (int g = 0; iv->src_rs && g < iv->G; g++) n += vene_run_grad_bytes(iv->src_rs[g]);
    for (int i = 0; i < iv->n; i++) {
        const vene_slot *s = &iv->slots[i];
        n += sizeof(float) * (size_t)(vene_tensor_numel(&s->bw_x) * (s->bw_x.data != NULL) +
                                      vene_tensor_numel(&s->bw_src) * (s->bw_src.data != NULL));
    }
    return n;
}
