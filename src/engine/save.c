/* Saving and loading an intervenable in pyvene's directory layout (spec §12).
 *
 *   <dir>/config.json                      pyvene's IntervenableConfig schema (§12.1)
 *   <dir>/intkey_<key>.safetensors         state dict of every trainable or constant-source
 *                                          intervention, under pyvene's parameter names
 *
 * pyvene itself writes intkey_<key>.bin (PyTorch zip+pickle). Those cannot be read here:
 * convert them once with torch.load + safetensors.torch.save_file under the same base name.
 * Files named with pyvene's older dotted keys are found through config.json's sorted_keys.
 * Lambda (callback) interventions are saved as pyvene does, as "LambdaIntervention"; a
 * loaded one must be given its function again with vene_intervenable_set_callback. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "core/error.h"
#include "engine/engine.h"
#include "engine/iv_internal.h"
#include "io/atomic.h"
#include "io/json_keys.h"
#include "io/safetensors.h"

#define P_ORIGINAL "rotate_layer.parametrizations.weight.original"
#define P_BASE "rotate_layer.parametrizations.weight.0.base"
#define P_WEIGHT "rotate_layer.weight"

/* ---------------------------------------------------------------- helpers */

static int is_rotation(vene_iv_type t) {
    return t == VENE_IV_ROTATED || t == VENE_IV_LOWRANK_ROTATED || t == VENE_IV_BOUNDLESS_ROTATED ||
           t == VENE_IV_SIGMOID_MASK_ROTATED;
}

/* Type as pyvene would report it: a callback slot is a LambdaIntervention. */
static vene_iv_type slot_type(const vene_slot *s) { return s->cb ? VENE_IV_CALLBACK : s->iv->type; }

/* pyvene's is_source_constant. */
static int slot_constant(const vene_slot *s) {
    if (s->cb || s->iv->type == VENE_IV_CALLBACK) return 0;
    return !vene_iv_needs_source(s->iv->type) || s->iv->source_repr != NULL;
}

/* Whether pyvene writes an intkey file for this slot. */
static int slot_has_file(const vene_slot *s) {
    if (s->cb) return 0;
    return vene_iv_is_trainable(s->iv->type) || s->iv->source_repr != NULL;
}

static int mkdir_p(const char *dir, vene_error *err) {
    char buf[4096];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf)
        return vene_errorf(err, VENE_ERR_ARG, "%s: directory path too long", dir);
    size_t n = strlen(buf);
    while (n > 1 && buf[n - 1] == '/') buf[--n] = 0;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0777) != 0 && errno != EEXIST)
            return vene_errorf(err, VENE_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0777) != 0 && errno != EEXIST)
        return vene_errorf(err, VENE_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return vene_errorf(err, VENE_ERR_IO, "%s: not a directory", buf);
    return VENE_OK;
}

static char *read_text(const char *path, vene_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        vene_errorf(err, VENE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        fclose(f);
        vene_errorf(err, VENE_ERR_IO, "%s: not a regular file", path);
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        size_t k = fread(buf + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) break;
        if (n + 1 == cap) {
            char *p = cap > ((size_t)64 << 20) ? NULL : realloc(buf, cap * 2);
            if (!p) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = p;
            cap *= 2;
        }
    }
    int bad = ferror(f);
    fclose(f);
    if (!buf) {
        vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory (or larger than 64 MiB)", path);
        return NULL;
    }
    if (bad) {
        free(buf);
        vene_errorf(err, VENE_ERR_IO, "%s: read error", path);
        return NULL;
    }
    buf[n] = 0;
    return buf;
}

/* str(type(model)): "<class 'transformers.models.gpt2.modeling_gpt2.GPT2LMHeadModel'>". */
static void model_type_string(const vene_model *m, char *out, size_t n) {
    vene_model_info info;
    vene_model_get_info(m, &info);
    const char *mt = info.model_type ? info.model_type : "unknown";
    const char *cls = info.model_class ? info.model_class : "UnknownModel";
    char mod[128];
    snprintf(mod, sizeof mod, "%s", mt);
    for (char *p = mod; *p; p++)
        if (*p == '-') *p = '_';
    /* pyvene's own reference models live in pyvene's package */
    if (!strcmp(mod, "mlp") || !strcmp(mod, "gru") || !strcmp(mod, "backpack_gpt2"))
        snprintf(out, n, "<class 'pyvene.models.%s.modelings_%s.%s'>", mod, mod, cls);
    else
        snprintf(out, n, "<class 'transformers.models.%s.modeling_%s.%s'>", mod, mod, cls);
}

static cJSON *int_or_null(int v) { return v >= 0 ? cJSON_CreateNumber(v) : cJSON_CreateNull(); }

/* ---------------------------------------------------------------- save */

static cJSON *build_config(const vene_intervenable *iv) {
    cJSON *c = cJSON_CreateObject();
    cJSON *cs = cJSON_AddArrayToObject(c, "intervention_constant_sources");
    cJSON *dims = cJSON_AddArrayToObject(c, "intervention_dimensions");
    cJSON *types = cJSON_AddArrayToObject(c, "intervention_types");
    cJSON_AddStringToObject(c, "mode", iv->serial ? "serial" : "parallel");
    char mt[400];
    model_type_string(iv->m, mt, sizeof mt);
    cJSON_AddStringToObject(c, "model_type", mt);
    cJSON *reprs = cJSON_AddArrayToObject(c, "representations");
    cJSON *keys = cJSON_AddArrayToObject(c, "sorted_keys");
    int any_keep = 0;
    for (int i = 0; i < iv->n; i++) {
        const vene_slot *s = &iv->slots[i];
        const vene_repr *r = &s->r;
        cJSON *a = cJSON_CreateArray();
        cJSON_AddItemToArray(a, cJSON_CreateNumber(r->layer));                        /* layer */
        cJSON_AddItemToArray(a, cJSON_CreateString(r->component));                   /* component */
        cJSON_AddItemToArray(a, cJSON_CreateString(r->unit));                         /* unit */
        cJSON_AddItemToArray(a, cJSON_CreateNumber(r->max_units));                    /* max_number_of_units */
        cJSON_AddItemToArray(a, int_or_null(r->low_rank));                            /* low_rank_dimension */
        cJSON_AddItemToArray(a, cJSON_CreateNull());                                  /* intervention_type */
        cJSON_AddItemToArray(a, cJSON_CreateNull());                                  /* intervention */
        cJSON_AddItemToArray(a, r->partition ? cJSON_Duplicate(r->partition, 1) : cJSON_CreateNull());
        cJSON_AddItemToArray(a, int_or_null(r->group_key));                           /* group_key */
        cJSON_AddItemToArray(a, int_or_null(r->link_key));                            /* intervention_link_key */
        cJSON_AddItemToArray(a, cJSON_CreateNull());                                  /* moe_key */
        cJSON_AddItemToArray(a, cJSON_CreateNull());                                  /* source_representation */
        cJSON_AddItemToArray(a, !s->cb && s->iv->source_repr ? cJSON_CreateTrue() : cJSON_CreateNull());
        cJSON_AddItemToArray(a, cJSON_CreateNull());                                  /* latent_dim */
        cJSON_AddItemToArray(reprs, a);

        char ts[160];
        snprintf(ts, sizeof ts, "<class 'pyvene.models.interventions.%s'>", vene_iv_type_name(slot_type(s)));
        cJSON_AddItemToArray(types, cJSON_CreateString(ts));
        cJSON_AddItemToArray(dims, s->cb ? cJSON_CreateNull() : int_or_null(s->iv->interchange_dim));
        cJSON_AddItemToArray(cs, cJSON_CreateBool(slot_constant(s)));
        cJSON_AddItemToArray(keys, cJSON_CreateString(s->key));
        if (s->iv->keep_last_dim) any_keep = 1;
    }
    if (any_keep) {
        cJSON *k = cJSON_AddArrayToObject(c, "vene_keep_last_dim");
        for (int i = 0; i < iv->n; i++) cJSON_AddItemToArray(k, cJSON_CreateBool(iv->slots[i].iv->keep_last_dim));
    }
    return c;
}

static int add_i64_scalar(st_writer *w, const char *name, int64_t v, vene_error *err) {
    return st_writer_add(w, name, ST_I64, 0, NULL, &v, err);
}

static int add_f32(st_writer *w, const char *name, const float *p, int ndim, int64_t a, int64_t b, vene_error *err) {
    int64_t shape[2] = {a, b};
    return st_writer_add(w, name, ST_F32, ndim, shape, p, err);
}

/* The state dict of slot i (pyvene's names, spec §12.1) into w. */
static int fill_state(const vene_intervenable *ivb, int i, st_writer *w, vene_error *err) {
    const vene_slot *s = &ivb->slots[i];
    const vene_iv *iv = s->iv;
    vene_iv_type ty = iv->type;
    int rc = VENE_OK;
    /* Parameters not initialised yet (no forward has run): complete a copy the way the
     * engine does (seed + index of the owning slot), so the file is loadable and matches. */
    vene_iv tmp;
    memset(&tmp, 0, sizeof tmp);
    int need_tmp = (is_rotation(ty) && !iv->W && !iv->original && !iv->base) ||
                   ((ty == VENE_IV_SIGMOID_MASK_ROTATED || ty == VENE_IV_SIGMOID_MASK) && !iv->masks);
    if (need_tmp) {
        int owner = i;
        for (int k = 0; k < ivb->n; k++)
            if (ivb->slots[k].iv == iv && ivb->slots[k].iv_owner) owner = k;
        if ((rc = vene_iv_init(&tmp, ty, iv->embed_dim, iv->low_rank, err)) ||
            (rc = vene_iv_finalize(&tmp, ivb->seed + (uint64_t)owner, err))) {
            vene_iv_free(&tmp);
            return rc;
        }
    }
    const vene_iv *rot = is_rotation(ty) && !iv->W && !iv->original && !iv->base ? &tmp : iv;
    const vene_iv *msk = !iv->masks ? &tmp : iv;
    int E = rot->embed_dim;

    if (iv->embed_dim > 0 && (rc = add_i64_scalar(w, "embed_dim", iv->embed_dim, err))) goto out;
    if (iv->interchange_dim >= 0 || iv->embed_dim > 0) {
        int64_t idim = iv->interchange_dim >= 0 ? iv->interchange_dim : iv->embed_dim;
        if ((rc = add_i64_scalar(w, "interchange_dim", idim, err))) goto out;
    }
    if (iv->source_repr && (rc = add_f32(w, "source_representation", iv->source_repr, 1, iv->source_repr_numel, 0, err)))
        goto out;
    if (is_rotation(ty)) {
        int r = ty == VENE_IV_LOWRANK_ROTATED ? rot->low_rank : E;
        if (rot->original && (rc = add_f32(w, P_ORIGINAL, rot->original, 2, E, r, err))) goto out;
        if (rot->base && (rc = add_f32(w, P_BASE, rot->base, 2, E, E, err))) goto out;
        if (rot->W && (rc = add_f32(w, P_WEIGHT, rot->W, 2, E, r, err))) goto out;
    }
    if (ty == VENE_IV_BOUNDLESS_ROTATED) {
        if ((rc = add_f32(w, "intervention_boundaries", &iv->boundary, 1, 1, 0, err))) goto out;
        if ((rc = add_f32(w, "temperature", &iv->temperature, 0, 0, 0, err))) goto out;
        int64_t *pop = malloc(sizeof(int64_t) * (size_t)(E > 0 ? E : 1));
        if (!pop) {
            rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
            goto out;
        }
        for (int k = 0; k < E; k++) pop[k] = k;
        int64_t sh = E;
        rc = st_writer_add(w, "intervention_population", ST_I64, 1, &sh, pop, err);
        free(pop);
        if (rc) goto out;
    }
    if (ty == VENE_IV_SIGMOID_MASK_ROTATED || ty == VENE_IV_SIGMOID_MASK) {
        if (msk->masks &&
            (rc = add_f32(w, ty == VENE_IV_SIGMOID_MASK ? "mask" : "masks", msk->masks, 1, msk->masks_len, 0, err)))
            goto out;
        if ((rc = add_f32(w, "temperature", &iv->temperature, 0, 0, 0, err))) goto out;
    }
    for (int k = 0; k < 4 && ty == VENE_IV_AUTOENCODER; k++) {
        int two = k == 0 || k == 2;
        int64_t a = k == 0 || k == 1 ? iv->low_rank : iv->embed_dim, b = k == 0 ? iv->embed_dim : iv->low_rank;
        if (iv->ae[k] && (rc = add_f32(w, iv_autoencoder_names[k], iv->ae[k], two ? 2 : 1, a, two ? b : 0, err))) goto out;
    }
    if (ty == VENE_IV_NOISE) {
        if (iv->noise) {
            int64_t sh[3] = {1, iv->noise_units, iv->noise_dim};
            if ((rc = st_writer_add(w, "noise", ST_F64, 3, sh, iv->noise, err))) goto out;
        }
        if ((rc = add_f32(w, "noise_level", &iv->noise_level, 0, 0, 0, err))) goto out;
    }
out:
    vene_iv_free(&tmp);
    return rc;
}

int vene_intervenable_save(const vene_intervenable *iv, const char *dir, vene_error *err) {
    vene_error local;
    if (!err) err = &local;
    if (!iv || !dir || !dir[0]) return vene_errorf(err, VENE_ERR_ARG, "vene_intervenable_save: NULL argument");
    int rc = mkdir_p(dir, err);
    if (rc) return rc;
    char path[4608];
    for (int i = 0; i < iv->n && !rc; i++) {
        const vene_slot *s = &iv->slots[i];
        if (!slot_has_file(s)) continue;
        if (strchr(s->key, '/'))
            return vene_errorf(err, VENE_ERR_ARG, "intervention %d: key \"%s\" cannot be a file name", i, s->key);
        snprintf(path, sizeof path, "%s/intkey_%s.safetensors", dir, s->key);
        st_writer *w = st_writer_new();
        if (!w) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
        rc = fill_state(iv, i, w, err);
        if (rc) vene_error_prefix(err, "%s: intervention %d (%s)", path, i, s->key);
        else rc = st_writer_save(w, path, err);
        st_writer_free(w);
    }
    if (rc) return rc;
    /* config.json last: a directory with a config always has its parameter files */
    cJSON *c = build_config(iv);
    char *text = c ? cJSON_Print(c) : NULL;
    cJSON_Delete(c);
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (!text) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
    size_t n = strlen(text);
    char *line = realloc(text, n + 2); /* config.json ends with a newline */
    if (!line) {
        free(text);
        return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
    }
    line[n] = '\n', line[n + 1] = '\0';
    rc = vene_write_atomic(path, line, n + 1, err);
    free(line);
    return rc;
}

/* ---------------------------------------------------------------- load */

static const char *const repr_fields[14] = {
    "layer", "component", "unit", "max_number_of_units", "low_rank_dimension", "intervention_type",
    "intervention", "subspace_partition", "group_key", "intervention_link_key", "moe_key",
    "source_representation", "hidden_source_representation", "latent_dim"};

/* Field f of a saved representation in either form (NULL when absent). */
static const cJSON *repr_field(const cJSON *r, int f) {
    if (cJSON_IsArray(r)) return cJSON_GetArrayItem(r, f);
    return cJSON_GetObjectItemCaseSensitive(r, repr_fields[f]);
}

static int is_null(const cJSON *v) { return !v || cJSON_IsNull(v); }

/* Build the constructor config (dict-form representations with explicit types) from a saved
 * config.json. need_file[i] is set where the saved intervention carries a parameter file. */
static int rebuild_config(const cJSON *saved, const char *cpath, cJSON **out, int *n_out, int **need_file,
                          vene_error *err) {
    *out = NULL;
    *need_file = NULL;
    if (!cJSON_IsObject(saved)) return vene_errorf(err, VENE_ERR_FORMAT, "%s: expected a JSON object", cpath);
    const cJSON *reprs = cJSON_GetObjectItemCaseSensitive(saved, "representations");
    if (cJSON_IsObject(reprs)) {
        /* a single representation */
    } else if (!cJSON_IsArray(reprs) || cJSON_GetArraySize(reprs) == 0) {
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: \"representations\" must be a non-empty list", cpath);
    }
    int single = cJSON_IsObject(reprs);
    int n = single ? 1 : cJSON_GetArraySize(reprs);
    const cJSON *types = cJSON_GetObjectItemCaseSensitive(saved, "intervention_types");
    const cJSON *mode = cJSON_GetObjectItemCaseSensitive(saved, "mode");
    const cJSON *keep = cJSON_GetObjectItemCaseSensitive(saved, "vene_keep_last_dim");
    const cJSON *consts = cJSON_GetObjectItemCaseSensitive(saved, "intervention_constant_sources");
    if (!is_null(types) && !cJSON_IsString(types) && !(cJSON_IsArray(types) && cJSON_GetArraySize(types) == n))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: \"intervention_types\" must be a string or a list of %d strings",
                           cpath, n);
    if (!is_null(keep) && !(cJSON_IsArray(keep) && cJSON_GetArraySize(keep) == n))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: \"vene_keep_last_dim\" must be a list of %d booleans", cpath, n);
    int *need = calloc((size_t)n, sizeof *need);
    cJSON *cfg = cJSON_CreateObject();
    cJSON *list = cfg ? cJSON_AddArrayToObject(cfg, "representations") : NULL;
    if (!need || !list) {
        free(need);
        cJSON_Delete(cfg);
        return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", cpath);
    }
    if (cJSON_IsString(mode)) cJSON_AddStringToObject(cfg, "mode", mode->valuestring);
    else if (!is_null(mode)) {
        free(need);
        cJSON_Delete(cfg);
        return vene_errorf(err, VENE_ERR_FORMAT, "%s: \"mode\" must be a string", cpath);
    }
    int rc = VENE_OK;
    for (int i = 0; i < n && !rc; i++) {
        const cJSON *r = single ? reprs : cJSON_GetArrayItem(reprs, i);
        if (!cJSON_IsArray(r) && !cJSON_IsObject(r)) {
            rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: representations[%d]: expected a list or an object", cpath, i);
            break;
        }
        if (cJSON_IsArray(r) && cJSON_GetArraySize(r) > 14) {
            rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: representations[%d]: %d fields, at most 14", cpath, i,
                             cJSON_GetArraySize(r));
            break;
        }
        if (!is_null(repr_field(r, 10)) || !is_null(repr_field(r, 13))) {
            rc = vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: representations[%d]: %s is not supported", cpath, i,
                             !is_null(repr_field(r, 10)) ? "moe_key" : "latent_dim");
            break;
        }
        cJSON *d = cJSON_CreateObject();
        cJSON_AddItemToArray(list, d);
        static const int copy[] = {0, 1, 2, 3, 4, 7, 8, 9};
        for (size_t k = 0; k < sizeof copy / sizeof copy[0]; k++) {
            const cJSON *v = repr_field(r, copy[k]);
            if (v) cJSON_AddItemToObject(d, repr_fields[copy[k]], cJSON_Duplicate(v, 1));
        }
        /* the representation's own type wins; else intervention_types[i] */
        const cJSON *t = repr_field(r, 5);
        const char *where = "intervention_type";
        char wbuf[64];
        if (is_null(t)) {
            t = cJSON_IsArray(types) ? cJSON_GetArrayItem(types, i) : types;
            snprintf(wbuf, sizeof wbuf, cJSON_IsArray(types) ? "intervention_types[%d]" : "intervention_types", i);
            where = wbuf;
        }
        int ty = VENE_IV_VANILLA;
        if (!is_null(t)) {
            if (!cJSON_IsString(t)) {
                rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: representations[%d].%s: expected a class name string", cpath,
                                 i, where);
                break;
            }
            ty = vene_iv_type_from_name(t->valuestring);
            if (ty < 0) {
                rc = vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: %s: unsupported intervention type \"%s\"", cpath,
                                 where, t->valuestring);
                break;
            }
        }
        cJSON_AddStringToObject(d, "intervention_type", vene_iv_type_name((vene_iv_type)ty));
        /* keep_last_dim: vene's own list, or intervention_kwargs of a dict-form representation */
        const cJSON *kwargs = cJSON_IsObject(r) ? cJSON_GetObjectItemCaseSensitive(r, "intervention_kwargs") : NULL;
        cJSON *kw = cJSON_IsObject(kwargs) ? cJSON_Duplicate(kwargs, 1) : NULL;
        const cJSON *kv = cJSON_IsArray(keep) ? cJSON_GetArrayItem(keep, i) : NULL;
        if (cJSON_IsTrue(kv)) {
            if (!kw) kw = cJSON_CreateObject();
            cJSON_DeleteItemFromObjectCaseSensitive(kw, "keep_last_dim");
            cJSON_AddTrueToObject(kw, "keep_last_dim");
        }
        if (kw) cJSON_AddItemToObject(d, "intervention_kwargs", kw);
        /* pyvene reads a file for trainable interventions and for stored constant sources */
        const cJSON *cflag = cJSON_IsArray(consts) ? cJSON_GetArrayItem(consts, i) : NULL;
        need[i] = ty != VENE_IV_CALLBACK &&
                  (vene_iv_is_trainable((vene_iv_type)ty) || cJSON_IsTrue(repr_field(r, 12)) ||
                   (cJSON_IsTrue(cflag) && vene_iv_needs_source((vene_iv_type)ty)));
    }
    if (rc) {
        free(need);
        cJSON_Delete(cfg);
        return rc;
    }
    *out = cfg;
    *n_out = n;
    *need_file = need;
    return VENE_OK;
}

static int file_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Load every tensor of one intkey file into slot i's intervention. */
static int load_params(vene_slot *s, const char *path, vene_error *err) {
    st_file *f = NULL;
    int rc = st_open(path, &f, err);
    if (rc) return rc; /* st_open's messages name the file */
    for (int k = 0; k < st_count(f) && !rc; k++) {
        const st_tensor *t = st_at(f, k);
        if ((rc = vene_iv_set_param(s->iv, t->name, t, err))) vene_error_prefix(err, "%s", path);
    }
    st_close(f);
    return rc;
}

int vene_intervenable_load(const vene_model *m, const char *dir, vene_intervenable **out, vene_error *err) {
    vene_error local;
    if (!err) err = &local;
    if (out) *out = NULL;
    if (!m || !dir || !out) return vene_errorf(err, VENE_ERR_ARG, "vene_intervenable_load: NULL argument");
    char cpath[4608], path[4608];
    snprintf(cpath, sizeof cpath, "%s/config.json", dir);
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return vene_errorf(err, VENE_ERR_IO, "%s: no such directory (looked for %s)", dir, cpath);
    char *text = read_text(cpath, err);
    if (!text) return err->code;
    cJSON *saved = cJSON_Parse(text);
    free(text);
    if (!saved) return vene_errorf(err, VENE_ERR_FORMAT, "%s: not valid JSON", cpath);
    cJSON *cfg = NULL;
    int n = 0, *need = NULL;
    vene_intervenable *iv = NULL;
    int rc = vene_json_unique_keys(saved, cpath, err);
    if (!rc) rc = rebuild_config(saved, cpath, &cfg, &n, &need, err);
    if (!rc && (rc = vene_intervenable_from_json(m, cfg, &iv, err))) vene_error_prefix(err, "%s", cpath);
    const cJSON *dims = cJSON_GetObjectItemCaseSensitive(saved, "intervention_dimensions");
    const cJSON *keys = cJSON_GetObjectItemCaseSensitive(saved, "sorted_keys");
    if (!rc && !is_null(dims) && !(cJSON_IsArray(dims) && cJSON_GetArraySize(dims) == n))
        rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: \"intervention_dimensions\" must be a list of %d entries", cpath, n);
    for (int i = 0; i < n && !rc; i++) {
        vene_slot *s = &iv->slots[i];
        const cJSON *d = cJSON_IsArray(dims) ? cJSON_GetArrayItem(dims, i) : NULL;
        if (!is_null(d)) {
            if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > (1 << 24) ||
                d->valuedouble != (double)(int)d->valuedouble) {
                rc = vene_errorf(err, d && cJSON_IsArray(d) ? VENE_ERR_UNSUPPORTED : VENE_ERR_FORMAT,
                                 "%s: intervention_dimensions[%d]: expected a non-negative integer or null", cpath, i);
                break;
            }
            s->iv->interchange_dim = (int)d->valuedouble;
        }
        /* intkey_<key>, or the key the file was saved under (older pyvene: dotted keys) */
        const char *cand[2] = {s->key, NULL};
        const cJSON *sk = cJSON_IsArray(keys) ? cJSON_GetArrayItem(keys, i) : NULL;
        if (cJSON_IsString(sk) && strcmp(sk->valuestring, s->key) && !strchr(sk->valuestring, '/'))
            cand[1] = sk->valuestring;
        int found = 0;
        for (int c = 0; c < 2 && cand[c] && !found; c++) {
            snprintf(path, sizeof path, "%s/intkey_%s.safetensors", dir, cand[c]);
            if (file_exists(path)) found = 1;
        }
        if (found) {
            rc = load_params(s, path, err);
            continue;
        }
        if (!need[i]) continue;
        for (int c = 0; c < 2 && cand[c]; c++) {
            snprintf(path, sizeof path, "%s/intkey_%s.bin", dir, cand[c]);
            if (file_exists(path)) {
                rc = vene_errorf(err, VENE_ERR_UNSUPPORTED,
                                 "%s: pyvene's PyTorch pickle checkpoints cannot be read; convert it to "
                                 "intkey_%s.safetensors (torch.load, then safetensors.torch.save_file)",
                                 path, cand[c]);
                break;
            }
        }
        if (!rc) {
            snprintf(path, sizeof path, "%s/intkey_%s.safetensors", dir, s->key);
            rc = vene_errorf(err, VENE_ERR_IO, "%s: missing (intervention %d, a %s, has saved parameters)", path, i,
                             vene_iv_type_name(s->iv->type));
        }
    }
    for (int i = 0; i < n && !rc; i++) {
        vene_slot *s = &iv->slots[i];
        if (s->iv_owner && (rc = vene_iv_finalize(s->iv, iv->seed + (uint64_t)i, err)))
            vene_error_prefix(err, "%s/intkey_%s.safetensors", dir, s->key);
    }
    cJSON_Delete(saved);
    cJSON_Delete(cfg);
    free(need);
    if (rc) {
        vene_intervenable_free(iv);
        return rc;
    }
    *out = iv;
    return VENE_OK;
}

/* ---------------------------------------------------------------- printing */

/* pyvene's IntervenableConfig.__repr__: a title line and indented JSON with model_type,
 * representations (named fields), intervention_types, mode, sorted_keys and
 * intervention_dimensions. */
char *vene_intervenable_describe(const vene_intervenable *iv) {
    cJSON *saved = build_config(iv);
    cJSON *out = cJSON_CreateObject();
    cJSON_AddItemToObject(out, "model_type", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(saved, "model_type"), 1));
    cJSON *reprs = cJSON_AddArrayToObject(out, "representations");
    const cJSON *arr;
    cJSON_ArrayForEach(arr, cJSON_GetObjectItemCaseSensitive(saved, "representations")) {
        cJSON *o = cJSON_CreateObject();
        for (int f = 0; f < 14; f++) cJSON_AddItemToObject(o, repr_fields[f], cJSON_Duplicate(cJSON_GetArrayItem(arr, f), 1));
        cJSON_AddItemToArray(reprs, o);
    }
    char *types = cJSON_PrintUnformatted(cJSON_GetObjectItemCaseSensitive(saved, "intervention_types"));
    cJSON_AddStringToObject(out, "intervention_types", types ? types : "[]");
    free(types);
    cJSON_AddItemToObject(out, "mode", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(saved, "mode"), 1));
    cJSON_AddItemToObject(out, "sorted_keys", cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(saved, "sorted_keys"), 1));
    cJSON_AddItemToObject(out, "intervention_dimensions",
                          cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(saved, "intervention_dimensions"), 1));
    char *json = cJSON_Print(out);
    cJSON_Delete(out);
    cJSON_Delete(saved);
    if (!json) return NULL;
    size_t n = strlen(json) + sizeof "IntervenableConfig\n";
    char *text = malloc(n);
    if (text) snprintf(text, n, "IntervenableConfig\n%s", json);
    free(json);
    return text;
}
