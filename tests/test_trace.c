/* Sweeps (vene_sweep) against the cell-by-cell computation: every cell's logits equal those
 * of one intervened forward (vene_intervenable_forward, the engine behind `vene run`) with
 * pyvene's NoiseIntervention on block_input of layer 0 and a VanillaIntervention per
 * restored layer, on gpt2-tiny; several components, windows, heads, positions, runs and
 * chunkings, all bit for bit; the work saved; and the errors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "test.h"
#include "vene.h"

#define MODEL "fixtures/models/gpt2-tiny"
/* Bit for bit: the forward's products are row-stable (core/gemm.h), so a cell batched with
 * hundreds of others computes exactly what its own forward computes. */
#define TOL 0.0
#define MAX_CELLS 128

static vene_model *m;
static vene_model_info info;
static int S;                 /* tokens per run */
static int32_t ids[2][64];    /* a prompt and a second one of the same length */
static int subj[3] = {1, 2, 3};
static double noise[2][3 * 64]; /* two noise samples (float-exact, so a float tensor carries them) */
static const float level = 0.3f;

typedef struct store {
    int n_runs, n_cells;
    float *logits;            /* (n_runs + n_cells) x V */
    int *seen;
} store;

static int on_logits(void *user, int cell, const float *lg, vene_error *err) {
    (void)err;
    store *s = user;
    int row = cell < 0 ? -1 - cell : s->n_runs + cell;
    memcpy(s->logits + (size_t)row * info.vocab_size, lg, sizeof(float) * (size_t)info.vocab_size);
    s->seen[row]++;
    return VENE_OK;
}

/* runs: 0 clean, 1 and 2 the prompt with noise samples 0 and 1 on the subject, 3 the second prompt */
static void make_runs(vene_sweep_run *runs) {
    for (int r = 0; r < 4; r++) runs[r] = (vene_sweep_run){.ids = ids[r == 3], .len = S};
    for (int r = 1; r <= 2; r++) {
        runs[r].noise_pos = subj;
        runs[r].n_noise = 3;
        runs[r].noise = noise[r - 1];
        runs[r].noise_level = level;
    }
}

static int sweep_into(const vene_sweep_run *runs, int n_runs, const vene_sweep_cell *cells, int n_cells, size_t max_memory,
                      store *s, vene_sweep_stats *st, vene_error *err) {
    s->n_runs = n_runs;
    s->n_cells = n_cells;
    s->logits = calloc((size_t)(n_runs + n_cells) * info.vocab_size, sizeof(float));
    s->seen = calloc((size_t)(n_runs + n_cells), sizeof(int));
    vene_sweep_params p = {.max_memory = max_memory, .on_logits = on_logits, .user = s};
    return vene_sweep(m, runs, n_runs, cells, n_cells, &p, st, err);
}

static void store_free(store *s) {
    free(s->logits);
    free(s->seen);
}

/* The reference: one intervened forward for the cell (noise when its base has some). */
static int reference(const vene_sweep_run *runs, const vene_sweep_cell *c, float *out) {
    const vene_sweep_run *base = &runs[c->base];
    int n_layers = c->n_layers ? c->n_layers : 1, noisy = base->n_noise > 0;
    char cfg[4096], src[2048], dst[2048], loc[256], pos[128];
    int o = snprintf(cfg, sizeof cfg, "[");
    if (noisy) o += snprintf(cfg + o, sizeof cfg - o, "{\"layer\": 0, \"component\": \"block_input\", \"intervention_type\": \"NoiseIntervention\"},");
    int pn = snprintf(pos, sizeof pos, "[[");
    for (int k = 0; k < c->n_positions; k++) pn += snprintf(pos + pn, sizeof pos - pn, "%s%d", k ? ", " : "", c->positions[k]);
    snprintf(pos + pn, sizeof pos - pn, "]]");
    if (c->head >= 0) snprintf(loc, sizeof loc, "[[[%d]], %s]", c->head, pos);
    else snprintf(loc, sizeof loc, "%s", pos);
    int so = snprintf(src, sizeof src, "[%s", noisy ? "null" : "");
    int dn = snprintf(dst, sizeof dst, "[%s", noisy ? "[[1, 2, 3]]" : "");
    for (int l = 0; l < n_layers; l++) {
        o += snprintf(cfg + o, sizeof cfg - o, "%s{\"layer\": %d, \"component\": \"%s\", \"unit\": \"%s\"}", l ? "," : "",
                      c->layer + l, c->component, c->head >= 0 ? "h.pos" : "pos");
        so += snprintf(src + so, sizeof src - so, "%s%s", (l || noisy) ? ", " : "", loc);
        dn += snprintf(dst + dn, sizeof dst - dn, "%s%s", (l || noisy) ? ", " : "", loc);
    }
    snprintf(cfg + o, sizeof cfg - o, "]");
    char ul[4200];
    snprintf(ul, sizeof ul, "{\"sources->base\": [%s], %s]]}", src, dst);
    vene_error err = {0};
    vene_intervenable *iv = NULL;
    if (vene_intervenable_new(m, cfg, &iv, &err)) {
        fprintf(stderr, "reference config %s: %s\n", cfg, err.msg);
        return 1;
    }
    if (noisy) {
        float nz[3 * 64];
        for (int i = 0; i < 3 * info.d_model; i++) nz[i] = (float)base->noise[i];
        vene_tensor t = {nz, 3, {1, 3, info.d_model}}, lv = {(float *)&level, 0, {0}};
        if (vene_intervenable_set_param(iv, 0, "noise", &t, &err) || vene_intervenable_set_param(iv, 0, "noise_level", &lv, &err)) {
            fprintf(stderr, "noise: %s\n", err.msg);
            vene_intervenable_free(iv);
            return 1;
        }
    }
    vene_batch b = {1, S, base->ids, NULL, NULL, NULL}, sb = {1, S, runs[c->source].ids, NULL, NULL, NULL};
    const vene_batch *sources[16];
    int ns = 0;
    if (noisy) sources[ns++] = NULL;
    for (int l = 0; l < n_layers; l++) sources[ns++] = &sb;
    vene_call call = {.base = &b, .sources = sources, .n_sources = ns, .unit_locations = ul};
    int rc = vene_intervenable_forward(iv, &call, &err);
    if (rc) fprintf(stderr, "reference forward (%s, %s): %s\n", cfg, ul, err.msg);
    else memcpy(out, vene_intervenable_logits(iv, 1)->data + (size_t)(S - 1) * info.vocab_size, sizeof(float) * info.vocab_size);
    vene_intervenable_free(iv);
    return rc;
}

/* Largest |a - b| / max(1, max |b|) over a logits row. */
static double rel_diff(const float *a, const float *b, int n) {
    double worst = 0, scale = 1;
    for (int i = 0; i < n; i++) scale = fmax(scale, fabs(b[i]));
    for (int i = 0; i < n; i++) worst = fmax(worst, fabs((double)a[i] - b[i]));
    return worst / scale;
}

static int positions_pool[MAX_CELLS][4];

static int add_cell(vene_sweep_cell *cells, int n, int base, int source, const char *comp, int layer, int n_layers, int head,
                    int p0, int p1) {
    int *pos = positions_pool[n];
    pos[0] = p0;
    int np = 1;
    if (p1 >= 0) pos[np++] = p1;
    cells[n] = (vene_sweep_cell){base, source, comp, layer, n_layers, pos, np, head};
    return n + 1;
}

static double worst_seen;

/* Positions before which two runs are the same computation (tokens, no noise yet). */
static int ids_equal_before(const vene_sweep_run *a, const vene_sweep_run *b) {
    int q = 0;
    while (q < a->len && a->ids[q] == b->ids[q]) q++;
    return a->n_noise || b->n_noise ? (q < 1 ? q : 1) : q; /* the noise starts at position 1 */
}

static void test_against_cells(void) {
    vene_sweep_run runs[4];
    make_runs(runs);
    vene_sweep_cell cells[MAX_CELLS];
    int n = 0;
    for (int l = 0; l < info.n_layer; l++) /* ROME's block_output restore grid */
        for (int p = 0; p < S; p++) n = add_cell(cells, n, 1, 0, "block_output", l, 0, -1, p, -1);
    n = add_cell(cells, n, 2, 0, "mlp_output", 0, 3, -1, 3, -1); /* windows */
    n = add_cell(cells, n, 2, 0, "mlp_output", 2, 2, -1, 1, -1);
    n = add_cell(cells, n, 1, 0, "attention_output", 1, 3, -1, 2, -1);
    n = add_cell(cells, n, 1, 0, "attention_output", 3, 1, -1, S - 1, -1);
    n = add_cell(cells, n, 2, 0, "block_output", 0, 2, -1, 2, -1);
    n = add_cell(cells, n, 2, 0, "block_input", 1, 3, -1, 3, -1);
    n = add_cell(cells, n, 1, 0, "head_attention_value_output", 2, 0, 1, 2, 4); /* heads, two positions */
    n = add_cell(cells, n, 1, 0, "head_query_output", 1, 0, 3, 3, -1);
    n = add_cell(cells, n, 1, 0, "head_key_output", 0, 0, 2, 1, 3);
    n = add_cell(cells, n, 1, 0, "value_output", 3, 0, -1, 2, -1);
    n = add_cell(cells, n, 1, 0, "mlp_activation", 1, 0, -1, 3, -1);
    n = add_cell(cells, n, 1, 0, "mlp_input", 2, 0, -1, 1, S - 1);
    n = add_cell(cells, n, 1, 0, "attention_input", 0, 2, -1, 0, -1);
    n = add_cell(cells, n, 1, 0, "attention_value_output", 1, 0, -1, 2, -1);
    n = add_cell(cells, n, 3, 0, "block_output", 1, 0, -1, 2, -1); /* between prompts, no noise */
    n = add_cell(cells, n, 3, 0, "mlp_output", 0, 0, -1, 1, -1);
    n = add_cell(cells, n, 0, 3, "attention_output", 2, 0, -1, 3, -1); /* the other way */
    n = add_cell(cells, n, 0, 3, "block_output", 3, 0, -1, 0, S - 1);
    const int last = info.n_layer - 1; /* the last layer runs in two calls: restores in both */
    n = add_cell(cells, n, 1, 0, "key_output", last, 0, -1, 2, -1);
    n = add_cell(cells, n, 2, 0, "head_value_output", last, 0, 1, 1, S - 1);
    n = add_cell(cells, n, 1, 0, "attention_input", last, 0, -1, S - 1, -1);
    n = add_cell(cells, n, 2, 0, "mlp_output", last, 0, -1, S - 1, -1);
    n = add_cell(cells, n, 1, 0, "block_input", last, 0, -1, 2, 4);
    n = add_cell(cells, n, 3, 0, "query_output", last, 0, -1, S - 1, -1);

    store s;
    vene_sweep_stats st;
    vene_error err = {0};
    int rc = sweep_into(runs, 4, cells, n, 0, &s, &st, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc) return;
    float *ref = malloc(sizeof(float) * info.vocab_size);
    int all_seen = 1, ok = 0;
    for (int i = 0; i < 4 + n; i++) all_seen &= s.seen[i] == 1;
    CHECK(all_seen);
    for (int c = 0; c < n; c++) {
        if (reference(runs, &cells[c], ref)) {
            CHECK_MSG(0, "cell %d: reference failed", c);
            continue;
        }
        double d = rel_diff(s.logits + (size_t)(4 + c) * info.vocab_size, ref, info.vocab_size);
        worst_seen = fmax(worst_seen, d);
        if (d <= TOL) ok++;
        else CHECK_MSG(0, "cell %d (%s layer %d pos %d, %d -> %d): logits differ by %.3g relative", c, cells[c].component,
                       cells[c].layer, cells[c].positions[0], cells[c].source, cells[c].base, d);
    }
    CHECK_MSG(ok == n, "%d of %d cells equal the cell-by-cell forwards", ok, n);
    /* the runs themselves: a plain forward (with the noise alone for the noisy ones) */
    for (int r = 0; r < 4; r++) {
        vene_sweep_cell none = {r, r, "block_output", info.n_layer - 1, 0, (int[]){0}, 1, -1};
        /* restoring a run's own block output changes nothing: the reference is the run */
        CHECK(reference(runs, &none, ref) == 0);
        double d = rel_diff(s.logits + (size_t)r * info.vocab_size, ref, info.vocab_size);
        worst_seen = fmax(worst_seen, d);
        CHECK_MSG(d <= TOL, "run %d differs by %.3g", r, d);
    }
    /* block_output at the last layer changes nothing before the last position: the cell
     * is its base run; at the last position it is the source run */
    int last_l = (info.n_layer - 1) * S;
    CHECK(rel_diff(s.logits + (size_t)(4 + last_l) * info.vocab_size, s.logits + (size_t)1 * info.vocab_size,
                   info.vocab_size) <= TOL);
    CHECK(rel_diff(s.logits + (size_t)(4 + last_l + S - 1) * info.vocab_size, s.logits, info.vocab_size) <= TOL);
    /* the work: the runs once (S x (L - 1) positions through whole layers, the last layer's
     * keys and values for S, its last position whole), then block_output cell (l, p) from
     * layer l + 1: S - p positions through the layers before the last, then the same split */
    const int L = info.n_layer;
    int64_t want = 4LL * (S * (L - 1) + 1), want_kv = 4LL * S;
    for (int l = 0; l < L - 1; l++) /* position 0 precedes the noise: that cell is its base run */
        for (int p = 1; p < S; p++) want += (int64_t)(L - 2 - l) * (S - p) + 1, want_kv += S - p;
    int64_t grid_units = st.units, grid_kv = st.kv_units;
    for (int c = L * S; c < n; c++) {
        const vene_sweep_cell *cc = &cells[c];
        int join = cc->layer + !strcmp(cc->component, "block_output"), pmin = cc->positions[0];
        int pmax = cc->positions[cc->n_positions - 1], same = ids_equal_before(&runs[cc->base], &runs[cc->source]);
        if (join == L || pmax < same) continue;
        grid_units -= (int64_t)(L - 1 - join) * (S - pmin) + 1;
        grid_kv -= S - pmin;
    }
    CHECK_MSG(grid_units == want && grid_kv == want_kv, "units %lld + %lld, expected %lld + %lld", (long long)grid_units,
              (long long)grid_kv, (long long)want, (long long)want_kv);
    CHECK(st.naive_units == (int64_t)n * S * info.n_layer && st.units < st.naive_units);
    CHECK(st.chunks == 1 && st.peak_bytes > 0);
    printf("sweep of %d cells: %lld (+ %lld keys only) / %lld position-layers (%.3f of naive), %d forwards, worst "
           "relative difference %.3g\n", n, (long long)st.units, (long long)st.kv_units, (long long)st.naive_units,
           (double)st.units / st.naive_units, st.forwards, worst_seen);

    /* small chunks: the same numbers (up to rounding), more chunks */
    store s2;
    vene_sweep_stats st2;
    size_t small = (size_t)600 << 10;
    rc = sweep_into(runs, 4, cells, n, small, &s2, &st2, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (!rc) {
        double d = 0;
        for (int i = 0; i < 4 + n; i++)
            d = fmax(d, rel_diff(s2.logits + (size_t)i * info.vocab_size, s.logits + (size_t)i * info.vocab_size, info.vocab_size));
        CHECK_MSG(d <= TOL, "chunked sweep differs by %.3g", d);
        CHECK_MSG(st2.chunks >= 2, "%d chunks", st2.chunks);
        CHECK(st2.units == st.units); /* the runs once, the cells the same */
        CHECK(st2.peak_bytes <= small);
        printf("chunked into %d (max_memory 600 KB): peak %zu bytes, worst difference %.3g\n", st2.chunks, st2.peak_bytes, d);
    }
    store_free(&s2);
    store_free(&s);
    free(ref);
}

/* ROME's noise level: 3 x the std of the token embedding matrix, from the file itself. */
static void test_noise_level(void) {
    vene_error err = {0};
    float level = 0;
    CHECK(vene_sweep_noise_level(m, &level, &err) == VENE_OK);
    FILE *f = fopen(MODEL "/model.safetensors", "rb");
    unsigned char len8[8];
    if (!f || fread(len8, 1, 8, f) != 8) {
        CHECK_MSG(0, "cannot read %s", MODEL);
        if (f) fclose(f);
        return;
    }
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | len8[i];
    char *hdr = calloc(hl + 1, 1);
    CHECK(fread(hdr, 1, hl, f) == hl);
    const char *wte = strstr(hdr, "\"transformer.wte.weight\"");
    if (!wte) wte = strstr(hdr, "\"wte.weight\"");
    const char *off = wte ? strstr(wte, "data_offsets") : NULL;
    long a = 0, b = 0;
    CHECK(off && sscanf(strchr(off, '['), "[%ld,%ld]", &a, &b) == 2 && b - a == 4L * info.vocab_size * info.d_model);
    size_t n = (size_t)(b - a) / 4;
    float *w = malloc((size_t)(b - a));
    fseek(f, (long)(8 + hl) + a, SEEK_SET);
    CHECK(fread(w, 4, n, f) == n);
    double sum = 0, sq = 0;
    for (size_t i = 0; i < n; i++) sum += w[i];
    for (size_t i = 0; i < n; i++) sq += (w[i] - sum / n) * (w[i] - sum / n);
    CHECK_MSG(fabs(level - 3 * sqrt(sq / n)) <= 1e-6 * level, "noise level %g, by hand %g", level, 3 * sqrt(sq / n));
    free(w);
    free(hdr);
    fclose(f);
}

static int stop_at(void *user, int cell, const float *lg, vene_error *err) {
    (void)lg;
    if (cell == *(int *)user) return vene_errorf(err, VENE_ERR_ARG, "stop at cell %d", cell);
    return VENE_OK;
}

static void test_errors(void) {
    vene_sweep_run runs[4];
    make_runs(runs);
    int p0[1] = {0}, pbad[1] = {S};
    store s;
    vene_error err = {0};
    struct { vene_sweep_cell c; int code; const char *needle; } bad[] = {
        {{1, 0, "blok_output", 0, 0, p0, 1, -1}, VENE_ERR_ARG, "blok_output"},
        {{1, 0, "attention_weight", 0, 0, p0, 1, -1}, VENE_ERR_UNSUPPORTED, "attention_weight"},
        {{1, 0, "head_attention_value_output", 0, 0, p0, 1, -1}, VENE_ERR_ARG, "give a head"},
        {{1, 0, "mlp_output", 0, 0, p0, 1, 2}, VENE_ERR_ARG, "has no heads"},
        {{1, 0, "head_query_output", 0, 0, p0, 1, 9}, VENE_ERR_RANGE, "head 9"},
        {{1, 0, "mlp_output", 3, 2, p0, 1, -1}, VENE_ERR_RANGE, "layers 3 .. 4"},
        {{1, 0, "mlp_output", 0, 0, pbad, 1, -1}, VENE_ERR_RANGE, "position"},
        {{1, 7, "mlp_output", 0, 0, p0, 1, -1}, VENE_ERR_RANGE, "out of range (4 runs)"},
        {{1, 0, "mlp_output", 0, 0, p0, 0, -1}, VENE_ERR_ARG, "no positions"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = sweep_into(runs, 4, &bad[i].c, 1, 0, &s, NULL, &err);
        CHECK_MSG(rc == bad[i].code && strstr(err.msg, bad[i].needle) && strstr(err.msg, "cell 0"), "case %zu: %d %s", i,
                  rc, err.msg);
        store_free(&s);
    }
    /* runs of different lengths cannot patch each other */
    vene_sweep_run shorter[2] = {runs[0], runs[3]};
    shorter[1].len = S - 1;
    vene_sweep_cell c = {1, 0, "mlp_output", 0, 0, p0, 1, -1};
    CHECK(sweep_into(shorter, 2, &c, 1, 0, &s, NULL, &err) == VENE_ERR_ARG && strstr(err.msg, "must match"));
    store_free(&s);
    /* bad runs */
    vene_sweep_run r2 = runs[1];
    r2.noise_pos = pbad;
    r2.n_noise = 1;
    CHECK(sweep_into(&r2, 1, NULL, 0, 0, &s, NULL, &err) == VENE_ERR_RANGE && strstr(err.msg, "noise position"));
    store_free(&s);
    int32_t big[2] = {0, 60000};
    vene_sweep_run r3 = {.ids = big, .len = 2};
    CHECK(sweep_into(&r3, 1, NULL, 0, 0, &s, NULL, &err) == VENE_ERR_RANGE && strstr(err.msg, "60000"));
    store_free(&s);
    /* too little memory for the caches */
    CHECK(sweep_into(runs, 4, &c, 1, 1000, &s, NULL, &err) == VENE_ERR_MEMORY && strstr(err.msg, "max_memory"));
    store_free(&s);
    /* a callback error stops the sweep with its code */
    int at = 0;
    vene_sweep_params p = {.on_logits = stop_at, .user = &at};
    int rc = vene_sweep(m, runs, 4, &c, 1, &p, NULL, &err);
    CHECK_MSG(rc == VENE_ERR_ARG && strstr(err.msg, "stop at cell 0"), "%d %s", rc, err.msg);
    /* other architectures */
    vene_model *neo = NULL;
    if (vene_model_load("golden/models/gptneo-tiny", NULL, &neo, &err) == VENE_OK) {
        p.on_logits = on_logits;
        CHECK(vene_sweep(neo, runs, 1, NULL, 0, &p, NULL, &err) == VENE_ERR_UNSUPPORTED && strstr(err.msg, "gpt_neo"));
        vene_model_free(neo);
    }
}

int main(void) {
    vene_error err = {0};
    vene_tokenizer *tok = NULL;
    int32_t *t = NULL;
    size_t n = 0;
    const char *prompt = "The Space Needle is in downtown";
    if (vene_model_load(MODEL, NULL, &m, &err) || vene_tokenizer_load(MODEL, &tok, &err) ||
        vene_tokenize(tok, prompt, strlen(prompt), &t, &n, &err)) {
        fprintf(stderr, "setup: %s\n", err.msg);
        return 1;
    }
    vene_model_get_info(m, &info);
    S = (int)n;
    for (int i = 0; i < S; i++) ids[0][i] = ids[1][i] = t[i];
    ids[1][1] = 1000, ids[1][2] = 2000, ids[1][3] = 3000; /* another subject, same length */
    vene_mt mt;
    vene_mt_seed(&mt, 1);
    for (int k = 0; k < 2; k++)
        for (int i = 0; i < 3 * info.d_model; i++) noise[k][i] = (float)vene_mt_gauss(&mt);
    test_against_cells();
    test_noise_level();
    test_errors();
    vene_free(t);
    vene_tokenizer_free(tok);
    vene_model_free(m);
    TEST_MAIN_END();
}
