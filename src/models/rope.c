#include "models/rope.h"

#include <math.h>
#include <string.h>

#include "core/error.h"
#include "core/kernels_llama.h"

static const char *const kind_names[] = {"default", "linear", "dynamic", "llama3"};

/* A number field of rope_scaling that must be present and satisfy lo <= v (and v <= hi). */
static int scaling_num(const vene_model *m, const cJSON *rs, const char *key, double lo, double hi, double *out,
                       vene_error *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(rs, key);
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: key \"rope_scaling.%s\" must be a number in [%g, %g]",
                           m->dir, key, lo, hi);
    *out = v->valuedouble;
    return VENE_OK;
}

int vene_rope_read(const vene_model *m, const char *theta_key, double theta_default, int dim, int max_pos,
                   unsigned allowed, vene_rope *r, vene_error *err) {
    memset(r, 0, sizeof *r);
    r->kind = VENE_ROPE_DEFAULT;
    r->dim = dim;
    r->factor = 1.0;
    r->max_pos = max_pos;
    r->theta = vene_config_num_opt(m->config, theta_key, theta_default);
    if (!(r->theta > 1.0 && r->theta < 1e12))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: key \"%s\" must be a number in (1, 1e12)", m->dir,
                           theta_key);
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(m->config, "rope_scaling");
    if (!rs || cJSON_IsNull(rs)) return VENE_OK;
    if (!cJSON_IsObject(rs))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: key \"rope_scaling\" must be null or an object", m->dir);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rs, "rope_type");
    if (!cJSON_IsString(t)) t = cJSON_GetObjectItemCaseSensitive(rs, "type");
    if (!cJSON_IsString(t))
        return vene_errorf(err, VENE_ERR_FORMAT, "%s/config.json: key \"rope_scaling\" has no string \"rope_type\" or \"type\"",
                           m->dir);
    int kind = -1;
    for (int k = 0; k < (int)(sizeof kind_names / sizeof kind_names[0]); k++)
        if (strcmp(t->valuestring, kind_names[k]) == 0) kind = k;
    if (kind < 0 || !(allowed & VENE_ROPE_ALLOW(kind))) {
        char list[64] = "";
        for (int k = 0; k < (int)(sizeof kind_names / sizeof kind_names[0]); k++)
            if (allowed & VENE_ROPE_ALLOW(k)) {
                if (list[0]) strcat(list, ", ");
                strcat(list, kind_names[k]);
            }
        return vene_errorf(err, VENE_ERR_UNSUPPORTED,
                           "%s/config.json: key \"rope_scaling\" of type \"%s\" is not supported here (%s)", m->dir,
                           t->valuestring, list);
    }
    r->kind = kind;
    if (kind == VENE_ROPE_DEFAULT) return VENE_OK;
    int rc = scaling_num(m, rs, "factor", 1.0, 1e6, &r->factor, err);
    if (rc == VENE_OK && kind == VENE_ROPE_DYNAMIC && dim <= 2)
        return vene_errorf(err, VENE_ERR_UNSUPPORTED, "%s/config.json: dynamic rope_scaling needs a rotary width > 2",
                           m->dir);
    if (rc || kind != VENE_ROPE_LLAMA3) return rc;
    double orig = 0;
    if ((rc = scaling_num(m, rs, "low_freq_factor", 1e-6, 1e6, &r->low_freq_factor, err)) ||
        (rc = scaling_num(m, rs, "high_freq_factor", 1e-6, 1e6, &r->high_freq_factor, err)) ||
        (rc = scaling_num(m, rs, "original_max_position_embeddings", 1, 1e9, &orig, err)))
        return rc;
    if (!(r->high_freq_factor > r->low_freq_factor) || orig != floor(orig))
        return vene_errorf(err, VENE_ERR_FORMAT,
                           "%s/config.json: rope_scaling needs high_freq_factor > low_freq_factor and an integer "
                           "original_max_position_embeddings",
                           m->dir);
    r->original_max_pos = (int)orig;
    return VENE_OK;
}

/* Llama 3.1's frequency-dependent interpolation (_compute_llama3_parameters), step by step
 * in float32 as torch evaluates it: long wavelengths divided by factor, short ones kept,
 * a smooth blend in between. */
static void llama3_adjust(const vene_rope *r, float *inv) {
    const float factor = (float)r->factor, low = (float)r->low_freq_factor;
    const float old_len = (float)r->original_max_pos;
    const float low_wl = (float)(r->original_max_pos / r->low_freq_factor);
    const float high_wl = (float)(r->original_max_pos / r->high_freq_factor);
    const float span = (float)(r->high_freq_factor - r->low_freq_factor);
    for (int i = 0; i < r->dim / 2; i++) {
        float wl = (float)(2.0 * M_PI) / inv[i];
        float scaled = wl > low_wl ? inv[i] / factor : inv[i];
        if (!(wl < high_wl) && !(wl > low_wl)) {
            float smooth = (old_len / wl - low) / span;
            scaled = (1.0f - smooth) * scaled / factor + smooth * scaled;
        }
        inv[i] = scaled;
    }
}

void vene_rope_inv_freq(const vene_rope *r, int seq_len, float *inv) {
    switch (r->kind) {
    case VENE_ROPE_LINEAR:
        vk_rope_inv_freq(inv, r->dim, r->theta, r->factor);
        return;
    case VENE_ROPE_LLAMA3:
        vk_rope_inv_freq(inv, r->dim, r->theta, 1.0);
        llama3_adjust(r, inv);
        return;
    case VENE_ROPE_DYNAMIC:
        if (seq_len > r->max_pos) {
            /* base * ((factor * L / max_pos) - (factor - 1)) ^ (dim / (dim - 2)), in float32 */
            float f = (float)r->factor * (float)seq_len;
            f = f / (float)r->max_pos - (float)(r->factor - 1.0);
            float base = (float)r->theta * powf(f, (float)((double)r->dim / (r->dim - 2)));
            vk_rope_inv_freq(inv, r->dim, base, 1.0);
            return;
        }
        vk_rope_inv_freq(inv, r->dim, r->theta, 1.0);
        return;
    default:
        vk_rope_inv_freq(inv, r->dim, r->theta, 1.0);
    }
}

int vene_rope_max_positions(const vene_rope *r) {
    if (r->kind != VENE_ROPE_DYNAMIC) return r->max_pos;
    double n = (double)r->max_pos * r->factor;
    return n > 1e8 ? 100000000 : (int)n;
}
