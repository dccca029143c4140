/* A custom intervention with its own state, in C.
 *
 * pyvene's custom-class example:
 *
 *   class MultiplierIntervention(pv.ConstantSourceIntervention):
 *       def __init__(self, factor, **kwargs):
 *           super().__init__(**kwargs); self.factor = factor
 *       def forward(self, base, source=None, subspaces=None):
 *           return base * self.factor
 *
 * In C the class is a callback plus a `user` pointer to its state (here the factor). The
 * same intervenable runs with factor 1 (must change nothing), 0.5 and 2, and prints how the
 * next-token logits of the original top tokens move.
 *
 * Usage: example_custom_multiplier [model_dir]   (default: the bundled test model) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vene.h"

typedef struct multiplier {
    float factor;
} multiplier;

/* forward(base, source, subspaces): scale the gathered block in place. */
static int multiply(void *user, vene_tensor *base, const vene_tensor *source, const char *subspaces, vene_error *err) {
    (void)source;
    (void)subspaces;
    (void)err;
    const multiplier *m = user;
    for (int64_t i = 0; i < vene_tensor_numel(base); i++) base->data[i] *= m->factor;
    return VENE_OK;
}

/* The k highest entries of row[0..V) into best[], highest first. */
static void top_k(const float *row, int64_t V, int32_t *best, int k) {
    for (int j = 0; j < k; j++) best[j] = -1;
    for (int32_t v = 0; v < V; v++)
        for (int j = 0; j < k; j++)
            if (best[j] < 0 || row[v] > row[best[j]]) {
                memmove(best + j + 1, best + j, sizeof(int32_t) * (size_t)(k - 1 - j));
                best[j] = v;
                break;
            }
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

    const char *text = "The Space Needle is in downtown";
    int32_t *ids = NULL;
    size_t n = 0;
    TRY(vene_tokenize(tok, text, strlen(text), &ids, &n, &err));

    /* The multiplier acts on block_output of layer 0 at every position (pyvene's
     * unit_locations {"base": [0, 1, ..., S-1]}). */
    vene_intervenable *iv = NULL;
    multiplier state = {1.0f};
    TRY(vene_intervenable_new(model, "{\"layer\": 0, \"component\": \"block_output\"}", &iv, &err));
    TRY(vene_intervenable_set_callback(iv, 0, multiply, &state, &err));
    char where[512] = "{\"base\": [";
    for (size_t i = 0; i < n; i++) snprintf(where + strlen(where), sizeof where - strlen(where), i ? ", %zu" : "%zu", i);
    strcat(where, "]}");

    vene_batch base = {1, (int)n, ids, NULL, NULL, NULL};
    const float factors[] = {1.0f, 0.5f, 2.0f};
    float *orig = NULL;
    int32_t top[3] = {0, 0, 0};
    int ok = 1;
    printf("\"%s\": block_output of layer 0 multiplied by a factor\n\n", text);
    for (int f = 0; f < 3; f++) {
        state.factor = factors[f]; /* the callback reads its state at call time */
        vene_call call = {.base = &base, .unit_locations = where, .output_original = f == 0};
        TRY(vene_intervenable_forward(iv, &call, &err));
        const vene_tensor *lg = vene_intervenable_logits(iv, 1);
        int64_t V = lg->shape[2];
        const float *row = lg->data + (lg->shape[1] - 1) * V;
        if (f == 0) {
            /* keep the original next-token logits and its top-3 tokens */
            const vene_tensor *o = vene_intervenable_logits(iv, 0);
            orig = malloc(sizeof(float) * (size_t)V);
            memcpy(orig, o->data + (o->shape[1] - 1) * V, sizeof(float) * (size_t)V);
            top_k(orig, V, top, 3);
            printf("%-12s", "next token");
            for (int k = 0; k < 3; k++) {
                char *t = NULL;
                size_t len = 0;
                vene_detokenize(tok, &top[k], 1, &t, &len, NULL);
                char quoted[64];
                snprintf(quoted, sizeof quoted, "'%s'", t ? t : "?");
                printf("  %14s", quoted); /* below: its logit, then the change per factor */
                vene_free(t);
            }
            printf("\n%-12s", "original");
            for (int k = 0; k < 3; k++) printf("  %14.4f", orig[top[k]]);
            printf("\n");
        }
        int same = memcmp(row, orig, sizeof(float) * (size_t)V) == 0;
        printf("factor %-5.1f", factors[f]);
        for (int k = 0; k < 3; k++) printf("  %+14.4f", row[top[k]] - orig[top[k]]);
        printf("   %s\n", same ? "(unchanged)" : "(changed)");
        ok &= factors[f] == 1.0f ? same : !same; /* x1 is the identity, the others are not */
    }

    free(orig);
    vene_intervenable_free(iv);
    vene_free(ids);
    vene_tokenizer_free(tok);
    vene_model_free(model);
    return ok ? 0 : 1;
}
