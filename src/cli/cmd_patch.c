/* `vene patch MODEL_DIR --experiment FILE`: an activation patching sweep (docs/sweeps.md)
 * from source (clean) runs into base (corrupted) runs, over components x layers x
 * positions, or x heads for head components, as one vene_sweep. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/sweep_cli.h"
#include "core/error.h"
#include "vene.h"

#define MAX_COMPONENTS 16

typedef struct pair {
    int32_t *ids[2]; /* source, base (vene_free'd) */
    int answer, contrast;
} pair;

typedef struct spec {
    const char *file;
    int n_pairs, len, metric, normalize, window;
    pair *pairs;
    const char *components[MAX_COMPONENTS];
    int n_comp, heads_of[MAX_COMPONENTS]; /* heads_of: 0 = positions component */
    int *layers, n_layers, *positions, n_positions, *heads, n_heads;
} spec;

typedef struct cell_at {
    int comp, row, col; /* grid of component comp: row = position or head index, col = layer index */
} cell_at;

typedef struct acc {
    const spec *s;
    const cell_at *at;
    int V;
    double *base_v, *source_v; /* per pair */
    float **source_logp;       /* kl: per pair */
    double **grid;             /* per component: rows x n_layers, means over pairs */
    cli_progress pr;
} acc;

static int usage(void) {
    printf("usage: vene patch MODEL_DIR --experiment FILE [--out PREFIX] [--threads T] [--max-memory SIZE] [--quiet]\n\n"
           "Activation patching: for each component, layer and position (or head) of the experiment, the\n"
           "source (clean) run's activation is written into the base (corrupted) run and the base's last\n"
           "position is scored: logit-diff = logit(answer) - logit(contrast), prob = p(answer), or kl =\n"
           "KL(source || patched). Means over the experiment's pairs. Format: docs/sweeps.md, e.g.\n\n"
           "  {\"base\": \"The Colosseum is in the city of\", \"source\": \"The Eiffel Tower is in the city of\",\n"
           "   \"answer\": \" Paris\", \"contrast\": \" Rome\", \"metric\": \"logit-diff\",\n"
           "   \"components\": [\"block_output\", \"attention_output\", \"head_attention_value_output\"]}\n\n"
           "Writes PREFIX.csv, PREFIX.json and PREFIX_<component>.{svg,png} (default prefix: patch) and\n"
           "prints the heatmaps; progress goes to stderr. --max-memory bounds activations and caches\n"
           "(default 1G).\n");
    return 0;
}

/* Runs: pair i's source is run 2i and its base 2i + 1, so that each source's logits come
 * before its base's and cells' (vene_sweep gives runs first, in order). */
static int on_logits(void *user, int cell, const float *lg, vene_error *err) {
    acc *a = user;
    const spec *s = a->s;
    if (cell < 0) {
        int r = -1 - cell, i = r / 2, is_base = r % 2;
        const pair *p = &s->pairs[i];
        if (!is_base && s->metric == METRIC_KL) {
            a->source_logp[i] = malloc(sizeof(float) * (size_t)a->V);
            if (!a->source_logp[i]) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
            cli_log_softmax(lg, a->V, a->source_logp[i]);
        }
        double v = !is_base && s->metric == METRIC_KL ? 0 : cli_metric(s->metric, lg, a->V, p->answer, p->contrast, a->source_logp[i]);
        (is_base ? a->base_v : a->source_v)[i] = v;
        return VENE_OK;
    }
    const cell_at *at = &a->at[cell / s->n_pairs];
    int i = cell % s->n_pairs; /* cells: pair fastest */
    const pair *p = &s->pairs[i];
    double v = cli_metric(s->metric, lg, a->V, p->answer, p->contrast, a->source_logp[i]);
    if (s->normalize) { /* 0 = the base's score, 1 = the source's */
        double span = a->source_v[i] - a->base_v[i];
        v = span != 0 ? (v - a->base_v[i]) / span : NAN;
    }
    a->grid[at->comp][(size_t)at->row * s->n_layers + at->col] += v / s->n_pairs;
    return VENE_OK;
}

static void on_progress(void *user, int64_t done, int64_t total) { cli_progress_fn(&((acc *)user)->pr, done, total); }

/* ---------------------------------------------------------------- the experiment file */

static int int_list(const cJSON *v, const char *key, int lo, int hi, int **out, int *n, vene_error *err) {
    if (!v || cJSON_IsNull(v)) return VENE_OK; /* all: filled in by the caller */
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        return vene_errorf(err, VENE_ERR_ARG, "\"%s\": expected a non-empty list of integers or null", key);
    *n = cJSON_GetArraySize(v);
    *out = malloc(sizeof(int) * (size_t)*n);
    if (!*out) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    int k = 0;
    for (const cJSON *e = v->child; e; e = e->next, k++) {
        if (!cJSON_IsNumber(e) || e->valuedouble != (double)(int)e->valuedouble || e->valueint < lo || e->valueint >= hi)
            return vene_errorf(err, VENE_ERR_RANGE, "\"%s\"[%d]: expected an integer in %d .. %d", key, k, lo, hi - 1);
        (*out)[k] = e->valueint;
    }
    return VENE_OK;
}

static int all_of(int **out, int *n, int count, vene_error *err) {
    if (*out) return VENE_OK;
    *out = malloc(sizeof(int) * (size_t)count);
    if (!*out) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    for (int i = 0; i < count; i++) (*out)[i] = i;
    *n = count;
    return VENE_OK;
}

/* Text (tokenized) or a list of token ids. */
static int token_list(const vene_tokenizer *tok, const cJSON *v, const char *what, int vocab, int32_t **ids, int *n,
                      vene_error *err) {
    if (cJSON_IsString(v)) {
        size_t k = 0;
        int rc = vene_tokenize(tok, v->valuestring, strlen(v->valuestring), ids, &k, err);
        *n = (int)k;
        if (!rc && !k) rc = vene_errorf(err, VENE_ERR_ARG, "%s: \"%s\" has no tokens", what, v->valuestring);
        return rc;
    }
    if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0)
        return vene_errorf(err, VENE_ERR_ARG, "%s: expected a text or a non-empty list of token ids", what);
    *n = cJSON_GetArraySize(v);
    *ids = malloc(sizeof(int32_t) * (size_t)*n);
    if (!*ids) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    int k = 0;
    for (const cJSON *e = v->child; e; e = e->next, k++) {
        if (!cJSON_IsNumber(e) || e->valuedouble != (double)(int)e->valuedouble || e->valueint < 0 || e->valueint >= vocab)
            return vene_errorf(err, VENE_ERR_RANGE, "%s[%d]: expected a token id in 0 .. %d", what, k, vocab - 1);
        (*ids)[k] = e->valueint;
    }
    return VENE_OK;
}

/* A token: text (its first token, a space put in front when it has none) or an id. */
static int one_token(const vene_tokenizer *tok, const cJSON *v, const char *what, int vocab, int *id, vene_error *err) {
    if (cJSON_IsNumber(v) && v->valuedouble == (double)(int)v->valuedouble && v->valueint >= 0 && v->valueint < vocab) {
        *id = v->valueint;
        return VENE_OK;
    }
    if (!cJSON_IsString(v)) return vene_errorf(err, VENE_ERR_ARG, "%s: expected a text or a token id", what);
    int32_t t = 0;
    int rc = cli_answer_token(tok, v->valuestring, &t, err);
    *id = t;
    return rc ? vene_error_prefix(err, "%s", what) : VENE_OK;
}

static int parse_pair(const cJSON *o, int i, const spec *s, const vene_tokenizer *tok, int vocab, pair *p, int *len,
                      vene_error *err) {
    static const char *const keys[] = {"base", "source", "answer", "contrast"};
    char what[64];
    int n[2] = {0, 0}, rc;
    for (const cJSON *c = o->child; c; c = c->next) {
        int known = 0;
        for (int k = 0; k < 4; k++) known |= !strcmp(c->string, keys[k]);
        if (!known) return vene_errorf(err, VENE_ERR_ARG, "pairs[%d]: unknown key \"%s\"", i, c->string);
    }
    for (int side = 0; side < 2; side++) {
        snprintf(what, sizeof what, "pairs[%d].%s", i, side ? "base" : "source");
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, side ? "base" : "source");
        if ((rc = token_list(tok, v, what, vocab, &p->ids[side], &n[side], err))) return rc;
    }
    if (n[0] != n[1])
        return vene_errorf(err, VENE_ERR_ARG, "pairs[%d]: base has %d tokens, source %d (they must match)", i, n[1], n[0]);
    if (*len && n[0] != *len)
        return vene_errorf(err, VENE_ERR_ARG, "pairs[%d]: %d tokens, earlier pairs %d (every pair needs the same length)", i,
                           n[0], *len);
    *len = n[0];
    snprintf(what, sizeof what, "pairs[%d].answer", i);
    if ((rc = one_token(tok, cJSON_GetObjectItemCaseSensitive(o, "answer"), what, vocab, &p->answer, err))) return rc;
    p->contrast = p->answer;
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "contrast");
    if (s->metric == METRIC_LOGIT_DIFF && !c)
        return vene_errorf(err, VENE_ERR_ARG, "pairs[%d]: metric logit-diff needs \"contrast\"", i);
    snprintf(what, sizeof what, "pairs[%d].contrast", i);
    return c ? one_token(tok, c, what, vocab, &p->contrast, err) : VENE_OK;
}

static int parse_spec(const cJSON *j, const vene_model *m, const vene_tokenizer *tok, spec *s, vene_error *err) {
    static const char *const keys[] = {"pairs", "base", "source", "answer", "contrast", "components", "layers",
                                       "positions", "heads", "window", "metric", "normalize"};
    vene_model_info info;
    vene_model_get_info(m, &info);
    if (!cJSON_IsObject(j)) return vene_errorf(err, VENE_ERR_FORMAT, "expected a JSON object");
    for (const cJSON *c = j->child; c; c = c->next) {
        int known = 0;
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++) known |= !strcmp(c->string, keys[k]);
        if (!known) return vene_errorf(err, VENE_ERR_ARG, "unknown key \"%s\" (docs/sweeps.md)", c->string);
    }
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, "metric");
    s->metric = !v ? METRIC_LOGIT_DIFF : cJSON_IsString(v) ? cli_metric_parse(v->valuestring, 1) : -1;
    if (s->metric < 0) return vene_errorf(err, VENE_ERR_ARG, "\"metric\": expected \"logit-diff\", \"prob\" or \"kl\"");
    v = cJSON_GetObjectItemCaseSensitive(j, "normalize");
    if (v && !cJSON_IsBool(v)) return vene_errorf(err, VENE_ERR_ARG, "\"normalize\": expected true or false");
    s->normalize = cJSON_IsTrue(v);
    v = cJSON_GetObjectItemCaseSensitive(j, "window");
    s->window = 1;
    if (v && !(cJSON_IsNumber(v) && v->valuedouble == (double)(int)v->valuedouble && v->valueint >= 1 &&
               v->valueint <= info.n_layer))
        return vene_errorf(err, VENE_ERR_ARG, "\"window\": expected an integer in 1 .. %d", info.n_layer);
    if (v) s->window = v->valueint;
    const cJSON *pairs = cJSON_GetObjectItemCaseSensitive(j, "pairs");
    int one = !pairs;
    if (pairs && (!cJSON_IsArray(pairs) || cJSON_GetArraySize(pairs) == 0))
        return vene_errorf(err, VENE_ERR_ARG, "\"pairs\": expected a non-empty list of {base, source, answer[, contrast]}");
    if (pairs && (cJSON_GetObjectItemCaseSensitive(j, "base") || cJSON_GetObjectItemCaseSensitive(j, "source")))
        return vene_errorf(err, VENE_ERR_ARG, "give either \"pairs\" or one \"base\" and \"source\", not both");
    s->n_pairs = one ? 1 : cJSON_GetArraySize(pairs);
    s->pairs = calloc((size_t)s->n_pairs, sizeof *s->pairs);
    if (!s->pairs) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    int rc = VENE_OK;
    if (one) { /* the top-level keys form the one pair */
        cJSON *o = cJSON_CreateObject();
        for (int k = 1; k < 5; k++) {
            const cJSON *e = cJSON_GetObjectItemCaseSensitive(j, keys[k]);
            if (e) cJSON_AddItemToObject(o, keys[k], cJSON_Duplicate(e, 1));
        }
        rc = parse_pair(o, 0, s, tok, info.vocab_size, &s->pairs[0], &s->len, err);
        cJSON_Delete(o);
        if (rc) return vene_error_prefix(err, "%s", "experiment");
    } else {
        int i = 0;
        for (const cJSON *o = pairs->child; o && !rc; o = o->next, i++)
            rc = cJSON_IsObject(o) ? parse_pair(o, i, s, tok, info.vocab_size, &s->pairs[i], &s->len, err)
                                   : vene_errorf(err, VENE_ERR_ARG, "pairs[%d]: expected an object", i);
        if (rc) return rc;
    }
    v = cJSON_GetObjectItemCaseSensitive(j, "components");
    if (!v) s->components[s->n_comp++] = "block_output";
    else if (!cJSON_IsArray(v) || cJSON_GetArraySize(v) == 0 || cJSON_GetArraySize(v) > MAX_COMPONENTS)
        return vene_errorf(err, VENE_ERR_ARG, "\"components\": expected a list of 1 .. %d component names", MAX_COMPONENTS);
    for (const cJSON *e = v ? v->child : NULL; e; e = e->next) {
        if (!cJSON_IsString(e)) return vene_errorf(err, VENE_ERR_ARG, "\"components\"[%d]: expected a string", s->n_comp);
        s->heads_of[s->n_comp] = !strncmp(e->valuestring, "head_", 5) ? info.n_head : 0;
        s->components[s->n_comp++] = e->valuestring;
    }
    if ((rc = int_list(cJSON_GetObjectItemCaseSensitive(j, "layers"), "layers", 0, info.n_layer, &s->layers, &s->n_layers, err)) ||
        (rc = int_list(cJSON_GetObjectItemCaseSensitive(j, "positions"), "positions", -s->len, s->len, &s->positions,
                       &s->n_positions, err)) ||
        (rc = int_list(cJSON_GetObjectItemCaseSensitive(j, "heads"), "heads", 0, info.n_head, &s->heads, &s->n_heads, err)) ||
        (rc = all_of(&s->layers, &s->n_layers, info.n_layer, err)) ||
        (rc = all_of(&s->positions, &s->n_positions, s->len, err)) || (rc = all_of(&s->heads, &s->n_heads, info.n_head, err)))
        return rc;
    for (int i = 0; i < s->n_positions; i++)
        if (s->positions[i] < 0) s->positions[i] += s->len; /* from the end */
    return VENE_OK;
}

static void spec_free(spec *s) {
    for (int i = 0; s->pairs && i < s->n_pairs; i++) vene_free(s->pairs[i].ids[0]), vene_free(s->pairs[i].ids[1]);
    free(s->pairs);
    free(s->layers);
    free(s->positions);
    free(s->heads);
}

/* ---------------------------------------------------------------- the sweep */

static const uint8_t inks[5][3] = {{84, 39, 143}, {0, 109, 44}, {165, 15, 21}, {204, 76, 2}, {8, 81, 156}};

static const uint8_t *ink_of(const char *component) {
    if (!strncmp(component, "head_", 5)) return inks[3];
    if (strstr(component, "block")) return inks[0];
    if (strstr(component, "mlp")) return inks[1];
    if (strstr(component, "attention")) return inks[2];
    return inks[4];
}

/* One grid per component: positions (or heads) x layers. */
static int make_grid(const spec *s, const vene_tokenizer *tok, int c, const double *vals, cli_grid *g) {
    int heads = s->heads_of[c] > 0, rows = heads ? s->n_heads : s->n_positions;
    if (cli_grid_init(g, s->components[c], rows, s->n_layers)) return VENE_ERR_MEMORY;
    memcpy(g->values, vals, sizeof(double) * (size_t)rows * s->n_layers);
    g->row_ids = malloc(sizeof(int) * (size_t)rows);
    g->col_ids = malloc(sizeof(int) * (size_t)s->n_layers);
    g->title = malloc(256);
    if (!g->row_ids || !g->col_ids || !g->title) return VENE_ERR_MEMORY;
    memcpy(g->col_ids, s->layers, sizeof(int) * (size_t)s->n_layers);
    for (int r = 0; r < rows; r++) {
        char buf[160];
        g->row_ids[r] = heads ? s->heads[r] : s->positions[r];
        if (heads) snprintf(buf, sizeof buf, "head %d", s->heads[r]);
        else { /* the base's token, and the source's where it differs */
            int p = s->positions[r];
            char *b = cli_token_label(tok, s->pairs[0].ids[1][p]), *src = cli_token_label(tok, s->pairs[0].ids[0][p]);
            snprintf(buf, sizeof buf, "%s%s%s", b ? b : "", strcmp(b ? b : "", src ? src : "") ? "/" : "", 
                     strcmp(b ? b : "", src ? src : "") ? (src ? src : "") : "");
            free(b);
            free(src);
        }
        g->row_labels[r] = strdup(buf);
    }
    const char *what = s->metric == METRIC_PROB ? "p(answer)" : s->metric == METRIC_KL ? "KL(source || patched)"
                                                                                         : "logit difference";
    snprintf(g->title, 256, "%s%s, %s patched%s", s->normalize ? "normalised " : "", what, s->components[c],
             heads ? " (all listed positions)" : "");
    g->col_title = s->window > 1 ? "layer (centre of the patched window)" : "layer";
    memcpy(g->ink, ink_of(s->components[c]), 3);
    g->lo = INFINITY, g->hi = -INFINITY;
    for (size_t i = 0; i < (size_t)rows * s->n_layers; i++)
        if (!isnan(g->values[i])) g->lo = fmin(g->lo, g->values[i]), g->hi = fmax(g->hi, g->values[i]);
    if (!(g->lo <= g->hi)) g->lo = 0, g->hi = 1;
    if (g->hi <= g->lo) g->hi = g->lo + 1e-9;
    return VENE_OK;
}

static int run_patch(const spec *s, const vene_model *m, const vene_tokenizer *tok, const char *dir, const char *prefix,
                     size_t max_memory, int quiet, vene_error *err) {
    vene_model_info info;
    vene_model_get_info(m, &info);
    int rows_max = s->n_positions > s->n_heads ? s->n_positions : s->n_heads, n_combos = 0, rc = VENE_OK;
    size_t cap = (size_t)s->n_comp * s->n_layers * rows_max;
    vene_sweep_run *runs = calloc((size_t)2 * s->n_pairs, sizeof *runs);
    vene_sweep_cell *cells = malloc(sizeof *cells * cap * (size_t)s->n_pairs);
    cell_at *at = malloc(sizeof *at * cap);
    double *base_v = calloc((size_t)s->n_pairs, sizeof(double)), *source_v = calloc((size_t)s->n_pairs, sizeof(double));
    float **logp = calloc((size_t)s->n_pairs, sizeof(float *));
    double *grid[MAX_COMPONENTS] = {0};
    cli_grid grids[MAX_COMPONENTS];
    int n_grids = 0;
    cJSON *meta = cJSON_CreateObject();
    memset(grids, 0, sizeof grids);
    for (int c = 0; c < s->n_comp; c++) grid[c] = calloc((size_t)rows_max * s->n_layers, sizeof(double));
    for (int c = 0; c < s->n_comp; c++) if (!grid[c]) rc = VENE_ERR_MEMORY;
    if (rc || !runs || !cells || !at || !base_v || !source_v || !logp || !meta) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        goto done;
    }
    for (int i = 0; i < s->n_pairs; i++)
        for (int side = 0; side < 2; side++) runs[2 * i + side] = (vene_sweep_run){.ids = s->pairs[i].ids[side], .len = s->len};
    for (int c = 0; c < s->n_comp; c++)
        for (int li = 0; li < s->n_layers; li++) {
            int l = s->layers[li], lo = l - s->window / 2, hi = l + (s->window + 1) / 2;
            lo = lo < 0 ? 0 : lo;
            hi = hi > info.n_layer ? info.n_layer : hi;
            int heads = s->heads_of[c] > 0, rows = heads ? s->n_heads : s->n_positions;
            for (int r = 0; r < rows; r++) {
                at[n_combos] = (cell_at){c, r, li};
                for (int i = 0; i < s->n_pairs; i++)
                    cells[(size_t)n_combos * s->n_pairs + i] = (vene_sweep_cell){
                        2 * i + 1, 2 * i, s->components[c], lo, hi - lo, heads ? s->positions : &s->positions[r],
                        heads ? s->n_positions : 1, heads ? s->heads[r] : -1};
                n_combos++;
            }
        }
    acc a = {s, at, info.vocab_size, base_v, source_v, logp, grid, {0}};
    cli_progress_start(&a.pr, "patch");
    vene_sweep_params sp = {.max_memory = max_memory, .on_logits = on_logits, .on_progress = on_progress, .user = &a};
    vene_sweep_stats st;
    rc = vene_sweep(m, runs, 2 * s->n_pairs, cells, n_combos * s->n_pairs, &sp, &st, err);
    cli_progress_end(&a.pr);
    double seconds = cli_now() - a.pr.t0;
    if (rc) goto done;
    for (int c = 0; c < s->n_comp; c++, n_grids++)
        if (make_grid(s, tok, c, grid[c], &grids[c])) {
            rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
            goto done;
        }
    cJSON_AddStringToObject(meta, "command", "patch");
    cJSON_AddStringToObject(meta, "model", dir);
    cJSON_AddStringToObject(meta, "experiment", s->file);
    cJSON_AddStringToObject(meta, "metric", cli_metric_name(s->metric));
    cJSON_AddBoolToObject(meta, "normalize", s->normalize);
    cJSON_AddNumberToObject(meta, "window", s->window);
    cJSON *pj = cJSON_AddArrayToObject(meta, "pairs");
    double mb = 0, ms = 0;
    for (int i = 0; i < s->n_pairs; i++) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "answer_token", s->pairs[i].answer);
        cJSON_AddNumberToObject(o, "contrast_token", s->pairs[i].contrast);
        cJSON_AddNumberToObject(o, "base", base_v[i]);
        cJSON_AddNumberToObject(o, "source", source_v[i]);
        cJSON_AddItemToArray(pj, o);
        mb += base_v[i] / s->n_pairs, ms += source_v[i] / s->n_pairs;
    }
    cJSON *w = cJSON_AddObjectToObject(meta, "work");
    cJSON_AddNumberToObject(w, "seconds", seconds);
    cJSON_AddNumberToObject(w, "cells", n_combos * s->n_pairs);
    cJSON_AddNumberToObject(w, "positions_x_layers", (double)st.units);
    cJSON_AddNumberToObject(w, "cell_by_cell_positions_x_layers", (double)st.naive_units);
    if (!quiet) printf("%s: base %.4g, source %.4g%s\n\n", cli_metric_name(s->metric), mb, ms, s->n_pairs > 1 ? " (means)" : "");
    rc = cli_write_outputs(prefix, meta, grids, n_grids, quiet, err);
    if (!rc)
        fprintf(stderr, "patch: %d cells in %.2f s; %lld positions x layers recomputed, %.3f of one forward per cell; "
                "wrote %s.csv, %s.json and heatmaps\n", n_combos * s->n_pairs, seconds, (long long)st.units,
                st.naive_units ? (double)st.units / st.naive_units : 0.0, prefix, prefix);
done:
    for (int c = 0; c < MAX_COMPONENTS; c++) free(grid[c]);
    for (int c = 0; c < n_grids; c++) cli_grid_free(&grids[c]);
    for (int i = 0; logp && i < s->n_pairs; i++) free(logp[i]);
    free(logp);
    free(base_v);
    free(source_v);
    free(runs);
    free(cells);
    free(at);
    cJSON_Delete(meta);
    return rc;
}

static char *read_all(const char *path, vene_error *err) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        vene_errorf(err, VENE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            char *g = realloc(buf, cap = (cap + 4096) * 2);
            if (!g) break;
            buf = g;
        }
        size_t k = fread(buf + n, 1, 4096, f);
        n += k;
        if (k < 4096) break;
    }
    fclose(f);
    if (buf) buf[n] = '\0';
    else vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
    return buf;
}

int vene_cmd_patch(int argc, char **argv) {
    const char *dir = NULL, *file = NULL, *prefix = "patch";
    size_t max_memory = 0;
    int quiet = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage();
        if (!strcmp(a, "--quiet")) quiet = 1;
        else if (!strcmp(a, "--experiment") && i + 1 < argc) file = argv[++i];
        else if (!strcmp(a, "--out") && i + 1 < argc) prefix = argv[++i];
        else if (!strcmp(a, "--max-memory") && i + 1 < argc) {
            if (!(max_memory = cli_parse_size(argv[++i]))) return vene_cli_fail("patch: bad size \"%s\" for --max-memory", argv[i]);
        } else if (!strcmp(a, "--threads") && i + 1 < argc) {
            char *end = NULL;
            long t = strtol(argv[++i], &end, 10);
            if (*end || t < 1 || t > 1024) return vene_cli_fail("patch: bad thread count \"%s\"", argv[i]);
            omp_set_num_threads((int)t);
        } else if (a[0] == '-' && a[1]) return vene_cli_fail("patch: unknown option \"%s\" (see `vene patch --help`)", a);
        else if (!dir) dir = a;
        else return vene_cli_fail("patch: unexpected argument \"%s\"", a);
    }
    if (!dir || !file) return vene_cli_fail("patch: expected MODEL_DIR and --experiment FILE (see `vene patch --help`)");
    vene_error err = {0};
    vene_model *m = NULL;
    vene_tokenizer *tok = NULL;
    spec s = {.file = file};
    cJSON *j = NULL;
    char *text = read_all(file, &err);
    int rc = text ? VENE_OK : err.code;
    if (!rc && !(j = cJSON_Parse(text))) rc = vene_errorf(&err, VENE_ERR_FORMAT, "%s: not valid JSON", file);
    if (!rc) rc = vene_model_load(dir, NULL, &m, &err);
    if (!rc) rc = vene_tokenizer_load(dir, &tok, &err);
    if (!rc && (rc = parse_spec(j, m, tok, &s, &err))) vene_error_prefix(&err, "%s", file);
    if (!rc) rc = run_patch(&s, m, tok, dir, prefix, max_memory, quiet, &err);
    if (rc) vene_cli_fail("patch: %s", err.msg);
    spec_free(&s);
    cJSON_Delete(j);
    free(text);
    vene_tokenizer_free(tok);
    vene_model_free(m);
    return rc ? 1 : 0;
}
