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

/* ================================================================ generation (begin)
 *
 * KV-cached decoding for GPT-2 and GPT-Neo, plain or with interventions (pyvene's
 * IntervenableModel.generate), streamed through a token callback.
 *
 * The prompt is a vene_batch of token ids; rows of different lengths are left-padded and
 * attn_mask marks the padding with 0. Position ids are computed as Hugging Face's generate
 * computes them (cumsum(mask) - 1 for real tokens, 1 for padding; batch.positions must be
 * NULL), and the cache keeps the mask, so padded rows decode exactly like unpadded ones.
 *
 * Passes ("steps"): step 0 runs the whole prompt; step t >= 1 feeds every row's t-th
 * generated token (one position per row) and makes its (t + 1)-th. A row stops after it
 * emits eos_token_id (kept; later columns of that row are filled with eos_token_id, as
 * Hugging Face pads finished rows) or after max_new_tokens.
 *
 * Sampling (temperature > 0): logits / temperature, then top-k (keep tokens scoring at
 * least the k-th best), then top-p (keep the most likely tokens until their probability
 * reaches top_p, the one crossing it included), then one draw from the renormalised
 * softmax. Row b draws from its own xoshiro256** generator seeded (through splitmix64)
 * with seed + b, one uniform double per token: the same seed and prompt give the same
 * tokens, independently of the batch's other rows. temperature <= 0 is greedy (argmax,
 * lowest id on ties). */

typedef struct vene_token_event {
    int which;     /* 1 = the intervened (or plain) continuation, 0 = the original one */
    int row;       /* example in the batch */
    int step;      /* the pass that made it (0 = prompt pass) = index among the row's new tokens */
    int32_t token;
    int last;      /* 1 when the row makes no further token (eos, or max_new_tokens reached) */
} vene_token_event;
/* Called for each token as soon as it is made (rows in order, the original continuation
 * before the intervened one at each step). Return VENE_OK, or an error code with err
 * filled to stop generating (the call then fails with that code). */
typedef int (*vene_token_fn)(void *user, const vene_token_event *ev, vene_error *err);

typedef struct vene_gen_params {
    int max_new_tokens;      /* new tokens per row; <= 0: use max_length */
    int max_length;          /* prompt length (padded) + new tokens, Hugging Face's max_length */
    int eos_token_id;        /* stop a row after it emits this id; -1: never */
    float temperature;       /* <= 0: greedy */
    int top_k;               /* sampling: 0 = no limit */
    float top_p;             /* sampling: <= 0 or >= 1 = no limit */
    uint64_t seed;           /* sampling: see above */
    int intervene_on_prompt; /* pyvene's flag; vene_intervenable_generate only */
    vene_token_fn on_token;  /* or NULL */
    void *user;              /* passed to on_token */
} vene_gen_params;

/* Defaults: 20 new tokens, greedy, top_p 1, seed 0, the eos_token_id of the model's
 * config.json (-1 when it has none, or when m is NULL). Start from these and change what
 * you need. */
void vene_gen_params_init(vene_gen_params *p, const vene_model *m);

/* Generated ids: batch x len (prompt included, len = prompt + the longest row's new
 * tokens) and each row's number of new tokens. Owned by the caller:
 * vene_gen_output_free releases the arrays (the struct itself is the caller's). */
typedef struct vene_gen_output {
    int batch, len;
    int32_t *ids;
    int *n_new;
} vene_gen_output;
void vene_gen_output_free(vene_gen_output *out);

/* Plain decoding on a run state (its hooks fire on every pass). */
int vene_generate(vene_run *rs, const vene_batch *prompt, const vene_gen_params *p, vene_gen_output *out,
                  vene_error *err);

/* pyvene's generate: call->base is the prompt; source passes run once, as plain forwards,
 * before decoding (their gathered blocks and constant sources are reused at every step).
 * With intervene_on_prompt 0, the prompt pass is not intervened and every decoding step
 * is intervened at call->unit_locations of that step's one-token input (NULL means
 * {"base": 0}: the new token); with 1, only the prompt pass is, at the given locations; a
 * representation whose base locations are None (unit_locations NULL with
 * intervene_on_prompt 1) acts on the whole tensor of every pass. Collect interventions
 * record one tensor per pass they act on (vene_intervenable_collected afterwards).
 * out[1] receives the intervened continuation; with call->output_original, out[0] receives
 * the unintervened one, decoded in lock-step (each of its tokens reported just before the
 * intervened token of the same step and row, with the same random draws). */
int vene_intervenable_generate(vene_intervenable *iv, const vene_call *call, const vene_gen_params *p,
                               vene_gen_output out[2], vene_error *err);

/* Beyond pyvene: when, and on which rows, intervention i acts while generating (the steps
 * of the list above), e.g. steering only at steps 2..4, or a different intervention per
 * request in one batch (one representation per request, each limited to its row). The
 * schedule narrows pyvene's gating, it never widens it. `rows` limits plain forward calls
 * too; the step part only applies to vene_intervenable_generate. */
enum { VENE_STEPS_ALL = 0, VENE_STEPS_LIST = 1, VENE_STEPS_RANGE = 2, VENE_STEPS_FN = 3 };
/* Should intervention `intervention` act at `step` on `row`, whose tokens so far (padded
 * prompt + generated, the step's input last) are ids[0 .. n_ids - 1]? Non-zero = yes. */
typedef int (*vene_step_fn)(void *user, int intervention, int step, int row, const int32_t *ids, int n_ids);
typedef struct vene_schedule {
    int steps;                  /* VENE_STEPS_* */
    const int *list;            /* LIST: the steps (copied) */
    int n_list;
    int first, last;            /* RANGE: steps first..last inclusive; last < 0 = no end */
    vene_step_fn fn;            /* FN: asked once per pass and row (borrowed with user) */
    void *user;
    const uint8_t *rows;        /* act only on rows b < n_rows with rows[b] != 0 (copied); NULL = all */
    int n_rows;
} vene_schedule;
/* Set (or, with NULL, clear) intervention i's schedule. */
int vene_intervenable_set_schedule(vene_intervenable *iv, int i, const vene_schedule *s, vene_error *err);

/* ================================================================ generation (end) */

/* ================================================================ sweeps (begin)
 *
 * Activation patching over many cells at once (ROME's causal tracing, patching sweeps).
 * A run is one token sequence, optionally corrupted with Gaussian noise on its input
 * embeddings (pyvene's NoiseIntervention on block_input of layer 0). A cell is a base run
 * with activations of a source run written into it at the same positions (pyvene's
 * VanillaIntervention), scored by the logits at the base run's last position.
 *
 * vene_sweep runs every run once and caches its residual stream and keys and values. A
 * cell then runs only where it can differ from its base run: from the first layer it
 * changes, over its earliest restored position and the later ones, attending over the
 * base run's cached keys and values of the earlier positions. Cells are batched so that
 * each layer's weights stream once for all of them, in chunks that fit max_memory.
 *
 * The logits equal those of one intervened forward per cell (vene_intervenable_forward with
 * the noise and the restore) up to float rounding: BLAS rounds a row of a product
 * differently depending on where the row falls in its batch (docs/sweeps.md). GPT-2 only. */

typedef struct vene_sweep_run {
    const int32_t *ids;   /* len tokens (borrowed for the call) */
    int len;
    const int *noise_pos; /* n_noise positions whose embeddings get noise, or none */
    int n_noise;
    const double *noise;  /* n_noise x d_model: x = (float)((double)x + noise * noise_level) */
    float noise_level;
} vene_sweep_run;

typedef struct vene_sweep_cell {
    int base, source;      /* run indices (runs of one length): the source's activations go into the base */
    const char *component; /* pyvene's name: block_output, block_input, mlp_output, attention_output,
                              mlp_activation, attention_value_output, head_attention_value_output,
                              query_output, head_query_output, ... (not attention_weight) */
    int layer, n_layers;   /* layers layer .. layer + n_layers - 1 (a ROME window); n_layers 0 means 1 */
    const int *positions;  /* the restored positions (borrowed for the call) */
    int n_positions;
    int head;              /* head components: the head; -1 otherwise */
} vene_sweep_cell;

/* One result: cell >= 0, or cell = -1 - r for run r itself (unpatched). logits: the
 * vocab_size logits at the base run's last position, borrowed for the call. Return
 * VENE_OK, or an error code with err filled to stop the sweep. */
typedef int (*vene_sweep_fn)(void *user, int cell, const float *logits, vene_error *err);
/* Progress: done of total units (positions x layers) computed so far. */
typedef void (*vene_progress_fn)(void *user, int64_t done, int64_t total);

typedef struct vene_sweep_params {
    size_t max_memory;            /* bytes of activations and caches at once; 0 = 1 GB */
    vene_sweep_fn on_logits;      /* required */
    vene_progress_fn on_progress; /* or NULL */
    void *user;
} vene_sweep_params;

typedef struct vene_sweep_stats {
    int64_t units;       /* positions x layers computed, the runs' own forwards included */
    int64_t kv_units;    /* positions of the last layer whose keys and values alone were computed
                            (only the last position needs that layer's whole block) */
    int64_t naive_units; /* positions x layers of one full forward per cell (pyvene's base passes) */
    int chunks;          /* batches of cells */
    int forwards;        /* calls into the model */
    size_t peak_bytes;   /* caches plus the largest scratch in use at once */
} vene_sweep_stats;

/* ROME's default noise level: 3 x the standard deviation of the entries of the token
 * embedding matrix. */
int vene_sweep_noise_level(const vene_model *m, float *level, vene_error *err);

/* Run cells over runs with the model's (OpenMP) threads; results arrive through
 * p->on_logits, runs first, in no promised order otherwise. stats may be NULL. */
int vene_sweep(const vene_model *m, const vene_sweep_run *runs, int n_runs, const vene_sweep_cell *cells, int n_cells,
               const vene_sweep_params *p, vene_sweep_stats *stats, vene_error *err);

/* ================================================================ sweeps (end) */

#ifdef __cplusplus
}
#endif
#endif /* VENE_H */
