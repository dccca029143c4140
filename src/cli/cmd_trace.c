/* `vene trace MODEL_DIR --prompt P --subject S --answer A`: ROME's causal tracing as one
 * sweep (vene_sweep): the clean run and the noised runs once, then every restore cell
 * resumed where it changes anything. */
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/sweep_cli.h"
#include "core/error.h"
#include "core/rng.h"
#include "vene.h"

enum { K_BLOCK, K_MLP, K_ATTN, N_KINDS };
static const char *const kind_name[N_KINDS] = {"block", "mlp", "attn"};
static const char *const kind_component[N_KINDS] = {"block_output", "mlp_output", "attention_output"};
static const char *const kind_title[N_KINDS] = {"block output", "MLP output", "attention output"};
static const uint8_t kind_ink[N_KINDS][3] = {{84, 39, 143}, {0, 109, 44}, {165, 15, 21}}; /* ROME's colours */

/* ROME's token categories, for averaging prompts of different shapes. */
enum { C_FIRST, C_MIDDLE, C_LAST, C_NEXT, C_FURTHER, C_END, N_CATS };
static const char *const cat_name[N_CATS] = {"first subject token", "middle subject tokens", "last subject token",
                                             "first subsequent token", "further tokens", "last token"};

typedef struct fact {
    char *prompt, *subject, *answer, *contrast;
} fact;

typedef struct opts {
    const char *dir, *prompts_file, *out;
    fact one;
    int samples, window, metric, quiet, kinds[N_KINDS], seed;
    float noise;
    size_t max_memory;
} opts;

/* One prompt's trace: mean metric per kind, token and layer. */
typedef struct trace {
    int S, L, subj0, n_subj, answer, contrast;
    double clean, corrupted;
    double *grid[N_KINDS];  /* S x L */
    char **labels;          /* S, subject tokens marked * */
    vene_sweep_stats st;
    double seconds;
} trace;

/* Where a cell's score goes. */
typedef struct cell_at {
    int kind, layer, pos;
} cell_at;

typedef struct acc {
    const opts *o;
    trace *t;
    const cell_at *at;
    int V;
    cli_progress pr;
} acc;

static int usage(void) {
    printf("usage: vene trace MODEL_DIR --prompt TEXT --subject TEXT --answer TEXT [options]\n"
           "       vene trace MODEL_DIR --prompts FILE.jsonl [options]\n\n"
           "ROME's causal tracing. The subject's token embeddings are corrupted with Gaussian noise\n"
           "(pyvene's NoiseIntervention on block_input of layer 0); then the clean run's block output at\n"
           "each (layer, token) is restored, one at a time, and so are windows of --window layers of MLP\n"
           "and attention outputs centred on each layer; each is scored by the answer's first token at the\n"
           "last position. Scores are means over the noise samples.\n\n"
           "  --samples N          noise samples (default 10)\n"
           "  --noise SCALE        noise standard deviation (default 3 x the std of the token embeddings)\n"
           "  --seed S             sample i draws numpy RandomState(S + i)'s normals (default 1)\n"
           "  --window W           layers per MLP / attention restore (default 10)\n"
           "  --kinds LIST         which of block,mlp,attn (default all three)\n"
           "  --metric prob|logit-diff   p(answer) (default), or logit(answer) - logit(--contrast)\n"
           "  --contrast TEXT      the other token of logit-diff\n"
           "  --prompts FILE       JSON lines {\"prompt\", \"subject\", \"answer\"[, \"contrast\"]}: the mean over\n"
           "                       prompts, tokens grouped into ROME's six categories\n"
           "  --out PREFIX         PREFIX.csv, PREFIX.json, PREFIX_{block,mlp,attn}.{svg,png} (default trace)\n"
           "  --threads T          threads (default: OpenMP's)\n"
           "  --max-memory SIZE    activations and caches at once, e.g. 512M (default 1G)\n"
           "  --quiet              no heatmaps on stdout\n\n"
           "A space is put before an answer without one (\" Seattle\"). Progress goes to stderr.\n"
           "Example: vene trace models/gpt2 --prompt \"The Space Needle is in downtown\" \\\n"
           "           --subject \"The Space Needle\" --answer Seattle\n");
    return 0;
}

static int on_logits(void *user, int cell, const float *lg, vene_error *err) {
    (void)err;
    acc *a = user;
    trace *t = a->t;
    double v = cli_metric(a->o->metric, lg, a->V, t->answer, t->contrast, NULL);
    if (cell == -1) t->clean = v;
    else if (cell < 0) t->corrupted += v / a->o->samples;
    else t->grid[a->at[cell].kind][(size_t)a->at[cell].pos * t->L + a->at[cell].layer] += v / a->o->samples;
    return VENE_OK;
}

static void on_progress(void *user, int64_t done, int64_t total) { cli_progress_fn(&((acc *)user)->pr, done, total); }

static void trace_free(trace *t) {
    for (int k = 0; k < N_KINDS; k++) free(t->grid[k]);
    for (int p = 0; t->labels && p < t->S; p++) free(t->labels[p]);
    free(t->labels);
}

/* The prompt's tokens, subject, answer and labels (subject tokens marked *). */
static int trace_tokens(const opts *o, const vene_tokenizer *tok, const fact *f, trace *t, int32_t **ids, vene_error *err) {
    size_t n = 0;
    int rc = vene_tokenize(tok, f->prompt, strlen(f->prompt), ids, &n, err);
    if (!rc && n == 0) rc = vene_errorf(err, VENE_ERR_ARG, "prompt \"%s\" has no tokens", f->prompt);
    if (rc) return rc;
    t->S = (int)n;
    if ((rc = cli_find_span(tok, f->prompt, *ids, t->S, f->subject, &t->subj0, &t->n_subj, err))) return rc;
    if (!t->n_subj)
        return vene_errorf(err, VENE_ERR_ARG, "subject \"%s\" does not occur in prompt \"%s\"", f->subject, f->prompt);
    if ((rc = cli_answer_token(tok, f->answer, &t->answer, err))) return rc;
    t->contrast = t->answer;
    if (o->metric == METRIC_LOGIT_DIFF) {
        if (!f->contrast) return vene_errorf(err, VENE_ERR_ARG, "metric logit-diff needs a contrast token");
        if ((rc = cli_answer_token(tok, f->contrast, &t->contrast, err))) return rc;
    }
    t->labels = calloc((size_t)t->S, sizeof(char *));
    if (!t->labels) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    for (int p = 0; p < t->S; p++) {
        char *lb = cli_token_label(tok, (*ids)[p]);
        size_t len = lb ? strlen(lb) : 0;
        t->labels[p] = malloc(len + 2);
        if (t->labels[p]) snprintf(t->labels[p], len + 2, "%s%s", lb ? lb : "", p >= t->subj0 && p < t->subj0 + t->n_subj ? "*" : "");
        free(lb);
        if (!t->labels[p]) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    }
    return VENE_OK;
}

/* Runs (clean, then the noise samples) and cells, swept; t filled. */
static int trace_one(const opts *o, const vene_model *m, const vene_tokenizer *tok, const fact *f, trace *t,
                     vene_error *err) {
    vene_model_info info;
    vene_model_get_info(m, &info);
    memset(t, 0, sizeof *t);
    const int L = info.n_layer, D = info.d_model, N = o->samples;
    t->L = L;
    int32_t *ids = NULL;
    int rc = trace_tokens(o, tok, f, t, &ids, err);
    if (rc) {
        vene_free(ids);
        return rc;
    }
    const int S = t->S;
    for (int k = 0; k < N_KINDS; k++) t->grid[k] = calloc((size_t)S * L, sizeof(double));
    int *subj = malloc(sizeof(int) * (size_t)t->n_subj), *pos = malloc(sizeof(int) * (size_t)S);
    double *noise = malloc(sizeof(double) * (size_t)N * t->n_subj * D);
    vene_sweep_run *runs = malloc(sizeof *runs * (size_t)(N + 1));
    size_t max_cells = (size_t)N_KINDS * L * S * N;
    vene_sweep_cell *cells = malloc(sizeof *cells * max_cells);
    cell_at *at = malloc(sizeof *at * max_cells);
    if (!t->grid[0] || !t->grid[1] || !t->grid[2] || !subj || !pos || !noise || !runs || !cells || !at) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        goto done;
    }
    for (int p = 0; p < S; p++) pos[p] = p;
    for (int i = 0; i < t->n_subj; i++) subj[i] = t->subj0 + i;
    runs[0] = (vene_sweep_run){.ids = ids, .len = S};
    for (int i = 0; i < N; i++) {
        vene_mt mt;
        vene_mt_seed(&mt, (uint32_t)(o->seed + i));
        double *nz = noise + (size_t)i * t->n_subj * D;
        for (int j = 0; j < t->n_subj * D; j++) nz[j] = vene_mt_gauss(&mt);
        runs[1 + i] = (vene_sweep_run){ids, S, subj, t->n_subj, nz, o->noise};
    }
    int n = 0;
    for (int k = 0; k < N_KINDS; k++) {
        if (!o->kinds[k]) continue;
        for (int l = 0; l < L; l++) { /* ROME's window: layers l - W/2 .. l + ceil(W/2) - 1 */
            int lo = k == K_BLOCK ? l : l - o->window / 2, hi = k == K_BLOCK ? l + 1 : l + (o->window + 1) / 2;
            lo = lo < 0 ? 0 : lo;
            hi = hi > L ? L : hi;
            for (int p = 0; p < S; p++)
                for (int i = 0; i < N; i++) {
                    at[n] = (cell_at){k, l, p};
                    cells[n++] = (vene_sweep_cell){1 + i, 0, kind_component[k], lo, hi - lo, &pos[p], 1, -1};
                }
        }
    }
    acc a = {o, t, at, info.vocab_size, {0}};
    cli_progress_start(&a.pr, "trace");
    vene_sweep_params sp = {.max_memory = o->max_memory, .on_logits = on_logits, .on_progress = on_progress, .user = &a};
    rc = vene_sweep(m, runs, N + 1, cells, n, &sp, &t->st, err);
    cli_progress_end(&a.pr);
    t->seconds = cli_now() - a.pr.t0;
done:
    free(subj);
    free(pos);
    free(noise);
    free(runs);
    free(cells);
    free(at);
    vene_free(ids);
    return rc;
}

/* ---------------------------------------------------------------- many prompts */

/* ROME's categories of position p (a one-token subject is both first and last). */
static int categories(const trace *t, int p, int out[2]) {
    int last = t->subj0 + t->n_subj - 1, n = 0;
    if (p == t->subj0) out[n++] = C_FIRST;
    if (p == last) out[n++] = C_LAST;
    if (n) return n;
    if (p > t->subj0 && p < last) out[n++] = C_MIDDLE;
    else if (p == t->S - 1) out[n++] = C_END;
    else if (p == last + 1) out[n++] = C_NEXT;
    else if (p > last + 1) out[n++] = C_FURTHER;
    return n; /* before the subject: none */
}

/* Add one prompt's per-category means (kind x category x layer) to sum; seen counts the
 * prompts that have each category. */
static void add_categories(const trace *t, double *sum, int *seen) {
    const int L = t->L;
    for (int c = 0; c < N_CATS; c++) {
        int n = 0, cs[2];
        for (int p = 0; p < t->S; p++) {
            int k = categories(t, p, cs);
            n += (k > 0 && cs[0] == c) || (k > 1 && cs[1] == c);
        }
        if (!n) continue;
        seen[c]++;
        for (int p = 0; p < t->S; p++) {
            int k = categories(t, p, cs);
            if (!((k > 0 && cs[0] == c) || (k > 1 && cs[1] == c))) continue;
            for (int kind = 0; kind < N_KINDS; kind++)
                for (int l = 0; l < L; l++) sum[((size_t)kind * N_CATS + c) * L + l] += t->grid[kind][(size_t)p * L + l] / n;
        }
    }
}

static char *dup_field(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? strdup(v->valuestring) : NULL;
}

/* One fact per non-empty line of a JSON lines file. */
static int read_facts(const char *path, int need_contrast, fact **out, int *n_out, vene_error *err) {
    FILE *f = fopen(path, "r");
    if (!f) return vene_errorf(err, VENE_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    char *line = NULL;
    size_t cap = 0;
    int n = 0, lineno = 0, rc = VENE_OK;
    fact *facts = NULL;
    while (!rc && getline(&line, &cap, f) > 0) {
        lineno++;
        const char *s = line;
        while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n') s++;
        if (!*s) continue;
        cJSON *o = cJSON_Parse(s);
        fact *grown = realloc(facts, sizeof *facts * (size_t)(n + 1));
        if (!grown) rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        else facts = grown;
        if (!rc && !cJSON_IsObject(o)) rc = vene_errorf(err, VENE_ERR_FORMAT, "%s:%d: not a JSON object", path, lineno);
        if (!rc) {
            fact *x = &facts[n++];
            *x = (fact){dup_field(o, "prompt"), dup_field(o, "subject"), dup_field(o, "answer"), dup_field(o, "contrast")};
            const char *missing = !x->prompt ? "prompt" : !x->subject ? "subject" : !x->answer ? "answer"
                                  : need_contrast && !x->contrast ? "contrast" : NULL;
            if (missing) rc = vene_errorf(err, VENE_ERR_FORMAT, "%s:%d: missing string \"%s\"", path, lineno, missing);
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    if (!rc && n == 0) rc = vene_errorf(err, VENE_ERR_FORMAT, "%s: no prompts", path);
    *out = facts;
    *n_out = n;
    return rc;
}

static void free_facts(fact *f, int n) {
    for (int i = 0; i < n; i++) free(f[i].prompt), free(f[i].subject), free(f[i].answer), free(f[i].contrast);
    free(f);
}

/* ---------------------------------------------------------------- the command */

/* "block,mlp" -> kinds[] flags; 0 on an unknown name or none. */
static int parse_kinds(const char *v, int kinds[N_KINDS]) {
    memset(kinds, 0, sizeof(int) * N_KINDS);
    for (const char *p = v; *p;) {
        size_t n = strcspn(p, ",");
        int k = 0;
        while (k < N_KINDS && !(strlen(kind_name[k]) == n && !strncmp(p, kind_name[k], n))) k++;
        if (k == N_KINDS) return 0;
        kinds[k] = 1;
        p += n + (p[n] == ',');
    }
    return kinds[0] || kinds[1] || kinds[2];
}

static int parse(int argc, char **argv, opts *o) {
    o->samples = 10, o->window = 10, o->seed = 1, o->out = "trace", o->noise = -1;
    o->kinds[0] = o->kinds[1] = o->kinds[2] = 1;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        char *end = NULL;
        if (!strcmp(a, "--quiet")) { o->quiet = 1; continue; }
        if (a[0] != '-' || !a[1]) {
            if (o->dir) return vene_cli_fail("trace: unexpected argument \"%s\"", a);
            o->dir = a;
            continue;
        }
        if (!v) return vene_cli_fail("trace: %s needs a value (see `vene trace --help`)", a);
        i++;
        long n = strtol(v, &end, 10);
        int is_int = *v && !*end, ok = 1;
        if (!strcmp(a, "--prompt")) o->one.prompt = (char *)v;
        else if (!strcmp(a, "--subject")) o->one.subject = (char *)v;
        else if (!strcmp(a, "--answer")) o->one.answer = (char *)v;
        else if (!strcmp(a, "--contrast")) o->one.contrast = (char *)v;
        else if (!strcmp(a, "--prompts")) o->prompts_file = v;
        else if (!strcmp(a, "--out")) o->out = v;
        else if (!strcmp(a, "--samples")) ok = is_int && n >= 1 && n <= 1000, o->samples = (int)n;
        else if (!strcmp(a, "--window")) ok = is_int && n >= 1 && n <= 10000, o->window = (int)n;
        else if (!strcmp(a, "--seed")) ok = is_int && n >= 0 && n <= 2000000000, o->seed = (int)n;
        else if (!strcmp(a, "--threads")) ok = is_int && n >= 1 && n <= 1024, omp_set_num_threads((int)n);
        else if (!strcmp(a, "--noise")) o->noise = strtof(v, &end), ok = *v && !*end && o->noise >= 0 && o->noise < 1e6;
        else if (!strcmp(a, "--max-memory")) ok = (o->max_memory = cli_parse_size(v)) > 0;
        else if (!strcmp(a, "--metric")) ok = (o->metric = cli_metric_parse(v, 0)) >= 0;
        else if (!strcmp(a, "--kinds")) ok = parse_kinds(v, o->kinds);
        else return vene_cli_fail("trace: unknown option \"%s\" (see `vene trace --help`)", a);
        if (!ok) return vene_cli_fail("trace: bad value \"%s\" for %s (see `vene trace --help`)", v, a);
    }
    if (!o->dir) return vene_cli_fail("trace: expected MODEL_DIR (see `vene trace --help`)");
    if (!o->prompts_file && !(o->one.prompt && o->one.subject && o->one.answer))
        return vene_cli_fail("trace: expected --prompt, --subject and --answer, or --prompts FILE");
    if (o->prompts_file && (o->one.prompt || o->one.subject || o->one.answer))
        return vene_cli_fail("trace: --prompts FILE replaces --prompt, --subject and --answer");
    if (o->metric == METRIC_LOGIT_DIFF && !o->prompts_file && !o->one.contrast)
        return vene_cli_fail("trace: --metric logit-diff needs --contrast TEXT");
    return 0;
}

/* The three heatmaps: rows (tokens or categories) x layers. */
static int make_grids(const opts *o, const trace *t, int rows, double *const vals[N_KINDS], char **labels, int n_prompts,
                      const char *answer, cli_grid *g, int *n_grids) {
    *n_grids = 0;
    for (int k = 0; k < N_KINDS; k++) {
        if (!o->kinds[k]) continue;
        cli_grid *x = &g[(*n_grids)++];
        if (cli_grid_init(x, kind_name[k], rows, t->L)) return VENE_ERR_MEMORY;
        memcpy(x->values, vals[k], sizeof(double) * (size_t)rows * t->L);
        for (int r = 0; r < rows; r++) x->row_labels[r] = strdup(labels[r]);
        size_t tl = strlen(answer) + 160;
        x->title = malloc(tl);
        if (!x->title) return VENE_ERR_MEMORY;
        if (o->metric == METRIC_PROB) snprintf(x->title, tl, "p(\"%s\"), %s restored", answer, kind_title[k]);
        else snprintf(x->title, tl, "logit difference, %s restored", kind_title[k]);
        if (n_prompts > 1) snprintf(x->title + strlen(x->title), tl - strlen(x->title), " (%d prompts)", n_prompts);
        x->col_title = k == K_BLOCK ? "layer" : "layer (centre of the restored window)";
        memcpy(x->ink, kind_ink[k], 3);
        x->lo = t->corrupted; /* ROME's scale: the corrupted score to the best restore */
        x->hi = t->corrupted;
        for (size_t i = 0; i < (size_t)rows * t->L; i++)
            if (!isnan(x->values[i])) x->lo = fmin(x->lo, x->values[i]), x->hi = fmax(x->hi, x->values[i]);
        x->lo = fmax(x->lo, fmin(t->corrupted, x->hi));
        if (x->hi <= x->lo) x->hi = x->lo + 1e-9;
    }
    return VENE_OK;
}

static void add_work(cJSON *meta, const vene_sweep_stats *st, double seconds, int cells) {
    cJSON *w = cJSON_AddObjectToObject(meta, "work");
    cJSON_AddNumberToObject(w, "seconds", seconds);
    cJSON_AddNumberToObject(w, "cells", cells);
    cJSON_AddNumberToObject(w, "positions_x_layers", (double)st->units);
    cJSON_AddNumberToObject(w, "last_layer_keys_only", (double)st->kv_units);
    cJSON_AddNumberToObject(w, "cell_by_cell_positions_x_layers", (double)st->naive_units);
    cJSON_AddNumberToObject(w, "chunks", st->chunks);
    cJSON_AddNumberToObject(w, "peak_bytes", (double)st->peak_bytes);
}

/* Trace every fact, average them (over ROME's categories when there are several), write
 * the files and print the heatmaps. */
static int run_facts(const opts *o, const vene_model *m, const vene_tokenizer *tok, const fact *facts, int n,
                     vene_error *err) {
    vene_model_info info;
    vene_model_get_info(m, &info);
    const int L = info.n_layer;
    trace t, agg = {0};
    cJSON *meta = cJSON_CreateObject();
    cli_grid grids[N_KINDS];
    int n_grids = 0, rc = VENE_OK, rows = N_CATS, seen[N_CATS] = {0}, cells = 0, have_t = 0;
    double *sum = calloc((size_t)N_KINDS * N_CATS * L, sizeof(double)), *vals[N_KINDS];
    vene_sweep_stats tot = {0};
    if (!meta || !sum) {
        free(sum);
        cJSON_Delete(meta);
        return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    }
    memset(grids, 0, sizeof grids);
    cJSON_AddStringToObject(meta, "command", "trace");
    cJSON_AddStringToObject(meta, "model", o->dir);
    cJSON_AddStringToObject(meta, "metric", cli_metric_name(o->metric));
    cJSON_AddNumberToObject(meta, "samples", o->samples);
    cJSON_AddNumberToObject(meta, "noise_level", o->noise);
    cJSON_AddNumberToObject(meta, "seed", o->seed);
    cJSON_AddNumberToObject(meta, "window", o->window);
    cJSON_AddNumberToObject(meta, "layers", L);
    for (int i = 0; i < n && !rc; i++) {
        if ((rc = trace_one(o, m, tok, &facts[i], &t, err))) {
            if (n > 1) vene_error_prefix(err, "prompt %d (\"%s\")", i + 1, facts[i].prompt);
            trace_free(&t);
            break;
        }
        agg.clean += t.clean / n, agg.corrupted += t.corrupted / n, agg.seconds += t.seconds;
        tot.units += t.st.units, tot.kv_units += t.st.kv_units, tot.naive_units += t.st.naive_units;
        tot.chunks += t.st.chunks;
        tot.peak_bytes = t.st.peak_bytes > tot.peak_bytes ? t.st.peak_bytes : tot.peak_bytes;
        cells += (int)(t.st.naive_units / ((int64_t)L * t.S));
        if (n == 1) { /* t kept for its token rows */
            have_t = 1;
            break;
        }
        add_categories(&t, sum, seen);
        trace_free(&t);
    }
    if (rc) goto done;
    agg.L = L;
    char **labels = (char **)cat_name;
    if (n == 1) {
        rows = t.S;
        for (int k = 0; k < N_KINDS; k++) vals[k] = t.grid[k];
        labels = t.labels;
        cJSON_AddStringToObject(meta, "prompt", facts[0].prompt);
        cJSON_AddStringToObject(meta, "subject", facts[0].subject);
        cJSON_AddStringToObject(meta, "answer", facts[0].answer);
        cJSON_AddNumberToObject(meta, "answer_token", t.answer);
        if (o->metric == METRIC_LOGIT_DIFF) cJSON_AddNumberToObject(meta, "contrast_token", t.contrast);
        cJSON *sp = cJSON_AddArrayToObject(meta, "subject_positions");
        for (int p = t.subj0; p < t.subj0 + t.n_subj; p++) cJSON_AddItemToArray(sp, cJSON_CreateNumber(p));
    } else {
        for (int k = 0; k < N_KINDS; k++) {
            vals[k] = sum + (size_t)k * N_CATS * L;
            for (int c = 0; c < N_CATS; c++)
                for (int l = 0; l < L; l++) vals[k][(size_t)c * L + l] = seen[c] ? vals[k][(size_t)c * L + l] / seen[c] : NAN;
        }
        cJSON_AddStringToObject(meta, "prompts_file", o->prompts_file);
        cJSON_AddNumberToObject(meta, "prompts", n);
        cJSON *pc = cJSON_AddArrayToObject(meta, "prompts_per_row");
        for (int c = 0; c < N_CATS; c++) cJSON_AddItemToArray(pc, cJSON_CreateNumber(seen[c]));
    }
    cJSON_AddNumberToObject(meta, "clean", agg.clean);
    cJSON_AddNumberToObject(meta, "corrupted", agg.corrupted);
    add_work(meta, &tot, agg.seconds, cells);
    char *answer = n == 1 ? cli_token_label(tok, t.answer) : NULL;
    rc = make_grids(o, &agg, rows, vals, labels, n, answer ? answer : "answer", grids, &n_grids);
    free(answer);
    if (rc) {
        rc = vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        goto done;
    }
    if (!o->quiet)
        printf("%s: clean %.4g, corrupted %.4g (%d noise samples at level %.4g%s)\n\n", cli_metric_name(o->metric),
               agg.clean, agg.corrupted, o->samples, o->noise, n > 1 ? ", means over the prompts" : "");
    rc = cli_write_outputs(o->out, meta, grids, n_grids, o->quiet, err);
    if (!rc)
        fprintf(stderr, "trace: %d cells in %.2f s; %lld positions x layers recomputed, %.3f of one forward per cell; "
                "wrote %s.csv, %s.json and heatmaps\n", cells, agg.seconds, (long long)tot.units,
                tot.naive_units ? (double)tot.units / tot.naive_units : 0.0, o->out, o->out);
done:
    if (have_t) trace_free(&t);
    for (int k = 0; k < n_grids; k++) cli_grid_free(&grids[k]);
    cJSON_Delete(meta);
    free(sum);
    return rc;
}

int vene_cmd_trace(int argc, char **argv) {
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage();
    opts o = {0};
    if (parse(argc, argv, &o)) return 1;
    vene_error err = {0};
    vene_model *m = NULL;
    vene_tokenizer *tok = NULL;
    fact *facts = &o.one;
    int n_facts = 1, rc = VENE_OK;
    if (o.prompts_file && read_facts(o.prompts_file, o.metric == METRIC_LOGIT_DIFF, &facts, &n_facts, &err)) {
        free_facts(facts, n_facts);
        return vene_cli_fail("trace: %s", err.msg);
    }
    if ((rc = vene_model_load(o.dir, NULL, &m, &err)) || (rc = vene_tokenizer_load(o.dir, &tok, &err))) goto out;
    if (o.noise < 0 && (rc = vene_sweep_noise_level(m, &o.noise, &err))) goto out;
    rc = run_facts(&o, m, tok, facts, n_facts, &err);
out:
    if (rc) vene_cli_fail("trace: %s", err.msg);
    if (o.prompts_file) free_facts(facts, n_facts);
    vene_tokenizer_free(tok);
    vene_model_free(m);
    return rc ? 1 : 0;
}
