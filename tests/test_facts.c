/* The synthetic factual language (src/data/facts.c): the held-out split, the files it
 * writes (deterministic for a seed), its word-level tokenizer agreeing with the ids of
 * the datasets, and the counterfactual pairs' labels. */
#include <cjson/cJSON.h>
#include <stdint.h>

#include "data/facts.h"
#include "test.h"
#include "test_tmp.h"
#include "vene.h"

static void test_split(void) {
    int N = facts_n_countries(), differ = 0;
    CHECK(N == 60);
    for (int c = 0; c < N; c++) {
        int held = 0;
        for (int r = 0; r < FACTS_N_REL; r++)
            for (int t = 0; t < FACTS_N_TMPL; t++) {
                held += facts_is_heldout(r, t, c, 0);
                differ += facts_is_heldout(r, t, c, 0) != facts_is_heldout(r, t, c, 1);
                if (t == 0) CHECK(!facts_is_heldout(r, t, c, 0) && !facts_is_heldout(r, t, c, 7));
            }
        CHECK_MSG(held == 1, "country %d has %d held-out facts", c, held);
    }
    CHECK(differ > 0); /* the seed chooses */
    facts_sentence s;
    char q[128];
    facts_fact(FACTS_CAPITAL, 0, 0, &s);
    facts_query_text(&s, q, sizeof q);
    CHECK(!strcmp(q, "The capital of Spain is") && s.subject == 3 && !strcmp(s.w[s.answer], "Madrid"));
    facts_fact(FACTS_LANGUAGE, 1, 1, &s);
    facts_query_text(&s, q, sizeof q);
    CHECK(!strcmp(q, "Italy ' s language is") && s.subject == 0 && !strcmp(s.w[s.answer], "Italian"));
    facts_fact(FACTS_CONTINENT, 2, 2, &s);
    CHECK(!strcmp(s.w[s.answer], "Europe") && !strcmp(s.w[s.n - 1], "."));
    /* every country's name, capital and language is one word: one token each */
    for (int c = 0; c < N; c++)
        for (int k = -1; k < FACTS_N_REL; k++) {
            const char *w = k < 0 ? facts_country_at(c)->name : facts_country_at(c)->attr[k];
            for (const char *p = w; *p; p++) CHECK(*p >= 'A' && *p <= 'z' && (*p <= 'Z' || *p >= 'a'));
        }
}

/* Each line's ids against the tokenizer's ids of the same sentence in corpus.txt. */
static void test_files(const char *dir) {
    char path[700];
    vene_tokenizer *tok = NULL;
    vene_error err = {0};
    CHECK_MSG(vene_tokenizer_load(dir, &tok, &err) == VENE_OK, "%s", err.msg);
    if (!tok) return;
    int32_t eos = vene_token_id(tok, FACTS_EOS);
    CHECK(vene_token_id(tok, FACTS_UNK) == 0 && eos == 1);
    snprintf(path, sizeof path, "%s/corpus.txt", dir);
    char *corpus = test_read_file(path, NULL);
    int n_lines[2] = {0, 0}, bad = 0, n_unk = 0;
    for (int held = 0; held < 2 && corpus; held++) {
        snprintf(path, sizeof path, "%s/%s.jsonl", dir, held ? "eval" : "train");
        char *jl = test_read_file(path, NULL), *save = NULL;
        for (char *line = jl ? strtok_r(jl, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
            cJSON *j = cJSON_Parse(line);
            const cJSON *ids = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "base"), "ids");
            int n = cJSON_GetArraySize(ids);
            int32_t v[FACTS_MAX_WORDS + 1];
            for (int i = 0; i < n && i <= FACTS_MAX_WORDS; i++) v[i] = (int32_t)cJSON_GetArrayItem(ids, i)->valuedouble;
            cJSON_Delete(j);
            if (n < 2 || v[n - 1] != eos) { bad++; continue; }
            char *text = NULL;
            size_t len = 0;
            for (int i = 0; i < n - 1; i++) n_unk += v[i] == 0;
            if (vene_detokenize(tok, v, (size_t)n - 1, &text, &len, &err)) { bad++; continue; }
            /* the sentence is in corpus.txt with its tag, and re-encodes to the same ids */
            char tagged[300];
            snprintf(tagged, sizeof tagged, "%s\t%s\n", held ? "held-out" : "train", text);
            int32_t *again = NULL;
            size_t k = 0;
            if (!strstr(corpus, tagged) || vene_tokenize(tok, text, len, &again, &k, &err) || k != (size_t)n - 1 ||
                memcmp(again, v, k * sizeof *v))
                bad++;
            vene_free(again);
            vene_free(text);
            n_lines[held]++;
        }
        free(jl);
    }
    CHECK_MSG(bad == 0, "%d dataset lines disagree with corpus.txt or the tokenizer", bad);
    CHECK(n_unk == 0);
    CHECK_MSG(n_lines[1] == 60, "%d held-out sentences", n_lines[1]);
    CHECK(n_lines[0] > 60 * 8);
    printf("corpus: %d training sentences, %d held-out, vocabulary %d\n", n_lines[0], n_lines[1], vene_tokenizer_vocab_size(tok));
    free(corpus);

    /* DAS pairs: the label is the source's capital; held-out sources only in eval */
    int lines[2] = {0, 0}, wrong = 0, src_seen[2][64] = {{0}};
    for (int ev = 0; ev < 2; ev++) {
        snprintf(path, sizeof path, "%s/das_country_%s.jsonl", dir, ev ? "eval" : "train");
        char *jl = test_read_file(path, NULL), *save = NULL;
        for (char *line = jl ? strtok_r(jl, "\n", &save) : NULL; line; line = strtok_r(NULL, "\n", &save)) {
            cJSON *j = cJSON_Parse(line);
            const cJSON *src = cJSON_GetObjectItem(cJSON_GetArrayItem(cJSON_GetObjectItem(j, "sources"), 0), "ids");
            const cJSON *base = cJSON_GetObjectItem(cJSON_GetObjectItem(j, "base"), "ids");
            int32_t s_country = (int32_t)cJSON_GetArrayItem(src, 3)->valuedouble, label = (int32_t)cJSON_GetObjectItem(j, "label")->valuedouble;
            const char *name = vene_token_piece(tok, s_country), *cap = vene_token_piece(tok, label);
            int ok = cJSON_GetArrayItem(base, 3)->valuedouble != s_country &&
                     cJSON_GetObjectItem(cJSON_GetObjectItem(j, "unit_locations"), "sources->base")->valueint == 3;
            for (int c = 0; c < facts_n_countries(); c++)
                if (name && !strcmp(name, facts_country_at(c)->name)) {
                    ok &= cap && !strcmp(cap, facts_country_at(c)->attr[FACTS_CAPITAL]);
                    src_seen[ev][c] = 1;
                }
            wrong += !ok;
            lines[ev]++;
            cJSON_Delete(j);
        }
        free(jl);
    }
    int overlap = 0, n_eval_src = 0;
    for (int c = 0; c < 60; c++) overlap += src_seen[0][c] && src_seen[1][c], n_eval_src += src_seen[1][c];
    CHECK_MSG(wrong == 0, "%d DAS pairs with a wrong label or location", wrong);
    CHECK_MSG(lines[0] == 48 * 47 && lines[1] == 12 * 59, "DAS pairs: %d train, %d eval", lines[0], lines[1]);
    CHECK(overlap == 0 && n_eval_src == 12);
    /* the binary contrast: Europe vs Asia only; IIT: 3 plain + 6 pairs per training fact */
    static const struct { const char *file; int lines; } counts[] = {
        {"das_continent_train", 512}, {"das_continent_eval", 192}, {"iit_train", 480 * 9}, {"iit_eval", 60 * 6}};
    for (int i = 0; i < 4; i++) {
        snprintf(path, sizeof path, "%s/%s.jsonl", dir, counts[i].file);
        char *jl = test_read_file(path, NULL);
        int n = 0, off = 0;
        const int32_t eu = vene_token_id(tok, "Europe"), as = vene_token_id(tok, "Asia");
        for (char *p = jl; p && *p; p++) n += *p == '\n';
        for (char *p = jl; i < 2 && p && (p = strstr(p, "\"label\": ")); p++) {
            int label = atoi(p + 9);
            off += label != eu && label != as;
        }
        CHECK_MSG(n == counts[i].lines && off == 0, "%s: %d lines (expected %d), %d labels neither Europe nor Asia",
                  counts[i].file, n, counts[i].lines, off);
        free(jl);
    }
    vene_tokenizer_free(tok);
}

static int same_file(const char *a, const char *b) {
    size_t la = 0, lb = 0;
    char *x = test_read_file(a, &la), *y = test_read_file(b, &lb);
    int same = x && y && la == lb && !memcmp(x, y, la);
    free(x), free(y);
    return same;
}

int main(void) {
    snprintf(tmpdir, sizeof tmpdir, "/tmp/vene_facts.XXXXXX");
    if (!mkdtemp(tmpdir)) return 1;
    test_split();
    vene_error err = {0};
    int n_vocab = 0, n_train = 0;
    CHECK_MSG(facts_write(tpath("a"), 0, &n_vocab, &n_train, &err) == VENE_OK, "%s", err.msg);
    CHECK(facts_write(tpath("b"), 0, NULL, NULL, &err) == VENE_OK);
    CHECK(facts_write(tpath("c"), 1, NULL, NULL, &err) == VENE_OK);
    static const char *const files[] = {"tokenizer.json", "tokenizer_config.json", "train.jsonl", "eval.jsonl",
                                        "das_country_train.jsonl", "das_country_eval.jsonl", "das_continent_train.jsonl",
                                        "das_continent_eval.jsonl", "iit_train.jsonl", "iit_eval.jsonl", "corpus.txt"};
    char a[600], b[600];
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        snprintf(a, sizeof a, "%s/%s", tpath("a"), files[i]);
        snprintf(b, sizeof b, "%s/%s", tpath("b"), files[i]);
        CHECK_MSG(same_file(a, b), "%s differs between two runs with seed 0", files[i]);
    }
    snprintf(b, sizeof b, "%s/eval.jsonl", tpath("c"));
    snprintf(a, sizeof a, "%s/eval.jsonl", tpath("a"));
    CHECK(!same_file(a, b));
    test_files(tpath("a"));
    /* errors name the folder */
    CHECK(facts_write("/proc/no/such/dir", 0, NULL, NULL, &err) == VENE_ERR_IO && strstr(err.msg, "/proc/no/such/dir"));
    facts_score s;
    CHECK(facts_eval(tpath("nothing"), 0, &s, NULL, NULL, &err) != VENE_OK && strstr(err.msg, "nothing"));
    rm_tree(tmpdir);
    TEST_MAIN_END();
}
