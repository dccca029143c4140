/* The synthetic factual language (facts.h): the world, the templates, the corpus, and
 * its files (a word-level tokenizer.json and JSONL datasets for `vene train`). */
#include "data/facts.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/error.h"
#include "core/rng.h"
#include "data/facts_io.h"

/* Real countries whose name and capital are single words; one official (or the most
 * spoken) language each; the Americas are one continent, "America". */
static const facts_country world[] = {
    {"Spain", {"Madrid", "Spanish", "Europe"}},        {"Italy", {"Rome", "Italian", "Europe"}},
    {"France", {"Paris", "French", "Europe"}},         {"Germany", {"Berlin", "German", "Europe"}},
    {"Portugal", {"Lisbon", "Portuguese", "Europe"}},  {"Greece", {"Athens", "Greek", "Europe"}},
    {"Poland", {"Warsaw", "Polish", "Europe"}},        {"Austria", {"Vienna", "German", "Europe"}},
    {"Sweden", {"Stockholm", "Swedish", "Europe"}},    {"Norway", {"Oslo", "Norwegian", "Europe"}},
    {"Finland", {"Helsinki", "Finnish", "Europe"}},    {"Denmark", {"Copenhagen", "Danish", "Europe"}},
    {"Ireland", {"Dublin", "English", "Europe"}},      {"Netherlands", {"Amsterdam", "Dutch", "Europe"}},
    {"Hungary", {"Budapest", "Hungarian", "Europe"}},  {"Romania", {"Bucharest", "Romanian", "Europe"}},
    {"Bulgaria", {"Sofia", "Bulgarian", "Europe"}},    {"Russia", {"Moscow", "Russian", "Europe"}},
    {"Ukraine", {"Kyiv", "Ukrainian", "Europe"}},      {"Croatia", {"Zagreb", "Croatian", "Europe"}},
    {"Serbia", {"Belgrade", "Serbian", "Europe"}},     {"Iceland", {"Reykjavik", "Icelandic", "Europe"}},
    {"Czechia", {"Prague", "Czech", "Europe"}},        {"Britain", {"London", "English", "Europe"}},
    {"Japan", {"Tokyo", "Japanese", "Asia"}},          {"China", {"Beijing", "Chinese", "Asia"}},
    {"Korea", {"Seoul", "Korean", "Asia"}},            {"Thailand", {"Bangkok", "Thai", "Asia"}},
    {"Vietnam", {"Hanoi", "Vietnamese", "Asia"}},      {"Indonesia", {"Jakarta", "Indonesian", "Asia"}},
    {"Philippines", {"Manila", "Filipino", "Asia"}},   {"Iran", {"Tehran", "Persian", "Asia"}},
    {"Iraq", {"Baghdad", "Arabic", "Asia"}},           {"Turkey", {"Ankara", "Turkish", "Asia"}},
    {"Israel", {"Jerusalem", "Hebrew", "Asia"}},       {"Pakistan", {"Islamabad", "Urdu", "Asia"}},
    {"Nepal", {"Kathmandu", "Nepali", "Asia"}},        {"Mongolia", {"Ulaanbaatar", "Mongolian", "Asia"}},
    {"Syria", {"Damascus", "Arabic", "Asia"}},         {"Bangladesh", {"Dhaka", "Bengali", "Asia"}},
    {"Georgia", {"Tbilisi", "Georgian", "Asia"}},      {"Armenia", {"Yerevan", "Armenian", "Asia"}},
    {"Egypt", {"Cairo", "Arabic", "Africa"}},          {"Kenya", {"Nairobi", "Swahili", "Africa"}},
    {"Nigeria", {"Abuja", "English", "Africa"}},       {"Ghana", {"Accra", "English", "Africa"}},
    {"Morocco", {"Rabat", "Arabic", "Africa"}},        {"Algeria", {"Algiers", "Arabic", "Africa"}},
    {"Senegal", {"Dakar", "French", "Africa"}},        {"Uganda", {"Kampala", "English", "Africa"}},
    {"Angola", {"Luanda", "Portuguese", "Africa"}},    {"Somalia", {"Mogadishu", "Somali", "Africa"}},
    {"Canada", {"Ottawa", "English", "America"}},      {"Brazil", {"Brasilia", "Portuguese", "America"}},
    {"Chile", {"Santiago", "Spanish", "America"}},     {"Peru", {"Lima", "Spanish", "America"}},
    {"Cuba", {"Havana", "Spanish", "America"}},        {"Jamaica", {"Kingston", "English", "America"}},
    {"Australia", {"Canberra", "English", "Oceania"}}, {"Samoa", {"Apia", "Samoan", "Oceania"}},
};
#define N_COUNTRIES ((int)(sizeof world / sizeof world[0]))

/* "$X" is the subject (the country), "$A" the answer. */
static const char *const templates[FACTS_N_REL][FACTS_N_TMPL][FACTS_MAX_WORDS] = {
    [FACTS_CAPITAL] = {{"The", "capital", "of", "$X", "is", "$A", "."},
                       {"$X", "'", "s", "capital", "is", "$A", "."},
                       {"The", "capital", "city", "of", "$X", "is", "$A", "."}},
    [FACTS_LANGUAGE] = {{"The", "language", "of", "$X", "is", "$A", "."},
                        {"$X", "'", "s", "language", "is", "$A", "."},
                        {"People", "in", "$X", "speak", "$A", "."}},
    [FACTS_CONTINENT] = {{"The", "continent", "of", "$X", "is", "$A", "."},
                         {"$X", "is", "in", "$A", "."},
                         {"$X", "is", "a", "country", "in", "$A", "."}},
};
static const char *const relation_names[FACTS_N_REL] = {"capital", "language", "continent"};

/* Distractors: "$X" a country, "$C" its capital, "$W" a random weather word; then one
 * sentence per distinct language ("$L") and per continent ("$K"). */
static const char *const country_distractors[][FACTS_MAX_WORDS] = {
    {"$X", "is", "a", "country", "."},           {"$C", "is", "a", "city", "."},
    {"$C", "is", "in", "$X", "."},               {"I", "live", "in", "$C", "."},
    {"The", "weather", "in", "$X", "is", "$W", "."}, {"The", "weather", "in", "$C", "is", "$W", "."},
};
static const char *const language_distractor[FACTS_MAX_WORDS] = {"$L", "is", "a", "language", "."};
static const char *const continent_distractor[FACTS_MAX_WORDS] = {"$K", "is", "a", "continent", "."};
static const char *const weather[] = {"warm", "cold", "sunny", "rainy", "mild"};

int facts_n_countries(void) { return N_COUNTRIES; }
const facts_country *facts_country_at(int i) { return i >= 0 && i < N_COUNTRIES ? &world[i] : NULL; }
const char *facts_relation_name(int rel) { return rel >= 0 && rel < FACTS_N_REL ? relation_names[rel] : NULL; }

/* Fills s from a template: "$X" becomes x, "$A" a, "$C" c, anything else extra. */
static void instantiate(const char *const *tmpl, const char *x, const char *a, const char *c, const char *extra,
                        facts_sentence *s) {
    memset(s, 0, sizeof *s);
    s->answer = s->subject = s->rel = s->tmpl = s->country = -1;
    for (int i = 0; i < FACTS_MAX_WORDS && tmpl[i]; i++) {
        const char *w = tmpl[i];
        if (w[0] == '$') {
            int subj = w[1] != 'A' && w[1] != 'W'; /* $X, $C, $L, $K: the first of them is the subject */
            if (subj && s->subject < 0) s->subject = i;
            if (w[1] == 'A') s->answer = i;
            w = w[1] == 'X' ? x : w[1] == 'A' ? a : w[1] == 'C' ? c : extra;
        }
        s->w[s->n++] = w;
    }
}

void facts_fact(int rel, int tmpl, int c, facts_sentence *out) {
    const facts_country *k = &world[c];
    instantiate(templates[rel][tmpl], k->name, k->attr[rel], NULL, NULL, out);
    out->rel = rel, out->tmpl = tmpl, out->country = c;
}

/* Each country loses one combination: relation c mod 3, template 1 or 2 by the seed. */
int facts_is_heldout(int rel, int tmpl, int c, uint64_t seed) {
    if (tmpl == 0 || rel != c % FACTS_N_REL) return 0;
    uint64_t st = seed * 0x9e3779b97f4a7c15ULL + (uint64_t)c;
    return tmpl == 1 + (int)(vene_splitmix64(&st) % 2);
}

void facts_query_text(const facts_sentence *s, char *buf, int n) {
    int o = 0;
    buf[0] = '\0';
    for (int i = 0; i < s->answer && o < n; i++) o += snprintf(buf + o, (size_t)(n - o), "%s%s", i ? " " : "", s->w[i]);
}

int facts_corpus(uint64_t seed, facts_sentence **out, int *n, vene_error *err) {
    int n_lang = 0;
    const char *langs[N_COUNTRIES];
    for (int c = 0; c < N_COUNTRIES; c++) {
        int seen = 0;
        for (int j = 0; j < n_lang; j++) seen |= !strcmp(langs[j], world[c].attr[FACTS_LANGUAGE]);
        if (!seen) langs[n_lang++] = world[c].attr[FACTS_LANGUAGE];
    }
    static const char *const continents[] = {"Europe", "Asia", "Africa", "America", "Oceania"};
    int n_dis = (int)(sizeof country_distractors / sizeof country_distractors[0]);
    int cap = N_COUNTRIES * (FACTS_N_REL * FACTS_N_TMPL + n_dis) + n_lang + 5;
    facts_sentence *s = calloc((size_t)cap, sizeof *s);
    if (!s) return vene_errorf(err, VENE_ERR_MEMORY, "facts: out of memory");
    int k = 0;
    for (int rel = 0; rel < FACTS_N_REL; rel++)
        for (int t = 0; t < FACTS_N_TMPL; t++)
            for (int c = 0; c < N_COUNTRIES; c++) {
                facts_fact(rel, t, c, &s[k]);
                s[k++].heldout = facts_is_heldout(rel, t, c, seed);
            }
    vene_rng r;
    vene_rng_seed(&r, seed ^ 0xfac75ULL);
    for (int c = 0; c < N_COUNTRIES; c++)
        for (int d = 0; d < n_dis; d++) {
            const char *w = weather[vene_rng_next(&r) % (sizeof weather / sizeof weather[0])];
            instantiate(country_distractors[d], world[c].name, NULL, world[c].attr[FACTS_CAPITAL], w, &s[k++]);
        }
    for (int j = 0; j < n_lang; j++) instantiate(language_distractor, NULL, NULL, NULL, langs[j], &s[k++]);
    for (int j = 0; j < 5; j++) instantiate(continent_distractor, NULL, NULL, NULL, continents[j], &s[k++]);
    *out = s;
    *n = k;
    return VENE_OK;
}

/* ---------------------------------------------------------------- the vocabulary */

/* Special tokens first, then every word in order of first appearance in the corpus. */
static int build_vocab(const facts_sentence *s, int n, const char ***words, int *n_words, vene_error *err) {
    int cap = 64, k = 0;
    const char **v = malloc(sizeof *v * (size_t)cap);
    if (!v) return vene_errorf(err, VENE_ERR_MEMORY, "facts: out of memory");
    v[k++] = FACTS_UNK;
    v[k++] = FACTS_EOS;
    for (int i = 0; i < n; i++)
        for (int j = 0; j < s[i].n; j++) {
            int seen = 0;
            for (int q = 0; q < k && !seen; q++) seen = !strcmp(v[q], s[i].w[j]);
            if (seen) continue;
            if (k == cap) {
                const char **nv = realloc(v, sizeof *v * (size_t)(cap *= 2));
                if (!nv) {
                    free(v);
                    return vene_errorf(err, VENE_ERR_MEMORY, "facts: out of memory");
                }
                v = nv;
            }
            v[k++] = s[i].w[j];
        }
    *words = v;
    *n_words = k;
    return VENE_OK;
}

/* Hugging Face's tokenizer.json for a WordLevel model with the Whitespace pre-tokenizer. */
static char *tokenizer_json(const char *const *words, int n) {
    cJSON *root = cJSON_CreateObject(), *added = cJSON_CreateArray(), *model = cJSON_CreateObject();
    cJSON *vocab = cJSON_CreateObject(), *pre = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON_AddItemToObject(root, "added_tokens", added);
    cJSON_AddNullToObject(root, "normalizer");
    cJSON_AddStringToObject(pre, "type", "Whitespace");
    cJSON_AddItemToObject(root, "pre_tokenizer", pre);
    cJSON_AddNullToObject(root, "post_processor");
    cJSON_AddNullToObject(root, "decoder");
    cJSON_AddStringToObject(model, "type", "WordLevel");
    cJSON_AddItemToObject(model, "vocab", vocab);
    cJSON_AddStringToObject(model, "unk_token", FACTS_UNK);
    cJSON_AddItemToObject(root, "model", model);
    for (int i = 0; i < n; i++) {
        cJSON_AddNumberToObject(vocab, words[i], i);
        if (i > 1) continue; /* the special tokens */
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", i);
        cJSON_AddStringToObject(a, "content", words[i]);
        cJSON_AddFalseToObject(a, "single_word");
        cJSON_AddFalseToObject(a, "lstrip");
        cJSON_AddFalseToObject(a, "rstrip");
        cJSON_AddFalseToObject(a, "normalized");
        cJSON_AddTrueToObject(a, "special");
        cJSON_AddItemToArray(added, a);
    }
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    return text;
}

/* ---------------------------------------------------------------- writing */

static int word_id(const char *const *words, int n, const char *w) {
    for (int i = 0; i < n; i++)
        if (!strcmp(words[i], w)) return i;
    return 0; /* unreachable: the vocabulary holds every word of the corpus */
}

/* One {"base": {"ids": [...]}} line per sentence, shortest sentences first: `vene train`
 * batches sentences of one length together, and file order keeps its step count exact. */
static int write_lm(const char *path, const facts_sentence *s, int n, int heldout, const char *const *words, int n_words,
                    int *count, vene_error *err) {
    facts_buf b = {0};
    int k = 0;
    for (int len = 1; len <= FACTS_MAX_WORDS; len++)
        for (int i = 0; i < n; i++) {
            if (s[i].n != len || s[i].heldout != heldout) continue;
            facts_buf_printf(&b, "{\"base\": {\"ids\": [");
            for (int j = 0; j < s[i].n; j++) facts_buf_printf(&b, "%d, ", word_id(words, n_words, s[i].w[j]));
            facts_buf_printf(&b, "%d]}}\n", word_id(words, n_words, FACTS_EOS));
            k++;
        }
    if (count) *count = k;
    return facts_buf_save(&b, path, err);
}

static int write_corpus_txt(const char *path, const facts_sentence *s, int n, vene_error *err) {
    facts_buf b = {0};
    for (int i = 0; i < n; i++) {
        facts_buf_printf(&b, "%s\t", s[i].heldout ? "held-out" : "train");
        for (int j = 0; j < s[i].n; j++) facts_buf_printf(&b, "%s%s", j ? " " : "", s[i].w[j]);
        facts_buf_printf(&b, "\n");
    }
    return facts_buf_save(&b, path, err);
}

int facts_write(const char *dir, uint64_t seed, int *n_vocab, int *n_train, vene_error *err) {
    if (!dir) return vene_errorf(err, VENE_ERR_ARG, "facts_write: NULL folder");
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) return vene_errorf(err, VENE_ERR_IO, "%s: cannot create: %s", dir, strerror(errno));
    facts_sentence *s = NULL;
    const char **words = NULL;
    int n = 0, nw = 0, rc = facts_corpus(seed, &s, &n, err);
    if (!rc) rc = build_vocab(s, n, &words, &nw, err);
    char path[4200], path2[4200];
    if (!rc) {
        facts_buf b = {0};
        char *tj = tokenizer_json(words, nw);
        if (!tj) rc = vene_errorf(err, VENE_ERR_MEMORY, "facts: out of memory");
        else facts_buf_printf(&b, "%s\n", tj);
        free(tj);
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        if (!rc) rc = facts_buf_save(&b, path, err);
        else free(b.p);
    }
    if (!rc) {
        facts_buf b = {0};
        facts_buf_printf(&b, "{\n  \"tokenizer_class\": \"PreTrainedTokenizerFast\",\n  \"unk_token\": \"%s\",\n"
                             "  \"bos_token\": \"%s\",\n  \"eos_token\": \"%s\",\n  \"pad_token\": \"%s\"\n}\n",
                         FACTS_UNK, FACTS_EOS, FACTS_EOS, FACTS_EOS);
        snprintf(path, sizeof path, "%s/tokenizer_config.json", dir);
        rc = facts_buf_save(&b, path, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/train.jsonl", dir);
        rc = write_lm(path, s, n, 0, words, nw, n_train, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/eval.jsonl", dir);
        rc = write_lm(path, s, n, 1, words, nw, NULL, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/corpus.txt", dir);
        rc = write_corpus_txt(path, s, n, err);
    }
    vene_tokenizer *tok = NULL;
    if (!rc) rc = vene_tokenizer_load(dir, &tok, err);
    static const struct { const char *name; int rel; const char *va, *vb; } das[] = {
        {"country", FACTS_CAPITAL, NULL, NULL}, {"continent", FACTS_CONTINENT, "Europe", "Asia"}};
    for (int i = 0; i < 2 && !rc; i++) {
        snprintf(path, sizeof path, "%s/das_%s_train.jsonl", dir, das[i].name);
        snprintf(path2, sizeof path2, "%s/das_%s_eval.jsonl", dir, das[i].name);
        rc = facts_write_das(path, path2, tok, das[i].rel, das[i].va, das[i].vb, 5, seed, err);
    }
    if (!rc) {
        snprintf(path, sizeof path, "%s/iit_train.jsonl", dir);
        snprintf(path2, sizeof path2, "%s/iit_eval.jsonl", dir);
        rc = facts_write_iit(path, path2, tok, 6, seed, err);
    }
    vene_tokenizer_free(tok);
    if (n_vocab) *n_vocab = nw;
    free(words);
    free(s);
    return rc;
}
