/* `vene run EXPERIMENT.json --out RESULT.safetensors` (docs/experiment-format.md). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "vene.h"

int vene_cmd_run(int argc, char **argv) {
    const char *exp = NULL, *out = NULL;
    vene_experiment_opts opts = {0};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: vene run EXPERIMENT.json --out RESULT.safetensors [--quiet] [--max-memory SIZE]\n\n"
                   "Executes an experiment file (pyvene semantics; format in docs/experiment-format.md):\n"
                   "source passes, the intervened base pass, and writes the tensors named in `outputs`.\n"
                   "The model path inside the file is relative to the file's folder. Prints a short\n"
                   "summary (shapes written, top next tokens before and after) unless --quiet.\n"
                   "--max-memory SIZE (512M, 2G, ...) refuses, before running, an experiment whose model\n"
                   "weights and run memory would need more than SIZE.\n");
            return 0;
        }
        if (!strcmp(argv[i], "--out") && i + 1 < argc) out = argv[++i];
        else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) opts.quiet = 1;
        else if (!strcmp(argv[i], "--max-memory") && i + 1 < argc) {
            if (vene_cli_size_arg("run", argv[++i], &opts.max_memory)) return 1;
        } else if (argv[i][0] == '-') return vene_cli_fail("run: unknown option \"%s\"", argv[i]);
        else if (!exp) exp = argv[i];
        else return vene_cli_fail("run: unexpected argument \"%s\"", argv[i]);
    }
    if (!exp || !out) return vene_cli_fail("run: expected EXPERIMENT.json and --out RESULT.safetensors");
    vene_error err = {0};
    if (vene_experiment_run_opts(exp, out, &opts, &err)) return vene_cli_fail("%s: %s", exp, err.msg);
    return 0;
}
