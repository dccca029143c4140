/* `vene train CONFIG.json [--out DIR]` (docs/training.md). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "vene.h"

int vene_cmd_train(int argc, char **argv) {
    const char *cfg = NULL;
    vene_train_options o = {.seed = -1};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            printf("usage: vene train CONFIG.json [--out DIR] [--epochs N] [--lr X] [--seed S] [--quiet]\n\n"
                   "Trains interventions (DAS, Boundless DAS, mask interventions) on a JSONL dataset of\n"
                   "(base, sources, label) examples, or the model itself under interventions (IIT,\n"
                   "\"model_gradients\": true), or plainly (no \"config\"). Reports held-out interchange\n"
                   "intervention accuracy (IIA) after each epoch and saves the trained interventions in\n"
                   "pyvene's layout (config.json + intkey_*.safetensors). Format: docs/training.md.\n\n"
                   "  --out DIR     where to save the interventions (default: the config's \"save\")\n"
                   "  --epochs N    override the config's epochs\n"
                   "  --lr X        override optimizer.lr\n"
                   "  --seed S      override the seed (initialisation, shuffling, held-out split)\n"
                   "  --quiet       no progress output\n");
            return 0;
        }
        if (!strcmp(a, "--out") && i + 1 < argc) o.out_dir = argv[++i];
        else if (!strcmp(a, "--epochs") && i + 1 < argc) o.epochs = atoi(argv[++i]);
        else if (!strcmp(a, "--lr") && i + 1 < argc) o.lr = (float)atof(argv[++i]);
        else if (!strcmp(a, "--seed") && i + 1 < argc) o.seed = atoll(argv[++i]);
        else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) o.quiet = 1;
        else if (a[0] == '-') return vene_cli_fail("train: unknown option \"%s\" (see vene train --help)", a);
        else if (!cfg) cfg = a;
        else return vene_cli_fail("train: unexpected argument \"%s\"", a);
    }
    if (!cfg) return vene_cli_fail("train: expected CONFIG.json (see vene train --help)");
    if (o.epochs < 0 || o.lr < 0 || (o.seed < 0 && o.seed != -1)) return vene_cli_fail("train: --epochs, --lr and --seed must be positive");
    vene_error err = {0};
    vene_train_result r;
    if (vene_train_run(cfg, &o, &r, &err)) return vene_cli_fail("%s", err.msg);
    char b[32];
    printf("trained %lld parameters in %d steps (%.1f s): train loss %.4f, held-out %s %.3f (before %.3f), "
           "training memory %s\n",
           (long long)r.params, r.steps, r.seconds, r.train_loss, r.interventions ? "IIA" : "accuracy", r.iia, r.iia_before,
           vene_cli_bytes((double)r.grad_bytes, b, sizeof b));
    return 0;
}
