/* Internal state of a patching sweep (vene_sweep, include/vene.h): the cells resolved to
 * hook sites and row ranges, the runs' caches, and the hooks that restore and record
 * while the model resumes layer by layer (models/resume.h). sweep.c plans and checks;
 * sweep_exec.c runs the chunks. */
#ifndef VENE_ENGINE_SWEEP_H
#define VENE_ENGINE_SWEEP_H

#include "models/model.h"
#include "models/resume.h"
#include "vene.h"

/* How a cell's restore reaches the model: a hook on a site inside the blocks, or the
 * residual stream between blocks (block_input of layer l = block_output of layer l - 1),
 * read from the runs' residual caches; or not at all, when the source and the base are the
 * same computation at the restored positions. */
enum { SWEEP_SITE, SWEEP_RESID, SWEEP_NOOP };

typedef struct sweep_cell {
    int base, source, len;
    int kind;
    int site, used;        /* SWEEP_SITE: the site, and its index among the recorded sites */
    int col0, ncols;       /* the restored columns of the site's tensor */
    int first, last;       /* SWEEP_SITE: layers; SWEEP_RESID: residual indices (0 = embeddings) */
    int join;              /* first layer computed (n_layer: only the head) */
    int pmin, rows;        /* it computes positions pmin .. len - 1 */
    int *pos, n_pos;       /* restored positions, sorted, unique (owned) */
    int row0;              /* during a chunk: its first row in the batch */
    size_t kv_off;         /* during a chunk: its keys | values at the last layer, in tail_kv */
} sweep_cell;

#define SWEEP_MAX_SITES 16

typedef struct sweep {
    const vene_model *m;
    vene_run *rs;
    int L, D, W, V;               /* layers, width, key width (kv heads x head_dim), vocab */
    int site_hin, site_hout;      /* block_input / block_output sites */
    int site_k, col_k, col_v;     /* keys and values: their site and first columns */
    const vene_sweep_run *runs;
    int n_runs, *run_row0;        /* baseline rows of chunk 0 */
    sweep_cell *cells;
    int n_cells, *order;          /* cells by join layer */
    int n_used, used_site[SWEEP_MAX_SITES], used_width[SWEEP_MAX_SITES];
    float **h;                    /* h[r * (L + 1) + i]: run r's residual entering layer i (i = L: after the last) */
    float **kv;                   /* kv[r * L + l]: base run r's keys | values at layer l, rows of 2W */
    float **rec;                  /* rec[(u * n_runs + r) * L + l]: source run r's rows of recorded site u */
    size_t cache_bytes, row_bytes;
    int head_rows;                /* rows per head call (each has vocab_size logits) */
    /* the chunk being run */
    int chunk0;                   /* it includes the runs themselves */
    int first, n_active;          /* active cells: order[first .. first + n_active - 1] */
    int base_rows;                /* rows of the runs (chunk 0), before the cells' */
    int tail;                     /* the last layer's second call: every row its sequence's last */
    float *resid;                 /* max_rows x D: the residual between layer calls */
    float *tail_kv;               /* the active cells' keys | values at the last layer, len x 2W each */
    vene_resume_cell *rcells;
    const vene_sweep_params *p;
    vene_sweep_stats st;
    int64_t done_units, total_units; /* progress: positions x layers, plus one per head row */
} sweep;

/* sweep_exec.c */
int vene_sweep_embed(sweep *sw, vene_error *err);
int vene_sweep_chunk(sweep *sw, int first_cell, int n_cells, vene_error *err);

#endif
