/* The causal-model data generator (pyvene's CausalModel): run_forward and run_interchange on
 * hierarchical equality worked by hand, the balanced sampler's distributions, and the errors
 * for unknown variables, out-of-range values, cycles and unrealisable values.
 * Dataset files (JSONL) are checked line by line in test_causal_data.c. */
#include <stdint.h>
#include <string.h>

#include "test.h"
#include "vene.h"

static vene_causal *heq(int objects, int pattern) {
    vene_error err = {0};
    vene_causal *cm = NULL;
    if (vene_causal_hierarchical_equality(4, objects, 7, pattern, &cm, &err))
        fprintf(stderr, "hierarchical equality: %s\n", err.msg);
    return cm;
}

/* Indices of W X Y Z WX YZ O in the equality model (order of addition). */
enum { W, X, Y, Z, WX, YZ, O, NV };

static void test_structure(void) {
    vene_causal *cm = heq(5, 0);
    CHECK(cm && vene_causal_count(cm) == NV);
    const char *names[] = {"W", "X", "Y", "Z", "WX", "YZ", "O"};
    for (int i = 0; i < NV; i++) CHECK(vene_causal_find(cm, names[i]) == i);
    CHECK(vene_causal_find(cm, "WY") == -1);
    for (int i = 0; i < NV; i++) {
        CHECK(vene_causal_is_input(cm, i) == (i <= Z));
        CHECK(vene_causal_is_output(cm, i) == (i == O));
    }
    CHECK(vene_causal_n_values(cm, W) == 5 && vene_causal_n_values(cm, O) == 2);
    CHECK(!strcmp(vene_causal_value_name(cm, WX, 1), "true") && !strcmp(vene_causal_value_name(cm, W, 3), "obj3"));
    CHECK(vene_causal_value_name(cm, WX, 2) == NULL && vene_causal_name(cm, 7) == NULL);
    vene_causal_free(cm);
    cm = heq(5, 1);
    CHECK(cm && vene_causal_find(cm, "WY") == 4 && vene_causal_find(cm, "XZ") == 5 && vene_causal_find(cm, "WX") < 0);
    vene_causal_free(cm);
}

static void test_forward_by_hand(void) {
    vene_causal *cm = heq(5, 0);
    vene_error err = {0};
    int s[NV];
    /* AABC: WX true, YZ false, O = (true == false) = false */
    int c1[NV] = {0, 0, 1, 2, -1, -1, -1};
    CHECK(vene_causal_forward(cm, c1, s, &err) == VENE_OK);
    CHECK(s[WX] == 1 && s[YZ] == 0 && s[O] == 0);
    /* ABCD: false, false -> O true; ABCC: false, true -> O false; AABB: true, true -> true */
    int c2[NV] = {0, 1, 2, 3, -1, -1, -1}, c3[NV] = {0, 1, 2, 2, -1, -1, -1}, c4[NV] = {4, 4, 3, 3, -1, -1, -1};
    CHECK(!vene_causal_forward(cm, c2, s, &err) && s[WX] == 0 && s[YZ] == 0 && s[O] == 1);
    CHECK(!vene_causal_forward(cm, c3, s, &err) && s[WX] == 0 && s[YZ] == 1 && s[O] == 0);
    CHECK(!vene_causal_forward(cm, c4, s, &err) && s[WX] == 1 && s[YZ] == 1 && s[O] == 1);
    /* An intervention clamps WX = true on ABCD: O becomes false; inputs are kept. */
    int c5[NV] = {0, 1, 2, 3, 1, -1, -1};
    CHECK(!vene_causal_forward(cm, c5, s, &err) && s[W] == 0 && s[X] == 1 && s[WX] == 1 && s[YZ] == 0 && s[O] == 0);
    /* Clamping the output wins over its mechanism. */
    int c6[NV] = {0, 1, 2, 3, -1, -1, 0};
    CHECK(!vene_causal_forward(cm, c6, s, &err) && s[O] == 0);
    vene_causal_free(cm);
}

static void test_interchange_by_hand(void) {
    /* pyvene's comment example: base {W: r0, X: r0, Y: r1, Z: r3}, source {r0, r1, r2, r2}. */
    vene_causal *cm = heq(5, 0);
    vene_error err = {0};
    int base[NV] = {0, 0, 1, 3, -1, -1, -1}, src[NV] = {0, 1, 2, 2, -1, -1, -1}, s[NV];
    const int *one[] = {src}, *two[] = {src, src};
    int v_wx[] = {WX}, v_yz[] = {YZ}, v_both[] = {WX, YZ}, v_w[] = {W};
    CHECK(!vene_causal_interchange(cm, base, 0, NULL, NULL, s, &err) && s[O] == 0); /* factual: T vs F */
    /* WX from the source (false): false == false -> true */
    CHECK(!vene_causal_interchange(cm, base, 1, v_wx, one, s, &err) && s[WX] == 0 && s[YZ] == 0 && s[O] == 1);
    /* YZ from the source (true): true == true -> true */
    CHECK(!vene_causal_interchange(cm, base, 1, v_yz, one, s, &err) && s[WX] == 1 && s[YZ] == 1 && s[O] == 1);
    /* both from the source: the source's own output, false */
    CHECK(!vene_causal_interchange(cm, base, 2, v_both, two, s, &err) && s[WX] == 0 && s[YZ] == 1 && s[O] == 0);
    /* an input: W takes the source's W (r0, unchanged) -> still false */
    CHECK(!vene_causal_interchange(cm, base, 1, v_w, one, s, &err) && s[W] == 0 && s[O] == 0);
    /* W from a source whose W is r4: W != X -> WX false -> O true */
    int src2[NV] = {4, 1, 1, 1, -1, -1, -1};
    const int *one2[] = {src2};
    CHECK(!vene_causal_interchange(cm, base, 1, v_w, one2, s, &err) && s[W] == 4 && s[WX] == 0 && s[O] == 1);
    /* Only input entries of base and source are read. */
    int base_junk[NV] = {0, 0, 1, 3, 0, 1, 1};
    CHECK(!vene_causal_interchange(cm, base_junk, 1, v_wx, one, s, &err) && s[O] == 1);
    vene_causal_free(cm);
}

/* Pattern of one equality-model setting: 0 ABCD-like (F, F), 1 AABB (T, T), 2 AACD (T, F),
 * 3 ABCC (F, T). */
static int pattern_of(const int *s) { return s[WX] && s[YZ] ? 1 : s[WX] ? 2 : s[YZ] ? 3 : 0; }

static void test_sampling(void) {
    vene_causal *cm = heq(20, 0);
    vene_error err = {0};
    uint64_t rng = 123;
    int s[NV], counts[4] = {0}, ones = 0, n = 8000, bad = 0;
    /* balanced on O: each of the 4 patterns a quarter (pyvene's tree-balanced draw) */
    for (int i = 0; i < n; i++) {
        if (vene_causal_sample_balanced(cm, -1, -1, &rng, s, &err)) bad++;
        counts[pattern_of(s)]++;
        ones += s[O];
    }
    CHECK_MSG(bad == 0, "%s", err.msg);
    CHECK_MSG(fabs(ones / (double)n - 0.5) < 0.03, "O true share %.4f", ones / (double)n);
    for (int k = 0; k < 4; k++) CHECK_MSG(fabs(counts[k] / (double)n - 0.25) < 0.03, "pattern %d: %d", k, counts[k]);
    /* a requested value of an intermediate is always met; the other side stays free */
    int yz_true = 0;
    for (int i = 0; i < 2000; i++) {
        if (vene_causal_sample_balanced(cm, WX, 1, &rng, s, &err) || s[WX] != 1 || s[W] != s[X]) bad++;
        yz_true += s[YZ];
    }
    CHECK(bad == 0);
    CHECK_MSG(yz_true < 200, "YZ left to uniform inputs is rarely true: %d of 2000", yz_true); /* 1/20 expected */
    /* uniform inputs: W == X one time in 20 */
    int eq = 0;
    for (int i = 0; i < 8000; i++) {
        if (vene_causal_sample_input(cm, &rng, s, &err)) bad++;
        eq += s[WX];
    }
    CHECK(bad == 0);
    CHECK_MSG(fabs(eq / 8000.0 - 0.05) < 0.012, "uniform W == X share %.4f", eq / 8000.0);
    /* the same state gives the same draw */
    uint64_t r1 = 99, r2 = 99;
    int s1[NV], s2[NV];
    CHECK(!vene_causal_sample_balanced(cm, -1, -1, &r1, s1, &err) && !vene_causal_sample_balanced(cm, -1, -1, &r2, s2, &err));
    CHECK(!memcmp(s1, s2, sizeof s1) && r1 == r2);
    vene_causal_free(cm);
}

/* ---------------------------------------------------------------- a model with shared ancestors */

static int copy1(void *u, const int *pv, int *v, vene_error *e) {
    (void)u;
    (void)e;
    *v = pv[0];
    return VENE_OK;
}

static int eq2(void *u, const int *pv, int *v, vene_error *e) {
    (void)u;
    (void)e;
    *v = pv[0] == pv[1];
    return VENE_OK;
}

static int bad_mech(void *u, const int *pv, int *v, vene_error *e) {
    (void)u;
    (void)pv;
    (void)e;
    *v = 7;
    return VENE_OK;
}

static int failing_mech(void *u, const int *pv, int *v, vene_error *e) {
    (void)u;
    (void)pv;
    (void)v;
    e->code = VENE_ERR_FORMAT;
    snprintf(e->msg, sizeof e->msg, "boom");
    return VENE_ERR_FORMAT;
}

static void test_shared_ancestors(void) {
    /* A -> B, A -> C, (B, C) -> D: D is always true, D = false cannot happen although its
     * equivalence class (B != C) is not empty: pyvene's sampler would return a wrong input. */
    vene_causal *cm = NULL;
    vene_error err = {0};
    const char *pa[] = {"A"}, *pbc[] = {"B", "C"};
    CHECK(!vene_causal_new(&cm, &err));
    CHECK(!vene_causal_add(cm, "D", 2, NULL, 2, pbc, eq2, NULL, NULL, &err)); /* parents added later */
    CHECK(!vene_causal_add(cm, "B", 3, NULL, 1, pa, copy1, NULL, NULL, &err));
    CHECK(!vene_causal_add(cm, "C", 3, NULL, 1, pa, copy1, NULL, NULL, &err));
    CHECK(!vene_causal_add(cm, "A", 3, NULL, 0, NULL, NULL, NULL, NULL, &err));
    uint64_t rng = 5;
    int s[4];
    CHECK(!vene_causal_sample_balanced(cm, 0, 1, &rng, s, &err) && s[0] == 1 && s[1] == s[2] && s[3] == s[1]);
    CHECK(vene_causal_sample_balanced(cm, 0, 0, &rng, s, &err) == VENE_ERR_STATE);
    CHECK_MSG(strstr(err.msg, "D = 0 (index 0)") && strstr(err.msg, "shared ancestors"), "%s", err.msg);
    vene_causal_free(cm);
}

static void test_errors(void) {
    vene_causal *cm = NULL;
    vene_error err = {0};
    const char *pxy[] = {"X", "Y"}, *py[] = {"Y"}, *pz[] = {"Z"}, *px[] = {"X"};
    CHECK(!vene_causal_new(&cm, &err));
    CHECK(!vene_causal_add(cm, "X", 2, NULL, 0, NULL, NULL, NULL, NULL, &err));
    CHECK(vene_causal_add(cm, "X", 2, NULL, 0, NULL, NULL, NULL, NULL, &err) == VENE_ERR_ARG);
    CHECK_MSG(strstr(err.msg, "variable X added twice"), "%s", err.msg);
    CHECK(vene_causal_add(cm, "V", 0, NULL, 0, NULL, NULL, NULL, NULL, &err) == VENE_ERR_ARG && strstr(err.msg, "V"));
    CHECK(vene_causal_add(cm, "I", 2, NULL, 0, NULL, eq2, NULL, NULL, &err) == VENE_ERR_ARG);
    CHECK_MSG(strstr(err.msg, "variable I has no parents") && strstr(err.msg, "no mechanism"), "%s", err.msg);
    CHECK(vene_causal_add(cm, "M", 2, NULL, 1, px, NULL, NULL, NULL, &err) == VENE_ERR_ARG && strstr(err.msg, "M has 1"));
    CHECK(vene_causal_add(cm, "S", 2, NULL, 1, (const char *[]){"S"}, copy1, NULL, NULL, &err) == VENE_ERR_ARG);
    CHECK_MSG(strstr(err.msg, "S lists itself"), "%s", err.msg);
    /* unknown parent: named with its child */
    CHECK(!vene_causal_add(cm, "P", 2, NULL, 2, pxy, eq2, NULL, NULL, &err));
    CHECK(vene_causal_check(cm, &err) == VENE_ERR_ARG);
    CHECK_MSG(strstr(err.msg, "variable P: unknown parent Y"), "%s", err.msg);
    /* a cycle Y -> Z -> Y */
    CHECK(!vene_causal_add(cm, "Y", 2, NULL, 1, pz, copy1, NULL, NULL, &err));
    CHECK(!vene_causal_add(cm, "Z", 2, NULL, 1, py, copy1, NULL, NULL, &err));
    CHECK(vene_causal_check(cm, &err) == VENE_ERR_ARG);
    CHECK_MSG(strstr(err.msg, "its own ancestor") && strstr(err.msg, "Y") && strstr(err.msg, "Z <- Y") ,
              "%s", err.msg);
    int s[8], clamp[8] = {0, -1, -1, -1};
    CHECK(vene_causal_forward(cm, clamp, s, &err) == VENE_ERR_ARG && strstr(err.msg, "cycle")); /* lazily checked */
    vene_causal_free(cm);

    /* range errors name the variable, the index and the size */
    cm = heq(5, 0);
    int c[NV] = {0, 5, 1, 2, -1, -1, -1};
    CHECK(vene_causal_forward(cm, c, s, &err) == VENE_ERR_RANGE);
    CHECK_MSG(strstr(err.msg, "X: value index 5 out of range (5 values)"), "%s", err.msg);
    int c2[NV] = {0, 1, 1, 2, 2, -1, -1};
    CHECK(vene_causal_forward(cm, c2, s, &err) == VENE_ERR_RANGE && strstr(err.msg, "WX: value index 2"));
    int c3[NV] = {0, 1, -1, 2, -1, -1, -1};
    CHECK(vene_causal_forward(cm, c3, s, &err) == VENE_ERR_ARG && strstr(err.msg, "input variable Y has no value"));
    int base[NV] = {0, 1, 1, 2, -1, -1, -1}, bad_src[NV] = {0, 9, 1, 2, -1, -1, -1}, v[] = {WX}, vbad[] = {12};
    const int *srcs[] = {bad_src};
    CHECK(vene_causal_interchange(cm, base, 1, v, srcs, s, &err) == VENE_ERR_RANGE);
    CHECK_MSG(strstr(err.msg, "for WX") && strstr(err.msg, "X: value index 9"), "%s", err.msg);
    CHECK(vene_causal_interchange(cm, base, 1, vbad, srcs, s, &err) == VENE_ERR_RANGE && strstr(err.msg, "index 12"));
    uint64_t rng = 1;
    CHECK(vene_causal_sample_balanced(cm, WX, 3, &rng, s, &err) == VENE_ERR_RANGE && strstr(err.msg, "WX: value index 3"));
    CHECK(vene_causal_set_features(cm, WX, 2, (float[]){0, 0, 0, 0}, &err) == VENE_ERR_ARG && strstr(err.msg, "WX"));
    int vars[] = {-1};
    vene_causal_dataset d = {.size = 1, .output = -1, .n_vars = 1, .vars = vars};
    int eb[NV], es[NV];
    vene_causal_example ex = {.base = eb, .sources = es};
    CHECK(vene_causal_sample_example(cm, &d, 0, &ex, &err) == VENE_ERR_RANGE && strstr(err.msg, "index -1"));
    vene_causal_free(cm);

    /* a mechanism out of its range, or failing, is named */
    CHECK(!vene_causal_new(&cm, &err));
    CHECK(!vene_causal_add(cm, "A", 2, NULL, 0, NULL, NULL, NULL, NULL, &err));
    CHECK(!vene_causal_add(cm, "B", 3, NULL, 1, (const char *[]){"A"}, bad_mech, NULL, NULL, &err));
    int ca[2] = {1, -1};
    CHECK(vene_causal_forward(cm, ca, s, &err) == VENE_ERR_RANGE);
    CHECK_MSG(strstr(err.msg, "mechanism of B returned value index 7 (3 values)"), "%s", err.msg);
    CHECK(vene_causal_sample_balanced(cm, 1, 0, &rng, s, &err) == VENE_ERR_RANGE && strstr(err.msg, "mechanism of B"));
    CHECK(!vene_causal_add(cm, "C", 2, NULL, 1, (const char *[]){"A"}, failing_mech, NULL, NULL, &err));
    CHECK(vene_causal_sample_balanced(cm, 2, -1, &rng, s, &err) == VENE_ERR_FORMAT);
    CHECK_MSG(strstr(err.msg, "mechanism of C: boom"), "%s", err.msg);
    /* two outputs (B, C): the output must be named */
    CHECK(vene_causal_sample_balanced(cm, -1, -1, &rng, s, &err) == VENE_ERR_ARG && strstr(err.msg, "2 outputs (B, C)"));
    vene_causal_free(cm);
    CHECK(vene_causal_hierarchical_equality(4, 1, 0, 0, &cm, &err) == VENE_ERR_RANGE && !cm && strstr(err.msg, "1 objects"));
    CHECK(vene_causal_hierarchical_equality(1, 300, 0, 0, &cm, &err) == VENE_ERR_ARG && !cm && strstr(err.msg, "300"));
}

int main(void) {
    test_structure();
    test_forward_by_hand();
    test_interchange_by_hand();
    test_sampling();
    test_shared_ancestors();
    test_errors();
    TEST_MAIN_END();
}
