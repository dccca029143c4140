/* The fuzz targets' logic, shared by the libFuzzer mains (fuzz/fuzz_<target>.c) and the
 * regression replayer (tests/test_fuzz_regressions.c). Both #include this file; it has no
 * header on purpose (one translation unit per program).
 *
 * Every target is `int vene_fuzz_<target>(const uint8_t *data, size_t size)`: it feeds the
 * bytes to the library the way outside data reaches it, checks the invariants the library
 * promises (no crash, no leak, clean VENE_ERR_* on bad input, round trips), and calls
 * vene_fuzz_fail() — which aborts — when an invariant breaks. It returns 0 when the input
 * was accepted by the library and 1 when the library rejected it cleanly.
 *
 * Fixtures are found under the repository root: vene_fuzz_set_root(), else the environment
 * variable VENE_FUZZ_ROOT, else "..". Scratch files go to one mkdtemp folder under $TMPDIR
 * (or /tmp), removed by vene_fuzz_cleanup() / at exit. */
#include <errno.h>
#include <dirent.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "engine/engine.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "vene.h"

/* OpenMP and OpenBLAS: one thread keeps executions fast and deterministic. */
extern void omp_set_num_threads(int n);
extern void openblas_set_num_threads(int n);

/* ---------------------------------------------------------------- common */

static char vf_root[PATH_MAX] = "";
static char vf_tmp[PATH_MAX] = "";

static void vf_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void vf_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("vene-fuzz: INVARIANT BROKEN: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

void vene_fuzz_set_root(const char *root) { snprintf(vf_root, sizeof vf_root, "%s", root); }

static const char *vf_root_dir(void) {
    if (!vf_root[0]) {
        const char *e = getenv("VENE_FUZZ_ROOT");
        snprintf(vf_root, sizeof vf_root, "%s", e && *e ? e : "..");
    }
    return vf_root;
}

/* VENE_FUZZ_VERBOSE=1: print why the library rejected an input (seed triage). */
static int vf_rejected(const char *what, const vene_error *err) {
    static int verbose = -1;
    if (verbose < 0) verbose = getenv("VENE_FUZZ_VERBOSE") && *getenv("VENE_FUZZ_VERBOSE") == '1';
    if (verbose) fprintf(stderr, "vene-fuzz: %s rejected it: %s: %s\n", what, vene_status_name(err->code), err->msg);
    return 1;
}

static void vf_path(char *out, size_t n, const char *rel) {
    if (snprintf(out, n, "%s/%s", vf_root_dir(), rel) >= (int)n) vf_fail("path too long: %s/%s", vf_root_dir(), rel);
}

/* rm -rf (the scratch folder holds only what this file wrote there). */
static void vf_rm_rf(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d && (e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
            char sub[PATH_MAX];
            snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
            vf_rm_rf(sub);
        }
        if (d) closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

static void vf_rm_tmp(void) {
    if (vf_tmp[0]) vf_rm_rf(vf_tmp);
    vf_tmp[0] = 0;
}

/* The scratch folder (created once per process); sub is created inside it. */
static const char *vf_scratch(const char *sub, char *out, size_t n) {
    if (!vf_tmp[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(vf_tmp, sizeof vf_tmp, "%s/vene-fuzz-XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(vf_tmp)) vf_fail("mkdtemp %s: %s", vf_tmp, strerror(errno));
        atexit(vf_rm_tmp);
    }
    if (snprintf(out, n, "%s/%s", vf_tmp, sub) >= (int)n) vf_fail("path too long: %s/%s", vf_tmp, sub);
    if (mkdir(out, 0700) != 0 && errno != EEXIST) vf_fail("mkdir %s: %s", out, strerror(errno));
    return out;
}

static void vf_write(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (!f || (n && fwrite(data, 1, n, f) != n) || fclose(f) != 0) vf_fail("cannot write %s", path);
}

static void vf_single_thread(void) {
    static int done;
    if (done) return;
    done = 1;
    omp_set_num_threads(1);
    openblas_set_num_threads(1);
}

/* A NUL-terminated copy of the input (cJSON wants one). */
static char *vf_cstr(const uint8_t *d, size_t n) {
    char *s = malloc(n + 1);
    if (!s) vf_fail("out of memory");
    if (n) memcpy(s, d, n);
    s[n] = 0;
    return s;
}

/* Multi-file inputs: parts separated by this line. */
static const char vf_sep[] = "\nVFSEP!!\n";

static const uint8_t *vf_find_sep(const uint8_t *p, const uint8_t *end) {
    size_t k = sizeof vf_sep - 1;
    for (; p + k <= end; p++)
        if (!memcmp(p, vf_sep, k)) return p;
    return NULL;
}

/* Read every float of a tensor (touching every byte the library claims is there). */
static double vf_touch(const vene_tensor *t, const char *what) {
    if (!t) return 0;
    if (t->ndim < 0 || t->ndim > VENE_MAX_DIMS) vf_fail("%s: ndim %d", what, t->ndim);
    int64_t n = vene_tensor_numel(t);
    if (n < 0) vf_fail("%s: negative numel", what);
    if (n && !t->data) vf_fail("%s: %lld elements but no data", what, (long long)n);
    /* ASan checks each read: the two ends find a wrong size, a stride samples the middle
     * (reading all of a B x S x 50257 logits tensor would dominate the execution time) */
    double s = 0;
    if (n) s = (double)t->data[0] + (double)t->data[n - 1];
    for (int64_t i = 1; i < n - 1; i += 257) s += t->data[i];
    return s;
}

/* ---------------------------------------------------------------- 1. safetensors */

/* st_open_memory on the bytes; every tensor converted with st_to_f32 / st_to_i64; a valid
 * file written back with st_writer and reopened must hold the same tensors. */
int vene_fuzz_safetensors(const uint8_t *data, size_t size) {
    /* an exact-size private copy, so any read past the end is caught by ASan */
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf) return 1;
    if (size) memcpy(buf, data, size);
    st_file *f = NULL;
    vene_error err = {0};
    int rc = st_open_memory(buf, size, "fuzz.safetensors", &f, &err);
    if (rc != VENE_OK) {
        if (f) vf_fail("st_open_memory failed (%s) but returned a file", vene_status_name(rc));
        if (!err.msg[0]) vf_fail("st_open_memory failed (%s) without a message", vene_status_name(rc));
        free(buf);
        return vf_rejected("st_open_memory", &err);
    }
    int n = st_count(f);
    st_writer *w = st_writer_new();
    int writable = w != NULL;
    for (int i = 0; i < n; i++) {
        const st_tensor *t = st_at(f, i);
        if (!t || !t->name) vf_fail("st_at(%d) of %d is NULL", i, n);
        if ((unsigned)t->dtype >= ST_DTYPE_COUNT) vf_fail("%s: dtype %d", t->name, (int)t->dtype);
        if (t->ndim < 0 || t->ndim > VENE_MAX_DIMS) vf_fail("%s: ndim %d", t->name, t->ndim);
        int64_t numel = 1;
        for (int d = 0; d < t->ndim; d++) {
            if (t->shape[d] < 0) vf_fail("%s: negative dim", t->name);
            numel = t->shape[d] && numel > INT64_MAX / t->shape[d] ? -1 : numel * t->shape[d];
            if (numel < 0) vf_fail("%s: shape overflows but was accepted", t->name);
        }
        if (numel != t->numel) vf_fail("%s: numel %lld but shape gives %lld", t->name, (long long)t->numel, (long long)numel);
        if ((uint64_t)t->numel * st_dtype_size(t->dtype) != t->nbytes)
            vf_fail("%s: nbytes %zu for %lld x %zu", t->name, t->nbytes, (long long)t->numel, st_dtype_size(t->dtype));
        const uint8_t *p = t->data;
        if (t->nbytes && (p < buf || p > buf + size || t->nbytes > (size_t)(buf + size - p)))
            vf_fail("%s: data outside the buffer", t->name);
        const st_tensor *g = st_find(f, t->name);
        if (!g || strcmp(g->name, t->name)) vf_fail("st_find(\"%s\") does not find it", t->name);
        if (t->numel > (1 << 20)) {
            writable = 0;
            continue;
        }
        size_t cnt = (size_t)t->numel ? (size_t)t->numel : 1;
        float *x = malloc(cnt * sizeof *x);
        int64_t *y = malloc(cnt * sizeof *y);
        if (!x || !y) vf_fail("out of memory");
        vene_error e2 = {0};
        if (st_to_f32(t, x, &e2) != VENE_OK) vf_fail("%s: st_to_f32 failed on an accepted tensor: %s", t->name, e2.msg);
        int is_int = t->dtype == ST_I64 || t->dtype == ST_I32 || t->dtype == ST_I16 || t->dtype == ST_I8 ||
                     t->dtype == ST_U8 || t->dtype == ST_BOOL;
        rc = st_to_i64(t, y, &e2);
        if (is_int && rc != VENE_OK) vf_fail("%s: st_to_i64 failed on an integer tensor: %s", t->name, e2.msg);
        if (!is_int && rc == VENE_OK) vf_fail("%s: st_to_i64 accepted dtype %s", t->name, st_dtype_name(t->dtype));
        if (writable && st_writer_add(w, t->name, t->dtype, t->ndim, t->shape, t->data, &e2) != VENE_OK) writable = 0;
        free(x);
        free(y);
    }
    if (st_find(f, "\x01no such tensor\x02")) vf_fail("st_find found a tensor that does not exist");
    /* round trip through the writer */
    if (writable && n > 0) {
        char dir[PATH_MAX], path[PATH_MAX + 32];
        vf_scratch("safetensors", dir, sizeof dir);
        snprintf(path, sizeof path, "%s/rt.safetensors", dir);
        vene_error e2 = {0};
        if (st_writer_save(w, path, &e2) == VENE_OK) {
            st_file *g = NULL;
            if (st_open(path, &g, &e2) != VENE_OK) vf_fail("st_writer output does not reopen: %s", e2.msg);
            if (st_count(g) != n) vf_fail("round trip: %d tensors became %d", n, st_count(g));
            for (int i = 0; i < n; i++) {
                const st_tensor *a = st_at(f, i), *b = st_find(g, a->name);
                if (!b || b->dtype != a->dtype || b->ndim != a->ndim || b->nbytes != a->nbytes ||
                    memcmp(b->shape, a->shape, sizeof(int64_t) * (size_t)a->ndim) ||
                    (a->nbytes && memcmp(a->data, b->data, a->nbytes)))
                    vf_fail("round trip changed tensor \"%s\"", a->name);
            }
            st_close(g);
            remove(path);
        }
    }
    st_writer_free(w);
    st_close(f);
    free(buf);
    return 0;
}

/* ---------------------------------------------------------------- 2. tokenizer */

static vene_tokenizer *vf_tok;

static vene_tokenizer *vf_tokenizer(void) {
    if (vf_tok) return vf_tok;
    char dir[PATH_MAX], v[PATH_MAX + 32], m[PATH_MAX + 32];
    const char *e = getenv("VENE_FUZZ_TOKENIZER_DIR");
    if (e && *e) snprintf(dir, sizeof dir, "%s", e);
    else vf_path(dir, sizeof dir, "tests/fixtures/gpt2-tokenizer");
    snprintf(v, sizeof v, "%s/encoder.json", dir);
    snprintf(m, sizeof m, "%s/vocab.bpe", dir);
    vene_error err = {0};
    if (vene_tokenizer_load_files(v, m, &vf_tok, &err) != VENE_OK)
        vf_fail("cannot load the GPT-2 tokenizer from %s (set VENE_FUZZ_ROOT or VENE_FUZZ_TOKENIZER_DIR): %s", dir, err.msg);
    return vf_tok;
}

/* encode arbitrary bytes; every id in range; decode(encode(x)) == x byte for byte. */
int vene_fuzz_tokenizer(const uint8_t *data, size_t size) {
    const vene_tokenizer *t = vf_tokenizer();
    int V = vene_tokenizer_vocab_size(t);
    int32_t *ids = NULL;
    size_t n = 0;
    vene_error err = {0};
    int rc = vene_tokenize(t, (const char *)data, size, &ids, &n, &err);
    if (rc != VENE_OK) vf_fail("vene_tokenize failed on %zu bytes (%s): %s", size, vene_status_name(rc), err.msg);
    if (size && !n) vf_fail("%zu bytes encoded to no tokens", size);
    for (size_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V) vf_fail("id %d at %zu out of range (vocab %d)", ids[i], i, V);
        if (!vene_token_piece(t, ids[i])) vf_fail("id %d has no piece", ids[i]);
    }
    char *text = NULL;
    size_t len = 0;
    rc = vene_detokenize(t, ids, n, &text, &len, &err);
    if (rc != VENE_OK) vf_fail("vene_detokenize failed (%s): %s", vene_status_name(rc), err.msg);
    if (len != size || (size && memcmp(text, data, size)) || text[len] != 0) {
        size_t at = 0;
        while (at < len && at < size && text[at] == (char)data[at]) at++;
        vf_fail("decode(encode(x)) != x: %zu bytes in, %zu bytes out, first difference at byte %zu", size, len, at);
    }
    vene_free(text);
    /* and the ids out of range are refused cleanly */
    int32_t bad[2] = {V, -1};
    for (int k = 0; k < 2; k++) {
        text = NULL;
        if (vene_detokenize(t, &bad[k], 1, &text, &len, &err) == VENE_OK) {
            vene_free(text);
            vf_fail("vene_detokenize accepted id %d", bad[k]);
        }
    }
    vene_free(ids);
    return 0;
}

/* ---------------------------------------------------------------- 3. model config.json */

/* Deterministic small weights. */
static void vf_fill(float *p, int64_t n, uint32_t salt, int ones) {
    uint32_t s = 2166136261u ^ salt;
    for (int64_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = ones ? 1.0f + (float)((int)(s >> 9) % 200 - 100) / 1000.0f : (float)((int)(s >> 9) % 2000 - 1000) / 8000.0f;
    }
}

static void vf_add(st_writer *w, const char *name, int64_t a, int64_t b) {
    int64_t shape[2] = {a, b};
    int ndim = b ? 2 : 1;
    int64_t n = b ? a * b : a;
    float *p = malloc(sizeof(float) * (size_t)n);
    if (!p) vf_fail("out of memory");
    uint32_t salt = 0;
    for (const char *c = name; *c; c++) salt = salt * 31 + (unsigned char)*c;
    vf_fill(p, n, salt, strstr(name, "norm") || strstr(name, "ln_") ? strstr(name, "bias") == NULL : 0);
    vene_error err = {0};
    if (st_writer_add(w, name, ST_F32, ndim, shape, p, &err) != VENE_OK) vf_fail("%s", err.msg);
    free(p);
}

/* The tiny models' sizes: the fuzzed config.json must agree with these to load. */
enum { TM_L = 1, TM_D = 8, TM_H = 2, TM_P = 16, TM_V = 10, TM_F = 32, TM_KV = 1, TM_HD = 4, TM_LF = 16 };

static char vf_cfg_dirs[3][PATH_MAX]; /* gpt2, gpt_neo, llama */

static void vf_make_tiny_models(void) {
    if (vf_cfg_dirs[0][0]) return;
    static const char *const names[3] = {"model-gpt2", "model-gptneo", "model-llama"};
    char path[PATH_MAX + 64], n[128];
    vene_error err = {0};
    for (int k = 0; k < 3; k++) {
        vf_scratch(names[k], vf_cfg_dirs[k], sizeof vf_cfg_dirs[k]);
        st_writer *w = st_writer_new();
        if (!w) vf_fail("out of memory");
        const int D = TM_D, F = TM_F;
        if (k == 0 || k == 1) {
            vf_add(w, "transformer.wte.weight", TM_V, D);
            vf_add(w, "transformer.wpe.weight", TM_P, D);
            vf_add(w, "transformer.ln_f.weight", D, 0);
            vf_add(w, "transformer.ln_f.bias", D, 0);
        }
        for (int l = 0; l < TM_L; l++) {
#define L_(s) (snprintf(n, sizeof n, "%s.%d.%s", k == 2 ? "model.layers" : "transformer.h", l, s), n)
            if (k == 0) {
                vf_add(w, L_("ln_1.weight"), D, 0);
                vf_add(w, L_("ln_1.bias"), D, 0);
                vf_add(w, L_("attn.c_attn.weight"), D, 3 * D);
                vf_add(w, L_("attn.c_attn.bias"), 3 * D, 0);
                vf_add(w, L_("attn.c_proj.weight"), D, D);
                vf_add(w, L_("attn.c_proj.bias"), D, 0);
                vf_add(w, L_("ln_2.weight"), D, 0);
                vf_add(w, L_("ln_2.bias"), D, 0);
                vf_add(w, L_("mlp.c_fc.weight"), D, F);
                vf_add(w, L_("mlp.c_fc.bias"), F, 0);
                vf_add(w, L_("mlp.c_proj.weight"), F, D);
                vf_add(w, L_("mlp.c_proj.bias"), D, 0);
            } else if (k == 1) {
                vf_add(w, L_("ln_1.weight"), D, 0);
                vf_add(w, L_("ln_1.bias"), D, 0);
                vf_add(w, L_("attn.attention.q_proj.weight"), D, D);
                vf_add(w, L_("attn.attention.k_proj.weight"), D, D);
                vf_add(w, L_("attn.attention.v_proj.weight"), D, D);
                vf_add(w, L_("attn.attention.out_proj.weight"), D, D);
                vf_add(w, L_("attn.attention.out_proj.bias"), D, 0);
                vf_add(w, L_("ln_2.weight"), D, 0);
                vf_add(w, L_("ln_2.bias"), D, 0);
                vf_add(w, L_("mlp.c_fc.weight"), F, D);
                vf_add(w, L_("mlp.c_fc.bias"), F, 0);
                vf_add(w, L_("mlp.c_proj.weight"), D, F);
                vf_add(w, L_("mlp.c_proj.bias"), D, 0);
            } else {
                const int Q = TM_H * TM_HD, KV = TM_KV * TM_HD, LF = TM_LF;
                vf_add(w, L_("input_layernorm.weight"), D, 0);
                vf_add(w, L_("post_attention_layernorm.weight"), D, 0);
                vf_add(w, L_("self_attn.q_proj.weight"), Q, D);
                vf_add(w, L_("self_attn.q_proj.bias"), Q, 0);
                vf_add(w, L_("self_attn.k_proj.weight"), KV, D);
                vf_add(w, L_("self_attn.k_proj.bias"), KV, 0);
                vf_add(w, L_("self_attn.v_proj.weight"), KV, D);
                vf_add(w, L_("self_attn.v_proj.bias"), KV, 0);
                vf_add(w, L_("self_attn.o_proj.weight"), D, Q);
                vf_add(w, L_("self_attn.o_proj.bias"), D, 0);
                vf_add(w, L_("mlp.gate_proj.weight"), LF, D);
                vf_add(w, L_("mlp.gate_proj.bias"), LF, 0);
                vf_add(w, L_("mlp.up_proj.weight"), LF, D);
                vf_add(w, L_("mlp.up_proj.bias"), LF, 0);
                vf_add(w, L_("mlp.down_proj.weight"), D, LF);
                vf_add(w, L_("mlp.down_proj.bias"), D, 0);
            }
#undef L_
        }
        if (k == 1) vf_add(w, "lm_head.weight", TM_V, D);
        if (k == 2) {
            vf_add(w, "model.embed_tokens.weight", TM_V, D);
            vf_add(w, "model.norm.weight", D, 0);
            vf_add(w, "lm_head.weight", TM_V, D);
        }
        snprintf(path, sizeof path, "%s/model.safetensors", vf_cfg_dirs[k]);
        if (st_writer_save(w, path, &err) != VENE_OK) vf_fail("%s", err.msg);
        st_writer_free(w);
    }
}

/* The bytes are config.json of a folder whose model.safetensors is a tiny valid model
 * (GPT-2, GPT-Neo or Llama: the folder is picked by the JSON's model_type, if any); if it
 * loads, every site's shape is asked and a forward runs on 3 ids. */
int vene_fuzz_config_json(const uint8_t *data, size_t size) {
    vf_single_thread();
    vf_make_tiny_models();
    int k = 0;
    char *s = vf_cstr(data, size);
    cJSON *peek = cJSON_Parse(s);
    free(s);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(peek, "model_type");
    if (cJSON_IsString(mt)) k = !strcmp(mt->valuestring, "gpt_neo") ? 1 : !strcmp(mt->valuestring, "llama") ? 2 : 0;
    cJSON_Delete(peek);
    char path[PATH_MAX + 32];
    if (snprintf(path, sizeof path, "%s/config.json", vf_cfg_dirs[k]) >= (int)sizeof path) vf_fail("path too long");
    vf_write(path, data, size);
    vene_model *m = NULL;
    vene_error err = {0};
    int rc = vene_model_load(vf_cfg_dirs[k], NULL, &m, &err);
    if (rc != VENE_OK) {
        if (m) vf_fail("vene_model_load failed but returned a model");
        if (!err.msg[0]) vf_fail("vene_model_load failed (%s) without a message", vene_status_name(rc));
        return vf_rejected("vene_model_load", &err);
    }
    vene_model_info info;
    vene_model_get_info(m, &info);
    if (info.d_model != TM_D || info.vocab_size != TM_V || info.n_layer != TM_L)
        vf_fail("loaded with d_model %d, vocab %d, n_layer %d, but the weights are %d, %d, %d", info.d_model,
                info.vocab_size, info.n_layer, TM_D, TM_V, TM_L);
    int ns = vene_model_site_count(m);
    for (int i = 0; i < ns; i++) {
        vene_site_info si;
        int64_t shape[VENE_MAX_DIMS];
        if (vene_model_site(m, i, &si) != VENE_OK) vf_fail("site %d of %d", i, ns);
        int nd = vene_model_site_shape(m, i, 1, 3, shape);
        if (nd < 0 || nd > VENE_MAX_DIMS) vf_fail("site %s: ndim %d", si.path, nd);
        for (int d = 0; d < nd; d++)
            if (shape[d] <= 0 || shape[d] > (1 << 20)) vf_fail("site %s: dim %d is %lld", si.path, d, (long long)shape[d]);
    }
    vene_run *rs = NULL;
    if (vene_run_new(m, &rs, &err) != VENE_OK) vf_fail("vene_run_new: %s", err.msg);
    int32_t ids[3] = {1, 2, 3};
    vene_batch b = {.batch = 1, .seq = 3, .ids = ids};
    rc = vene_forward(rs, &b, &err);
    if (rc == VENE_OK) {
        vf_touch(vene_run_last_hidden(rs), "last_hidden");
        vf_touch(vene_run_logits(rs), "logits");
        if (!vene_run_last_hidden(rs)) vf_fail("forward succeeded without a last hidden state");
    } else if (!err.msg[0]) {
        vf_fail("forward failed (%s) without a message", vene_status_name(rc));
    }
    vene_run_free(rs);
    vene_model_free(m);
    return 0;
}

/* ---------------------------------------------------------------- 4. experiment */

static vene_model *vf_gpt2;
enum { VF_MAX_EMBED = 512, VF_MAX_UNITS = 2 };
static const char *vf_save_dir; /* when set, fuzz_experiment saves what it ran there */
static void vf_clear_dir(const char *dir);

static vene_model *vf_gpt2_tiny(void) {
    if (vf_gpt2) return vf_gpt2;
    vf_single_thread();
    char dir[PATH_MAX];
    const char *e = getenv("VENE_FUZZ_MODEL_DIR");
    if (e && *e) snprintf(dir, sizeof dir, "%s", e);
    else vf_path(dir, sizeof dir, "tests/fixtures/models/gpt2-tiny");
    /* the bare GPT2Model by default: the 50257-wide LM head would cost most of each
     * execution and adds nothing to the intervention paths; VENE_FUZZ_MODEL_CLASS overrides */
    const char *cls = getenv("VENE_FUZZ_MODEL_CLASS");
    vene_error err = {0};
    if (vene_model_load(dir, cls && *cls ? cls : "GPT2Model", &vf_gpt2, &err) != VENE_OK)
        vf_fail("cannot load %s (set VENE_FUZZ_ROOT or VENE_FUZZ_MODEL_DIR): %s", dir, err.msg);
    return vf_gpt2;
}

/* The fixed inputs: rows of the golden cases' prompts, 5 tokens each. */
static const int32_t vf_base_ids[4][5] = {
    {464, 3139, 286, 8602, 318}, {464, 3303, 286, 8031, 318}, {464, 3139, 286, 4881, 318}, {40, 588, 262, 3290, 13}};
static const int32_t vf_src_ids[4][5] = {
    {464, 3139, 286, 8031, 318}, {464, 3303, 286, 8602, 318}, {464, 3303, 286, 4881, 318}, {40, 588, 257, 3797, 13}};

/* Ids from the input ([[ids...], ...]), clamped to at most 4 x 16 and folded into the vocab;
 * NULL when absent or unusable (the caller falls back to the fixed rows). */
static int32_t *vf_ids_from_json(const cJSON *j, int V, int *B, int *S) {
    int R = cJSON_GetArraySize(j), C = cJSON_GetArraySize(cJSON_GetArrayItem(j, 0));
    if (!cJSON_IsArray(j) || R < 1 || R > 4 || C < 1 || C > 16) return NULL;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)R * (size_t)C);
    if (!ids) return NULL;
    int r = 0;
    for (const cJSON *row = j->child; row; row = row->next, r++) {
        for (int c = 0; c < C; c++) {
            const cJSON *u = cJSON_GetArrayItem(row, c);
            double v = cJSON_IsNumber(u) ? u->valuedouble : 0;
            if (!(v >= 0 && v < 1e9)) v = 0;
            ids[r * C + c] = (int32_t)((int64_t)v % V);
        }
    }
    *B = R;
    *S = C;
    return ids;
}

/* A tensor from {"shape": [...], "data": [...]} or a plain list of numbers; data is cycled
 * (or zero) to fill the shape. At most 1<<16 elements. */
static int vf_tensor_from_json(const cJSON *j, vene_tensor *t) {
    memset(t, 0, sizeof *t);
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *vals = cJSON_IsArray(j) ? j : cJSON_GetObjectItemCaseSensitive(j, "data");
    int64_t n = 1;
    if (cJSON_IsArray(shape)) {
        if (cJSON_GetArraySize(shape) > VENE_MAX_DIMS) return 0;
        for (const cJSON *d = shape->child; d; d = d->next) {
            if (!cJSON_IsNumber(d) || !(d->valuedouble >= 0 && d->valuedouble <= 65536)) return 0;
            t->shape[t->ndim++] = (int64_t)d->valuedouble;
            n *= t->shape[t->ndim - 1];
            if (n > (1 << 16)) return 0;
        }
    } else {
        if (!cJSON_IsArray(vals)) return 0;
        t->ndim = 1;
        t->shape[0] = n = cJSON_GetArraySize(vals);
    }
    t->data = calloc((size_t)(n ? n : 1), sizeof(float));
    if (!t->data) return 0;
    const cJSON *v = cJSON_IsArray(vals) ? vals->child : NULL;
    for (int64_t i = 0; v && i < n; i++) {
        t->data[i] = cJSON_IsNumber(v) ? (float)v->valuedouble : 0.0f;
        v = v->next ? v->next : vals->child;
    }
    return 1;
}

/* The user callback the harness installs: reads every element it was given, then writes
 * base = base + source (or 2 * base without a source). */
static int vf_callback(void *user, vene_tensor *base, const vene_tensor *source, const char *subspaces_json,
                       vene_error *err) {
    (void)user;
    (void)err;
    if (!base || !subspaces_json) vf_fail("callback: NULL base or subspaces");
    cJSON *ss = cJSON_Parse(subspaces_json);
    if (!ss) vf_fail("callback: subspaces \"%s\" is not JSON", subspaces_json);
    cJSON_Delete(ss);
    vf_touch(base, "callback base");
    vf_touch(source, "callback source");
    int64_t n = vene_tensor_numel(base), m = source ? vene_tensor_numel(source) : 0;
    for (int64_t i = 0; i < n; i++) base->data[i] = source && m ? base->data[i] + source->data[i % m] : 2 * base->data[i];
    return VENE_OK;
}

/* The bytes are an experiment-like JSON object:
 *   {"config": <IntervenableConfig>, "unit_locations": .., "subspaces": .., "seed": n,
 *    "batch": 1..4, "base": [[ids]], "source": [[ids]], "sources": [1, 0, ...] (per group,
 *    0 = skip; default [1]), "output_original": bool, "callbacks": [i, ...],
 *    "intervention_params": {"<i>.<name>": tensor}, "source_representations": [tensor|null]}
 * over gpt2-tiny loaded once. config goes to vene_intervenable_from_json, the rest to the
 * public calls; a second forward on the same intervenable checks call-state reuse. */
int vene_fuzz_experiment(const uint8_t *data, size_t size) {
    const vene_model *m = vf_gpt2_tiny();
    char *s = vf_cstr(data, size);
    cJSON *j = cJSON_Parse(s);
    free(s);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return 1;
    }
    vene_error err = {0};
    vene_intervenable *iv = NULL;
    vene_tensor *reps = NULL;
    const vene_tensor **rep_ptrs = NULL;
    const vene_batch **srcs = NULL;
    char *ul = NULL, *ss = NULL;
    int32_t *bids = NULL, *sids = NULL;
    int result = 1, rc, N = 0;
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(j, "config");
    if (!cfg) goto out;
    rc = vene_intervenable_from_json(m, cfg, &iv, &err);
    if (rc != VENE_OK) {
        if (iv) vf_fail("vene_intervenable_from_json failed but returned an intervenable");
        if (!err.msg[0]) vf_fail("vene_intervenable_from_json failed (%s) without a message", vene_status_name(rc));
        vf_rejected("vene_intervenable_from_json", &err);
        goto out;
    }
    N = vene_intervenable_count(iv);
    for (int i = 0; i < N; i++) {
        if (!vene_intervenable_key(iv, i)) vf_fail("intervention %d has no key", i);
        /* a rotation over E = width x max_number_of_units allocates E x E and costs O(E^3):
         * no budget exists for that yet (see fuzz/README.md), so stay below it */
        if (iv->slots[i].iv && iv->slots[i].iv->embed_dim > VF_MAX_EMBED) goto out;
    }
    const cJSON *seed = cJSON_GetObjectItemCaseSensitive(j, "seed");
    if (cJSON_IsNumber(seed) && seed->valuedouble >= 0 && seed->valuedouble < 1e15)
        vene_intervenable_set_seed(iv, (uint64_t)seed->valuedouble);
    /* parameters */
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(j, "intervention_params");
    for (const cJSON *p = cJSON_IsObject(params) ? params->child : NULL; p; p = p->next) {
        char *end = NULL;
        long i = strtol(p->string, &end, 10);
        if (end == p->string || *end != '.') continue;
        vene_tensor t;
        if (!vf_tensor_from_json(p, &t)) continue;
        rc = vene_intervenable_set_param(iv, (int)(i < INT_MIN ? INT_MIN : i > INT_MAX ? INT_MAX : i), end + 1, &t, &err);
        if (rc != VENE_OK && !err.msg[0]) vf_fail("set_param failed (%s) without a message", vene_status_name(rc));
        free(t.data);
    }
    const cJSON *cbs = cJSON_GetObjectItemCaseSensitive(j, "callbacks");
    for (const cJSON *c = cJSON_IsArray(cbs) ? cbs->child : NULL; c; c = c->next)
        if (cJSON_IsNumber(c) && c->valuedouble > -1e6 && c->valuedouble < 1e6)
            vene_intervenable_set_callback(iv, (int)c->valuedouble, vf_callback, NULL, &err);
    /* constant sources */
    const cJSON *sr = cJSON_GetObjectItemCaseSensitive(j, "source_representations");
    if (cJSON_IsArray(sr)) {
        reps = calloc((size_t)N, sizeof *reps);
        rep_ptrs = calloc((size_t)N, sizeof *rep_ptrs);
        if (!reps || !rep_ptrs) goto out;
        int i = 0;
        for (const cJSON *e = sr->child; e && i < N; e = e->next, i++)
            if (!cJSON_IsNull(e) && vf_tensor_from_json(e, &reps[i])) rep_ptrs[i] = &reps[i];
    }
    /* inputs */
    const int V = m->vocab_size;
    const cJSON *bj = cJSON_GetObjectItemCaseSensitive(j, "batch");
    int B = cJSON_IsNumber(bj) && bj->valuedouble >= 1 && bj->valuedouble <= 4 ? (int)bj->valuedouble : 1, S = 5;
    int Bs = B, Ss = S;
    bids = vf_ids_from_json(cJSON_GetObjectItemCaseSensitive(j, "base"), V, &B, &S);
    sids = vf_ids_from_json(cJSON_GetObjectItemCaseSensitive(j, "source"), V, &Bs, &Ss);
    if (!bids) {
        bids = malloc(sizeof(int32_t) * (size_t)B * 5);
        if (!bids) goto out;
        for (int b = 0; b < B; b++) memcpy(bids + b * 5, vf_base_ids[b], sizeof vf_base_ids[b]);
    }
    if (!sids) {
        Bs = B;
        Ss = 5;
        sids = malloc(sizeof(int32_t) * (size_t)Bs * 5);
        if (!sids) goto out;
        for (int b = 0; b < Bs; b++) memcpy(sids + b * 5, vf_src_ids[b], sizeof vf_src_ids[b]);
    }
    vene_batch base = {.batch = B, .seq = S, .ids = bids};
    vene_batch src = {.batch = Bs, .seq = Ss, .ids = sids};
    const cJSON *sl = cJSON_GetObjectItemCaseSensitive(j, "sources");
    int ns = 1;
    if (cJSON_IsArray(sl)) ns = cJSON_GetArraySize(sl) > 64 ? 64 : cJSON_GetArraySize(sl);
    srcs = calloc((size_t)(ns ? ns : 1), sizeof *srcs);
    if (!srcs) goto out;
    for (int g = 0; g < ns; g++) {
        const cJSON *f = cJSON_IsArray(sl) ? cJSON_GetArrayItem(sl, g) : NULL;
        srcs[g] = !f || cJSON_IsTrue(f) || (cJSON_IsNumber(f) && f->valuedouble != 0) ? &src : NULL;
    }
    const cJSON *ulj = cJSON_GetObjectItemCaseSensitive(j, "unit_locations");
    const cJSON *ssj = cJSON_GetObjectItemCaseSensitive(j, "subspaces");
    if (ulj && !cJSON_IsNull(ulj)) ul = cJSON_PrintUnformatted(ulj);
    if (ssj && !cJSON_IsNull(ssj)) ss = cJSON_PrintUnformatted(ssj);
    vene_call call = {.base = &base, .sources = srcs, .n_sources = ns, .unit_locations = ul, .subspaces = ss,
                      .source_reps = rep_ptrs,
                      .output_original = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(j, "output_original"))};
    for (int pass = 0; pass < 2; pass++) {
        memset(&err, 0, sizeof err);
        rc = vene_intervenable_forward(iv, &call, &err);
        if (rc != VENE_OK) {
            if (!err.msg[0]) vf_fail("vene_intervenable_forward failed (%s) without a message", vene_status_name(rc));
            vf_rejected("vene_intervenable_forward", &err);
            break;
        }
        result = 0;
        for (int w = 0; w < 2; w++) {
            vf_touch(vene_intervenable_logits(iv, w), "logits");
            vf_touch(vene_intervenable_last_hidden(iv, w), "last_hidden");
        }
        if (!vene_intervenable_last_hidden(iv, 1)) vf_fail("forward succeeded without an intervened hidden state");
        int nc = vene_intervenable_collected_count(iv);
        for (int c = 0; c < nc; c++) vf_touch(vene_intervenable_collected(iv, c), "collected");
    }
    if (result == 0 && vf_save_dir) {
        /* seed generation for fuzz_intervenable_load (fuzz/gen_load_seeds.c) */
        vf_clear_dir(vf_save_dir);
        memset(&err, 0, sizeof err);
        if (vene_intervenable_save(iv, vf_save_dir, &err) != VENE_OK) fprintf(stderr, "save: %s\n", err.msg);
    }
out:
    if (reps)
        for (int i = 0; i < N; i++) free(reps[i].data);
    free(reps);
    free((void *)rep_ptrs);
    free((void *)srcs);
    free(ul);
    free(ss);
    free(bids);
    free(sids);
    vene_intervenable_free(iv);
    cJSON_Delete(j);
    return result;
}

/* ---------------------------------------------------------------- 5. saved interventions */

/* Input: config.json bytes, optionally followed by "\nVFSEP!!\n" and parameter-file payloads
 * separated the same way; payload k is written as intkey_<sorted_keys[k]>.safetensors (an
 * empty payload writes no file). The
 * folder is loaded onto gpt2-tiny with vene_intervenable_load; a loaded intervenable runs a
 * forward, is saved to a second folder and must load again from there. */
static void vf_clear_dir(const char *dir) {
    vf_rm_rf(dir);
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) vf_fail("mkdir %s", dir);
}

int vene_fuzz_intervenable_load(const uint8_t *data, size_t size) {
    const vene_model *m = vf_gpt2_tiny();
    char dir[PATH_MAX], dir2[PATH_MAX], path[PATH_MAX + 300];
    vf_scratch("saved", dir, sizeof dir);
    vf_scratch("resaved", dir2, sizeof dir2);
    vf_clear_dir(dir);
    vf_clear_dir(dir2);
    const uint8_t *end = data + size, *sep = vf_find_sep(data, end);
    size_t clen = sep ? (size_t)(sep - data) : size;
    snprintf(path, sizeof path, "%s/config.json", dir);
    vf_write(path, data, clen);
    /* the E x E budget of fuzz_experiment: a representation with more than VF_MAX_UNITS
     * units is skipped (positional or dict form) */
    {
        char *s = vf_cstr(data, clen);
        cJSON *c = cJSON_Parse(s);
        free(s);
        const cJSON *reprs = cJSON_GetObjectItemCaseSensitive(c, "representations"), *r;
        int big = 0;
        if (cJSON_IsObject(reprs)) {
            const cJSON *u = cJSON_GetObjectItemCaseSensitive(reprs, "max_number_of_units");
            big = cJSON_IsNumber(u) && u->valuedouble > VF_MAX_UNITS;
        }
        for (r = cJSON_IsArray(reprs) ? reprs->child : NULL; r; r = r->next) {
            const cJSON *u = cJSON_IsArray(r) ? cJSON_GetArrayItem(r, 3) : cJSON_GetObjectItemCaseSensitive(r, "max_number_of_units");
            if (cJSON_IsNumber(u) && u->valuedouble > VF_MAX_UNITS) big = 1;
        }
        cJSON_Delete(c);
        if (big) return 1;
    }
    if (sep) {
        char *s = vf_cstr(data, clen);
        cJSON *c = cJSON_Parse(s);
        free(s);
        const cJSON *keys = cJSON_GetObjectItemCaseSensitive(c, "sorted_keys");
        const uint8_t *p = sep + sizeof vf_sep - 1;
        for (int k = 0; p <= end; k++) {
            const uint8_t *q = vf_find_sep(p, end);
            const cJSON *key = cJSON_GetArrayItem(keys, k);
            size_t plen = (size_t)((q ? q : end) - p);
            if (plen && cJSON_IsString(key) && strlen(key->valuestring) < 200 && !strchr(key->valuestring, '/')) {
                snprintf(path, sizeof path, "%s/intkey_%s.safetensors", dir, key->valuestring);
                vf_write(path, p, plen);
            }
            if (!q) break;
            p = q + sizeof vf_sep - 1;
        }
        cJSON_Delete(c);
    }
    vene_intervenable *iv = NULL, *iv2 = NULL;
    vene_error err = {0};
    int rc = vene_intervenable_load(m, dir, &iv, &err);
    if (rc != VENE_OK) {
        if (iv) vf_fail("vene_intervenable_load failed but returned an intervenable");
        if (!err.msg[0]) vf_fail("vene_intervenable_load failed (%s) without a message", vene_status_name(rc));
        return vf_rejected("vene_intervenable_load", &err);
    }
    int N = vene_intervenable_count(iv);
    int32_t ids[2][5];
    memcpy(ids[0], vf_base_ids[0], sizeof ids[0]);
    memcpy(ids[1], vf_src_ids[0], sizeof ids[1]);
    vene_batch base = {.batch = 1, .seq = 5, .ids = ids[0]}, src = {.batch = 1, .seq = 5, .ids = ids[1]};
    const vene_batch *srcs[1] = {&src};
    vene_call call = {.base = &base, .sources = srcs, .n_sources = 1, .unit_locations = "{\"sources->base\": 2}"};
    if (vene_intervenable_forward(iv, &call, &err) == VENE_OK) vf_touch(vene_intervenable_last_hidden(iv, 1), "last_hidden");
    memset(&err, 0, sizeof err);
    rc = vene_intervenable_save(iv, dir2, &err);
    if (rc == VENE_OK) {
        rc = vene_intervenable_load(m, dir2, &iv2, &err);
        if (rc != VENE_OK) vf_fail("a loaded intervenable, saved again, does not load: %s", err.msg);
        if (vene_intervenable_count(iv2) != N) vf_fail("reload: %d interventions became %d", N, vene_intervenable_count(iv2));
        for (int i = 0; i < N; i++)
            if (strcmp(vene_intervenable_key(iv, i), vene_intervenable_key(iv2, i)))
                vf_fail("reload: key %d \"%s\" became \"%s\"", i, vene_intervenable_key(iv, i), vene_intervenable_key(iv2, i));
        vene_intervenable_free(iv2);
    } else if (!err.msg[0]) {
        vf_fail("vene_intervenable_save failed (%s) without a message", vene_status_name(rc));
    }
    vene_intervenable_free(iv);
    return 0;
}

/* ---------------------------------------------------------------- 6. experiment files */

/* Input: an experiment.json (the `vene run` contract), optionally followed by "\nVFSEP!!\n"
 * and the bytes of its inputs.safetensors. "model" is replaced by the absolute path of
 * gpt2-tiny (a fuzzer cannot usefully pick folders); everything else goes to
 * vene_experiment_run as written. A run that succeeds must leave a result file that opens. */
int vene_fuzz_experiment_file(const uint8_t *data, size_t size) {
    vf_single_thread();
    char dir[PATH_MAX], path[PATH_MAX + 32], out[PATH_MAX + 32], model[PATH_MAX];
    vf_scratch("experiment", dir, sizeof dir);
    vf_clear_dir(dir);
    const char *e = getenv("VENE_FUZZ_MODEL_DIR");
    if (e && *e) snprintf(model, sizeof model, "%s", e);
    else vf_path(model, sizeof model, "tests/fixtures/models/gpt2-tiny");
    char absmodel[PATH_MAX];
    if (!realpath(model, absmodel)) vf_fail("cannot find %s (set VENE_FUZZ_ROOT or VENE_FUZZ_MODEL_DIR)", model);
    const uint8_t *end = data + size, *sep = vf_find_sep(data, end);
    size_t jlen = sep ? (size_t)(sep - data) : size;
    char *s = vf_cstr(data, jlen);
    cJSON *j = cJSON_Parse(s);
    free(s);
    if (!cJSON_IsObject(j)) {
        cJSON_Delete(j);
        return 1;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(j, "model");
    cJSON_AddStringToObject(j, "model", absmodel);
    char *text = cJSON_PrintUnformatted(j);
    cJSON_Delete(j);
    if (!text) return 1;
    snprintf(path, sizeof path, "%s/experiment.json", dir);
    vf_write(path, text, strlen(text));
    free(text);
    if (sep) {
        const uint8_t *p = sep + sizeof vf_sep - 1;
        snprintf(out, sizeof out, "%s/inputs.safetensors", dir);
        vf_write(out, p, (size_t)(end - p));
    }
    snprintf(out, sizeof out, "%s/result.safetensors", dir);
    vene_error err = {0};
    int rc = vene_experiment_run(path, out, 1, &err);
    if (rc != VENE_OK) {
        if (!err.msg[0]) vf_fail("vene_experiment_run failed (%s) without a message", vene_status_name(rc));
        return vf_rejected("vene_experiment_run", &err);
    }
    st_file *f = NULL;
    if (st_open(out, &f, &err) != VENE_OK) vf_fail("vene_experiment_run succeeded but its result does not open: %s", err.msg);
    st_close(f);
    return 0;
}

#include "targets_tok.c" /* 8. fuzz_gguf, 9. fuzz_tokenizer_json, and the tokenizer checks */

/* ---------------------------------------------------------------- 7. tokenizer files */

/* Input: a tokenizer.json, or a vocab.json and a merges.txt separated by "\nVFSEP!!\n",
 * loaded with vene_tokenizer_load from a folder; a tokenizer that loads is exercised by
 * vf_tok_check (targets_tok.c) on fixed strings and the input's first 256 bytes. */
int vene_fuzz_tokenizer_files(const uint8_t *data, size_t size) {
    char dir[PATH_MAX], path[PATH_MAX + 32];
    vf_scratch("tokenizer", dir, sizeof dir);
    vf_clear_dir(dir);
    const uint8_t *end = data + size, *sep = vf_find_sep(data, end);
    if (sep) {
        snprintf(path, sizeof path, "%s/vocab.json", dir);
        vf_write(path, data, (size_t)(sep - data));
        const uint8_t *p = sep + sizeof vf_sep - 1;
        snprintf(path, sizeof path, "%s/merges.txt", dir);
        vf_write(path, p, (size_t)(end - p));
    } else {
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        vf_write(path, data, size);
    }
    vene_tokenizer *t = vf_tok_load(dir);
    if (!t) return 1;
    vf_tok_check(t, data, size);
    vene_tokenizer_free(t);
    return 0;
}

/* ---------------------------------------------------------------- teardown */

void vene_fuzz_cleanup(void) {
    vene_tokenizer_free(vf_tok);
    vf_tok = NULL;
    vene_model_free(vf_gpt2);
    vf_gpt2 = NULL;
    vf_cfg_dirs[0][0] = 0;
    vf_rm_tmp();
}

/* Dispatch by target name (for the replayer). */
typedef int (*vene_fuzz_fn)(const uint8_t *, size_t);
static const struct {
    const char *name;
    vene_fuzz_fn fn;
} vene_fuzz_targets[] = {
    {"fuzz_safetensors", vene_fuzz_safetensors},
    {"fuzz_tokenizer", vene_fuzz_tokenizer},
    {"fuzz_config_json", vene_fuzz_config_json},
    {"fuzz_experiment", vene_fuzz_experiment},
    {"fuzz_intervenable_load", vene_fuzz_intervenable_load},
    {"fuzz_experiment_file", vene_fuzz_experiment_file},
    {"fuzz_tokenizer_files", vene_fuzz_tokenizer_files},
    {"fuzz_gguf", vene_fuzz_gguf},
    {"fuzz_tokenizer_json", vene_fuzz_tokenizer_json},
};
