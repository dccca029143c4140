/* Architectures registered from outside the library (vene.h "user-defined
 * architectures"), with the tanh MLP of examples/tanh_mlp.h: registry validation,
 * loading through a registry only, an interchange and a Collect against a hand
 * computation, hooks and VENE_STOP on a registered model, pyvene's dimension proposals,
 * and a forward that misuses the API. */
#include <cjson/cJSON.h>
#include <unistd.h>

#include "../examples/tanh_mlp.h"
#include "test.h"
#include "test_tmp.h"

#define L 2
#define D 4

static float W[L * D * D], Bv[L * D];

static void layer_by_hand(int l, const float *x, float *out) {
    for (int i = 0; i < D; i++) {
        double s = Bv[l * D + i];
        for (int j = 0; j < D; j++) s += (double)W[(l * D + i) * D + j] * x[j];
        out[i] = (float)tanh(s);
    }
}

static void check_registry_validation(void) {
    vene_error err = {0};
    vene_registry *r = NULL;
    CHECK(vene_registry_new(&r, &err) == VENE_OK);
    CHECK(vene_registry_add(r, &tanh_mlp_spec, &err) == VENE_OK);
    CHECK(vene_registry_add(r, &tanh_mlp_spec, &err) == VENE_ERR_ARG && strstr(err.msg, "already in this registry"));
    vene_arch_spec s = tanh_mlp_spec;
    s.model_type = "other";
    vene_site_info sites[TM_N_SITES];
    memcpy(sites, tanh_mlp_sites, sizeof sites);
    s.sites = sites;
    const char *bad_paths[] = {"h[%s]", "h.%d", "h[%d].x[%d]", "h[%d].", "[0].h[%d]"};
    for (int i = 0; i < 5; i++) {
        sites[1].path = bad_paths[i];
        CHECK_MSG(vene_registry_add(r, &s, &err) == VENE_ERR_ARG && strstr(err.msg, "sites[1]"), "path %s: %s",
                  bad_paths[i], err.msg);
    }
    sites[1].path = "h[%d]"; /* same path and kind as sites[0] */
    CHECK(vene_registry_add(r, &s, &err) == VENE_ERR_ARG && strstr(err.msg, "repeats"));
    memcpy(sites, tanh_mlp_sites, sizeof sites);
    vene_component_spec comps[3];
    memcpy(comps, tanh_mlp_components, sizeof comps);
    s.components = comps;
    const char *bad_dims[] = {"h_dim**2", "", "h_dim|", "h_dim.", "3+4"};
    for (int i = 0; i < 5; i++) {
        comps[2].dim = bad_dims[i];
        CHECK_MSG(vene_registry_add(r, &s, &err) == VENE_ERR_ARG && strstr(err.msg, "mlp_activation"), "dim \"%s\"",
                  bad_dims[i]);
    }
    comps[2].dim = "h_dim";
    comps[2].site = "h[%d].nope";
    CHECK(vene_registry_add(r, &s, &err) == VENE_ERR_ARG && strstr(err.msg, "components[2]"));
    comps[2].site = "h[%d].act";
    comps[2].is_input = 0;
    comps[1].name = "block_input"; /* a repeated name */
    CHECK(vene_registry_add(r, &s, &err) == VENE_ERR_ARG && strstr(err.msg, "twice"));
    comps[1].name = "block_output";
    s.forward = NULL;
    CHECK(vene_registry_add(r, &s, &err) == VENE_ERR_ARG && strstr(err.msg, "required"));
    s.forward = tanh_mlp_spec.forward;
    CHECK(vene_registry_add(r, &s, &err) == VENE_OK); /* now valid, and copied: */
    memset(sites, 0, sizeof sites);
    memset(comps, 0, sizeof comps);
    vene_registry_free(r);
}

/* Interchange at block_output of layer 0 plus a Collect at layer 1's mlp_activation,
 * against the hand computation. */
static void check_intervention(const vene_model *m) {
    vene_error err = {0};
    vene_intervenable *iv = NULL;
    int rc = vene_intervenable_new(
        m,
        "{\"representations\": [{\"layer\": 0, \"component\": \"block_output\", \"intervention_type\": "
        "\"VanillaIntervention\"}, {\"layer\": 1, \"component\": \"mlp_activation\", \"intervention_type\": "
        "\"CollectIntervention\"}]}",
        &iv, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc) return;
    float bx[3 * D], sx[3 * D];
    for (int i = 0; i < 3 * D; i++) {
        bx[i] = (float)((i * 7) % 11) / 5.0f - 1.0f;
        sx[i] = (float)((i * 5) % 13) / 6.0f - 1.0f;
    }
    /* 1 example x 3 positions; swap position 2 only */
    vene_batch base = {.batch = 1, .seq = 3, .embeds = bx}, src = {.batch = 1, .seq = 3, .embeds = sx};
    const vene_batch *sources[] = {&src};
    vene_call call = {.base = &base, .sources = sources, .n_sources = 1, .unit_locations = "{\"sources->base\": 2}",
                      .output_original = 1};
    rc = vene_intervenable_forward(iv, &call, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    const vene_tensor *orig = vene_intervenable_last_hidden(iv, 0), *after = vene_intervenable_last_hidden(iv, 1);
    const vene_tensor *col = vene_intervenable_collected(iv, 0);
    CHECK(orig && after && col && vene_tensor_numel(after) == 3 * D && vene_tensor_numel(col) == D);
    if (!orig || !after || !col || vene_tensor_numel(col) != D) {
        vene_intervenable_free(iv);
        return;
    }
    float want_orig[3 * D], want_after[3 * D], h[D];
    for (int p = 0; p < 3; p++) {
        layer_by_hand(0, (p == 2 ? sx : bx) + p * D, h); /* position 2 takes the source's layer-0 output */
        layer_by_hand(1, h, want_after + p * D);
        layer_by_hand(0, bx + p * D, h);
        layer_by_hand(1, h, want_orig + p * D);
    }
    CHECK_CLOSE(orig->data, want_orig, 3 * D, 1e-6, "original output");
    CHECK_CLOSE(after->data, want_after, 3 * D, 1e-6, "intervened output");
    CHECK_CLOSE(col->data, want_after + 2 * D, D, 1e-6, "collected layer-1 activation at position 2");
    /* positions 0 and 1 are untouched */
    CHECK_CLOSE(after->data, orig->data, 2 * D, 0, "unswapped positions");
    printf("interchange + collect on tanh_mlp: intervened[2] = [%.6f %.6f %.6f %.6f], by hand [%.6f %.6f %.6f %.6f]\n",
           after->data[8], after->data[9], after->data[10], after->data[11], want_after[8], want_after[9],
           want_after[10], want_after[11]);
    vene_intervenable_free(iv);
}

static int stop_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)where;
    (void)err;
    ++*(int *)user;
    for (int64_t i = 0; i < vene_tensor_numel(t); i++) t->data[i] = 0.5f;
    return VENE_STOP;
}

static void check_hooks(const vene_model *m) {
    vene_error err = {0};
    vene_run *rs = NULL;
    CHECK(vene_run_new(m, &rs, &err) == VENE_OK);
    int site = -1, layer = -1, calls = 0;
    CHECK(vene_model_find_site(m, "h[0].act.output", &site, &layer, &err) == VENE_OK && site == TM_ACT_OUT &&
          layer == 0);
    int64_t shape[VENE_MAX_DIMS];
    CHECK(vene_model_site_shape(m, site, 2, 5, shape) == 3 && shape[0] == 2 && shape[1] == 5 && shape[2] == D);
    CHECK(vene_run_add_hook(rs, site, 0, stop_hook, &calls, &err) == VENE_OK);
    float x[D] = {0.1f, 0.2f, 0.3f, 0.4f};
    vene_batch b = {.batch = 1, .seq = 1, .embeds = x};
    CHECK(vene_forward(rs, &b, &err) == VENE_STOP && calls == 1);
    int32_t ids[1] = {0};
    vene_batch bad = {.batch = 1, .seq = 1, .ids = ids};
    CHECK(vene_forward(rs, &bad, &err) != VENE_OK); /* no vocabulary: ids are out of range */
    vene_run_free(rs);
}

/* A forward that misuses the API, chosen by *user. */
static int misuse_forward(void *user, vene_run *rs, const vene_batch *in, vene_error *err) {
    int mode = *(int *)user;
    float *p = vene_run_scratch(rs, mode == 2 ? 1u << 20 : 16, err);
    if (!p) return err->code;
    vene_tensor t = {p, 3, {1, 1, D}};
    (void)in;
    if (mode == 0) return vene_fire(rs, 99, 0, &t, err);
    if (mode == 1) return vene_fire(rs, TM_LAYER_IN, 7, &t, err);
    return VENE_OK; /* mode 3: no vene_run_set_outputs */
}

static void check_misuse(const char *dir) {
    vene_error err = {0};
    int mode = 0;
    vene_arch_spec s = tanh_mlp_spec;
    s.forward = misuse_forward;
    s.user = &mode;
    vene_registry *r = NULL;
    vene_model *m = NULL;
    vene_run *rs = NULL;
    CHECK(vene_registry_new(&r, &err) == VENE_OK && vene_registry_add(r, &s, &err) == VENE_OK);
    CHECK(vene_model_load_with(r, dir, NULL, &m, &err) == VENE_OK && vene_run_new(m, &rs, &err) == VENE_OK);
    float x[D] = {0};
    vene_batch b = {.batch = 1, .seq = 1, .embeds = x};
    const int want[4] = {VENE_ERR_ARG, VENE_ERR_RANGE, VENE_ERR_MEMORY, VENE_ERR_STATE};
    const char *needle[4] = {"site 99", "layer 7", "scratch_floats", "vene_run_set_outputs"};
    for (mode = 0; rs && mode < 4; mode++) {
        int rc = vene_forward(rs, &b, &err);
        CHECK_MSG(rc == want[mode] && strstr(err.msg, needle[mode]), "mode %d: %s %s", mode, vene_status_name(rc),
                  err.msg);
    }
    vene_run_free(rs);
    vene_model_free(m);
    vene_registry_free(r);
}

/* pyvene's dimension proposals: the first that resolves wins, left to right. */
static void check_dims(const char *dir) {
    vene_error err = {0};
    vene_component_spec comps[3];
    memcpy(comps, tanh_mlp_components, sizeof comps);
    comps[2].dim = "missing_key*2|h_dim*6/4"; /* 4 * 6 / 4 = 6 */
    vene_arch_spec s = tanh_mlp_spec;
    s.components = comps;
    vene_registry *r = NULL;
    vene_model *m = NULL;
    vene_intervenable *iv = NULL;
    CHECK(vene_registry_new(&r, &err) == VENE_OK && vene_registry_add(r, &s, &err) == VENE_OK);
    CHECK(vene_model_load_with(r, dir, NULL, &m, &err) == VENE_OK);
    CHECK(m && vene_intervenable_new(m, "{\"layer\": 1, \"component\": \"mlp_activation\"}", &iv, &err) == VENE_OK);
    char *text = iv ? vene_intervenable_describe(iv) : NULL;
    cJSON *j = text ? cJSON_Parse(strchr(text, '{')) : NULL;
    const cJSON *d0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(j, "intervention_dimensions"), 0);
    CHECK_MSG(cJSON_IsNumber(d0) && d0->valuedouble == 6, "%s", text ? text : "(no description)");
    cJSON_Delete(j);
    vene_free(text);
    vene_intervenable_free(iv);
    vene_model_free(m);
    vene_registry_free(r);
    /* nothing resolves: the load names the component */
    comps[2].dim = "width|hidden_size";
    CHECK(vene_registry_new(&r, &err) == VENE_OK && vene_registry_add(r, &s, &err) == VENE_OK);
    m = NULL;
    CHECK(vene_model_load_with(r, dir, NULL, &m, &err) == VENE_ERR_FORMAT && strstr(err.msg, "mlp_activation") && !m);
    vene_registry_free(r);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vene-addtype-XXXXXX");
    if (!mkdtemp(tmpdir)) return fprintf(stderr, "mkdtemp failed\n"), 1;
    for (int i = 0; i < L * D * D; i++) W[i] = (float)((i * 37) % 17 - 8) / 8.0f;
    for (int i = 0; i < L * D; i++) Bv[i] = (float)((i * 5) % 7 - 3) / 10.0f;
    char dir[512];
    snprintf(dir, sizeof dir, "%s", tpath("model"));
    CHECK(mkdir(dir, 0755) == 0 && tanh_mlp_write(dir, L, D, W, Bv) == 0);
    check_registry_validation();

    vene_error err = {0};
    vene_model *m = NULL;
    CHECK(vene_model_load(dir, NULL, &m, &err) == VENE_ERR_UNSUPPORTED && strstr(err.msg, "tanh_mlp"));
    CHECK(vene_model_load_with(NULL, dir, NULL, &m, &err) == VENE_ERR_UNSUPPORTED);
    vene_registry *reg = NULL;
    CHECK(vene_registry_new(&reg, &err) == VENE_OK && vene_registry_add(reg, &tanh_mlp_spec, &err) == VENE_OK);
    CHECK(vene_model_load_with(reg, dir, "OtherClass", &m, &err) == VENE_ERR_UNSUPPORTED);
    int rc = vene_model_load_with(reg, dir, NULL, &m, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc == VENE_OK) {
        vene_model_info info;
        vene_model_get_info(m, &info);
        CHECK(!strcmp(info.model_type, "tanh_mlp") && !strcmp(info.model_class, "TanhMLP") && info.n_layer == L &&
              info.d_model == D && info.n_params == L * (D * D + D) && !info.has_lm_head);
        CHECK(vene_model_site_count(m) == TM_N_SITES && vene_model_impl(m) != NULL);
        check_intervention(m);
        check_hooks(m);
        vene_model_free(m);
    }
    vene_model *gpt2 = NULL;
    CHECK(vene_model_load_with(reg, "fixtures/models/gpt2-tiny", NULL, &gpt2, &err) == VENE_OK); /* built-ins too */
    CHECK(gpt2 && vene_model_impl(gpt2) == NULL);
    vene_model_free(gpt2);
    vene_registry_free(reg);
    check_misuse(dir);
    check_dims(dir);
    rm_tree(tmpdir);
    TEST_MAIN_END();
}
