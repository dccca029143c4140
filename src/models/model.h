/* Internal model layer: what an architecture provides and what a forward runs with.
 *
 * An architecture (vene_arch) is data plus two functions: a table of hook sites (every
 * module input/output under its Hugging Face path, in the order the forward reaches
 * them), a table of pyvene's abstract components, a loader and a forward. The forward
 * is a straight sequence of kernel calls on run-state buffers with VENE_FIRE() at each
 * site; when nothing is hooked a site costs one byte load and a branch. */
#ifndef VENE_MODELS_MODEL_H
#define VENE_MODELS_MODEL_H

#include <cjson/cJSON.h>
#include <stdatomic.h>
#include <stdint.h>

#include "core/tensor.h"
#include "io/weights.h"
#include "vene.h"

typedef struct vene_site_def {
    const char *path;   /* Hugging Face module path template, %d = layer, no class prefix */
    uint8_t is_input;   /* 1 = module's first input, 0 = module's output */
    uint8_t layered;
    const char *shape;  /* human description, e.g. "B x S x D" */
} vene_site_def;

/* pyvene's post-splits (spec §5.1). */
enum { VENE_SPLIT_NONE = 0, VENE_SPLIT_THIRD0, VENE_SPLIT_THIRD1, VENE_SPLIT_THIRD2 };

/* An abstract component (spec §5.4): the site it reads, an optional third-split, an
 * optional head split, and its width. */
typedef struct vene_component_def {
    const char *name;      /* "head_query_output" */
    const char *path;      /* module path template, %d = layer ("h[%d].attn.c_attn") */
    uint8_t is_input;
    uint8_t split;         /* VENE_SPLIT_* */
    uint8_t head_split;    /* 0 none, 1 = split into heads (n_head), 2 = into kv heads */
} vene_component_def;

typedef struct vene_arch vene_arch;
typedef struct vene_run vene_run;

/* A bound weight: its state-dict name (without the class prefix) and where its gradient
 * lives in a run's flat gradient buffer (same order, same offsets for every run). */
typedef struct vene_param {
    char *name;
    const float *data;
    int ndim;
    int64_t shape[2];
    int64_t numel, offset;
} vene_param;

struct vene_model {
    const vene_arch *arch;
    char *dir;
    char *model_class;
    const char *path_prefix;   /* "transformer." or "" */
    cJSON *config;             /* parsed config.json, owned */
    vene_weights *weights;     /* owned */
    int has_lm_head;
    int trainable;             /* vene_model_set_trainable: weights may be written */
    /* common hyper-parameters, read from config.json by the architecture's loader */
    int n_layer, d_model, n_head, n_kv_head, head_dim, d_ff, vocab_size, n_ctx;
    float norm_eps;
    int64_t n_params;
    vene_param *params;        /* every weight bound by vene_model_weight, in binding order */
    int n_param_tensors, cap_param_tensors;
    void *impl;                /* architecture-specific weights, owned (arch->free_impl) */
    /* vene_model_free while run states still use the model (a caller's mistake) only marks
     * it freed; the last vene_run_free releases it, and their forwards fail meanwhile. */
    atomic_int refs;           /* 1 for the caller's handle + 1 per live vene_run */
    atomic_int freed;
};

struct vene_arch {
    const char *model_type;            /* config.json model_type */
    const char *const *classes;        /* accepted architectures[0] names, NULL-terminated */
    const vene_site_def *sites;
    int n_sites;
    const vene_component_def *components;
    int n_components;
    /* Read hyper-parameters and bind weights; m->config and m->weights are set. */
    int (*load)(vene_model *m, vene_error *err);
    void (*free_impl)(vene_model *m);
    /* Bytes of run-state scratch a forward of B x S needs. */
    size_t (*run_bytes)(const vene_model *m, int B, int S);
    int (*forward)(vene_run *rs, const vene_batch *b, vene_error *err);
    /* Shape of a site for B x S (returns ndim). */
    int (*site_shape)(const vene_model *m, int site, int B, int S, int64_t *shape);
    /* Width of an abstract component's unit vector (pyvene's dimension table). */
    int (*component_width)(const vene_model *m, const vene_component_def *c);
    /* Reverse mode (NULL when the architecture has none yet). grad_bytes: extra arena a
     * forward of B x S needs to keep what backward reads. backward: from rs->d_logits /
     * rs->d_hidden (either may be NULL = zero) down to the inputs, firing backward hooks
     * in exact reverse order of the forward's hooks, accumulating weight gradients into
     * rs->param_grads when it is set (see core/kernels_grad.h for the kernel contract). */
    size_t (*grad_bytes)(const vene_model *m, int B, int S);
    int (*backward)(vene_run *rs, vene_error *err);
    /* Constant data of the architecture: a family member's variant (llama.c), or the
     * registry entry of an architecture registered through the public API. */
    const void *data;
    /* The forward honours an attached KV cache (models/kv_cache.h). */
    int kv_cached;
    /* The forward honours a resume plan (models/resume.h, for sweeps). */
    int resumable;
};

/* Registry of built-in architectures (read-only). */
const vene_arch *vene_arch_find(const char *model_type);
/* Comma-separated model_type names of the built-in architectures. */
void vene_arch_names(char *buf, size_t n);
/* The same through a caller's registry (user_arch.c): its entries first, then built-ins. */
const vene_arch *vene_registry_find(const vene_registry *r, const char *model_type);
void vene_registry_names(const vene_registry *r, char *buf, size_t n);
/* Whether an architecture came from a registry (its impl is then wrapped). */
int vene_arch_is_user(const vene_arch *a);

typedef struct vene_hook {
    int site, layer;
    vene_hook_fn fn;
    void *user;
    int rows_only;  /* backward hook that reads and writes only the rows the run declared
                     * (vene_run_add_backward_hook_rows) */
} vene_hook;

struct vene_run {
    const vene_model *m;
    vene_arena arena;
    /* reverse mode: grad_mode (VENE_GRAD_*), the gradient arena (reset per backward), the
     * flat weight-gradient buffer (VENE_GRAD_MODEL only), the architecture's saved
     * activations of the last forward, and the upstream gradients of the current backward */
    int grad_mode;
    vene_arena garena;
    float *param_grads;
    int param_grads_borrowed;  /* param_grads belongs to another run state (vene_run_share_grads) */
    void *saved;
    const float *d_logits, *d_hidden;
    vene_hook *bhooks;
    int n_bhooks, cap_bhooks;
    uint8_t *site_bhooked;
    int *bcall_count;
    const int *grad_first;     /* vene_run_set_grad_rows (borrowed), NULL = every row wanted */
    const int *grad_rows_on;   /* inside a backward: the rows it restricts itself to, NULL = all */
    int grad_rows_last;        /* rows the last backward ran its layers on (B * S when full) */
    int B, S;                  /* shape of the last forward */
    /* hooks: a flat list in registration order, and per-site flags for the fast check */
    vene_hook *hooks;
    int n_hooks, cap_hooks;
    uint8_t *site_hooked;      /* n_sites flags */
    int *call_count;           /* n_sites * (n_layer + 1) fire counters for this forward */
    vene_tensor logits, last_hidden;
    int has_logits;
    const int *logit_pos;      /* vene_run_set_logit_positions: B positions or NULL */
    struct vene_kv_cache *kv;  /* attached KV cache (borrowed, models/kv_cache.h), NULL = none */
    const struct vene_resume *resume; /* sweeps: resume plan (borrowed, models/resume.h), NULL = none */
    int tail_layer;            /* vene_run_set_tail: the deepest layer the caller reads ... */
    const int *tail_first;     /* ... and the rows s >= tail_first[b] of its output (borrowed), NULL = off */
    int tail_runs;             /* forwards that took the tail (for tests and benchmarks) */
    int grad_keep_from;        /* gradient mode: layers below keep nothing (vene_run_set_grad_keep_from) */
};

/* Backward hooks of (site, layer) on the gradient g, latest registration first. */
int vene_run_fire_back(vene_run *rs, int site, int layer, vene_tensor *g, vene_error *err);
#define VENE_FIRE_BACK(rs, site, layer, tensor, err)                                   \
    do {                                                                               \
        if ((rs)->site_bhooked[(site)]) {                                              \
            int fire_rc_ = vene_run_fire_back((rs), (site), (layer), (tensor), (err)); \
            if (fire_rc_ != VENE_OK) return fire_rc_;                                  \
        }                                                                              \
    } while (0)
/* ---- the last layer on the rows read (source passes of interventions)
 *
 * Declare that the caller reads nothing past layer `layer`'s output, and of it only the
 * positions s >= first[b] of each example (first: B ints, borrowed until cleared with
 * NULL). An architecture that honours it (GPT-2) then runs that layer's keys and values
 * on every row but its queries, attention, MLP and residual on those rows alone, fires the
 * layer's output site (the other rows hold the layer's input) and stops with VENE_STOP.
 * It declines (vene_run_tail_ok), running the full forward, when any hook sits elsewhere
 * than before that layer or on its output site, with gradients, a KV cache or a resume
 * plan, or for a first[b] outside 0 .. S - 1. The rows
 * it computes equal a full forward's bit for bit: the products are row-stable
 * (core/gemm.h) and attention is computed per query row. */
void vene_run_set_tail(vene_run *rs, int layer, const int *first);
/* 1 when a tail is declared and valid for a forward of B x S, and every hook is at a layer
 * before the tail layer or on (tail layer, site). */
int vene_run_tail_ok(const vene_run *rs, int B, int S, int site);

/* Gradient mode: the next forwards' layers below `layer` keep no activations (their
 * buffers are reused, as without gradients), because the caller's backward stops before
 * reaching them (the engine, with gradients into the interventions only: at the lowest
 * hooked layer). 0 = every layer keeps its own (the default). Architectures that do not
 * honour it keep every layer. A backward that reaches such a layer reads overwritten
 * buffers, so only the caller that knows where its backward stops may set it. */
void vene_run_set_grad_keep_from(vene_run *rs, int layer);
/* The lowest layer any forward hook is registered at (a hook outside the layers counts
 * as layer 0; no hooks: 0). */
int vene_run_lowest_hooked_layer(const vene_run *rs);

/* ---- row-restricted backward (core/kernels_rows.h explains why it is exact)
 *
 * The rule: a backward runs its layers on the rows s >= first[b] only when
 *  - the caller declared those rows (vene_run_set_grad_rows; the engine does, for its
 *    intervention hooks, with the lowest position each example's setters write),
 *  - the grad mode is VENE_GRAD_ACTIVATIONS (no weight gradients: those need every row),
 *  - every backward hook was registered with vene_run_add_backward_hook_rows (a public
 *    vene_run_add_backward_hook may read any row, so it turns the restriction off).
 * Otherwise the full backward runs. The architecture must have causal attention, keeps
 * every row of an example with padding before first[b] (vk_rows_unpadded) and may decline
 * for its own reasons (GPT-2: a hook on the attention weights). Restricted, hooks still
 * get full-shape tensors: rows < first[b] are zero and what a hook writes there is
 * dropped. */
/* Declare the wanted rows: first[b] for each example of the last forward (borrowed until
 * the next call; NULL = all rows). */
void vene_run_set_grad_rows(vene_run *rs, const int *first);
/* vene_run_add_backward_hook for a hook that honours the declared rows. */
int vene_run_add_backward_hook_rows(vene_run *rs, int site, int layer, vene_hook_fn fn, void *user, vene_error *err);
/* Inside backwards: the declared first rows when the rule above allows the restriction
 * (and it saves something), else NULL. A backward that takes them calls
 * vene_run_restrict_rows before the head backward, which then skips the rows < first. */
const int *vene_run_grad_rows(const vene_run *rs);
void vene_run_restrict_rows(vene_run *rs, const int *first);
/* Restricted backwards: fire (site, layer)'s backward hooks on the compact gradient c
 * (rows of r, W floats wide) shown as a full B x S x W tensor in the scratch `full`, then
 * take the kept rows back. */
struct vk_rows;
int vene_run_fire_back_rows(vene_run *rs, int site, int layer, const struct vk_rows *r, float *c, int W, float *full,
                            vene_error *err);
#define VENE_FIRE_BACK_ROWS(rs, site, layer, r, c, W, full, err)                                        \
    do {                                                                                                 \
        if ((rs)->site_bhooked[(site)]) {                                                                \
            int fire_rc_ = vene_run_fire_back_rows((rs), (site), (layer), (r), (c), (W), (full), (err)); \
            if (fire_rc_ != VENE_OK) return fire_rc_;                                                    \
        }                                                                                                \
    } while (0)
/* Make rs accumulate weight gradients into owner's buffer (both VENE_GRAD_MODEL, same
 * model; owner must outlive rs's use of it): an intervenable's source passes share it. */
int vene_run_share_grads(vene_run *rs, vene_run *owner, vene_error *err);
/* Gradient buffer of a bound weight in this run, NULL when weight gradients are off. */
float *vene_run_grad_of(const vene_run *rs, const float *weight);
/* Backward of vene_run_lm_head: d_hidden += d_logits W (rows of d_logits that are all
 * zero are skipped: a loss at one position costs one row), dW += d_logits^T hidden. */
int vene_run_lm_head_backward(vene_run *rs, const float *W, int site_in, int site_out, float *d_hidden,
                              vene_error *err);
/* Inside backwards: n zeroed floats from the gradient arena. */
#define VENE_GALLOC(ptr, n)                                                                            \
    do {                                                                                               \
        (ptr) = vene_arena_floats(&rs->garena, (n));                                                   \
        if (!(ptr)) return vene_errorf(err, VENE_ERR_MEMORY, "gradient arena exhausted (sizing bug)"); \
        memset((ptr), 0, sizeof(float) * (size_t)(n));                                                 \
    } while (0)

/* Inside forwards in gradient mode: *out = buf, or, when `copy` (a later hook could edit
 * buf in place before the backward reads it), a copy of its n floats from the run arena. */
int vene_run_keep(vene_run *rs, const float *buf, size_t n, int copy, const float **out, vene_error *err);
/* The same for saved-state records: n zeroed bytes from the run arena. */
int vene_run_keep_bytes(vene_run *rs, size_t n, void **out, vene_error *err);
/* A copy of the batch's token ids from the run arena (NULL when it has embeddings). */
int vene_run_keep_ids(vene_run *rs, const vene_batch *in, int32_t **out, vene_error *err);
/* Gradient mode, start of a forward: a zeroed record of `bytes` (*rec), n_layer zeroed
 * per-layer records of `layer_bytes` (*layers) and the token ids (*ids, see above). */
int vene_run_save_begin(vene_run *rs, const vene_batch *in, size_t bytes, size_t layer_bytes, void **rec,
                        void **layers, int32_t **ids, vene_error *err);
/* Inside forwards: vene_run_save_begin for a record `sv` with members `layers` and `ids`. */
#define VENE_SAVE_BEGIN(sv, in)                                                                      \
    do {                                                                                             \
        void *layers_ = NULL, *rec_ = NULL;                                                          \
        int32_t *ids_ = NULL;                                                                        \
        int save_rc_ = vene_run_save_begin(rs, (in), sizeof *(sv), sizeof *(sv)->layers, &rec_, &layers_, \
                                           &ids_, err);                                              \
        if (save_rc_) return save_rc_;                                                               \
        (sv) = rec_;                                                                                 \
        (sv)->layers = layers_, (sv)->ids = ids_;                                                    \
    } while (0)
/* Start of a causal LM's backward: *d_hidden = n zeroed floats from the gradient arena
 * holding the gradient of rs->last_hidden, through the LM head (vene_run_lm_head_backward
 * with W, site_in, site_out) when the model has one, else rs->d_hidden. */
int vene_run_head_backward(vene_run *rs, const float *W, int site_in, int site_out, float **d_hidden,
                           vene_error *err);
/* End of a backward: fire the embedding output's site (layer -1) on dx (B x S x D) and
 * add dx into the table's gradient rows ids (when weight gradients are on). */
int vene_run_embed_backward(vene_run *rs, int site, const int32_t *ids, const float *table, float *dx,
                            vene_error *err);

/* Fire the hooks of (site, layer) on t. */
int vene_run_fire(vene_run *rs, int site, int layer, vene_tensor *t, vene_error *err);

/* Used inside forwards: returns from the forward function on error or stop. */
#define VENE_FIRE(rs, site, layer, tensor, err)                                   \
    do {                                                                          \
        if ((rs)->site_hooked[(site)]) {                                          \
            int fire_rc_ = vene_run_fire((rs), (site), (layer), (tensor), (err)); \
            if (fire_rc_ != VENE_OK) return fire_rc_;                             \
        }                                                                         \
    } while (0)

/* Bind a 1-D (a) or 2-D (a x b) float32 weight by state-dict name and count its parameters;
 * errors name the tensor, the file and the shapes. */
int vene_model_weight(vene_model *m, const char *name, int ndim, int64_t a, int64_t b, const float **out,
                      vene_error *err);

/* The LM head shared by the causal LMs: fire `site_in` on rs->last_hidden, logits =
 * last_hidden x W^T (W is vocab x D, tied or not), fire `site_out`. */
int vene_run_lm_head(vene_run *rs, const float *W, int site_in, int site_out, vene_error *err);

/* Row of example b under rs->logit_pos (-1 when out of range). */
int vene_run_logit_row(const vene_run *rs, int b);

/* Inside forwards: take n floats from the run arena (sized by run_bytes) or fail. */
#define VENE_ALLOC(ptr, n)                                                                          \
    do {                                                                                            \
        (ptr) = vene_arena_floats(&rs->arena, (n));                                                 \
        if (!(ptr)) return vene_errorf(err, VENE_ERR_MEMORY, "run arena exhausted (sizing bug)"); \
    } while (0)

/* config.json helpers: read an int/float key (with fallbacks), error naming the key. */
int vene_config_int(const cJSON *cfg, const char *file, const char *key, int *out, vene_error *err);
int vene_config_int_opt(const cJSON *cfg, const char *key, int dflt);
double vene_config_num_opt(const cJSON *cfg, const char *key, double dflt);
/* Optional keys with a default (absent or null), type-checked; errors name the folder and key. */
int vene_config_int_or(const vene_model *m, const char *key, int dflt, int *out, vene_error *err);
int vene_config_bool_or(const vene_model *m, const char *key, int dflt, int *out, vene_error *err);
int vene_config_num_or(const vene_model *m, const char *key, double dflt, double *out, vene_error *err);

#endif
