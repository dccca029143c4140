/* Running a sweep: the runs' embeddings (with their noise), then per chunk one resumed
 * forward per layer over the rows of every active cell (models/resume.h), hooks that
 * record the runs' caches and write the cells' restores, and the head over each cell's
 * last row.
 *
 * Only the last position is scored, so the last layer runs in two calls: every row up to
 * its keys and values (later positions attend to them), then the last rows alone through
 * the rest of the block. */
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/tensor.h"
#include "engine/sweep.h"

/* ---------------------------------------------------------------- embeddings */

typedef struct embed_batch {
    sweep *sw;
    const int *which; /* the runs of the batch's rows */
    int n;
} embed_batch;

/* pyvene's NoiseIntervention on block_input of layer 0, run by run. */
static int embed_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)where;
    (void)err;
    embed_batch *e = user;
    sweep *sw = e->sw;
    const int S = (int)t->shape[1], D = sw->D;
    for (int b = 0; b < e->n; b++) {
        const vene_sweep_run *u = &sw->runs[e->which[b]];
        float *rows = t->data + (size_t)b * S * D;
        for (int i = 0; i < u->n_noise; i++) {
            float *x = rows + (size_t)u->noise_pos[i] * D;
            const double *nz = u->noise + (size_t)i * D;
            for (int c = 0; c < D; c++) x[c] = (float)((double)x[c] + nz[c] * (double)u->noise_level);
        }
        memcpy(sw->h[e->which[b] * (sw->L + 1)], rows, sizeof(float) * (size_t)S * D);
    }
    return VENE_STOP;
}

int vene_sweep_embed(sweep *sw, vene_error *err) {
    int *which = malloc(sizeof(int) * (size_t)sw->n_runs), *done = calloc((size_t)sw->n_runs, sizeof(int));
    int32_t *ids = NULL;
    int rc = VENE_OK;
    if (!which || !done) rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    for (int r = 0; !rc && r < sw->n_runs; r++) { /* one forward per distinct length */
        if (done[r]) continue;
        const int S = sw->runs[r].len;
        int n = 0;
        for (int q = r; q < sw->n_runs; q++)
            if (!done[q] && sw->runs[q].len == S) which[n++] = q, done[q] = 1;
        int32_t *grown = realloc(ids, sizeof(int32_t) * (size_t)n * S);
        if (!grown) {
            rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
            break;
        }
        ids = grown;
        for (int b = 0; b < n; b++) memcpy(ids + (size_t)b * S, sw->runs[which[b]].ids, sizeof(int32_t) * (size_t)S);
        embed_batch e = {sw, which, n};
        vene_batch in = {n, S, ids, NULL, NULL, NULL};
        vene_run_clear_hooks(sw->rs);
        if ((rc = vene_run_add_hook(sw->rs, sw->site_hin, 0, embed_hook, &e, err))) break;
        rc = vene_forward(sw->rs, &in, err);
        sw->st.forwards++;
        if (rc == VENE_STOP) rc = VENE_OK;
        else if (rc == VENE_OK) rc = vene_errorf(err, VENE_ERR_STATE, "sweep: the forward never reached block_input of layer 0");
    }
    vene_run_clear_hooks(sw->rs);
    free(which);
    free(done);
    free(ids);
    return rc;
}

/* ---------------------------------------------------------------- layer calls */

static size_t row_width(const vene_tensor *t) { return (size_t)t->shape[t->ndim - 1]; }

/* The first position of a run's or a cell's rows in the current call. */
static int run_first(const sweep *sw, int r) { return sw->tail ? sw->runs[r].len - 1 : 0; }
static int cell_first(const sweep *sw, const sweep_cell *p) { return sw->tail ? p->len - 1 : p->pmin; }

/* The runs' own keys and values at this layer (chunk 0), before attention reads them. */
static int hook_kv(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)err;
    sweep *sw = user;
    const size_t tw = row_width(t), W = (size_t)sw->W;
    for (int r = 0; r < sw->n_runs; r++) {
        float *kv = sw->kv[r * sw->L + where->layer];
        if (!kv) continue;
        for (int j = 0; j < sw->runs[r].len; j++) {
            const float *row = t->data + (size_t)(sw->run_row0[r] + j) * tw;
            memcpy(kv + 2 * W * j, row + sw->col_k, sizeof(float) * W);
            memcpy(kv + 2 * W * j + W, row + sw->col_v, sizeof(float) * W);
        }
    }
    return VENE_OK;
}

/* Source runs' activations at a site the cells restore (chunk 0). */
static int hook_record(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)err;
    sweep *sw = user;
    int u = 0;
    while (sw->used_site[u] != where->site) u++;
    const size_t tw = row_width(t);
    for (int r = 0; r < sw->n_runs; r++) {
        float *rec = sw->rec[(u * sw->n_runs + r) * sw->L + where->layer];
        size_t f = (size_t)run_first(sw, r);
        if (rec)
            memcpy(rec + f * tw, t->data + (size_t)sw->run_row0[r] * tw, sizeof(float) * tw * (sw->runs[r].len - f));
    }
    return VENE_OK;
}

/* Does cell p write at (site, layer)? Residual restores after the first one land on
 * block_output of the layer before. */
static const float *restore_source(const sweep *sw, const sweep_cell *p, int site, int layer, size_t *width) {
    if (p->kind == SWEEP_SITE) {
        if (site != p->site || layer < p->first || layer > p->last) return NULL;
        *width = (size_t)sw->used_width[p->used];
        return sw->rec[(p->used * sw->n_runs + p->source) * sw->L + layer];
    }
    if (site != sw->site_hout || layer + 1 <= p->first || layer + 1 > p->last) return NULL;
    *width = (size_t)sw->D;
    return sw->h[p->source * (sw->L + 1) + layer + 1];
}

/* rows hold positions first .. of the cell: write its restored positions among them. */
static void restore_rows(const sweep_cell *p, int first, float *rows, size_t tw, const float *src, size_t width) {
    for (int k = 0; k < p->n_pos; k++)
        if (p->pos[k] >= first)
            memcpy(rows + (size_t)(p->pos[k] - first) * tw + p->col0, src + (size_t)p->pos[k] * width + p->col0,
                   sizeof(float) * (size_t)p->ncols);
}

static int hook_restore(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)err;
    sweep *sw = user;
    const size_t tw = row_width(t);
    for (int a = 0; a < sw->n_active; a++) {
        const sweep_cell *p = &sw->cells[sw->order[sw->first + a]];
        size_t width = 0;
        const float *src = restore_source(sw, p, where->site, where->layer, &width);
        if (src) restore_rows(p, cell_first(sw, p), t->data + (size_t)p->row0 * tw, tw, src, width);
    }
    return VENE_OK;
}

/* The runs' residuals after the layer (chunk 0), before restores read them. */
static int hook_resid(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)err;
    sweep *sw = user;
    const size_t D = (size_t)sw->D;
    for (int r = 0; r < sw->n_runs; r++) {
        size_t f = (size_t)run_first(sw, r);
        memcpy(sw->h[r * (sw->L + 1) + where->layer + 1] + f * D, t->data + (size_t)sw->run_row0[r] * D,
               sizeof(float) * D * (sw->runs[r].len - f));
    }
    return VENE_OK;
}

/* End of the layer: every row for the next call. */
static int hook_out(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)where;
    (void)err;
    sweep *sw = user;
    memcpy(sw->resid, t->data, sizeof(float) * (size_t)vene_tensor_numel(t));
    return VENE_STOP;
}

/* The last layer's first call ends here: each cell's keys and values, after its base
 * run's for the positions before its own. */
static int hook_tail_kv(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)err;
    sweep *sw = user;
    const size_t tw = row_width(t), W = (size_t)sw->W;
    for (int a = 0; a < sw->n_active; a++) {
        const sweep_cell *p = &sw->cells[sw->order[sw->first + a]];
        float *kv = sw->tail_kv + p->kv_off;
        memcpy(kv, sw->kv[p->base * sw->L + where->layer], sizeof(float) * 2 * W * (size_t)p->pmin);
        for (int j = p->pmin; j < p->len; j++) {
            const float *row = t->data + (size_t)(p->row0 + j - p->pmin) * tw;
            memcpy(kv + 2 * W * j, row + sw->col_k, sizeof(float) * W);
            memcpy(kv + 2 * W * j + W, row + sw->col_v, sizeof(float) * W);
        }
    }
    return VENE_STOP;
}

static int needs_site(const sweep *sw, int site, int layer) {
    for (int a = 0; a < sw->n_active; a++) {
        size_t w;
        if (restore_source(sw, &sw->cells[sw->order[sw->first + a]], site, layer, &w)) return 1;
    }
    return 0;
}

/* Hooks of a layer call, in the order they must fire on a shared site: records of the
 * runs, restores of the cells, then the end of the call (kv_end: at the keys). */
static int add_hooks(sweep *sw, int l, int kv_end, vene_error *err) {
    vene_run *rs = sw->rs;
    int rc = VENE_OK;
    vene_run_clear_hooks(rs);
    if (sw->chunk0) {
        int any = 0;
        for (int r = 0; r < sw->n_runs; r++) any |= sw->kv[r * sw->L + l] != NULL;
        if (any && !sw->tail && (rc = vene_run_add_hook(rs, sw->site_k, l, hook_kv, sw, err))) return rc;
        for (int u = 0; u < sw->n_used; u++) {
            any = 0;
            for (int r = 0; r < sw->n_runs; r++) any |= sw->rec[(u * sw->n_runs + r) * sw->L + l] != NULL;
            if (any && (rc = vene_run_add_hook(rs, sw->used_site[u], l, hook_record, sw, err))) return rc;
        }
        if ((rc = vene_run_add_hook(rs, sw->site_hout, l, hook_resid, sw, err))) return rc;
    }
    for (int u = 0; u < sw->n_used; u++)
        if (needs_site(sw, sw->used_site[u], l) && (rc = vene_run_add_hook(rs, sw->used_site[u], l, hook_restore, sw, err)))
            return rc;
    if (needs_site(sw, sw->site_hout, l) && (rc = vene_run_add_hook(rs, sw->site_hout, l, hook_restore, sw, err))) return rc;
    if (kv_end) return vene_run_add_hook(rs, sw->site_k, l, hook_tail_kv, sw, err);
    return vene_run_add_hook(rs, sw->site_hout, l, hook_out, sw, err);
}

/* A joining cell's rows: its base run's residual entering layer l from its first
 * position on, with the source's rows where it restores the residual itself. */
static void join_rows(sweep *sw, sweep_cell *p, int l, int row0) {
    const size_t D = (size_t)sw->D;
    float *rows = sw->resid + (size_t)row0 * D;
    p->row0 = row0;
    memcpy(rows, sw->h[p->base * (sw->L + 1) + l] + (size_t)p->pmin * D, sizeof(float) * D * (size_t)p->rows);
    if (p->kind == SWEEP_RESID) restore_rows(p, p->pmin, rows, D, sw->h[p->source * (sw->L + 1) + l], D);
}

/* One resumed forward of layer l over the current rows; it must end in a hook's stop. */
static int forward_layer(sweep *sw, int l, int rows, int nc, int kv_end, vene_error *err) {
    vene_resume plan = {l, nc, sw->rcells};
    vene_batch in = {rows, 1, NULL, sw->resid, NULL, NULL};
    int rc = add_hooks(sw, l, kv_end, err);
    if (!rc) rc = vene_run_set_resume(sw->rs, &plan, err);
    if (!rc) rc = vene_forward(sw->rs, &in, err);
    sw->st.forwards++;
    vene_run_set_resume(sw->rs, NULL, NULL);
    if (rc == VENE_OK) rc = vene_errorf(err, VENE_ERR_STATE, "sweep: layer %d ran past its last hook", l);
    return rc == VENE_STOP ? VENE_OK : rc;
}

static void progress(sweep *sw, int64_t units) {
    sw->done_units += units;
    if (sw->p->on_progress) sw->p->on_progress(sw->p->user, sw->done_units, sw->total_units);
}

/* Layer l over the runs (chunk 0) and the active cells, from their first positions on;
 * at the last layer this call ends at the keys and values. */
static int layer_call(sweep *sw, int l, int n, int *rows, vene_error *err) {
    const int last = l == sw->L - 1;
    int n_active = sw->n_active;
    while (n_active < n && sw->cells[sw->order[sw->first + n_active]].join <= l) {
        sweep_cell *p = &sw->cells[sw->order[sw->first + n_active++]];
        join_rows(sw, p, l, *rows);
        *rows += p->rows;
    }
    sw->n_active = n_active;
    if (*rows == 0) return VENE_OK;
    int nc = 0;
    if (sw->chunk0)
        for (int r = 0; r < sw->n_runs; r++) sw->rcells[nc++] = (vene_resume_cell){sw->run_row0[r], sw->runs[r].len, 0, NULL, NULL, 0};
    for (int a = 0; a < n_active; a++) {
        const sweep_cell *p = &sw->cells[sw->order[sw->first + a]];
        const float *kv = sw->kv[p->base * sw->L + l];
        sw->rcells[nc++] = (vene_resume_cell){p->row0, p->rows, p->pmin, kv, kv + sw->W, 2 * sw->W};
    }
    int rc = forward_layer(sw, l, *rows, nc, last, err);
    if (rc) return rc;
    if (last) sw->st.kv_units += *rows;
    else sw->st.units += *rows;
    progress(sw, *rows);
    return VENE_OK;
}

/* The last layer's second call: each run's and active cell's last row alone, attending
 * over the keys and values of the first call. Rows move up in place to 0, 1, ... */
static int tail_call(sweep *sw, vene_error *err) {
    const int l = sw->L - 1;
    const size_t D = (size_t)sw->D;
    int k = 0;
    if (sw->chunk0)
        for (int r = 0; r < sw->n_runs; r++) {
            const float *kv = sw->kv[r * sw->L + l];
            memmove(sw->resid + k * D, sw->resid + (size_t)(sw->run_row0[r] + sw->runs[r].len - 1) * D, sizeof(float) * D);
            sw->rcells[k] = (vene_resume_cell){k, 1, sw->runs[r].len - 1, kv, kv + sw->W, 2 * sw->W};
            sw->run_row0[r] = k++;
        }
    for (int a = 0; a < sw->n_active; a++) {
        sweep_cell *p = &sw->cells[sw->order[sw->first + a]];
        const float *kv = sw->tail_kv + p->kv_off;
        memmove(sw->resid + k * D, sw->resid + (size_t)(p->row0 + p->rows - 1) * D, sizeof(float) * D);
        sw->rcells[k] = (vene_resume_cell){k, 1, p->len - 1, kv, kv + sw->W, 2 * sw->W};
        p->row0 = k++;
    }
    if (k == 0) return VENE_OK;
    sw->tail = 1;
    int rc = forward_layer(sw, l, k, k, 0, err);
    sw->tail = 0;
    if (rc) return rc;
    sw->st.units += k;
    progress(sw, k);
    return VENE_OK;
}

/* ---------------------------------------------------------------- head */

/* Logits of a batch of last rows: the resumed forward runs only the final norm and head. */
static int head_call(sweep *sw, const float *rows, const int *index, int n, vene_error *err) {
    vene_resume plan = {sw->L, 0, NULL};
    vene_batch in = {n, 1, NULL, rows, NULL, NULL};
    vene_run_clear_hooks(sw->rs);
    int rc = vene_run_set_resume(sw->rs, &plan, err);
    if (!rc) rc = vene_forward(sw->rs, &in, err);
    sw->st.forwards++;
    vene_run_set_resume(sw->rs, NULL, NULL);
    const vene_tensor *lg = rc ? NULL : vene_run_logits(sw->rs);
    if (!rc && !lg) rc = vene_errorf(err, VENE_ERR_STATE, "sweep: the model returned no logits");
    for (int i = 0; !rc && i < n; i++) rc = sw->p->on_logits(sw->p->user, index[i], lg->data + (size_t)i * sw->V, err);
    return rc;
}

/* The last row of each run (chunk 0) and cell of the chunk, through the head. */
static int heads(sweep *sw, int n, vene_error *err) {
    const size_t D = (size_t)sw->D;
    float *rows = malloc(sizeof(float) * D * (size_t)sw->head_rows);
    int *index = malloc(sizeof(int) * (size_t)sw->head_rows), k = 0, rc = VENE_OK;
    if (!rows || !index) rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    int total = (sw->chunk0 ? sw->n_runs : 0) + n;
    if (total == 0) goto out;
    /* batches of equal size: a last batch of one or two rows would take the slow sgemv path */
    int batches = (total + sw->head_rows - 1) / sw->head_rows, per = (total + batches - 1) / batches;
    for (int i = 0; !rc && i < total; i++) {
        const float *src;
        if (sw->chunk0 && i < sw->n_runs) {
            src = sw->h[i * (sw->L + 1) + sw->L] + (size_t)(sw->runs[i].len - 1) * D;
            index[k] = -1 - i;
        } else {
            int c = sw->order[sw->first + i - (sw->chunk0 ? sw->n_runs : 0)];
            const sweep_cell *p = &sw->cells[c];
            index[k] = c;
            if (p->join < sw->L) {
                src = sw->resid + (size_t)p->row0 * D; /* where the tail call left it */
            } else { /* block_output of the last layer, or nothing changed: nothing to run */
                int restored = p->kind == SWEEP_RESID && p->pos[p->n_pos - 1] == p->len - 1;
                src = sw->h[(restored ? p->source : p->base) * (sw->L + 1) + sw->L] + (size_t)(p->len - 1) * D;
            }
        }
        memcpy(rows + (size_t)k++ * D, src, sizeof(float) * D);
        if (k == per || i == total - 1) {
            rc = head_call(sw, rows, index, k, err);
            if (!rc) progress(sw, k);
            k = 0;
        }
    }
out:
    free(rows);
    free(index);
    return rc;
}

/* ---------------------------------------------------------------- a chunk */

int vene_sweep_chunk(sweep *sw, int first, int n, vene_error *err) {
    int rows = 0, total = 0, rc;
    size_t kv_floats = 0;
    if (sw->chunk0)
        for (int r = 0; r < sw->n_runs; r++) sw->run_row0[r] = rows, rows += sw->runs[r].len;
    sw->base_rows = total = rows;
    for (int i = 0; i < n; i++) {
        sweep_cell *p = &sw->cells[sw->order[first + i]];
        total += p->rows;
        p->kv_off = kv_floats;
        if (p->join < sw->L) kv_floats += (size_t)p->len * 2 * sw->W;
    }
    size_t cap = (size_t)(total ? total : 1);
    float *resid = realloc(sw->resid, sizeof(float) * cap * (size_t)sw->D);
    float *tail_kv = realloc(sw->tail_kv, sizeof(float) * (kv_floats ? kv_floats : 1));
    vene_resume_cell *rc_cells = realloc(sw->rcells, sizeof *rc_cells * (size_t)(sw->n_runs + n + 1));
    if (resid) sw->resid = resid;
    if (tail_kv) sw->tail_kv = tail_kv;
    if (rc_cells) sw->rcells = rc_cells;
    if (!resid || !tail_kv || !rc_cells) return vene_errorf(err, VENE_ERR_MEMORY, "sweep: out of memory for %d rows", total);
    /* the arena at its largest once, rather than regrown at every layer */
    if ((rc = vene_arena_reserve(&sw->rs->arena, sw->m->arch->run_bytes(sw->m, (int)cap, 1), err))) return rc;
    if (sw->chunk0)
        for (int r = 0; r < sw->n_runs; r++)
            memcpy(sw->resid + (size_t)sw->run_row0[r] * sw->D, sw->h[r * (sw->L + 1)],
                   sizeof(float) * (size_t)sw->runs[r].len * sw->D);
    sw->first = first;
    sw->n_active = 0;
    for (int l = 0; l < sw->L; l++)
        if ((rc = layer_call(sw, l, n, &rows, err))) return rc;
    if ((rc = tail_call(sw, err))) return rc;
    sw->st.chunks++;
    size_t in_use = sw->rs->arena.high_water + sizeof(float) * (cap * (size_t)sw->D + kv_floats);
    if (in_use > sw->st.peak_bytes) sw->st.peak_bytes = in_use;
    return heads(sw, n, err);
}
