/* What is built on a model's tokenizer: counterfactual pairs for DAS, and the facts
 * accuracy of a trained model (facts.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/facts.h"
#include "data/facts_io.h"

/* The query of (rel, tmpl, c) in tok's ids; *subject is the subject's token position. */
static int query_ids(const vene_tokenizer *tok, int rel, int tmpl, int c, int32_t *ids, int cap, int *n, int *subject,
                     vene_error *err) {
    facts_sentence s;
    char text[256];
    facts_fact(rel, tmpl, c, &s);
    facts_query_text(&s, text, sizeof text);
    int32_t *p = NULL;
    size_t k = 0;
    int rc = vene_tokenize(tok, text, strlen(text), &p, &k, err);
    if (rc) return vene_error_prefix(err, "facts: \"%s\"", text);
    /* One word, one token: positions of words are positions of tokens. */
    if ((int)k != s.answer || (int)k > cap) rc = vene_errorf(err, VENE_ERR_FORMAT, "facts: \"%s\" is %zu tokens, expected %d (one per word): not the facts tokenizer?", text, k, s.answer);
    else memcpy(ids, p, k * sizeof *ids);
    vene_free(p);
    *n = (int)k;
    if (subject) *subject = s.subject;
    return rc;
}

static int answer_id(const vene_tokenizer *tok, int rel, int c, vene_error *err) {
    const char *a = facts_country_at(c)->attr[rel];
    int32_t id = vene_token_id(tok, a);
    if (id < 0) vene_errorf(err, VENE_ERR_FORMAT, "facts: the answer \"%s\" is not a token of the tokenizer", a);
    return id;
}

static void ids_json(facts_buf *b, const int32_t *ids, int n) {
    facts_buf_printf(b, "{\"ids\": [");
    for (int i = 0; i < n; i++) facts_buf_printf(b, i ? ", %d" : "%d", ids[i]);
    facts_buf_printf(b, "]}");
}

int facts_write_das(const char *train_path, const char *eval_path, const vene_tokenizer *tok, int rel, int n_eval,
                    uint64_t seed, vene_error *err) {
    if (!train_path || !eval_path || !tok || rel < 0 || rel >= FACTS_N_REL || n_eval < 2)
        return vene_errorf(err, VENE_ERR_ARG, "facts_write_das: bad arguments");
    int N = facts_n_countries(), order[128], held[128] = {0}, len[128], subj = 0, rc = VENE_OK;
    int32_t ids[128][FACTS_MAX_WORDS], label[128];
    vene_rng r;
    vene_rng_seed(&r, seed ^ 0xda5ULL);
    for (int i = 0; i < N; i++) order[i] = i;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(vene_rng_next(&r) % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    for (int i = 0; i < N; i += n_eval) held[order[i]] = 1;
    for (int c = 0; c < N && !rc; c++) {
        rc = query_ids(tok, rel, 0, c, ids[c], FACTS_MAX_WORDS, &len[c], &subj, err);
        if (!rc && (label[c] = answer_id(tok, rel, c, err)) < 0) rc = VENE_ERR_FORMAT;
    }
    facts_buf tr = {0}, ev = {0};
    for (int x = 0; x < N && !rc; x++)
        for (int y = 0; y < N; y++) {
            if (x == y || (held[x] && !held[y])) continue; /* a held-out base appears only in eval pairs */
            facts_buf *b = held[y] ? &ev : &tr;
            facts_buf_printf(b, "{\"base\": ");
            ids_json(b, ids[x], len[x]);
            facts_buf_printf(b, ", \"sources\": [");
            ids_json(b, ids[y], len[y]);
            facts_buf_printf(b, "], \"label\": %d, \"unit_locations\": {\"sources->base\": %d}}\n", label[y], subj);
        }
    if (rc) {
        free(tr.p), free(ev.p);
        return rc;
    }
    rc = facts_buf_save(&tr, train_path, err);
    if (rc) free(ev.p);
    else rc = facts_buf_save(&ev, eval_path, err);
    return rc;
}

/* Index of the largest of n logits. */
static int argmax(const float *v, int64_t n) {
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return (int)best;
}

int facts_eval(const char *model_dir, uint64_t seed, facts_score *out,
               void (*miss)(void *user, const char *query, const char *want, const char *got, int heldout), void *user,
               vene_error *err) {
    if (!model_dir || !out) return vene_errorf(err, VENE_ERR_ARG, "facts_eval: NULL argument");
    memset(out, 0, sizeof *out);
    vene_model *m = NULL;
    vene_tokenizer *tok = NULL;
    vene_run *rs = NULL;
    int N = facts_n_countries();
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)N * FACTS_MAX_WORDS);
    int rc = ids ? VENE_OK : vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    if (!rc) rc = vene_model_load(model_dir, NULL, &m, err);
    if (!rc) rc = vene_tokenizer_load(model_dir, &tok, err);
    if (!rc) rc = vene_run_new(m, &rs, err);
    for (int rel = 0; rel < FACTS_N_REL && !rc; rel++)
        for (int t = 0; t < FACTS_N_TMPL && !rc; t++) {
            int S = 0;
            for (int c = 0; c < N && !rc; c++) {
                int n = 0;
                rc = query_ids(tok, rel, t, c, ids + (size_t)c * FACTS_MAX_WORDS, FACTS_MAX_WORDS, &n, NULL, err);
                S = n; /* every query of a template has the same length */
            }
            for (int c = 1; c < N && !rc; c++) memmove(ids + (size_t)c * S, ids + (size_t)c * FACTS_MAX_WORDS, sizeof(int32_t) * (size_t)S);
            vene_batch b = {.batch = N, .seq = S, .ids = ids};
            if (!rc) rc = vene_forward(rs, &b, err);
            const vene_tensor *lg = rc ? NULL : vene_run_logits(rs);
            if (!rc && !lg) rc = vene_errorf(err, VENE_ERR_ARG, "facts_eval: %s has no language-model head", model_dir);
            for (int c = 0; c < N && !rc; c++) {
                int64_t V = lg->shape[2];
                int got = argmax(lg->data + ((int64_t)c * S + S - 1) * V, V), want = answer_id(tok, rel, c, err);
                if (want < 0) rc = VENE_ERR_FORMAT;
                int held = facts_is_heldout(rel, t, c, seed), hit = got == want;
                if (held) out->heldout_hits += hit, out->heldout_total++;
                else out->train_hits += hit, out->train_total++, out->rel_hits[rel] += hit, out->rel_total[rel]++;
                if (!hit && miss && !rc) {
                    facts_sentence s;
                    char q[256];
                    facts_fact(rel, t, c, &s);
                    facts_query_text(&s, q, sizeof q);
                    const char *g = vene_token_piece(tok, got);
                    miss(user, q, s.w[s.answer], g ? g : "?", held);
                }
            }
        }
    vene_run_free(rs);
    vene_tokenizer_free(tok);
    vene_model_free(m);
    free(ids);
    return rc;
}
