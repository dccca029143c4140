/* vene_intervenable_save / vene_intervenable_load (spec §12): pyvene's directory layout,
 * round trips that reproduce intervened outputs bit for bit, and error messages that name
 * the file at fault. */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "engine/engine.h"
#include "io/safetensors.h"
#include "test.h"
#include "vene.h"

#define MODEL_DIR "fixtures/models/gpt2-tiny"
#define B 2
#define S 6

static vene_model *M;
static char TMP[256];

static const int32_t BASE_IDS[B * S] = {464, 3139, 286, 8602, 318, 262, 40, 588, 257, 1310, 3290, 13};
static const int32_t SRC0_IDS[B * S] = {464, 3139, 286, 8031, 318, 262, 1135, 1842, 284, 467, 1363, 13};
static const int32_t SRC1_IDS[B * S] = {818, 257, 1029, 1110, 11, 262, 3290, 373, 845, 3621, 290, 13};

/* ---------------------------------------------------------------- helpers */

static uint64_t rng_state = 88172645463325252ull;
static float frand(void) {
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) / (double)(1 << 24)) * 2.0f - 1.0f;
}

static int set_random(vene_intervenable *iv, int i, const char *name, int ndim, int64_t a, int64_t b, vene_error *err) {
    int64_t n = ndim == 1 ? a : a * b;
    float *p = malloc(sizeof(float) * (size_t)n);
    for (int64_t k = 0; k < n; k++) p[k] = frand() * 0.3f;
    int64_t shape[2] = {a, b};
    vene_tensor t = {p, ndim, {0}};
    memcpy(t.shape, shape, sizeof shape);
    int rc = vene_intervenable_set_param(iv, i, name, &t, err);
    free(p);
    return rc;
}

static int set_scalar(vene_intervenable *iv, int i, const char *name, float v, vene_error *err) {
    vene_tensor t = {&v, 1, {1}};
    return vene_intervenable_set_param(iv, i, name, &t, err);
}

/* What vene_experiment_run does after construction: complete the parameters of every
 * owning slot with seed + index. */
static int finalize_all(vene_intervenable *iv, vene_error *err) {
    for (int i = 0; i < iv->n; i++)
        if (iv->slots[i].iv_owner) {
            int rc = vene_iv_finalize(iv->slots[i].iv, iv->seed + (uint64_t)i, err);
            if (rc) return rc;
        }
    return VENE_OK;
}

typedef struct outputs {
    float *logits, *hidden, *orig;
    int64_t n_logits, n_hidden;
    int n_coll;
    float *coll[4];
    int64_t coll_n[4];
} outputs;

static void outputs_free(outputs *o) {
    free(o->logits);
    free(o->hidden);
    free(o->orig);
    for (int k = 0; k < o->n_coll; k++) free(o->coll[k]);
    memset(o, 0, sizeof *o);
}

static float *dup_tensor(const vene_tensor *t, int64_t *n) {
    *n = vene_tensor_numel(t);
    float *p = malloc(sizeof(float) * (size_t)*n);
    memcpy(p, t->data, sizeof(float) * (size_t)*n);
    return p;
}

typedef struct tcase {
    const char *name;
    const char *config;
    int (*setup)(vene_intervenable *iv, vene_error *err);
    int n_sources;
    const char *ul, *ss;
    int n_files;
    const char *types[4]; /* expected class names per representation */
} tcase;

static int run_call(vene_intervenable *iv, const tcase *c, outputs *o, vene_error *err) {
    vene_batch base = {B, S, BASE_IDS, NULL, NULL, NULL};
    vene_batch s0 = {B, S, SRC0_IDS, NULL, NULL, NULL}, s1 = {B, S, SRC1_IDS, NULL, NULL, NULL};
    const vene_batch *srcs[2] = {&s0, &s1};
    vene_call call = {.base = &base, .sources = srcs, .n_sources = c->n_sources, .unit_locations = c->ul, .subspaces = c->ss, .output_original = 1};
    int rc = vene_intervenable_forward(iv, &call, err);
    if (rc) return rc;
    memset(o, 0, sizeof *o);
    int64_t n;
    o->logits = dup_tensor(vene_intervenable_logits(iv, 1), &o->n_logits);
    o->hidden = dup_tensor(vene_intervenable_last_hidden(iv, 1), &o->n_hidden);
    o->orig = dup_tensor(vene_intervenable_logits(iv, 0), &n);
    o->n_coll = vene_intervenable_collected_count(iv);
    if (o->n_coll > 4) o->n_coll = 4;
    for (int k = 0; k < o->n_coll; k++) o->coll[k] = dup_tensor(vene_intervenable_collected(iv, k), &o->coll_n[k]);
    return VENE_OK;
}

static int files_equal(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *pa = test_read_file(a, &na), *pb = test_read_file(b, &nb);
    int eq = pa && pb && na == nb && memcmp(pa, pb, na) == 0;
    free(pa);
    free(pb);
    return eq;
}

static void write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

/* intkey_*.safetensors files in dir (and whether any temporary file was left behind). */
static int count_intkeys(const char *dir, int *leftovers) {
    DIR *d = opendir(dir);
    int n = 0;
    *leftovers = 0;
    if (!d) return -1;
    for (struct dirent *e; (e = readdir(d));) {
        size_t l = strlen(e->d_name);
        if (!strncmp(e->d_name, "intkey_", 7) && l > 12 && !strcmp(e->d_name + l - 12, ".safetensors")) n++;
        if (strstr(e->d_name, ".tmp")) (*leftovers)++;
    }
    closedir(d);
    return n;
}

static void rm_rf(const char *dir) {
    DIR *d = opendir(dir);
    if (!d) return;
    char p[600];
    for (struct dirent *e; (e = readdir(d));) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (stat(p, &st) == 0 && S_ISDIR(st.st_mode)) rm_rf(p);
        else unlink(p);
    }
    closedir(d);
    rmdir(dir);
}

/* ---------------------------------------------------------------- cases */

static int setup_vanilla(vene_intervenable *iv, vene_error *err) {
    (void)iv;
    (void)err;
    return VENE_OK;
}

static int setup_lowrank(vene_intervenable *iv, vene_error *err) {
    return set_random(iv, 0, "rotate_layer.weight", 2, 64, 2, err);
}

static int setup_seeded(vene_intervenable *iv, vene_error *err) {
    vene_intervenable_set_seed(iv, 1234);
    return finalize_all(iv, err);
}

static int setup_boundless(vene_intervenable *iv, vene_error *err) {
    int rc = set_random(iv, 0, "rotate_layer.weight", 2, 64, 64, err);
    if (!rc) rc = set_scalar(iv, 0, "intervention_boundaries", 0.3f, err);
    if (!rc) rc = set_scalar(iv, 0, "temperature", 2.5f, err);
    return rc;
}

static int setup_addition(vene_intervenable *iv, vene_error *err) {
    return set_random(iv, 0, "source_representation", 1, 64, 0, err);
}

static int setup_linked(vene_intervenable *iv, vene_error *err) {
    return set_random(iv, 0, "rotate_layer.weight", 2, 64, 2, err); /* shared by both slots */
}

static int setup_groups(vene_intervenable *iv, vene_error *err) {
    int rc = set_random(iv, 2, "mask", 1, 64, 0, err);
    if (!rc) rc = set_scalar(iv, 2, "temperature", 0.5f, err);
    return rc;
}

static int setup_rotated_head(vene_intervenable *iv, vene_error *err) {
    vene_intervenable_set_seed(iv, 99);
    int rc = finalize_all(iv, err);
    iv->slots[0].iv->interchange_dim = 5; /* as pyvene's set_interchange_dim(5) */
    return rc;
}

static const tcase CASES[] = {
    {"vanilla",
     "{\"representations\": [{\"layer\": 1, \"component\": \"block_output\", \"intervention_type\": "
     "\"VanillaIntervention\", \"subspace_partition\": [[0, 32], [32, 64]]}, {\"layer\": 3, \"component\": "
     "\"block_output\", \"intervention_type\": \"CollectIntervention\"}]}",
     setup_vanilla, 1, "{\"sources->base\": 3}", "[1]", 0, {"VanillaIntervention", "CollectIntervention"}},
    {"lowrank",
     "{\"layer\": 2, \"component\": \"block_output\", \"low_rank_dimension\": 2, \"intervention_type\": "
     "\"LowRankRotatedSpaceIntervention\"}",
     setup_lowrank, 1, "{\"sources->base\": 3}", NULL, 1, {"LowRankRotatedSpaceIntervention"}},
    {"lowrank_seeded",
     "[{\"layer\": 2, \"component\": \"mlp_output\", \"low_rank_dimension\": 4, \"intervention_type\": "
     "\"LowRankRotatedSpaceIntervention\"}]",
     setup_seeded, 1, "{\"sources->base\": [2, 4]}", NULL, 1, {"LowRankRotatedSpaceIntervention"}},
    {"boundless",
     "{\"representations\": [{\"layer\": 1, \"component\": \"block_output\", \"intervention_type\": "
     "\"BoundlessRotatedSpaceIntervention\"}]}",
     setup_boundless, 1, "{\"sources->base\": 3}", NULL, 1, {"BoundlessRotatedSpaceIntervention"}},
    {"addition_const",
     "{\"representations\": [{\"layer\": 2, \"component\": \"block_output\", \"intervention_type\": "
     "\"AdditionIntervention\"}]}",
     setup_addition, 0, "{\"base\": 3}", NULL, 1, {"AdditionIntervention"}},
    {"linked",
     "{\"representations\": [{\"layer\": 1, \"component\": \"block_output\", \"low_rank_dimension\": 2, "
     "\"intervention_type\": \"LowRankRotatedSpaceIntervention\", \"intervention_link_key\": 0}, {\"layer\": 3, "
     "\"component\": \"block_output\", \"low_rank_dimension\": 2, \"intervention_type\": "
     "\"LowRankRotatedSpaceIntervention\", \"intervention_link_key\": 0}]}",
     setup_linked, 1, "{\"sources->base\": 3}", NULL, 2,
     {"LowRankRotatedSpaceIntervention", "LowRankRotatedSpaceIntervention"}},
    {"groups",
     "{\"representations\": [{\"layer\": 0, \"component\": \"block_output\", \"group_key\": 0, "
     "\"intervention_type\": \"VanillaIntervention\"}, {\"layer\": 2, \"component\": \"block_output\", "
     "\"group_key\": 1, \"intervention_type\": \"VanillaIntervention\"}, {\"layer\": 3, \"component\": "
     "\"mlp_output\", \"group_key\": 1, \"intervention_type\": \"SigmoidMaskIntervention\"}]}",
     setup_groups, 2, "{\"sources->base\": 3}", NULL, 1,
     {"VanillaIntervention", "VanillaIntervention", "SigmoidMaskIntervention"}},
    {"serial",
     "{\"mode\": \"serial\", \"representations\": [{\"layer\": 1, \"component\": \"block_output\", "
     "\"intervention_type\": \"VanillaIntervention\"}, {\"layer\": 2, \"component\": \"block_output\", "
     "\"intervention_type\": \"VanillaIntervention\"}]}",
     setup_vanilla, 2, "{\"source_0->source_1\": 2, \"source_1->base\": 3}", NULL, 0,
     {"VanillaIntervention", "VanillaIntervention"}},
    {"keep_last_dim",
     "{\"representations\": [{\"layer\": 1, \"component\": \"block_output\", \"max_number_of_units\": 2, "
     "\"intervention_type\": \"VanillaIntervention\", \"intervention_kwargs\": {\"keep_last_dim\": true}}]}",
     setup_vanilla, 1, "{\"sources->base\": [[[[2, 3]]], [[[2, 3]]]]}", NULL, 0, {"VanillaIntervention"}},
    {"rotated_head",
     "{\"representations\": [{\"layer\": 1, \"component\": \"head_attention_value_output\", \"unit\": \"h.pos\", "
     "\"intervention_type\": \"RotatedSpaceIntervention\"}]}",
     setup_rotated_head, 1, "{\"sources->base\": [[[[[1]], [[3]]]], [[[[1]], [[3]]]]]}", NULL, 1,
     {"RotatedSpaceIntervention"}},
};

static void check_config(const tcase *c, const char *dir, const vene_intervenable *iv) {
    char p[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    char *text = test_read_file(p, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    CHECK_MSG(cJSON_IsObject(j), "%s: config.json parses", c->name);
    if (!j) return;
    int n = vene_intervenable_count(iv);
    const cJSON *reprs = cJSON_GetObjectItem(j, "representations"), *types = cJSON_GetObjectItem(j, "intervention_types");
    const cJSON *keys = cJSON_GetObjectItem(j, "sorted_keys"), *dims = cJSON_GetObjectItem(j, "intervention_dimensions");
    const cJSON *consts = cJSON_GetObjectItem(j, "intervention_constant_sources");
    const cJSON *mt = cJSON_GetObjectItem(j, "model_type"), *mode = cJSON_GetObjectItem(j, "mode");
    CHECK(cJSON_IsArray(reprs) && cJSON_GetArraySize(reprs) == n);
    CHECK(cJSON_IsArray(types) && cJSON_GetArraySize(types) == n);
    CHECK(cJSON_IsArray(keys) && cJSON_GetArraySize(keys) == n);
    CHECK(cJSON_IsArray(dims) && cJSON_GetArraySize(dims) == n);
    CHECK(cJSON_IsArray(consts) && cJSON_GetArraySize(consts) == n);
    CHECK(cJSON_IsString(mt) && !strcmp(mt->valuestring, "<class 'transformers.models.gpt2.modeling_gpt2.GPT2LMHeadModel'>"));
    CHECK(cJSON_IsString(mode) && !strcmp(mode->valuestring, iv->serial ? "serial" : "parallel"));
    CHECK((cJSON_GetObjectItem(j, "vene_keep_last_dim") != NULL) == !strcmp(c->name, "keep_last_dim"));
    for (int i = 0; i < n; i++) {
        const cJSON *a = cJSON_GetArrayItem(reprs, i);
        CHECK_MSG(cJSON_IsArray(a) && cJSON_GetArraySize(a) == 14, "%s: representations[%d] is a 14-element list", c->name, i);
        const vene_repr *r = &iv->slots[i].r;
        CHECK(cJSON_GetArrayItem(a, 0)->valueint == r->layer);
        CHECK(!strcmp(cJSON_GetArrayItem(a, 1)->valuestring, r->component));
        CHECK(!strcmp(cJSON_GetArrayItem(a, 2)->valuestring, r->unit));
        CHECK(cJSON_GetArrayItem(a, 3)->valueint == r->max_units);
        CHECK(r->low_rank < 0 ? cJSON_IsNull(cJSON_GetArrayItem(a, 4)) : cJSON_GetArrayItem(a, 4)->valueint == r->low_rank);
        CHECK(cJSON_IsNull(cJSON_GetArrayItem(a, 5)) && cJSON_IsNull(cJSON_GetArrayItem(a, 6)));
        CHECK(r->group_key < 0 ? cJSON_IsNull(cJSON_GetArrayItem(a, 8)) : cJSON_GetArrayItem(a, 8)->valueint == r->group_key);
        CHECK(r->link_key < 0 ? cJSON_IsNull(cJSON_GetArrayItem(a, 9)) : cJSON_GetArrayItem(a, 9)->valueint == r->link_key);
        CHECK(cJSON_IsNull(cJSON_GetArrayItem(a, 11)));
        int has_src = iv->slots[i].iv->source_repr != NULL;
        CHECK(has_src ? cJSON_IsTrue(cJSON_GetArrayItem(a, 12)) : cJSON_IsNull(cJSON_GetArrayItem(a, 12)));
        char want[200];
        snprintf(want, sizeof want, "<class 'pyvene.models.interventions.%s'>", c->types[i]);
        const cJSON *t = cJSON_GetArrayItem(types, i);
        CHECK_MSG(cJSON_IsString(t) && !strcmp(t->valuestring, want), "%s: intervention_types[%d] = %s", c->name, i,
                  cJSON_IsString(t) ? t->valuestring : "?");
        CHECK(!strcmp(cJSON_GetArrayItem(keys, i)->valuestring, vene_intervenable_key(iv, i)));
        CHECK(cJSON_GetArrayItem(dims, i)->valueint == iv->slots[i].iv->interchange_dim);
    }
    if (!strcmp(c->name, "vanilla")) {
        CHECK(cJSON_IsArray(cJSON_GetArrayItem(cJSON_GetArrayItem(reprs, 0), 7)));
        CHECK(cJSON_IsFalse(cJSON_GetArrayItem(consts, 0)) && cJSON_IsTrue(cJSON_GetArrayItem(consts, 1)));
    }
    if (!strcmp(c->name, "addition_const")) CHECK(cJSON_IsTrue(cJSON_GetArrayItem(consts, 0)));
    cJSON_Delete(j);
}

static void check_state_dict(const tcase *c, const char *dir, const vene_intervenable *iv) {
    char p[600];
    for (int i = 0; i < iv->n; i++) {
        snprintf(p, sizeof p, "%s/intkey_%s.safetensors", dir, vene_intervenable_key(iv, i));
        st_file *f = NULL;
        if (access(p, F_OK) != 0) continue;
        vene_error err = {0};
        CHECK_MSG(st_open(p, &f, &err) == VENE_OK, "%s: %s", c->name, err.msg);
        if (!f) continue;
        const st_tensor *e = st_find(f, "embed_dim"), *d = st_find(f, "interchange_dim");
        CHECK(e && e->dtype == ST_I64 && e->ndim == 0 && *(const int64_t *)e->data == iv->slots[i].iv->embed_dim);
        CHECK(d && d->dtype == ST_I64 && d->ndim == 0);
        if (!strcmp(c->name, "boundless")) {
            const st_tensor *pop = st_find(f, "intervention_population"), *b = st_find(f, "intervention_boundaries");
            CHECK(pop && pop->dtype == ST_I64 && pop->ndim == 1 && pop->shape[0] == 64);
            CHECK(b && b->ndim == 1 && b->shape[0] == 1 && ((const float *)b->data)[0] == 0.3f);
            const st_tensor *t = st_find(f, "temperature");
            CHECK(t && t->ndim == 0 && ((const float *)t->data)[0] == 2.5f);
        }
        if (!strcmp(c->name, "lowrank_seeded")) {
            const st_tensor *o = st_find(f, "rotate_layer.parametrizations.weight.original");
            const st_tensor *bs = st_find(f, "rotate_layer.parametrizations.weight.0.base");
            CHECK(o && o->ndim == 2 && o->shape[0] == 64 && o->shape[1] == 4);
            CHECK(bs && bs->ndim == 2 && bs->shape[0] == 64 && bs->shape[1] == 64);
        }
        if (!strcmp(c->name, "addition_const")) {
            const st_tensor *s = st_find(f, "source_representation");
            CHECK(s && s->dtype == ST_F32 && s->numel == 64);
        }
        st_close(f);
    }
}

static void run_case(const tcase *c) {
    vene_error err = {0};
    vene_intervenable *a = NULL, *b = NULL;
    int rc = vene_intervenable_new(M, c->config, &a, &err);
    CHECK_MSG(rc == VENE_OK, "%s: new: %s", c->name, err.msg);
    if (rc) return;
    rc = c->setup(a, &err);
    CHECK_MSG(rc == VENE_OK, "%s: setup: %s", c->name, err.msg);
    outputs oa = {0}, ob = {0};
    rc = run_call(a, c, &oa, &err);
    CHECK_MSG(rc == VENE_OK, "%s: forward: %s", c->name, err.msg);
    if (rc) goto out;
    CHECK_MSG(memcmp(oa.logits, oa.orig, sizeof(float) * (size_t)oa.n_logits) != 0, "%s: the intervention changes the output",
              c->name);
    char dir[400], dir2[400];
    snprintf(dir, sizeof dir, "%s/%s", TMP, c->name);
    snprintf(dir2, sizeof dir2, "%s/%s-again/nested", TMP, c->name);
    rc = vene_intervenable_save(a, dir, &err);
    CHECK_MSG(rc == VENE_OK, "%s: save: %s", c->name, err.msg);
    int left = 0;
    CHECK_MSG(count_intkeys(dir, &left) == c->n_files, "%s: %d intkey files, expected %d", c->name, count_intkeys(dir, &left),
              c->n_files);
    CHECK(left == 0);
    check_config(c, dir, a);
    check_state_dict(c, dir, a);
    rc = vene_intervenable_load(M, dir, &b, &err);
    CHECK_MSG(rc == VENE_OK, "%s: load: %s", c->name, err.msg);
    if (rc) goto out;
    CHECK(vene_intervenable_count(b) == vene_intervenable_count(a));
    for (int i = 0; i < a->n; i++) {
        CHECK(!strcmp(vene_intervenable_key(a, i), vene_intervenable_key(b, i)));
        CHECK(b->slots[i].iv->type == a->slots[i].iv->type);
        CHECK(b->slots[i].iv->keep_last_dim == a->slots[i].iv->keep_last_dim);
        CHECK(b->slots[i].group == a->slots[i].group);
    }
    CHECK(b->serial == a->serial);
    if (!strcmp(c->name, "linked")) CHECK(b->slots[0].iv == b->slots[1].iv);
    rc = run_call(b, c, &ob, &err);
    CHECK_MSG(rc == VENE_OK, "%s: forward after load: %s", c->name, err.msg);
    if (rc) goto out;
    CHECK_MSG(oa.n_logits == ob.n_logits && memcmp(oa.logits, ob.logits, sizeof(float) * (size_t)oa.n_logits) == 0,
              "%s: logits identical after save/load", c->name);
    CHECK_MSG(oa.n_hidden == ob.n_hidden && memcmp(oa.hidden, ob.hidden, sizeof(float) * (size_t)oa.n_hidden) == 0,
              "%s: hidden states identical after save/load", c->name);
    CHECK(oa.n_coll == ob.n_coll);
    for (int k = 0; k < oa.n_coll && k < ob.n_coll; k++)
        CHECK(oa.coll_n[k] == ob.coll_n[k] && memcmp(oa.coll[k], ob.coll[k], sizeof(float) * (size_t)oa.coll_n[k]) == 0);
    /* saving what was loaded reproduces the same files byte for byte */
    rc = vene_intervenable_save(b, dir2, &err);
    CHECK_MSG(rc == VENE_OK, "%s: save again: %s", c->name, err.msg);
    char p1[600], p2[600];
    snprintf(p1, sizeof p1, "%s/config.json", dir);
    snprintf(p2, sizeof p2, "%s/config.json", dir2);
    CHECK_MSG(files_equal(p1, p2), "%s: config.json identical after a round trip", c->name);
    for (int i = 0; i < a->n; i++) {
        snprintf(p1, sizeof p1, "%s/intkey_%s.safetensors", dir, vene_intervenable_key(a, i));
        snprintf(p2, sizeof p2, "%s/intkey_%s.safetensors", dir2, vene_intervenable_key(a, i));
        if (access(p1, F_OK) == 0) CHECK_MSG(files_equal(p1, p2), "%s: %s identical after a round trip", c->name, p1);
    }
out:
    outputs_free(&oa);
    outputs_free(&ob);
    vene_intervenable_free(a);
    vene_intervenable_free(b);
}

/* Saving before any parameter was initialised writes what the engine's seeded
 * initialisation (seed + slot index) produces. */
static void test_save_unfinalized(void) {
    const tcase *c = &CASES[2];
    vene_error err = {0};
    vene_intervenable *a = NULL, *b = NULL;
    CHECK(vene_intervenable_new(M, c->config, &a, &err) == VENE_OK);
    if (!a) return;
    vene_intervenable_set_seed(a, 1234);
    char dir[400];
    snprintf(dir, sizeof dir, "%s/unfinalized", TMP);
    CHECK_MSG(vene_intervenable_save(a, dir, &err) == VENE_OK, "%s", err.msg);
    CHECK(finalize_all(a, &err) == VENE_OK);
    outputs oa = {0}, ob = {0};
    CHECK(run_call(a, c, &oa, &err) == VENE_OK);
    CHECK_MSG(vene_intervenable_load(M, dir, &b, &err) == VENE_OK, "%s", err.msg);
    if (b && run_call(b, c, &ob, &err) == VENE_OK)
        CHECK(memcmp(oa.logits, ob.logits, sizeof(float) * (size_t)oa.n_logits) == 0);
    else
        CHECK_MSG(0, "forward after load: %s", err.msg);
    outputs_free(&oa);
    outputs_free(&ob);
    vene_intervenable_free(a);
    vene_intervenable_free(b);
}

/* A callback is saved as pyvene's LambdaIntervention; loading gives a placeholder that
 * fails clearly until a function is attached again. */
static int cb_double(void *user, vene_tensor *base, const vene_tensor *source, const char *ss, vene_error *err) {
    (void)user;
    (void)source;
    (void)ss;
    (void)err;
    for (int64_t k = 0; k < vene_tensor_numel(base); k++) base->data[k] *= 2.0f;
    return VENE_OK;
}

static void test_callback_roundtrip(void) {
    vene_error err = {0};
    vene_intervenable *a = NULL, *b = NULL;
    CHECK(vene_intervenable_new(M, "{\"layer\": 1, \"component\": \"mlp_output\", \"intervention_type\": \"ZeroIntervention\"}",
                                &a, &err) == VENE_OK);
    if (!a) return;
    CHECK(vene_intervenable_set_callback(a, 0, cb_double, NULL, &err) == VENE_OK);
    char dir[400], p[600];
    snprintf(dir, sizeof dir, "%s/callback", TMP);
    CHECK_MSG(vene_intervenable_save(a, dir, &err) == VENE_OK, "%s", err.msg);
    snprintf(p, sizeof p, "%s/config.json", dir);
    char *text = test_read_file(p, NULL);
    CHECK(text && strstr(text, "<class 'pyvene.models.interventions.LambdaIntervention'>"));
    free(text);
    int left;
    CHECK(count_intkeys(dir, &left) == 0);
    CHECK_MSG(vene_intervenable_load(M, dir, &b, &err) == VENE_OK, "%s", err.msg);
    if (!b) {
        vene_intervenable_free(a);
        return;
    }
    tcase c = {"callback", NULL, NULL, 0, "{\"base\": 3}", NULL, 0, {NULL}};
    outputs oa = {0}, ob = {0};
    CHECK(run_call(a, &c, &oa, &err) == VENE_OK);
    int rc = run_call(b, &c, &ob, &err);
    CHECK_MSG(rc != VENE_OK && strstr(err.msg, "LambdaIntervention"), "placeholder fails clearly: %s", err.msg);
    CHECK(vene_intervenable_set_callback(b, 0, cb_double, NULL, &err) == VENE_OK);
    CHECK(run_call(b, &c, &ob, &err) == VENE_OK);
    if (ob.logits) CHECK(memcmp(oa.logits, ob.logits, sizeof(float) * (size_t)oa.n_logits) == 0);
    outputs_free(&oa);
    outputs_free(&ob);
    vene_intervenable_free(a);
    vene_intervenable_free(b);
}

/* ---------------------------------------------------------------- errors */

static void expect_load_error(const char *dir, int code, const char *must1, const char *must2, const char *what) {
    vene_error err = {0};
    vene_intervenable *iv = (vene_intervenable *)&err; /* must be reset to NULL */
    int rc = vene_intervenable_load(M, dir, &iv, &err);
    CHECK_MSG(rc == code, "%s: code %s, expected %s (%s)", what, vene_status_name(rc), vene_status_name(code), err.msg);
    CHECK_MSG(rc == VENE_OK ? iv != NULL : iv == NULL, "%s: out is set on success only", what);
    CHECK_MSG(must1 == NULL || strstr(err.msg, must1), "%s: message names %s: %s", what, must1, err.msg);
    CHECK_MSG(must2 == NULL || strstr(err.msg, must2), "%s: message mentions %s: %s", what, must2, err.msg);
    if (rc == VENE_OK) vene_intervenable_free(iv);
}

static void save_case(const tcase *c, const char *dir) {
    vene_error err = {0};
    vene_intervenable *a = NULL;
    if (vene_intervenable_new(M, c->config, &a, &err) || c->setup(a, &err) || vene_intervenable_save(a, dir, &err))
        CHECK_MSG(0, "%s: %s", c->name, err.msg);
    vene_intervenable_free(a);
}

static void test_errors(void) {
    char dir[400], p[600], q[600];
    const tcase *lr = &CASES[1];
    const char *key = "layer_2_comp_block_output_unit_pos_nunit_1#0";

    snprintf(dir, sizeof dir, "%s/does-not-exist", TMP);
    expect_load_error(dir, VENE_ERR_IO, "does-not-exist", NULL, "missing directory");

    snprintf(dir, sizeof dir, "%s/no-config", TMP);
    mkdir(dir, 0755);
    expect_load_error(dir, VENE_ERR_IO, "no-config/config.json", NULL, "missing config.json");

    snprintf(dir, sizeof dir, "%s/malformed", TMP);
    mkdir(dir, 0755);
    snprintf(p, sizeof p, "%s/config.json", dir);
    write_text(p, "{\"representations\": [[1, \"block_output\", \"pos\",");
    expect_load_error(dir, VENE_ERR_FORMAT, "malformed/config.json", "JSON", "malformed config.json");

    write_text(p, "{\"representations\": [], \"mode\": \"parallel\"}");
    expect_load_error(dir, VENE_ERR_FORMAT, "malformed/config.json", "representations", "empty representations");

    write_text(p, "{\"representations\": [[1, \"block_output\", \"pos\", 1, null, null, null, null, null, null, null, null, "
                  "null, null]], \"intervention_types\": [\"<class 'pyvene.models.interventions.JumpReLUAutoencoderIntervention'>\"]}");
    expect_load_error(dir, VENE_ERR_UNSUPPORTED, "malformed/config.json", "JumpReLUAutoencoderIntervention", "unknown type");

    write_text(p, "{\"representations\": [[1, \"no_such_component\", \"pos\", 1, null, null, null, null, null, null, null, "
                  "null, null, null]], \"intervention_types\": [\"VanillaIntervention\"]}");
    expect_load_error(dir, VENE_ERR_ARG, "malformed/config.json", "no_such_component", "bad component");

    /* a hand-written positional config (pyvene's own file, types as plain names) loads */
    write_text(p, "{\"representations\": [[1, \"block_output\", \"pos\", 1, null, null, null, null, null, null, null, "
                  "null, null, null]], \"intervention_types\": \"VanillaIntervention\", \"mode\": \"parallel\", "
                  "\"transformers_version\": \"4.43.4\"}");
    expect_load_error(dir, VENE_OK, NULL, NULL, "positional config");

    /* dict-form representations, as pyvene's config objects print them */
    write_text(p, "{\"representations\": [{\"layer\": 1, \"component\": \"block_output\", \"unit\": \"pos\", "
                  "\"max_number_of_units\": 2, \"intervention_kwargs\": {\"keep_last_dim\": true}}, {\"layer\": 2, "
                  "\"component\": \"mlp_output\", \"low_rank_dimension\": 3, \"intervention_type\": "
                  "\"pyvene.ZeroIntervention\"}], \"intervention_types\": [\"<class "
                  "'pyvene.models.interventions.SubtractionIntervention'>\", null], \"intervention_dimensions\": [7, null]}");
    {
        vene_intervenable *d = NULL;
        vene_error e2 = {0};
        CHECK_MSG(vene_intervenable_load(M, dir, &d, &e2) == VENE_OK, "dict form: %s", e2.msg);
        if (d) {
            CHECK(d->n == 2 && d->slots[0].iv->type == VENE_IV_SUBTRACTION && d->slots[0].iv->keep_last_dim == 1);
            CHECK(d->slots[0].iv->interchange_dim == 7 && d->slots[0].r.max_units == 2);
            CHECK(d->slots[1].iv->type == VENE_IV_ZERO && d->slots[1].r.low_rank == 3);
            CHECK(!strcmp(vene_intervenable_key(d, 1), "layer_2_comp_mlp_output_unit_pos_nunit_1#0"));
            vene_intervenable_free(d);
        }
    }

    /* a stored constant source whose file is gone */
    write_text(p, "{\"representations\": [[1, \"block_output\", \"pos\", 1, null, null, null, null, null, null, null, "
                  "null, true, null]], \"intervention_types\": [\"AdditionIntervention\"], "
                  "\"intervention_constant_sources\": [true]}");
    expect_load_error(dir, VENE_ERR_IO, "intkey_layer_1_comp_block_output_unit_pos_nunit_1#0.safetensors", "missing",
                      "missing constant source");

    /* wrong-shaped tensor in an intkey file */
    snprintf(dir, sizeof dir, "%s/wrong-shape", TMP);
    save_case(lr, dir);
    snprintf(p, sizeof p, "%s/intkey_%s.safetensors", dir, key);
    st_writer *w = st_writer_new();
    float bad[64 * 3] = {0};
    int64_t shape[2] = {64, 3};
    vene_error err = {0};
    CHECK(st_writer_add(w, "rotate_layer.weight", ST_F32, 2, shape, bad, &err) == VENE_OK);
    CHECK(st_writer_save(w, p, &err) == VENE_OK);
    st_writer_free(w);
    expect_load_error(dir, VENE_ERR_ARG, "intkey_layer_2_comp_block_output_unit_pos_nunit_1#0.safetensors", "[64, 3]",
                      "wrong-shaped tensor");

    /* unknown parameter name */
    w = st_writer_new();
    CHECK(st_writer_add(w, "autoencoder.encoder.0.weight", ST_F32, 2, shape, bad, &err) == VENE_OK);
    CHECK(st_writer_save(w, p, &err) == VENE_OK);
    st_writer_free(w);
    expect_load_error(dir, VENE_ERR_ARG, "intkey_layer_2", "autoencoder.encoder.0.weight", "unknown parameter");

    /* a truncated (corrupt) intkey file */
    write_text(p, "garbage");
    expect_load_error(dir, VENE_ERR_FORMAT, "intkey_layer_2", NULL, "corrupt intkey file");

    /* only pyvene's pickle file */
    snprintf(dir, sizeof dir, "%s/pickle-only", TMP);
    save_case(lr, dir);
    snprintf(p, sizeof p, "%s/intkey_%s.safetensors", dir, key);
    snprintf(q, sizeof q, "%s/intkey_%s.bin", dir, key);
    CHECK(rename(p, q) == 0);
    expect_load_error(dir, VENE_ERR_UNSUPPORTED, ".bin", "cannot be read", "pickle only");

    /* missing parameter file for a trainable intervention */
    unlink(q);
    expect_load_error(dir, VENE_ERR_IO, "intkey_layer_2_comp_block_output_unit_pos_nunit_1#0.safetensors", "missing",
                      "missing intkey file");

    /* files saved under pyvene's older dotted keys are found through sorted_keys */
    snprintf(dir, sizeof dir, "%s/legacy", TMP);
    save_case(lr, dir);
    snprintf(p, sizeof p, "%s/config.json", dir);
    char *text = test_read_file(p, NULL);
    cJSON *j = cJSON_Parse(text);
    free(text);
    cJSON_ReplaceItemInObject(j, "sorted_keys", cJSON_CreateStringArray((const char *[]){"layer.2.comp.block_output.unit.pos.nunit.1#0"}, 1));
    text = cJSON_Print(j);
    write_text(p, text);
    free(text);
    cJSON_Delete(j);
    snprintf(p, sizeof p, "%s/intkey_%s.safetensors", dir, key);
    snprintf(q, sizeof q, "%s/intkey_layer.2.comp.block_output.unit.pos.nunit.1#0.safetensors", dir);
    CHECK(rename(p, q) == 0);
    expect_load_error(dir, VENE_OK, NULL, NULL, "legacy dotted key");

    /* save into a path that cannot be a directory */
    snprintf(p, sizeof p, "%s/a-file", TMP);
    write_text(p, "x");
    snprintf(dir, sizeof dir, "%s/a-file/sub", TMP);
    vene_intervenable *iv = NULL;
    CHECK(vene_intervenable_new(M, lr->config, &iv, &err) == VENE_OK);
    if (iv) {
        int rc = vene_intervenable_save(iv, dir, &err);
        CHECK_MSG(rc == VENE_ERR_IO && strstr(err.msg, "a-file"), "save into a file: %s", err.msg);
        vene_intervenable_free(iv);
    }
    CHECK(vene_intervenable_load(M, NULL, &iv, NULL) == VENE_ERR_ARG);
}

int main(void) {
    vene_error err = {0};
    if (vene_model_load(MODEL_DIR, NULL, &M, &err)) {
        fprintf(stderr, "cannot load %s: %s\n", MODEL_DIR, err.msg);
        return 1;
    }
    snprintf(TMP, sizeof TMP, "/tmp/vene_save_XXXXXX");
    if (!mkdtemp(TMP)) {
        perror("mkdtemp");
        return 1;
    }
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) run_case(&CASES[i]);
    test_save_unfinalized();
    test_callback_roundtrip();
    test_errors();
    rm_rf(TMP);
    vene_model_free(M);
    TEST_MAIN_END();
}
