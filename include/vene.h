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

/* From a model folder (tokenizer.json [+ tokenizer_config.json], vocab.json + merges.txt,
 * or encoder.json + vocab.bpe), a tokenizer.json file, or a llama.cpp GGUF file (its
 * vocabulary metadata only: tokenizer.ggml.*). BPE tokenizers: GPT-2 style byte-level
 * (GPT-2, Llama 3, Qwen2 and other Split/ByteLevel pre-tokenizers) and SentencePiece
 * style with byte fallback (Llama 2, Mistral). */
int vene_tokenizer_load(const char *path, vene_tokenizer **out, vene_error *err);
/* From explicit GPT-2 files (encoder.json/vocab.json and vocab.bpe/merges.txt). */
int vene_tokenizer_load_files(const char *vocab_json, const char *merges_txt,
                              vene_tokenizer **out, vene_error *err);
void vene_tokenizer_free(vene_tokenizer *t);

int vene_tokenizer_vocab_size(const vene_tokenizer *t);
/* Encode UTF-8 (or arbitrary bytes) text without adding BOS/EOS; *ids is released with
 * vene_free. Added tokens that are not special (user-defined) are matched in the text;
 * special-token text ("<|endoftext|>", "<s>") is not parsed as special. */
int vene_tokenize(const vene_tokenizer *t, const char *text, size_t len,
                  int32_t **ids, size_t *n_ids, vene_error *err);
/* Decode ids to bytes (NUL-terminated, *len without the NUL); released with vene_free.
 * SentencePiece-style tokenizers drop the space they prepended to the text. */
int vene_detokenize(const vene_tokenizer *t, const int32_t *ids, size_t n_ids,
                    char **text, size_t *len, vene_error *err);
/* The raw piece of a token as the vocab spells it ("Ġthe", "▁the"), or NULL when out of range. */
const char *vene_token_piece(const vene_tokenizer *t, int32_t id);
/* Id of a token given as its piece text, -1 if absent. */
int32_t vene_token_id(const vene_tokenizer *t, const char *piece);

/* ---- tokenizer: special tokens and options (issue 9) ---- */
enum {
    VENE_TOK_ADD_SPECIAL = 1u,   /* vene_tokenize_ex: add BOS/EOS as the tokenizer is configured */
    VENE_TOK_PARSE_SPECIAL = 2u, /* vene_tokenize_ex: match special-token text as those tokens */
    VENE_TOK_SKIP_SPECIAL = 1u   /* vene_detokenize_ex: leave special tokens out */
};
int vene_tokenize_ex(const vene_tokenizer *t, const char *text, size_t len, unsigned flags,
                     int32_t **ids, size_t *n_ids, vene_error *err);
int vene_detokenize_ex(const vene_tokenizer *t, const int32_t *ids, size_t n_ids, unsigned flags,
                       char **text, size_t *len, vene_error *err);
/* What one token decodes to on its own (borrowed, not NUL-terminated; *len gets the
 * length), or NULL when out of range. */
const char *vene_token_text(const vene_tokenizer *t, int32_t id, size_t *len);
/* 1 for control tokens (BOS, EOS, <|im_start|>, ...), else 0. */
int vene_token_is_special(const vene_tokenizer *t, int32_t id);

typedef struct vene_tokenizer_info {
    int32_t n_vocab;
    int32_t bos_id, eos_id, unk_id, pad_id; /* -1 when the tokenizer has none */
    int n_prefix, n_suffix;                 /* what VENE_TOK_ADD_SPECIAL adds before / after */
    int32_t prefix[4], suffix[4];
    const char *kind;   /* "byte-level BPE", "SentencePiece BPE", "BPE" (borrowed) */
    const char *source; /* "tokenizer.json", "gguf", "vocab.json" (borrowed) */
} vene_tokenizer_info;
void vene_tokenizer_get_info(const vene_tokenizer *t, vene_tokenizer_info *info);
/* ---- end of the issue 9 tokenizer block ---- */

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

/* Compute logits only at one position per example (B entries, negative = from the end;
 * borrowed until reset with NULL): vene_run_logits is then B x 1 x V. */
void vene_run_set_logit_positions(vene_run *rs, const int *positions);

/* Run the model on a batch. Outputs stay in the run state until the next forward. */
int vene_forward(vene_run *rs, const vene_batch *batch, vene_error *err);
/* B x S x V logits of the last forward (NULL for bare models or before a forward). */
const vene_tensor *vene_run_logits(const vene_run *rs);
/* B x S x D final hidden state after the final norm. */
const vene_tensor *vene_run_last_hidden(const vene_run *rs);

/* ---------------------------------------------------------------- gradients */

/* Reverse mode. VENE_GRAD_ACTIVATIONS: the forward keeps what backward needs and backward
 * propagates gradients through activations (and backward hooks) only: the weights stay
 * frozen and their products are skipped (DAS). VENE_GRAD_MODEL: weight gradients too,
 * accumulated into a flat buffer the run state owns (IIT, training a model). With
 * VENE_GRAD_NONE (the default) a forward keeps nothing extra. Not every architecture has
 * a backward yet: vene_backward then fails with VENE_ERR_UNSUPPORTED. */
enum { VENE_GRAD_NONE = 0, VENE_GRAD_ACTIVATIONS = 1, VENE_GRAD_MODEL = 2 };
int vene_run_set_grad(vene_run *rs, int mode, vene_error *err);
/* Backward hooks get the gradient of a site's tensor (same shape as the forward's) and
 * may change it in place; they fire in exact reverse order of the forward hooks, with
 * where->call numbering as in the forward. VENE_STOP ends the backward early (nothing
 * below is needed). Cleared by vene_run_clear_backward_hooks, not by vene_run_clear_hooks. */
int vene_run_add_backward_hook(vene_run *rs, int site, int layer, vene_hook_fn fn, void *user, vene_error *err);
void vene_run_clear_backward_hooks(vene_run *rs);
/* Back-propagate from the last forward: d_logits (B x S x V) and/or d_hidden (B x S x D,
 * the gradient of vene_run_last_hidden); NULL = zero. Weight gradients accumulate across
 * calls until vene_run_zero_grad. Returns VENE_OK also when a backward hook stopped it. */
int vene_backward(vene_run *rs, const vene_tensor *d_logits, const vene_tensor *d_hidden, vene_error *err);
void vene_run_zero_grad(vene_run *rs);
/* View (borrowed, valid until vene_run_free or vene_run_set_grad) of a weight's gradient
 * by its state-dict name without the class prefix ("h.0.mlp.c_fc.weight"). */
int vene_run_param_grad(vene_run *rs, const char *name, vene_tensor *out, vene_error *err);
/* Bytes held for reverse mode: run arena + gradient arena + weight gradients. */
size_t vene_run_grad_bytes(const vene_run *rs);

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
    /* Training on one position per example: logits only there (B x 1 x V instead of
     * B x S x V; negative = from the end), which skips most of the LM head. NULL = all.
     * Borrowed: must stay valid until the backward of this call. */
    const int *logit_positions;
} vene_call;

int vene_intervenable_forward(vene_intervenable *iv, const vene_call *call, vene_error *err);
/* Outputs of the last call (borrowed until the next call): which = 0 original, 1 intervened. */
const vene_tensor *vene_intervenable_logits(const vene_intervenable *iv, int which);
const vene_tensor *vene_intervenable_last_hidden(const vene_intervenable *iv, int which);
int vene_intervenable_collected_count(const vene_intervenable *iv);
const vene_tensor *vene_intervenable_collected(const vene_intervenable *iv, int n);

/* ---------------------------------------------------------------- training */

/* Gradients through an intervenable (call before the forward): VENE_GRAD_ACTIVATIONS trains
 * the interventions only, the model frozen as pyvene freezes it (DAS);
 * VENE_GRAD_MODEL also gives the model's weights gradients through the base pass and, via
 * the swapped activations, through the source passes (IIT, pyvene's
 * enable_model_gradients, without switching dropout on). Serial mode, unit "t" and
 * callback interventions have no backward (VENE_ERR_UNSUPPORTED). */
int vene_intervenable_set_grad(vene_intervenable *iv, int mode, vene_error *err);
/* Back-propagate from the intervened outputs of the last forward: d_logits (B x S x V)
 * and/or d_hidden (B x S x D); NULL = zero. Gradients accumulate until zeroed. */
int vene_intervenable_backward(vene_intervenable *iv, const vene_tensor *d_logits, const vene_tensor *d_hidden,
                               vene_error *err);
void vene_intervenable_zero_grad(vene_intervenable *iv);
/* View (borrowed until the next backward, zero_grad or free) of a gradient: "<i>.<param>"
 * or "<key>.<param>" for intervention i's parameter in pyvene's state-dict names
 * ("0.rotate_layer.weight" = dL/dW of the effective W, "0.rotate_layer.parametrizations.
 * weight.original" = what the optimiser updates, "0.intervention_boundaries", "0.masks",
 * "0.mask"), or a model weight name ("h.0.mlp.c_fc.weight") with VENE_GRAD_MODEL. */
int vene_intervenable_grad(vene_intervenable *iv, const char *name, vene_tensor *out, vene_error *err);
/* Bytes held for training: run states' arenas, weight gradients, saved blocks. */
size_t vene_intervenable_grad_bytes(const vene_intervenable *iv);

/* Mean cross-entropy over the B examples of logits (B x S x V, or B x V) at one position
 * per example (positions[b], or `position` for all when positions is NULL; negative counts
 * from the end) against labels[b]. d_logits (NULL, or the logits' shape, overwritten)
 * receives dloss/dlogits; *correct (may be NULL) counts argmax == label. */
int vene_loss_cross_entropy(const vene_tensor *logits, const int *positions, int position, const int32_t *labels,
                            vene_tensor *d_logits, float *loss, int *correct, vene_error *err);

/* Optimisers (torch.optim semantics). An optimizer updates an intervenable's trainable
 * tensors (rotations' `original`, Boundless boundaries, masks; linked interventions once)
 * and, with train_model, the model's weights (VENE_GRAD_MODEL and a trainable model).
 * vene_optimizer_step: clip, update, re-derive rotations, advance the schedules, zero
 * every gradient. Create with an intervenable, or with iv NULL and a run state to train
 * a plain model (train_model must be set). The optimizer borrows iv/rs: free it first. */
enum { VENE_OPT_SGD = 0, VENE_OPT_ADAM = 1, VENE_OPT_ADAMW = 2 };
enum { VENE_SCHED_CONSTANT = 0, VENE_SCHED_LINEAR = 1, VENE_SCHED_COSINE = 2 };
typedef struct vene_optim_config {
    int kind;                    /* VENE_OPT_* (default Adam, as pyvene's train_alignment) */
    float lr;                    /* 1e-3 */
    float beta1, beta2, eps;     /* 0.9, 0.999, 1e-8 */
    float weight_decay;          /* Adam/SGD: L2 added to the gradient; AdamW: decoupled */
    float momentum;              /* SGD */
    float boundary_lr;           /* Boundless DAS boundaries (the tutorial uses 1e-2); 0 = lr */
    float clip_norm;             /* global gradient-norm clipping; 0 = off */
    int warmup_steps, total_steps;
    int schedule;                /* VENE_SCHED_*: linear warm-up then constant/linear/cosine */
    float temperature_start, temperature_end; /* linspace over total_steps (pyvene); 0 = fixed */
    int train_model;
} vene_optim_config;
typedef struct vene_optimizer vene_optimizer;
void vene_optim_config_default(vene_optim_config *c);
int vene_optimizer_new(vene_intervenable *iv, vene_run *rs, const vene_optim_config *c, vene_optimizer **out,
                       vene_error *err);
int vene_optimizer_step(vene_optimizer *o, float *grad_norm, vene_error *err);
float vene_optimizer_lr(const vene_optimizer *o);   /* the rate the next step uses */
int vene_optimizer_steps(const vene_optimizer *o);
int64_t vene_optimizer_param_count(const vene_optimizer *o); /* pyvene's count_parameters */
void vene_optimizer_free(vene_optimizer *o);
/* Make a loaded model's weights writable (private copy-on-write pages; the files never
 * change) so an optimizer may train it. The model must then not be shared by other
 * threads while it trains. */
int vene_model_set_trainable(vene_model *m, vene_error *err);
int vene_model_is_trainable(const vene_model *m);

/* Create a model folder with freshly initialised weights (Hugging Face's initialisation
 * for the architecture; model_type gpt2 or mlp) from a config.json text, for training
 * from scratch. Deterministic for a seed. *n_params (may be NULL) gets the count. */
int vene_model_init(const char *dir, const char *config_json, uint64_t seed, int64_t *n_params, vene_error *err);
/* Save a model's current weights as a Hugging Face folder (model.safetensors written
 * atomically; config.json and tokenizer files copied from the folder it came from). */
int vene_model_save(const vene_model *m, const char *dir, vene_error *err);

/* The training loop, one batch at a time, for programs with their own data and loss:
 * forward with interventions, fn fills d_logits / d_hidden (zeroed, the outputs' shapes;
 * NULL when the model has no such output) and *loss, backward, then an optimizer step when
 * opt is not NULL (pass NULL to accumulate gradients over several calls). */
typedef int (*vene_loss_fn)(void *user, const vene_tensor *logits, const vene_tensor *hidden, vene_tensor *d_logits,
                            vene_tensor *d_hidden, float *loss, vene_error *err);
int vene_train_step(vene_intervenable *iv, const vene_call *call, vene_loss_fn fn, void *user, vene_optimizer *opt,
                    float *loss, vene_error *err);

/* `vene train CONFIG` (docs/training.md): overrides are used when set (> 0 / non-NULL). */
typedef struct vene_train_options {
    const char *out_dir;   /* where the trained interventions go (pyvene's layout) */
    int epochs;
    float lr;
    int64_t seed;          /* -1 = the config's */
    int quiet;
} vene_train_options;
typedef struct vene_train_result {
    double iia_before, iia, train_loss, eval_loss, seconds; /* iia: accuracy when no interventions */
    int steps, interventions;
    int64_t params, grad_bytes;
} vene_train_result;
int vene_train_run(const char *config_path, const vene_train_options *o, vene_train_result *res, vene_error *err);

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

/* ---------------------------------------------------------------- architectures from outside
 * BEGIN user-defined architectures (pyvene's "Add New Model Type", in C).
 *
 * An architecture is a config.json model_type with its hook sites, its component table
 * (pyvene's type_to_module_mapping and type_to_dimension_mapping) and four functions: a
 * loader (reads config.json, binds weights), a scratch size, a forward that fires the
 * sites, and the shape of a site. Architectures live in a vene_registry that the caller
 * creates, fills and frees; vene_model_load_with() looks model_type up there first, then
 * in the library's built-in table (read-only, unchanged). No global state: two registries
 * can give one model_type two meanings, and a registry entry may serve a model_type the
 * library also knows. Once loaded, such a model works with every other call (runs, hooks,
 * intervenables, save/load of interventions).
 *
 * Ownership: vene_registry_add copies the spec's strings and tables, so the spec may be
 * temporary; `user` and the functions must stay valid while the registry lives. A model
 * loaded through a registry refers to its entry: free such models before the registry.
 * Loading from one registry on several threads at once is fine; adding to it meanwhile is
 * not. Example: examples/add_model_type.c. */

typedef struct vene_registry vene_registry;

/* One abstract component (pyvene's registry entry and its dimension proposals). */
typedef struct vene_component_spec {
    const char *name;   /* "block_output", "mlp_activation", ... */
    const char *site;   /* the site template it reads, one of the spec's sites ("h[%d].act") */
    int is_input;       /* 1: that module's input, 0: its output */
    int third;          /* 0: whole; 1, 2, 3: first, second, third third of the last dim */
    int heads;          /* 0: none; 1: split into n_head heads; 2: into n_kv_head heads */
    const char *dim;    /* width of one unit, pyvene's proposals over config.json tried in
                           order, separated by '|': "h_dim", "n_inner|n_embd*4",
                           "hidden_size/num_attention_heads" (integers or keys, dotted for
                           nested objects; '*' and '/' left to right, '/' truncates).
                           NULL: d_model. */
} vene_component_spec;

/* What a loader reports about the model it read. */
typedef struct vene_arch_dims {
    int n_layer;        /* layers: layered sites take layers 0 .. n_layer - 1 */
    int d_model, n_head, n_kv_head, head_dim, d_ff, vocab_size;  /* 0 where meaningless */
    int n_ctx;          /* longest sequence accepted, 0: no limit */
    int has_lm_head;    /* the forward reports logits */
} vene_arch_dims;

typedef struct vene_arch_spec {
    const char *model_type;            /* config.json "model_type" served */
    const char *const *classes;        /* accepted class names, NULL-terminated; [0] is the default */
    const vene_site_info *sites;       /* every hook site, in the order the forward fires them:
                                          path template ("h[%d].act": "[%d]" once when layered,
                                          no '%' or '[' otherwise), is_input, layered, shape text */
    int n_sites;
    const vene_component_spec *components;
    int n_components;
    void *user;                        /* handed to every function below */
    /* Read config.json (vene_model_config_*), bind weights (vene_model_tensor), fill *dims
     * and set *impl to the model's own state. On failure return the error; *impl, if set,
     * is still released with free_impl. */
    int (*load)(void *user, vene_model *m, vene_arch_dims *dims, void **impl, vene_error *err);
    void (*free_impl)(void *user, void *impl);     /* may be NULL */
    /* Floats of scratch one forward of B x S takes through vene_run_scratch, counting
     * each request rounded up to a multiple of 16. */
    size_t (*scratch_floats)(void *user, const vene_model *m, int B, int S);
    /* The forward: compute, call vene_fire at every site (return its status at once when
     * it is not VENE_OK), and end with vene_run_set_outputs. */
    int (*forward)(void *user, vene_run *rs, const vene_batch *batch, vene_error *err);
    /* Shape of site `site` for B x S into shape[]; returns ndim. */
    int (*site_shape)(void *user, const vene_model *m, int site, int B, int S, int64_t shape[VENE_MAX_DIMS]);
} vene_arch_spec;

int vene_registry_new(vene_registry **out, vene_error *err);
void vene_registry_free(vene_registry *r);
/* Validates the spec (site templates, component sites, dimension syntax, functions) and
 * adds a copy; a model_type already in this registry is refused. */
int vene_registry_add(vene_registry *r, const vene_arch_spec *spec, vene_error *err);
/* vene_model_load, looking model_type up in `r` (may be NULL) before the built-ins. */
int vene_model_load_with(const vene_registry *r, const char *dir, const char *model_class, vene_model **out,
                         vene_error *err);

/* For loaders. A config.json number: when the key is absent or null, *out keeps its value
 * if `required` is 0, else an error names the folder and the key; a value of the wrong
 * type is an error either way. */
int vene_model_config_int(const vene_model *m, const char *key, int required, int *out, vene_error *err);
int vene_model_config_number(const vene_model *m, const char *key, int required, double *out, vene_error *err);
/* Bind a float32 weight by state-dict name (F16/BF16 converted once), checking its shape;
 * the pointer borrows from the model. Counts its parameters. */
int vene_model_tensor(vene_model *m, const char *name, int ndim, const int64_t *shape, const float **out,
                      vene_error *err);
const char *vene_model_dir(const vene_model *m);
/* The state a registered loader set through *impl (NULL for built-in architectures). */
void *vene_model_impl(const vene_model *m);

/* For forwards. The model being run. */
const vene_model *vene_run_model(const vene_run *rs);
/* n floats of 64-byte aligned scratch, valid until the next forward on rs (NULL with err
 * filled when the architecture's scratch_floats reported too little). */
float *vene_run_scratch(vene_run *rs, size_t n, vene_error *err);
/* Reach site `site` (index into the spec's sites) of `layer` (-1 for unlayered sites)
 * with its live tensor: hooks may read or change it in place. Returns VENE_OK, VENE_STOP
 * or an error; a forward returns anything but VENE_OK at once. */
int vene_fire(vene_run *rs, int site, int layer, vene_tensor *t, vene_error *err);
/* The forward's results: the final hidden state (required) and the logits (when the model
 * has an LM head, else NULL). Their data must live in scratch or in the model. */
int vene_run_set_outputs(vene_run *rs, const vene_tensor *last_hidden, const vene_tensor *logits, vene_error *err);
/* END user-defined architectures. */
/* ------------------------------------------------ causal models: data generator (src/data/) */
/* pyvene's CausalModel (a deterministic structural causal model) for making `vene train`
 * datasets. Each variable has a finite list of values; a value is an int index into that
 * list. A setting is an int array with one entry per variable (vene_causal_count), in the
 * order the variables were added; -1 means unset. Functions taking a non-const model may
 * validate it and cache derived tables in it: use one model per thread. Randomness comes
 * from a caller-held 64-bit splitmix64 state, or from a dataset's seed; nothing is global.
 * Errors name the variable, value and index at fault. See docs/datasets.md. */

typedef struct vene_causal vene_causal;

/* A mechanism: from the parents' value indices (in the order the parents were given)
 * compute the variable's value index into *value. Return VENE_OK, or an error code with
 * err filled. */
typedef int (*vene_causal_fn)(void *user, const int *parent_values, int *value, vene_error *err);

int vene_causal_new(vene_causal **out, vene_error *err);
void vene_causal_free(vene_causal *cm);

/* Add a variable with n_values values named value_names (copied; NULL names them "0".."n-1")
 * and n_parents parents given by name (copied; they may be added later). A variable without
 * parents is an input and takes no mechanism (fn NULL); every other needs fn. Its index is
 * stored in *index when index is non-NULL. */
int vene_causal_add(vene_causal *cm, const char *name, int n_values, const char *const *value_names,
                    int n_parents, const char *const *parents, vene_causal_fn fn, void *user, int *index,
                    vene_error *err);
/* Resolve parents and reject unknown ones and cycles (the error names the variables). Every
 * call below runs it when the model changed; call it to see errors early. */
int vene_causal_check(vene_causal *cm, vene_error *err);

int vene_causal_count(const vene_causal *cm);
int vene_causal_find(const vene_causal *cm, const char *name);             /* index or -1 */
const char *vene_causal_name(const vene_causal *cm, int var);             /* NULL if out of range */
int vene_causal_n_values(const vene_causal *cm, int var);                 /* 0 if out of range */
const char *vene_causal_value_name(const vene_causal *cm, int var, int value); /* NULL if out of range */
/* After a successful check: 1 for inputs (no parents) / outputs (nobody's parent). */
int vene_causal_is_input(const vene_causal *cm, int var);
int vene_causal_is_output(const vene_causal *cm, int var);

/* pyvene's run_forward: clamp[v] >= 0 fixes variable v to that value (an intervention);
 * -1 computes it from its parents. Every input must be clamped. Fills setting (all). */
int vene_causal_forward(vene_causal *cm, const int *clamp, int *setting, vene_error *err);
/* pyvene's run_interchange: variable vars[i] takes the value it has when the model runs on
 * sources[i]; then the model runs on base with those values clamped. Only the input
 * entries of base and sources[i] are read. Fills setting (all). */
int vene_causal_interchange(vene_causal *cm, const int *base, int n, const int *vars,
                            const int *const *sources, int *setting, vene_error *err);

/* pyvene's sample_input: every input uniform over its values; setting filled by a forward. */
int vene_causal_sample_input(vene_causal *cm, uint64_t *rng, int *setting, vene_error *err);
/* pyvene's sample_input_tree_balanced: an input for which variable var (-1: the only output)
 * takes value (-1: uniform over the values it can take), drawn top-down through the
 * equivalence classes (a uniform parent assignment among those giving the value, then the
 * same for each non-input parent; inputs left free are uniform). Where shared ancestors
 * make the draws disagree it draws again (pyvene silently keeps a wrong input). */
int vene_causal_sample_balanced(vene_causal *cm, int var, int value, uint64_t *rng, int *setting,
                                vene_error *err);

/* Encoding a setting as a `vene train` INPUT ({"embeds"}, {"ids"} or {"text"}). An encoder
 * appends to the library-owned builder it is given; one input has one kind. Without an
 * encoder, the input is one embeds row: the features of the input variables' values,
 * concatenated in variable order (pyvene's input_to_tensor). */
typedef struct vene_causal_input vene_causal_input;
int vene_causal_input_embeds(vene_causal_input *in, const float *row, int dim, vene_error *err); /* one row */
int vene_causal_input_ids(vene_causal_input *in, const int32_t *ids, int n, vene_error *err);
int vene_causal_input_text(vene_causal_input *in, const char *text, vene_error *err); /* appended */
typedef int (*vene_causal_encoder)(void *user, const vene_causal *cm, const int *setting,
                                   vene_causal_input *in, vene_error *err);
void vene_causal_set_encoder(vene_causal *cm, vene_causal_encoder fn, void *user);
/* Features of input variable var's values: n_values x dim floats (copied). */
int vene_causal_set_features(vene_causal *cm, int var, int dim, const float *table, vene_error *err);
/* The label written for each value of var (n_values ints, copied): class or token ids.
 * Default: the value index. */
int vene_causal_set_labels(vene_causal *cm, int var, const int *labels, vene_error *err);

/* A factual (n_vars == 0) or counterfactual dataset. Example i depends only on (seed, i). */
typedef struct vene_causal_dataset {
    int64_t size;          /* examples */
    uint64_t seed;
    int output;            /* labelled variable; -1 = the only output */
    int balanced;          /* 1: bases by sample_balanced on the output, sources by
                              sample_balanced on their variable; 0: sample_input */
    int n_vars;            /* intervened variables: one source each, in this order */
    const int *vars;
    int subsets;           /* 1: each intervention is a uniform non-empty subset of vars
                              (pyvene's sample_intervention); skipped sources are null */
    int block;             /* the same intervention (subset and balanced source values) for
                              `block` consecutive examples (pyvene's batch_size); <= 1: each */
} vene_causal_dataset;

/* One example. The caller allocates base (count ints) and sources (n_vars x count ints);
 * a skipped source's row is all -1. intervention_id = subset mask - 1 (bit i = vars[i]),
 * pyvene's tutorial numbering: {WX} 0, {YZ} 1, {WX, YZ} 2. */
typedef struct vene_causal_example {
    int *base;
    int *sources;
    int label, base_label, intervention_id;
} vene_causal_example;
int vene_causal_sample_example(vene_causal *cm, const vene_causal_dataset *d, int64_t index,
                               vene_causal_example *ex, vene_error *err);
/* Write the dataset as `vene train` JSONL (docs/datasets.md), atomically. Factual lines are
 * {"base", "label"}; counterfactual lines {"base", "sources", "label", "base_label",
 * "intervention_id"}, label = the interchange output, base_label = the factual output. */
int vene_causal_write_jsonl(vene_causal *cm, const vene_causal_dataset *d, const char *path,
                            vene_error *err);

/* pyvene's hierarchical-equality task (DAS_Main_Introduction): inputs W, X, Y, Z over a pool
 * of n_objects distinct random vectors of size dim (entries uniform in [-1, 1] rounded to
 * 0.01, drawn from pool_seed; equal means the same object), output O with values
 * "false", "true" labelled 0, 1. pattern = 0: WX = (W == X), YZ = (Y == Z), O = (WX == YZ).
 * pattern = 1, the control: WY = (W == Y), XZ = (X == Z), O = (WY == XZ) (pyvene's
 * "pattern" model). The caller frees *out. */
int vene_causal_hierarchical_equality(int dim, int n_objects, uint64_t pool_seed, int pattern,
                                      vene_causal **out, vene_error *err);
/* ------------------------------------------------ end of causal models */
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
