/* Model-folder weights: single file and sharded folders, prefix fallbacks, shape and dtype
 * checks, conversion into owned memory. Folders are generated in a temporary directory. */
#include <dirent.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io/weights.h"
#include "test.h"
#include "test_tmp.h"

static const char *mkfolder(const char *name) {
    const char *p = tpath(name);
    mkdir(p, 0755);
    return p;
}

static void write_text(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        perror(path);
        return;
    }
    fputs(text, fp);
    fclose(fp);
}

static int contains(const vene_error *e, const char *a) { return strstr(e->msg, a) != NULL; }

/* Test values */
static float qkv[4 * 12];
static uint16_t wte_f16[3 * 2] = {0x3C00, 0xC000, 0x3800, 0x0001, 0x7BFF, 0x8000};
static const float wte_f32[6] = {1.0f, -2.0f, 0.5f, 5.9604644775390625e-08f, 65504.0f, -0.0f};
static uint16_t wpe_bf16[4] = {0x3F80, 0xC049, 0x4780, 0x0000};
static const float wpe_f32[4] = {1.0f, -3.140625f, 65536.0f, 0.0f};
static double lnf_f64[3] = {0.1, -1e-3, 2.5};
static int64_t ids_i64[2] = {1, 2};

static void fill(void) {
    for (int i = 0; i < 48; i++) qkv[i] = (float)i * 0.125f - 3.0f;
}

static int save(st_writer *w, const char *path) {
    vene_error err = {0};
    int rc = st_writer_save(w, path, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    st_writer_free(w);
    return rc;
}

static void test_single(void) {
    const char *dir = mkfolder("single");
    char file[600];
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    st_writer *w = st_writer_new();
    vene_tensor t = {qkv, 2, {4, 12}};
    CHECK(st_writer_add_f32(w, "transformer.h.0.attn.c_attn.weight", &t, NULL) == VENE_OK);
    CHECK(st_writer_add(w, "wte.weight", ST_F16, 2, (int64_t[]){3, 2}, wte_f16, NULL) == VENE_OK);
    CHECK(st_writer_add(w, "transformer.wpe.weight", ST_BF16, 2, (int64_t[]){2, 2}, wpe_bf16, NULL) ==
          VENE_OK);
    CHECK(st_writer_add(w, "ln_f.bias", ST_F64, 1, (int64_t[]){3}, lnf_f64, NULL) == VENE_OK);
    CHECK(st_writer_add(w, "ids", ST_I64, 1, (int64_t[]){2}, ids_i64, NULL) == VENE_OK);
    CHECK(st_writer_add(w, "model.norm.weight", ST_F32, 1, (int64_t[]){2}, qkv, NULL) == VENE_OK);
    if (save(w, file) != VENE_OK) return;

    vene_weights *ws = NULL;
    vene_error err = {0};
    int rc = vene_weights_open(dir, &ws, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc != VENE_OK) return;
    CHECK(vene_weights_owned_bytes(ws) == 0);

    /* prefix prepended: "h.0..." finds "transformer.h.0..."; F32 is used in place */
    const float *p = NULL;
    rc = vene_weights_get(ws, "h.0.attn.c_attn.weight", 2, (int64_t[]){4, 12}, &p, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    CHECK(p && memcmp(p, qkv, sizeof qkv) == 0);
    const st_tensor *st = NULL;
    CHECK(vene_weights_find(ws, "transformer.h.0.attn.c_attn.weight", &st) == VENE_OK && st &&
          (const void *)p == st->data);
    CHECK(vene_weights_owned_bytes(ws) == 0);
    /* and exact */
    const float *p2 = NULL;
    CHECK(vene_weights_get(ws, "transformer.h.0.attn.c_attn.weight", 2, (int64_t[]){4, 12}, &p2, NULL) ==
              VENE_OK &&
          p2 == p);

    /* prefix stripped: "transformer.wte.weight" finds "wte.weight"; F16 converted once */
    rc = vene_weights_get(ws, "transformer.wte.weight", 2, (int64_t[]){3, 2}, &p, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    CHECK(p && memcmp(p, wte_f32, sizeof wte_f32) == 0);
    CHECK(vene_weights_owned_bytes(ws) == 24);
    CHECK(vene_weights_get(ws, "wte.weight", 2, (int64_t[]){3, 2}, &p2, NULL) == VENE_OK && p2 == p);
    CHECK(vene_weights_owned_bytes(ws) == 24);

    /* BF16 under the prefix, F64 bare, "model." prefix */
    rc = vene_weights_get(ws, "wpe.weight", 2, (int64_t[]){2, 2}, &p, &err);
    CHECK_MSG(rc == VENE_OK && memcmp(p, wpe_f32, sizeof wpe_f32) == 0, "%s", err.msg);
    rc = vene_weights_get(ws, "transformer.ln_f.bias", 1, (int64_t[]){3}, &p, &err);
    CHECK_MSG(rc == VENE_OK && p[0] == 0.1f && p[1] == (float)-1e-3 && p[2] == 2.5f, "%s", err.msg);
    CHECK(vene_weights_owned_bytes(ws) == 24 + 16 + 12);
    rc = vene_weights_get(ws, "norm.weight", 1, (int64_t[]){2}, &p, &err);
    CHECK_MSG(rc == VENE_OK && p[0] == qkv[0] && p[1] == qkv[1], "%s", err.msg);

    /* missing tensor */
    memset(&err, 0, sizeof err);
    rc = vene_weights_get(ws, "h.0.attn.c_proj.weight", 2, (int64_t[]){4, 4}, &p, &err);
    CHECK_MSG(rc == VENE_ERR_FORMAT && p == NULL && err.code == VENE_ERR_FORMAT &&
                  contains(&err, "model.safetensors: missing tensor 'h.0.attn.c_proj.weight'"),
              "%s", err.msg);

    /* shape mismatch: dims, then ndim */
    rc = vene_weights_get(ws, "h.0.attn.c_attn.weight", 2, (int64_t[]){12, 4}, &p, &err);
    CHECK_MSG(rc == VENE_ERR_FORMAT && contains(&err, "model.safetensors") &&
                  contains(&err, "transformer.h.0.attn.c_attn.weight") && contains(&err, "[12, 4]") &&
                  contains(&err, "[4, 12]"),
              "%s", err.msg);
    rc = vene_weights_get(ws, "ln_f.bias", 2, (int64_t[]){3, 1}, &p, &err);
    CHECK_MSG(rc == VENE_ERR_FORMAT && contains(&err, "ln_f.bias") && contains(&err, "[3, 1]") &&
                  contains(&err, "found [3]"),
              "%s", err.msg);
    CHECK(vene_weights_owned_bytes(ws) == 24 + 16 + 12);

    /* integer dtypes are not weights */
    rc = vene_weights_get(ws, "ids", 1, (int64_t[]){2}, &p, &err);
    CHECK_MSG(rc == VENE_ERR_FORMAT && contains(&err, "'ids'") && contains(&err, "I64") &&
                  contains(&err, "model.safetensors"),
              "%s", err.msg);

    /* find / has */
    CHECK(vene_weights_has(ws, "h.0.attn.c_attn.weight"));
    CHECK(vene_weights_has(ws, "transformer.ids"));
    CHECK(!vene_weights_has(ws, "h.1.attn.c_attn.weight"));
    CHECK(vene_weights_find(ws, "nothing", &st) == VENE_ERR_FORMAT && st == NULL);
    CHECK(vene_weights_find(ws, "transformer.wte.weight", &st) == VENE_OK && st &&
          st->dtype == ST_F16 && strcmp(st->name, "wte.weight") == 0);

    /* prefixes are configurable */
    vene_weights_set_prefixes(ws, NULL);
    CHECK(!vene_weights_has(ws, "h.0.attn.c_attn.weight"));
    rc = vene_weights_get(ws, "wpe.weight", 2, (int64_t[]){2, 2}, &p, &err);
    CHECK_MSG(rc == VENE_ERR_FORMAT && contains(&err, "missing tensor 'wpe.weight'"), "%s", err.msg);
    const char *const pre[] = {"transformer.", NULL};
    vene_weights_set_prefixes(ws, pre);
    CHECK(vene_weights_has(ws, "h.0.attn.c_attn.weight"));
    CHECK(!vene_weights_has(ws, "norm.weight"));

    CHECK(vene_weights_get(ws, NULL, 0, NULL, &p, &err) == VENE_ERR_ARG);
    CHECK(vene_weights_get(ws, "wte.weight", VENE_MAX_DIMS + 1, NULL, &p, &err) == VENE_ERR_ARG);
    vene_weights_free(ws);
    vene_weights_free(NULL);
}

static void test_misaligned(void) {
    /* a 55-byte header puts the data section at offset 63: F32 must be copied */
    const char *dir = mkfolder("misaligned");
    char file[600];
    snprintf(file, sizeof file, "%s/model.safetensors", dir);
    const char *hdr = "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}}";
    size_t hl = strlen(hdr);
    unsigned char buf[256];
    uint64_t h = hl;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(h >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    float vals[3] = {1.25f, -7.5f, 3e-5f};
    memcpy(buf + 8 + hl, vals, 12);
    FILE *fp = fopen(file, "wb");
    if (fp) {
        fwrite(buf, 1, 8 + hl + 12, fp);
        fclose(fp);
    }
    CHECK((8 + hl) % 4 != 0);
    vene_weights *ws = NULL;
    vene_error err = {0};
    int rc = vene_weights_open(dir, &ws, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc != VENE_OK) return;
    const float *p = NULL;
    rc = vene_weights_get(ws, "w", 1, (int64_t[]){3}, &p, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    CHECK(p && ((uintptr_t)p % 4) == 0 && memcmp(p, vals, 12) == 0);
    CHECK(vene_weights_owned_bytes(ws) == 12);
    vene_weights_free(ws);
}

static void test_sharded(void) {
    const char *dir = mkfolder("sharded");
    char f1[600], f2[600], idx[600];
    snprintf(f1, sizeof f1, "%s/model-00001-of-00002.safetensors", dir);
    snprintf(f2, sizeof f2, "%s/model-00002-of-00002.safetensors", dir);
    snprintf(idx, sizeof idx, "%s/model.safetensors.index.json", dir);
    st_writer *w = st_writer_new();
    vene_tensor t = {qkv, 2, {4, 12}};
    CHECK(st_writer_add_f32(w, "transformer.h.0.attn.c_attn.weight", &t, NULL) == VENE_OK);
    CHECK(st_writer_add(w, "transformer.wte.weight", ST_F16, 2, (int64_t[]){3, 2}, wte_f16, NULL) ==
          VENE_OK);
    if (save(w, f1) != VENE_OK) return;
    w = st_writer_new();
    vene_tensor t2 = {qkv + 12, 1, {12}};
    CHECK(st_writer_add_f32(w, "transformer.h.1.attn.c_attn.bias", &t2, NULL) == VENE_OK);
    CHECK(st_writer_add(w, "transformer.wpe.weight", ST_BF16, 2, (int64_t[]){2, 2}, wpe_bf16, NULL) ==
          VENE_OK);
    if (save(w, f2) != VENE_OK) return;
    write_text(idx, "{\"metadata\": {\"total_size\": 240},\n \"weight_map\": {\n"
                    "  \"transformer.h.0.attn.c_attn.weight\": \"model-00001-of-00002.safetensors\",\n"
                    "  \"transformer.h.1.attn.c_attn.bias\": \"model-00002-of-00002.safetensors\",\n"
                    "  \"transformer.wpe.weight\": \"model-00002-of-00002.safetensors\",\n"
                    "  \"transformer.wte.weight\": \"model-00001-of-00002.safetensors\"}}\n");
    /* a stray model.safetensors must be ignored when the index exists */
    char stray[600];
    snprintf(stray, sizeof stray, "%s/model.safetensors", dir);
    write_text(stray, "junk");

    vene_weights *ws = NULL;
    vene_error err = {0};
    int rc = vene_weights_open(dir, &ws, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc != VENE_OK) return;
    const float *p = NULL;
    rc = vene_weights_get(ws, "h.0.attn.c_attn.weight", 2, (int64_t[]){4, 12}, &p, &err);
    CHECK_MSG(rc == VENE_OK && memcmp(p, qkv, sizeof qkv) == 0, "%s", err.msg);
    rc = vene_weights_get(ws, "h.1.attn.c_attn.bias", 1, (int64_t[]){12}, &p, &err);
    CHECK_MSG(rc == VENE_OK && memcmp(p, qkv + 12, 48) == 0, "%s", err.msg);
    rc = vene_weights_get(ws, "wte.weight", 2, (int64_t[]){3, 2}, &p, &err);
    CHECK_MSG(rc == VENE_OK && memcmp(p, wte_f32, sizeof wte_f32) == 0, "%s", err.msg);
    rc = vene_weights_get(ws, "transformer.wpe.weight", 2, (int64_t[]){2, 2}, &p, &err);
    CHECK_MSG(rc == VENE_OK && memcmp(p, wpe_f32, sizeof wpe_f32) == 0, "%s", err.msg);
    CHECK(vene_weights_owned_bytes(ws) == 24 + 16);
    rc = vene_weights_get(ws, "h.2.attn.c_attn.bias", 1, (int64_t[]){12}, &p, &err);
    CHECK_MSG(rc == VENE_ERR_FORMAT && contains(&err, "model.safetensors.index.json") &&
                  contains(&err, "missing tensor 'h.2.attn.c_attn.bias'"),
              "%s", err.msg);
    rc = vene_weights_get(ws, "h.1.attn.c_attn.bias", 1, (int64_t[]){13}, &p, &err);
    CHECK_MSG(rc == VENE_ERR_FORMAT && contains(&err, "model-00002-of-00002.safetensors") &&
                  contains(&err, "[13]") && contains(&err, "[12]"),
              "%s", err.msg);
    vene_weights_free(ws);

    /* index naming a tensor its shard lacks */
    write_text(idx, "{\"weight_map\": {"
                    "\"transformer.wpe.weight\": \"model-00001-of-00002.safetensors\"}}");
    rc = vene_weights_open(dir, &ws, &err);
    CHECK_MSG(rc == VENE_ERR_FORMAT && ws == NULL && contains(&err, "transformer.wpe.weight") &&
                  contains(&err, "model-00001-of-00002.safetensors"),
              "%s", err.msg);
    /* index naming a missing shard */
    write_text(idx, "{\"weight_map\": {\"a\": \"model-00009-of-00009.safetensors\"}}");
    rc = vene_weights_open(dir, &ws, &err);
    CHECK_MSG(rc == VENE_ERR_IO && ws == NULL && contains(&err, "model-00009-of-00009.safetensors"), "%s",
              err.msg);
    /* index escaping the folder */
    write_text(idx, "{\"weight_map\": {\"a\": \"../single/model.safetensors\"}}");
    rc = vene_weights_open(dir, &ws, &err);
    CHECK_MSG(rc == VENE_ERR_FORMAT && ws == NULL && contains(&err, "../single"), "%s", err.msg);
    /* index not JSON, no weight_map, wrong value type */
    write_text(idx, "{\"weight_map\": ");
    rc = vene_weights_open(dir, &ws, &err);
    CHECK_MSG(rc == VENE_ERR_FORMAT && contains(&err, "model.safetensors.index.json"), "%s", err.msg);
    write_text(idx, "{\"metadata\": {}}");
    rc = vene_weights_open(dir, &ws, &err);
    CHECK_MSG(rc == VENE_ERR_FORMAT && contains(&err, "weight_map"), "%s", err.msg);
    write_text(idx, "{\"weight_map\": {\"x.w\": 3}}");
    rc = vene_weights_open(dir, &ws, &err);
    CHECK_MSG(rc == VENE_ERR_FORMAT && contains(&err, "x.w"), "%s", err.msg);
    write_text(idx, "{\"weight_map\": {}}");
    rc = vene_weights_open(dir, &ws, &err);
    CHECK_MSG(rc == VENE_ERR_FORMAT && contains(&err, "empty"), "%s", err.msg);
    /* a corrupt shard: its own message comes through */
    write_text(idx, "{\"weight_map\": {\"a\": \"model.safetensors\"}}");
    rc = vene_weights_open(dir, &ws, &err);
    CHECK_MSG(rc == VENE_ERR_FORMAT && ws == NULL && contains(&err, stray), "%s", err.msg);
}

static void test_no_weights(void) {
    const char *dir = mkfolder("nothing");
    vene_weights *ws = (vene_weights *)1;
    vene_error err = {0};
    int rc = vene_weights_open(dir, &ws, &err);
    CHECK_MSG(rc == VENE_ERR_IO && ws == NULL && contains(&err, dir) &&
                  contains(&err, "model.safetensors.index.json") && contains(&err, "model.safetensors "),
              "%s", err.msg);
    rc = vene_weights_open(tpath("not-there"), &ws, &err);
    CHECK(rc == VENE_ERR_IO && ws == NULL);
    CHECK(vene_weights_open(NULL, &ws, &err) == VENE_ERR_ARG);
    CHECK(vene_weights_open(dir, NULL, &err) == VENE_ERR_ARG);
    /* corrupt single file */
    const char *bad = mkfolder("badsingle");
    char file[600];
    snprintf(file, sizeof file, "%s/model.safetensors", bad);
    write_text(file, "\x08\0");
    rc = vene_weights_open(bad, &ws, &err);
    CHECK_MSG(rc == VENE_ERR_FORMAT && ws == NULL && contains(&err, file), "%s", err.msg);
}

static void test_real_model(void) {
    const char *dir = "fixtures/models/gpt2-tiny";
    struct stat sb;
    if (stat("fixtures/models/gpt2-tiny/model.safetensors", &sb) != 0) {
        printf("note: %s/model.safetensors absent; skipping the real-model check\n", dir);
        return;
    }
    vene_weights *ws = NULL;
    vene_error err = {0};
    int rc = vene_weights_open(dir, &ws, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc != VENE_OK) return;
    /* every float tensor loads under its own shape, also without its prefix */
    st_file *f = NULL;
    rc = st_open("fixtures/models/gpt2-tiny/model.safetensors", &f, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    int bad = 0, n = 0;
    for (int i = 0; f && i < st_count(f); i++) {
        const st_tensor *t = st_at(f, i);
        if (t->dtype > ST_F64) continue;
        const float *p = NULL;
        if (vene_weights_get(ws, t->name, t->ndim, t->shape, &p, &err) != VENE_OK || !p) {
            fprintf(stderr, "  %s\n", err.msg);
            bad++;
        }
        const char *bare = strncmp(t->name, "transformer.", 12) == 0 ? t->name + 12 : NULL;
        if (bare && !vene_weights_has(ws, bare)) bad++;
        n++;
    }
    CHECK(n > 0);
    CHECK_MSG(bad == 0, "%d tensors failed", bad);
    CHECK(vene_weights_has(ws, "h.0.attn.c_attn.weight"));
    st_close(f);
    vene_weights_free(ws);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vene_wt_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    fill();
    test_single();
    test_misaligned();
    test_sharded();
    test_no_weights();
    test_real_model();
    rm_tree(tmpdir);
    TEST_MAIN_END();
}
