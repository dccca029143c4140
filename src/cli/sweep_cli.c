#include "cli/sweep_cli.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "io/atomic.h"
#include "io/heatmap.h"

/* ---------------------------------------------------------------- metrics */

int cli_metric_parse(const char *s, int allow_kl) {
    if (!strcmp(s, "prob")) return METRIC_PROB;
    if (!strcmp(s, "logit-diff")) return METRIC_LOGIT_DIFF;
    if (allow_kl && !strcmp(s, "kl")) return METRIC_KL;
    return -1;
}

const char *cli_metric_name(int metric) {
    return metric == METRIC_PROB ? "prob" : metric == METRIC_LOGIT_DIFF ? "logit-diff" : "kl";
}

void cli_log_softmax(const float *logits, int V, float *out) {
    double mx = logits[0], s = 0;
    for (int v = 1; v < V; v++) mx = logits[v] > mx ? logits[v] : mx;
    for (int v = 0; v < V; v++) s += exp((double)logits[v] - mx);
    double lse = mx + log(s);
    for (int v = 0; v < V; v++) out[v] = (float)((double)logits[v] - lse);
}

double cli_metric(int metric, const float *logits, int V, int answer, int contrast, const float *ref_logp) {
    if (metric == METRIC_LOGIT_DIFF) return (double)logits[answer] - (double)logits[contrast];
    double mx = logits[0], s = 0;
    for (int v = 1; v < V; v++) mx = logits[v] > mx ? logits[v] : mx;
    for (int v = 0; v < V; v++) s += exp((double)logits[v] - mx);
    double lse = mx + log(s);
    if (metric == METRIC_PROB) return exp((double)logits[answer] - lse);
    double kl = 0;
    for (int v = 0; v < V; v++) kl += exp((double)ref_logp[v]) * ((double)ref_logp[v] - ((double)logits[v] - lse));
    return kl;
}

/* ---------------------------------------------------------------- options, tokens */

size_t cli_parse_size(const char *s) {
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || !(v > 0)) return 0;
    double unit = 1;
    switch (toupper((unsigned char)*end)) {
    case 'K': unit = 1024.0; end++; break;
    case 'M': unit = 1024.0 * 1024; end++; break;
    case 'G': unit = 1024.0 * 1024 * 1024; end++; break;
    default: break;
    }
    if (*end == 'B' || *end == 'b') end++;
    if (*end || v * unit > 1e15) return 0;
    return (size_t)(v * unit);
}

int cli_answer_token(const vene_tokenizer *tok, const char *text, int32_t *id, vene_error *err) {
    size_t len = strlen(text), n = 0;
    char *spaced = malloc(len + 2);
    if (!spaced) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    snprintf(spaced, len + 2, "%s%s", isspace((unsigned char)text[0]) ? "" : " ", text);
    int32_t *ids = NULL;
    int rc = vene_tokenize(tok, spaced, strlen(spaced), &ids, &n, err);
    if (!rc && n == 0) rc = vene_errorf(err, VENE_ERR_ARG, "answer \"%s\" has no tokens", text);
    if (!rc) *id = ids[0];
    vene_free(ids);
    free(spaced);
    return rc;
}

char *cli_token_label(const vene_tokenizer *tok, int32_t id) {
    char *text = NULL;
    size_t len = 0;
    if (vene_detokenize(tok, &id, 1, &text, &len, NULL) != VENE_OK) len = 0;
    char *out = malloc(2 * len + 1);
    size_t o = 0;
    for (size_t i = 0; out && i < len; i++) {
        if (text[i] == '\n' || text[i] == '\t') out[o++] = '\\', out[o++] = text[i] == '\n' ? 'n' : 't';
        else if ((unsigned char)text[i] >= 0x20) out[o++] = text[i];
    }
    if (out) out[o] = '\0';
    vene_free(text);
    return out;
}

int cli_find_span(const vene_tokenizer *tok, const char *text, const int32_t *ids, int n, const char *part, int *first,
                  int *count, vene_error *err) {
    *first = *count = 0;
    const char *at = *part ? strstr(text, part) : NULL;
    if (!at) return VENE_OK;
    size_t lo = (size_t)(at - text), hi = lo + strlen(part), off = 0;
    for (int i = 0; i < n; i++) { /* each token's bytes, in order, are the text's */
        char *piece = NULL;
        size_t len = 0;
        int rc = vene_detokenize(tok, &ids[i], 1, &piece, &len, err);
        vene_free(piece);
        if (rc) return rc;
        if (off < hi && off + len > lo) {
            if (!*count) *first = i;
            (*count)++;
        }
        off += len;
    }
    return VENE_OK;
}

/* ---------------------------------------------------------------- progress */

double cli_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void cli_progress_start(cli_progress *p, const char *what) {
    p->what = what;
    p->t0 = cli_now();
    p->tty = isatty(STDERR_FILENO);
    p->shown = -1;
}

void cli_progress_fn(void *user, int64_t done, int64_t total) {
    cli_progress *p = user;
    int pct = total > 0 ? (int)(100 * done / total) : 100, step = p->tty ? 1 : 10;
    if (pct / step == p->shown / step && p->shown >= 0) return;
    p->shown = pct;
    if (p->tty) fprintf(stderr, "\r%s: %3d%% (%.1f s)", p->what, pct, cli_now() - p->t0);
    else fprintf(stderr, "%s: %3d%% (%.1f s)\n", p->what, pct, cli_now() - p->t0);
}

void cli_progress_end(cli_progress *p) {
    if (p->tty && p->shown >= 0) fputc('\n', stderr);
}

/* ---------------------------------------------------------------- grids and files */

int cli_grid_init(cli_grid *g, const char *name, int rows, int cols) {
    memset(g, 0, sizeof *g);
    g->name = name;
    g->rows = rows;
    g->cols = cols;
    g->values = calloc((size_t)rows * cols, sizeof(double));
    g->row_labels = calloc((size_t)rows, sizeof(char *));
    return g->values && g->row_labels ? VENE_OK : VENE_ERR_MEMORY;
}

void cli_grid_free(cli_grid *g) {
    for (int r = 0; g->row_labels && r < g->rows; r++) free(g->row_labels[r]);
    free(g->row_labels);
    free(g->row_ids);
    free(g->col_ids);
    free(g->values);
    free(g->title);
    memset(g, 0, sizeof *g);
}

/* CSV field: quoted when it holds a comma, quote or line break. */
static void csv_field(FILE *f, const char *s) {
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static int write_csv(const char *path, const cli_grid *grids, int n, vene_error *err) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) return vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
    fputs("grid,row,label,layer,value\n", f);
    for (int k = 0; k < n; k++)
        for (int r = 0; r < grids[k].rows; r++)
            for (int c = 0; c < grids[k].cols; c++) {
                const cli_grid *g = &grids[k];
                fprintf(f, "%s,%d,", g->name, g->row_ids ? g->row_ids[r] : r);
                csv_field(f, g->row_labels[r] ? g->row_labels[r] : "");
                fprintf(f, ",%d,%.9g\n", g->col_ids ? g->col_ids[c] : c, g->values[(size_t)r * g->cols + c]);
            }
    int ok = fclose(f) == 0;
    int rc = ok ? vene_write_atomic(path, buf, len, err) : vene_errorf(err, VENE_ERR_MEMORY, "%s: out of memory", path);
    free(buf);
    return rc;
}

static cJSON *grid_json(const cli_grid *g) {
    cJSON *o = cJSON_CreateObject(), *rows = cJSON_AddArrayToObject(o, "rows"), *v = cJSON_AddArrayToObject(o, "values");
    cJSON_AddStringToObject(o, "title", g->title ? g->title : "");
    if (g->row_ids) cJSON_AddItemToObject(o, "row_ids", cJSON_CreateIntArray(g->row_ids, g->rows));
    if (g->col_ids) cJSON_AddItemToObject(o, "layers", cJSON_CreateIntArray(g->col_ids, g->cols));
    for (int r = 0; r < g->rows; r++) {
        cJSON_AddItemToArray(rows, cJSON_CreateString(g->row_labels[r] ? g->row_labels[r] : ""));
        cJSON_AddItemToArray(v, cJSON_CreateDoubleArray(g->values + (size_t)r * g->cols, g->cols));
    }
    return o;
}

/* Column labels: the layers' numbers. */
static char **col_labels(const cli_grid *g) {
    char **l = calloc((size_t)g->cols, sizeof(char *));
    for (int c = 0; l && c < g->cols; c++) {
        l[c] = malloc(12);
        if (l[c]) snprintf(l[c], 12, "%d", g->col_ids ? g->col_ids[c] : c);
    }
    return l;
}

int cli_write_outputs(const char *prefix, cJSON *meta, const cli_grid *grids, int n, int quiet, vene_error *err) {
    size_t pl = strlen(prefix) + 64;
    char *path = malloc(pl);
    int rc = path ? VENE_OK : vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    cJSON *gj = cJSON_AddObjectToObject(meta, "grids");
    for (int k = 0; !rc && k < n; k++) {
        const cli_grid *g = &grids[k];
        char **cl = col_labels(g);
        vene_heatmap hm = {g->rows, g->cols, g->values, (const char *const *)g->row_labels, (const char *const *)cl,
                           g->title, g->col_title, g->lo, g->hi, {g->ink[0], g->ink[1], g->ink[2]}};
        snprintf(path, pl, "%s_%s.svg", prefix, g->name);
        rc = vene_heatmap_svg(&hm, path, err);
        snprintf(path, pl, "%s_%s.png", prefix, g->name);
        if (!rc) rc = vene_heatmap_png(&hm, path, err);
        if (!quiet) {
            vene_heatmap_print(&hm, stdout, isatty(STDOUT_FILENO));
            putchar('\n');
        }
        cJSON_AddItemToObject(gj, g->name, grid_json(g));
        for (int c = 0; cl && c < g->cols; c++) free(cl[c]);
        free(cl);
    }
    if (!rc) {
        snprintf(path, pl, "%s.csv", prefix);
        rc = write_csv(path, grids, n, err);
    }
    if (!rc) {
        char *text = cJSON_Print(meta);
        snprintf(path, pl, "%s.json", prefix);
        rc = text ? vene_write_atomic(path, text, strlen(text), err) : vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
        free(text);
    }
    free(path);
    return rc;
}
