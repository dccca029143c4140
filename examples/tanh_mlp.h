/* A model architecture defined outside libvene: a stack of tanh layers,
 *     h[l](x) = tanh(W_l x + b_l),   module h[l] with its activation submodule h[l].act,
 * read from a folder with its own config.json ({"model_type": "tanh_mlp", "h_dim": D,
 * "n_layer": L}) and model.safetensors (h.<l>.weight [D, D], h.<l>.bias [D]). Inputs are
 * embeddings (vene_batch.embeds, B x S x D), as for pyvene's MLP classifier.
 *
 * Everything here uses the public API only (include/vene.h): this is what a user writes
 * to add a model type. Shared by examples/add_model_type.c and tests/test_add_model_type.c. */
#ifndef TANH_MLP_H
#define TANH_MLP_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vene.h"

typedef struct tanh_mlp {
    int n_layer, d;
    const float **w, **b;   /* per layer, borrowed from the model's weights */
} tanh_mlp;

/* The sites, in the order the forward reaches them (indices used by vene_fire). */
enum { TM_LAYER_IN, TM_ACT_IN, TM_ACT_OUT, TM_LAYER_OUT, TM_N_SITES };
static const vene_site_info tanh_mlp_sites[TM_N_SITES] = {
    {"h[%d]", 1, 1, "B x S x D"},
    {"h[%d].act", 1, 1, "B x S x D"},
    {"h[%d].act", 0, 1, "B x S x D"},
    {"h[%d]", 0, 1, "B x S x D"},
};

/* pyvene's component table for it: name, site, input?, third, heads, dimension proposals. */
static const vene_component_spec tanh_mlp_components[] = {
    {"block_input", "h[%d]", 1, 0, 0, "h_dim"},
    {"block_output", "h[%d]", 0, 0, 0, "h_dim"},
    {"mlp_activation", "h[%d].act", 0, 0, 0, "h_dim"},
};

static const char *const tanh_mlp_classes[] = {"TanhMLP", NULL};

static int tm_fail(vene_error *err, int code, const char *msg, const char *arg) {
    if (err) {
        err->code = code;
        snprintf(err->msg, sizeof err->msg, "%s%s", msg, arg ? arg : "");
    }
    return code;
}

static int tm_load(void *user, vene_model *m, vene_arch_dims *dims, void **impl, vene_error *err) {
    (void)user;
    int L = 0, D = 0, rc;
    if ((rc = vene_model_config_int(m, "n_layer", 1, &L, err)) || (rc = vene_model_config_int(m, "h_dim", 1, &D, err)))
        return rc;
    if (L <= 0 || L > 64 || D <= 0 || D > 4096) return tm_fail(err, VENE_ERR_FORMAT, "tanh_mlp: bad sizes in ", vene_model_dir(m));
    tanh_mlp *t = calloc(1, sizeof *t);
    if (!t) return tm_fail(err, VENE_ERR_MEMORY, "out of memory", NULL);
    *impl = t; /* released by tm_free even when the load fails below */
    t->n_layer = L;
    t->d = D;
    t->w = calloc((size_t)L, sizeof *t->w);
    t->b = calloc((size_t)L, sizeof *t->b);
    if (!t->w || !t->b) return tm_fail(err, VENE_ERR_MEMORY, "out of memory", NULL);
    for (int l = 0; l < L; l++) {
        char name[64];
        int64_t wshape[2] = {D, D}, bshape[1] = {D};
        snprintf(name, sizeof name, "h.%d.weight", l);
        if ((rc = vene_model_tensor(m, name, 2, wshape, &t->w[l], err))) return rc;
        snprintf(name, sizeof name, "h.%d.bias", l);
        if ((rc = vene_model_tensor(m, name, 1, bshape, &t->b[l], err))) return rc;
    }
    *dims = (vene_arch_dims){.n_layer = L, .d_model = D};
    return VENE_OK;
}

static void tm_free(void *user, void *impl) {
    (void)user;
    tanh_mlp *t = impl;
    free(t->w);
    free(t->b);
    free(t);
}

static size_t tm_round16(size_t n) { return (n + 15) / 16 * 16; }

/* The input copy, then each layer's pre-activation and activation. */
static size_t tm_scratch(void *user, const vene_model *m, int B, int S) {
    (void)user;
    const tanh_mlp *t = vene_model_impl(m);
    return (1 + 2 * (size_t)t->n_layer) * tm_round16((size_t)B * S * (size_t)t->d);
}

static int tm_forward(void *user, vene_run *rs, const vene_batch *in, vene_error *err) {
    (void)user;
    const tanh_mlp *t = vene_model_impl(vene_run_model(rs));
    if (!in->embeds) return tm_fail(err, VENE_ERR_ARG, "tanh_mlp takes embeddings (vene_batch.embeds)", NULL);
    const int T = in->batch * in->seq, D = t->d;
    float *x = vene_run_scratch(rs, (size_t)T * D, err);
    if (!x) return err ? err->code : VENE_ERR_MEMORY;
    memcpy(x, in->embeds, sizeof(float) * (size_t)T * D); /* hooks may write into it */
    int rc;
    vene_tensor tx = {x, 3, {in->batch, in->seq, D}};
    for (int l = 0; l < t->n_layer; l++) {
        float *y = vene_run_scratch(rs, (size_t)T * D, err), *a = vene_run_scratch(rs, (size_t)T * D, err);
        if (!y || !a) return err ? err->code : VENE_ERR_MEMORY;
        vene_tensor ty = {y, 3, {in->batch, in->seq, D}}, ta = {a, 3, {in->batch, in->seq, D}};
        if ((rc = vene_fire(rs, TM_LAYER_IN, l, &tx, err))) return rc;
        for (int r = 0; r < T; r++)
            for (int i = 0; i < D; i++) {
                float s = t->b[l][i];
                for (int j = 0; j < D; j++) s += t->w[l][i * D + j] * tx.data[r * D + j];
                y[r * D + i] = s;
            }
        if ((rc = vene_fire(rs, TM_ACT_IN, l, &ty, err))) return rc;
        for (int i = 0; i < T * D; i++) a[i] = tanhf(y[i]);
        if ((rc = vene_fire(rs, TM_ACT_OUT, l, &ta, err))) return rc;
        /* the activation's output is the layer's output, one tensor: fired again */
        if ((rc = vene_fire(rs, TM_LAYER_OUT, l, &ta, err))) return rc;
        tx = ta;
    }
    return vene_run_set_outputs(rs, &tx, NULL, err);
}

static int tm_site_shape(void *user, const vene_model *m, int site, int B, int S, int64_t shape[VENE_MAX_DIMS]) {
    (void)user;
    (void)site;
    const tanh_mlp *t = vene_model_impl(m);
    shape[0] = B;
    shape[1] = S;
    shape[2] = t->d;
    return 3;
}

static const vene_arch_spec tanh_mlp_spec = {
    .model_type = "tanh_mlp",
    .classes = tanh_mlp_classes,
    .sites = tanh_mlp_sites,
    .n_sites = TM_N_SITES,
    .components = tanh_mlp_components,
    .n_components = sizeof tanh_mlp_components / sizeof tanh_mlp_components[0],
    .load = tm_load,
    .free_impl = tm_free,
    .scratch_floats = tm_scratch,
    .forward = tm_forward,
    .site_shape = tm_site_shape,
};

/* Write config.json and model.safetensors (F32, little-endian as on every machine vene
 * builds for) of an L-layer, D-wide model into an existing folder. w: L x D x D, b: L x D. */
static int tanh_mlp_write(const char *dir, int L, int D, const float *w, const float *b) {
    char path[1024], header[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    fprintf(f, "{\"model_type\": \"tanh_mlp\", \"architectures\": [\"TanhMLP\"], \"n_layer\": %d, \"h_dim\": %d}\n", L,
            D);
    if (fclose(f)) return -1;
    size_t o = 0, off = 0, wb = sizeof(float) * (size_t)D * D, bb = sizeof(float) * (size_t)D;
    o += (size_t)snprintf(header + o, sizeof header - o, "{");
    for (int l = 0; l < L && o < sizeof header; l++) {
        o += (size_t)snprintf(header + o, sizeof header - o,
                              "%s\"h.%d.weight\":{\"dtype\":\"F32\",\"shape\":[%d,%d],\"data_offsets\":[%zu,%zu]},"
                              "\"h.%d.bias\":{\"dtype\":\"F32\",\"shape\":[%d],\"data_offsets\":[%zu,%zu]}",
                              l ? "," : "", l, D, D, off, off + wb, l, D, off + wb, off + wb + bb);
        off += wb + bb;
    }
    if (o + 9 >= sizeof header) return -1;
    header[o++] = '}';
    while (o % 8) header[o++] = ' '; /* the data starts 8-byte aligned */
    uint64_t n = o;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!(f = fopen(path, "wb"))) return -1;
    int ok = fwrite(&n, 8, 1, f) == 1 && fwrite(header, 1, o, f) == o;
    for (int l = 0; ok && l < L; l++)
        ok = fwrite(w + (size_t)l * D * D, sizeof(float), (size_t)D * D, f) == (size_t)D * D &&
             fwrite(b + (size_t)l * D, sizeof(float), (size_t)D, f) == (size_t)D;
    return fclose(f) == 0 && ok ? 0 : -1;
}

#endif
