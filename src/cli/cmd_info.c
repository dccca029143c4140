/* `vene info MODEL_DIR`: what a researcher needs to address a model. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "vene.h"

int vene_cmd_info(int argc, char **argv) {
    const char *dir = NULL, *cls = NULL;
    int seq = 16;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: vene info MODEL_DIR [--class CLASS] [--seq S]\n\n"
                   "Prints the architecture, parameter count, memory, and every hook site with its\n"
                   "shape for a batch of 1 x S tokens (S = 16 by default). Site names are the Hugging\n"
                   "Face module paths pyvene accepts as components, e.g. h[3].attn.c_attn.output.\n"
                   "--class GPT2Model loads the bare transformer (no LM head).\n");
            return 0;
        } else if (!strcmp(argv[i], "--class") && i + 1 < argc) {
            cls = argv[++i];
        } else if (!strcmp(argv[i], "--seq") && i + 1 < argc) {
            if (vene_cli_int_arg("info", "--seq", argv[++i], 1, 1000000, &seq)) return 1;
        } else if (argv[i][0] == '-') {
            return vene_cli_fail("info: unknown option \"%s\"", argv[i]);
        } else if (!dir) {
            dir = argv[i];
        } else {
            return vene_cli_fail("info: unexpected argument \"%s\"", argv[i]);
        }
    }
    if (!dir) return vene_cli_fail("info: missing MODEL_DIR (see `vene info --help`)");
    vene_error err = {0};
    vene_model *m = NULL;
    if (vene_model_load(dir, cls, &m, &err)) return vene_cli_fail("%s", err.msg);
    vene_model_info in;
    vene_model_get_info(m, &in);
    char b1[32];
    printf("model        %s\n", dir);
    printf("type         %s (%s)\n", in.model_type, in.model_class);
    printf("layers       %d\nwidth        %d\nheads        %d x %d\nmlp width    %d\nvocab        %d\npositions    %d\n",
           in.n_layer, in.d_model, in.n_head, in.head_dim, in.d_ff, in.vocab_size, in.n_ctx);
    printf("parameters   %lld (%s as float32)\n", (long long)in.n_params, vene_cli_bytes((double)in.weight_bytes, b1, 32));
    printf("lm head      %s\n", in.has_lm_head ? "yes (logits)" : "no (bare model: last_hidden_state only)");
    printf("path prefix  \"%s\"\n\nhook sites (shape for batch 1 x %d tokens; %%d = layer 0..%d):\n", in.path_prefix, seq,
           in.n_layer - 1);
    int n = vene_model_site_count(m);
    for (int i = 0; i < n; i++) {
        vene_site_info s;
        vene_model_site(m, i, &s);
        /* the LM head (lm_head; GPT-NeoX: embed_out) sits beside the backbone, not under its prefix */
        int head = !strncmp(s.path, "lm_head", 7) || !strncmp(s.path, "embed_out", 9);
        if (!in.has_lm_head && head) continue;
        int64_t shape[VENE_MAX_DIMS];
        int nd = vene_model_site_shape(m, i, 1, seq, shape);
        char name[160], shp[96];
        snprintf(name, sizeof name, "%s%s.%s", head ? "" : in.path_prefix, s.path,
                 s.is_input ? "input" : "output");
        int off = 0;
        for (int d = 0; d < nd; d++) off += snprintf(shp + off, sizeof shp - (size_t)off, d ? " x %lld" : "%lld", (long long)shape[d]);
        printf("  %-44s %-16s %s\n", name, s.shape, shp);
    }
    vene_model_free(m);
    return 0;
}
