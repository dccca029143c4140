/* A synthetic factual language for vene's embedded model: 60 countries, each with a
 * capital, a language and a continent, stated in three templates per relation
 * ("The capital of Spain is Madrid ."), plus distractor sentences ("The weather in Spain
 * is rainy ."). One (relation, template) combination per country is held out of
 * training, so a model can be checked on stating a fact in a form it never saw it in.
 *
 * Everything is a function of a seed: the held-out combinations, the distractors'
 * random words, the counterfactual pairs for DAS. Words are whole tokens of a
 * word-level vocabulary (Hugging Face's WordLevel model with the Whitespace
 * pre-tokenizer), so every name is one token and every template puts its answer
 * right after the query. */
#ifndef VENE_DATA_FACTS_H
#define VENE_DATA_FACTS_H

#include <stdint.h>

#include "vene.h"

enum { FACTS_CAPITAL, FACTS_LANGUAGE, FACTS_CONTINENT, FACTS_N_REL };
#define FACTS_N_TMPL 3
#define FACTS_MAX_WORDS 12 /* the longest sentence, its "." and the end-of-text token */
#define FACTS_EOS "<|endoftext|>"
#define FACTS_UNK "[UNK]"

typedef struct facts_country {
    const char *name;
    const char *attr[FACTS_N_REL]; /* capital, language, continent */
} facts_country;

int facts_n_countries(void);
const facts_country *facts_country_at(int i);
const char *facts_relation_name(int rel); /* "capital", "language", "continent" */

/* A sentence of the language as words (the closing "." included, the end-of-text token
 * not). Fact sentences end with their answer and "."; the query is words [0, answer). */
typedef struct facts_sentence {
    const char *w[FACTS_MAX_WORDS];
    int n;
    int subject;  /* index of the subject's word */
    int answer;   /* index of the answer's word; -1 for distractors */
    int rel, tmpl, country; /* -1 for distractors */
    int heldout;  /* withheld from training */
} facts_sentence;

/* The fact sentence of relation rel in template tmpl about country c. */
void facts_fact(int rel, int tmpl, int c, facts_sentence *out);
/* Whether (rel, tmpl, c) is held out of training for this seed (template 0 never is). */
int facts_is_heldout(int rel, int tmpl, int c, uint64_t seed);
/* The query of a fact as text: its words before the answer, joined by spaces. */
void facts_query_text(const facts_sentence *s, char *buf, int n);

/* Every sentence of the corpus for a seed, facts first (held-out ones flagged), then the
 * distractors. Caller frees *out. */
int facts_corpus(uint64_t seed, facts_sentence **out, int *n, vene_error *err);

/* Writes the corpus into dir (created if needed), each file atomically:
 *   tokenizer.json, tokenizer_config.json   the word-level vocabulary (Hugging Face format)
 *   train.jsonl, eval.jsonl                 training sentences and the held-out facts as
 *                                           {"base": {"ids": [...]}} (objective "lm")
 *   das_country_{train,eval}.jsonl          DAS pairs on the country (capital queries)
 *   das_continent_{train,eval}.jsonl        DAS pairs on Europe vs Asia (continent queries)
 *   iit_{train,eval}.jsonl                  IIT examples (facts_write_iit)
 *   corpus.txt                              every sentence as text, tagged train / held-out
 * *n_vocab, *n_train (optional) receive the vocabulary size and the training sentences. */
int facts_write(const char *dir, uint64_t seed, int *n_vocab, int *n_train, vene_error *err);

/* The query of (rel, tmpl, c) in tok's ids (one token per word); *subject, when non-NULL,
 * gets the subject's position. And the token of the answer of (rel, c). */
int facts_query_ids(const vene_tokenizer *tok, int rel, int tmpl, int c, int32_t *ids, int cap, int *n, int *subject,
                    vene_error *err);
int facts_answer_id(const vene_tokenizer *tok, int rel, int c, vene_error *err);

/* Counterfactual pairs for DAS on relation rel (template 0): base "The capital of X is",
 * source "The capital of Y is", label the token of Y's answer, unit_locations
 * {"sources->base": subject position}. With va and vb (attribute values, e.g. "Europe"
 * and "Asia") only pairs whose bases and sources have these two different values are
 * kept: a binary variable. The countries are split by the seed: every n_eval-th country
 * of a seeded order is a held-out source. Training pairs have base and source among the
 * others; eval pairs have a held-out source and any other base. */
int facts_write_das(const char *train_path, const char *eval_path, const vene_tokenizer *tok, int rel, const char *va,
                    const char *vb, int n_eval, uint64_t seed, vene_error *err);

/* Interchange intervention training (IIT) examples that make the country's state at the
 * subject token what the answer is read from: for every training fact and n_sources
 * random other countries Y, the same query about Y as source, labelled with Y's answer,
 * at the subject position; plus every training fact without a source (three times), so
 * the facts stay right. The eval file has the held-out facts' queries as bases. */
int facts_write_iit(const char *train_path, const char *eval_path, const vene_tokenizer *tok, int n_sources,
                    uint64_t seed, vene_error *err);

/* Top-1 accuracy of a model on the facts: for every fact, does the most likely next
 * token after the query equal the answer? Counted separately for the facts in
 * training and the held-out ones, and per relation. */
typedef struct facts_score {
    int train_hits, train_total;
    int heldout_hits, heldout_total;
    int rel_hits[FACTS_N_REL], rel_total[FACTS_N_REL]; /* training facts only */
} facts_score;
/* `miss`, when non-NULL, is called for each wrong training or held-out fact. */
int facts_eval(const char *model_dir, uint64_t seed, facts_score *out,
               void (*miss)(void *user, const char *query, const char *want, const char *got, int heldout), void *user,
               vene_error *err);

#endif
