/* pyvene's CausalModel, in C: define a causal model, run it with interventions and
 * interchange interventions, and write a `vene train` dataset from it.
 *
 * In pyvene (its causal_model_1 tutorial model, with X, Y, Z in 0..4):
 *
 *   variables = ["X", "Y", "Z", "P", "O"]
 *   parents   = {"X": [], "Y": [], "Z": [], "P": ["X", "Y"], "O": ["P", "Z"]}
 *   functions = {"P": lambda x, y: x + y, "O": lambda p, z: p + z, ...}
 *   model.run_interchange(base, {"P": source})
 *
 * In C a value is an index into the variable's value list; a mechanism maps the parents'
 * indices to its own. Here index i stands for the number i, so the mechanisms add indices.
 * An encoder turns a setting into a model input: text "3+1+4=" for a language model. The
 * label written is the output's value index; with a tokenizer, vene_causal_set_labels would
 * map each value to its token id.
 *
 * Usage: example_causal_model   (prints examples; exits 0 when its checks hold) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vene.h"

enum { X, Y, Z, P, O, NV };

static int add(void *user, const int *parents, int *value, vene_error *err) {
    (void)user;
    (void)err;
    *value = parents[0] + parents[1];
    return VENE_OK;
}

/* The text prompt "X+Y+Z=" of a setting. */
static int as_text(void *user, const vene_causal *cm, const int *s, vene_causal_input *in, vene_error *err) {
    (void)user;
    char text[64];
    snprintf(text, sizeof text, "%s+%s+%s=", vene_causal_value_name(cm, X, s[X]), vene_causal_value_name(cm, Y, s[Y]),
             vene_causal_value_name(cm, Z, s[Z]));
    return vene_causal_input_text(in, text, err);
}

static void show(const char *what, const int *s) {
    printf("%-44s X=%d Y=%d Z=%d  P=%d  O=%d\n", what, s[X], s[Y], s[Z], s[P], s[O]);
}

static int fail(const char *msg) {
    fprintf(stderr, "example_causal_model: %s\n", msg);
    return 1;
}

int main(void) {
    vene_error err = {0};
    vene_causal *cm = NULL;
    const char *digits[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12"};
    const char *xy[] = {"X", "Y"}, *pz[] = {"P", "Z"};
    /* Inputs have no parents and no mechanism; P takes 0..8, O 0..12. */
    if (vene_causal_new(&cm, &err) || vene_causal_add(cm, "X", 5, digits, 0, NULL, NULL, NULL, NULL, &err) ||
        vene_causal_add(cm, "Y", 5, digits, 0, NULL, NULL, NULL, NULL, &err) ||
        vene_causal_add(cm, "Z", 5, digits, 0, NULL, NULL, NULL, NULL, &err) ||
        vene_causal_add(cm, "P", 9, digits, 2, xy, add, NULL, NULL, &err) ||
        vene_causal_add(cm, "O", 13, digits, 2, pz, add, NULL, NULL, &err) || vene_causal_check(cm, &err)) {
        fprintf(stderr, "example_causal_model: %s\n", err.msg);
        vene_causal_free(cm);
        return 1;
    }
    int rc = 0, s[NV];

    /* run_forward: inputs clamped, the rest computed */
    int in1[NV] = {3, 1, 4, -1, -1};
    rc |= vene_causal_forward(cm, in1, s, &err);
    show("forward on 3+1+4:", s);
    if (s[P] != 4 || s[O] != 8) rc |= fail("forward: expected P=4, O=8");
    /* an intervention: P clamped to 0 */
    int in2[NV] = {3, 1, 4, 0, -1};
    rc |= vene_causal_forward(cm, in2, s, &err);
    show("forward with P := 0:", s);
    if (s[O] != 4) rc |= fail("intervention: expected O=4");
    /* run_interchange: P takes its value under the source 0+1+2 */
    int src[NV] = {0, 1, 2, -1, -1}, vars[] = {P};
    const int *srcs[] = {src};
    rc |= vene_causal_interchange(cm, in1, 1, vars, srcs, s, &err);
    show("interchange P from 0+1+2 into 3+1+4:", s);
    if (s[P] != 1 || s[O] != 5) rc |= fail("interchange: expected P=1, O=5");
    /* sample_input_tree_balanced: an input with O = 12 can only be 4+4+4 */
    uint64_t rng = 42;
    rc |= vene_causal_sample_balanced(cm, O, 12, &rng, s, &err);
    show("balanced draw with O = 12:", s);
    if (s[X] != 4 || s[Y] != 4 || s[Z] != 4) rc |= fail("balanced draw: expected 4+4+4");
    if (rc) {
        fprintf(stderr, "example_causal_model: %s\n", err.msg);
        vene_causal_free(cm);
        return 1;
    }

    /* A counterfactual dataset intervening on P, as text prompts; every label is checked:
     * the source's X + Y plus the base's Z. */
    vene_causal_set_encoder(cm, as_text, NULL);
    vene_causal_dataset d = {.size = 4, .seed = 7, .output = O, .balanced = 1, .n_vars = 1, .vars = vars};
    int base[NV], source[NV];
    vene_causal_example ex = {.base = base, .sources = source};
    for (int64_t i = 0; i < d.size && !rc; i++) {
        rc = vene_causal_sample_example(cm, &d, i, &ex, &err);
        if (!rc && ex.label != source[X] + source[Y] + base[Z]) rc = fail("dataset: wrong counterfactual label");
    }
    char dir[] = "/tmp/vene_causal_example_XXXXXX", path[64];
    if (!rc && !mkdtemp(dir)) rc = fail("cannot make a temporary directory");
    if (!rc) {
        snprintf(path, sizeof path, "%s/p.jsonl", dir);
        rc = vene_causal_write_jsonl(cm, &d, path, &err);
        if (rc) fprintf(stderr, "example_causal_model: %s\n", err.msg);
    }
    if (!rc) {
        printf("\ncounterfactual dataset intervening on P (%s):\n", path);
        FILE *f = fopen(path, "r");
        char line[512];
        while (f && fgets(line, sizeof line, f)) fputs(line, stdout);
        if (f) fclose(f);
        unlink(path);
        rmdir(dir);
    }
    vene_causal_free(cm);
    return rc ? 1 : 0;
}
