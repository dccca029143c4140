/* Steering while generating: pyvene's "Happy" recipe (AdditionIntervention on every
 * layer's MLP output, the added vector being 0.3 x the embedding of " Happy").
 *
 * In pyvene:
 *
 *   pv_model = pv.IntervenableModel([{"layer": l, "component": "mlp_output",
 *       "intervention_type": pv.AdditionIntervention} for l in range(n_layer)], model)
 *   _, steered = pv_model.generate(tokenizer("Once upon a time there was", ...),
 *       source_representations=0.3 * happy_embedding, intervene_on_prompt=False,
 *       max_new_tokens=24)
 *
 * In C the same call is vene_intervenable_generate, with a token callback that sees every
 * token as it is made. With intervene_on_prompt false the prompt pass is left alone and
 * every new token is steered, so both continuations must start with the same token and
 * then part ways; the program checks that and prints both.
 *
 * Usage: example_steer_happy [model_dir] [prompt]   (default: the bundled test model; its
 * weights are random, so expect word salad in both continuations) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vene.h"

#define NEW_TOKENS 24

/* The text of each continuation, appended token by token from the callback. */
typedef struct story {
    const vene_tokenizer *tok;
    char text[2][4096];
    int32_t first[2];
} story;

static int on_token(void *user, const vene_token_event *ev, vene_error *err) {
    (void)err;
    story *s = user;
    char *piece = NULL;
    size_t len = 0;
    if (ev->step == 0) s->first[ev->which] = ev->token;
    if (vene_detokenize(s->tok, &ev->token, 1, &piece, &len, NULL) == VENE_OK) {
        char *t = s->text[ev->which];
        strncat(t, piece, sizeof s->text[0] - strlen(t) - 1);
    }
    vene_free(piece);
    return VENE_OK;
}

/* A hook that copies the token embedding (the output of `wte`) out of a forward. */
static int copy_embedding(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)where;
    (void)err;
    memcpy(user, t->data, sizeof(float) * (size_t)t->shape[2]);
    return VENE_STOP; /* nothing after the embedding is needed */
}

static int fail(const char *what, const vene_error *err) {
    fprintf(stderr, "steer_happy: %s: %s\n", what, err->msg);
    return 1;
}

int main(int argc, char **argv) {
    const char *dir = argc > 1 ? argv[1] : "../tests/fixtures/models/gpt2-tiny";
    const char *prompt = argc > 2 ? argv[2] : "Once upon a time there was";
    vene_error err = {0};
    vene_model *m = NULL;
    vene_tokenizer *tok = NULL;
    vene_run *rs = NULL;
    vene_intervenable *iv = NULL;
    if (vene_model_load(dir, NULL, &m, &err) || vene_tokenizer_load(dir, &tok, &err) || vene_run_new(m, &rs, &err))
        return fail(dir, &err);
    vene_model_info info;
    vene_model_get_info(m, &info);

    /* the steering vector: 0.3 x the embedding of " Happy", read with a hook on wte */
    int32_t *happy = NULL;
    size_t n = 0;
    if (vene_tokenize(tok, " Happy", 6, &happy, &n, &err) || n != 1) return fail("\" Happy\" is not one token", &err);
    float *vec = malloc(sizeof(float) * (size_t)info.d_model);
    int site, layer;
    if (!vec || vene_model_find_site(m, "wte.output", &site, &layer, &err) ||
        vene_run_add_hook(rs, site, layer, copy_embedding, vec, &err))
        return fail("embedding hook", &err);
    vene_batch one = {1, 1, happy, NULL, NULL, NULL};
    if (vene_forward(rs, &one, &err) != VENE_STOP) return fail("embedding of \" Happy\"", &err);
    vene_run_clear_hooks(rs);
    for (int d = 0; d < info.d_model; d++) vec[d] *= 0.3f;
    vene_free(happy);

    /* AdditionIntervention on every layer's mlp_output, each adding the same vector */
    char config[8192] = "[";
    for (int l = 0; l < info.n_layer; l++) {
        char one_repr[160];
        snprintf(one_repr, sizeof one_repr, "%s{\"layer\": %d, \"component\": \"mlp_output\", "
                 "\"intervention_type\": \"AdditionIntervention\"}", l ? ", " : "", l);
        strncat(config, one_repr, sizeof config - strlen(config) - 2);
    }
    strcat(config, "]");
    if (vene_intervenable_new(m, config, &iv, &err)) return fail("intervenable", &err);
    vene_tensor v = {.data = vec, .ndim = 1, .shape = {info.d_model}};
    const vene_tensor **reps = malloc(sizeof *reps * (size_t)info.n_layer);
    for (int l = 0; l < info.n_layer; l++) reps[l] = &v;

    int32_t *ids = NULL;
    if (vene_tokenize(tok, prompt, strlen(prompt), &ids, &n, &err)) return fail("prompt", &err);
    vene_batch base = {1, (int)n, ids, NULL, NULL, NULL};
    /* unit_locations NULL with intervene_on_prompt 0 is pyvene's {"base": 0}: each new token */
    vene_call call = {.base = &base, .source_reps = reps, .output_original = 1};
    story s = {.tok = tok};
    vene_gen_params p;
    vene_gen_params_init(&p, m);
    p.max_new_tokens = NEW_TOKENS;
    p.intervene_on_prompt = 0;
    p.on_token = on_token;
    p.user = &s;
    vene_gen_output out[2];
    if (vene_intervenable_generate(iv, &call, &p, out, &err)) return fail("generate", &err);

    printf("prompt:   %s\n", prompt);
    printf("original: %s%s\n", prompt, s.text[0]);
    printf("happy:    %s%s\n", prompt, s.text[1]);
    int same_first = s.first[0] == s.first[1];
    int differs = memcmp(out[0].ids, out[1].ids, sizeof(int32_t) * (size_t)(out[0].len < out[1].len ? out[0].len : out[1].len)) ||
                  out[0].len != out[1].len;
    printf("first token shared (prompt pass not steered): %s; continuations differ: %s\n", same_first ? "yes" : "NO",
           differs ? "yes" : "NO");

    vene_gen_output_free(&out[0]);
    vene_gen_output_free(&out[1]);
    vene_free(ids);
    free(reps);
    free(vec);
    vene_intervenable_free(iv);
    vene_run_free(rs);
    vene_tokenizer_free(tok);
    vene_model_free(m);
    return same_first && differs ? 0 : 1;
}
