/* One DAS training step on GPT-2 124M (random weights): rank-1 LowRankRotatedSpace at
 * block_output layer 6, batch 8 x 16 tokens (base and source), cross-entropy at the last
 * position, backward into the rotation only (the model frozen, as pyvene freezes it), one
 * Adam step — through vene_train_step, the public training API.
 *
 * Reference in the same run: a plain forward of the base batch, and the machine's sgemm
 * rate, so the step can be read as "forwards" and as a fraction of the compute bound
 * (FLOPs of the step's matrix products / the sgemm rate).
 *
 * Usage: bench_das_step [--quick] [--all-logits]   (--all-logits: the LM head at every position)
 *        bench_das_step --loop THREADS N            (N steps and nothing else: for profilers) */
#include "common.h"

#define B 8
#define SEQ 16
#define LAYER 6
#define POS 15 /* the intervention's position */

static const char *const CONFIG =
    "{\"representations\":[{\"layer\":6,\"component\":\"block_output\",\"unit\":\"pos\","
    "\"max_number_of_units\":1,\"low_rank_dimension\":1,\"intervention_type\":\"LowRankRotatedSpaceIntervention\"}]}";

typedef struct ctx {
    vene_run *rs;
    vene_batch base, source;
    vene_intervenable *iv;
    vene_optimizer *opt;
    vene_call call;
    int32_t labels[B];
    float loss;
} ctx;

static int ce(void *user, const vene_tensor *logits, const vene_tensor *hidden, vene_tensor *d_logits,
              vene_tensor *d_hidden, float *loss, vene_error *err) {
    (void)hidden, (void)d_hidden;
    ctx *c = user;
    return vene_loss_cross_entropy(logits, NULL, -1, c->labels, d_logits, loss, NULL, err);
}

static int run_step(void *user) {
    ctx *c = user;
    vene_error err = {0};
    int rc = vene_train_step(c->iv, &c->call, ce, c, c->opt, &c->loss, &err);
    if (rc) fprintf(stderr, "step: %s\n", err.msg);
    return rc;
}

static int run_forward(void *user) {
    ctx *c = user;
    vene_error err = {0};
    int rc = vene_forward(c->rs, &c->base, &err);
    if (rc) fprintf(stderr, "forward: %s\n", err.msg);
    return rc;
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    const int reps = quick ? 3 : 9;
    const char *dir;
    vene_model_info info;
    vene_model *m = bench_load_gpt2(&info, &dir);
    vene_error err = {0};
    int ncpu = bench_cpu_count(), tmax = ncpu >= 2 ? 2 : 1;
    static int32_t base_ids[B * SEQ], src_ids[B * SEQ];
    bench_fill_ids(base_ids, B * SEQ, 21, info.vocab_size);
    bench_fill_ids(src_ids, B * SEQ, 22, info.vocab_size);
    ctx c;
    memset(&c, 0, sizeof c);
    for (int b = 0; b < B; b++) c.labels[b] = (b * 7919) % info.vocab_size;
    c.base = (vene_batch){B, SEQ, base_ids, NULL, NULL, NULL};
    c.source = (vene_batch){B, SEQ, src_ids, NULL, NULL, NULL};
    if (vene_run_new(m, &c.rs, &err)) bench_die("vene_run_new", &err);
    if (vene_intervenable_new(m, CONFIG, &c.iv, &err)) bench_die("vene_intervenable_new", &err);
    if (vene_intervenable_set_grad(c.iv, VENE_GRAD_ACTIVATIONS, &err)) bench_die("set_grad", &err);
    const vene_batch *srcs[1] = {&c.source};
    static const int last[B] = {-1, -1, -1, -1, -1, -1, -1, -1};
    char where[64];
    snprintf(where, sizeof where, "{\"sources->base\": %d}", POS);
    c.call = (vene_call){&c.base, srcs, 1, where, NULL, NULL, 0, NULL};
    if (!(argc > 1 && strcmp(argv[argc - 1], "--all-logits") == 0)) c.call.logit_positions = last;
    /* parameters are created by the first call; the optimizer needs them */
    if (vene_intervenable_forward(c.iv, &c.call, &err)) bench_die("first call", &err);
    vene_optim_config oc;
    vene_optim_config_default(&oc);
    if (vene_optimizer_new(c.iv, NULL, &oc, &c.opt, &err)) bench_die("optimizer", &err);

    if (argc == 4 && strcmp(argv[1], "--loop") == 0) {
        bench_set_threads(atoi(argv[2]));
        const int n = atoi(argv[3]) > 0 ? atoi(argv[3]) : 1;
        double *ms = malloc(sizeof(double) * (size_t)n);
        for (int i = 0; i < n; i++) {
            double t0 = bench_now();
            if (!ms || run_step(&c)) return 1;
            ms[i] = 1e3 * (bench_now() - t0);
        }
        double best = ms[0];
        for (int i = 1; i < n; i++) best = ms[i] < best ? ms[i] : best;
        printf("loss %.4f; step median %.1f ms, best %.1f ms over %d\n", c.loss, bench_median(ms, n), best, n);
        free(ms);
        return 0;
    }
    printf("vene DAS step benchmark: GPT-2 124M shapes (random weights, %s), %d CPUs\n", dir, ncpu);
    printf("  rank-1 LowRankRotatedSpace at block_output layer %d, batch %d x %d, CE at the last position,\n"
           "  forward (source stops after h[%d]) + backward (stops at the intervention, rows >= position %d) + Adam\n",
           LAYER, B, SEQ, LAYER, POS);
    bench_note_load("at start", 1);
    /* FLOPs of the matrix products: base 12 layers + LM head, source 7 layers, backward
     * through layers 7..11 (activation gradients only: as many FLOPs as their forward) on
     * the rows at positions >= the intervention's (the row-restricted backward) */
    double per_layer = 2.0 * B * SEQ * (12.0 * info.d_model * info.d_model);
    double head = 2.0 * B * SEQ * (double)info.d_model * info.vocab_size;
    double flops = per_layer * (12 + 7 + 5.0 * (SEQ - POS) / SEQ) + (c.call.logit_positions ? head / SEQ : head);
    double step_ms[3] = {0}, fwd_ms[3] = {0}, peak[3] = {0};
    float loss0 = 0, loss1 = 0;
    for (int t = tmax; t >= 1; t--) {
        bench_set_threads(t);
        peak[t] = bench_sgemm_peak(t);
        run_step(&c);
        loss0 = c.loss;
        step_ms[t] = bench_median_ms(1, reps, run_step, &c, NULL);
        loss1 = c.loss;
        fwd_ms[t] = bench_median_ms(1, reps, run_forward, &c, NULL);
        printf("  %d thread%s: step %.1f ms = %.2f forwards (plain forward %.1f ms); %.0f GFLOP/s = %.2f of sgemm "
               "(%.0f GFLOP/s)\n",
               t, t > 1 ? "s" : " ", step_ms[t], step_ms[t] / fwd_ms[t], fwd_ms[t], flops / step_ms[t] * 1e-6,
               flops / step_ms[t] * 1e-6 / peak[t], peak[t]);
    }
    printf("  loss %.4f -> %.4f over the timed steps (Adam lr 1e-3 on the rotation)\n", loss0, loss1);
    printf("  compute bound at %d threads: %.0f ms (%.1f GFLOP of matrix products)\n", tmax, flops / peak[tmax] * 1e-6,
           flops * 1e-9);
    printf("  memory: training state %.1f MB (run arena, gradient arena), peak RSS %.0f MB (weights %.0f MB)\n",
           vene_intervenable_grad_bytes(c.iv) / 1e6, bench_peak_rss_bytes() / 1e6, info.weight_bytes / 1e6);
    printf("  pyvene on this machine: about 720 ms per step (issue 4)\n");
    printf("BENCH das_step_ms %.1f ms\n", step_ms[tmax]);
    printf("BENCH das_step_forwards %.2f x\n", step_ms[tmax] / fwd_ms[tmax]);
    printf("BENCH das_step_peak_rss %.0f MB\n", bench_peak_rss_bytes() / 1e6);
    vene_optimizer_free(c.opt);
    vene_intervenable_free(c.iv);
    vene_run_free(c.rs);
    vene_model_free(m);
    return 0;
}
