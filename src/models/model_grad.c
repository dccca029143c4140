/* Reverse mode for every architecture: grad mode, backward hooks, weight gradients and
 * the shared LM head's backward. The per-architecture backwards live next to their
 * forwards (gpt2_backward.c, ...). */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/kernels_grad.h"
#include "core/kernels_rows.h"
#include "models/model.h"

int vene_run_set_grad(vene_run *rs, int mode, vene_error *err) {
    if (!rs) return vene_errorf(err, VENE_ERR_ARG, "vene_run_set_grad: NULL run state");
    if (mode < VENE_GRAD_NONE || mode > VENE_GRAD_MODEL)
        return vene_errorf(err, VENE_ERR_ARG, "vene_run_set_grad: mode %d (expected 0 none, 1 activations, 2 model)",
                           mode);
    const vene_model *m = rs->m;
    if (mode != VENE_GRAD_NONE && !m->arch->backward)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: model_type \"%s\" has no backward pass yet", m->dir,
                           m->arch->model_type);
    if (rs->param_grads_borrowed) {
        rs->param_grads = NULL;
        rs->param_grads_borrowed = 0;
    }
    if (mode == VENE_GRAD_MODEL && !rs->param_grads) {
        rs->param_grads = calloc((size_t)(m->n_params > 0 ? m->n_params : 1), sizeof(float));
        if (!rs->param_grads)
            return vene_errorf(err, VENE_ERR_MEMORY, "out of memory for %lld weight gradients",
                               (long long)m->n_params);
    } else if (mode != VENE_GRAD_MODEL) {
        free(rs->param_grads);
        rs->param_grads = NULL;
    }
    rs->grad_mode = mode;
    rs->saved = NULL; /* the last forward kept nothing for this mode */
    return VENE_OK;
}

int vene_run_keep(vene_run *rs, const float *buf, size_t n, int copy, const float **out, vene_error *err) {
    *out = buf;
    if (!copy) return VENE_OK;
    float *c;
    VENE_ALLOC(c, n);
    memcpy(c, buf, sizeof(float) * n);
    *out = c;
    return VENE_OK;
}

int vene_run_keep_bytes(vene_run *rs, size_t n, void **out, vene_error *err) {
    float *p;
    VENE_ALLOC(p, (n + 3) / 4);
    memset(p, 0, n);
    *out = p;
    return VENE_OK;
}

int vene_run_keep_ids(vene_run *rs, const vene_batch *in, int32_t **out, vene_error *err) {
    *out = NULL;
    if (in->embeds || !in->ids) return VENE_OK;
    size_t n = (size_t)in->batch * (size_t)in->seq;
    int rc = vene_run_keep_bytes(rs, n * sizeof(int32_t), (void **)out, err);
    if (!rc) memcpy(*out, in->ids, n * sizeof(int32_t));
    return rc;
}

int vene_run_save_begin(vene_run *rs, const vene_batch *in, size_t bytes, size_t layer_bytes, void **rec,
                        void **layers, int32_t **ids, vene_error *err) {
    int rc = vene_run_keep_bytes(rs, bytes, rec, err);
    if (!rc) rc = vene_run_keep_bytes(rs, layer_bytes * (size_t)rs->m->n_layer, layers, err);
    if (!rc) rc = vene_run_keep_ids(rs, in, ids, err);
    return rc;
}

int vene_run_head_backward(vene_run *rs, const float *W, int site_in, int site_out, float **d_hidden,
                           vene_error *err) {
    const vene_tensor *h = &rs->last_hidden;
    int64_t n = vene_tensor_numel(h);
    float *d;
    VENE_GALLOC(d, (size_t)n);
    *d_hidden = d;
    if (rs->m->has_lm_head) return vene_run_lm_head_backward(rs, W, site_in, site_out, d, err);
    if (rs->d_hidden) vk_acc(rs->d_hidden, d, n);
    return VENE_OK;
}

int vene_run_embed_backward(vene_run *rs, int site, const int32_t *ids, const float *table, float *dx,
                            vene_error *err) {
    vene_tensor t = vene_tensor_3d(dx, rs->B, rs->S, rs->m->d_model);
    VENE_FIRE_BACK(rs, site, -1, &t, err);
    float *dt = vene_run_grad_of(rs, table);
    if (dt) vk_embed_backward(dx, ids, dt, rs->B * rs->S, rs->m->d_model);
    return VENE_OK;
}

int vene_run_share_grads(vene_run *rs, vene_run *owner, vene_error *err) {
    if (rs->m != owner->m || owner->grad_mode != VENE_GRAD_MODEL || !owner->param_grads)
        return vene_errorf(err, VENE_ERR_STATE, "vene_run_share_grads: the owner must be a run of the same model with weight gradients on");
    if (!rs->param_grads_borrowed) free(rs->param_grads);
    rs->param_grads = owner->param_grads;
    rs->param_grads_borrowed = 1;
    rs->grad_mode = VENE_GRAD_MODEL;
    rs->saved = NULL;
    return VENE_OK;
}

static int add_backward_hook(vene_run *rs, int site, int layer, vene_hook_fn fn, void *user, int rows_only,
                             vene_error *err) {
    const vene_model *m = rs->m;
    if (site < 0 || site >= m->arch->n_sites)
        return vene_errorf(err, VENE_ERR_RANGE, "backward hook site %d out of range (model has %d sites)", site,
                           m->arch->n_sites);
    if (m->arch->sites[site].layered ? (layer < 0 || layer >= m->n_layer) : layer != -1)
        return vene_errorf(err, VENE_ERR_RANGE, "backward hook on %s: layer %d out of range (model has %d layers)",
                           m->arch->sites[site].path, layer, m->n_layer);
    if (!fn) return vene_errorf(err, VENE_ERR_ARG, "backward hook function is NULL");
    if (rs->n_bhooks == rs->cap_bhooks) {
        int cap = rs->cap_bhooks ? rs->cap_bhooks * 2 : 16;
        vene_hook *h = realloc(rs->bhooks, sizeof *h * (size_t)cap);
        if (!h) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        rs->bhooks = h;
        rs->cap_bhooks = cap;
    }
    rs->bhooks[rs->n_bhooks++] = (vene_hook){site, layer, fn, user, rows_only};
    rs->site_bhooked[site] = 1;
    return VENE_OK;
}

int vene_run_add_backward_hook(vene_run *rs, int site, int layer, vene_hook_fn fn, void *user, vene_error *err) {
    return add_backward_hook(rs, site, layer, fn, user, 0, err);
}

int vene_run_add_backward_hook_rows(vene_run *rs, int site, int layer, vene_hook_fn fn, void *user, vene_error *err) {
    return add_backward_hook(rs, site, layer, fn, user, 1, err);
}

void vene_run_set_grad_rows(vene_run *rs, const int *first) { rs->grad_first = first; }

const int *vene_run_grad_rows(const vene_run *rs) {
    if (!rs->grad_first || rs->grad_mode != VENE_GRAD_ACTIVATIONS || rs->param_grads) return NULL;
    for (int i = 0; i < rs->n_bhooks; i++)
        if (!rs->bhooks[i].rows_only) return NULL;
    int saves = 0;
    for (int b = 0; b < rs->B; b++) {
        if (rs->grad_first[b] < 0 || rs->grad_first[b] >= rs->S) return NULL;
        saves |= rs->grad_first[b] > 0;
    }
    return saves ? rs->grad_first : NULL;
}

void vene_run_restrict_rows(vene_run *rs, const int *first) {
    rs->grad_rows_on = first;
    int n = 0;
    for (int b = 0; first && b < rs->B; b++) n += rs->S - first[b];
    rs->grad_rows_last = first ? n : rs->B * rs->S;
}

int vene_run_fire_back_rows(vene_run *rs, int site, int layer, const vk_rows *r, float *c, int W, float *full,
                            vene_error *err) {
    vk_rows_scatter(r, c, W, full);
    vene_tensor t = vene_tensor_3d(full, r->B, r->S, W);
    int rc = vene_run_fire_back(rs, site, layer, &t, err);
    vk_rows_gather(r, full, W, W, c);
    return rc;
}

void vene_run_clear_backward_hooks(vene_run *rs) {
    rs->n_bhooks = 0;
    memset(rs->site_bhooked, 0, (size_t)rs->m->arch->n_sites);
}

int vene_run_fire_back(vene_run *rs, int site, int layer, vene_tensor *g, vene_error *err) {
    int *count = &rs->bcall_count[(size_t)site * (size_t)(rs->m->n_layer + 1) + (size_t)(layer + 1)];
    (*count)--;
    vene_hook_call where = {site, layer, *count};
    for (int i = rs->n_bhooks - 1; i >= 0; i--) {
        const vene_hook *h = &rs->bhooks[i];
        if (h->site != site || h->layer != layer) continue;
        int rc = h->fn(h->user, &where, g, err);
        if (rc != VENE_OK) return rc;
    }
    return VENE_OK;
}

float *vene_run_grad_of(const vene_run *rs, const float *weight) {
    if (!rs->param_grads) return NULL;
    const vene_model *m = rs->m;
    for (int i = 0; i < m->n_param_tensors; i++)
        if (m->params[i].data == weight) return rs->param_grads + m->params[i].offset;
    return NULL;
}

int vene_run_lm_head_backward(vene_run *rs, const float *W, int site_in, int site_out, float *d_hidden,
                              vene_error *err) {
    const vene_model *m = rs->m;
    const vene_tensor *h = &rs->last_hidden;
    int T = (int)(h->shape[0] * h->shape[1]), D = (int)h->shape[2], V = m->vocab_size, S = (int)h->shape[1];
    if (rs->d_logits) {
        int R = (int)(rs->logits.shape[0] * rs->logits.shape[1]); /* T, or B with logit positions */
        float *dl;
        VENE_GALLOC(dl, (size_t)R * V);
        memcpy(dl, rs->d_logits, sizeof(float) * (size_t)R * V);
        vene_tensor g = vene_tensor_3d(dl, rs->logits.shape[0], rs->logits.shape[1], V);
        VENE_FIRE_BACK(rs, site_out, -1, &g, err);
        float *dW = vene_run_grad_of(rs, W);
        /* a loss at a few positions leaves most rows zero: move the live ones to the front
         * (the hooks are done with dl) and multiply them in one product */
        int *at = (int *)(void *)vene_arena_floats(&rs->garena, (size_t)R);
        if (!at) return vene_errorf(err, VENE_ERR_MEMORY, "gradient arena exhausted (sizing bug)");
        const int *first = rs->grad_rows_on; /* rows nobody reads need no product */
        int n = 0;
        for (int r = 0; r < R; r++) {
            const float *row = dl + (int64_t)r * V;
            int b = rs->logit_pos ? r : r / S, s = rs->logit_pos ? vene_run_logit_row(rs, r) : r % S;
            if (first && s < first[b]) continue;
            int live = 0;
            for (int j = 0; j < V && !live; j++) live = row[j] != 0.0f;
            if (!live) continue;
            if (n != r) memcpy(dl + (int64_t)n * V, row, sizeof(float) * (size_t)V);
            at[n++] = rs->logit_pos ? r * S + s : r;
        }
        if (n == T && !rs->logit_pos) { /* every position: the hidden rows as they are */
            vk_linear_out_in_backward(dl, h->data, W, d_hidden, dW, NULL, T, D, V);
        } else if (n > 0) {
            float *hin, *dh;
            VENE_GALLOC(hin, (size_t)n * D);
            VENE_GALLOC(dh, (size_t)n * D);
            for (int i = 0; i < n; i++) memcpy(hin + (int64_t)i * D, h->data + (int64_t)at[i] * D, sizeof(float) * D);
            vk_linear_out_in_backward(dl, hin, W, dh, dW, NULL, n, D, V);
            for (int i = 0; i < n; i++) vk_acc(dh + (int64_t)i * D, d_hidden + (int64_t)at[i] * D, D);
        }
    }
    if (rs->d_hidden) vk_acc(rs->d_hidden, d_hidden, (int64_t)T * D);
    vene_tensor g = vene_tensor_3d(d_hidden, h->shape[0], h->shape[1], D);
    VENE_FIRE_BACK(rs, site_in, -1, &g, err);
    return VENE_OK;
}

int vene_backward(vene_run *rs, const vene_tensor *d_logits, const vene_tensor *d_hidden, vene_error *err) {
    if (!rs) return vene_errorf(err, VENE_ERR_ARG, "vene_backward: NULL run state");
    const vene_model *m = rs->m;
    if (rs->grad_mode == VENE_GRAD_NONE)
        return vene_errorf(err, VENE_ERR_STATE, "vene_backward: gradients are off (call vene_run_set_grad before the forward)");
    if (!rs->saved)
        return vene_errorf(err, VENE_ERR_STATE, "vene_backward: no forward in gradient mode to go back through");
    const vene_tensor *h = &rs->last_hidden;
    char a[64], b[64];
    if (d_logits) {
        if (!rs->has_logits)
            return vene_errorf(err, VENE_ERR_ARG, "vene_backward: d_logits given but %s has no LM head", m->model_class);
        if (!vene_tensor_same_shape(d_logits, &rs->logits))
            return vene_errorf(err, VENE_ERR_ARG, "vene_backward: d_logits is %s, the logits are %s",
                               vene_shape_str(d_logits, a, sizeof a), vene_shape_str(&rs->logits, b, sizeof b));
    }
    if (d_hidden && !vene_tensor_same_shape(d_hidden, h))
        return vene_errorf(err, VENE_ERR_ARG, "vene_backward: d_hidden is %s, the last hidden state is %s",
                           vene_shape_str(d_hidden, a, sizeof a), vene_shape_str(h, b, sizeof b));
    rs->d_logits = d_logits ? d_logits->data : NULL;
    rs->d_hidden = d_hidden ? d_hidden->data : NULL;
    size_t n = (size_t)m->arch->n_sites * (size_t)(m->n_layer + 1);
    memcpy(rs->bcall_count, rs->call_count, sizeof(int) * n);
    size_t need = m->arch->run_bytes(m, rs->B, rs->S) + m->arch->grad_bytes(m, rs->B, rs->S);
    int rc = vene_arena_reserve(&rs->garena, need, err);
    if (rc) return rc;
    vene_arena_reset(&rs->garena);
    vene_run_restrict_rows(rs, NULL); /* a row-restricted backward sets its rows */
    rc = m->arch->backward(rs, err);
    rs->grad_rows_on = NULL;
    rs->d_logits = rs->d_hidden = NULL;
    return rc == VENE_STOP ? VENE_OK : rc;
}

void vene_run_zero_grad(vene_run *rs) {
    if (rs && rs->param_grads) memset(rs->param_grads, 0, sizeof(float) * (size_t)rs->m->n_params);
}

int vene_run_param_grad(vene_run *rs, const char *name, vene_tensor *out, vene_error *err) {
    if (!rs || !name || !out) return vene_errorf(err, VENE_ERR_ARG, "vene_run_param_grad: NULL argument");
    const vene_model *m = rs->m;
    if (!rs->param_grads)
        return vene_errorf(err, VENE_ERR_STATE, "weight gradients are off (vene_run_set_grad with VENE_GRAD_MODEL)");
    size_t pl = strlen(m->path_prefix);
    if (pl && strncmp(name, m->path_prefix, pl) == 0) name += pl;
    for (int i = 0; i < m->n_param_tensors; i++) {
        const vene_param *p = &m->params[i];
        if (strcmp(p->name, name) != 0) continue;
        *out = vene_tensor_view(rs->param_grads + p->offset, p->ndim, p->shape);
        return VENE_OK;
    }
    return vene_errorf(err, VENE_ERR_ARG, "no weight named \"%s\" in %s", name, m->dir);
}

size_t vene_run_grad_bytes(const vene_run *rs) {
    if (!rs) return 0;
    return rs->arena.cap + rs->garena.cap + (rs->param_grads ? sizeof(float) * (size_t)rs->m->n_params : 0);
}

int vene_model_set_trainable(vene_model *m, vene_error *err) {
    if (!m) return vene_errorf(err, VENE_ERR_ARG, "vene_model_set_trainable: NULL model");
    if (m->trainable) return VENE_OK;
    int rc = vene_weights_make_writable(m->weights, err);
    if (rc) return vene_error_prefix(err, "%s", m->dir);
    m->trainable = 1;
    return VENE_OK;
}

int vene_model_is_trainable(const vene_model *m) { return m && m->trainable; }
