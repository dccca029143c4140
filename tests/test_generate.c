/* KV-cached generation without interventions: at every step the cached forward's logits
 * equal (within 1e-4) those of a full forward over the sequence so far, and greedy picks
 * their argmax (GPT-2 and GPT-Neo, whose local layers' window of 5 is shorter than the
 * sequences here); left-padded batches decode each row as if it were alone; sampling
 * follows its documented rules (checked on frequencies); eos and errors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "engine/sample.h"
#include "models/kv_cache.h"
#include "test.h"
#include "vene.h"

#define GPT2_DIR "fixtures/models/gpt2-tiny"
#define NEO_DIR "golden/models/gptneo-tiny"
#define NEW 20

static const int32_t PROMPT[6] = {7454, 2402, 257, 640, 612, 373}; /* "Once upon a time there was" */
static const int32_t SHORT[3] = {464, 3139, 286};                  /* "The capital of" */

static int argmax_row(const float *x, int V) {
    int best = 0;
    for (int v = 1; v < V; v++)
        if (x[v] > x[best]) best = v;
    return best;
}

/* Step by step through the cache (internal API), against a full forward at each step. */
static void check_cache_matches_full(const char *dir, const char *name) {
    vene_error err = {0};
    vene_model *m = NULL;
    vene_run *cached = NULL, *full = NULL;
    vene_kv_cache *kv = NULL;
    CHECK_MSG(vene_model_load(dir, NULL, &m, &err) == VENE_OK, "%s", err.msg);
    if (!m) return;
    CHECK(vene_run_new(m, &cached, &err) == VENE_OK && vene_run_new(m, &full, &err) == VENE_OK);
    CHECK(vene_kv_new(m, 1, 6 + NEW, &kv, &err) == VENE_OK);
    CHECK(vene_run_set_kv(cached, kv, &err) == VENE_OK);
    const int V = m->vocab_size, P = 6;
    int32_t seq[6 + NEW];
    memcpy(seq, PROMPT, sizeof PROMPT);
    int L = P, all_close = 1, all_argmax = 1;
    double worst = 0;
    for (int t = 0; t < NEW; t++) {
        int32_t pos = L - 1;
        vene_batch step = t == 0 ? (vene_batch){1, P, seq, NULL, NULL, NULL} : (vene_batch){1, 1, &seq[L - 1], NULL, NULL, &pos};
        vene_batch whole = {1, L, seq, NULL, NULL, NULL};
        if (vene_forward(cached, &step, &err) || vene_forward(full, &whole, &err)) {
            CHECK_MSG(0, "%s step %d: %s", name, t, err.msg);
            break;
        }
        const vene_tensor *lc = vene_run_logits(cached), *lf = vene_run_logits(full);
        const float *a = lc->data + (lc->shape[1] - 1) * V, *b = lf->data + (int64_t)(L - 1) * V;
        double scale = 1;
        for (int v = 0; v < V; v++) scale = fabs(b[v]) > scale ? fabs(b[v]) : scale;
        for (int v = 0; v < V; v++) {
            double d = fabs((double)a[v] - b[v]) / scale;
            if (d > worst) worst = d;
        }
        all_close &= worst <= 1e-4;
        int next = argmax_row(a, V);
        all_argmax &= next == argmax_row(b, V);
        seq[L++] = next;
    }
    CHECK_MSG(all_close, "%s: cached logits differ from the full forward by %.3g (relative)", name, worst);
    CHECK_MSG(all_argmax, "%s: cached greedy token differs from the full forward's argmax", name);
    CHECK(kv->len == L - 1); /* the last token is never fed */
    printf("%s: %d cached steps, worst |cached - full| logits %.2e (relative to max 1)\n", name, NEW, worst);

    /* the public greedy decoding gives the same sequence */
    vene_gen_params p;
    vene_gen_params_init(&p, m);
    p.max_new_tokens = NEW;
    p.eos_token_id = -1;
    vene_batch prompt = {1, P, PROMPT, NULL, NULL, NULL};
    vene_gen_output out;
    CHECK_MSG(vene_generate(full, &prompt, &p, &out, &err) == VENE_OK, "%s", err.msg);
    CHECK(out.batch == 1 && out.len == P + NEW && out.n_new[0] == NEW);
    CHECK_MSG(out.ids && !memcmp(out.ids, seq, sizeof(int32_t) * (size_t)(P + NEW)), "%s: vene_generate differs from stepping", name);
    CHECK(full->kv == NULL); /* the cache is detached afterwards */
    vene_gen_output_free(&out);
    vene_run_set_kv(cached, NULL, NULL);
    vene_kv_free(kv);
    vene_run_free(cached);
    vene_run_free(full);
    vene_model_free(m);
}

/* Row 0: PROMPT; row 1: SHORT left-padded to 6. Each row equals its own unpadded run. */
static void check_left_padding(const char *dir, const char *name) {
    vene_error err = {0};
    vene_model *m = NULL;
    vene_run *rs = NULL;
    CHECK_MSG(vene_model_load(dir, NULL, &m, &err) == VENE_OK && vene_run_new(m, &rs, &err) == VENE_OK, "%s", err.msg);
    if (!rs) return;
    vene_gen_params p;
    vene_gen_params_init(&p, m);
    p.max_new_tokens = 12;
    p.eos_token_id = -1;
    int32_t ids[12] = {0};
    memcpy(ids, PROMPT, sizeof PROMPT);
    ids[6] = ids[7] = ids[8] = 50256; /* the pad id does not matter */
    memcpy(ids + 9, SHORT, sizeof SHORT);
    uint8_t mask[12] = {1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1};
    vene_batch batch = {2, 6, ids, NULL, mask, NULL};
    vene_batch one = {1, 6, PROMPT, NULL, NULL, NULL}, two = {1, 3, SHORT, NULL, NULL, NULL};
    vene_gen_output ob, o1, o2;
    CHECK_MSG(vene_generate(rs, &batch, &p, &ob, &err) == VENE_OK, "%s", err.msg);
    CHECK_MSG(vene_generate(rs, &one, &p, &o1, &err) == VENE_OK, "%s", err.msg);
    CHECK_MSG(vene_generate(rs, &two, &p, &o2, &err) == VENE_OK, "%s", err.msg);
    CHECK(ob.len == 18 && o1.len == 18 && o2.len == 15);
    CHECK_MSG(!memcmp(ob.ids + 6, o1.ids + 6, 12 * sizeof(int32_t)), "%s: padded row 0 differs from its own run", name);
    CHECK_MSG(!memcmp(ob.ids + 18 + 6, o2.ids + 3, 12 * sizeof(int32_t)), "%s: left-padded row 1 differs from its own run", name);
    CHECK(!memcmp(ob.ids + 18, ids + 6, 6 * sizeof(int32_t))); /* the padded prompt is returned as given */
    vene_gen_output_free(&ob);
    vene_gen_output_free(&o1);
    vene_gen_output_free(&o2);
    vene_run_free(rs);
    vene_model_free(m);
}

/* Frequencies of vene_sample on a 5-token vocabulary against the documented rules. */
static void check_sampling_rules(void) {
    const float logits[5] = {2, 1, 0, -1, -3};
    vene_sampler s;
    vene_error err = {0};
    CHECK(vene_sampler_init(&s, 5, &err) == VENE_OK);
    typedef struct rule {
        float temp;
        int k;
        float top_p;
        double want[5];
    } rule;
    rule cases[4];
    double e[5], sum = 0;
    for (int i = 0; i < 5; i++) sum += e[i] = exp(logits[i]);
    cases[0] = (rule){1, 0, 1, {e[0] / sum, e[1] / sum, e[2] / sum, e[3] / sum, e[4] / sum}};
    /* top-k 2: the two best, renormalised */
    cases[1] = (rule){1, 2, 1, {e[0] / (e[0] + e[1]), e[1] / (e[0] + e[1]), 0, 0, 0}};
    /* top-p 0.7: p0 = 0.641 < 0.7, so token 1 is kept too (the one crossing it) */
    cases[2] = (rule){1, 0, 0.7f, {e[0] / (e[0] + e[1]), e[1] / (e[0] + e[1]), 0, 0, 0}};
    /* temperature 2 halves the logits */
    double h[5], hs = 0;
    for (int i = 0; i < 5; i++) hs += h[i] = exp(logits[i] / 2);
    cases[3] = (rule){2, 0, 1, {h[0] / hs, h[1] / hs, h[2] / hs, h[3] / hs, h[4] / hs}};
    const int N = 40000;
    for (int c = 0; c < 4; c++) {
        vene_gen_params p = {0};
        p.temperature = cases[c].temp;
        p.top_k = cases[c].k;
        p.top_p = cases[c].top_p;
        vene_rng rng;
        vene_rng_seed(&rng, 7);
        int count[5] = {0};
        for (int i = 0; i < N; i++) count[vene_sample(&s, logits, &p, &rng)]++;
        double worst = 0;
        for (int v = 0; v < 5; v++) {
            double d = fabs((double)count[v] / N - cases[c].want[v]);
            if (d > worst) worst = d;
            if (cases[c].want[v] == 0) CHECK_MSG(count[v] == 0, "case %d: token %d excluded but drawn %d times", c, v, count[v]);
        }
        CHECK_MSG(worst < 0.012, "sampling case %d: frequencies off by %.4f", c, worst); /* ~4.5 sigma at N = 40000 */
    }
    vene_gen_params g = {0};
    vene_rng rng;
    vene_rng_seed(&rng, 1);
    CHECK(vene_sample(&s, logits, &g, &rng) == 0); /* temperature 0: greedy */
    g.top_p = 0.5f; /* at temperature 0.5 token 0 has probability 0.865: the nucleus is token 0 alone */
    g.temperature = 0.5f;
    int zeros = 0;
    for (int i = 0; i < 100; i++) zeros += vene_sample(&s, logits, &g, &rng) == 0;
    CHECK(zeros == 100);
    vene_sampler_free(&s);
}

typedef struct events {
    int n, lasts, bad_order;
    int32_t tok[2][64];
} events;

static int record(void *user, const vene_token_event *ev, vene_error *err) {
    (void)err;
    events *e = user;
    if (ev->row > 1 || ev->step >= 64) e->bad_order++;
    else e->tok[ev->row][ev->step] = ev->token;
    e->n++;
    e->lasts += ev->last;
    return VENE_OK;
}

static void check_sampling_generation(void) {
    vene_error err = {0};
    vene_model *m = NULL;
    vene_run *rs = NULL;
    CHECK_MSG(vene_model_load(GPT2_DIR, NULL, &m, &err) == VENE_OK && vene_run_new(m, &rs, &err) == VENE_OK, "%s", err.msg);
    if (!rs) return;
    vene_gen_params p;
    vene_gen_params_init(&p, m);
    p.max_new_tokens = 10;
    p.eos_token_id = -1;
    int32_t ids[12];
    memcpy(ids, PROMPT, sizeof PROMPT);
    memcpy(ids + 6, PROMPT, sizeof PROMPT);
    vene_batch b2 = {2, 6, ids, NULL, NULL, NULL}, b1 = {1, 6, PROMPT, NULL, NULL, NULL};
    vene_gen_output greedy, k1, s1, s2, s3, row0;
    CHECK(vene_generate(rs, &b2, &p, &greedy, &err) == VENE_OK);
    p.temperature = 0.8f;
    p.top_k = 1; /* top-k 1 is greedy whatever the temperature */
    CHECK(vene_generate(rs, &b2, &p, &k1, &err) == VENE_OK);
    CHECK(!memcmp(greedy.ids, k1.ids, sizeof(int32_t) * 32));
    p.top_k = 50;
    p.top_p = 0.9f;
    p.seed = 42;
    events ev = {0};
    p.on_token = record;
    p.user = &ev;
    CHECK(vene_generate(rs, &b2, &p, &s1, &err) == VENE_OK);
    CHECK(ev.n == 20 && ev.lasts == 2 && !ev.bad_order);
    for (int t = 0; t < 10; t++) CHECK(ev.tok[0][t] == s1.ids[6 + t] && ev.tok[1][t] == s1.ids[16 + 6 + t]);
    p.on_token = NULL;
    CHECK(vene_generate(rs, &b2, &p, &s2, &err) == VENE_OK);
    CHECK_MSG(!memcmp(s1.ids, s2.ids, sizeof(int32_t) * 32), "the same seed gave different samples");
    /* row b's stream is seed + b: the two identical prompts sample differently, and row 0
     * alone samples as in the batch */
    CHECK(memcmp(s1.ids + 6, s1.ids + 16 + 6, sizeof(int32_t) * 10) != 0);
    CHECK(vene_generate(rs, &b1, &p, &row0, &err) == VENE_OK);
    CHECK(!memcmp(row0.ids, s1.ids, sizeof(int32_t) * 16));
    p.seed = 43;
    CHECK(vene_generate(rs, &b2, &p, &s3, &err) == VENE_OK);
    CHECK(memcmp(s1.ids, s3.ids, sizeof(int32_t) * 32) != 0);
    CHECK(memcmp(s1.ids, greedy.ids, sizeof(int32_t) * 32) != 0);
    vene_gen_output *all[] = {&greedy, &k1, &s1, &s2, &s3, &row0};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) vene_gen_output_free(all[i]);
    vene_run_free(rs);
    vene_model_free(m);
}

/* eos: a row stops after emitting it; a finished row is filled with eos. */
static void check_eos(void) {
    vene_error err = {0};
    vene_model *m = NULL;
    vene_run *rs = NULL;
    CHECK_MSG(vene_model_load(GPT2_DIR, NULL, &m, &err) == VENE_OK && vene_run_new(m, &rs, &err) == VENE_OK, "%s", err.msg);
    if (!rs) return;
    vene_gen_params p;
    vene_gen_params_init(&p, m);
    CHECK(p.eos_token_id == 50256 && p.max_new_tokens == 20 && p.temperature == 0); /* from config.json */
    p.eos_token_id = -1;
    p.max_new_tokens = 8;
    int32_t ids[12] = {0};
    memcpy(ids, PROMPT, sizeof PROMPT);
    ids[6] = ids[7] = ids[8] = 0;
    memcpy(ids + 9, SHORT, sizeof SHORT);
    uint8_t mask[12] = {1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1, 1};
    vene_batch b = {2, 6, ids, NULL, mask, NULL};
    vene_gen_output free_run, stopped;
    CHECK(vene_generate(rs, &b, &p, &free_run, &err) == VENE_OK);
    p.eos_token_id = free_run.ids[6 + 2]; /* row 0's third token */
    int first1 = 8;                       /* where row 1 first emits it, if at all */
    for (int t = 7; t >= 0; t--)
        if (free_run.ids[14 + 6 + t] == p.eos_token_id) first1 = t;
    int first0 = 2;
    for (int t = 1; t >= 0; t--)
        if (free_run.ids[6 + t] == p.eos_token_id) first0 = t;
    CHECK(vene_generate(rs, &b, &p, &stopped, &err) == VENE_OK);
    int n0 = first0 + 1, n1 = first1 < 8 ? first1 + 1 : 8;
    CHECK(stopped.n_new[0] == n0 && stopped.n_new[1] == n1);
    CHECK(stopped.len == 6 + (n0 > n1 ? n0 : n1));
    for (int t = 0; t < stopped.len - 6; t++) {
        CHECK(stopped.ids[6 + t] == (t < n0 ? free_run.ids[6 + t] : p.eos_token_id));
        CHECK(stopped.ids[stopped.len + 6 + t] == (t < n1 ? free_run.ids[14 + 6 + t] : p.eos_token_id));
    }
    vene_gen_output_free(&free_run);
    vene_gen_output_free(&stopped);
    vene_run_free(rs);
    vene_model_free(m);
}

static void check_errors(void) {
    vene_error err = {0};
    vene_model *m = NULL, *llama = NULL;
    vene_run *rs = NULL, *lr = NULL;
    CHECK(vene_model_load(GPT2_DIR, NULL, &m, &err) == VENE_OK && vene_run_new(m, &rs, &err) == VENE_OK);
    if (!rs) return;
    vene_gen_params p;
    vene_gen_params_init(&p, m);
    vene_gen_output out;
    int32_t pos[6] = {0, 1, 2, 3, 4, 5};
    vene_batch b = {1, 6, PROMPT, NULL, NULL, pos};
    CHECK(vene_generate(rs, &b, &p, &out, &err) == VENE_ERR_ARG && strstr(err.msg, "positions"));
    b.positions = NULL;
    p.max_new_tokens = 123; /* 6 + 123 > 128 positions */
    CHECK(vene_generate(rs, &b, &p, &out, &err) == VENE_ERR_RANGE && strstr(err.msg, "128 positions"));
    p.max_new_tokens = 3;
    p.eos_token_id = 50257;
    CHECK(vene_generate(rs, &b, &p, &out, &err) == VENE_ERR_RANGE && strstr(err.msg, "eos_token_id"));
    p.eos_token_id = -1;
    uint8_t none[6] = {0};
    b.attn_mask = none;
    CHECK(vene_generate(rs, &b, &p, &out, &err) == VENE_ERR_ARG && strstr(err.msg, "row 0 is all padding"));
    b.attn_mask = NULL;
    p.max_new_tokens = 0;
    p.max_length = 4; /* shorter than the prompt: nothing to generate */
    CHECK(vene_generate(rs, &b, &p, &out, &err) == VENE_OK && out.len == 6 && out.n_new[0] == 0);
    vene_gen_output_free(&out);
    CHECK(vene_model_load("golden/models/llama-tiny", NULL, &llama, &err) == VENE_OK && vene_run_new(llama, &lr, &err) == VENE_OK);
    if (lr) {
        vene_gen_params_init(&p, llama);
        b.ids = (const int32_t[]){1, 2, 3, 4, 5, 6};
        CHECK(vene_generate(lr, &b, &p, &out, &err) == VENE_ERR_UNSUPPORTED && strstr(err.msg, "llama"));
    }
    /* a full cache refuses more positions instead of writing past its end */
    vene_kv_cache *kv = NULL;
    CHECK(vene_kv_new(m, 1, 4, &kv, &err) == VENE_OK && vene_run_set_kv(rs, kv, &err) == VENE_OK);
    b = (vene_batch){1, 6, PROMPT, NULL, NULL, NULL};
    CHECK(vene_forward(rs, &b, &err) == VENE_ERR_RANGE && strstr(err.msg, "KV cache full"));
    CHECK(kv->len == 0);
    vene_run_set_kv(rs, NULL, NULL);
    vene_kv_free(kv);
    CHECK(vene_kv_new(m, 1, 129, &kv, &err) == VENE_ERR_RANGE);
    vene_run_free(lr);
    vene_model_free(llama);
    vene_run_free(rs);
    vene_model_free(m);
}

int main(void) {
    check_cache_matches_full(GPT2_DIR, "gpt2-tiny");
    check_cache_matches_full(NEO_DIR, "gptneo-tiny");
    check_left_padding(GPT2_DIR, "gpt2-tiny");
    check_left_padding(NEO_DIR, "gptneo-tiny");
    check_sampling_rules();
    check_sampling_generation();
    check_eos();
    check_errors();
    TEST_MAIN_END();
}
