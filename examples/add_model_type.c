/* pyvene's "Add New Model Type", in C: a model architecture that libvene does not know (a
 * 2-layer tanh MLP, defined in tanh_mlp.h with the public API only) is registered in a
 * registry owned by this program, loaded from a folder written here, and intervened on:
 * an interchange (VanillaIntervention) at block_output of layer 0 and a
 * CollectIntervention at block_input of layer 1, batch of 2, then the numbers are
 * checked against the same computation done by hand.
 *
 * In pyvene the same takes two dict entries (type_to_module_mapping and
 * type_to_dimension_mapping) on an nn.Module; here the module is a forward that calls
 * vene_fire at each site, and the mapping is tanh_mlp_components. */
#include <stdlib.h>
#include <unistd.h>

#include "tanh_mlp.h"

#define L 2
#define D 3

static const float W[L * D * D] = {0.9f, -0.4f, 0.3f, 0.2f, 1.1f, -0.6f, -0.5f, 0.7f, 0.8f,
                                   1.2f, 0.1f, -0.3f, -0.7f, 0.6f, 0.4f, 0.3f, -0.2f, 1.0f};
static const float Bv[L * D] = {0.1f, -0.2f, 0.05f, -0.1f, 0.2f, 0.0f};
static const float base_x[2 * D] = {1.0f, 0.0f, -1.0f, 0.3f, -0.2f, 0.8f};
static const float source_x[2 * D] = {0.5f, 2.0f, 0.0f, -1.0f, 1.0f, 0.5f};

/* One layer by hand: out = tanh(W_l x + b_l). */
static void by_hand(int l, const float *x, float *out) {
    for (int i = 0; i < D; i++) {
        float s = Bv[l * D + i];
        for (int j = 0; j < D; j++) s += W[(l * D + i) * D + j] * x[j];
        out[i] = tanhf(s);
    }
}

static void print_row(const char *what, const float *v) {
    printf("  %-34s [% .6f, % .6f, % .6f]\n", what, v[0], v[1], v[2]);
}

static int close_to(const float *a, const float *b, int n) {
    for (int i = 0; i < n; i++)
        if (fabsf(a[i] - b[i]) > 1e-6f) return 0;
    return 1;
}

#define TRY(call)                                                    \
    do {                                                             \
        if ((call) != VENE_OK) {                                     \
            fprintf(stderr, "add_model_type: %s\n", err.msg);        \
            return 1;                                                \
        }                                                            \
    } while (0)

static int run(const char *dir) {
    vene_error err = {0};
    if (tanh_mlp_write(dir, L, D, W, Bv)) return fprintf(stderr, "cannot write the model folder %s\n", dir), 1;

    /* 1. The registry: ours, not global. Models loaded through it refer to it. */
    vene_registry *reg = NULL;
    TRY(vene_registry_new(&reg, &err));
    TRY(vene_registry_add(reg, &tanh_mlp_spec, &err));
    vene_model *m = NULL;
    TRY(vene_model_load_with(reg, dir, NULL, &m, &err));
    vene_model_info info;
    vene_model_get_info(m, &info);
    printf("loaded %s (%s): %d layers, width %d, %lld parameters, %d hook sites\n", info.model_type,
           info.model_class, info.n_layer, info.d_model, (long long)info.n_params, vene_model_site_count(m));

    /* 2. Interchange at block_output of layer 0, collect at block_input of layer 1. */
    vene_intervenable *iv = NULL;
    TRY(vene_intervenable_new(m,
                              "{\"representations\": ["
                              "{\"layer\": 0, \"component\": \"block_output\", \"intervention_type\": \"VanillaIntervention\"},"
                              "{\"layer\": 1, \"component\": \"block_input\", \"intervention_type\": \"CollectIntervention\"}]}",
                              &iv, &err));
    vene_batch base = {.batch = 2, .seq = 1, .embeds = base_x}, source = {.batch = 2, .seq = 1, .embeds = source_x};
    const vene_batch *sources[] = {&source};
    vene_call call = {.base = &base, .sources = sources, .n_sources = 1, .unit_locations = "{\"sources->base\": 0}",
                      .output_original = 1};
    TRY(vene_intervenable_forward(iv, &call, &err));
    const vene_tensor *orig = vene_intervenable_last_hidden(iv, 0), *after = vene_intervenable_last_hidden(iv, 1);
    const vene_tensor *got = vene_intervenable_collected(iv, 0);

    /* 3. The same by hand. */
    int ok = orig && after && got && vene_tensor_numel(got) == 2 * D && vene_tensor_numel(after) == 2 * D;
    for (int b = 0; ok && b < 2; b++) {
        float h0b[D], h0s[D], out_orig[D], out_iv[D];
        by_hand(0, base_x + b * D, h0b);
        by_hand(0, source_x + b * D, h0s);
        by_hand(1, h0b, out_orig);
        by_hand(1, h0s, out_iv);
        printf("example %d\n", b);
        print_row("layer 0 output, base (by hand)", h0b);
        print_row("layer 0 output, source (by hand)", h0s);
        print_row("collected layer 1 input (vene)", got->data + b * D);
        print_row("original output (vene)", orig->data + b * D);
        print_row("original output (by hand)", out_orig);
        print_row("intervened output (vene)", after->data + b * D);
        print_row("intervened output (by hand)", out_iv);
        ok = close_to(got->data + b * D, h0s, D) && close_to(orig->data + b * D, out_orig, D) &&
             close_to(after->data + b * D, out_iv, D);
    }
    printf("vene agrees with the hand computation within 1e-6: %s\n", ok ? "yes" : "NO");

    vene_intervenable_free(iv);
    vene_model_free(m);      /* models first, */
    vene_registry_free(reg); /* then the registry they came from */
    return ok ? 0 : 1;
}

int main(void) {
    char dir[] = "/tmp/vene-add-model-type-XXXXXX";
    if (!mkdtemp(dir)) return fprintf(stderr, "mkdtemp failed\n"), 1;
    int rc = run(dir);
    char path[256];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
    return rc;
}
