/* Intervention parameters: loading by pyvene state-dict name (experiment-format §6) and
 * completing them (orthogonal parametrisation or seeded initialisation, spec §8.12). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "engine/iv_internal.h"

#define P_ORIGINAL "rotate_layer.parametrizations.weight.original"
#define P_BASE "rotate_layer.parametrizations.weight.0.base"
#define P_WEIGHT "rotate_layer.weight"

static int is_rotation(vene_iv_type t) {
    return t == VENE_IV_ROTATED || t == VENE_IV_LOWRANK_ROTATED || t == VENE_IV_BOUNDLESS_ROTATED ||
           t == VENE_IV_SIGMOID_MASK_ROTATED;
}

static int is_float_dtype(st_dtype d) { return d == ST_F32 || d == ST_F16 || d == ST_BF16 || d == ST_F64; }
static int is_int_dtype(st_dtype d) {
    return d == ST_I64 || d == ST_I32 || d == ST_I16 || d == ST_I8 || d == ST_U8 || d == ST_BOOL;
}

/* "[64, 4]" for the tensor's shape. */
static const char *tshape(const st_tensor *t, char *buf, size_t n) { return iv_shape_str(t->ndim, t->shape, buf, n); }

static int bad_shape(const vene_iv *iv, const char *name, const st_tensor *t, const char *want, vene_error *err) {
    char got[96];
    return vene_errorf(err, VENE_ERR_ARG, "%s: parameter '%s' has shape %s, expected %s",
                       vene_iv_type_name(iv->type), name, tshape(t, got, sizeof got), want);
}

/* New float copy of a float-typed tensor. */
static int load_f32(const vene_iv *iv, const char *name, const st_tensor *t, float **out, vene_error *err) {
    if (!is_float_dtype(t->dtype))
        return vene_errorf(err, VENE_ERR_ARG, "%s: parameter '%s' has dtype %s, expected a float type",
                           vene_iv_type_name(iv->type), name, st_dtype_name(t->dtype));
    float *p = malloc(sizeof(float) * (size_t)(t->numel > 0 ? t->numel : 1));
    if (!p)
        return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory for parameter '%s' (%lld floats)",
                           vene_iv_type_name(iv->type), name, (long long)t->numel);
    int rc = st_to_f32(t, p, err);
    if (rc) {
        free(p);
        return vene_error_prefix(err, "%s: parameter '%s'", vene_iv_type_name(iv->type), name);
    }
    *out = p;
    return VENE_OK;
}

/* One scalar ([] or [1]) of float type. */
static int load_scalar(const vene_iv *iv, const char *name, const st_tensor *t, float *v, vene_error *err) {
    if (t->numel != 1 || t->ndim > 1) return bad_shape(iv, name, t, "[] (a scalar)", err);
    float *p = NULL;
    int rc = load_f32(iv, name, t, &p, err);
    if (rc) return rc;
    *v = p[0];
    free(p);
    return VENE_OK;
}

/* One integer scalar ([] or [1]). */
static int load_int_scalar(const vene_iv *iv, const char *name, const st_tensor *t, int64_t *v, vene_error *err) {
    if (t->numel != 1 || t->ndim > 1) return bad_shape(iv, name, t, "[] (a scalar)", err);
    if (!is_int_dtype(t->dtype))
        return vene_errorf(err, VENE_ERR_ARG, "%s: parameter '%s' has dtype %s, expected an integer type",
                           vene_iv_type_name(iv->type), name, st_dtype_name(t->dtype));
    int rc = st_to_i64(t, v, err);
    return rc ? vene_error_prefix(err, "%s: parameter '%s'", vene_iv_type_name(iv->type), name) : VENE_OK;
}

/* Width r of the rotated space: low_rank for LowRank, E otherwise (0 = not yet known). */
static int rot_cols(const vene_iv *iv) {
    return iv->type == VENE_IV_LOWRANK_ROTATED ? iv->low_rank : iv->embed_dim;
}

/* Checks a rotation tensor of shape rows x cols ("E x E" or "E x r"), adopting E (and r for
 * LowRank) when they are still unknown. */
static int check_rot_shape(vene_iv *iv, const char *name, const st_tensor *t, int square, vene_error *err) {
    char want[96];
    int E = iv->embed_dim > 0 ? iv->embed_dim : -1;
    int r = square ? E : (rot_cols(iv) > 0 ? rot_cols(iv) : -1);
    if (square) snprintf(want, sizeof want, "[E, E] with E = %d", E);
    else snprintf(want, sizeof want, "[E, r] = [%d, %d]", E, r);
    if (t->ndim != 2 || t->shape[0] <= 0 || t->shape[1] <= 0 || t->shape[0] > (1 << 20) || t->shape[1] > (1 << 20))
        return bad_shape(iv, name, t, want, err);
    if (E > 0 && t->shape[0] != E) return bad_shape(iv, name, t, want, err);
    if (square && t->shape[1] != t->shape[0]) return bad_shape(iv, name, t, want, err);
    if (!square && r > 0 && t->shape[1] != r) return bad_shape(iv, name, t, want, err);
    if (!square && iv->type != VENE_IV_LOWRANK_ROTATED && t->shape[1] != t->shape[0])
        return bad_shape(iv, name, t, want, err);
    if (t->shape[1] > t->shape[0]) return bad_shape(iv, name, t, want, err);
    if (E <= 0) iv->embed_dim = (int)t->shape[0];
    if (!square && iv->type == VENE_IV_LOWRANK_ROTATED && iv->low_rank <= 0) iv->low_rank = (int)t->shape[1];
    return VENE_OK;
}

static void replace(float **slot, float *p) {
    free(*slot);
    *slot = p;
}

int vene_iv_set_param(vene_iv *iv, const char *name, const st_tensor *t, vene_error *err) {
    if (!iv || !name || !t) return vene_errorf(err, VENE_ERR_ARG, "vene_iv_set_param: NULL argument");
    const char *tn = vene_iv_type_name(iv->type);
    vene_iv_type ty = iv->type;
    int rc;
    char want[96];
    float *p = NULL;

    if (ty == VENE_IV_AUTOENCODER && !strncmp(name, "autoencoder.", 12)) {
        if ((rc = load_f32(iv, name, t, &p, err))) return rc;
        int got = iv_autoencoder_set_param(iv, name, p, t->ndim, t->shape, err);
        free(p);
        if (got < 0) return -got;
        if (got) return VENE_OK;
    }
    if (is_rotation(ty) && (!strcmp(name, P_ORIGINAL) || !strcmp(name, P_WEIGHT) || !strcmp(name, P_BASE))) {
        int square = !strcmp(name, P_BASE);
        if ((rc = check_rot_shape(iv, name, t, square, err))) return rc;
        if ((rc = load_f32(iv, name, t, &p, err))) return rc;
        replace(!strcmp(name, P_ORIGINAL) ? &iv->original : !strcmp(name, P_BASE) ? &iv->base : &iv->W, p);
        /* a new original or base makes a derived W stale: vene_iv_finalize re-derives it */
        if (strcmp(name, P_WEIGHT) != 0) replace(&iv->W, NULL);
        return VENE_OK;
    }
    if (ty == VENE_IV_BOUNDLESS_ROTATED && !strcmp(name, "intervention_boundaries")) {
        if (t->ndim != 1 || t->shape[0] != 1) return bad_shape(iv, name, t, "[1]", err);
        return load_scalar(iv, name, t, &iv->boundary, err);
    }
    if ((ty == VENE_IV_BOUNDLESS_ROTATED || ty == VENE_IV_SIGMOID_MASK_ROTATED || ty == VENE_IV_SIGMOID_MASK) &&
        !strcmp(name, "temperature"))
        return load_scalar(iv, name, t, &iv->temperature, err);
    if (ty == VENE_IV_BOUNDLESS_ROTATED && !strcmp(name, "intervention_population")) {
        /* Only arange(E) is meaningful (the mask index i is the population value). */
        snprintf(want, sizeof want, "[E] with E = %d", iv->embed_dim);
        if (t->ndim != 1 || t->shape[0] <= 0 || (iv->embed_dim > 0 && t->shape[0] != iv->embed_dim))
            return bad_shape(iv, name, t, want, err);
        if (!is_int_dtype(t->dtype))
            return vene_errorf(err, VENE_ERR_ARG, "%s: parameter '%s' has dtype %s, expected I64", tn, name,
                               st_dtype_name(t->dtype));
        int64_t *v = malloc(sizeof(int64_t) * (size_t)t->numel);
        if (!v) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory for '%s'", tn, name);
        if ((rc = st_to_i64(t, v, err))) {
            free(v);
            return vene_error_prefix(err, "%s: parameter '%s'", tn, name);
        }
        for (int64_t i = 0; i < t->numel; i++)
            if (v[i] != i) {
                rc = vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: parameter '%s' must be 0 .. %lld in order; element "
                                 "%lld is %lld", tn, name, (long long)t->numel - 1, (long long)i, (long long)v[i]);
                free(v);
                return rc;
            }
        free(v);
        if (iv->embed_dim <= 0) iv->embed_dim = (int)t->shape[0];
        return VENE_OK;
    }
    if ((ty == VENE_IV_SIGMOID_MASK_ROTATED && !strcmp(name, "masks")) ||
        (ty == VENE_IV_SIGMOID_MASK && !strcmp(name, "mask"))) {
        snprintf(want, sizeof want, "[E] with E = %d", iv->embed_dim);
        if (t->ndim != 1 || t->shape[0] <= 0 || t->shape[0] > (1 << 24) ||
            (iv->embed_dim > 0 && t->shape[0] != iv->embed_dim))
            return bad_shape(iv, name, t, want, err);
        if ((rc = load_f32(iv, name, t, &p, err))) return rc;
        replace(&iv->masks, p);
        iv->masks_len = (int)t->shape[0];
        if (ty == VENE_IV_SIGMOID_MASK_ROTATED && iv->embed_dim <= 0) iv->embed_dim = iv->masks_len;
        return VENE_OK;
    }
    if (ty == VENE_IV_NOISE && !strcmp(name, "noise")) {
        snprintf(want, sizeof want, "[1, 4, D] with D = embed_dim = %d", iv->embed_dim);
        if (t->ndim != 3 || t->shape[0] != 1 || t->shape[1] <= 0 || t->shape[2] <= 0 || t->shape[1] > (1 << 16) ||
            t->shape[2] > (1 << 24) || (iv->embed_dim > 0 && t->shape[2] != iv->embed_dim))
            return bad_shape(iv, name, t, want, err);
        if (!is_float_dtype(t->dtype))
            return vene_errorf(err, VENE_ERR_ARG, "%s: parameter '%s' has dtype %s, expected F64", tn, name,
                               st_dtype_name(t->dtype));
        double *d = malloc(sizeof(double) * (size_t)t->numel);
        if (!d) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory for '%s'", tn, name);
        if (t->dtype == ST_F64) {
            memcpy(d, t->data, sizeof(double) * (size_t)t->numel);   /* little-endian host */
        } else {
            if ((rc = load_f32(iv, name, t, &p, err))) {
                free(d);
                return rc;
            }
            for (int64_t i = 0; i < t->numel; i++) d[i] = p[i];
            free(p);
        }
        free(iv->noise);
        iv->noise = d;
        iv->noise_units = (int)t->shape[1];
        iv->noise_dim = (int)t->shape[2];
        return VENE_OK;
    }
    if (ty == VENE_IV_NOISE && !strcmp(name, "noise_level")) return load_scalar(iv, name, t, &iv->noise_level, err);
    if (ty != VENE_IV_CALLBACK && !strcmp(name, "source_representation")) {
        if (t->numel <= 0) return bad_shape(iv, name, t, "a non-empty tensor", err);
        if ((rc = load_f32(iv, name, t, &p, err))) return rc;
        replace(&iv->source_repr, p);
        iv->source_repr_numel = t->numel;
        return VENE_OK;
    }
    if (!strcmp(name, "embed_dim") || !strcmp(name, "interchange_dim")) {
        int64_t v = 0;
        if ((rc = load_int_scalar(iv, name, t, &v, err))) return rc;
        if (v < 0 || v > (1 << 24))
            return vene_errorf(err, VENE_ERR_RANGE, "%s: parameter '%s' is %lld", tn, name, (long long)v);
        if (!strcmp(name, "interchange_dim")) {
            iv->interchange_dim = (int)v;
            return VENE_OK;
        }
        int has_e = iv->original || iv->base || iv->W || (iv->type == VENE_IV_SIGMOID_MASK_ROTATED && iv->masks) ||
                    iv->noise;
        int cur = iv->type == VENE_IV_NOISE && iv->noise ? iv->noise_dim : iv->embed_dim;
        if (has_e && cur != v)
            return vene_errorf(err, VENE_ERR_ARG, "%s: parameter 'embed_dim' is %lld but the loaded parameters are "
                               "%d wide", tn, (long long)v, cur);
        iv->embed_dim = v > 0 ? (int)v : -1;
        return VENE_OK;
    }
    return vene_errorf(err, VENE_ERR_ARG, "%s: unknown parameter '%s' for this intervention type", tn, name);
}

/* ---------------------------------------------------------------- finalize */

static int finalize_rotation(vene_iv *iv, uint64_t seed, vene_error *err) {
    const char *tn = vene_iv_type_name(iv->type);
    int E = iv->embed_dim;
    if (iv->type == VENE_IV_LOWRANK_ROTATED && iv->low_rank <= 0 && iv->W == NULL && iv->original == NULL)
        return vene_errorf(err, VENE_ERR_ARG, "%s: low_rank_dimension is not set", tn);
    int r = rot_cols(iv);
    if (E <= 0) return vene_errorf(err, VENE_ERR_ARG, "%s: embed_dim is not set and no rotation was loaded", tn);
    if (r <= 0 || r > E)
        return vene_errorf(err, VENE_ERR_ARG, "%s: rotation is %d x %d (expected 0 < r <= E)", tn, E, r);
    size_t nr = (size_t)E * r, nE = (size_t)E * E;
    if (iv->W) return VENE_OK;
    /* the E x E base and the O(E^3) initialisation: refuse sizes no config should ask for */
    if (E > 16384)
        return vene_errorf(err, VENE_ERR_MEMORY,
                           "%s: a %d x %d rotation (embed_dim = width x max_number_of_units) is over the 16384 limit", tn,
                           E, E);
    if (iv->original && iv->base) {
        float *W = malloc(sizeof(float) * nr);
        if (!W) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory for a %d x %d rotation", tn, E, r);
        int rc = vene_orthogonal_weight(iv->original, iv->base, E, r, W, err);
        if (rc) {
            free(W);
            return vene_error_prefix(err, "%s", tn);
        }
        iv->W = W;
        return VENE_OK;
    }
    if (iv->original || iv->base)
        return vene_errorf(err, VENE_ERR_STATE, "%s: '%s' was given without '%s' (both are needed to compute %s)", tn,
                           iv->original ? P_ORIGINAL : P_BASE, iv->original ? P_BASE : P_ORIGINAL, P_WEIGHT);
    /* Seeded initialisation: base = random orthogonal, original = -I pattern, W = base[:, :r]
     * (which is what the parametrisation gives at original = -I). */
    double *Q = malloc(sizeof(double) * nE);
    float *base = malloc(sizeof(float) * nE), *orig = calloc(nr, sizeof(float)), *W = malloc(sizeof(float) * nr);
    int rc = VENE_OK;
    if (!Q || !base || !orig || !W) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory for a %d x %d rotation", tn, E, E);
    } else if ((rc = iv_random_orthogonal(E, seed, Q, err)) != VENE_OK) {
        vene_error_prefix(err, "%s", tn);
    } else {
        for (size_t i = 0; i < nE; i++) base[i] = (float)Q[i];
        for (int i = 0; i < E; i++)
            for (int j = 0; j < r; j++) W[(size_t)i * r + j] = base[(size_t)i * E + j];
        for (int j = 0; j < r; j++) orig[(size_t)j * r + j] = -1.0f;
        iv->base = base;
        iv->original = orig;
        iv->W = W;
        base = orig = W = NULL;
    }
    free(Q);
    free(base);
    free(orig);
    free(W);
    return rc;
}

int vene_iv_finalize(vene_iv *iv, uint64_t seed, vene_error *err) {
    if (!iv) return vene_errorf(err, VENE_ERR_ARG, "vene_iv_finalize: NULL intervention");
    const char *tn = vene_iv_type_name(iv->type);
    int rc;
    if (is_rotation(iv->type) && (rc = finalize_rotation(iv, seed, err))) return rc;
    if (iv->type == VENE_IV_AUTOENCODER && (rc = iv_autoencoder_finalize(iv, seed, err))) return rc;
    if (iv->type == VENE_IV_SIGMOID_MASK_ROTATED && !iv->masks) {
        iv->masks = malloc(sizeof(float) * (size_t)iv->embed_dim);
        if (!iv->masks) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory for masks", tn);
        for (int i = 0; i < iv->embed_dim; i++) iv->masks[i] = 100.0f;
        iv->masks_len = iv->embed_dim;
    }
    if (iv->type == VENE_IV_SIGMOID_MASK && !iv->masks && iv->embed_dim > 0) {
        iv->masks = calloc((size_t)iv->embed_dim, sizeof(float));
        if (!iv->masks) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory for mask", tn);
        iv->masks_len = iv->embed_dim;
    }
    if (iv->type == VENE_IV_NOISE && !iv->noise && iv->embed_dim > 0) {
        /* pyvene: numpy.random.RandomState(1).randn(1, 4, embed_dim), whatever the seed. */
        size_t n = (size_t)4 * iv->embed_dim;
        iv->noise = malloc(sizeof(double) * n);
        if (!iv->noise) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory for noise", tn);
        vene_mt mt;
        vene_mt_seed(&mt, 1);
        for (size_t i = 0; i < n; i++) iv->noise[i] = vene_mt_gauss(&mt);
        iv->noise_units = 4;
        iv->noise_dim = iv->embed_dim;
    }
    return VENE_OK;
}
