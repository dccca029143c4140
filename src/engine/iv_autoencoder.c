/* pyvene's AutoencoderIntervention (spec §8.11) with the intended latent selection
 * (§16 #15): enc(x) = ReLU(W_e (x - b_d) + b_e), dec(z) = W_d z + b_d, applied to rows of
 * the last dimension; z_b = enc(base), z_s = enc(source), z_b[K] = z_s[K], out = dec(z_b),
 * where K is an explicit latent index list (the subspaces, per example or shared), else
 * the prefix [0, interchange_dim) when it is set below the latent width, else every latent.
 * The output is a full reconstruction even where nothing is swapped, as in pyvene. */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "engine/iv_internal.h"

enum { WE, BE, WD, BD };
const char *const iv_autoencoder_names[4] = {"autoencoder.encoder.0.weight", "autoencoder.encoder.0.bias",
                                             "autoencoder.decoder.0.weight", "autoencoder.decoder.0.bias"};

static int64_t ae_numel(const vene_iv *iv, int k) {
    int64_t E = iv->embed_dim, L = iv->low_rank;
    return k == WE || k == WD ? E * L : k == BE ? L : E;
}

int iv_autoencoder_set_param(vene_iv *iv, const char *name, const float *data, int ndim, const int64_t *shape,
                             vene_error *err) {
    int k = -1;
    for (int i = 0; i < 4; i++)
        if (!strcmp(name, iv_autoencoder_names[i])) k = i;
    if (k < 0) return 0;
    int64_t E = iv->embed_dim, L = iv->low_rank;
    int64_t want0 = k == WE ? L : k == BE ? L : E, want1 = k == WE ? E : k == WD ? L : 0;
    if (E <= 0 || L <= 0)
        return -vene_errorf(err, VENE_ERR_STATE, "AutoencoderIntervention: '%s' needs embed_dim and latent_dim set", name);
    if (ndim != (want1 ? 2 : 1) || shape[0] != want0 || (want1 && shape[1] != want1))
        return -vene_errorf(err, VENE_ERR_ARG, "AutoencoderIntervention: parameter '%s' must be [%lld%s%lld]", name,
                            (long long)want0, want1 ? ", " : "", want1 ? (long long)want1 : 0LL);
    float *p = malloc(sizeof(float) * (size_t)ae_numel(iv, k));
    if (!p) return -vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    memcpy(p, data, sizeof(float) * (size_t)ae_numel(iv, k));
    free(iv->ae[k]);
    iv->ae[k] = p;
    return 1;
}

/* torch.nn.Linear's default initialisation, U(-1/sqrt(in), 1/sqrt(in)), seeded. */
int iv_autoencoder_finalize(vene_iv *iv, uint64_t seed, vene_error *err) {
    if (iv->embed_dim <= 0 || iv->low_rank <= 0)
        return vene_errorf(err, VENE_ERR_ARG, "AutoencoderIntervention: needs embed_dim and latent_dim "
                           "(intervention_kwargs {\"latent_dim\": L} or low_rank_dimension)");
    vene_rng r;
    vene_rng_seed(&r, seed);
    for (int k = 0; k < 4; k++) {
        if (iv->ae[k]) continue;
        int64_t n = ae_numel(iv, k);
        double a = 1.0 / sqrt((double)(k == WE || k == BE ? iv->embed_dim : iv->low_rank));
        if (!(iv->ae[k] = malloc(sizeof(float) * (size_t)n))) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        for (int64_t i = 0; i < n; i++) iv->ae[k][i] = (float)(a * (2.0 * vene_rng_uniform(&r) - 1.0));
    }
    return VENE_OK;
}

/* pre = (x - b_d) W_e^T + b_e for N rows (N x L). */
static void encode_pre(const vene_iv *iv, const float *x, int64_t N, float *tmp, float *pre) {
    int E = iv->embed_dim, L = iv->low_rank;
    for (int64_t i = 0; i < N; i++)
        for (int c = 0; c < E; c++) tmp[i * E + c] = x[i * E + c] - iv->ae[BD][c];
    for (int64_t i = 0; i < N; i++) memcpy(pre + i * L, iv->ae[BE], sizeof(float) * (size_t)L);
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, L, E, 1.0f, tmp, E, iv->ae[WE], E, 1.0f, pre, L);
}

typedef struct ae_work {
    int64_t N, rows_per_ex;
    iv_coords cs;
    float *tmp, *pb, *ps, *z, *mask; /* mask: N x L, 1 = take the source's latent */
} ae_work;

static void work_free(ae_work *w) {
    iv_coords_free(&w->cs);
    free(w->tmp), free(w->pb), free(w->ps), free(w->z), free(w->mask);
}

static int work_init(const vene_iv *iv, const vene_tensor *x, const float *src, const vene_subspaces *ss, ae_work *w,
                     vene_error *err) {
    memset(w, 0, sizeof *w);
    const char *tn = vene_iv_type_name(iv->type);
    int E = iv->embed_dim, L = iv->low_rank;
    if (!iv->ae[WE] || !iv->ae[BE] || !iv->ae[WD] || !iv->ae[BD])
        return vene_errorf(err, VENE_ERR_STATE, "%s: parameters not loaded (call vene_iv_finalize)", tn);
    if (x->shape[x->ndim - 1] != E)
        return vene_errorf(err, VENE_ERR_ARG, "%s: the block's last dim is %lld but embed_dim is %d", tn,
                           (long long)x->shape[x->ndim - 1], E);
    int64_t n = vene_tensor_numel(x), B = x->shape[0];
    w->N = n / E;
    w->rows_per_ex = w->N / B;
    int prefix = ss ? -1 : (iv->interchange_dim >= 0 && iv->interchange_dim < L ? iv->interchange_dim : -1);
    int rc = iv_coords_build(iv, ss, B, L, prefix, &w->cs, err);
    if (rc) return rc;
    size_t NL = (size_t)(w->N * L);
    w->tmp = malloc(sizeof(float) * (size_t)n), w->pb = malloc(sizeof(float) * NL), w->ps = malloc(sizeof(float) * NL);
    w->z = malloc(sizeof(float) * NL), w->mask = calloc(NL, sizeof(float));
    if (!w->tmp || !w->pb || !w->ps || !w->z || !w->mask) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", tn);
    for (int64_t i = 0; i < w->N; i++) {
        int set = iv_coords_set(&w->cs, i / w->rows_per_ex);
        for (int j = w->cs.off[set]; j < w->cs.off[set + 1]; j++) w->mask[i * L + w->cs.c[j]] = 1.0f;
    }
    encode_pre(iv, x->data, w->N, w->tmp, w->pb);
    encode_pre(iv, src, w->N, w->tmp, w->ps);
    for (size_t i = 0; i < NL; i++) {
        float zb = w->pb[i] > 0 ? w->pb[i] : 0, zs = w->ps[i] > 0 ? w->ps[i] : 0;
        w->z[i] = w->mask[i] ? zs : zb;
    }
    return VENE_OK;
}

int iv_autoencoder_apply(const vene_iv *iv, vene_tensor *base, const float *src, const vene_subspaces *ss,
                         vene_error *err) {
    ae_work w;
    int rc = work_init(iv, base, src, ss, &w, err);
    if (!rc) {
        int E = iv->embed_dim, L = iv->low_rank;
        for (int64_t i = 0; i < w.N; i++) memcpy(base->data + i * E, iv->ae[BD], sizeof(float) * (size_t)E);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)w.N, E, L, 1.0f, w.z, L, iv->ae[WD], L, 1.0f,
                    base->data, E);
    }
    work_free(&w);
    return rc;
}

/* dz = G W_d; dW_d += G^T z; db_d += sum G; per side dpre = dz . [pre > 0] . (mask or 1 - mask);
 * dW_e += dpre^T (x - b_d); db_e += sum dpre; dx = dpre W_e; db_d -= sum dx (x - b_d). */
int iv_autoencoder_backward(vene_iv *iv, const vene_tensor *x, const float *src, const vene_subspaces *ss,
                            vene_tensor *g, float *dsrc, vene_error *err) {
    ae_work w;
    int rc = work_init(iv, x, src, ss, &w, err);
    int E = iv->embed_dim, L = iv->low_rank;
    size_t NL = (size_t)(w.N * L);
    float *dz = rc ? NULL : malloc(sizeof(float) * NL), *dp = rc ? NULL : malloc(sizeof(float) * NL);
    if (!rc && (!dz || !dp)) rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    for (int k = 0; k < 4 && !rc; k++)
        if (!iv->ae_grad[k] && !(iv->ae_grad[k] = calloc((size_t)ae_numel(iv, k), sizeof(float))))
            rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    if (!rc) {
        const float *G = g->data;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)w.N, L, E, 1.0f, G, E, iv->ae[WD], L, 0.0f, dz, L);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, E, L, (int)w.N, 1.0f, G, E, w.z, L, 1.0f, iv->ae_grad[WD], L);
        for (int64_t i = 0; i < w.N; i++)
            for (int c = 0; c < E; c++) iv->ae_grad[BD][c] += G[i * E + c];
        for (int side = 0; side < 2; side++) { /* 0: the base's latents, 1: the source's */
            const float *in = side ? src : x->data, *pre = side ? w.ps : w.pb;
            float *dx = side ? dsrc : g->data;
            for (size_t i = 0; i < NL; i++)
                dp[i] = (pre[i] > 0 && (side ? w.mask[i] != 0 : w.mask[i] == 0)) ? dz[i] : 0.0f;
            for (int64_t i = 0; i < w.N; i++)
                for (int c = 0; c < E; c++) w.tmp[i * E + c] = in[i * E + c] - iv->ae[BD][c];
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, L, E, (int)w.N, 1.0f, dp, L, w.tmp, E, 1.0f,
                        iv->ae_grad[WE], E);
            for (int64_t i = 0; i < w.N; i++)
                for (int l = 0; l < L; l++) iv->ae_grad[BE][l] += dp[i * L + l];
            /* d(x - b_d) = dp W_e: into tmp, then to dx (side 0 overwrites g) and -db_d */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)w.N, E, L, 1.0f, dp, L, iv->ae[WE], E, 0.0f,
                        w.tmp, E);
            for (int64_t i = 0; i < w.N; i++)
                for (int c = 0; c < E; c++) {
                    iv->ae_grad[BD][c] -= w.tmp[i * E + c];
                    if (side == 0) g->data[i * E + c] = w.tmp[i * E + c];
                    else if (dx) dx[i * E + c] += w.tmp[i * E + c];
                }
        }
    }
    free(dz), free(dp);
    work_free(&w);
    return rc;
}
