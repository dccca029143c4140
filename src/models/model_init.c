/* A freshly initialised model folder, for training from scratch: config.json as given
 * and model.safetensors with Hugging Face's initialisation for the architecture
 *   gpt2: Linear/Conv1D/Embedding weights N(0, 0.02), residual projections (c_proj)
 *         N(0, 0.02 / sqrt(2 n_layer)), biases 0, LayerNorm weight 1 and bias 0;
 *   mlp (pyvene): torch.nn.Linear's default U(-1/sqrt(in), 1/sqrt(in)) for weight and bias.
 * Deterministic for a seed (vene_rng). */
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/error.h"
#include "core/rng.h"
#include "core/tensor.h"
#include "io/atomic.h"
#include "io/safetensors.h"
#include "vene.h"

enum { INIT_NORMAL, INIT_UNIFORM, INIT_ONES, INIT_ZEROS };

typedef struct init_ctx {
    st_writer *w;
    vene_rng rng;
    int64_t params;
} init_ctx;

static int add(init_ctx *c, const char *name, int64_t a, int64_t b, int kind, double scale, vene_error *err) {
    int64_t n = a * (b > 0 ? b : 1);
    float *p = malloc(sizeof(float) * (size_t)n);
    if (!p) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory for %s", name);
    for (int64_t i = 0; i < n; i++) {
        switch (kind) {
        case INIT_NORMAL: p[i] = (float)(scale * vene_rng_normal(&c->rng)); break;
        case INIT_UNIFORM: p[i] = (float)(scale * (2.0 * vene_rng_uniform(&c->rng) - 1.0)); break;
        case INIT_ONES: p[i] = 1.0f; break;
        default: p[i] = 0.0f; break;
        }
    }
    int64_t shape[2] = {a, b};
    vene_tensor t = vene_tensor_view(p, b > 0 ? 2 : 1, shape);
    int rc = st_writer_add_f32(c->w, name, &t, err);
    free(p);
    c->params += n;
    return rc;
}

static int geti(const cJSON *cfg, const char *key, int dflt, int *out, vene_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (!v || cJSON_IsNull(v)) {
        *out = dflt;
        return VENE_OK;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 1e7 || v->valuedouble != (int)v->valuedouble)
        return vene_errorf(err, VENE_ERR_ARG, "config key \"%s\": expected a positive integer", key);
    *out = (int)v->valuedouble;
    return VENE_OK;
}

static int init_gpt2(init_ctx *c, const cJSON *cfg, vene_error *err) {
    int L, D, V, P, F, H, rc;
    if ((rc = geti(cfg, "n_layer", 12, &L, err)) || (rc = geti(cfg, "n_embd", 768, &D, err)) ||
        (rc = geti(cfg, "vocab_size", 50257, &V, err)) || (rc = geti(cfg, "n_positions", 1024, &P, err)) ||
        (rc = geti(cfg, "n_head", 12, &H, err)) || (rc = geti(cfg, "n_inner", 4 * D, &F, err)))
        return rc;
    if (D % H) return vene_errorf(err, VENE_ERR_ARG, "config: n_embd %d is not divisible by n_head %d", D, H);
    double std = 0.02, proj = 0.02 / sqrt(2.0 * L);
    if ((rc = add(c, "wte.weight", V, D, INIT_NORMAL, std, err)) || (rc = add(c, "wpe.weight", P, D, INIT_NORMAL, std, err)))
        return rc;
    for (int l = 0; l < L && !rc; l++) {
        char n[96];
#define P_(suffix, a, b, kind, scale) \
    (snprintf(n, sizeof n, "h.%d.%s", l, suffix), add(c, n, a, b, kind, scale, err))
        if ((rc = P_("ln_1.weight", D, 0, INIT_ONES, 0)) || (rc = P_("ln_1.bias", D, 0, INIT_ZEROS, 0)) ||
            (rc = P_("attn.c_attn.weight", D, 3 * D, INIT_NORMAL, std)) || (rc = P_("attn.c_attn.bias", 3 * D, 0, INIT_ZEROS, 0)) ||
            (rc = P_("attn.c_proj.weight", D, D, INIT_NORMAL, proj)) || (rc = P_("attn.c_proj.bias", D, 0, INIT_ZEROS, 0)) ||
            (rc = P_("ln_2.weight", D, 0, INIT_ONES, 0)) || (rc = P_("ln_2.bias", D, 0, INIT_ZEROS, 0)) ||
            (rc = P_("mlp.c_fc.weight", D, F, INIT_NORMAL, std)) || (rc = P_("mlp.c_fc.bias", F, 0, INIT_ZEROS, 0)) ||
            (rc = P_("mlp.c_proj.weight", F, D, INIT_NORMAL, proj)) || (rc = P_("mlp.c_proj.bias", D, 0, INIT_ZEROS, 0)))
            return rc;
#undef P_
    }
    if ((rc = add(c, "ln_f.weight", D, 0, INIT_ONES, 0, err))) return rc;
    return add(c, "ln_f.bias", D, 0, INIT_ZEROS, 0, err);
}

static int init_mlp(init_ctx *c, const cJSON *cfg, vene_error *err) {
    int L, D, C, rc;
    if ((rc = geti(cfg, "n_layer", 2, &L, err)) || (rc = geti(cfg, "h_dim", 512, &D, err)) ||
        (rc = geti(cfg, "num_classes", 2, &C, err)))
        return rc;
    const cJSON *emb = cJSON_GetObjectItemCaseSensitive(cfg, "include_emb"), *bias = cJSON_GetObjectItemCaseSensitive(cfg, "include_bias");
    if (cJSON_IsTrue(emb)) return vene_errorf(err, VENE_ERR_UNSUPPORTED, "config: include_emb true is not supported by vene init");
    int with_bias = !cJSON_IsFalse(bias);
    double a = 1.0 / sqrt((double)D);
    for (int l = 0; l < L && !rc; l++) {
        char n[64];
        snprintf(n, sizeof n, "mlp.h.%d.ff1.weight", l);
        if ((rc = add(c, n, D, D, INIT_UNIFORM, a, err))) return rc;
        snprintf(n, sizeof n, "mlp.h.%d.ff1.bias", l);
        if (with_bias && (rc = add(c, n, D, 0, INIT_UNIFORM, a, err))) return rc;
    }
    if ((rc = add(c, "score.weight", C, D, INIT_UNIFORM, a, err))) return rc;
    return with_bias ? add(c, "score.bias", C, 0, INIT_UNIFORM, a, err) : VENE_OK;
}

int vene_model_init(const char *dir, const char *config_json, uint64_t seed, int64_t *n_params, vene_error *err) {
    if (!dir || !config_json) return vene_errorf(err, VENE_ERR_ARG, "vene_model_init: NULL folder or config");
    cJSON *cfg = cJSON_Parse(config_json);
    if (!cJSON_IsObject(cfg)) {
        cJSON_Delete(cfg);
        return vene_errorf(err, VENE_ERR_ARG, "model config: not a JSON object");
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(cfg, "model_type");
    init_ctx c = {.w = st_writer_new()};
    vene_rng_seed(&c.rng, seed);
    int rc = c.w ? VENE_OK : vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    if (!rc && !cJSON_IsString(mt)) rc = vene_errorf(err, VENE_ERR_ARG, "model config: missing \"model_type\"");
    else if (!rc && !strcmp(mt->valuestring, "gpt2")) rc = init_gpt2(&c, cfg, err);
    else if (!rc && !strcmp(mt->valuestring, "mlp")) rc = init_mlp(&c, cfg, err);
    else if (!rc) rc = vene_errorf(err, VENE_ERR_UNSUPPORTED, "model config: vene init supports model_type gpt2 and mlp, not \"%s\"", mt->valuestring);
    if (!rc && mkdir(dir, 0777) != 0 && errno != EEXIST) rc = vene_errorf(err, VENE_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    char path[8300];
    if (!rc) {
        snprintf(path, sizeof path, "%s/model.safetensors", dir);
        rc = st_writer_save(c.w, path, err);
    }
    if (!rc) {
        char *txt = cJSON_Print(cfg);
        size_t n = txt ? strlen(txt) : 0;
        char *line = txt ? realloc(txt, n + 2) : NULL; /* the file ends with a newline */
        if (line) line[n] = '\n', line[n + 1] = '\0';
        else free(txt);
        snprintf(path, sizeof path, "%s/config.json", dir);
        rc = line ? vene_write_atomic(path, line, n + 1, err) : vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        free(line);
    }
    if (n_params) *n_params = c.params;
    st_writer_free(c.w);
    cJSON_Delete(cfg);
    return rc;
}
