/* The embedded default model (models/facts-gpt2, made by tools/make_default_model.sh) has
 * the mechanism the demo claims for it:
 *   - its facts are right: >= 99% top-1 on the facts it was trained on;
 *   - the country lives at the subject token: patching block_output of a middle layer at
 *     the subject from "The capital of Y is" into "The capital of X is" makes the model
 *     answer Y's capital for >= 95% of all ordered country pairs;
 *   - causal tracing (ROME): with the subject's embedding corrupted by noise, restoring
 *     the clean block_output of one (layer, position) brings the answer back most at the
 *     subject token, among the positions before the last;
 *   - DAS (LowRankRotatedSpace at the subject, trained with `vene train` on the generator's
 *     counterfactual pairs, held-out source countries): one dimension carries the binary
 *     "Europe or Asia" (held-out IIA >= 0.9); the 60-valued country needs more: rank 8
 *     reaches >= 0.9 while rank 1 stays far below.
 * The numbers are printed (they go in the README and the notes). */
#include <stdint.h>

#include "core/rng.h"
#include "data/facts.h"
#include "test.h"
#include "test_tmp.h"
#include "vene.h"

#define MODEL "../models/facts-gpt2"
#define SEED 0 /* the corpus seed tools/make_default_model.sh uses */

static int N;                          /* countries */
static int32_t query[64][FACTS_MAX_WORDS]; /* "The capital of X is" */
static int32_t capital[64];
static int S, SUBJ;                    /* query length, subject position */

static void load_queries(const vene_tokenizer *tok) {
    N = facts_n_countries();
    for (int c = 0; c < N; c++) {
        facts_sentence s;
        char text[128];
        facts_fact(FACTS_CAPITAL, 0, c, &s);
        facts_query_text(&s, text, sizeof text);
        int32_t *ids = NULL;
        size_t n = 0;
        vene_error err = {0};
        CHECK(vene_tokenize(tok, text, strlen(text), &ids, &n, &err) == VENE_OK && (int)n == s.answer);
        memcpy(query[c], ids, n * sizeof *ids);
        vene_free(ids);
        S = (int)n, SUBJ = s.subject;
        capital[c] = vene_token_id(tok, s.w[s.answer]);
    }
}

static int argmax_last(const vene_tensor *lg, int b) {
    int64_t S_ = lg->shape[1], V = lg->shape[2];
    const float *row = lg->data + ((int64_t)b * S_ + S_ - 1) * V;
    int best = 0;
    for (int64_t v = 1; v < V; v++)
        if (row[v] > row[best]) best = (int)v;
    return best;
}

/* Fraction of ordered pairs (X, Y), X != Y, whose answer becomes Y's capital when
 * block_output of `layer` at the subject comes from Y's run. */
static double flip_rate(const vene_model *m, int layer) {
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"layer\": %d, \"component\": \"block_output\", \"unit\": \"pos\", \"max_number_of_units\": 1,"
                              " \"intervention_type\": \"VanillaIntervention\"}", layer);
    vene_intervenable *iv = NULL;
    vene_error err = {0};
    if (vene_intervenable_new(m, cfg, &iv, &err)) {
        fprintf(stderr, "  %s\n", err.msg);
        return 0;
    }
    int32_t base[64 * FACTS_MAX_WORDS], src[64 * FACTS_MAX_WORDS];
    char ul[64];
    snprintf(ul, sizeof ul, "{\"sources->base\": %d}", SUBJ);
    int flips = 0, total = 0;
    for (int k = 1; k < N; k++) {
        for (int x = 0; x < N; x++) {
            memcpy(base + x * S, query[x], sizeof(int32_t) * (size_t)S);
            memcpy(src + x * S, query[(x + k) % N], sizeof(int32_t) * (size_t)S);
        }
        vene_batch b = {.batch = N, .seq = S, .ids = base}, s = {.batch = N, .seq = S, .ids = src};
        const vene_batch *srcs[] = {&s};
        vene_call call = {.base = &b, .sources = srcs, .n_sources = 1, .unit_locations = ul};
        if (vene_intervenable_forward(iv, &call, &err)) {
            fprintf(stderr, "  %s\n", err.msg);
            break;
        }
        const vene_tensor *lg = vene_intervenable_logits(iv, 1);
        for (int x = 0; x < N; x++) flips += argmax_last(lg, x) == capital[(x + k) % N], total++;
    }
    vene_intervenable_free(iv);
    return total ? (double)flips / total : 0;
}

static void test_facts(void) {
    facts_score s;
    vene_error err = {0};
    int rc = facts_eval(MODEL, SEED, &s, NULL, NULL, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc) return;
    double acc = (double)s.train_hits / s.train_total;
    printf("facts: training %d/%d (%.1f%%), held-out %d/%d\n", s.train_hits, s.train_total, 100 * acc, s.heldout_hits,
           s.heldout_total);
    CHECK_MSG(acc >= 0.99, "training facts accuracy %.3f < 0.99", acc);
}

static void test_interchange(const vene_model *m, int n_layer) {
    int mid = (n_layer - 1) / 2;
    for (int l = 0; l < n_layer; l++) {
        double r = flip_rate(m, l);
        printf("interchange at block_output layer %d, subject position: %.1f%% of %d pairs answer the source's capital\n", l,
               100 * r, N * (N - 1));
        if (l == mid) CHECK_MSG(r >= 0.95, "flip rate %.3f < 0.95 at the middle layer %d", r, l);
    }
}

/* ---------------------------------------------------------------- causal tracing */

typedef struct trace_ctx {
    int mode;           /* 0 clean (record), 1 corrupted, 2 corrupted + restore */
    int layer, pos;     /* the restored cell */
    float *clean;       /* [L][N][S][D] block outputs of the clean run */
    float *emb;         /* [N][S][D] token embeddings of the clean run */
    int D, L;
    float sigma;        /* noise scale: 3 x the std of the subject embeddings */
    uint64_t seed;
} trace_ctx;

static int noise_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)where, (void)err;
    trace_ctx *c = user;
    if (c->mode == 0) {
        memcpy(c->emb, t->data, sizeof(float) * (size_t)N * S * c->D);
        return VENE_OK;
    }
    vene_rng r;
    vene_rng_seed(&r, c->seed);
    for (int b = 0; b < N; b++)
        for (int d = 0; d < c->D; d++) t->data[((size_t)b * S + SUBJ) * c->D + d] += c->sigma * (float)vene_rng_normal(&r);
    return VENE_OK;
}

static int block_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)err;
    trace_ctx *c = user;
    float *saved = c->clean + (size_t)where->layer * N * S * c->D;
    if (c->mode == 0) memcpy(saved, t->data, sizeof(float) * (size_t)N * S * c->D);
    if (c->mode == 2 && where->layer == c->layer)
        for (int b = 0; b < N; b++)
            memcpy(t->data + ((size_t)b * S + c->pos) * c->D, saved + ((size_t)b * S + c->pos) * c->D, sizeof(float) * (size_t)c->D);
    return VENE_OK;
}

/* Mean probability of the right capital over all countries. */
static double mean_p_answer(vene_run *rs, const vene_batch *b, vene_error *err) {
    if (vene_forward(rs, b, err)) return -1;
    const vene_tensor *lg = vene_run_logits(rs);
    int64_t V = lg->shape[2];
    double sum = 0;
    for (int x = 0; x < N; x++) {
        const float *row = lg->data + ((int64_t)x * S + S - 1) * V;
        double mx = row[0], z = 0;
        for (int64_t v = 1; v < V; v++) mx = row[v] > mx ? row[v] : mx;
        for (int64_t v = 0; v < V; v++) z += exp(row[v] - mx);
        sum += exp(row[capital[x]] - mx) / z;
    }
    return sum / N;
}

/* ROME's causal tracing over block_output: the restoring effect of each (layer, position),
 * averaged over the countries and 4 noise draws, as p(answer) restored - p(answer) corrupted. */
static void test_trace(const vene_model *m, int n_layer, int d_model) {
    vene_run *rs = NULL;
    vene_error err = {0};
    trace_ctx c = {.D = d_model, .L = n_layer};
    c.clean = malloc(sizeof(float) * (size_t)n_layer * N * S * d_model);
    c.emb = malloc(sizeof(float) * (size_t)N * S * d_model);
    int32_t ids[64 * FACTS_MAX_WORDS];
    for (int x = 0; x < N; x++) memcpy(ids + x * S, query[x], sizeof(int32_t) * (size_t)S);
    vene_batch b = {.batch = N, .seq = S, .ids = ids};
    int wte, blk, l0, rc = c.clean && c.emb ? vene_run_new(m, &rs, &err) : VENE_ERR_MEMORY;
    if (!rc) rc = vene_model_find_site(m, "wte.output", &wte, &l0, &err);
    if (!rc) rc = vene_model_find_site(m, "h[0].output", &blk, &l0, &err);
    if (!rc) rc = vene_run_add_hook(rs, wte, -1, noise_hook, &c, &err);
    for (int l = 0; l < n_layer && !rc; l++) rc = vene_run_add_hook(rs, blk, l, block_hook, &c, &err);
    double clean = rc ? 0 : mean_p_answer(rs, &b, &err);
    if (!rc) {
        double s1 = 0, s2 = 0;
        for (int x = 0; x < N; x++)
            for (int d = 0; d < d_model; d++) {
                /* ROME scales the noise by the spread of the subjects' embeddings */
                double v = c.emb[((size_t)x * S + SUBJ) * d_model + d];
                s1 += v, s2 += v * v;
            }
        double mean = s1 / (N * d_model);
        c.sigma = (float)(3 * sqrt(s2 / (N * d_model) - mean * mean));
    }
    double effect[16][FACTS_MAX_WORDS] = {{0}}, corrupt = 0;
    for (int draw = 0; draw < 4 && !rc; draw++) {
        c.seed = 1000 + (uint64_t)draw;
        c.mode = 1;
        double pc = mean_p_answer(rs, &b, &err);
        corrupt += pc / 4;
        c.mode = 2;
        for (c.layer = 0; c.layer < n_layer && c.layer < 16; c.layer++)
            for (c.pos = 0; c.pos < S; c.pos++) effect[c.layer][c.pos] += (mean_p_answer(rs, &b, &err) - pc) / 4;
        c.mode = 0;
    }
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    printf("causal tracing (block_output restored; p(answer) clean %.3f, corrupted %.3f):\n       ", clean, corrupt);
    for (int p = 0; p < S; p++) printf(" %8s", p == SUBJ ? "subject" : p == S - 1 ? "last" : "");
    printf("\n");
    int best_l = 0, best_p = 0;
    for (int l = 0; l < n_layer && l < 16 && !rc; l++) {
        printf("  L%-3d ", l);
        for (int p = 0; p < S; p++) {
            printf(" %8.3f", effect[l][p]);
            if (p < S - 1 && effect[l][p] > effect[best_l][best_p]) best_l = l, best_p = p;
        }
        printf("\n");
    }
    CHECK_MSG(clean - corrupt > 0.3, "the noise should hide the fact: p %.3f clean, %.3f corrupted", clean, corrupt);
    CHECK_MSG(best_p == SUBJ, "strongest restoring effect before the last token at position %d (layer %d), not the subject %d",
              best_p, best_l, SUBJ);
    vene_run_free(rs);
    free(c.clean);
    free(c.emb);
}

/* DAS with `vene train` on the generator's pairs at the subject's block_output; returns
 * the held-out IIA (-1 on error). */
static double das(const char *dir, const char *name, int layer, int rank, int epochs) {
    char cfg[700], model_abs[4096];
    if (!realpath(MODEL, model_abs)) return -1;
    snprintf(cfg, sizeof cfg, "%s/das_%s_%d.json", dir, name, rank);
    FILE *f = fopen(cfg, "w");
    if (!f) return -1;
    fprintf(f, "{\"model\": \"%s\", \"train\": \"das_%s_train.jsonl\", \"eval\": \"das_%s_eval.jsonl\",\n"
               " \"config\": {\"representations\": [{\"layer\": %d, \"component\": \"block_output\", \"unit\": \"pos\",\n"
               "   \"max_number_of_units\": 1, \"low_rank_dimension\": %d, \"intervention_type\": \"LowRankRotatedSpaceIntervention\"}]},\n"
               " \"batch_size\": 32, \"epochs\": %d, \"seed\": 0, \"optimizer\": {\"type\": \"adam\", \"lr\": 0.01}}\n",
            model_abs, name, name, layer, rank, epochs);
    fclose(f);
    vene_train_options o = {.seed = -1, .quiet = 1};
    vene_train_result r;
    vene_error err = {0};
    int rc = vene_train_run(cfg, &o, &r, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc) return -1;
    printf("DAS %s, rank %d at block_output layer %d (subject): held-out IIA %.3f (before training %.3f), %d steps in %.1f s\n",
           name, rank, layer, r.iia, r.iia_before, r.steps, r.seconds);
    return r.iia;
}

/* A binary variable fits in one dimension; the 60-valued country does not, and needs a
 * few (the rank-1 country IIA stays near chance, 1/59). */
static void test_das(int layer) {
    char dir[600];
    snprintf(dir, sizeof dir, "%s", tpath("facts"));
    vene_error err = {0};
    int rc = facts_write(dir, SEED, NULL, NULL, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (rc) return;
    double cont1 = das(dir, "continent", layer, 1, 3), country8 = das(dir, "country", layer, 8, 2);
    double country1 = das(dir, "country", layer, 1, 2);
    CHECK_MSG(cont1 >= 0.9, "1-d DAS on Europe vs Asia: held-out IIA %.3f < 0.9", cont1);
    CHECK_MSG(country8 >= 0.9, "rank-8 DAS on the country: held-out IIA %.3f < 0.9", country8);
    CHECK_MSG(country1 >= 0 && country1 < 0.3, "rank-1 DAS on the country: held-out IIA %.3f, expected far below 0.9", country1);
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vene_default.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    vene_model *m = NULL;
    vene_tokenizer *tok = NULL;
    vene_error err = {0};
    int rc = vene_model_load(MODEL, NULL, &m, &err);
    if (!rc) rc = vene_tokenizer_load(MODEL, &tok, &err);
    CHECK_MSG(rc == VENE_OK, "%s", err.msg);
    if (!rc) {
        vene_model_info info;
        vene_model_get_info(m, &info);
        load_queries(tok);
        test_facts();
        test_interchange(m, info.n_layer);
        test_trace(m, info.n_layer, info.d_model);
        test_das((info.n_layer - 1) / 2);
    }
    vene_tokenizer_free(tok);
    vene_model_free(m);
    rm_tree(tmpdir);
    TEST_MAIN_END();
}
