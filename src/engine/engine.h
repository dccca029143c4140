/* Internal structures of the intervention engine (pyvene's IntervenableModel). */
#ifndef VENE_ENGINE_ENGINE_H
#define VENE_ENGINE_ENGINE_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "engine/interventions.h"
#include "models/model.h"
#include "vene.h"

enum { VENE_UNIT_POS, VENE_UNIT_H, VENE_UNIT_HPOS, VENE_UNIT_T };

/* One RepresentationConfig (spec §3.1). */
typedef struct vene_repr {
    int layer;
    char *component;
    char *unit;
    int max_units;
    int low_rank;            /* -1 = None */
    int iv_type;             /* vene_iv_type */
    int keep_last_dim;
    int instantiate;
    cJSON *partition;        /* owned copy or NULL */
    int group_key;           /* -1 = None */
    int link_key;            /* -1 = None */
    char *source_repr;       /* tensor name or NULL */
} vene_repr;

/* Where a representation reads and writes: a hook site plus pyvene's post-splits. */
typedef struct vene_where {
    int site, layer;
    int input_site;          /* the same module's input (SkipIntervention's getter), -1 if none */
    int split;               /* VENE_SPLIT_* */
    int n_heads;             /* 0 = no head split */
    int width;               /* component width (pyvene dimension table); -1 = unknown */
    int unit;                /* VENE_UNIT_* */
} vene_where;

/* Canonical locations of one side of one intervention: NULL-able per-example index lists
 * (rectangular, rows == batch after broadcasting). Two-level units use idx2 too. */
typedef struct vene_loc {
    int present;
    int rows, k1, k2;
    int *idx1;               /* rows x k1 */
    int *idx2;               /* rows x k2 (two-level units) */
} vene_loc;

typedef struct vene_slot {
    vene_repr r;
    int r_parsed;
    int index;               /* position in config.representations */
    char key[320];
    vene_where where;
    vene_iv *iv;             /* shared by linked slots; owned when iv_owner */
    int iv_owner;
    int finalized;           /* parameters completed (vene_iv_finalize) since last set */
    int group;
    vene_iv_callback cb;
    void *cb_user;
    /* per-call state */
    vene_tensor cache;       /* gathered source block (owned data) */
    int has_cache;
    const float *const_src;  /* constant source for this call, borrowed */
    int64_t const_src_numel;
    vene_loc base_loc, src_loc;
    vene_subspaces ss;       /* borrowed from the call's parsed subspaces */
    int ss_present;
    int getter_fired;
    int setter_calls;
    /* reverse mode (iv_backprop.c): the block and source the setter saw, and the gradient
     * of the gathered source block (IIT), all owned, per call */
    vene_tensor bw_x, bw_src;
    int bw_saved;
    float *bw_dcache;
    vene_schedule sched;     /* vene_intervenable_set_schedule (owned list and rows copies) */
    vene_tensor *coll;       /* Collect results of this call, one per hook call (owned) */
    int n_coll, cap_coll;
    struct vene_intervenable *owner;
} vene_slot;

struct vene_intervenable {
    const vene_model *m;
    vene_run *rs;            /* owned run state */
    int n;
    vene_slot *slots;
    int serial;
    int G;                   /* number of groups */
    /* per-call outputs, owned */
    vene_tensor out_logits[2], out_hidden[2];   /* [0] original, [1] intervened */
    vene_tensor *collected;
    int n_collected, cap_collected;
    float **hot;             /* per link key: hot activation (owned) */
    vene_tensor *hot_t;
    int n_links;
    int getters_pending;
    /* generation gating (spec §10): set by generate.c around each pass */
    int gen_mode, gen_intervene_on_prompt;
    /* reverse mode: VENE_GRAD_*; with VENE_GRAD_MODEL every source group runs in its own
     * run state (src_rs[g], sharing rs's weight gradients) and is not stopped early */
    int grad_mode;
    vene_run **src_rs;
    int bw_pending;
    int gen_step;            /* 0 = prompt pass, t = t-th decoding step */
    const int32_t *gen_ids;  /* rows' tokens so far: row b at gen_ids + b * gen_ld, gen_len of them */
    int gen_ld, gen_len;
    uint8_t *row_on;         /* scratch: rows a setter acts on (batch size of the call) */
    /* parsed subspaces storage */
    int *ss_store;
    uint64_t seed;
    size_t mem_limit;        /* vene_intervenable_set_memory_limit; 0 = none */
};

int vene_intervenable_from_json(const vene_model *m, const cJSON *cfg, vene_intervenable **out, vene_error *err);

/* intervenable.c: a call in two halves. vene_iv_prepare parses the call, runs the original
 * pass (when run_original) and the source passes, and leaves the setters registered on
 * iv->rs for the base passes that follow; vene_iv_take_collected then moves the Collect
 * results of those passes into iv->collected. */
int vene_iv_prepare(vene_intervenable *iv, const vene_call *call, int run_original, vene_error *err);
int vene_iv_take_collected(vene_intervenable *iv, vene_error *err);

/* experiment.c, for `vene generate --experiment`: an experiment file's interventions,
 * sources and constant sources on model_dir's model, generating from `prompt` (one text)
 * with `params` (intervene_on_prompt comes from the file's "generate" object, false when
 * absent; eos_token_id is the model's, or none with no_eos); compare = also decode the
 * original continuation. Writes no result file. */
typedef struct vene_exp_gen {
    const char *model_dir;
    const char *prompt;
    const vene_gen_params *params;
    int compare, no_eos;
} vene_exp_gen;
int vene_experiment_generate(const char *path, const vene_exp_gen *g, vene_error *err);

/* schedule.c: how many rows of a B-row block slot s acts on in the current pass, with
 * on[b] set for each (pyvene's generation gating, then the slot's schedule). */
int vene_slot_rows(const vene_slot *s, int B, uint8_t *on);
void vene_schedule_clear(vene_schedule *s);

/* iv_backprop.c */
int vene_slot_save_for_backward(vene_slot *s, const vene_tensor *x, const vene_tensor *src, vene_error *err);
void vene_slot_free_backward(vene_slot *s);
/* The run state a source group's pass runs in (rs unless model gradients are on). */
int vene_intervenable_source_rs(vene_intervenable *iv, int g, vene_run **out, vene_error *err);
void vene_intervenable_free_grad(vene_intervenable *iv);

/* experiment_grad.c: run "backward" (forward with gradients, loss, backward) and its outputs */
int vene_exp_backward(vene_intervenable *iv, const cJSON *j, const vene_call *call, float *loss, vene_error *err);
int vene_exp_write_grads(vene_intervenable *iv, const cJSON *j, float loss, st_writer *w, vene_error *err);

/* budget.c: fail up front when a call (locations parsed, src[g] per group) or a generation
 * of B x S tokens would need more than iv->mem_limit bytes. */
int vene_budget_check(const vene_intervenable *iv, const vene_call *call, const vene_batch *const *src, vene_error *err);
int vene_budget_check_length(const vene_intervenable *iv, int B, int S, vene_error *err);

/* locations.c */
int vene_locs_parse(vene_intervenable *iv, const cJSON *ul, int B, vene_error *err);
/* Lower first[b] to the lowest position locations l of where w name in example b (of B).
 * Returns 0, first untouched, when w's unit names no positions (heads alone, time steps)
 * or l does not cover the B examples: the caller must then keep whole sequences. */
int vene_loc_lowest_positions(const vene_where *w, const vene_loc *l, int B, int *first);
int vene_loc_from_json(const cJSON *v, int two_level, int B, vene_loc *out, const char *what, vene_error *err);
void vene_loc_free(vene_loc *l);
int vene_subspaces_parse(vene_intervenable *iv, const cJSON *ss, int B, vene_error *err);

/* gather.c: blocks in and out of live site tensors (spec §6.4, §6.5). vene_scatter takes a
 * block of the shape vene_gather returned for the same site and locations. */
int vene_gather(const vene_where *w, const vene_loc *loc, const vene_tensor *t, vene_tensor *block, const char *who,
                vene_error *err);
int vene_scatter(const vene_where *w, const vene_loc *loc, vene_tensor *t, const vene_tensor *block, const char *who,
                 vene_error *err);

/* config.c */
int vene_repr_parse(const cJSON *j, int index, vene_repr *r, vene_error *err);
void vene_repr_free(vene_repr *r);
int vene_resolve_where(const vene_model *m, const vene_repr *r, int index, vene_where *w, vene_error *err);

#endif
