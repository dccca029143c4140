/* Counterfactual pairs built on a model's tokenizer (facts.h): DAS datasets and the
 * interchange intervention training (IIT) set that gives the embedded model its
 * mechanism. Queries are tokenized with the tokenizer handed in, one token per word. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/facts.h"
#include "data/facts_io.h"

/* The query of (rel, tmpl, c) in tok's ids; *subject is the subject's token position. */
int facts_query_ids(const vene_tokenizer *tok, int rel, int tmpl, int c, int32_t *ids, int cap, int *n, int *subject,
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

int facts_answer_id(const vene_tokenizer *tok, int rel, int c, vene_error *err) {
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

/* One example: base, source (NULL: pyvene's None, no intervention), label, location. */
static void pair_json(facts_buf *b, const int32_t *base, int nb, const int32_t *src, int ns, int label, int at) {
    facts_buf_printf(b, "{\"base\": ");
    ids_json(b, base, nb);
    facts_buf_printf(b, ", \"sources\": [");
    if (src) ids_json(b, src, ns);
    else facts_buf_printf(b, "null");
    facts_buf_printf(b, "], \"label\": %d, \"unit_locations\": {\"sources->base\": %d}}\n", label, at);
}

/* Every n_eval-th country of a seeded order is held out (a source only in eval pairs). */
static void split_countries(int N, int n_eval, uint64_t seed, int *held) {
    int order[128];
    vene_rng r;
    vene_rng_seed(&r, seed ^ 0xda5ULL);
    for (int i = 0; i < N; i++) order[i] = i, held[i] = 0;
    for (int i = N - 1; i > 0; i--) {
        int j = (int)(vene_rng_next(&r) % (uint64_t)(i + 1)), t = order[i];
        order[i] = order[j], order[j] = t;
    }
    for (int i = 0; i < N; i += n_eval) held[order[i]] = 1;
}

static int save_pair(facts_buf *tr, const char *train_path, facts_buf *ev, const char *eval_path, int rc, vene_error *err) {
    if (!rc) rc = facts_buf_save(tr, train_path, err);
    if (!rc) return facts_buf_save(ev, eval_path, err);
    free(tr->p), free(ev->p);
    return rc;
}

int facts_write_das(const char *train_path, const char *eval_path, const vene_tokenizer *tok, int rel, const char *va,
                    const char *vb, int n_eval, uint64_t seed, vene_error *err) {
    if (!train_path || !eval_path || !tok || rel < 0 || rel >= FACTS_N_REL || n_eval < 2 || !va != !vb)
        return vene_errorf(err, VENE_ERR_ARG, "facts_write_das: bad arguments");
    int N = facts_n_countries(), held[128], len[128], subj = 0, rc = VENE_OK;
    int32_t ids[128][FACTS_MAX_WORDS], label[128];
    split_countries(N, n_eval, seed, held);
    for (int c = 0; c < N && !rc; c++) {
        rc = facts_query_ids(tok, rel, 0, c, ids[c], FACTS_MAX_WORDS, &len[c], &subj, err);
        if (!rc && (label[c] = facts_answer_id(tok, rel, c, err)) < 0) rc = VENE_ERR_FORMAT;
    }
    facts_buf tr = {0}, ev = {0};
    for (int x = 0; x < N && !rc; x++)
        for (int y = 0; y < N; y++) {
            if (x == y || (held[x] && !held[y])) continue; /* a held-out base appears only in eval pairs */
            const char *ax = facts_country_at(x)->attr[rel], *ay = facts_country_at(y)->attr[rel];
            if (va && !((!strcmp(ax, va) && !strcmp(ay, vb)) || (!strcmp(ax, vb) && !strcmp(ay, va)))) continue;
            pair_json(held[y] ? &ev : &tr, ids[x], len[x], ids[y], len[y], label[y], subj);
        }
    return save_pair(&tr, train_path, &ev, eval_path, rc, err);
}

int facts_write_iit(const char *train_path, const char *eval_path, const vene_tokenizer *tok, int n_sources,
                    uint64_t seed, vene_error *err) {
    if (!train_path || !eval_path || !tok || n_sources < 1)
        return vene_errorf(err, VENE_ERR_ARG, "facts_write_iit: bad arguments");
    int N = facts_n_countries(), rc = VENE_OK;
    int32_t (*ids)[FACTS_MAX_WORDS] = malloc(sizeof *ids * (size_t)N), *label = malloc(sizeof *label * (size_t)N);
    int *len = malloc(sizeof(int) * (size_t)N), *pool = malloc(sizeof(int) * (size_t)N);
    if (!ids || !label || !len || !pool) rc = vene_errorf(err, VENE_ERR_MEMORY, "facts_write_iit: out of memory");
    vene_rng r;
    vene_rng_seed(&r, seed ^ 0x117ULL);
    /* Examples of one query form share a length, and `vene train` batches by shape:
     * writing them form by form keeps its step count exact. */
    facts_buf tr = {0}, ev = {0};
    for (int rel = 0; rel < FACTS_N_REL && !rc; rel++)
        for (int t = 0; t < FACTS_N_TMPL && !rc; t++) {
            int subj = 0, np = 0;
            for (int c = 0; c < N && !rc; c++) {
                rc = facts_query_ids(tok, rel, t, c, ids[c], FACTS_MAX_WORDS, &len[c], &subj, err);
                if (!rc && (label[c] = facts_answer_id(tok, rel, c, err)) < 0) rc = VENE_ERR_FORMAT;
                if (!facts_is_heldout(rel, t, c, seed)) pool[np++] = c;
            }
            /* plain examples first (three times: the facts must survive the rewiring), then pairs */
            for (int c = 0; c < N && !rc; c++)
                for (int k = 0; k < 3 && !facts_is_heldout(rel, t, c, seed); k++) pair_json(&tr, ids[c], len[c], NULL, 0, label[c], subj);
            for (int c = 0; c < N && !rc; c++)
                for (int k = 0; k < n_sources; k++) {
                    int y;
                    do y = pool[vene_rng_next(&r) % (uint64_t)np];
                    while (y == c);
                    /* held-out facts only ever serve as eval bases: the model never learns them */
                    pair_json(facts_is_heldout(rel, t, c, seed) ? &ev : &tr, ids[c], len[c], ids[y], len[y], label[y], subj);
                }
        }
    free(ids), free(label), free(len), free(pool);
    return save_pair(&tr, train_path, &ev, eval_path, rc, err);
}
