/* pyvene's lambda intervention, in C: zero the MLP output at one position.
 *
 * In pyvene:
 *
 *   pv.IntervenableModel({"layer": L, "component": "mlp_output",
 *                         "intervention": lambda b, s: b * 0}, model)
 *   intervenable(base, unit_locations={"base": 3})
 *
 * In C the lambda is a vene_iv_callback: it receives the gathered block (here 1 x 1 x D:
 * one example, one position, the MLP width) and changes it in place. It is attached to a
 * representation with vene_intervenable_set_callback; the representation's own type is
 * then ignored.
 *
 * Usage: example_lambda_zero [model_dir]   (default: the bundled test model) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vene.h"

/* lambda b, s: b * 0. `user` counts the calls, to show when the callback runs. */
static int zero_block(void *user, vene_tensor *base, const vene_tensor *source, const char *subspaces,
                      vene_error *err) {
    (void)source;    /* NULL: no source run was asked for */
    (void)subspaces; /* "null": the call gave no subspaces */
    (void)err;       /* fill it and return an error code to abort the forward */
    int *calls = user;
    (*calls)++;
    for (int64_t i = 0; i < vene_tensor_numel(base); i++) base->data[i] *= 0.0f;
    return VENE_OK;
}

static void print_top5(const char *label, const vene_tensor *logits, const vene_tokenizer *tok) {
    int64_t S = logits->shape[1], V = logits->shape[2];
    const float *row = logits->data + (S - 1) * V;
    int best[5] = {-1, -1, -1, -1, -1};
    for (int v = 0; v < V; v++)
        for (int k = 0; k < 5; k++)
            if (best[k] < 0 || row[v] > row[best[k]]) {
                memmove(best + k + 1, best + k, sizeof(int) * (size_t)(4 - k));
                best[k] = v;
                break;
            }
    printf("%-11s", label);
    for (int k = 0; k < 5; k++) {
        char *text = NULL;
        size_t len = 0;
        int32_t id = best[k];
        vene_detokenize(tok, &id, 1, &text, &len, NULL);
        printf("  '%s' %.3f", text ? text : "?", row[id]);
        vene_free(text);
    }
    printf("\n");
}

#define TRY(call)                                                      \
    do {                                                               \
        if ((call) != VENE_OK) {                                       \
            fprintf(stderr, "error: %s\n", err.msg);                   \
            return 1;                                                  \
        }                                                              \
    } while (0)

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "../tests/fixtures/models/gpt2-tiny";
    vene_error err = {0};
    vene_model *model = NULL;
    vene_tokenizer *tok = NULL;
    TRY(vene_model_load(dir, NULL, &model, &err));
    TRY(vene_tokenizer_load(dir, &tok, &err));

    const char *text = "The capital of Spain is";
    int32_t *ids = NULL;
    size_t n = 0;
    TRY(vene_tokenize(tok, text, strlen(text), &ids, &n, &err));

    vene_model_info info;
    vene_model_get_info(model, &info);
    int layer = info.n_layer / 2;
    char config[256];
    snprintf(config, sizeof config, "{\"layer\": %d, \"component\": \"mlp_output\"}", layer);
    vene_intervenable *iv = NULL;
    int calls = 0;
    TRY(vene_intervenable_new(model, config, &iv, &err));
    TRY(vene_intervenable_set_callback(iv, 0, zero_block, &calls, &err));

    /* No sources: the callback runs in the base run only, at position 3 (" Spain"). */
    vene_batch base = {1, (int)n, ids, NULL, NULL, NULL};
    vene_call call = {.base = &base, .unit_locations = "{\"base\": 3}", .output_original = 1};
    TRY(vene_intervenable_forward(iv, &call, &err));

    printf("\"%s\": mlp_output of layer %d zeroed at position 3\n\n", text, layer);
    const vene_tensor *orig = vene_intervenable_logits(iv, 0), *after = vene_intervenable_logits(iv, 1);
    print_top5("original", orig, tok);
    print_top5("zeroed", after, tok);

    /* How far did the next-token logits move? */
    int64_t S = orig->shape[1], V = orig->shape[2];
    double max_change = 0;
    for (int64_t v = 0; v < V; v++) {
        double d = after->data[(S - 1) * V + v] - orig->data[(S - 1) * V + v];
        if (d < 0) d = -d;
        if (d > max_change) max_change = d;
    }
    printf("\ncallback calls: %d, largest next-token logit change: %.4f\n", calls, max_change);

    vene_intervenable_free(iv);
    vene_free(ids);
    vene_tokenizer_free(tok);
    vene_model_free(model);
    return calls == 1 && max_change > 0 ? 0 : 1;
}
