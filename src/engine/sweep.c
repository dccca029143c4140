/* Patching sweeps (vene_sweep): check the runs and cells, resolve each cell to a site,
 * columns and the rows it must recompute, size the caches and chunks, then run the
 * chunks (sweep_exec.c). */
#include "engine/sweep.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/engine.h"

#define DEFAULT_MAX_MEMORY ((size_t)1 << 30)
#define HEAD_ROWS 64 /* most rows per head call */

static int check_runs(const vene_model *m, const vene_sweep_run *runs, int n_runs, vene_error *err) {
    if (n_runs <= 0 || !runs) return vene_errorf(err, VENE_ERR_ARG, "sweep: no runs");
    for (int r = 0; r < n_runs; r++) {
        const vene_sweep_run *u = &runs[r];
        if (!u->ids || u->len <= 0 || u->len > m->n_ctx)
            return vene_errorf(err, VENE_ERR_ARG, "sweep: run %d has %d tokens (1 .. %d expected)", r, u->len, m->n_ctx);
        for (int i = 0; i < u->len; i++)
            if (u->ids[i] < 0 || u->ids[i] >= m->vocab_size)
                return vene_errorf(err, VENE_ERR_RANGE, "sweep: run %d: token id %d at %d out of range (vocab size %d)", r,
                                   u->ids[i], i, m->vocab_size);
        if (u->n_noise < 0 || (u->n_noise > 0 && (!u->noise_pos || !u->noise)))
            return vene_errorf(err, VENE_ERR_ARG, "sweep: run %d: %d noise positions without positions or noise", r,
                               u->n_noise);
        for (int i = 0; i < u->n_noise; i++)
            if (u->noise_pos[i] < 0 || u->noise_pos[i] >= u->len)
                return vene_errorf(err, VENE_ERR_RANGE, "sweep: run %d: noise position %d out of range (%d tokens)", r,
                                   u->noise_pos[i], u->len);
    }
    return VENE_OK;
}

/* A component's site and columns, through the engine's own resolution (config.c). */
static int resolve(const vene_model *m, const char *component, int layer, int head, int *site, int *col0, int *ncols,
                   const char *who, vene_error *err) {
    vene_repr r = {.layer = layer, .component = (char *)component, .unit = (char *)(head >= 0 ? "h.pos" : "pos"), .max_units = 1};
    vene_where w;
    vene_error sub = {0};
    if (vene_resolve_where(m, &r, 0, &w, &sub))
        return vene_errorf(err, sub.code, "%s: component \"%s\" at layer %d: %s", who, component, layer,
                           strstr(sub.msg, ": ") ? strstr(sub.msg, ": ") + 2 : sub.msg);
    int64_t shape[VENE_MAX_DIMS];
    if (m->arch->site_shape(m, w.site, 1, 1, shape) != 3)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: component \"%s\" is not one vector per position (%s); sweeps "
                           "patch positions", who, component, m->arch->sites[w.site].shape);
    int width = (int)shape[2];
    *site = w.site;
    *col0 = 0;
    *ncols = width;
    if (w.split != VENE_SPLIT_NONE) {
        *ncols = width / 3;
        *col0 = (w.split - VENE_SPLIT_THIRD0) * *ncols;
    }
    if ((head >= 0) != (w.n_heads > 0))
        return vene_errorf(err, VENE_ERR_ARG, "%s: component \"%s\" %s", who, component,
                           head >= 0 ? "has no heads (head must be -1)" : "is split into heads: give a head");
    if (head >= 0) {
        if (head >= w.n_heads)
            return vene_errorf(err, VENE_ERR_RANGE, "%s: head %d out of range (%d heads)", who, head, w.n_heads);
        *col0 += head * (*ncols / w.n_heads);
        *ncols /= w.n_heads;
    }
    return VENE_OK;
}

static int cmp_int(const void *a, const void *b) { return (*(const int *)a > *(const int *)b) - (*(const int *)a < *(const int *)b); }

/* Positions before which two runs compute the same thing: the same tokens and no noise. */
static int same_prefix(const vene_sweep_run *a, const vene_sweep_run *b) {
    int q = 0;
    while (q < a->len && q < b->len && a->ids[q] == b->ids[q]) q++;
    for (int i = 0; i < a->n_noise; i++) q = a->noise_pos[i] < q ? a->noise_pos[i] : q;
    for (int i = 0; i < b->n_noise; i++) q = b->noise_pos[i] < q ? b->noise_pos[i] : q;
    return q;
}

static int plan_cell(sweep *sw, int i, const vene_sweep_cell *c, vene_error *err) {
    const vene_model *m = sw->m;
    sweep_cell *p = &sw->cells[i];
    char who[48];
    snprintf(who, sizeof who, "sweep: cell %d", i);
    if (c->base < 0 || c->base >= sw->n_runs || c->source < 0 || c->source >= sw->n_runs)
        return vene_errorf(err, VENE_ERR_RANGE, "%s: runs %d -> %d out of range (%d runs)", who, c->source, c->base,
                           sw->n_runs);
    if (sw->runs[c->base].len != sw->runs[c->source].len)
        return vene_errorf(err, VENE_ERR_ARG, "%s: source run %d has %d tokens, base run %d has %d (they must match)", who,
                           c->source, sw->runs[c->source].len, c->base, sw->runs[c->base].len);
    if (!c->component) return vene_errorf(err, VENE_ERR_ARG, "%s: no component", who);
    int n_layers = c->n_layers ? c->n_layers : 1;
    if (c->layer < 0 || n_layers < 0 || c->layer + n_layers > m->n_layer)
        return vene_errorf(err, VENE_ERR_RANGE, "%s: layers %d .. %d out of range (%d layers)", who, c->layer,
                           c->layer + n_layers - 1, m->n_layer);
    if (c->n_positions <= 0 || !c->positions) return vene_errorf(err, VENE_ERR_ARG, "%s: no positions", who);
    p->base = c->base;
    p->source = c->source;
    p->len = sw->runs[c->base].len;
    p->pos = malloc(sizeof(int) * (size_t)c->n_positions);
    if (!p->pos) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    memcpy(p->pos, c->positions, sizeof(int) * (size_t)c->n_positions);
    qsort(p->pos, (size_t)c->n_positions, sizeof(int), cmp_int);
    p->n_pos = 0;
    for (int k = 0; k < c->n_positions; k++) {
        if (p->pos[k] < 0 || p->pos[k] >= p->len)
            return vene_errorf(err, VENE_ERR_RANGE, "%s: position %d out of range (%d tokens)", who, p->pos[k], p->len);
        if (!p->n_pos || p->pos[p->n_pos - 1] != p->pos[k]) p->pos[p->n_pos++] = p->pos[k];
    }
    p->pmin = p->pos[0];
    p->rows = p->len - p->pmin;
    int rc = resolve(m, c->component, c->layer, c->head, &p->site, &p->col0, &p->ncols, who, err);
    if (rc) return rc;
    if (p->pos[p->n_pos - 1] < same_prefix(&sw->runs[p->base], &sw->runs[p->source])) {
        /* both runs are the same computation up to the restored positions: nothing changes
         * (ROME's restores before the subject); the cell is its base run */
        p->kind = SWEEP_NOOP;
        p->join = sw->L;
        p->rows = 0;
        return VENE_OK;
    }
    int out = !strcmp(c->component, "block_output");
    if (out || !strcmp(c->component, "block_input")) {
        /* the residual between blocks: restored in the input of the first layer computed */
        p->kind = SWEEP_RESID;
        p->first = c->layer + out;
        p->last = p->first + n_layers - 1;
        p->join = p->first;
        return VENE_OK;
    }
    p->kind = SWEEP_SITE;
    p->first = p->join = c->layer;
    p->last = c->layer + n_layers - 1;
    for (p->used = 0; p->used < sw->n_used && sw->used_site[p->used] != p->site; p->used++) {}
    if (p->used == sw->n_used) {
        if (sw->n_used == SWEEP_MAX_SITES)
            return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: more than %d different sites in one sweep", who,
                               SWEEP_MAX_SITES);
        int64_t shape[VENE_MAX_DIMS];
        m->arch->site_shape(m, p->site, 1, 1, shape);
        sw->used_site[sw->n_used] = p->site;
        sw->used_width[sw->n_used++] = (int)shape[2];
    }
    return VENE_OK;
}

static float *cache_alloc(sweep *sw, float **slot, size_t floats, vene_error *err) {
    if (*slot) return *slot;
    *slot = malloc(sizeof(float) * floats);
    if (!*slot) {
        vene_errorf(err, VENE_ERR_MEMORY, "sweep: out of memory for the runs' caches");
        return NULL;
    }
    sw->cache_bytes += sizeof(float) * floats;
    return *slot;
}

/* The runs' caches: residuals of every run, keys and values of base runs, and the sites
 * that restores read from source runs at the layers they need. */
static int alloc_caches(sweep *sw, vene_error *err) {
    const int L = sw->L, R = sw->n_runs;
    sw->h = calloc((size_t)R * (L + 1), sizeof(float *));
    sw->kv = calloc((size_t)R * L, sizeof(float *));
    sw->rec = calloc((size_t)(sw->n_used ? sw->n_used : 1) * R * L, sizeof(float *));
    if (!sw->h || !sw->kv || !sw->rec) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    for (int r = 0; r < R; r++) { /* every run's last layer keys: its own last row reads them */
        for (int i = 0; i <= L; i++)
            if (!cache_alloc(sw, &sw->h[r * (L + 1) + i], (size_t)sw->runs[r].len * sw->D, err)) return VENE_ERR_MEMORY;
        if (!cache_alloc(sw, &sw->kv[r * L + L - 1], (size_t)sw->runs[r].len * 2 * sw->W, err)) return VENE_ERR_MEMORY;
    }
    for (int c = 0; c < sw->n_cells; c++) {
        const sweep_cell *p = &sw->cells[c];
        for (int l = p->join; l < L; l++)
            if (!cache_alloc(sw, &sw->kv[p->base * L + l], (size_t)p->len * 2 * sw->W, err)) return VENE_ERR_MEMORY;
        if (p->kind == SWEEP_SITE)
            for (int l = p->first; l <= p->last; l++)
                if (!cache_alloc(sw, &sw->rec[(p->used * R + p->source) * L + l], (size_t)p->len * sw->used_width[p->used],
                                 err))
                    return VENE_ERR_MEMORY;
    }
    return VENE_OK;
}

static int find_component_site(const vene_model *m, const char *name, int *site, int *col0, vene_error *err) {
    int ncols;
    return resolve(m, name, 0, -1, site, col0, &ncols, "sweep", err);
}

static int sweep_setup(sweep *sw, const vene_sweep_cell *cells, vene_error *err) {
    const vene_model *m = sw->m;
    int rc, dummy;
    if ((rc = find_component_site(m, "block_input", &sw->site_hin, &dummy, err)) ||
        (rc = find_component_site(m, "block_output", &sw->site_hout, &dummy, err)) ||
        (rc = find_component_site(m, "key_output", &sw->site_k, &sw->col_k, err)) ||
        (rc = find_component_site(m, "value_output", &dummy, &sw->col_v, err)))
        return rc;
    sw->cells = calloc((size_t)(sw->n_cells ? sw->n_cells : 1), sizeof *sw->cells);
    sw->order = malloc(sizeof(int) * (size_t)(sw->n_cells ? sw->n_cells : 1));
    sw->run_row0 = malloc(sizeof(int) * (size_t)sw->n_runs);
    if (!sw->cells || !sw->order || !sw->run_row0) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    for (int c = 0; c < sw->n_cells; c++)
        if ((rc = plan_cell(sw, c, &cells[c], err))) return rc;
    /* cells by join layer (stable): at each layer the active cells are a prefix */
    int k = 0;
    for (int l = 0; l <= sw->L; l++)
        for (int c = 0; c < sw->n_cells; c++)
            if (sw->cells[c].join == l) sw->order[k++] = c;
    return alloc_caches(sw, err);
}

/* Bytes of model scratch per row of a layer call (the run state's arena), without the
 * logits a layer call never reaches. */
static size_t bytes_per_row(const vene_model *m) {
    size_t one = m->arch->run_bytes(m, 1, 1), two = m->arch->run_bytes(m, 2, 1);
    size_t row = two - one, logits = sizeof(float) * (size_t)m->vocab_size;
    return (row > logits ? row - logits : row) + sizeof(float) * (size_t)m->d_model;
}

/* A cell's share of a chunk: its rows, and its keys and values at the last layer. */
static size_t cell_bytes(const sweep *sw, const sweep_cell *p) {
    return p->join < sw->L ? (size_t)p->rows * sw->row_bytes + sizeof(float) * (size_t)p->len * 2 * sw->W : 0;
}

static void sweep_free(sweep *sw) {
    for (int c = 0; sw->cells && c < sw->n_cells; c++) free(sw->cells[c].pos);
    const int R = sw->n_runs, L = sw->L;
    for (int i = 0; sw->h && i < R * (L + 1); i++) free(sw->h[i]);
    for (int i = 0; sw->kv && i < R * L; i++) free(sw->kv[i]);
    for (int i = 0; sw->rec && i < (sw->n_used ? sw->n_used : 1) * R * L; i++) free(sw->rec[i]);
    free(sw->h);
    free(sw->kv);
    free(sw->rec);
    free(sw->cells);
    free(sw->order);
    free(sw->run_row0);
    free(sw->resid);
    free(sw->tail_kv);
    free(sw->rcells);
    vene_run_free(sw->rs);
}

int vene_sweep(const vene_model *m, const vene_sweep_run *runs, int n_runs, const vene_sweep_cell *cells, int n_cells,
               const vene_sweep_params *p, vene_sweep_stats *stats, vene_error *err) {
    if (stats) memset(stats, 0, sizeof *stats);
    if (!m || !p || !p->on_logits) return vene_errorf(err, VENE_ERR_ARG, "sweep: model and on_logits are required");
    if (!m->arch->resumable)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "sweep: %s models cannot resume part-way (sweeps support gpt2)",
                           m->arch->model_type);
    if (!m->has_lm_head) return vene_errorf(err, VENE_ERR_UNSUPPORTED, "sweep: %s has no LM head to score", m->model_class);
    if (n_cells < 0 || (n_cells > 0 && !cells)) return vene_errorf(err, VENE_ERR_ARG, "sweep: %d cells without cells", n_cells);
    int rc = check_runs(m, runs, n_runs, err);
    if (rc) return rc;
    sweep sw = {.m = m, .L = m->n_layer, .D = m->d_model, .W = m->n_kv_head * m->head_dim, .V = m->vocab_size,
                .runs = runs, .n_runs = n_runs, .n_cells = n_cells, .p = p};
    if ((rc = sweep_setup(&sw, cells, err)) || (rc = vene_run_new(m, &sw.rs, err))) goto done;

    /* the caches stay; layer calls (rows x row_bytes, and each cell's keys and values of the
     * last layer) and head calls (head_rows x logits) take turns in the run state's scratch */
    size_t budget = p->max_memory ? p->max_memory : DEFAULT_MAX_MEMORY;
    sw.row_bytes = bytes_per_row(m);
    size_t base_bytes = 0, widest = 0, head_row = m->arch->run_bytes(m, 2, 1) - m->arch->run_bytes(m, 1, 1);
    for (int r = 0; r < n_runs; r++) base_bytes += (size_t)runs[r].len * sw.row_bytes;
    for (int c = 0; c < n_cells; c++)
        if (cell_bytes(&sw, &sw.cells[c]) > widest) widest = cell_bytes(&sw, &sw.cells[c]);
    size_t need = base_bytes > widest ? base_bytes : widest;
    if (budget <= sw.cache_bytes) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "sweep: max_memory %zu KB is too little: the runs' caches need %zu KB",
                         budget >> 10, sw.cache_bytes >> 10);
        goto done;
    }
    /* a quarter for the head's logits (at least one row), the rest for the layers */
    size_t chunk = budget - sw.cache_bytes, heads = chunk / 4 / head_row;
    sw.head_rows = heads > HEAD_ROWS ? HEAD_ROWS : heads < 1 ? 1 : (int)heads;
    size_t head_bytes = m->arch->run_bytes(m, sw.head_rows, 1);
    chunk = chunk > head_bytes ? chunk - head_bytes : 0;
    if (chunk < need) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "sweep: max_memory %zu KB is too little: the runs' caches need %zu KB, the "
                         "head %zu KB and the widest batch %zu KB more", budget >> 10, sw.cache_bytes >> 10,
                         head_bytes >> 10, need >> 10);
        goto done;
    }

    /* planned work, for progress: the runs once, then each cell from its join layer (the
     * last layer twice: keys and values of every row, then the last row) */
    sw.total_units = n_runs + n_cells; /* the head's rows */
    for (int r = 0; r < n_runs; r++) sw.total_units += (int64_t)runs[r].len * sw.L + 1;
    for (int c = 0; c < n_cells; c++)
        if (sw.cells[c].join < sw.L) sw.total_units += (int64_t)sw.cells[c].rows * (sw.L - sw.cells[c].join) + 1;
    if ((rc = vene_sweep_embed(&sw, err))) goto done;
    int first = 0, chunk0 = 1;
    while (chunk0 || first < n_cells) {
        size_t used = chunk0 ? base_bytes : 0;
        int k = first;
        while (k < n_cells && used + cell_bytes(&sw, &sw.cells[sw.order[k]]) <= chunk)
            used += cell_bytes(&sw, &sw.cells[sw.order[k++]]);
        sw.chunk0 = chunk0;
        if ((rc = vene_sweep_chunk(&sw, first, k - first, err))) goto done;
        first = k;
        chunk0 = 0;
    }
    for (int c = 0; c < n_cells; c++) sw.st.naive_units += (int64_t)sw.L * sw.cells[c].len;
    sw.st.peak_bytes += sw.cache_bytes;
    if (stats) *stats = sw.st;
done:
    sweep_free(&sw);
    return rc;
}

int vene_sweep_noise_level(const vene_model *m, float *level, vene_error *err) {
    static const char *const names[] = {"wte.weight", "embed_tokens.weight", "embed_in.weight"};
    const float *w = NULL;
    int64_t shape[2] = {m->vocab_size, m->d_model};
    for (size_t i = 0; i < sizeof names / sizeof names[0] && !w; i++) {
        if (!vene_weights_has(m->weights, names[i])) continue;
        int rc = vene_weights_get(m->weights, names[i], 2, shape, &w, err);
        if (rc) return rc;
    }
    if (!w) return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: no token embedding matrix found", m->dir);
    const size_t n = (size_t)shape[0] * (size_t)shape[1];
    double sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++) sum += w[i];
    const double mean = sum / (double)n;
    for (size_t i = 0; i < n; i++) sq += ((double)w[i] - mean) * ((double)w[i] - mean);
    *level = (float)(3.0 * sqrt(sq / (double)n));
    return VENE_OK;
}
