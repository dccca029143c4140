/* `vene generate MODEL_DIR PROMPT`: KV-cached decoding that prints each token as it is
 * made, optionally with an experiment file's interventions (--experiment) and the
 * unintervened continuation beside the intervened one (--compare). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"
#include "core/error.h"
#include "engine/engine.h"
#include "vene.h"

static int usage(void) {
    printf("usage: vene generate MODEL_DIR PROMPT [--experiment FILE [--compare]] [--max-new-tokens N]\n"
           "                    [--temperature T] [--top-k K] [--top-p P] [--seed S] [--no-eos]\n\n"
           "Continues PROMPT (GPT-2 or GPT-Neo, KV-cached) and prints each token on stdout as soon as it\n"
           "is made. Stops after --max-new-tokens (default 20) or after the model's eos_token_id\n"
           "(--no-eos: never).\n\n"
           "Decoding is greedy unless --temperature T > 0: then tokens are sampled from softmax(logits / T),\n"
           "restricted to the K most likely (--top-k) and to the most likely tokens whose probabilities\n"
           "sum to P (--top-p). --seed S (default 0) makes sampling repeatable.\n\n"
           "--experiment FILE applies an experiment file's interventions while generating (format:\n"
           "docs/experiment-format.md): its config, intervention_params, sources, unit_locations,\n"
           "subspaces, source_representations and generate.intervene_on_prompt (pyvene's semantics; by\n"
           "default every new token is intervened). MODEL_DIR, PROMPT and the options above take the\n"
           "place of the file's model, base and generate lengths; its run and outputs are ignored.\n"
           "--compare also decodes the unintervened continuation, in lock-step with the same random draws,\n"
           "and prints the two side by side, one step per line, then both texts.\n\n"
           "Timing goes to stderr. Example:\n"
           "  vene generate models/gpt2 \"Once upon a time\" --experiment happy.json --compare\n");
    return 0;
}

typedef struct printer {
    vene_tokenizer *tok;
    int compare;
    int have_orig, orig_step; /* --compare: the original token waiting for its intervened twin */
    char orig[64];
    int n_tokens;
    int32_t *ids[2]; /* --compare: row 0's continuations, original and intervened */
    int n[2], cap;
    /* Text is decoded as prompt + continuation and printed past the prompt's own text: a
     * token decoded alone loses what joins it to its neighbours (WordLevel's spaces, a
     * SentencePiece word start). */
    int32_t *seq;     /* the prompt's ids, then the streamed continuation */
    size_t n_prompt, n_seq, prompt_len, printed;
} printer;

/* decode(seq[0 .. n_prompt + n)) past the prompt's text (malloc'd, or NULL); *len its bytes. */
static char *continuation_text(const printer *pr, size_t n, size_t *len) {
    char *text = NULL;
    size_t all = 0;
    *len = 0;
    if (vene_detokenize(pr->tok, pr->seq, pr->n_prompt + n, &text, &all, NULL) != VENE_OK) return NULL;
    char *out = malloc(all + 1);
    if (out) {
        *len = all > pr->prompt_len ? all - pr->prompt_len : 0;
        memcpy(out, text + (all - *len), *len);
        out[*len] = '\0';
    }
    vene_free(text);
    return out;
}

/* A token's text, quoted, with control bytes and quotes escaped. */
static void quoted(const vene_tokenizer *tok, int32_t id, char *buf, size_t n) {
    char *text = NULL;
    size_t len = 0, o = 0;
    if (vene_detokenize(tok, &id, 1, &text, &len, NULL) != VENE_OK) len = 0;
    buf[o++] = '"';
    for (size_t i = 0; i < len && o + 6 < n; i++) {
        unsigned char c = (unsigned char)text[i];
        if (c == '"' || c == '\\') o += (size_t)snprintf(buf + o, n - o, "\\%c", c);
        else if (c == '\n') o += (size_t)snprintf(buf + o, n - o, "\\n");
        else if (c < 0x20 || c == 0x7f) o += (size_t)snprintf(buf + o, n - o, "\\x%02x", c);
        else buf[o++] = (char)c;
    }
    buf[o++] = '"';
    buf[o] = '\0';
    vene_free(text);
}

static void flush_pending(printer *pr, const char *intervened) {
    printf("%5d  %-24s %s\n", pr->orig_step, pr->have_orig ? pr->orig : "", intervened);
    pr->have_orig = 0;
}

static int on_token(void *user, const vene_token_event *ev, vene_error *err) {
    (void)err;
    printer *pr = user;
    pr->n_tokens++;
    if (pr->compare && ev->row == 0 && pr->n[ev->which] < pr->cap) pr->ids[ev->which][pr->n[ev->which]++] = ev->token;
    if (!pr->compare) {
        if (ev->row != 0 || pr->n_seq >= pr->n_prompt + (size_t)pr->cap) return VENE_OK;
        pr->seq[pr->n_seq++] = ev->token;
        size_t len = 0;
        char *text = continuation_text(pr, pr->n_seq - pr->n_prompt, &len);
        if (text && len > pr->printed) fwrite(text + pr->printed, 1, len - pr->printed, stdout), pr->printed = len;
        free(text);
    } else if (ev->which == 0) {
        if (pr->have_orig) flush_pending(pr, ""); /* the intervened row had finished */
        quoted(pr->tok, ev->token, pr->orig, sizeof pr->orig);
        pr->have_orig = 1;
        pr->orig_step = ev->step;
        return VENE_OK; /* printed with its intervened twin */
    } else {
        char mine[64];
        quoted(pr->tok, ev->token, mine, sizeof mine);
        if (!pr->have_orig || pr->orig_step != ev->step) {
            if (pr->have_orig) flush_pending(pr, "");
            pr->orig_step = ev->step;
        }
        flush_pending(pr, mine);
    }
    fflush(stdout);
    return VENE_OK;
}

static int parse_num(const char *s, double lo, double hi, double *out) {
    char *end = NULL;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || *end || errno || !(v >= lo && v <= hi)) return 0;
    *out = v;
    return 1;
}

/* Options of the form --name VALUE; returns 0 if argv[*i] is not one of them. */
static int number_option(int argc, char **argv, int *i, vene_gen_params *p, int *bad) {
    static const struct { const char *name; double lo, hi; int integer; } opts[] = {
        {"--max-new-tokens", 1, 1e6, 1}, {"--temperature", 0, 1e6, 0}, {"--top-k", 0, 1e9, 1},
        {"--top-p", 0, 1, 0},            {"--seed", 0, 9007199254740992.0, 1},
    };
    for (int k = 0; k < 5; k++) {
        if (strcmp(argv[*i], opts[k].name)) continue;
        double v = 0;
        if (*i + 1 >= argc || !parse_num(argv[*i + 1], opts[k].lo, opts[k].hi, &v) || (opts[k].integer && v != (double)(int64_t)v)) {
            vene_cli_fail("generate: %s expects %s between %g and %g", opts[k].name, opts[k].integer ? "an integer" : "a number",
                          opts[k].lo, opts[k].hi);
            *bad = 1;
            return 1;
        }
        (*i)++;
        if (k == 0) p->max_new_tokens = (int)v;
        else if (k == 1) p->temperature = (float)v;
        else if (k == 2) p->top_k = (int)v;
        else if (k == 3) p->top_p = (float)v;
        else p->seed = (uint64_t)v;
        return 1;
    }
    return 0;
}

static void print_texts(const printer *pr, const char *prompt) {
    for (int w = 0; w < 2; w++) {
        size_t len = 0;
        memcpy(pr->seq + pr->n_prompt, pr->ids[w], sizeof(int32_t) * (size_t)pr->n[w]);
        char *text = continuation_text(pr, (size_t)pr->n[w], &len);
        printf("%-12s%s%s\n", w ? "intervened:" : "original:", prompt, text ? text : "");
        free(text);
    }
}

int vene_cmd_generate(int argc, char **argv) {
    const char *dir = NULL, *prompt = NULL, *exp = NULL;
    int compare = 0, no_eos = 0, bad = 0;
    vene_gen_params p;
    vene_gen_params_init(&p, NULL);
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage();
        if (number_option(argc, argv, &i, &p, &bad)) {
            if (bad) return 1;
        } else if (!strcmp(argv[i], "--experiment") && i + 1 < argc) exp = argv[++i];
        else if (!strcmp(argv[i], "--compare")) compare = 1;
        else if (!strcmp(argv[i], "--no-eos")) no_eos = 1;
        else if (argv[i][0] == '-' && argv[i][1]) return vene_cli_fail("generate: unknown option \"%s\"", argv[i]);
        else if (!dir) dir = argv[i];
        else if (!prompt) prompt = argv[i];
        else return vene_cli_fail("generate: unexpected argument \"%s\"", argv[i]);
    }
    if (!dir || !prompt) return vene_cli_fail("generate: expected MODEL_DIR and PROMPT (see `vene generate --help`)");
    if (!*prompt) return vene_cli_fail("generate: empty prompt");
    if (compare && !exp) return vene_cli_fail("generate: --compare needs --experiment FILE (what to compare with)");

    vene_error err = {0};
    printer pr = {0};
    pr.compare = compare;
    pr.cap = p.max_new_tokens;
    pr.ids[0] = malloc(sizeof(int32_t) * (size_t)pr.cap);
    pr.ids[1] = malloc(sizeof(int32_t) * (size_t)pr.cap);
    if (!pr.ids[0] || !pr.ids[1]) {
        free(pr.ids[0]);
        free(pr.ids[1]);
        return vene_cli_fail("out of memory");
    }
    if (vene_tokenizer_load(dir, &pr.tok, &err)) {
        free(pr.ids[0]);
        free(pr.ids[1]);
        return vene_cli_fail("%s", err.msg);
    }
    int32_t *pids = NULL;
    size_t np = 0;
    char *ptext = NULL;
    if (vene_tokenize(pr.tok, prompt, strlen(prompt), &pids, &np, &err) == VENE_OK &&
        (pr.seq = malloc(sizeof(int32_t) * (np + (size_t)pr.cap))) != NULL) {
        memcpy(pr.seq, pids, sizeof(int32_t) * np);
        pr.n_prompt = pr.n_seq = np;
        if (vene_detokenize(pr.tok, pids, np, &ptext, &pr.prompt_len, &err) != VENE_OK) pr.prompt_len = 0;
    }
    vene_free(pids);
    vene_free(ptext);
    if (!pr.seq) {
        vene_tokenizer_free(pr.tok);
        free(pr.ids[0]);
        free(pr.ids[1]);
        return vene_cli_fail("%s", err.msg[0] ? err.msg : "out of memory");
    }
    p.on_token = on_token;
    p.user = &pr;
    int rc = 0;
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    if (compare) printf("prompt: %s\n%5s  %-24s %s\n", prompt, "step", "original", "intervened");
    else {
        fputs(prompt, stdout);
        fflush(stdout);
    }
    if (exp) {
        vene_exp_gen g = {dir, prompt, &p, compare, no_eos};
        rc = vene_experiment_generate(exp, &g, &err);
        if (compare && !rc && pr.have_orig) flush_pending(&pr, "");
        if (compare && !rc) print_texts(&pr, prompt);
        if (rc) vene_error_prefix(&err, "%s", exp);
    } else {
        vene_model *m = NULL;
        vene_run *rs = NULL;
        int32_t *ids = NULL;
        size_t n = 0;
        rc = vene_model_load(dir, NULL, &m, &err);
        if (!rc) rc = vene_run_new(m, &rs, &err);
        if (!rc) rc = vene_tokenize(pr.tok, prompt, strlen(prompt), &ids, &n, &err);
        if (!rc) {
            vene_gen_params q = p;
            vene_gen_params_init(&q, m); /* the model's eos_token_id */
            p.eos_token_id = no_eos ? -1 : q.eos_token_id;
            vene_batch b = {1, (int)n, ids, NULL, NULL, NULL};
            vene_gen_output out;
            rc = vene_generate(rs, &b, &p, &out, &err);
            vene_gen_output_free(&out);
        }
        vene_free(ids);
        vene_run_free(rs);
        vene_model_free(m);
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    if (!compare) putchar('\n');
    fflush(stdout);
    vene_tokenizer_free(pr.tok);
    free(pr.ids[0]);
    free(pr.ids[1]);
    free(pr.seq);
    if (rc) return vene_cli_fail("%s", err.msg);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    fprintf(stderr, "%d tokens in %.2f s (%.1f tokens/s, model loading included)\n", pr.n_tokens, s, pr.n_tokens / s);
    return 0;
}
