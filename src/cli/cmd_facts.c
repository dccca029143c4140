/* `vene facts`: the synthetic factual language of the embedded model (src/data/facts.h):
 * write its corpus, or score a model on its facts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "data/facts.h"
#include "vene.h"

static int usage(void) {
    printf("usage: vene facts --out DIR [--seed S]\n"
           "       vene facts --eval MODEL_DIR [--seed S] [--misses]\n\n"
           "A synthetic factual language: %d countries with their capital, language and continent in three\n"
           "templates each (\"The capital of Spain is Madrid .\"), distractor sentences, and one\n"
           "(relation, template) combination per country held out of training (chosen by the seed).\n\n"
           "--out writes DIR/tokenizer.json (Hugging Face WordLevel vocabulary, Whitespace pre-tokenizer),\n"
           "tokenizer_config.json, train.jsonl and eval.jsonl (sentences as {\"base\": {\"ids\": [...]}} for\n"
           "`vene train-lm` or `vene train` with objective \"lm\"), das_country_{train,eval}.jsonl (DAS\n"
           "pairs \"The capital of X is\" / \"The capital of Y is\" labelled with Y's capital, held-out source\n"
           "countries in eval), das_continent_{train,eval}.jsonl (the same on \"The continent of X is\", Europe\n"
           "vs Asia only), iit_{train,eval}.jsonl (interchange intervention training at the subject token)\n"
           "and corpus.txt (every sentence, tagged).\n\n"
           "--eval prints a model's top-1 accuracy on the facts it was trained on (the token after the\n"
           "query, e.g. \"The capital of Spain is\" -> \"Madrid\") and on the held-out ones; --misses lists\n"
           "the wrong answers. Use the seed the corpus was written with.\n",
           facts_n_countries());
    return 0;
}

static void print_miss(void *user, const char *query, const char *want, const char *got, int heldout) {
    (void)user;
    printf("  %-9s %-40s want %-12s got %s\n", heldout ? "held-out" : "train", query, want, got);
}

int vene_cmd_facts(int argc, char **argv) {
    const char *out = NULL, *model = NULL;
    long long seed = 0;
    int misses = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage();
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--eval") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = atoll(argv[++i]);
        else if (!strcmp(argv[i], "--misses")) misses = 1;
        else return vene_cli_fail("facts: unexpected argument \"%s\" (see vene facts --help)", argv[i]);
    }
    if (!out == !model) return vene_cli_fail("facts: give one of --out DIR or --eval MODEL_DIR (see vene facts --help)");
    if (seed < 0) return vene_cli_fail("facts: --seed must be non-negative");
    vene_error err = {0};
    if (out) {
        int n_vocab = 0, n_train = 0;
        if (facts_write(out, (uint64_t)seed, &n_vocab, &n_train, &err)) return vene_cli_fail("%s", err.msg);
        printf("%s: %d countries, %d words in the vocabulary, %d training sentences (seed %lld)\n", out,
               facts_n_countries(), n_vocab, n_train, seed);
        return 0;
    }
    facts_score s;
    if (facts_eval(model, (uint64_t)seed, &s, misses ? print_miss : NULL, NULL, &err)) return vene_cli_fail("%s", err.msg);
    printf("%s: training facts %d/%d correct (%.1f%%; capital %d/%d, language %d/%d, continent %d/%d), "
           "held-out facts %d/%d (%.1f%%)\n",
           model, s.train_hits, s.train_total, 100.0 * s.train_hits / s.train_total, s.rel_hits[0], s.rel_total[0],
           s.rel_hits[1], s.rel_total[1], s.rel_hits[2], s.rel_total[2], s.heldout_hits, s.heldout_total,
           100.0 * s.heldout_hits / (s.heldout_total ? s.heldout_total : 1));
    return 0;
}
