/* pyvene's interventions on gathered blocks: types, parameters, subspace selection and the
 * localist (per-unit, last-dimension) maths. The rotation family lives in iv_rotation.c,
 * the orthogonal parametrisation in orthogonal.c. Spec §7, §8, §16 #2. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "engine/iv_internal.h"

#define NOISE_LEVEL_DEFAULT 0.13462981581687927

/* ---------------------------------------------------------------- types */

static const char *const type_names[VENE_IV_TYPE_COUNT] = {
    [VENE_IV_VANILLA] = "VanillaIntervention",
    [VENE_IV_ADDITION] = "AdditionIntervention",
    [VENE_IV_SUBTRACTION] = "SubtractionIntervention",
    [VENE_IV_ZERO] = "ZeroIntervention",
    [VENE_IV_COLLECT] = "CollectIntervention",
    [VENE_IV_NOISE] = "NoiseIntervention",
    [VENE_IV_SKIP] = "SkipIntervention",
    [VENE_IV_ROTATED] = "RotatedSpaceIntervention",
    [VENE_IV_LOWRANK_ROTATED] = "LowRankRotatedSpaceIntervention",
    [VENE_IV_BOUNDLESS_ROTATED] = "BoundlessRotatedSpaceIntervention",
    [VENE_IV_SIGMOID_MASK_ROTATED] = "SigmoidMaskRotatedSpaceIntervention",
    [VENE_IV_SIGMOID_MASK] = "SigmoidMaskIntervention",
    [VENE_IV_AUTOENCODER] = "AutoencoderIntervention",
    [VENE_IV_CALLBACK] = "LambdaIntervention",
};

int vene_iv_type_from_name(const char *name) {
    if (!name) return -1;
    const char *s = name;
    size_t len = strlen(s);
    static const char cls[] = "<class '";
    if (len >= sizeof cls + 1 && strncmp(s, cls, sizeof cls - 1) == 0 && strcmp(s + len - 2, "'>") == 0) {
        s += sizeof cls - 1;
        len -= sizeof cls - 1 + 2;
    }
    /* Keep the part after the last '.' (module path). */
    for (size_t i = len; i > 0; i--)
        if (s[i - 1] == '.') {
            len -= i;
            s += i;
            break;
        }
    for (int t = 0; t < VENE_IV_TYPE_COUNT; t++)
        if (strlen(type_names[t]) == len && strncmp(type_names[t], s, len) == 0) return t;
    return -1;
}

const char *vene_iv_type_name(vene_iv_type t) {
    return (t >= 0 && t < VENE_IV_TYPE_COUNT) ? type_names[t] : "UnknownIntervention";
}

int vene_iv_is_localist(vene_iv_type t) {
    switch (t) {
    case VENE_IV_VANILLA: case VENE_IV_ADDITION: case VENE_IV_SUBTRACTION: case VENE_IV_ZERO:
    case VENE_IV_COLLECT: case VENE_IV_NOISE: case VENE_IV_SKIP: case VENE_IV_SIGMOID_MASK:
    case VENE_IV_AUTOENCODER: /* rows of the last dim (pyvene keeps the last dim) */
    case VENE_IV_CALLBACK:   /* a lambda receives the unflattened block (spec §8.13) */
        return 1;
    default: return 0;
    }
}

/* A callback gets source = NULL when no source run happened (spec §8.13), so it does not
 * require one either. */
int vene_iv_needs_source(vene_iv_type t) {
    return !(t == VENE_IV_ZERO || t == VENE_IV_COLLECT || t == VENE_IV_NOISE || t == VENE_IV_CALLBACK);
}

static int is_rotation(vene_iv_type t) {
    return t == VENE_IV_ROTATED || t == VENE_IV_LOWRANK_ROTATED || t == VENE_IV_BOUNDLESS_ROTATED ||
           t == VENE_IV_SIGMOID_MASK_ROTATED;
}

int vene_iv_is_trainable(vene_iv_type t) {
    return is_rotation(t) || t == VENE_IV_SIGMOID_MASK || t == VENE_IV_AUTOENCODER;
}

const char *iv_shape_str(int ndim, const int64_t *shape, char *buf, size_t n) {
    size_t at = 0;
    if (n == 0) return buf;
    at += (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && at < n; i++)
        at += (size_t)snprintf(buf + at, n - at, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (at < n) snprintf(buf + at, n - at, "]");
    return buf;
}

/* ---------------------------------------------------------------- init / free */

int vene_iv_init(vene_iv *iv, vene_iv_type type, int embed_dim, int low_rank, vene_error *err) {
    if (!iv) return vene_errorf(err, VENE_ERR_ARG, "vene_iv_init: NULL intervention");
    memset(iv, 0, sizeof *iv);
    if ((int)type < 0 || type >= VENE_IV_TYPE_COUNT)
        return vene_errorf(err, VENE_ERR_ARG, "vene_iv_init: unknown intervention type %d", (int)type);
    iv->type = type;
    iv->embed_dim = embed_dim > 0 ? embed_dim : -1;
    iv->interchange_dim = iv->embed_dim;   /* pyvene: interchange_dim = embed_dim (None = all) */
    iv->low_rank = low_rank > 0 ? low_rank : 0;
    iv->boundary = 0.5f;
    iv->temperature = type == VENE_IV_SIGMOID_MASK ? 0.01f : 50.0f;
    iv->noise_level = (float)NOISE_LEVEL_DEFAULT;
    if (type == VENE_IV_LOWRANK_ROTATED && iv->embed_dim > 0 && iv->low_rank > iv->embed_dim)
        return vene_errorf(err, VENE_ERR_ARG, "%s: low_rank_dimension %d exceeds embed_dim %d",
                           vene_iv_type_name(type), iv->low_rank, iv->embed_dim);
    return VENE_OK;
}

static void partition_clear(vene_partition *p) {
    free(p->offsets);
    free(p->coords);
    p->offsets = p->coords = NULL;
    p->n = 0;
}

void vene_iv_free(vene_iv *iv) {
    if (!iv) return;
    partition_clear(&iv->part);
    free(iv->original);
    free(iv->base);
    free(iv->W);
    free(iv->masks);
    free(iv->noise);
    free(iv->source_repr);
    free(iv->grad_W);
    free(iv->grad_original);
    free(iv->grad_masks);
    iv->grad_W = iv->grad_original = iv->grad_masks = NULL;
    for (int k = 0; k < 4; k++) {
        free(iv->ae[k]);
        free(iv->ae_grad[k]);
        iv->ae[k] = iv->ae_grad[k] = NULL;
    }
    iv->original = iv->base = iv->W = iv->masks = iv->source_repr = NULL;
    iv->noise = NULL;
    iv->masks_len = iv->noise_units = iv->noise_dim = 0;
    iv->source_repr_numel = 0;
}

int vene_iv_set_partition(vene_iv *iv, int n, const int *lens, const int *const *vals, const int *is_range,
                          vene_error *err) {
    if (!iv) return vene_errorf(err, VENE_ERR_ARG, "vene_iv_set_partition: NULL intervention");
    const char *tn = vene_iv_type_name(iv->type);
    if (n < 0 || (n > 0 && (!lens || !vals)))
        return vene_errorf(err, VENE_ERR_ARG, "%s: subspace_partition with %d parts and NULL arrays", tn, n);
    int64_t total = 0;
    for (int j = 0; j < n; j++) {
        int range = is_range && is_range[j];
        if (lens[j] < 0 || (lens[j] > 0 && !vals[j]))
            return vene_errorf(err, VENE_ERR_ARG, "%s: subspace_partition part %d has length %d", tn, j, lens[j]);
        if (range) {
            if (lens[j] != 2)
                return vene_errorf(err, VENE_ERR_ARG, "%s: subspace_partition part %d is a range with %d values "
                                   "(expected [begin, end])", tn, j, lens[j]);
            if (vals[j][0] < 0 || vals[j][1] < vals[j][0])
                return vene_errorf(err, VENE_ERR_RANGE, "%s: subspace_partition part %d is the range [%d, %d)", tn,
                                   j, vals[j][0], vals[j][1]);
            total += vals[j][1] - vals[j][0];
        } else {
            for (int i = 0; i < lens[j]; i++)
                if (vals[j][i] < 0)
                    return vene_errorf(err, VENE_ERR_RANGE, "%s: subspace_partition part %d has coordinate %d", tn,
                                       j, vals[j][i]);
            total += lens[j];
        }
        if (total > (1 << 30))
            return vene_errorf(err, VENE_ERR_RANGE, "%s: subspace_partition is too large", tn);
    }
    vene_partition p = {0};
    if (n > 0) {
        p.offsets = malloc(sizeof(int) * (size_t)(n + 1));
        p.coords = malloc(sizeof(int) * (size_t)(total > 0 ? total : 1));
        if (!p.offsets || !p.coords) {
            partition_clear(&p);
            return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory for a %d-part partition", tn, n);
        }
        int at = 0;
        for (int j = 0; j < n; j++) {
            p.offsets[j] = at;
            if (is_range && is_range[j])
                for (int c = vals[j][0]; c < vals[j][1]; c++) p.coords[at++] = c;
            else
                for (int i = 0; i < lens[j]; i++) p.coords[at++] = vals[j][i];
        }
        p.offsets[n] = at;
        p.n = n;
    }
    partition_clear(&iv->part);
    iv->part = p;
    return VENE_OK;
}

/* ---------------------------------------------------------------- subspace selection */

void iv_coords_free(iv_coords *c) {
    free(c->off);
    free(c->c);
    c->off = c->c = NULL;
    c->n_sets = 0;
}

int iv_coords_build(const vene_iv *iv, const vene_subspaces *ss, int64_t B, int width, int prefix, iv_coords *out,
                    vene_error *err) {
    const char *tn = vene_iv_type_name(iv->type);
    memset(out, 0, sizeof *out);
    if (!ss || ss->n_rows == 0) {
        int K = (prefix < 0 || prefix > width) ? width : prefix;
        out->n_sets = 1;
        out->off = malloc(sizeof(int) * 2);
        out->c = malloc(sizeof(int) * (size_t)(K > 0 ? K : 1));
        if (!out->off || !out->c) goto oom;
        out->off[0] = 0;
        out->off[1] = K;
        for (int i = 0; i < K; i++) out->c[i] = i;
        return VENE_OK;
    }
    if (ss->n_rows < 0 || !ss->row_offsets)
        return vene_errorf(err, VENE_ERR_ARG, "%s: subspaces with %d rows and no row offsets", tn, ss->n_rows);
    /* Intended semantics (spec §16 #2): 1 row for all examples, or row b for example b. */
    if (ss->n_rows != 1 && ss->n_rows != B)
        return vene_errorf(err, VENE_ERR_RANGE, "%s: %d subspace rows for a batch of %lld examples (expected 1 or "
                           "%lld)", tn, ss->n_rows, (long long)B, (long long)B);
    int64_t total = 0;
    for (int r = 0; r < ss->n_rows; r++) {
        int a = ss->row_offsets[r], b = ss->row_offsets[r + 1];
        if (a < 0 || b < a)
            return vene_errorf(err, VENE_ERR_ARG, "%s: subspace row %d has offsets [%d, %d)", tn, r, a, b);
        if (b > a && !ss->ids) return vene_errorf(err, VENE_ERR_ARG, "%s: subspace ids are NULL", tn);
        for (int i = a; i < b; i++) {
            int id = ss->ids[i];
            if (iv->part.n > 0) {
                if (id < 0 || id >= iv->part.n)
                    return vene_errorf(err, VENE_ERR_RANGE, "%s: subspace id %d (row %d) is past the partition of "
                                       "%d parts", tn, id, r, iv->part.n);
                total += iv->part.offsets[id + 1] - iv->part.offsets[id];
            } else {
                if (id < 0 || id >= width)
                    return vene_errorf(err, VENE_ERR_RANGE, "%s: subspace id %d (row %d) is out of range for width "
                                       "%d", tn, id, r, width);
                total++;
            }
        }
        if (total > (1 << 30)) return vene_errorf(err, VENE_ERR_RANGE, "%s: subspace selection too large", tn);
    }
    out->n_sets = ss->n_rows;
    out->off = malloc(sizeof(int) * (size_t)(ss->n_rows + 1));
    out->c = malloc(sizeof(int) * (size_t)(total > 0 ? total : 1));
    if (!out->off || !out->c) goto oom;
    int at = 0;
    for (int r = 0; r < ss->n_rows; r++) {
        out->off[r] = at;
        for (int i = ss->row_offsets[r]; i < ss->row_offsets[r + 1]; i++) {
            int id = ss->ids[i];
            if (iv->part.n == 0) {
                out->c[at++] = id;
                continue;
            }
            for (int k = iv->part.offsets[id]; k < iv->part.offsets[id + 1]; k++) {
                int c = iv->part.coords[k];
                if (c >= width) {
                    int rc = vene_errorf(err, VENE_ERR_RANGE, "%s: subspace id %d (row %d) selects coordinate %d, "
                                         "out of range for width %d", tn, id, r, c, width);
                    iv_coords_free(out);
                    return rc;
                }
                out->c[at++] = c;
            }
        }
    }
    out->off[ss->n_rows] = at;
    return VENE_OK;
oom:
    iv_coords_free(out);
    return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory for a subspace selection", tn);
}

/* ---------------------------------------------------------------- sources */

/* Brings the source to the base's shape: *full gets numel(base) floats, either the
 * source's own data (same shape) or *owned, a broadcast copy. A source whose shape differs
 * broadcasts when its last dim equals the base's and every other dim (aligned from the
 * right) is 1 or equal: a [D] steering vector applies to every example and unit. */
int iv_source_full(const vene_iv *iv, const vene_tensor *base, const vene_tensor *source, const float **full,
                       float **owned, vene_error *err) {
    const char *tn = vene_iv_type_name(iv->type);
    int64_t n = vene_tensor_numel(base);
    int snd;
    int64_t sshape[VENE_MAX_DIMS];
    const float *sdata;
    *owned = NULL;
    if (source) {
        if (!source->data || source->ndim < 1 || source->ndim > VENE_MAX_DIMS)
            return vene_errorf(err, VENE_ERR_ARG, "%s: invalid source tensor (%d dims)", tn, source->ndim);
        snd = source->ndim;
        memcpy(sshape, source->shape, sizeof(int64_t) * (size_t)snd);
        sdata = source->data;
    } else if (iv->source_repr) {
        sdata = iv->source_repr;
        if (iv->source_repr_numel == n) {
            *full = sdata;
            return VENE_OK;
        }
        snd = 1;
        sshape[0] = iv->source_repr_numel;
    } else {
        return vene_errorf(err, VENE_ERR_STATE, "%s: needs a source, and none was given (no source_representation)", tn);
    }
    int nd = base->ndim, same = snd == nd;
    for (int i = 0; same && i < nd; i++) same = sshape[i] == base->shape[i];
    if (same) {
        *full = sdata;
        return VENE_OK;
    }
    int ok = snd <= nd && sshape[snd - 1] == base->shape[nd - 1];
    int64_t stride[VENE_MAX_DIMS] = {0}, st = 1;   /* source stride per base dim, 0 = broadcast */
    for (int i = 1; ok && i <= snd; i++) {
        int64_t s = sshape[snd - i], b = base->shape[nd - i];
        if (s == b) stride[nd - i] = st;
        else if (s != 1) ok = 0;
        st *= s;
    }
    if (!ok) {
        char a[96], b[96];
        return vene_errorf(err, VENE_ERR_ARG, "%s: source shape %s does not broadcast to base shape %s (the last "
                           "dims must match)", tn, iv_shape_str(snd, sshape, a, sizeof a),
                           iv_shape_str(nd, base->shape, b, sizeof b));
    }
    float *o = malloc(sizeof(float) * (size_t)n);
    if (!o) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory broadcasting the source", tn);
    int64_t D = base->shape[nd - 1], rows = n / D;
    for (int64_t r = 0; r < rows; r++) {
        int64_t rem = r, off = 0;
        for (int i = nd - 2; i >= 0; i--) {
            off += (rem % base->shape[i]) * stride[i];
            rem /= base->shape[i];
        }
        memcpy(o + r * D, sdata + off, sizeof(float) * (size_t)D);
    }
    *owned = o;
    *full = o;
    return VENE_OK;
}

/* ---------------------------------------------------------------- localist maths */

static int apply_noise(const vene_iv *iv, vene_tensor *base, vene_error *err) {
    const char *tn = vene_iv_type_name(iv->type);
    int nd = base->ndim;
    int64_t D = base->shape[nd - 1];
    if (!iv->noise)
        return vene_errorf(err, VENE_ERR_STATE, "%s: noise is not set (load 'noise' or call vene_iv_finalize with "
                           "embed_dim set)", tn);
    if (nd < 3 || base->shape[nd - 2] != iv->noise_units) {
        char b[96];
        return vene_errorf(err, VENE_ERR_ARG, "%s: the block %s has %lld units on axis -2 but the noise is 1 x %d x "
                           "%d (exactly %d units needed)", tn, iv_shape_str(nd, base->shape, b, sizeof b),
                           nd < 3 ? 0LL : (long long)base->shape[nd - 2], iv->noise_units, iv->noise_dim,
                           iv->noise_units);
    }
    int64_t K = (iv->interchange_dim < 0 || iv->interchange_dim > D) ? D : iv->interchange_dim;
    if (K != iv->noise_dim)
        return vene_errorf(err, VENE_ERR_ARG, "%s: the noise is %d wide but the block's prefix [:%lld] of width %lld "
                           "is intervened on", tn, iv->noise_dim, (long long)K, (long long)D);
    int64_t rows = vene_tensor_numel(base) / D;
    double level = iv->noise_level;
    for (int64_t r = 0; r < rows; r++) {
        float *x = base->data + r * D;
        const double *nz = iv->noise + (r % iv->noise_units) * iv->noise_dim;
        for (int64_t c = 0; c < K; c++) x[c] = (float)((double)x[c] + nz[c] * level);
    }
    return VENE_OK;
}

static int apply_sigmoid_mask(const vene_iv *iv, vene_tensor *base, const float *src, vene_error *err) {
    int64_t D = base->shape[base->ndim - 1];
    if (iv->masks && iv->masks_len != D)
        return vene_errorf(err, VENE_ERR_ARG, "%s: mask has %d entries but the block's last dim is %lld",
                           vene_iv_type_name(iv->type), iv->masks_len, (long long)D);
    float *m = malloc(sizeof(float) * (size_t)D);
    if (!m) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", vene_iv_type_name(iv->type));
    for (int64_t c = 0; c < D; c++) m[c] = iv_sigmoidf((iv->masks ? iv->masks[c] : 0.0f) / iv->temperature);
    int64_t n = vene_tensor_numel(base);
    for (int64_t i = 0; i < n; i++) {
        float mc = m[i % D];
        base->data[i] = (1.0f - mc) * base->data[i] + mc * src[i];
    }
    free(m);
    return VENE_OK;
}

/* Vanilla / Skip / Addition / Subtraction / Zero / Collect over the selected coordinates. */
static int apply_swap(const vene_iv *iv, vene_tensor *base, const float *src, const vene_subspaces *ss,
                      vene_tensor *collected, vene_error *err) {
    const char *tn = vene_iv_type_name(iv->type);
    int nd = base->ndim;
    int64_t B = base->shape[0], D = base->shape[nd - 1], n = vene_tensor_numel(base);
    int64_t rows_per_ex = n / (B * D);
    iv_coords cs;
    int rc = iv_coords_build(iv, ss, B, (int)D, iv->interchange_dim, &cs, err);
    if (rc) return rc;
    if (iv->type == VENE_IV_COLLECT) {
        int m = cs.off[1] - cs.off[0];
        for (int s = 1; s < cs.n_sets; s++)
            if (cs.off[s + 1] - cs.off[s] != m) {
                rc = vene_errorf(err, VENE_ERR_ARG, "%s: ragged selection: example 0 selects %d coordinates, "
                                 "example %d selects %d", tn, m, s, cs.off[s + 1] - cs.off[s]);
                iv_coords_free(&cs);
                return rc;
            }
        float *o = malloc(sizeof(float) * (size_t)(n / D * m > 0 ? n / D * m : 1));
        if (!o) {
            iv_coords_free(&cs);
            return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory for the collected block", tn);
        }
        for (int64_t r = 0; r < n / D; r++) {
            const int *c = cs.c + cs.off[iv_coords_set(&cs, r / rows_per_ex)];
            const float *x = base->data + r * D;
            for (int j = 0; j < m; j++) o[r * m + j] = x[c[j]];
        }
        collected->data = o;
        collected->ndim = nd;
        memcpy(collected->shape, base->shape, sizeof(int64_t) * (size_t)nd);
        collected->shape[nd - 1] = m;
        iv_coords_free(&cs);
        return VENE_OK;
    }
    for (int64_t r = 0; r < n / D; r++) {
        int set = iv_coords_set(&cs, r / rows_per_ex);
        const int *c = cs.c + cs.off[set];
        int m = cs.off[set + 1] - cs.off[set];
        float *x = base->data + r * D;
        const float *s = src ? src + r * D : NULL;
        switch (iv->type) {
        case VENE_IV_ADDITION: for (int j = 0; j < m; j++) x[c[j]] += s[c[j]]; break;
        case VENE_IV_SUBTRACTION: for (int j = 0; j < m; j++) x[c[j]] -= s[c[j]]; break;
        case VENE_IV_ZERO: for (int j = 0; j < m; j++) x[c[j]] = 0.0f; break;
        default: for (int j = 0; j < m; j++) x[c[j]] = s[c[j]]; break;   /* Vanilla, Skip */
        }
    }
    iv_coords_free(&cs);
    return VENE_OK;
}

/* ---------------------------------------------------------------- apply */

int vene_iv_apply(const vene_iv *iv, vene_tensor *base, const vene_tensor *source, const vene_subspaces *ss,
                  vene_tensor *collected, vene_error *err) {
    if (!iv || !base) return vene_errorf(err, VENE_ERR_ARG, "vene_iv_apply: NULL intervention or base");
    const char *tn = vene_iv_type_name(iv->type);
    if (collected) memset(collected, 0, sizeof *collected);
    if (iv->type == VENE_IV_CALLBACK)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s: callbacks are applied by the engine", tn);
    if (iv->type == VENE_IV_COLLECT && !collected)
        return vene_errorf(err, VENE_ERR_ARG, "%s: no output tensor for the collected block", tn);
    char b[96];
    if (!base->data || base->ndim < 2 || base->ndim > VENE_MAX_DIMS)
        return vene_errorf(err, VENE_ERR_ARG, "%s: the base block must be B x ... with 2 to %d dims (got %d)", tn,
                           VENE_MAX_DIMS, base->ndim);
    for (int i = 0; i < base->ndim; i++)
        if (base->shape[i] <= 0 || base->shape[i] > ((int64_t)1 << 30))
            return vene_errorf(err, VENE_ERR_ARG, "%s: invalid base block shape %s", tn,
                               iv_shape_str(base->ndim, base->shape, b, sizeof b));

    const float *src = NULL;
    float *owned = NULL;
    int rc;
    if (vene_iv_needs_source(iv->type) && (rc = iv_source_full(iv, base, source, &src, &owned, err))) return rc;
    switch (iv->type) {
    case VENE_IV_NOISE: rc = apply_noise(iv, base, err); break;
    case VENE_IV_SIGMOID_MASK: rc = apply_sigmoid_mask(iv, base, src, err); break;
    case VENE_IV_AUTOENCODER: rc = iv_autoencoder_apply(iv, base, src, ss, err); break;
    case VENE_IV_ROTATED: case VENE_IV_LOWRANK_ROTATED: case VENE_IV_BOUNDLESS_ROTATED:
    case VENE_IV_SIGMOID_MASK_ROTATED:
        rc = iv_apply_rotation(iv, base, src, ss, err);
        break;
    default: rc = apply_swap(iv, base, src, ss, collected, err); break;
    }
    free(owned);
    return rc;
}
