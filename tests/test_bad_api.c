/* API misuse, one check per row of docs/bad-inputs.md (ids A1..): NULL arguments, wrong
 * tensor shapes, calls in the wrong state, a model freed while still in use, and memory
 * limits. Each failing call must return the documented status and a message naming what is
 * wrong; the run state or intervenable must stay usable afterwards, and (under the ASan
 * build's LeakSanitizer) no error path may leak. */
#include <stdint.h>

#include "test.h"
#include "test_tmp.h"
#include "vene.h"

#define MODEL_DIR "fixtures/models/gpt2-tiny"

static const int32_t BASE_IDS[5] = {464, 3139, 286, 8602, 318}; /* The capital of Spain is */
static const int32_t SRC_IDS[5] = {464, 3139, 286, 8031, 318};  /* The capital of Italy is */
static const char *VANILLA = "{\"layer\": 1, \"component\": \"block_output\", \"intervention_type\": \"VanillaIntervention\"}";

/* The call must fail with `code` and a message holding every needle (NULL-terminated). */
static void expect(const char *id, int rc, const vene_error *err, int code, const char *const *needles) {
    int ok = rc == code && err->code == code;
    for (const char *const *n = needles; ok && *n; n++) ok = strstr(err->msg, *n) != NULL;
    CHECK_MSG(ok, "%s: got %s \"%s\", wanted %s", id, vene_status_name(rc), err->msg, vene_status_name(code));
    printf("  %-4s %-20s %s\n", id, vene_status_name(rc), err->msg);
}
#define EXPECT(id, call, code, ...)                                                   \
    do {                                                                              \
        vene_error e_ = {0};                                                          \
        vene_error *err = &e_;                                                        \
        int rc_ = (call);                                                             \
        expect((id), rc_, &e_, (code), (const char *const[]){__VA_ARGS__, NULL});     \
        (void)err;                                                                    \
    } while (0)

/* "... needs 1.5 MiB (1605696 bytes) ..." -> 1605696 */
static size_t bytes_in(const char *msg) {
    const char *p = strstr(msg, "needs ");
    p = p ? strchr(p, '(') : NULL;
    return p ? (size_t)strtoull(p + 1, NULL, 10) : 0;
}

static void test_null_arguments(vene_model *m) {
    printf("NULL arguments:\n");
    vene_model *mo = NULL;
    vene_run *rs = NULL;
    vene_intervenable *iv = NULL;
    vene_tokenizer *tok = NULL;
    EXPECT("A1", vene_model_load(NULL, NULL, &mo, err), VENE_ERR_ARG, "model folder path");
    EXPECT("A2", vene_model_load(MODEL_DIR, NULL, NULL, err), VENE_ERR_ARG, "NULL");
    EXPECT("A3", vene_run_new(NULL, &rs, err), VENE_ERR_ARG, "model is NULL");
    vene_batch b = {.batch = 1, .seq = 5, .ids = BASE_IDS};
    EXPECT("A4", vene_forward(NULL, &b, err), VENE_ERR_ARG, "run state is NULL");
    EXPECT("A5", vene_intervenable_new(NULL, VANILLA, &iv, err), VENE_ERR_ARG, "model is NULL");
    EXPECT("A6", vene_intervenable_new(m, NULL, &iv, err), VENE_ERR_ARG, "config");
    EXPECT("A7", vene_intervenable_forward(NULL, NULL, err), VENE_ERR_ARG, "intervenable is NULL");
    EXPECT("A8", vene_tokenizer_load(NULL, &tok, err), VENE_ERR_ARG, "NULL");
    CHECK(vene_tokenizer_load(MODEL_DIR, &tok, NULL) == VENE_OK);
    int32_t *ids = NULL;
    char *text = NULL;
    size_t n = 0;
    EXPECT("A9", vene_tokenize(tok, NULL, 3, &ids, &n, err), VENE_ERR_ARG, "vene_tokenize", "NULL argument");
    EXPECT("A10", vene_detokenize(tok, NULL, 2, &text, &n, err), VENE_ERR_ARG, "vene_detokenize", "NULL argument");
    vene_tokenizer_free(tok);
    EXPECT("A11", vene_experiment_run_opts(NULL, "r.safetensors", NULL, err), VENE_ERR_ARG, "NULL");
    /* a NULL vene_error is allowed on every error path */
    CHECK(vene_experiment_run("no/such/experiment.json", "r.safetensors", 1, NULL) == VENE_ERR_IO);
    CHECK(vene_intervenable_new(m, "{not json", &iv, NULL) == VENE_ERR_ARG && iv == NULL);
}

static void test_intervenable_misuse(vene_model *m) {
    printf("intervenable misuse:\n");
    vene_intervenable *iv = NULL;
    vene_error e0 = {0};
    EXPECT("A12", vene_intervenable_new(m, "{\"representations\": [{\"layer\": 1,", &iv, err), VENE_ERR_ARG, "not valid JSON");
    CHECK(vene_intervenable_new(m, "{\"layer\": 1, \"component\": \"block_output\", \"intervention_type\": "
                                   "\"RotatedSpaceIntervention\"}", &iv, &e0) == VENE_OK);
    if (!iv) return;
    float w4[4] = {1, 0, 0, 1};
    vene_tensor t22 = {.data = w4, .ndim = 2, .shape = {2, 2}};
    EXPECT("A13", vene_intervenable_set_param(iv, 1, "rotate_layer.weight", &t22, err), VENE_ERR_RANGE, "intervention 1",
           "1 configured");
    EXPECT("A14", vene_intervenable_set_param(iv, 0, "rotate_layer.weight", &t22, err), VENE_ERR_ARG, "rotate_layer.weight",
           "[2, 2]", "[64, 64]");
    EXPECT("A15", vene_intervenable_set_param(iv, 0, "rotate_layer.bias", &t22, err), VENE_ERR_ARG, "rotate_layer.bias");
    EXPECT("A16", vene_intervenable_set_param(iv, 0, "rotate_layer.weight", NULL, err), VENE_ERR_ARG, "NULL");
    EXPECT("A17", vene_intervenable_set_callback(iv, -1, NULL, NULL, err), VENE_ERR_RANGE, "intervention -1");
    /* wrong state: nothing to read before the first call */
    CHECK(vene_intervenable_logits(iv, 1) == NULL && vene_intervenable_last_hidden(iv, 0) == NULL);
    CHECK(vene_intervenable_collected(iv, 0) == NULL && vene_intervenable_collected_count(iv) == 0);
    CHECK(vene_intervenable_key(iv, 1) == NULL && vene_intervenable_key(iv, -1) == NULL);

    vene_batch base = {.batch = 1, .seq = 5, .ids = BASE_IDS}, src = {.batch = 1, .seq = 5, .ids = SRC_IDS};
    vene_batch src2 = {.batch = 2, .seq = 5, .ids = SRC_IDS}; /* only read after the batch check */
    const vene_batch *one[] = {&src}, *three[] = {&src, &src, &src}, *two_rows[] = {&src2};
    vene_call c = {.base = &base, .sources = one, .n_sources = 1, .unit_locations = "{\"sources->base\": 3}"};
    vene_call bad = c;
    bad.base = NULL;
    EXPECT("A18", vene_intervenable_forward(iv, &bad, err), VENE_ERR_ARG, "no base input");
    bad = c;
    bad.sources = three;
    bad.n_sources = 3;
    EXPECT("A19", vene_intervenable_forward(iv, &bad, err), VENE_ERR_ARG, "sources", "3 given for 1");
    bad = c;
    bad.sources = two_rows;
    EXPECT("A20", vene_intervenable_forward(iv, &bad, err), VENE_ERR_ARG, "sources[0]", "2 examples", "1");
    bad = c;
    bad.unit_locations = "{\"sources->base\": 3";
    EXPECT("A21", vene_intervenable_forward(iv, &bad, err), VENE_ERR_ARG, "unit_locations", "not valid JSON");
    bad.unit_locations = "{\"sources->base\": 3, \"sources->base\": 4}";
    EXPECT("A22", vene_intervenable_forward(iv, &bad, err), VENE_ERR_FORMAT, "unit_locations", "appears twice");
    bad.unit_locations = "{\"sources->base\": 9}";
    EXPECT("A23", vene_intervenable_forward(iv, &bad, err), VENE_ERR_RANGE, "location 9", "sequence");
    /* after all that, the same intervenable still gives the right answer: a rotation set to
     * the identity swaps the whole vector, as a VanillaIntervention does */
    float *eye = calloc(64 * 64, sizeof(float));
    for (int i = 0; i < 64; i++) eye[i * 65] = 1;
    vene_tensor ti = {.data = eye, .ndim = 2, .shape = {64, 64}};
    CHECK(vene_intervenable_set_param(iv, 0, "rotate_layer.weight", &ti, &e0) == VENE_OK);
    free(eye);
    vene_intervenable *ref = NULL;
    CHECK(vene_intervenable_new(m, VANILLA, &ref, &e0) == VENE_OK);
    if (ref && vene_intervenable_forward(iv, &c, &e0) == VENE_OK && vene_intervenable_forward(ref, &c, &e0) == VENE_OK) {
        const vene_tensor *a = vene_intervenable_logits(iv, 1), *r = vene_intervenable_logits(ref, 1);
        CHECK(a && r && vene_tensor_numel(a) == 5 * 50257);
        if (a && r) CHECK_CLOSE(a->data, r->data, 5 * 50257, 1e-5, "identity rotation == vanilla after the errors");
    } else {
        CHECK_MSG(0, "forward after errors: %s", e0.msg);
    }
    vene_intervenable_free(ref);
    vene_intervenable_free(iv);
}

/* Freed too early: the model outlives vene_model_free while a run or intervenable uses it;
 * their forwards fail, and the last of them releases it (LeakSanitizer checks that). */
static void test_model_freed_early(void) {
    printf("model freed too early:\n");
    vene_model *m = NULL;
    vene_run *rs = NULL;
    vene_intervenable *iv = NULL;
    vene_error e0 = {0};
    if (vene_model_load(MODEL_DIR, NULL, &m, &e0) || vene_run_new(m, &rs, &e0) || vene_intervenable_new(m, VANILLA, &iv, &e0)) {
        CHECK_MSG(0, "setup: %s", e0.msg);
        return;
    }
    vene_batch b = {.batch = 1, .seq = 5, .ids = BASE_IDS};
    CHECK(vene_forward(rs, &b, &e0) == VENE_OK);
    vene_model_free(m);
    vene_model_free(m); /* a second free of a model still in use is ignored */
    EXPECT("A24", vene_forward(rs, &b, err), VENE_ERR_STATE, "model was freed", "still used it");
    vene_run *rs2 = NULL;
    EXPECT("A25", vene_run_new(m, &rs2, err), VENE_ERR_STATE, "model was freed");
    const vene_batch *one[] = {&b};
    vene_call c = {.base = &b, .sources = one, .n_sources = 1, .unit_locations = "{\"sources->base\": 3}"};
    EXPECT("A26", vene_intervenable_forward(iv, &c, err), VENE_ERR_STATE, "model was freed");
    vene_run_free(rs);
    vene_intervenable_free(iv); /* the model's memory goes with the last user */
}

static void test_memory_limits(vene_model *m) {
    printf("memory limits:\n");
    vene_run *rs = NULL;
    vene_error e0 = {0};
    CHECK(vene_run_new(m, &rs, &e0) == VENE_OK);
    if (!rs) return;
    vene_batch b = {.batch = 1, .seq = 5, .ids = BASE_IDS};
    vene_run_set_memory_limit(rs, 4096);
    vene_error e1 = {0};
    EXPECT("A27", vene_forward(rs, &b, err), VENE_ERR_MEMORY, "forward of 1 x 5 tokens", "run memory",
           "memory limit of 4.0 KiB (4096 bytes)");
    CHECK(vene_forward(rs, &b, &e1) == VENE_ERR_MEMORY);
    /* the limit is exact: the size the message names passes, one byte less does not */
    size_t need = bytes_in(e1.msg);
    CHECK_MSG(need > 1000000, "needed %zu bytes (%s)", need, e1.msg);
    vene_run_set_memory_limit(rs, need - 1);
    CHECK(vene_forward(rs, &b, &e1) == VENE_ERR_MEMORY);
    vene_run_set_memory_limit(rs, need);
    CHECK_MSG(vene_forward(rs, &b, &e1) == VENE_OK, "%s", e1.msg);
    float *lim = malloc(sizeof(float) * 5 * 50257);
    const vene_tensor *lg = vene_run_logits(rs);
    CHECK(lg && lim);
    if (lg && lim) memcpy(lim, lg->data, sizeof(float) * 5 * 50257);
    vene_run_set_memory_limit(rs, 0);
    CHECK(vene_forward(rs, &b, &e1) == VENE_OK);
    lg = vene_run_logits(rs);
    if (lg && lim) CHECK(memcmp(lim, lg->data, sizeof(float) * 5 * 50257) == 0);
    free(lim);
    vene_run_free(rs);

    /* an intervened call: the estimate counts both passes, the outputs and the blocks */
    vene_intervenable *iv = NULL;
    CHECK(vene_intervenable_new(m, VANILLA, &iv, &e0) == VENE_OK);
    if (!iv) return;
    vene_batch src = {.batch = 1, .seq = 5, .ids = SRC_IDS};
    const vene_batch *one[] = {&src};
    vene_call c = {.base = &b, .sources = one, .n_sources = 1, .unit_locations = "{\"sources->base\": 3}",
                   .output_original = 1};
    vene_intervenable_set_memory_limit(iv, 1 << 20);
    EXPECT("A28", vene_intervenable_forward(iv, &c, err), VENE_ERR_MEMORY, "intervened forward of 1 x 5 tokens",
           "memory limit of 1.0 MiB (1048576 bytes)");
    CHECK(vene_intervenable_forward(iv, &c, &e1) == VENE_ERR_MEMORY);
    need = bytes_in(e1.msg);
    vene_intervenable_set_memory_limit(iv, need);
    CHECK_MSG(vene_intervenable_forward(iv, &c, &e1) == VENE_OK, "%s", e1.msg);
    const vene_tensor *o = vene_intervenable_logits(iv, 0), *x = vene_intervenable_logits(iv, 1);
    CHECK(o && x && memcmp(o->data, x->data, sizeof(float) * 5 * 50257) != 0); /* the swap changed something */
    vene_intervenable_free(iv);

    /* a rotation over 100 units: E = 6400, its seeded initialisation alone would take
     * ~800 MB; the call is refused before anything that large is allocated */
    CHECK(vene_intervenable_new(m, "{\"layer\": 1, \"component\": \"block_output\", \"max_number_of_units\": 100, "
                                   "\"intervention_type\": \"RotatedSpaceIntervention\"}", &iv, &e0) == VENE_OK);
    if (!iv) return;
    vene_intervenable_set_memory_limit(iv, (size_t)100 << 20);
    vene_call cr = {.base = &b, .sources = one, .n_sources = 1, .unit_locations = "{\"sources->base\": [0, 1, 2, 3, 4]}"};
    EXPECT("A29", vene_intervenable_forward(iv, &cr, err), VENE_ERR_MEMORY, "intervened forward", "memory limit of 100.0 MiB");
    CHECK(vene_intervenable_forward(iv, &cr, &e1) == VENE_ERR_MEMORY);
    CHECK_MSG(bytes_in(e1.msg) > (size_t)700 << 20, "estimate %zu bytes: %s", bytes_in(e1.msg), e1.msg);
    vene_intervenable_free(iv);
}

/* Saved-intervention folders beyond tests/test_save_load.c's: a config.json with a repeated
 * key (Python would keep the last value, cJSON the first), and one that is a directory. */
static void test_saved_folders(vene_model *m) {
    printf("saved intervention folders:\n");
    vene_intervenable *iv = NULL;
    vene_error e0 = {0};
    CHECK(vene_intervenable_new(m, VANILLA, &iv, &e0) == VENE_OK);
    CHECK(iv && vene_intervenable_save(iv, tpath("dup"), &e0) == VENE_OK);
    vene_intervenable_free(iv);
    iv = NULL;
    FILE *f = fopen(tpath("dup/config.json"), "w");
    if (f) {
        fputs("{\"representations\": [{\"layer\": 1, \"layer\": 3, \"component\": \"block_output\"}], "
              "\"intervention_types\": [\"VanillaIntervention\"]}", f);
        fclose(f);
    }
    EXPECT("A30", vene_intervenable_load(m, tpath("dup"), &iv, err), VENE_ERR_FORMAT, "dup/config.json",
           "\"layer\" appears twice in representations[0]");
    CHECK(iv == NULL);
    mkdir(tpath("isdir"), 0755);
    mkdir(tpath("isdir/config.json"), 0755);
    EXPECT("A31", vene_intervenable_load(m, tpath("isdir"), &iv, err), VENE_ERR_IO, "isdir/config.json", "not a regular file");
    EXPECT("A32", vene_intervenable_save(NULL, tpath("x"), err), VENE_ERR_ARG, "NULL");
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vene_bad_api_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    vene_error err = {0};
    vene_model *m = NULL;
    if (vene_model_load(MODEL_DIR, NULL, &m, &err)) {
        fprintf(stderr, "cannot load %s: %s\n", MODEL_DIR, err.msg);
        return 1;
    }
    test_null_arguments(m);
    test_intervenable_misuse(m);
    test_model_freed_early();
    test_memory_limits(m);
    test_saved_folders(m);
    vene_model_free(m);
    rm_tree(tmpdir);
    TEST_MAIN_END();
}
