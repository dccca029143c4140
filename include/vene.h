/*
 * vene — pyvene's causal interventions on neural networks, in C11.
 *
 * This is the one public header of libvene.
 *
 * Conventions (read these once; every function follows them):
 *  - Every fallible call returns an int status: VENE_OK (0) on success, a VENE_ERR_*
 *    code otherwise. When a `vene_error *err` is passed (it may be NULL), a one-line
 *    message naming the file, key, tensor or index and what was expected is left in it.
 *  - Ownership: whoever creates frees. An object returned through `**out` by a
 *    *_new / *_load / *_open call is owned by the caller and released with the matching
 *    *_free call. Pointers returned by accessors (const T *) borrow from their owner and
 *    stay valid until the owner is freed or next modified. Buffers returned through
 *    `**out` arrays are released with vene_free().
 *  - A vene_model is read-only after loading: several threads may share one model, each
 *    with its own vene_run (run state). No call keeps hidden global mutable state.
 *  - The library never exits or aborts on bad input.
 */
#ifndef VENE_H
#define VENE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define VENE_VERSION "0.1.0"

/* ---------------------------------------------------------------- errors */

enum {
    VENE_OK = 0,
    VENE_ERR_ARG = 1,         /* invalid argument or configuration */
    VENE_ERR_IO = 2,          /* file missing, unreadable or unwritable */
    VENE_ERR_FORMAT = 3,      /* malformed file contents */
    VENE_ERR_MEMORY = 4,      /* allocation failed or over the allowed budget */
    VENE_ERR_RANGE = 5,       /* index, location, id or length out of range */
    VENE_ERR_UNSUPPORTED = 6, /* valid but not (yet) supported */
    VENE_ERR_STATE = 7,       /* call made in the wrong order */
    VENE_STOP = 100           /* not an error: a hook asked the forward to stop early */
};

typedef struct vene_error {
    int code;
    char msg[1024];
} vene_error;

/* Name of a status code ("VENE_ERR_FORMAT"). */
const char *vene_status_name(int code);
/* Release a buffer that the library returned through an out-pointer. */
void vene_free(void *p);

/* ---------------------------------------------------------------- tensors */

#define VENE_MAX_DIMS 6

/* A float32 view of contiguous row-major data. The struct never owns `data` unless the
 * function that filled it says so. */
typedef struct vene_tensor {
    float *data;
    int ndim;
    int64_t shape[VENE_MAX_DIMS];
} vene_tensor;

int64_t vene_tensor_numel(const vene_tensor *t);

/* ---------------------------------------------------------------- models */

typedef struct vene_model vene_model;

/* Load a Hugging Face model folder (config.json, model.safetensors or sharded
 * safetensors with model.safetensors.index.json). `model_class` chooses the wrapper
 * class pyvene would see ("GPT2Model" = bare transformer, "GPT2LMHeadModel" = with the
 * LM head); NULL means config.json's architectures[0]. F32 weights are memory-mapped,
 * F16/BF16 converted. */
int vene_model_load(const char *dir, const char *model_class, vene_model **out, vene_error *err);
/* Freeing a model that run states or intervenables still use is a mistake vene detects: the
 * memory stays until the last of them is freed, and their forwards fail with VENE_ERR_STATE. */
void vene_model_free(vene_model *m);

typedef struct vene_model_info {
    const char *model_type;   /* "gpt2" */
    const char *model_class;  /* "GPT2LMHeadModel" */
    const char *path_prefix;  /* "transformer." for LM classes, "" for bare models */
    int n_layer, d_model, n_head, head_dim, d_ff, vocab_size, n_ctx;
    int has_lm_head;          /* logits available */
    int64_t n_params;         /* parameters (tied weights counted once) */
    int64_t weight_bytes;     /* bytes of float32 weights in use */
} vene_model_info;

void vene_model_get_info(const vene_model *m, vene_model_info *info);

/* Hook sites: every module input/output of the model under its Hugging Face path. */
typedef struct vene_site_info {
    const char *path;   /* template with %d for the layer, e.g. "h[%d].attn.c_attn" */
    int is_input;       /* 1: the module's first input (pre-hook), 0: its output */
    int layered;        /* path contains a layer index */
    const char *shape;  /* human-readable shape, e.g. "B x S x 3D" */
} vene_site_info;

int vene_model_site_count(const vene_model *m);
int vene_model_site(const vene_model *m, int index, vene_site_info *out);
/* Resolve "h[3].attn.c_attn.output" (optionally with the class prefix, e.g.
 * "transformer.h[3]...") to a site index and layer (-1 when the site has no layer). */
int vene_model_find_site(const vene_model *m, const char *path, int *site, int *layer, vene_error *err);
/* Shape of site `site` for a batch of B sequences of length S, into shape[] (returns ndim). */
int vene_model_site_shape(const vene_model *m, int site, int B, int S, int64_t shape[VENE_MAX_DIMS]);

/* ---------------------------------------------------------------- tokenizer */

typedef struct vene_tokenizer vene_tokenizer;

/* From a model folder: tokenizer.json, or vocab.json + merges.txt. */
int vene_tokenizer_load(const char *dir, vene_tokenizer **out, vene_error *err);
/* From explicit GPT-2 files (encoder.json/vocab.json and vocab.bpe/merges.txt). */
int vene_tokenizer_load_files(const char *vocab_json, const char *merges_txt,
                              vene_tokenizer **out, vene_error *err);
void vene_tokenizer_free(vene_tokenizer *t);

int vene_tokenizer_vocab_size(const vene_tokenizer *t);
/* Encode UTF-8 (or arbitrary bytes) text without adding BOS. *ids is released with
 * vene_free. Special-token text is not parsed as special. */
int vene_tokenize(const vene_tokenizer *t, const char *text, size_t len,
                  int32_t **ids, size_t *n_ids, vene_error *err);
/* Decode ids to bytes (NUL-terminated, *len without the NUL); released with vene_free. */
int vene_detokenize(const vene_tokenizer *t, const int32_t *ids, size_t n_ids,
                    char **text, size_t *len, vene_error *err);
/* The raw byte-level piece of a token ("Ġthe"), or NULL when out of range. */
const char *vene_token_piece(const vene_tokenizer *t, int32_t id);
/* Id of a token given as its piece text, -1 if absent. */
int32_t vene_token_id(const vene_tokenizer *t, const char *piece);

/* ---------------------------------------------------------------- running */

typedef struct vene_run vene_run;

/* Per-thread run state for one model: scratch memory, hooks and outputs. */
int vene_run_new(const vene_model *m, vene_run **out, vene_error *err);
void vene_run_free(vene_run *rs);

typedef struct vene_batch {
    int batch, seq;               /* B sequences of S tokens */
    const int32_t *ids;           /* B*S token ids, or NULL when embeds is given */
    const float *embeds;          /* B*S*D input embeddings (inputs_embeds), or NULL */
    const uint8_t *attn_mask;     /* B*S, 1 = attend, 0 = padding; NULL = all ones */
    const int32_t *positions;     /* B*S position ids; NULL = 0..S-1 for every row (as Hugging Face) */
} vene_batch;

/* Called when the forward reaches a site it was registered for. The tensor is the live
 * activation: the hook may read it or change it in place before the forward continues.
 * Return VENE_OK to continue, VENE_STOP to end the forward early (it then returns
 * VENE_STOP), or an error code (with err filled) to abort. */
typedef struct vene_hook_call {
    int site;       /* site index */
    int layer;      /* layer, -1 for sites without one */
    int call;       /* how many times this (site, layer) fired before in this forward */
} vene_hook_call;
typedef int (*vene_hook_fn)(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err);

/* Hooks fire in model execution order; several on one site fire in registration order. */
int vene_run_add_hook(vene_run *rs, int site, int layer, vene_hook_fn fn, void *user, vene_error *err);
void vene_run_clear_hooks(vene_run *rs);

/* Run the model on a batch. Outputs stay in the run state until the next forward. */
int vene_forward(vene_run *rs, const vene_batch *batch, vene_error *err);
/* B x S x V logits of the last forward (NULL for bare models or before a forward). */
const vene_tensor *vene_run_logits(const vene_run *rs);
/* B x S x D final hidden state after the final norm. */
const vene_tensor *vene_run_last_hidden(const vene_run *rs);

/* ---------------------------------------------------------------- interventions */

/* An intervenable model: pyvene's IntervenableModel over a loaded model. It owns its run
 * state, so one vene_model can serve several intervenables on several threads. */
typedef struct vene_intervenable vene_intervenable;

/* A user-defined intervention (pyvene's lambda or custom class, in C). It receives the
 * gathered base block (B x k x D for unit "pos", B x k_h x k_p x d for "h.pos", ...) and
 * the gathered source block of the same shape (NULL when there is no source), and writes
 * the result into `base` in place. `subspaces_json` is this intervention's subspaces entry
 * as JSON ("null" when none). Return VENE_OK, or an error code with err filled. */
typedef int (*vene_iv_callback)(void *user, vene_tensor *base, const vene_tensor *source,
                                const char *subspaces_json, vene_error *err);

/* Build from pyvene's IntervenableConfig as JSON: {"representations": [...], "mode":
 * "parallel"|"serial"}, a single representation object, or a list of them. Representation
 * fields are pyvene's (layer, component, unit, max_number_of_units, low_rank_dimension,
 * intervention_type, subspace_partition, group_key, intervention_link_key, ...); the list
 * (positional) form of pyvene's saved configs is accepted too. The model must outlive it. */
int vene_intervenable_new(const vene_model *m, const char *config_json, vene_intervenable **out, vene_error *err);
void vene_intervenable_free(vene_intervenable *iv);
int vene_intervenable_count(const vene_intervenable *iv);
/* pyvene's key of intervention i, e.g. "layer_0_comp_block_output_unit_pos_nunit_1#0". */
const char *vene_intervenable_key(const vene_intervenable *iv, int i);
/* Set a parameter of intervention i by its pyvene state-dict name
 * ("rotate_layer.weight", "intervention_boundaries", "source_representation", ...). */
int vene_intervenable_set_param(vene_intervenable *iv, int i, const char *name, const vene_tensor *value,
                                vene_error *err);
/* Make intervention i a user callback (it must have been configured with any type). */
int vene_intervenable_set_callback(vene_intervenable *iv, int i, vene_iv_callback fn, void *user, vene_error *err);
/* Seed for parameters not given explicitly (deterministic initialisation). */
void vene_intervenable_set_seed(vene_intervenable *iv, uint64_t seed);

/* One intervened call. Locations and subspaces are pyvene's Python values written as JSON
 * (tuples as 2-element arrays), e.g. "{\"sources->base\": 3}"; NULL = None. */
typedef struct vene_call {
    const vene_batch *base;
    const vene_batch *const *sources;   /* one per group; entries may be NULL (skip) */
    int n_sources;                      /* 0 = no sources; 1 = one source for every group */
    const char *unit_locations;         /* JSON or NULL */
    const char *subspaces;              /* JSON or NULL */
    const vene_tensor *const *source_reps; /* per intervention constant sources, or NULL */
    int output_original;                /* also run the base without interventions */
} vene_call;

int vene_intervenable_forward(vene_intervenable *iv, const vene_call *call, vene_error *err);
/* Outputs of the last call (borrowed until the next call): which = 0 original, 1 intervened. */
const vene_tensor *vene_intervenable_logits(const vene_intervenable *iv, int which);
const vene_tensor *vene_intervenable_last_hidden(const vene_intervenable *iv, int which);
int vene_intervenable_collected_count(const vene_intervenable *iv);
const vene_tensor *vene_intervenable_collected(const vene_intervenable *iv, int n);

/* pyvene's printed config ("IntervenableConfig" and indented JSON with model_type,
 * representations, intervention_types, mode, sorted_keys, intervention_dimensions).
 * Released with vene_free; NULL on allocation failure. */
char *vene_intervenable_describe(const vene_intervenable *iv);

/* Save pyvene's layout into a directory: config.json (pyvene's schema) and one
 * intkey_<key>.safetensors per trainable or constant-source intervention (pyvene's
 * state-dict names). Load restores an identical intervenable onto a model. */
int vene_intervenable_save(const vene_intervenable *iv, const char *dir, vene_error *err);
int vene_intervenable_load(const vene_model *m, const char *dir, vene_intervenable **out, vene_error *err);

/* Run an experiment file (the `vene run` contract) and write the result file atomically. */
int vene_experiment_run(const char *experiment_path, const char *out_path, int quiet, vene_error *err);

/* ---------------------------------------------------------------- memory limits
 * A request that would need more memory than allowed fails up front with VENE_ERR_MEMORY
 * and a message giving both sizes, before anything large is allocated. 0 = no limit. */

/* The most scratch memory (activations, logits) one forward of this run state may reserve. */
void vene_run_set_memory_limit(vene_run *rs, size_t bytes);
/* The most memory one vene_intervenable_forward may allocate: the run scratch of its largest
 * pass, the gathered source and base blocks, and the copies of the outputs. Checked after the
 * locations are parsed and before the first pass. */
void vene_intervenable_set_memory_limit(vene_intervenable *iv, size_t bytes);

typedef struct vene_experiment_opts {
    int quiet;                /* no summary on stderr */
    size_t max_memory;        /* the model's weights plus the run's working memory; 0 = no limit */
} vene_experiment_opts;
/* vene_experiment_run with options (opts NULL = all defaults). */
int vene_experiment_run_opts(const char *experiment_path, const char *out_path, const vene_experiment_opts *opts,
                             vene_error *err);

#ifdef __cplusplus
}
#endif
#endif /* VENE_H */
