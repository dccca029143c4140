/* The LLaMA family (Mistral, Qwen2, Gemma, Llama 3 and dynamic rope scaling) and GPT-NeoX
 * against plain-PyTorch references of transformers 4.43 (tools/make_family_fixtures.py):
 * every hook site of every layer, the final hidden state and the logits, on a batch of
 * two rows, the second left-padded. Then the component tables (GQA widths, Gemma's
 * head_dim, GPT-NeoX heads) through CollectInterventions, default positions, and
 * config errors.
 *
 * Tolerance: |got - want| <= 1e-4 * max(1, max|want|) per tensor, over every element
 * (pad positions too: the references reproduce each family's literal mask arithmetic). */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>

#include "io/safetensors.h"
#include "test.h"
#include "test_tmp.h"
#include "vene.h"

#define TOL 1e-4
#define MAX_CAPS 160

static const char *const MODELS[] = {"mistral-tiny", "qwen2-tiny",  "gemma-tiny",   "llama3-tiny",
                                     "llama-dynamic", "pythia-tiny", "neox-seq-tiny"};

typedef struct capture {
    char name[128];
    float *data;
    int64_t numel;
    int fired, site, ndim;
    int64_t shape[VENE_MAX_DIMS];
} capture;

static int capture_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)where;
    (void)err;
    capture *c = user;
    if (c->fired++ == 0) {
        c->numel = vene_tensor_numel(t);
        c->ndim = t->ndim;
        memcpy(c->shape, t->shape, sizeof c->shape);
        c->data = malloc(sizeof(float) * (size_t)c->numel);
        if (!c->data) return VENE_ERR_MEMORY;
        memcpy(c->data, t->data, sizeof(float) * (size_t)c->numel);
    }
    return VENE_OK;
}

static float *ref_f32(const st_file *f, const char *name, int64_t *numel) {
    const st_tensor *t = st_find(f, name);
    if (!t) return NULL;
    float *d = malloc(sizeof(float) * (size_t)t->numel);
    vene_error err = {0};
    if (d && st_to_f32(t, d, &err) != VENE_OK) {
        free(d);
        return NULL;
    }
    *numel = t->numel;
    return d;
}

typedef struct worst {
    double abs, rel;
    char name[128];
} worst;

/* Compare n floats with the tolerance; keep the worst (relative to the tolerance scale). */
static void compare(worst *w, const char *name, const float *got, const float *want, int64_t n) {
    double scale = 1, d = 0;
    for (int64_t i = 0; i < n; i++)
        if (fabs((double)want[i]) > scale) scale = fabs((double)want[i]);
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - (double)want[i]);
        if (!(e <= d)) d = e; /* NaN sticks */
    }
    CHECK_MSG(d <= TOL * scale, "%s: max |diff| %.3g > %.3g", name, d, TOL * scale);
    if (!(d / scale <= w->rel) || !w->name[0]) {
        w->rel = d / scale;
        w->abs = d;
        snprintf(w->name, sizeof w->name, "%s", name);
    }
}

typedef struct ref_inputs {
    int B, S;
    int32_t ids[64], pos[64];
    uint8_t mask[64];
} ref_inputs;

static int read_inputs(const st_file *f, ref_inputs *in) {
    const st_tensor *t = st_find(f, "input_ids");
    if (!t || t->ndim != 2 || t->numel > 64) return 0;
    in->B = (int)t->shape[0];
    in->S = (int)t->shape[1];
    int64_t v[64];
    vene_error err = {0};
    const char *names[3] = {"input_ids", "attention_mask", "position_ids"};
    for (int k = 0; k < 3; k++) {
        const st_tensor *u = st_find(f, names[k]);
        if (!u || u->numel != t->numel || st_to_i64(u, v, &err)) return 0;
        for (int64_t i = 0; i < t->numel; i++) {
            if (k == 0) in->ids[i] = (int32_t)v[i];
            else if (k == 1) in->mask[i] = (uint8_t)(v[i] != 0);
            else in->pos[i] = (int32_t)v[i];
        }
    }
    return 1;
}

/* Every site of every layer against the reference; returns the worst difference. */
static void check_model(const char *name) {
    char dir[256], ref[256];
    snprintf(dir, sizeof dir, "fixtures/models/%s", name);
    snprintf(ref, sizeof ref, "fixtures/%s_ref.safetensors", name);
    vene_error err = {0};
    vene_model *m = NULL;
    st_file *f = NULL;
    vene_run *rs = NULL;
    int rc = vene_model_load(dir, NULL, &m, &err);
    CHECK_MSG(rc == VENE_OK, "%s: %s", name, err.msg);
    if (rc || st_open(ref, &f, &err) || vene_run_new(m, &rs, &err)) {
        CHECK_MSG(0, "%s: %s", name, err.msg);
        st_close(f);
        vene_model_free(m);
        return;
    }
    vene_model_info info;
    vene_model_get_info(m, &info);
    ref_inputs in;
    CHECK(read_inputs(f, &in));
    static capture caps[MAX_CAPS];
    memset(caps, 0, sizeof caps);
    int n_caps = 0, missing = 0;
    for (int s = 0; s < vene_model_site_count(m); s++) {
        vene_site_info si;
        vene_model_site(m, s, &si);
        for (int l = si.layered ? 0 : -1; l < (si.layered ? info.n_layer : 0); l++) {
            capture *c = &caps[n_caps];
            char path[96];
            snprintf(path, sizeof path, si.path, l);
            snprintf(c->name, sizeof c->name, "%s.%s", path, si.is_input ? "input" : "output");
            int head = !strncmp(c->name, "lm_head.", 8) || !strncmp(c->name, "embed_out.", 10);
            if (!st_find(f, c->name)) {
                /* only a bare model's head may be absent from its reference */
                CHECK_MSG(head && !info.has_lm_head, "%s: reference lacks site %s", name, c->name);
                missing += !(head && !info.has_lm_head);
                continue;
            }
            if (n_caps + 1 == MAX_CAPS) break;
            c->site = s;
            CHECK(vene_run_add_hook(rs, s, l, capture_hook, c, &err) == VENE_OK);
            n_caps++;
        }
    }
    vene_batch b = {.batch = in.B, .seq = in.S, .ids = in.ids, .attn_mask = in.mask, .positions = in.pos};
    rc = vene_forward(rs, &b, &err);
    CHECK_MSG(rc == VENE_OK, "%s: forward: %s", name, err.msg);
    worst w = {0, 0, ""};
    for (int i = 0; rc == VENE_OK && i < n_caps; i++) {
        int64_t n = 0;
        float *want = ref_f32(f, caps[i].name, &n);
        CHECK_MSG(caps[i].fired == 1, "%s: %s fired %d times", name, caps[i].name, caps[i].fired);
        CHECK_MSG(want && n == caps[i].numel, "%s: %s has %lld elements, the reference %lld", name, caps[i].name,
                  (long long)caps[i].numel, (long long)n);
        if (want && caps[i].data && n == caps[i].numel) compare(&w, caps[i].name, caps[i].data, want, n);
        free(want);
        int64_t shape[VENE_MAX_DIMS];
        int nd = vene_model_site_shape(m, caps[i].site, in.B, in.S, shape);
        CHECK_MSG(nd == caps[i].ndim && !memcmp(shape, caps[i].shape, sizeof(int64_t) * (size_t)nd),
                  "%s: %s: vene_model_site_shape disagrees with the tensor that fired", name, caps[i].name);
    }
    const vene_tensor *outs[2] = {vene_run_last_hidden(rs), vene_run_logits(rs)};
    const char *out_names[2] = {"last_hidden_state", "logits"};
    for (int k = 0; rc == VENE_OK && k < 2; k++) {
        int64_t n = 0;
        float *want = ref_f32(f, out_names[k], &n);
        CHECK_MSG((want != NULL) == (outs[k] != NULL), "%s: %s present in one of vene and the reference only", name,
                  out_names[k]);
        if (want && outs[k] && n == vene_tensor_numel(outs[k])) compare(&w, out_names[k], outs[k]->data, want, n);
        free(want);
    }
    /* default positions (NULL = 0..S-1) give row 0's reference */
    vene_batch b0 = {.batch = 1, .seq = in.S, .ids = in.ids};
    int64_t n = 0;
    float *want = ref_f32(f, "last_hidden_state", &n);
    rc = vene_forward(rs, &b0, &err);
    CHECK_MSG(rc == VENE_OK, "%s: %s", name, err.msg);
    if (rc == VENE_OK && want) compare(&w, "last_hidden_state (row 0, default positions)", rs ? vene_run_last_hidden(rs)->data : NULL, want,
                                       (int64_t)in.S * info.d_model);
    free(want);
    printf("%-14s %-19s B=%d S=%-2d %3d sites (%d missing)  worst %-44s abs %.3g (%.3g of tol)\n", name,
           info.model_class, in.B, in.S, n_caps, missing, w.name, w.abs, w.rel / TOL);
    for (int i = 0; i < n_caps; i++) free(caps[i].data);
    vene_run_free(rs);
    st_close(f);
    vene_model_free(m);
}

/* Collect `component` (unit, locations) on row 0 of the reference input and compare with
 * the reference site `site`: collected[k][s][j] == site[0][s][col0 + k * stride + j]. */
static void check_component(const char *model, const char *component, const char *unit, const char *locs,
                            const char *site, int width, int col0, int n_pos, const int *pos) {
    char dir[256], ref[256], cfg[512];
    snprintf(dir, sizeof dir, "fixtures/models/%s", model);
    snprintf(ref, sizeof ref, "fixtures/%s_ref.safetensors", model);
    snprintf(cfg, sizeof cfg,
             "{\"layer\": 1, \"component\": \"%s\", \"unit\": \"%s\", \"intervention_type\": \"CollectIntervention\"}",
             component, unit);
    vene_error err = {0};
    vene_model *m = NULL;
    vene_intervenable *iv = NULL;
    st_file *f = NULL;
    ref_inputs in;
    int rc = vene_model_load(dir, NULL, &m, &err);
    if (!rc) rc = vene_intervenable_new(m, cfg, &iv, &err);
    if (!rc) rc = st_open(ref, &f, &err);
    CHECK_MSG(rc == VENE_OK && read_inputs(f, &in), "%s %s: %s", model, component, err.msg);
    if (rc == VENE_OK) {
        vene_batch b = {.batch = 1, .seq = in.S, .ids = in.ids};
        vene_call call = {.base = &b, .unit_locations = locs};
        rc = vene_intervenable_forward(iv, &call, &err);
        CHECK_MSG(rc == VENE_OK, "%s %s: %s", model, component, err.msg);
        const vene_tensor *got = rc ? NULL : vene_intervenable_collected(iv, 0);
        int64_t n = 0;
        float *want = ref_f32(f, site, &n);
        const st_tensor *t = st_find(f, site);
        CHECK_MSG(got && want && vene_tensor_numel(got) == (int64_t)n_pos * width, "%s %s: collected %lld values, want %d",
                  model, component, got ? (long long)vene_tensor_numel(got) : -1LL, n_pos * width);
        if (got && want && vene_tensor_numel(got) == (int64_t)n_pos * width) {
            int64_t cols = t->shape[2];
            float *sel = malloc(sizeof(float) * (size_t)(n_pos * width));
            for (int p = 0; sel && p < n_pos; p++)
                for (int j = 0; j < width; j++) sel[p * width + j] = want[pos[p] * cols + col0 + j];
            if (sel) {
                char what[160];
                snprintf(what, sizeof what, "%s %s (%s)", model, component, unit);
                CHECK_CLOSE(got->data, sel, (long)(n_pos * width), TOL, what);
                printf("%-14s %-28s unit %-5s %s: %d x %d values = %s\n", model, component, unit, locs, n_pos, width,
                       site);
            }
            free(sel);
        }
        free(want);
    }
    st_close(f);
    vene_intervenable_free(iv);
    vene_model_free(m);
}

static void check_components(void) {
    const int p2[1] = {2}, all[12] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11};
    /* GQA: key_output is num_key_value_heads x head_dim wide (pyvene says hidden_size * kv / heads) */
    check_component("mistral-tiny", "key_output", "pos", "{\"base\": 2}", "layers[1].self_attn.k_proj.output", 32, 0, 1, p2);
    /* a kv head is split by num_key_value_heads: head 1 is k_proj columns 16..31 */
    check_component("mistral-tiny", "head_key_output", "h", "{\"base\": 1}", "layers[1].self_attn.k_proj.output", 16, 16,
                    10, all);
    check_component("qwen2-tiny", "head_value_output", "h", "{\"base\": 0}", "layers[1].self_attn.v_proj.output", 16, 0,
                    9, all);
    /* Gemma: head_dim 32 from config.json, so queries are 4 x 32 = 128 wide, not hidden_size 64 */
    check_component("gemma-tiny", "query_output", "pos", "{\"base\": 2}", "layers[1].self_attn.q_proj.output", 128, 0, 1,
                    p2);
    check_component("gemma-tiny", "head_query_output", "h", "{\"base\": 3}", "layers[1].self_attn.q_proj.output", 32, 96,
                    9, all);
    check_component("pythia-tiny", "head_attention_value_output", "h", "{\"base\": 2}",
                    "layers[1].attention.dense.input", 16, 32, 10, all);
    check_component("pythia-tiny", "mlp_activation", "pos", "{\"base\": 2}", "layers[1].mlp.act.output", 256, 0, 1, p2);
}

/* A copy of a fixture folder whose config.json has `from` replaced by `to`. */
static int variant(const char *model, const char *from, const char *to, const char *out) {
    char src[512], path[512], real[PATH_MAX];
    snprintf(src, sizeof src, "fixtures/models/%s/config.json", model);
    FILE *fi = fopen(src, "rb");
    if (!fi) return 0;
    char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, fi);
    fclose(fi);
    buf[n] = 0;
    char *at = strstr(buf, from);
    if (!at) return 0;
    mkdir(out, 0755);
    snprintf(path, sizeof path, "%s/config.json", out);
    FILE *fo = fopen(path, "wb");
    if (!fo) return 0;
    fprintf(fo, "%.*s%s%s", (int)(at - buf), buf, to, at + strlen(from));
    fclose(fo);
    snprintf(src, sizeof src, "fixtures/models/%s/model.safetensors", model);
    snprintf(path, sizeof path, "%s/model.safetensors", out);
    return realpath(src, real) && symlink(real, path) == 0;
}

static void expect_error(const char *model, const char *from, const char *to, int code, const char *needle) {
    static int k;
    char dir[64];
    snprintf(dir, sizeof dir, "v%d", k++);
    const char *out = tpath(dir);
    CHECK_MSG(variant(model, from, to, out), "cannot make a variant of %s", model);
    vene_error err = {0};
    vene_model *m = NULL;
    int rc = vene_model_load(out, NULL, &m, &err);
    CHECK_MSG(rc == code && strstr(err.msg, needle), "%s with %s: got %s \"%s\"", model, to, vene_status_name(rc),
              err.msg);
    vene_model_free(m);
}

static void check_errors(void) {
    expect_error("qwen2-tiny", "\"use_sliding_window\": false", "\"use_sliding_window\": true", VENE_ERR_UNSUPPORTED,
                 "use_sliding_window");
    expect_error("llama3-tiny", "\"rope_type\": \"llama3\"", "\"rope_type\": \"yarn\"", VENE_ERR_UNSUPPORTED, "yarn");
    expect_error("llama3-tiny", "\"low_freq_factor\"", "\"low_freq\"", VENE_ERR_FORMAT, "rope_scaling.low_freq_factor");
    expect_error("gemma-tiny", "\"hidden_activation\": \"gelu_pytorch_tanh\"", "\"hidden_activation\": \"relu\"",
                 VENE_ERR_UNSUPPORTED, "hidden_activation \"relu\"");
    expect_error("pythia-tiny", "\"rotary_pct\": 0.25", "\"rotary_pct\": 0.1875", VENE_ERR_UNSUPPORTED, "rotary dims");
    expect_error("pythia-tiny", "\"rope_scaling\": null", "\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2}",
                 VENE_ERR_UNSUPPORTED, "dynamic");
    expect_error("mistral-tiny", "\"sliding_window\": 4", "\"sliding_window\": \"4\"", VENE_ERR_FORMAT, "sliding_window");
    /* dynamic scaling accepts max_position_embeddings x factor positions, no more */
    vene_error err = {0};
    vene_model *m = NULL;
    vene_run *rs = NULL;
    CHECK(vene_model_load("fixtures/models/llama-dynamic", NULL, &m, &err) == VENE_OK);
    CHECK(m && vene_run_new(m, &rs, &err) == VENE_OK);
    if (rs) {
        int32_t ids[17] = {0};
        vene_batch b = {.batch = 1, .seq = 16, .ids = ids};
        CHECK(vene_forward(rs, &b, &err) == VENE_OK);
        b.seq = 17;
        CHECK(vene_forward(rs, &b, &err) == VENE_ERR_RANGE);
    }
    vene_run_free(rs);
    vene_model_free(m);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vene-families-XXXXXX");
    if (!mkdtemp(tmpdir)) return fprintf(stderr, "mkdtemp failed\n"), 1;
    for (size_t i = 0; i < sizeof MODELS / sizeof MODELS[0]; i++) check_model(MODELS[i]);
    check_components();
    check_errors();
    rm_tree(tmpdir);
    TEST_MAIN_END();
}
