/* `vene init DIR CONFIG.json [--seed S]`: a freshly initialised model folder. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "vene.h"

int vene_cmd_init(int argc, char **argv) {
    const char *dir = NULL, *cfg = NULL;
    long long seed = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: vene init DIR CONFIG.json [--seed S]\n\n"
                   "Writes DIR/config.json (a copy of CONFIG.json) and DIR/model.safetensors with freshly\n"
                   "initialised weights (Hugging Face's initialisation; model_type gpt2 or mlp), to train\n"
                   "from scratch with `vene train`. The same seed gives the same bytes.\n");
            return 0;
        }
        if (!strcmp(argv[i], "--seed") && i + 1 < argc) seed = atoll(argv[++i]);
        else if (argv[i][0] == '-') return vene_cli_fail("init: unknown option \"%s\"", argv[i]);
        else if (!dir) dir = argv[i];
        else if (!cfg) cfg = argv[i];
        else return vene_cli_fail("init: unexpected argument \"%s\"", argv[i]);
    }
    if (!dir || !cfg) return vene_cli_fail("init: expected DIR and CONFIG.json (see vene init --help)");
    if (seed < 0) return vene_cli_fail("init: --seed must be non-negative");
    FILE *f = fopen(cfg, "rb");
    if (!f) return vene_cli_fail("%s: cannot open", cfg);
    char *text = NULL;
    size_t cap = 0;
    ssize_t n = getdelim(&text, &cap, '\0', f);
    fclose(f);
    if (n <= 0) {
        free(text);
        return vene_cli_fail("%s: empty", cfg);
    }
    vene_error err = {0};
    int64_t params = 0;
    int rc = vene_model_init(dir, text, (uint64_t)seed, &params, &err);
    free(text);
    if (rc) return vene_cli_fail("%s: %s", cfg, err.msg);
    printf("%s: %lld parameters\n", dir, (long long)params);
    return 0;
}
