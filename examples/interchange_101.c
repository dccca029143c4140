/* pyvene 101, "Interchange Intervention", in C.
 *
 *   base   = "The capital of Spain is"
 *   source = "The capital of Italy is"
 *
 * Run the source, take the block_output of a middle layer at position 3 (" Italy"), and put
 * it into the base run at position 3 (" Spain"). In pyvene:
 *
 *   pv.IntervenableModel({"layer": L, "component": "block_output",
 *                         "intervention_type": pv.VanillaIntervention}, model)
 *   intervenable(base, [source], {"sources->base": 3})
 *
 * A CollectIntervention at the same site, after the swap, proves the swap happened: what it
 * collects must equal the source's own block_output at position 3.
 *
 * Usage: example_interchange_101 [model_dir]   (default: the bundled test model) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vene.h"

static void print_top5(const char *label, const vene_tensor *logits, const vene_tokenizer *tok) {
    int64_t S = logits->shape[1], V = logits->shape[2];
    const float *row = logits->data + (S - 1) * V; /* next-token logits of example 0 */
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

    /* 1. Tokenize. Both prompts have the same length, so positions line up. */
    int32_t *base_ids = NULL, *src_ids = NULL;
    size_t nb = 0, ns = 0;
    const char *base_text = "The capital of Spain is", *src_text = "The capital of Italy is";
    TRY(vene_tokenize(tok, base_text, strlen(base_text), &base_ids, &nb, &err));
    TRY(vene_tokenize(tok, src_text, strlen(src_text), &src_ids, &ns, &err));
    if (nb != ns || nb < 4) return fprintf(stderr, "prompts tokenize to %zu and %zu tokens\n", nb, ns), 1;

    /* 2. The intervenable: a swap and, after it, a collector at the same site. */
    vene_model_info info;
    vene_model_get_info(model, &info);
    int layer = info.n_layer / 2;
    char config[512];
    snprintf(config, sizeof config,
             "{\"representations\": ["
             "{\"layer\": %d, \"component\": \"block_output\", \"intervention_type\": \"VanillaIntervention\"},"
             "{\"layer\": %d, \"component\": \"block_output\", \"intervention_type\": \"CollectIntervention\"}]}",
             layer, layer);
    vene_intervenable *iv = NULL;
    TRY(vene_intervenable_new(model, config, &iv, &err));

    /* 3. One call: base, one source for every group, position 3 on both sides. */
    vene_batch base = {1, (int)nb, base_ids, NULL, NULL, NULL};
    vene_batch source = {1, (int)ns, src_ids, NULL, NULL, NULL};
    const vene_batch *sources[] = {&source};
    vene_call call = {.base = &base, .sources = sources, .n_sources = 1, .unit_locations = "{\"sources->base\": 3}", .output_original = 1};
    TRY(vene_intervenable_forward(iv, &call, &err));
    printf("base:   \"%s\"\nsource: \"%s\"\nswap:   block_output of layer %d at position 3\n\n", base_text, src_text, layer);
    print_top5("original", vene_intervenable_logits(iv, 0), tok);
    print_top5("intervened", vene_intervenable_logits(iv, 1), tok);

    /* 4. The source's own block_output at position 3, collected from a plain source run. */
    vene_intervenable *probe = NULL;
    snprintf(config, sizeof config, "{\"layer\": %d, \"component\": \"block_output\", "
             "\"intervention_type\": \"CollectIntervention\"}", layer);
    TRY(vene_intervenable_new(model, config, &probe, &err));
    vene_call look = {.base = &source, .unit_locations = "{\"base\": 3}"};
    TRY(vene_intervenable_forward(probe, &look, &err));

    /* 5. Checks. */
    const vene_tensor *orig = vene_intervenable_logits(iv, 0), *after = vene_intervenable_logits(iv, 1);
    const vene_tensor *got = vene_intervenable_collected(iv, 0), *want = vene_intervenable_collected(probe, 0);
    int changed = memcmp(orig->data, after->data, sizeof(float) * (size_t)vene_tensor_numel(orig)) != 0;
    int swapped = got && want && vene_tensor_numel(got) == vene_tensor_numel(want) &&
                  memcmp(got->data, want->data, sizeof(float) * (size_t)vene_tensor_numel(got)) == 0;
    printf("\nintervened output differs from the original:           %s\n", changed ? "yes" : "NO");
    printf("position-3 activation now equals the source's exactly:  %s\n", swapped ? "yes" : "NO");

    vene_intervenable_free(probe);
    vene_intervenable_free(iv);
    vene_free(base_ids);
    vene_free(src_ids);
    vene_tokenizer_free(tok);
    vene_model_free(model);
    return changed && swapped ? 0 : 1;
}
