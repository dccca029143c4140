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
    int gen_prompt_done;
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
    /* generation gating */
    int gen_mode, gen_intervene_on_prompt;
    /* parsed subspaces storage */
    int *ss_store;
    uint64_t seed;
    size_t mem_limit;        /* vene_intervenable_set_memory_limit; 0 = none */
};

int vene_intervenable_from_json(const vene_model *m, const cJSON *cfg, vene_intervenable **out, vene_error *err);

/* generate.c: greedy decoding of tmpl->base (batch 1) with the call's sources and constant
 * sources; plain = no interventions. *out (B = 1 row of *n_out ids, prompt included) is
 * released with free(). */
int vene_generate_greedy(vene_intervenable *iv, const vene_call *tmpl, const cJSON *ul, int intervene_on_prompt, int plain,
                         int max_total, int eos, int64_t **out, int *n_out, vene_error *err);

/* budget.c: fail up front when a call (locations parsed, src[g] per group) or a generation
 * of B x S tokens would need more than iv->mem_limit bytes. */
int vene_budget_check(const vene_intervenable *iv, const vene_call *call, const vene_batch *const *src, vene_error *err);
int vene_budget_check_length(const vene_intervenable *iv, int B, int S, vene_error *err);

/* locations.c */
int vene_locs_parse(vene_intervenable *iv, const cJSON *ul, int B, vene_error *err);
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
