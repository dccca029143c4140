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

struct vene_model {
    const vene_arch *arch;
    char *dir;
    char *model_class;
    const char *path_prefix;   /* "transformer." or "" */
    cJSON *config;             /* parsed config.json, owned */
    vene_weights *weights;     /* owned */
    int has_lm_head;
    /* common hyper-parameters, read from config.json by the architecture's loader */
    int n_layer, d_model, n_head, n_kv_head, head_dim, d_ff, vocab_size, n_ctx;
    float norm_eps;
    int64_t n_params;
    void *impl;                /* architecture-specific weights, owned (arch->free_impl) */
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
    /* The forward honours an attached KV cache (models/kv_cache.h). */
    int kv_cached;
    /* The forward honours a resume plan (models/resume.h, for sweeps). */
    int resumable;
};

/* Registry of built-in architectures (read-only). */
const vene_arch *vene_arch_find(const char *model_type);
/* Comma-separated model_type names of the built-in architectures. */
void vene_arch_names(char *buf, size_t n);

typedef struct vene_hook {
    int site, layer;
    vene_hook_fn fn;
    void *user;
} vene_hook;

struct vene_run {
    const vene_model *m;
    vene_arena arena;
    int B, S;                  /* shape of the last forward */
    /* hooks: a flat list in registration order, and per-site flags for the fast check */
    vene_hook *hooks;
    int n_hooks, cap_hooks;
    uint8_t *site_hooked;      /* n_sites flags */
    int *call_count;           /* n_sites * (n_layer + 1) fire counters for this forward */
    vene_tensor logits, last_hidden;
    int has_logits;
    struct vene_kv_cache *kv;  /* attached KV cache (borrowed, models/kv_cache.h), NULL = none */
    const struct vene_resume *resume; /* sweeps: resume plan (borrowed, models/resume.h), NULL = none */
};

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

#endif
