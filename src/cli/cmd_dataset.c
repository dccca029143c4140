/* `vene dataset TASK ...`: write a `vene train` dataset (JSONL) from a built-in causal model. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "vene.h"

static void usage(void) {
    printf("usage: vene dataset hierarchical-equality --out FILE --size N [--seed S]\n"
           "         [--kind factual|counterfactual] [--variable LIST] [--subsets] [--block N]\n"
           "         [--model equality|pattern] [--dim D] [--objects K] [--pool-seed P] [--uniform]\n\n"
           "Writes N examples of pyvene's hierarchical-equality task (DAS_Main_Introduction) as\n"
           "`vene train` JSONL (docs/datasets.md), atomically. Four objects W, X, Y, Z, each one of K\n"
           "random vectors of size D, form the input {\"embeds\": [[4*D floats]]}; the label is O, 0 or 1.\n"
           "  equality model:  WX = (W == X), YZ = (Y == Z), O = (WX == YZ)\n"
           "  pattern model:   WY = (W == Y), XZ = (X == Z), O = (WY == XZ)   (the control)\n\n"
           "--kind factual        lines {\"base\", \"label\"}: training data for the model (default\n"
           "                      without --variable)\n"
           "--kind counterfactual lines {\"base\", \"sources\", \"label\", \"base_label\", \"intervention_id\"}:\n"
           "                      label = O after an interchange intervention, base_label = O of the base\n"
           "--variable LIST       intervened variables, comma-separated (WX, YZ, WX,YZ, W, ...); one\n"
           "                      source per variable, in this order. WY or XZ select the pattern model:\n"
           "                      the wrong-variable control for DAS on a network trained on equality.\n"
           "--subsets             each example intervenes a random non-empty subset of LIST (pyvene's\n"
           "                      sample_intervention); the other sources are null; intervention_id is\n"
           "                      the subset's bit mask - 1 (WX,YZ: {WX} 0, {YZ} 1, both 2)\n"
           "--block N             the same intervention for N consecutive examples (pyvene's batch_size)\n"
           "--model M             equality (default) or pattern, for factual data of the control\n"
           "--dim D               object vector size (default 4)\n"
           "--objects K           objects in the pool (default 1000, at most 2048). A small pool lets\n"
           "                      a network memorise objects instead of learning equality: with 20\n"
           "                      (pyvene's number_of_entities) DAS at layer 0 stays at chance\n"
           "--pool-seed P         seed of the object pool (default 0); keep it the same for the\n"
           "                      datasets one network is trained and aligned on\n"
           "--seed S              seed of the examples (default 0): the same seed gives the same bytes\n"
           "--uniform             draw inputs uniformly instead of balancing O (and the sources'\n"
           "                      intervened variables) through equivalence classes\n");
}

static int parse_i64(const char *s, long long lo, long long hi, long long *out) {
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi) return 0;
    *out = v;
    return 1;
}

static int parse_u64(const char *s, uint64_t *out) {
    char *end;
    errno = 0;
    if (s[0] == '-') return 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end) return 0;
    *out = (uint64_t)v;
    return 1;
}

/* Split LIST at commas into variable indices of cm. */
static int resolve_vars(const vene_causal *cm, const char *list, int *vars, int *n) {
    char buf[256];
    if (strlen(list) >= sizeof buf) return vene_cli_fail("dataset: --variable list too long");
    snprintf(buf, sizeof buf, "%s", list);
    *n = 0;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int v = vene_causal_find(cm, tok);
        if (v < 0) {
            fprintf(stderr, "vene: dataset: --variable: no variable %s in this model (variables:", tok);
            for (int i = 0; i < vene_causal_count(cm); i++) fprintf(stderr, " %s", vene_causal_name(cm, i));
            fprintf(stderr, ")\n");
            return 1;
        }
        if (*n == 16) return vene_cli_fail("dataset: --variable: more than 16 variables");
        vars[(*n)++] = v;
    }
    if (*n == 0) return vene_cli_fail("dataset: --variable: empty list");
    return 0;
}

/* Does LIST name a variable only the pattern model has (WY, XZ)? */
static int names_control(const char *list) {
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == 2 && (!strncmp(p, "WY", 2) || !strncmp(p, "XZ", 2))) return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

int vene_cmd_dataset(int argc, char **argv) {
    const char *task = NULL, *out = NULL, *kind = NULL, *list = NULL, *model = NULL;
    long long size = -1, block = 1, dim = 4, objects = 1000;
    uint64_t seed = 0, pool_seed = 0;
    int subsets = 0, uniform = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *val = i + 1 < argc ? argv[i + 1] : NULL;
        int ok = 1;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage();
            return 0;
        } else if (!strcmp(a, "--subsets")) {
            subsets = 1;
            continue;
        } else if (!strcmp(a, "--uniform")) {
            uniform = 1;
            continue;
        } else if (strncmp(a, "--", 2)) {
            if (task) return vene_cli_fail("dataset: unexpected argument \"%s\"", a);
            task = a;
            continue;
        }
        if (!val) return vene_cli_fail("dataset: %s needs a value", a);
        if (!strcmp(a, "--out")) out = val;
        else if (!strcmp(a, "--kind")) kind = val;
        else if (!strcmp(a, "--variable")) list = val;
        else if (!strcmp(a, "--model")) model = val;
        else if (!strcmp(a, "--size")) ok = parse_i64(val, 1, (long long)1 << 40, &size);
        else if (!strcmp(a, "--block")) ok = parse_i64(val, 1, (long long)1 << 40, &block);
        else if (!strcmp(a, "--dim")) ok = parse_i64(val, 1, 4096, &dim);
        else if (!strcmp(a, "--objects")) ok = parse_i64(val, 2, 2048, &objects);
        else if (!strcmp(a, "--seed")) ok = parse_u64(val, &seed);
        else if (!strcmp(a, "--pool-seed")) ok = parse_u64(val, &pool_seed);
        else return vene_cli_fail("dataset: unknown option \"%s\" (see `vene dataset --help`)", a);
        if (!ok) return vene_cli_fail("dataset: %s: bad value \"%s\" (see `vene dataset --help`)", a, val);
        i++;
    }
    if (!task) return vene_cli_fail("dataset: name a task: hierarchical-equality (see `vene dataset --help`)");
    if (strcmp(task, "hierarchical-equality"))
        return vene_cli_fail("dataset: unknown task \"%s\" (tasks: hierarchical-equality)", task);
    if (!out) return vene_cli_fail("dataset: --out FILE is required");
    if (size < 0) return vene_cli_fail("dataset: --size N is required");
    if (!kind) kind = list ? "counterfactual" : "factual";
    int factual = !strcmp(kind, "factual");
    if (!factual && strcmp(kind, "counterfactual"))
        return vene_cli_fail("dataset: --kind \"%s\" (expected factual or counterfactual)", kind);
    if (factual && list) return vene_cli_fail("dataset: --kind factual takes no --variable");
    if (!factual && !list) return vene_cli_fail("dataset: --kind counterfactual needs --variable (e.g. WX,YZ)");
    if (factual && (subsets || block > 1)) return vene_cli_fail("dataset: --subsets and --block need --variable");
    int pattern = list && names_control(list);
    if (model) {
        if (strcmp(model, "equality") && strcmp(model, "pattern"))
            return vene_cli_fail("dataset: --model \"%s\" (expected equality or pattern)", model);
        pattern = !strcmp(model, "pattern");
    }
    vene_error err = {0};
    vene_causal *cm = NULL;
    if (vene_causal_hierarchical_equality((int)dim, (int)objects, pool_seed, pattern, &cm, &err))
        return vene_cli_fail("dataset: %s", err.msg);
    int vars[16], n_vars = 0;
    if (list && resolve_vars(cm, list, vars, &n_vars)) {
        vene_causal_free(cm);
        return 1;
    }
    vene_causal_dataset d = {.size = size, .seed = seed, .output = -1, .balanced = !uniform, .n_vars = n_vars,
                             .vars = vars, .subsets = subsets, .block = (int)(block > (1 << 30) ? 1 << 30 : block)};
    int rc = vene_causal_write_jsonl(cm, &d, out, &err);
    vene_causal_free(cm);
    if (rc) return vene_cli_fail("%s", err.msg);
    printf("wrote %lld %s examples of hierarchical equality (%s model%s%s) to %s\n", size, kind,
           pattern ? "pattern" : "equality", list ? ", intervening " : "", list ? list : "", out);
    return 0;
}
