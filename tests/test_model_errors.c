/* Bad model folders and bad inputs fail cleanly: each call returns a non-zero code and a
 * message that names the file, key, tensor or index at fault. Model folders are built in
 * a temporary directory with the safetensors writer: a tiny GPT-2 (1 layer, 8 wide,
 * 2 heads, 16 positions, vocabulary 10), whose forward is also checked against a plain C
 * re-implementation here, to prove the builder right. */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/safetensors.h"
#include "test.h"
#include "test_tmp.h"
#include "vene.h"

#define FIXTURE_MODEL "fixtures/models/gpt2-tiny"

enum { L_ = 1, D_ = 8, H_ = 2, P_ = 16, V_ = 10, F_ = 32 };

/* ------------------------------------------------------------------ files */

static const char *mkfolder(const char *name) {
    const char *p = tpath(name);
    mkdir(p, 0755);
    return p;
}

static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        perror(path);
        return;
    }
    if (n) fwrite(data, 1, n, fp);
    fclose(fp);
}

static void write_text_in(const char *dir, const char *file, const char *text) {
    char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, file);
    write_bytes(p, text, strlen(text));
}

/* The first `limit` bytes of a file (all of it when limit is 0); *n receives the size. */
static unsigned char *read_bytes(const char *path, size_t limit, size_t *n) {
    FILE *fp = fopen(path, "rb");
    *n = 0;
    if (!fp) return NULL;
    fseek(fp, 0, SEEK_END);
    long sz = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    size_t want = sz < 0 ? 0 : (size_t)sz;
    if (limit && limit < want) want = limit;
    unsigned char *buf = malloc(want + 1);
    if (buf) *n = fread(buf, 1, want, fp);
    fclose(fp);
    return buf;
}

static int has(const vene_error *e, const char *s) { return strstr(e->msg, s) != NULL; }

/* ------------------------------------------------------------------ the tiny model */

#define TINY_CONFIG_FMT                                                                              \
    "{\"model_type\": \"%s\", \"architectures\": [\"GPT2LMHeadModel\"], \"n_layer\": 1, %s"          \
    "\"n_head\": 2, \"n_positions\": 16, \"vocab_size\": 10, \"layer_norm_epsilon\": 1e-05, "        \
    "\"activation_function\": \"gelu_new\"}"

static void write_config(const char *dir, const char *model_type, const char *n_embd_entry) {
    char text[512];
    snprintf(text, sizeof text, TINY_CONFIG_FMT, model_type, n_embd_entry);
    write_text_in(dir, "config.json", text);
}

typedef struct tiny_weights {
    float wte[V_ * D_], wpe[P_ * D_], lnf_g[D_], lnf_b[D_];
    float ln1_g[D_], ln1_b[D_], attn_w[D_ * 3 * D_], attn_b[3 * D_], proj_w[D_ * D_], proj_b[D_];
    float ln2_g[D_], ln2_b[D_], fc_w[D_ * F_], fc_b[F_], mproj_w[F_ * D_], mproj_b[D_];
} tiny_weights;

static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static float frand(float scale) {
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return scale * ((float)((rng_state >> 40) & 0xFFFFFF) / 8388608.0f - 1.0f);
}

static void fill(float *p, int n, float scale, float offset) {
    for (int i = 0; i < n; i++) p[i] = offset + frand(scale);
}

static void tiny_init(tiny_weights *w) {
    fill(w->wte, V_ * D_, 1.0f, 0);
    fill(w->wpe, P_ * D_, 0.3f, 0);
    fill(w->lnf_g, D_, 0.2f, 1);
    fill(w->lnf_b, D_, 0.1f, 0);
    fill(w->ln1_g, D_, 0.2f, 1);
    fill(w->ln1_b, D_, 0.1f, 0);
    fill(w->attn_w, D_ * 3 * D_, 0.5f, 0);
    fill(w->attn_b, 3 * D_, 0.1f, 0);
    fill(w->proj_w, D_ * D_, 0.5f, 0);
    fill(w->proj_b, D_, 0.1f, 0);
    fill(w->ln2_g, D_, 0.2f, 1);
    fill(w->ln2_b, D_, 0.1f, 0);
    fill(w->fc_w, D_ * F_, 0.5f, 0);
    fill(w->fc_b, F_, 0.1f, 0);
    fill(w->mproj_w, F_ * D_, 0.3f, 0);
    fill(w->mproj_b, D_, 0.1f, 0);
}

/* Write model.safetensors of the tiny model into dir, leaving out tensor `omit` and
 * giving tensor `reshape` the shape {r0, r1} (data from the start of a big buffer). */
static int write_tiny_weights(const char *dir, const tiny_weights *w, const char *omit, const char *reshape,
                              int64_t r0, int64_t r1) {
    static float big[4096];
    struct {
        const char *name;
        const float *data;
        int ndim;
        int64_t d0, d1;
    } t[] = {
        {"transformer.wte.weight", w->wte, 2, V_, D_},
        {"transformer.wpe.weight", w->wpe, 2, P_, D_},
        {"transformer.ln_f.weight", w->lnf_g, 1, D_, 0},
        {"transformer.ln_f.bias", w->lnf_b, 1, D_, 0},
        {"transformer.h.0.ln_1.weight", w->ln1_g, 1, D_, 0},
        {"transformer.h.0.ln_1.bias", w->ln1_b, 1, D_, 0},
        {"transformer.h.0.attn.c_attn.weight", w->attn_w, 2, D_, 3 * D_},
        {"transformer.h.0.attn.c_attn.bias", w->attn_b, 1, 3 * D_, 0},
        {"transformer.h.0.attn.c_proj.weight", w->proj_w, 2, D_, D_},
        {"transformer.h.0.attn.c_proj.bias", w->proj_b, 1, D_, 0},
        {"transformer.h.0.ln_2.weight", w->ln2_g, 1, D_, 0},
        {"transformer.h.0.ln_2.bias", w->ln2_b, 1, D_, 0},
        {"transformer.h.0.mlp.c_fc.weight", w->fc_w, 2, D_, F_},
        {"transformer.h.0.mlp.c_fc.bias", w->fc_b, 1, F_, 0},
        {"transformer.h.0.mlp.c_proj.weight", w->mproj_w, 2, F_, D_},
        {"transformer.h.0.mlp.c_proj.bias", w->mproj_b, 1, D_, 0},
    };
    vene_error err = {0};
    st_writer *sw = st_writer_new();
    int rc = sw ? VENE_OK : VENE_ERR_MEMORY;
    for (size_t i = 0; !rc && i < sizeof t / sizeof t[0]; i++) {
        const char *bare = t[i].name + strlen("transformer.");
        if (omit && !strcmp(bare, omit)) continue;
        int64_t shape[2] = {t[i].d0, t[i].d1};
        const float *data = t[i].data;
        if (reshape && !strcmp(bare, reshape)) {
            shape[0] = r0;
            shape[1] = r1;
            data = big;
        }
        rc = st_writer_add(sw, t[i].name, ST_F32, t[i].ndim, shape, data, &err);
    }
    char p[600];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    if (!rc) rc = st_writer_save(sw, p, &err);
    st_writer_free(sw);
    CHECK_MSG(rc == VENE_OK, "writing the tiny model: %s", err.msg);
    return rc;
}

static const char *make_tiny(const char *name, const tiny_weights *w) {
    const char *dir = mkfolder(name);
    write_config(dir, "gpt2", "\"n_embd\": 8,");
    write_tiny_weights(dir, w, NULL, NULL, 0, 0);
    return dir;
}

/* ------------------------------------------------------------------ plain C GPT-2 */

static void ref_layernorm(const float *x, const float *g, const float *b, float *y) {
    double mean = 0, var = 0;
    for (int i = 0; i < D_; i++) mean += x[i];
    mean /= D_;
    for (int i = 0; i < D_; i++) var += (x[i] - mean) * (x[i] - mean);
    var /= D_;
    double inv = 1.0 / sqrt(var + 1e-5);
    for (int i = 0; i < D_; i++) y[i] = (float)((x[i] - mean) * inv * g[i] + b[i]);
}

/* y[out] = x[in] W[in, out] + b (Conv1D layout) */
static void ref_linear(const float *x, const float *W, const float *b, float *y, int in, int out) {
    for (int o = 0; o < out; o++) {
        double s = b[o];
        for (int i = 0; i < in; i++) s += (double)x[i] * W[i * out + o];
        y[o] = (float)s;
    }
}

/* logits [B*S*V] of the tiny model for ids (B x S) with positions arange(S), no padding */
static void ref_forward(const tiny_weights *w, const int32_t *ids, int B, int S, float *logits) {
    enum { MAXS = 16 };
    const int hd = D_ / H_;
    for (int b = 0; b < B; b++) {
        float x[MAXS][D_], a[MAXS][D_], qkv[MAXS][3 * D_], merged[MAXS][D_], tmp[MAXS][D_];
        for (int s = 0; s < S; s++)
            for (int d = 0; d < D_; d++) x[s][d] = w->wte[ids[b * S + s] * D_ + d] + w->wpe[s * D_ + d];
        for (int s = 0; s < S; s++) {
            ref_layernorm(x[s], w->ln1_g, w->ln1_b, a[s]);
            ref_linear(a[s], w->attn_w, w->attn_b, qkv[s], D_, 3 * D_);
        }
        for (int h = 0; h < H_; h++)
            for (int q = 0; q < S; q++) {
                double sc[MAXS], mx = -1e300, sum = 0;
                for (int k = 0; k <= q; k++) {
                    double dot = 0;
                    for (int i = 0; i < hd; i++) dot += (double)qkv[q][h * hd + i] * qkv[k][D_ + h * hd + i];
                    sc[k] = dot / sqrt((double)hd);
                    if (sc[k] > mx) mx = sc[k];
                }
                for (int k = 0; k <= q; k++) sum += (sc[k] = exp(sc[k] - mx));
                for (int i = 0; i < hd; i++) {
                    double v = 0;
                    for (int k = 0; k <= q; k++) v += sc[k] / sum * qkv[k][2 * D_ + h * hd + i];
                    merged[q][h * hd + i] = (float)v;
                }
            }
        for (int s = 0; s < S; s++) {
            ref_linear(merged[s], w->proj_w, w->proj_b, tmp[s], D_, D_);
            for (int d = 0; d < D_; d++) x[s][d] += tmp[s][d];
            float n2[D_], fc[F_], m[D_];
            ref_layernorm(x[s], w->ln2_g, w->ln2_b, n2);
            ref_linear(n2, w->fc_w, w->fc_b, fc, D_, F_);
            for (int i = 0; i < F_; i++) {
                double v = fc[i];
                fc[i] = (float)(0.5 * v * (1.0 + tanh(sqrt(2.0 / M_PI) * (v + 0.044715 * v * v * v))));
            }
            ref_linear(fc, w->mproj_w, w->mproj_b, m, F_, D_);
            for (int d = 0; d < D_; d++) x[s][d] += m[d];
            float hid[D_];
            ref_layernorm(x[s], w->lnf_g, w->lnf_b, hid);
            for (int v = 0; v < V_; v++) {
                double dot = 0;
                for (int d = 0; d < D_; d++) dot += (double)hid[d] * w->wte[v * D_ + d];
                logits[((size_t)b * S + s) * V_ + v] = (float)dot;
            }
        }
    }
}

/* ------------------------------------------------------------------ checks */

/* The load must fail; its message must contain every string of `needles` (NULL-ended). */
static void expect_load_fail(const char *what, const char *dir, const char *cls, const char *const *needles) {
    vene_error err = {0};
    vene_model *m = (vene_model *)&err; /* poison: must be reset to NULL */
    int rc = vene_model_load(dir, cls, &m, &err);
    CHECK_MSG(rc != VENE_OK, "%s: load succeeded", what);
    CHECK_MSG(m == NULL, "%s: *out not NULL after a failed load", what);
    CHECK_MSG(err.code == rc, "%s: err.code %d but returned %d", what, err.code, rc);
    for (const char *const *n = needles; *n; n++) CHECK_MSG(has(&err, *n), "%s: message lacks \"%s\": %s", what, *n, err.msg);
    printf("  %-28s %-20s %s\n", what, vene_status_name(rc), err.msg);
    if (rc == VENE_OK && m != (vene_model *)&err) vene_model_free(m);
}

static void test_folder_errors(const tiny_weights *w) {
    printf("model folder errors:\n");
    /* 1. folder missing */
    {
        const char *dir = tpath("no_such_model_dir");
        expect_load_fail("missing folder", dir, NULL, (const char *[]){"no_such_model_dir", NULL});
    }
    /* 2. config.json is not JSON */
    {
        const char *dir = mkfolder("bad_json");
        write_text_in(dir, "config.json", "{\"model_type\": \"gpt2\", n_layer: 1,");
        write_tiny_weights(dir, w, NULL, NULL, 0, 0);
        expect_load_fail("config not JSON", dir, NULL, (const char *[]){"bad_json", "config.json", NULL});
        write_text_in(dir, "config.json", "[1, 2, 3]");
        expect_load_fail("config a JSON list", dir, NULL, (const char *[]){"config.json", NULL});
        write_text_in(dir, "config.json", "");
        expect_load_fail("config empty", dir, NULL, (const char *[]){"config.json", NULL});
    }
    /* 3. config.json without n_embd, or with a bad value */
    {
        const char *dir = mkfolder("no_n_embd");
        write_config(dir, "gpt2", "");
        write_tiny_weights(dir, w, NULL, NULL, 0, 0);
        expect_load_fail("config lacks n_embd", dir, NULL, (const char *[]){"n_embd", "config.json", NULL});
        write_config(dir, "gpt2", "\"n_embd\": \"eight\",");
        expect_load_fail("n_embd a string", dir, NULL, (const char *[]){"n_embd", NULL});
        write_config(dir, "gpt2", "\"n_embd\": 8.5,");
        expect_load_fail("n_embd not integral", dir, NULL, (const char *[]){"n_embd", NULL});
        write_config(dir, "gpt2", "\"n_embd\": 9,");
        expect_load_fail("n_embd % n_head", dir, NULL, (const char *[]){"n_embd", "n_head", NULL});
        write_config(dir, "gpt2", "\"n_embd\": -8,");
        expect_load_fail("n_embd negative", dir, NULL, (const char *[]){"n_embd", NULL});
    }
    /* 4. unknown model_type; no model_type */
    {
        const char *dir = mkfolder("type_foo");
        write_config(dir, "foo", "\"n_embd\": 8,");
        write_tiny_weights(dir, w, NULL, NULL, 0, 0);
        expect_load_fail("model_type foo", dir, NULL, (const char *[]){"\"foo\"", "model_type", NULL});
        write_text_in(dir, "config.json", "{\"n_layer\": 1}");
        expect_load_fail("no model_type", dir, NULL, (const char *[]){"model_type", NULL});
    }
    /* 5. unsupported class */
    {
        const char *dir = make_tiny("cls", w);
        expect_load_fail("class BertModel", dir, "BertModel", (const char *[]){"BertModel", NULL});
        write_text_in(dir, "config.json",
                      "{\"model_type\": \"gpt2\", \"architectures\": [\"GPT2ForSequenceClassification\"], "
                      "\"n_layer\": 1, \"n_embd\": 8, \"n_head\": 2, \"n_positions\": 16, \"vocab_size\": 10}");
        expect_load_fail("architectures[0] unknown", dir, NULL,
                         (const char *[]){"GPT2ForSequenceClassification", NULL});
    }
    /* 6. model.safetensors truncated (the fixture model's config and weights) */
    {
        const char *dir = mkfolder("truncated");
        char src[256];
        size_t n = 0;
        snprintf(src, sizeof src, "%s/config.json", FIXTURE_MODEL);
        unsigned char *cfg = read_bytes(src, 0, &n);
        CHECK(cfg != NULL && n > 0);
        if (cfg) write_text_in(dir, "config.json", (const char *)(cfg[n] = '\0', cfg));
        free(cfg);
        snprintf(src, sizeof src, "%s/model.safetensors", FIXTURE_MODEL);
        unsigned char *st = read_bytes(src, 1 << 20, &n); /* first 1 MB of ~13.7 MB */
        CHECK(st != NULL && n == (1u << 20));
        char dst[600];
        snprintf(dst, sizeof dst, "%s/model.safetensors", dir);
        if (st) {
            write_bytes(dst, st, n); /* header complete, data cut short */
            expect_load_fail("safetensors data truncated", dir, NULL, (const char *[]){"model.safetensors", NULL});
            write_bytes(dst, st, 200); /* header cut short */
            expect_load_fail("safetensors header truncated", dir, NULL, (const char *[]){"model.safetensors", NULL});
            write_bytes(dst, st, 5); /* not even the length prefix */
            expect_load_fail("safetensors 5 bytes", dir, NULL, (const char *[]){"model.safetensors", NULL});
            write_bytes(dst, st, 0);
            expect_load_fail("safetensors empty", dir, NULL, (const char *[]){"model.safetensors", NULL});
        }
        free(st);
        /* no weights file at all */
        unlink(dst);
        expect_load_fail("no model.safetensors", dir, NULL, (const char *[]){"truncated", NULL});
    }
    /* 7. a tensor missing */
    {
        const char *dir = mkfolder("missing_tensor");
        write_config(dir, "gpt2", "\"n_embd\": 8,");
        write_tiny_weights(dir, w, "h.0.ln_1.weight", NULL, 0, 0);
        expect_load_fail("tensor missing", dir, NULL, (const char *[]){"h.0.ln_1.weight", "model.safetensors", NULL});
        write_tiny_weights(dir, w, "wpe.weight", NULL, 0, 0);
        expect_load_fail("wpe missing", dir, NULL, (const char *[]){"wpe.weight", NULL});
    }
    /* 8. a tensor of the wrong shape: the message gives both shapes */
    {
        const char *dir = mkfolder("bad_shape");
        write_config(dir, "gpt2", "\"n_embd\": 8,");
        write_tiny_weights(dir, w, NULL, "h.0.attn.c_attn.weight", 8, 16);
        expect_load_fail("c_attn shape", dir, NULL,
                         (const char *[]){"h.0.attn.c_attn.weight", "[8, 24]", "[8, 16]", NULL});
        write_tiny_weights(dir, w, NULL, "wte.weight", 11, 8);
        expect_load_fail("wte shape vs vocab_size", dir, NULL, (const char *[]){"wte.weight", "[10, 8]", "[11, 8]", NULL});
        /* transposed c_fc (HF Conv1D is [in, out]) */
        write_tiny_weights(dir, w, NULL, "h.0.mlp.c_fc.weight", 32, 8);
        expect_load_fail("c_fc transposed", dir, NULL, (const char *[]){"h.0.mlp.c_fc.weight", "[8, 32]", "[32, 8]", NULL});
    }
}

/* ------------------------------------------------------------------ input errors */

static void expect_forward_fail(vene_run *rs, const char *what, const vene_batch *b, const char *const *needles) {
    vene_error err = {0};
    int rc = vene_forward(rs, b, &err);
    CHECK_MSG(rc != VENE_OK && rc != VENE_STOP, "%s: forward returned %d", what, rc);
    for (const char *const *n = needles; *n; n++) CHECK_MSG(has(&err, *n), "%s: message lacks \"%s\": %s", what, *n, err.msg);
    printf("  %-28s %-20s %s\n", what, vene_status_name(rc), err.msg);
}

static int hook_count;
static int count_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)user;
    (void)where;
    (void)t;
    (void)err;
    hook_count++;
    return VENE_OK;
}

static void test_tiny_forward_and_input_errors(const tiny_weights *w) {
    const char *dir = make_tiny("tiny_ok", w);
    vene_error err = {0};
    vene_model *m = NULL;
    int rc = vene_model_load(dir, NULL, &m, &err);
    CHECK_MSG(rc == VENE_OK, "tiny model: %s", err.msg);
    if (rc) return;
    vene_model_info info;
    vene_model_get_info(m, &info);
    CHECK(info.n_layer == L_ && info.d_model == D_ && info.n_head == H_ && info.head_dim == D_ / H_);
    CHECK(info.d_ff == F_ && info.vocab_size == V_ && info.n_ctx == P_ && info.has_lm_head);
    int64_t want_params = V_ * D_ + P_ * D_ + 2 * D_ +
                          L_ * (2 * D_ + D_ * 3 * D_ + 3 * D_ + D_ * D_ + D_ + 2 * D_ + D_ * F_ + F_ + F_ * D_ + D_);
    CHECK_MSG(info.n_params == want_params, "n_params %lld, want %lld", (long long)info.n_params, (long long)want_params);

    vene_run *rs = NULL;
    CHECK(vene_run_new(m, &rs, &err) == VENE_OK);
    if (!rs) {
        vene_model_free(m);
        return;
    }

    /* the tiny model's forward agrees with a plain C GPT-2 */
    const int32_t ids[2 * 6] = {1, 7, 3, 3, 9, 0, 4, 2, 8, 5, 6, 1};
    float ref[2 * 6 * V_];
    ref_forward(w, ids, 2, 6, ref);
    vene_batch b = {.batch = 2, .seq = 6, .ids = ids};
    rc = vene_forward(rs, &b, &err);
    CHECK_MSG(rc == VENE_OK, "tiny forward: %s", err.msg);
    const vene_tensor *lg = vene_run_logits(rs);
    CHECK(lg && lg->ndim == 3 && lg->shape[0] == 2 && lg->shape[1] == 6 && lg->shape[2] == V_);
    if (lg) CHECK_CLOSE(lg->data, ref, 2 * 6 * V_, 1e-4, "tiny logits vs plain C");
    double spread = 0;
    for (int i = 0; i < 2 * 6 * V_; i++) spread = fmax(spread, fabs(ref[i]));
    CHECK_MSG(spread > 0.5, "reference logits degenerate (max %g)", spread);
    /* full length n_positions is fine */
    int32_t long_ids[P_ + 1];
    for (int i = 0; i <= P_; i++) long_ids[i] = i % V_;
    vene_batch bl = {.batch = 1, .seq = P_, .ids = long_ids};
    CHECK(vene_forward(rs, &bl, &err) == VENE_OK);
    float ref_long[P_ * V_];
    ref_forward(w, long_ids, 1, P_, ref_long);
    lg = vene_run_logits(rs);
    if (lg) CHECK_CLOSE(lg->data, ref_long, P_ * V_, 1e-4, "tiny logits, 16 tokens");

    printf("input errors:\n");
    /* token ids out of range: names the id, where it is and the vocabulary size */
    int32_t bad_ids[4] = {1, 2, 12, 3};
    vene_batch bb = {.batch = 1, .seq = 4, .ids = bad_ids};
    expect_forward_fail(rs, "token id 12", &bb, (const char *[]){"12", "vocab size 10", "[0, 2]", NULL});
    bad_ids[2] = 10;
    expect_forward_fail(rs, "token id = vocab", &bb, (const char *[]){"10", "vocab size 10", NULL});
    bad_ids[2] = 2;
    bad_ids[3] = -1;
    expect_forward_fail(rs, "token id -1", &bb, (const char *[]){"-1", "[0, 3]", NULL});
    /* longer than n_positions */
    vene_batch b17 = {.batch = 1, .seq = P_ + 1, .ids = long_ids};
    expect_forward_fail(rs, "17 tokens > 16 positions", &b17, (const char *[]){"17", "16", NULL});
    /* positions out of range */
    int32_t pos[4] = {0, 1, 16, 3};
    int32_t ok_ids[4] = {1, 2, 3, 4};
    vene_batch bp = {.batch = 1, .seq = 4, .ids = ok_ids, .positions = pos};
    expect_forward_fail(rs, "position id 16", &bp, (const char *[]){"16", "[0, 2]", NULL});
    pos[2] = -3;
    expect_forward_fail(rs, "position id -3", &bp, (const char *[]){"-3", NULL});
    /* empty input */
    vene_batch e1 = {.batch = 0, .seq = 4, .ids = ok_ids};
    expect_forward_fail(rs, "batch 0", &e1, (const char *[]){"empty", NULL});
    vene_batch e2 = {.batch = 1, .seq = 0, .ids = ok_ids};
    expect_forward_fail(rs, "seq 0", &e2, (const char *[]){"empty", NULL});
    vene_batch e3 = {.batch = -1, .seq = 3, .ids = ok_ids};
    expect_forward_fail(rs, "batch -1", &e3, (const char *[]){"empty", NULL});
    vene_batch e4 = {.batch = 1, .seq = 4};
    expect_forward_fail(rs, "neither ids nor embeds", &e4, (const char *[]){"ids", NULL});
    rc = vene_forward(rs, NULL, &err);
    CHECK(rc != VENE_OK);
    /* a failing forward leaves the run usable */
    CHECK(vene_forward(rs, &b, &err) == VENE_OK);
    lg = vene_run_logits(rs);
    if (lg) CHECK_CLOSE(lg->data, ref, 2 * 6 * V_, 1e-4, "tiny logits after errors");

    printf("site errors:\n");
    struct {
        const char *path, *needle2;
    } bad_sites[] = {
        {"h[0].attn.nonsense.output", "h[0].attn.nonsense.output"},
        {"h[0].attn", "expected a module path"},
        {"h[0].attn.c_attn.outptu", "outptu"},
        {"wte.input", "wte.input"},
        {"h[x].output", "h[x].output"},
        {"", "site"},
    };
    for (size_t i = 0; i < sizeof bad_sites / sizeof bad_sites[0]; i++) {
        int site = -7, layer = -7;
        memset(&err, 0, sizeof err);
        rc = vene_model_find_site(m, bad_sites[i].path, &site, &layer, &err);
        CHECK_MSG(rc != VENE_OK, "find_site \"%s\" succeeded", bad_sites[i].path);
        CHECK_MSG(has(&err, bad_sites[i].path) && has(&err, bad_sites[i].needle2), "find_site \"%s\": %s",
                  bad_sites[i].path, err.msg);
        printf("  %-28s %-20s %s\n", bad_sites[i].path, vene_status_name(rc), err.msg);
    }
    /* layer out of range: names the site, the layer and the layer count */
    const char *layer_sites[] = {"h[1].output", "h[5].attn.c_attn.output", "transformer.h[1].mlp.input"};
    for (size_t i = 0; i < sizeof layer_sites / sizeof layer_sites[0]; i++) {
        int site = -7, layer = -7;
        memset(&err, 0, sizeof err);
        rc = vene_model_find_site(m, layer_sites[i], &site, &layer, &err);
        CHECK_MSG(rc != VENE_OK, "find_site \"%s\" succeeded", layer_sites[i]);
        CHECK_MSG(has(&err, layer_sites[i]) && has(&err, "1 layers") && has(&err, "layer"), "find_site \"%s\": %s",
                  layer_sites[i], err.msg);
        printf("  %-28s %-20s %s\n", layer_sites[i], vene_status_name(rc), err.msg);
    }
    /* hooks with a bad site index or layer */
    int s0, l0;
    CHECK(vene_model_find_site(m, "h[0].output", &s0, &l0, &err) == VENE_OK && l0 == 0);
    memset(&err, 0, sizeof err);
    CHECK(vene_run_add_hook(rs, s0, 1, count_hook, NULL, &err) != VENE_OK && has(&err, "layer 1"));
    memset(&err, 0, sizeof err);
    CHECK(vene_run_add_hook(rs, s0, -1, count_hook, NULL, &err) != VENE_OK && has(&err, "layer -1"));
    memset(&err, 0, sizeof err);
    CHECK(vene_run_add_hook(rs, vene_model_site_count(m), 0, count_hook, NULL, &err) != VENE_OK && has(&err, "site"));
    memset(&err, 0, sizeof err);
    CHECK(vene_run_add_hook(rs, -1, 0, count_hook, NULL, &err) != VENE_OK);
    int sw, lw;
    CHECK(vene_model_find_site(m, "wte.output", &sw, &lw, &err) == VENE_OK && lw == -1);
    memset(&err, 0, sizeof err);
    CHECK(vene_run_add_hook(rs, sw, 0, count_hook, NULL, &err) != VENE_OK && has(&err, "layer 0"));
    memset(&err, 0, sizeof err);
    CHECK(vene_run_add_hook(rs, s0, 0, NULL, NULL, &err) != VENE_OK);
    /* none of the rejected hooks was registered */
    hook_count = 0;
    CHECK(vene_forward(rs, &b, &err) == VENE_OK);
    CHECK(hook_count == 0);
    CHECK(vene_run_add_hook(rs, s0, 0, count_hook, NULL, &err) == VENE_OK);
    CHECK(vene_forward(rs, &b, &err) == VENE_OK);
    CHECK(hook_count == 1);

    vene_run_free(rs);
    vene_model_free(m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vene_model_errors_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    static tiny_weights w;
    tiny_init(&w);
    test_folder_errors(&w);
    test_tiny_forward_and_input_errors(&w);
    /* the error paths accept a NULL vene_error too */
    vene_model *m = NULL;
    CHECK(vene_model_load(tpath("no_such_model_dir"), NULL, &m, NULL) != VENE_OK && m == NULL);
    CHECK(vene_model_load(tpath("missing_tensor"), NULL, &m, NULL) != VENE_OK && m == NULL);
    CHECK(vene_model_load(tpath("bad_shape"), NULL, &m, NULL) != VENE_OK && m == NULL);
    rm_tree(tmpdir);
    TEST_MAIN_END();
}
