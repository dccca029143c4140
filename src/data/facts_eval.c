/* The facts accuracy of a trained model (facts.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "data/facts.h"

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
                rc = facts_query_ids(tok, rel, t, c, ids + (size_t)c * FACTS_MAX_WORDS, FACTS_MAX_WORDS, &n, NULL, err);
                S = n; /* every query of a template has the same length */
            }
            for (int c = 1; c < N && !rc; c++) memmove(ids + (size_t)c * S, ids + (size_t)c * FACTS_MAX_WORDS, sizeof(int32_t) * (size_t)S);
            vene_batch b = {.batch = N, .seq = S, .ids = ids};
            if (!rc) rc = vene_forward(rs, &b, err);
            const vene_tensor *lg = rc ? NULL : vene_run_logits(rs);
            if (!rc && !lg) rc = vene_errorf(err, VENE_ERR_ARG, "facts_eval: %s has no language-model head", model_dir);
            for (int c = 0; c < N && !rc; c++) {
                int64_t V = lg->shape[2];
                int got = argmax(lg->data + ((int64_t)c * S + S - 1) * V, V), want = facts_answer_id(tok, rel, c, err);
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
