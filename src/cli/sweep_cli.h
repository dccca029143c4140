/* What `vene trace` and `vene patch` share: options (threads, memory sizes), answer
 * tokens and token labels, the metrics, progress on stderr, and the outputs of a sweep
 * (grids as CSV, JSON, SVG, PNG and on the terminal). */
#ifndef VENE_CLI_SWEEP_CLI_H
#define VENE_CLI_SWEEP_CLI_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "vene.h"

enum { METRIC_PROB, METRIC_LOGIT_DIFF, METRIC_KL };

/* "prob", "logit-diff", "kl" (kl only when allow_kl); -1 otherwise. */
int cli_metric_parse(const char *s, int allow_kl);
const char *cli_metric_name(int metric);
/* The metric at one position's logits: p(answer), logit(answer) - logit(contrast), or
 * KL(ref || softmax(logits)) with ref_logp the reference's log-probabilities. */
double cli_metric(int metric, const float *logits, int V, int answer, int contrast, const float *ref_logp);
void cli_log_softmax(const float *logits, int V, float *out);

/* "512M", "2G", "100000" (bytes) -> bytes; 0 on a bad size. */
size_t cli_parse_size(const char *s);

/* The first token of an answer, a space put in front when it has none (" Paris"). */
int cli_answer_token(const vene_tokenizer *tok, const char *text, int32_t *id, vene_error *err);
/* A token as readable text (malloc'd): its bytes, with newlines and tabs written \n, \t. */
char *cli_token_label(const vene_tokenizer *tok, int32_t id);
/* Positions of the tokens that overlap the first occurrence of `part` in `text` (whose
 * tokens are ids[0..n-1]); *count = 0 when part does not occur. */
int cli_find_span(const vene_tokenizer *tok, const char *text, const int32_t *ids, int n, const char *part, int *first,
                  int *count, vene_error *err);

/* Progress lines on stderr ("trace: 42%"): overwritten in place on a terminal, every 10%
 * otherwise. */
typedef struct cli_progress {
    const char *what;
    double t0;
    int tty, shown;
} cli_progress;
void cli_progress_start(cli_progress *p, const char *what);
void cli_progress_fn(void *user, int64_t done, int64_t total);
void cli_progress_end(cli_progress *p);
double cli_now(void);

/* One heatmap of a sweep: rows (tokens, token categories or heads) x cols (layers). */
typedef struct cli_grid {
    const char *name;        /* in file names: PREFIX_<name>.svg */
    char *title;             /* owned */
    const char *col_title;
    int rows, cols;
    double *values;          /* owned, rows x cols */
    char **row_labels;       /* owned */
    int *row_ids, *col_ids;  /* owned: the rows' positions (or heads) and the columns' layers;
                                NULL = 0, 1, ... */
    double lo, hi;
    uint8_t ink[3];
} cli_grid;
int cli_grid_init(cli_grid *g, const char *name, int rows, int cols);
void cli_grid_free(cli_grid *g);

/* PREFIX.csv (grid,row,label,layer,value; row = position, head or category), PREFIX_<name>.svg and .png for each grid, and
 * PREFIX.json = meta (the caller's, the grids added to it); prints each grid on stdout
 * unless quiet. Every file is written atomically. */
int cli_write_outputs(const char *prefix, cJSON *meta, const cli_grid *grids, int n, int quiet, vene_error *err);

#endif
