/* Batch invariance of the forward (core/gemm.h): a sequence's logits (or, for a bare model,
 * its last hidden state) are bit-identical run alone, at any place in a batch of other
 * sequences, and with one or two threads, for GPT-2 (in x out weights) and the Llama
 * family (out x in weights). */
#include <omp.h>
#include <stdint.h>

#include "test.h"
#include "vene.h"

#define S 12
#define B 5

static float *logits_of(vene_run *rs, const int32_t *ids, int batch, int row, size_t *n) {
    vene_error err = {0};
    vene_batch b = {.batch = batch, .seq = S, .ids = ids};
    if (vene_forward(rs, &b, &err) != VENE_OK) {
        fprintf(stderr, "forward: %s\n", err.msg);
        return NULL;
    }
    const vene_tensor *t = vene_run_logits(rs); /* NULL for bare models: their last hidden state */
    if (!t) t = vene_run_last_hidden(rs);
    const size_t per = (size_t)S * (size_t)t->shape[2];
    float *out = malloc(sizeof(float) * per);
    if (out) memcpy(out, t->data + per * (size_t)row, sizeof(float) * per);
    *n = per;
    return out;
}

static void check_model(const char *dir) {
    vene_error err = {0};
    vene_model *m = NULL;
    vene_run *rs = NULL;
    if (vene_model_load(dir, NULL, &m, &err) || vene_run_new(m, &rs, &err)) {
        CHECK_MSG(0, "%s: %s", dir, err.msg);
        vene_model_free(m);
        return;
    }
    vene_model_info info;
    vene_model_get_info(m, &info);
    int32_t ids[B * S];
    for (int i = 0; i < B * S; i++) ids[i] = (int32_t)((i * 7919u + 13u) % (unsigned)info.vocab_size);
    const int saved = omp_get_max_threads();
    size_t n = 0;
    omp_set_num_threads(1);
    float *alone = logits_of(rs, ids + 2 * S, 1, 0, &n);
    int same = alone != NULL;
    for (int threads = 1; threads <= 2 && same; threads++) {
        omp_set_num_threads(threads);
        for (int row = 0; row < B && same; row++) {
            /* sequence 2 at `row` of a batch, the others around it */
            static const int others[B - 1] = {0, 1, 3, 4};
            int32_t batch[B * S];
            for (int r = 0, o = 0; r < B; r++) memcpy(batch + r * S, ids + (r == row ? 2 : others[o++]) * S, sizeof(int32_t) * S);
            float *in_batch = logits_of(rs, batch, B, row, &n);
            same &= in_batch && !memcmp(alone, in_batch, sizeof(float) * n);
            free(in_batch);
        }
    }
    omp_set_num_threads(saved);
    CHECK_MSG(same, "%s: a sequence's logits differ between a forward alone and in a batch", dir);
    free(alone);
    vene_run_free(rs);
    vene_model_free(m);
}

int main(void) {
    check_model("fixtures/models/gpt2-tiny");
    check_model("fixtures/models/llama3-tiny");
    check_model("fixtures/models/mistral-tiny");
    TEST_MAIN_END();
}
