/* One DAS training step on GPT-2 124M (random weights): rank-1 LowRankRotatedSpace at
 * block_output layer 6, batch 8 x 16 tokens (base and source), cross-entropy at the last
 * position, backward into the rotation only (the model frozen, as pyvene freezes it), one
 * Adam step — through vene_train_step, the public training API.
 *
 * Reference in the same run: a plain forward of the base batch, and the machine's sgemm
 * rate, so the step can be read as "forwards" and as a fraction of the compute bound
 * (FLOPs of the step's matrix products / the sgemm rate). Then a measured yardstick: the
 * step's matrix products alone (the list in prods_init, same shapes, the model's own
 * weights, back to back), once through OpenBLAS's threaded sgemm and once through vene's
 * kernels (core/gemm.h), in rounds interleaved with the real step: what the products
 * alone cost on this machine, whoever computes them.
 *
 * Usage: bench_das_step [--quick] [--all-logits]   (--all-logits: the LM head at every position)
 *        bench_das_step --loop THREADS N            (N steps and nothing else: for profilers) */
#include "common.h"
#include "core/gemm.h"

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

/* ---------------------------------------------------------------- products yardstick */

/* One matrix product of the step: out[M x N] (+)= x[M x K] op(W), W as the model holds
 * it. NN: W is K x N (a Conv1D linear forward, y = x W; or the LM head's backward,
 * dh = dlogits wte). NT: W is N x K (the tied LM head forward, logits = h wte^T; or a
 * Conv1D linear's activation gradient, dx = dy W^T). acc: accumulates into out, as the
 * backward's products do. */
enum { P_NN, P_NT };
enum { G_BASE, G_SOURCE, G_HEAD_FWD, G_HEAD_BWD, G_LAYERS_BWD, N_GROUPS };
static const char *const GROUP_NAME[N_GROUPS] = {
    "base forward, 12 layers x 4 linears", "source forward, layers 0..6", "LM head forward (tied wte)",
    "LM head backward dx", "layers 11..7 backward dx x 4"};

typedef struct prod {
    const float *W;
    int kind, acc, M, K, N, group;
    int ldw; /* W's row stride: N (NN) or K (NT), unless a column block of a wider weight */
} prod;

#define MAX_PRODS 128
typedef struct prods {
    prod p[MAX_PRODS];
    int n;
    float *x, *out; /* scratch: every product reads x and writes out (large enough for any) */
    double flops[N_GROUPS], ms[N_GROUPS];
    int rows[N_GROUPS];
} prods;

/* A weight through the public loader call (the same mmapped floats the step reads). It
 * also adds the tensor to m's parameter count, which this bench has already read. */
static const float *weight(vene_model *m, const char *name, int64_t a, int64_t b) {
    const int64_t shape[2] = {a, b};
    const float *p = NULL;
    vene_error err = {0};
    if (vene_model_tensor(m, name, 2, shape, &p, &err)) bench_die("yardstick weights", &err);
    return p;
}

static void add(prods *P, const float *W, int kind, int acc, int M, int K, int N, int group) {
    if (P->n == MAX_PRODS) bench_die("yardstick: too many products", NULL);
    P->p[P->n++] = (prod){W, kind, acc, M, K, N, group, kind == P_NN ? N : K};
    P->flops[group] += 2.0 * M * K * N;
    if (M > P->rows[group]) P->rows[group] = M;
}

/* The step's products, from gpt2.c (forward), model.c / model_grad.c (LM head and its
 * backward on the live rows) and gpt2_backward_rows.c (layers 11..7, activation gradients
 * only, on the rows at position >= POS: one per example). Attention's own products
 * (scores, values; per head, 16 keys) and the rank-1 rotation are left out. */
static void prods_init(prods *P, vene_model *m, const vene_model_info *in, int head_rows) {
    memset(P, 0, sizeof *P);
    const int T = B * SEQ, D = in->d_model, F = in->d_ff, V = in->vocab_size, R = B * (SEQ - POS);
    char name[96];
    const float *attn[64], *proj[64], *fc[64], *mproj[64];
    if (in->n_layer > 64) bench_die("yardstick: more than 64 layers", NULL);
    for (int l = 0; l < in->n_layer; l++) {
        snprintf(name, sizeof name, "h.%d.attn.c_attn.weight", l);
        attn[l] = weight(m, name, D, 3 * D);
        snprintf(name, sizeof name, "h.%d.attn.c_proj.weight", l);
        proj[l] = weight(m, name, D, D);
        snprintf(name, sizeof name, "h.%d.mlp.c_fc.weight", l);
        fc[l] = weight(m, name, D, F);
        snprintf(name, sizeof name, "h.%d.mlp.c_proj.weight", l);
        mproj[l] = weight(m, name, F, D);
    }
    const float *wte = weight(m, "wte.weight", V, D);
    for (int g = G_BASE; g <= G_SOURCE; g++)
        for (int l = 0; l < (g == G_BASE ? in->n_layer : LAYER); l++) {
            add(P, attn[l], P_NN, 0, T, D, 3 * D, g);
            add(P, proj[l], P_NN, 0, T, D, D, g);
            add(P, fc[l], P_NN, 0, T, D, F, g);
            add(P, mproj[l], P_NN, 0, T, F, D, g);
        }
    /* the source's layer LAYER on the rows its getter reads (models/gpt2_tail.c): keys and
     * values of every row, the rest on the R rows at position POS */
    add(P, attn[LAYER] + D, P_NN, 0, T, D, 2 * D, G_SOURCE);
    P->p[P->n - 1].ldw = 3 * D;
    add(P, attn[LAYER], P_NN, 0, R, D, D, G_SOURCE);
    P->p[P->n - 1].ldw = 3 * D;
    add(P, proj[LAYER], P_NN, 0, R, D, D, G_SOURCE);
    add(P, fc[LAYER], P_NN, 0, R, D, F, G_SOURCE);
    add(P, mproj[LAYER], P_NN, 0, R, F, D, G_SOURCE);
    add(P, wte, P_NT, 0, head_rows, D, V, G_HEAD_FWD);
    add(P, wte, P_NN, 1, R, V, D, G_HEAD_BWD); /* the loss is at the last position only: B live rows */
    for (int l = in->n_layer - 1; l > LAYER; l--) { /* in backward order, dx = dy W^T */
        add(P, mproj[l], P_NT, 1, R, D, F, G_LAYERS_BWD);
        add(P, fc[l], P_NT, 1, R, F, D, G_LAYERS_BWD);
        add(P, proj[l], P_NT, 1, R, D, D, G_LAYERS_BWD);
        add(P, attn[l], P_NT, 1, R, 3 * D, D, G_LAYERS_BWD);
    }
}

/* The scratch, allocated after the step's peak RSS is taken. */
static void prods_alloc(prods *P) {
    size_t need = 0;
    for (int i = 0; i < P->n; i++) {
        size_t a = (size_t)P->p[i].M * P->p[i].K, b = (size_t)P->p[i].M * P->p[i].N;
        need = a > need ? a : need;
        need = b > need ? b : need;
    }
    P->x = malloc(sizeof(float) * need);
    P->out = malloc(sizeof(float) * need);
    if (!P->x || !P->out) bench_die("out of memory (yardstick)", NULL);
    bench_fill_(P->x, need, 5);
    for (size_t i = 0; i < need; i++) P->x[i] *= 0.1f;
    memset(P->out, 0, sizeof(float) * need);
}

static void prods_free(prods *P) {
    free(P->x);
    free(P->out);
}

/* Every product once, in order, through OpenBLAS (blas = 1: its own threads, set by the
 * caller) or vene's row-stable kernels (blas = 0: OpenMP's threads); per-group times into
 * P->ms. */
static void prods_run(prods *P, int blas) {
    int g = -1;
    double t0 = 0;
    for (int i = 0; i < P->n; i++) {
        const prod *p = &P->p[i];
        if (p->group != g) {
            double t = bench_now();
            if (g >= 0) P->ms[g] = 1e3 * (t - t0);
            g = p->group, t0 = t;
        }
        const int ldw = p->ldw;
        if (blas)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, p->kind == P_NN ? CblasNoTrans : CblasTrans, p->M, p->N, p->K,
                        1.0f, P->x, p->K, p->W, ldw, p->acc ? 1.0f : 0.0f, P->out, p->N);
        else if (p->kind == P_NN && p->acc)
            vk_gemm_nn_acc(P->x, p->K, p->W, ldw, P->out, p->N, p->M, p->K, p->N, 1);
        else if (p->kind == P_NN)
            vk_gemm_nn(P->x, p->K, p->W, ldw, NULL, P->out, p->N, p->M, p->K, p->N);
        else if (p->acc)
            vk_gemm_nt_acc(P->x, p->K, p->W, ldw, P->out, p->N, p->M, p->K, p->N, 1);
        else
            vk_gemm_nt(P->x, p->K, p->W, ldw, NULL, P->out, p->N, p->M, p->K, p->N);
    }
    if (g >= 0) P->ms[g] = 1e3 * (bench_now() - t0);
}

/* OpenBLAS's worker threads busy-wait after a call before they sleep (about 2^28 cycles,
 * a tenth of a second here); give them that, and some. */
static void blas_threads_idle(void) {
    struct timespec ts = {0, 300 * 1000 * 1000};
    nanosleep(&ts, NULL);
}

static double total(const double *v, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += v[i];
    return s;
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
    /* FLOPs of the matrix products (the list in prods_init): base 12 layers + LM head,
     * source 7 layers, backward through the LM head and layers 11..7 (activation
     * gradients only: as many FLOPs as their forward) on the rows at positions >= the
     * intervention's (the row-restricted backward) */
    static prods P;
    prods_init(&P, m, &info, c.call.logit_positions ? B : B * SEQ);
    double flops = total(P.flops, N_GROUPS);
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
    /* the peak before the yardstick, whose scratch (a few MB) would otherwise add to it */
    const double rss = bench_peak_rss_bytes();
    printf("  memory: training state %.1f MB (run arena, gradient arena), peak RSS %.0f MB (weights %.0f MB)\n",
           vene_intervenable_grad_bytes(c.iv) / 1e6, rss / 1e6, info.weight_bytes / 1e6);
    printf("  pyvene on this machine: about 720 ms per step (issue 4)\n");

    /* The yardstick: rounds of {step, products through OpenBLAS, products through vene's
     * kernels}, the order rotating per round so noise hits all three alike; medians over the
     * rounds. OpenBLAS's threads keep spinning for a while after a call and took a core from
     * whatever ran next (the step measured 327 ms in the rounds against 278 alone): after
     * the OpenBLAS part the bench waits until they sleep. */
    const int rounds = reps;
    double *ys = malloc(sizeof(double) * (size_t)rounds * (2 * N_GROUPS + 3));
    if (!ys) bench_die("out of memory", NULL);
    double *ystep = ys, *yblas = ys + rounds, *yvene = ys + 2 * rounds, *gblas = ys + 3 * rounds,
           *gvene = gblas + (size_t)rounds * N_GROUPS;
    prods_alloc(&P);
    bench_set_threads(tmax);
    run_step(&c);
    openblas_set_num_threads(tmax);
    prods_run(&P, 1);
    openblas_set_num_threads(1);
    blas_threads_idle();
    prods_run(&P, 0);
    for (int r = 0; r < rounds; r++)
        for (int k = 0; k < 3; k++) {
            int what = (r + k) % 3;
            double t0 = bench_now();
            if (what == 0) {
                if (run_step(&c)) return 1;
                ystep[r] = 1e3 * (bench_now() - t0);
            } else {
                if (what == 1) openblas_set_num_threads(tmax);
                prods_run(&P, what == 1);
                (what == 1 ? yblas : yvene)[r] = 1e3 * (bench_now() - t0);
                for (int g = 0; g < N_GROUPS; g++) (what == 1 ? gblas : gvene)[g * rounds + r] = P.ms[g];
                if (what == 1) openblas_set_num_threads(1), blas_threads_idle();
            }
        }
    const double s_ms = bench_median(ystep, rounds), b_ms = bench_median(yblas, rounds),
                 v_ms = bench_median(yvene, rounds);
    printf("  yardstick: the step's %d matrix products alone, back to back (nothing else: no attention, layer\n"
           "  norm, GELU, hooks or Adam), same shapes, the model's own mmapped weights; median of %d rounds\n"
           "  of {step, products through OpenBLAS sgemm, products through vene's kernels} at %d thread%s:\n",
           P.n, rounds, tmax, tmax > 1 ? "s" : "");
    printf("    %-38s %4s %6s %12s %12s\n", "products", "rows", "GFLOP", "OpenBLAS ms", "vene ms");
    for (int g = 0; g < N_GROUPS; g++)
        printf("    %-38s %4d %6.2f %12.1f %12.1f\n", GROUP_NAME[g], P.rows[g], P.flops[g] * 1e-9,
               bench_median(gblas + g * rounds, rounds), bench_median(gvene + g * rounds, rounds));
    printf("    %-38s %4s %6.2f %12.1f %12.1f  (%.0f / %.0f GFLOP/s)\n", "all (median of the totals)", "", flops * 1e-9,
           b_ms, v_ms, flops / b_ms * 1e-6, flops / v_ms * 1e-6);
    printf("  step %.1f ms in these rounds = %.2f x the products through OpenBLAS (%.1f ms), %.2f x through\n"
           "  vene's kernels (%.1f ms); not products: %.0f%% of the step (step - vene's products = %.0f ms:\n"
           "  attention, layer norm, GELU, loss, hooks, copies, Adam), %.0f%% against OpenBLAS's products\n",
           s_ms, s_ms / b_ms, b_ms, s_ms / v_ms, v_ms, 100.0 * (1.0 - v_ms / s_ms), s_ms - v_ms,
           100.0 * (1.0 - b_ms / s_ms));
    free(ys);
    prods_free(&P);
    printf("BENCH das_step_ms %.1f ms\n", step_ms[tmax]);
    printf("BENCH das_step_forwards %.2f x\n", step_ms[tmax] / fwd_ms[tmax]);
    printf("BENCH das_step_peak_rss %.0f MB\n", rss / 1e6);
    printf("BENCH das_step_products_openblas_ms %.1f ms\n", b_ms);
    printf("BENCH das_step_products_vene_ms %.1f ms\n", v_ms);
    printf("BENCH das_step_over_openblas_products %.2f x\n", s_ms / b_ms);
    vene_optimizer_free(c.opt);
    vene_intervenable_free(c.iv);
    vene_run_free(c.rs);
    vene_model_free(m);
    return 0;
}
