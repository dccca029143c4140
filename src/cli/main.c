/* The `vene` command-line tool: dispatch to subcommands. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "vene.h"

int vene_cli_fail(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("vene: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

const char *vene_cli_bytes(double bytes, char *buf, int n) {
    const char *unit[] = {"B", "KB", "MB", "GB", "TB"};
    int u = 0;
    while (bytes >= 1000 && u < 4) {
        bytes /= 1000;
        u++;
    }
    snprintf(buf, (size_t)n, u ? "%.1f %s" : "%.0f %s", bytes, unit[u]);
    return buf;
}

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *summary;
} commands[] = {
    {"info", vene_cmd_info, "architecture, parameters, memory and every hook site of a model"},
    {"tokenize", vene_cmd_tokenize, "token ids and pieces of a text"},
    {"forward", vene_cmd_forward, "run a model on a text: next-token top-k, logits and sites to a file"},
    {"run", vene_cmd_run, "execute an experiment file (pyvene semantics) and write the result"},
    {"init", vene_cmd_init, "a freshly initialised model folder (gpt2, mlp) to train from scratch"},
    {"train", vene_cmd_train, "train interventions (DAS, Boundless DAS, masks) or the model (IIT) on a dataset"},
    {"dataset", vene_cmd_dataset, "write a `vene train` dataset (JSONL) from a built-in causal model"},
    {"generate", vene_cmd_generate, "continue a text, streaming tokens; with an experiment's interventions"},
    {"trace", vene_cmd_trace, "ROME's causal tracing: restore each layer x token after noising the subject"},
    {"patch", vene_cmd_patch, "activation patching sweep: components x layers x positions (x heads)"},
    {"facts", vene_cmd_facts, "the embedded model's synthetic factual language: write its corpus, score a model"},
    {"train-lm", vene_cmd_train_lm, "train a small GPT-2 language model from scratch on a corpus"},
};

static void usage(FILE *f) {
    fprintf(f, "vene %s: pyvene's causal interventions, in C\n\nusage: vene COMMAND [ARGS]\n\ncommands:\n",
            VENE_VERSION);
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].summary);
    fprintf(f, "\n`vene COMMAND --help` describes a command.\n");
}

int main(int argc, char **argv) {
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
        usage(stdout);
        return 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("vene %s\n", VENE_VERSION);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    vene_cli_fail("unknown command \"%s\" (see `vene --help`)", argv[1]);
    return 2;
}
