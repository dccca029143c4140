/* Datasets written by the causal-model generator: every line of a factual and of a
 * counterfactual hierarchical-equality file is re-derived from its own floats (objects are
 * equal when their vectors are), label balance, determinism for a seed, custom encoders
 * (ids, text, labels), and the atomic write (nothing left behind on failure). */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <stdint.h>
#include <string.h>

#include "test.h"
#include "test_tmp.h"
#include "vene.h"

/* The 16 floats of an {"embeds": [[...]]} input; 0 if malformed. */
static int embeds16(const cJSON *in, float *v) {
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(in, "embeds");
    if (!cJSON_IsArray(rows) || cJSON_GetArraySize(rows) != 1) return 0;
    const cJSON *row = cJSON_GetArrayItem(rows, 0);
    if (cJSON_GetArraySize(row) != 16) return 0;
    for (int i = 0; i < 16; i++) v[i] = (float)cJSON_GetArrayItem(row, i)->valuedouble;
    return 1;
}

/* Are objects a and b (0..3 = W X Y Z) the same vector? */
static int same(const float *v, int a, int b) { return !memcmp(v + 4 * a, v + 4 * b, 4 * sizeof(float)); }

typedef struct stats {
    int lines, bad, ones, per_id[3], src_true[2], src_n[2];
    int block_bad;
} stats;

/* Check one counterfactual line against the model (pattern: WY, XZ instead of WX, YZ). */
static void check_cf_line(const cJSON *ex, int pattern, int block, int index, stats *st, int *block_mask) {
    int a0 = 0, b0 = 1, a1 = 2, b1 = 3; /* WX: W, X; YZ: Y, Z */
    if (pattern) b0 = 2, a1 = 1;        /* WY: W, Y; XZ: X, Z */
    float base[16], src[2][16];
    const cJSON *srcs = cJSON_GetObjectItemCaseSensitive(ex, "sources");
    if (!embeds16(cJSON_GetObjectItemCaseSensitive(ex, "base"), base) || cJSON_GetArraySize(srcs) != 2) {
        st->bad++;
        return;
    }
    int present[2], mid[2] = {same(base, a0, b0), same(base, a1, b1)};
    int mask = 0, base_mid[2] = {mid[0], mid[1]};
    for (int k = 0; k < 2; k++) {
        const cJSON *s = cJSON_GetArrayItem(srcs, k);
        present[k] = !cJSON_IsNull(s);
        if (!present[k]) continue;
        if (!embeds16(s, src[k])) {
            st->bad++;
            return;
        }
        mask |= 1 << k;
        mid[k] = k == 0 ? same(src[k], a0, b0) : same(src[k], a1, b1);
        st->src_true[k] += mid[k];
        st->src_n[k]++;
    }
    int label = cJSON_GetObjectItemCaseSensitive(ex, "label")->valueint;
    int base_label = cJSON_GetObjectItemCaseSensitive(ex, "base_label")->valueint;
    int id = cJSON_GetObjectItemCaseSensitive(ex, "intervention_id")->valueint;
    if (label != (mid[0] == mid[1]) || base_label != (base_mid[0] == base_mid[1]) || id != mask - 1) st->bad++;
    if (index % block == 0) *block_mask = mask;
    else if (mask != *block_mask) st->block_bad++;
    st->ones += label;
    if (id >= 0 && id < 3) st->per_id[id]++;
    st->lines++;
}

static void check_cf_file(const char *path, int pattern, int block, stats *st) {
    memset(st, 0, sizeof *st);
    char *text = test_read_file(path, NULL);
    CHECK(text != NULL);
    int index = 0, block_mask = 0;
    for (char *save = NULL, *line = text ? strtok_r(text, "\n", &save) : NULL; line;
         line = strtok_r(NULL, "\n", &save), index++) {
        cJSON *ex = cJSON_Parse(line);
        if (!ex) st->bad++;
        else check_cf_line(ex, pattern, block, index, st, &block_mask);
        cJSON_Delete(ex);
    }
    free(text);
}

static int write_heq(const char *path, int objects, uint64_t seed, int pattern, int n_vars, const int *vars,
                     int subsets, int block, int64_t size, vene_error *err) {
    vene_causal *cm = NULL;
    int rc = vene_causal_hierarchical_equality(4, objects, 11, pattern, &cm, err);
    vene_causal_dataset d = {.size = size, .seed = seed, .output = -1, .balanced = 1, .n_vars = n_vars,
                             .vars = vars, .subsets = subsets, .block = block};
    if (!rc) rc = vene_causal_write_jsonl(cm, &d, path, err);
    vene_causal_free(cm);
    return rc;
}

static void test_counterfactual_files(void) {
    vene_error err = {0};
    int wx_yz[] = {4, 5}; /* WX, YZ (or WY, XZ in the pattern model) */
    stats st;
    CHECK_MSG(!write_heq(tpath("cf.jsonl"), 6, 1, 0, 2, wx_yz, 1, 3, 3000, &err), "%s", err.msg);
    check_cf_file(tpath("cf.jsonl"), 0, 3, &st);
    CHECK_MSG(st.lines == 3000 && st.bad == 0 && st.block_bad == 0, "%d lines, %d bad, %d block", st.lines, st.bad,
              st.block_bad);
    CHECK_MSG(fabs(st.ones / 3000.0 - 0.5) < 0.04, "counterfactual label 1 share %.4f", st.ones / 3000.0);
    for (int k = 0; k < 3; k++) CHECK_MSG(fabs(st.per_id[k] / 3000.0 - 1 / 3.0) < 0.05, "id %d: %d", k, st.per_id[k]);
    for (int k = 0; k < 2; k++) /* balanced sources: the intervened variable is true half the time */
        CHECK_MSG(fabs(st.src_true[k] / (double)st.src_n[k] - 0.5) < 0.06, "source %d true %d of %d", k,
                  st.src_true[k], st.src_n[k]);
    /* the control: WY, XZ of the pattern model */
    CHECK_MSG(!write_heq(tpath("ctl.jsonl"), 6, 2, 1, 2, wx_yz, 1, 1, 2000, &err), "%s", err.msg);
    check_cf_file(tpath("ctl.jsonl"), 1, 1, &st);
    CHECK_MSG(st.lines == 2000 && st.bad == 0, "control: %d lines, %d bad", st.lines, st.bad);
    CHECK_MSG(fabs(st.ones / 2000.0 - 0.5) < 0.04, "control label 1 share %.4f", st.ones / 2000.0);
    /* one variable, no subsets: always a source, intervention_id 0 */
    int yz[] = {5, 4};
    CHECK(!write_heq(tpath("yz.jsonl"), 6, 3, 0, 1, yz, 0, 1, 300, &err));
    char *text = test_read_file(tpath("yz.jsonl"), NULL);
    int lines = 0, ok = 1;
    for (char *save = NULL, *l = text ? strtok_r(text, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
        cJSON *ex = cJSON_Parse(l);
        const cJSON *s = cJSON_GetObjectItemCaseSensitive(ex, "sources");
        float b[16], v[16];
        ok &= cJSON_GetArraySize(s) == 1 && embeds16(cJSON_GetObjectItemCaseSensitive(ex, "base"), b) &&
              embeds16(cJSON_GetArrayItem(s, 0), v) &&
              cJSON_GetObjectItemCaseSensitive(ex, "intervention_id")->valueint == 0 &&
              cJSON_GetObjectItemCaseSensitive(ex, "label")->valueint == (same(b, 0, 1) == same(v, 2, 3));
        cJSON_Delete(ex);
        lines++;
    }
    free(text);
    CHECK(lines == 300 && ok);
}

static void test_factual_file(void) {
    vene_error err = {0};
    CHECK(!write_heq(tpath("f.jsonl"), 20, 4, 0, 0, NULL, 0, 1, 4000, &err));
    char *text = test_read_file(tpath("f.jsonl"), NULL);
    int lines = 0, bad = 0, ones = 0, pat[4] = {0};
    for (char *save = NULL, *l = text ? strtok_r(text, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save)) {
        cJSON *ex = cJSON_Parse(l);
        float b[16];
        if (!ex || !embeds16(cJSON_GetObjectItemCaseSensitive(ex, "base"), b) || cJSON_GetArraySize(ex) != 2) {
            bad++;
        } else {
            int wx = same(b, 0, 1), yz = same(b, 2, 3), label = cJSON_GetObjectItemCaseSensitive(ex, "label")->valueint;
            bad += label != (wx == yz);
            ones += label;
            pat[wx * 2 + yz]++;
        }
        cJSON_Delete(ex);
        lines++;
    }
    free(text);
    CHECK_MSG(lines == 4000 && bad == 0, "%d lines, %d bad", lines, bad);
    CHECK_MSG(fabs(ones / 4000.0 - 0.5) < 0.03, "factual label 1 share %.4f", ones / 4000.0);
    for (int k = 0; k < 4; k++) CHECK_MSG(fabs(pat[k] / 4000.0 - 0.25) < 0.03, "pattern %d: %d", k, pat[k]);
}

static void test_determinism(void) {
    vene_error err = {0};
    int v[] = {4, 5};
    CHECK(!write_heq(tpath("a.jsonl"), 20, 9, 0, 2, v, 1, 4, 500, &err));
    CHECK(!write_heq(tpath("b.jsonl"), 20, 9, 0, 2, v, 1, 4, 500, &err));
    CHECK(!write_heq(tpath("c.jsonl"), 20, 10, 0, 2, v, 1, 4, 500, &err));
    size_t na, nb, nc;
    char *a = test_read_file(tpath("a.jsonl"), &na), *b = test_read_file(tpath("b.jsonl"), &nb), *c = test_read_file(tpath("c.jsonl"), &nc);
    CHECK(a && b && c && na == nb && na > 0 && !memcmp(a, b, na));
    CHECK(a && c && (na != nc || memcmp(a, c, na)));
    /* example i depends only on (seed, i): a shorter file is a prefix */
    CHECK(!write_heq(tpath("d.jsonl"), 20, 9, 0, 2, v, 1, 4, 100, &err));
    size_t nd;
    char *d = test_read_file(tpath("d.jsonl"), &nd);
    CHECK(d && a && nd < na && !memcmp(a, d, nd));
    /* and the in-memory example agrees with the file: line 0's labels */
    vene_causal *cm = NULL;
    CHECK(!vene_causal_hierarchical_equality(4, 20, 11, 0, &cm, &err));
    vene_causal_dataset ds = {.size = 500, .seed = 9, .output = -1, .balanced = 1, .n_vars = 2, .vars = v,
                              .subsets = 1, .block = 4};
    int base[7], src[14];
    vene_causal_example ex = {.base = base, .sources = src};
    CHECK(!vene_causal_sample_example(cm, &ds, 0, &ex, &err));
    char want[96];
    snprintf(want, sizeof want, "\"label\": %d, \"base_label\": %d, \"intervention_id\": %d}\n", ex.label,
             ex.base_label, ex.intervention_id);
    char *nl = a ? strchr(a, '\n') : NULL;
    CHECK(nl && (size_t)(nl + 1 - a) > strlen(want) && !strncmp(nl + 1 - strlen(want), want, strlen(want)));
    vene_causal_free(cm);
    free(a);
    free(b);
    free(c);
    free(d);
}

/* ---------------------------------------------------------------- custom encoders */

static int add2(void *u, const int *pv, int *v, vene_error *e) {
    (void)u;
    (void)e;
    *v = pv[0] + pv[1];
    return VENE_OK;
}

static int enc_ids(void *user, const vene_causal *cm, const int *s, vene_causal_input *in, vene_error *err) {
    (void)user;
    (void)cm;
    int32_t ids[3] = {100 + s[0], 7, 200 + s[1]};
    return vene_causal_input_ids(in, ids, 3, err);
}

static int enc_text(void *user, const vene_causal *cm, const int *s, vene_causal_input *in, vene_error *err) {
    int *fail_at = user;
    if (*fail_at >= 0 && (*fail_at)-- == 0) {
        err->code = VENE_ERR_FORMAT;
        snprintf(err->msg, sizeof err->msg, "encoder gave up");
        return VENE_ERR_FORMAT;
    }
    int rc = vene_causal_input_text(in, vene_causal_value_name(cm, 0, s[0]), err);
    if (!rc) rc = vene_causal_input_text(in, " \"plus\"\n", err);
    if (!rc) rc = vene_causal_input_text(in, vene_causal_value_name(cm, 1, s[1]), err);
    return rc;
}

static int enc_mixed(void *user, const vene_causal *cm, const int *s, vene_causal_input *in, vene_error *err) {
    (void)user;
    (void)cm;
    (void)s;
    int32_t id = 1;
    int rc = vene_causal_input_text(in, "x", err);
    return rc ? rc : vene_causal_input_ids(in, &id, 1, err);
}

static int dir_entries(const char *path) {
    DIR *d = opendir(path);
    int n = 0;
    for (struct dirent *e; d && (e = readdir(d));) n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
    if (d) closedir(d);
    return n;
}

static void test_encoders_and_atomic_write(void) {
    vene_causal *cm = NULL;
    vene_error err = {0};
    const char *digits[] = {"0", "1", "2"}, *p[] = {"A", "B"};
    CHECK(!vene_causal_new(&cm, &err));
    CHECK(!vene_causal_add(cm, "A", 3, digits, 0, NULL, NULL, NULL, NULL, &err));
    CHECK(!vene_causal_add(cm, "B", 3, digits, 0, NULL, NULL, NULL, NULL, &err));
    CHECK(!vene_causal_add(cm, "S", 5, NULL, 2, p, add2, NULL, NULL, &err));
    CHECK(!vene_causal_set_labels(cm, 2, (int[]){15, 16, 17, 18, 19}, &err)); /* e.g. token ids of "0".."4" */
    vene_causal_dataset d = {.size = 40, .seed = 3, .output = -1, .balanced = 1};
    /* no features, no encoder: the error names the input */
    CHECK(vene_causal_write_jsonl(cm, &d, tpath("none.jsonl"), &err) == VENE_ERR_STATE);
    CHECK_MSG(strstr(err.msg, "example 0") && strstr(err.msg, "input variable A has no features"), "%s", err.msg);
    vene_causal_set_encoder(cm, enc_ids, NULL);
    CHECK_MSG(!vene_causal_write_jsonl(cm, &d, tpath("ids.jsonl"), &err), "%s", err.msg);
    char *t = test_read_file(tpath("ids.jsonl"), NULL);
    int lines = 0, ok = 1;
    for (char *save = NULL, *l = t ? strtok_r(t, "\n", &save) : NULL; l; l = strtok_r(NULL, "\n", &save), lines++) {
        int a, b, label;
        ok &= sscanf(l, "{\"base\": {\"ids\": [%d, 7, %d]}, \"label\": %d}", &a, &b, &label) == 3 &&
              label == 15 + (a - 100) + (b - 200);
    }
    free(t);
    CHECK(lines == 40 && ok);
    int fail_at = -1;
    vene_causal_set_encoder(cm, enc_text, &fail_at);
    int vars[] = {0};
    vene_causal_dataset dc = {.size = 5, .seed = 3, .output = 2, .balanced = 1, .n_vars = 1, .vars = vars};
    CHECK_MSG(!vene_causal_write_jsonl(cm, &dc, tpath("text.jsonl"), &err), "%s", err.msg);
    t = test_read_file(tpath("text.jsonl"), NULL);
    cJSON *first = t ? cJSON_Parse(t) : NULL; /* the first line; parsing stops at the newline */
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(first, "base"), "text");
    CHECK(cJSON_IsString(text) && strlen(text->valuestring) == 10 && !strncmp(text->valuestring + 1, " \"plus\"\n", 8));
    CHECK(t && strstr(t, "\\\"plus\\\"\\n"));
    cJSON_Delete(first);
    /* failing at the 4th encoded input: error names the example; the old file stays intact */
    size_t n_before;
    char *before = test_read_file(tpath("text.jsonl"), &n_before);
    int entries = dir_entries(tmpdir);
    fail_at = 3;
    CHECK(vene_causal_write_jsonl(cm, &dc, tpath("text.jsonl"), &err) == VENE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "text.jsonl: example 1") && strstr(err.msg, "encoder gave up"), "%s", err.msg);
    size_t n_after;
    char *after = test_read_file(tpath("text.jsonl"), &n_after);
    CHECK(before && after && n_before == n_after && !memcmp(before, after, n_before));
    CHECK(dir_entries(tmpdir) == entries); /* no temporary file left */
    free(before);
    free(after);
    free(t);
    /* one kind per input */
    vene_causal_set_encoder(cm, enc_mixed, NULL);
    CHECK(vene_causal_write_jsonl(cm, &d, tpath("mixed.jsonl"), &err) == VENE_ERR_ARG && strstr(err.msg, "one kind"));
    CHECK(vene_causal_write_jsonl(cm, &d, "/nonexistent-dir/x.jsonl", &err) == VENE_ERR_IO &&
          strstr(err.msg, "/nonexistent-dir/x.jsonl"));
    CHECK(dir_entries(tmpdir) == entries);
    vene_causal_free(cm);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vene_causal_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_counterfactual_files();
    test_factual_file();
    test_determinism();
    test_encoders_and_atomic_write();
    rm_tree(tmpdir);
    TEST_MAIN_END();
}
