/* Forward-pass benchmark: GPT-2 124M (random weights, same shapes as the real model) at
 * batch 1 x 16 and batch 32 x 16 tokens, with 1 and 2 threads.
 *
 * Every figure is put next to a yardstick measured in the same run on the same machine:
 *  - the sgemm rate (best of 512x768x3072 and 2048^3 through cblas_sgemm, same threads),
 *  - the memory-bound floor: float32 weight bytes / measured streaming-read bandwidth,
 *  - the compute-bound floor: forward FLOPs / sgemm rate,
 *  - the GEMM-only time: the forward's own matrix products (same shapes, same weights,
 *    same vk_linear_* kernels) without anything else, i.e. what the non-GEMM work costs.
 * Also: peak RSS against the weight bytes, and the cost of one no-op hook.
 * Forward and GEMM-only runs alternate in rounds, and the yardsticks are the best of a
 * pass before and one after, so a burst of other work on a shared machine skews less. 
 *
 * Usage: bench_forward [--quick]   (VENE_BENCH_MODEL=dir to use another GPT-2 folder)
 *        bench_forward --loop B THREADS N   (N forwards of B x 16 and nothing else: for
 *                                            perf record / valgrind) */
#include "common.h"

#include "core/kernels.h"
#include "io/safetensors.h"

#define SEQ 16
#define ROUNDS 3

static int noop_hook(void *user, const vene_hook_call *where, vene_tensor *t, vene_error *err) {
    (void)where;
    (void)t;
    (void)err;
    ++*(int *)user;
    return VENE_OK;
}

/* FLOPs of one forward of B x S tokens: every linear (2 per multiply-add), the tied LM
 * head, and attention's two products as computed (full S x S, then causally masked). */
static double forward_flops(const vene_model_info *in, int B, int S) {
    double T = (double)B * S, D = in->d_model, F = in->d_ff;
    double per_layer = D * 3 * D + D * D + D * F + F * D;
    double linear = 2.0 * T * (in->n_layer * per_layer + (in->has_lm_head ? (double)in->vocab_size * D : 0));
    double attn = in->n_layer * (double)B * 4.0 * S * S * D;
    return linear + attn;
}

/* The forward's matrix products alone, with the model's own (mmapped) weights, through
 * the library's own linear kernels (so the column follows whatever path they take). */
typedef struct gemm_ctx {
    const float *w[4 * BENCH_L];  /* c_attn, attn.c_proj, c_fc, mlp.c_proj per layer */
    const float *wte;
    float *x, *y;                 /* T x F scratch in and out */
    int T;
} gemm_ctx;

static int run_gemms(void *user) {
    gemm_ctx *g = user;
    const int D = BENCH_D, F = 4 * BENCH_D, T = g->T;
    for (int l = 0; l < BENCH_L; l++) {
        const float *const *w = g->w + 4 * l;
        vk_linear_in_out(g->x, w[0], NULL, g->y, T, D, 3 * D);
        vk_linear_in_out(g->x, w[1], NULL, g->y, T, D, D);
        vk_linear_in_out(g->x, w[2], NULL, g->y, T, D, F);
        vk_linear_in_out(g->x, w[3], NULL, g->y, T, F, D);
    }
    vk_linear_out_in(g->x, g->wte, NULL, g->y, T, D, BENCH_V);
    return 0;
}

static const float *st_f32(const st_file *f, const char *name) {
    const st_tensor *t = st_find(f, name);
    if (!t || t->dtype != ST_F32) {
        fprintf(stderr, "bench: tensor %s missing or not F32\n", name);
        exit(1);
    }
    return t->data;
}

/* --loop: the forward alone, for profilers. */
static int loop_main(int B, int threads, int n) {
    const char *dir = bench_gpt2_dir();
    vene_error err = {0};
    vene_model *m = NULL;
    vene_run *rs = NULL;
    if (vene_model_load(dir, NULL, &m, &err) || vene_run_new(m, &rs, &err)) bench_die("loading", &err);
    vene_model_info info;
    vene_model_get_info(m, &info);
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * SEQ);
    if (!ids) bench_die("out of memory", NULL);
    bench_fill_ids(ids, B * SEQ, 7, info.vocab_size);
    bench_set_threads(threads);
    bench_fwd c = {rs, {B, SEQ, ids, NULL, NULL, NULL}};
    double share = 0;
    double ms = bench_median_ms(1, n, bench_run_forward, &c, &share);
    printf("%dx%d, %d threads: median %.2f ms per forward over %d (cpu/wall %.2f)\n", B, SEQ, threads, ms, n, share);
    free(ids);
    vene_run_free(rs);
    vene_model_free(m);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "--loop") == 0) return loop_main(atoi(argv[2]), atoi(argv[3]), atoi(argv[4]));
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    const int reps1 = quick ? 3 : 7, reps32 = quick ? 1 : 2; /* per round */
    const char *dir;
    vene_model_info info;
    vene_model *m = bench_load_gpt2(&info, &dir);
    vene_error err = {0};
    const double wbytes = (double)info.weight_bytes;
    int ncpu = bench_cpu_count();
    int tmax = ncpu >= 2 ? 2 : 1;
    printf("vene forward benchmark: GPT-2 124M shapes (random weights, %s), %d CPUs\n", dir, ncpu);
    printf("  %lld parameters, %.1f MB float32 weights (mmapped)\n", (long long)info.n_params, wbytes / 1e6);
    bench_note_load("at start", 1);

    int32_t *ids = malloc(sizeof(int32_t) * 32 * SEQ);
    if (!ids) bench_die("out of memory", NULL);
    bench_fill_ids(ids, 32 * SEQ, 7, info.vocab_size);
    vene_run *rs = NULL;
    if (vene_run_new(m, &rs, &err)) bench_die("vene_run_new", &err);

    const int Bs[2] = {1, 32};
    double ms[2][3] = {{0}}, cpu[2][3] = {{0}}, gemm_ms[2][3] = {{0}}; /* [batch index][threads] */
    double rss_after[2] = {0};

    /* 1. peak RSS of the forwards alone, before anything else allocates or maps */
    bench_set_threads(tmax);
    for (int bi = 0; bi < 2; bi++) {
        bench_fwd c = {rs, {Bs[bi], SEQ, ids, NULL, NULL, NULL}};
        for (int i = 0; i < (bi ? 1 : 3); i++)
            if (bench_run_forward(&c)) bench_die("forward failed", NULL);
        rss_after[bi] = bench_peak_rss_bytes();
    }

    /* 2. yardsticks, first pass (best of this and a second pass at the end) */
    double peak[3] = {0};
    bench_bw bw[3];
    memset(bw, 0, sizeof bw);
    for (int t = 1; t <= tmax; t++) {
        peak[t] = bench_sgemm_peak(t);
        bw[t] = bench_mem_bandwidth(t, 2);
    }

    /* 3. forward vs the same forward's matrix products alone (model weights mapped a
     *    second time through the safetensors reader), in alternating rounds so a burst of
     *    other work on the machine hits both alike; each figure is the median of the
     *    rounds' medians */
    st_file *sf = NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (st_open(path, &sf, &err)) bench_die("st_open", &err);
    gemm_ctx g;
    memset(&g, 0, sizeof g);
    static const char *const wn[4] = {"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"};
    for (int l = 0; l < BENCH_L; l++)
        for (int k = 0; k < 4; k++) {
            char name[128];
            snprintf(name, sizeof name, "transformer.h.%d.%s.weight", l, wn[k]);
            g.w[4 * l + k] = st_f32(sf, name);
        }
    g.wte = st_f32(sf, "transformer.wte.weight");
    g.x = malloc(sizeof(float) * 32 * SEQ * 4 * BENCH_D);
    g.y = malloc(sizeof(float) * (size_t)32 * SEQ * BENCH_V);
    if (!g.x || !g.y) bench_die("out of memory", NULL);
    bench_fill_(g.x, (size_t)32 * SEQ * 4 * BENCH_D, 5);
    for (int bi = 0; bi < 2; bi++) {
        bench_fwd c = {rs, {Bs[bi], SEQ, ids, NULL, NULL, NULL}};
        g.T = Bs[bi] * SEQ;
        int reps = bi ? reps32 : reps1;
        for (int t = 1; t <= tmax; t++) {
            bench_set_threads(t);
            double f[ROUNDS], q[ROUNDS], share[ROUNDS];
            for (int r = 0; r < ROUNDS; r++) {
                f[r] = bench_median_ms(r == 0 ? (bi ? 1 : 3) : 0, reps, bench_run_forward, &c, &share[r]);
                q[r] = bench_median_ms(r == 0 ? 1 : 0, reps, run_gemms, &g, NULL);
            }
            ms[bi][t] = bench_median(f, ROUNDS);
            gemm_ms[bi][t] = bench_median(q, ROUNDS);
            cpu[bi][t] = bench_median(share, ROUNDS);
        }
    }
    free(g.x);
    free(g.y);
    st_close(sf);

    /* 4. hook cost: batch 1, all threads, one no-op hook on h[6].output vs none,
     *    interleaved so drift hits both alike */
    int site = -1, layer = -1, fired = 0;
    if (vene_model_find_site(m, "h[6].output", &site, &layer, &err)) bench_die("find site h[6].output", &err);
    bench_set_threads(tmax);
    bench_fwd c1 = {rs, {1, SEQ, ids, NULL, NULL, NULL}};
    const int hreps = quick ? 10 : 30;
    double *th = malloc(sizeof(double) * hreps), *tn = malloc(sizeof(double) * hreps);
    if (!th || !tn) bench_die("out of memory", NULL);
    for (int i = 0; i < hreps; i++) {
        for (int k = 0; k < 2; k++) {
            int hooked = (i + k) % 2;
            vene_run_clear_hooks(rs);
            if (hooked && vene_run_add_hook(rs, site, layer, noop_hook, &fired, &err)) bench_die("add hook", &err);
            double t0 = bench_now();
            if (bench_run_forward(&c1)) bench_die("forward failed", NULL);
            (hooked ? th : tn)[i] = 1e3 * (bench_now() - t0);
        }
    }
    vene_run_clear_hooks(rs);
    if (fired != hreps) bench_die("the no-op hook did not fire once per hooked forward", NULL);
    double hook_ms = bench_median(th, hreps), nohook_ms = bench_median(tn, hreps);
    /* run-to-run noise: median absolute deviation of the un-hooked runs */
    for (int i = 0; i < hreps; i++) tn[i] = fabs(tn[i] - nohook_ms);
    double noise_ms = bench_median(tn, hreps);
    free(th);
    free(tn);

    /* 5. yardsticks, second pass: keep the better of the two */
    for (int t = 1; t <= tmax; t++) {
        double p = bench_sgemm_peak(t);
        bench_bw b = bench_mem_bandwidth(t, 2);
        if (p > peak[t]) peak[t] = p;
        if (b.read_gbs > bw[t].read_gbs) bw[t].read_gbs = b.read_gbs;
        if (b.memcpy_gbs > bw[t].memcpy_gbs) bw[t].memcpy_gbs = b.memcpy_gbs;
    }

    /* report */
    printf("\nyardsticks (best of a pass before and one after the forwards):\n");
    for (int t = 1; t <= tmax; t++)
        printf("  %d thread%s: sgemm %.1f GFLOP/s   streaming read %.1f GB/s   (memcpy, 1 thread: %.1f GB/s r+w)\n", t,
               t > 1 ? "s" : " ", peak[t], bw[t].read_gbs, bw[t].memcpy_gbs);
    printf("\n%-10s %3s %9s %5s %9s %8s %10s %10s %9s %9s %9s\n", "shape", "thr", "ms", "cpu", "GFLOP/s", "/sgemm",
           "mem-floor", "cmp-floor", "/floor", "GEMM-ms", "non-GEMM");
    double ratio_sgemm[2][3] = {{0}}, ratio_mem[3] = {0}, ratio_floor[2][3] = {{0}};
    int n_starved = 0;
    for (int bi = 0; bi < 2; bi++)
        for (int t = 1; t <= tmax; t++) {
            double fl = forward_flops(&info, Bs[bi], SEQ);
            double gf = fl / (ms[bi][t] * 1e-3) / 1e9;
            double mem_floor = wbytes / (bw[t].read_gbs * 1e9) * 1e3;
            double cmp_floor = fl / (peak[t] * 1e9) * 1e3;
            double floor = mem_floor > cmp_floor ? mem_floor : cmp_floor;
            ratio_sgemm[bi][t] = gf / peak[t];
            ratio_floor[bi][t] = ms[bi][t] / floor;
            if (bi == 0) ratio_mem[t] = ms[bi][t] / mem_floor;
            char shape[32];
            snprintf(shape, sizeof shape, "%dx%d", Bs[bi], SEQ);
            int starved = cpu[bi][t] < 0.85 * t;
            n_starved += starved;
            printf("%-10s %3d %9.2f %4.2f%s %9.1f %8.2f %10.2f %10.2f %9.2f %9.2f %8.0f%%\n", shape, t, ms[bi][t],
                   cpu[bi][t], starved ? "*" : " ", gf, ratio_sgemm[bi][t], mem_floor, cmp_floor, ratio_floor[bi][t],
                   gemm_ms[bi][t], 100.0 * (ms[bi][t] - gemm_ms[bi][t]) / ms[bi][t]);
        }
    printf("  (%.2f GFLOP per 1x%d forward, %.1f GFLOP per 32x%d; /floor = ms / max(mem-floor, cmp-floor);\n"
           "   cpu = process CPU time / wall time while timing, about the thread count when nothing else runs)\n",
           forward_flops(&info, 1, SEQ) / 1e9, SEQ, forward_flops(&info, 32, SEQ) / 1e9, SEQ);
    if (n_starved)
        printf("  * cpu well below the thread count: other processes held the CPUs during that row, so it (and\n"
               "    possibly the yardsticks) is pessimistic; rerun on an idle machine\n");
    printf("\nhooks (1x%d, %d threads, medians of %d interleaved pairs): none %.3f ms, one no-op on h[6].output %.3f ms "
           "(%+.2f%%; run-to-run noise +-%.2f%%)\n",
           SEQ, tmax, hreps, nohook_ms, hook_ms, 100.0 * (hook_ms - nohook_ms) / nohook_ms, 100.0 * noise_ms / nohook_ms);
    printf("memory: peak RSS %.1f MB after the 1x%d forwards (%.3f x weights), %.1f MB after 32x%d (%.3f x weights)\n",
           rss_after[0] / 1e6, SEQ, rss_after[0] / wbytes, rss_after[1] / 1e6, SEQ, rss_after[1] / wbytes);
    printf("  (RSS counts the touched pages of the mmapped weights; 32x%d adds its run scratch, mostly %.0f MB of "
           "logits)\n",
           SEQ, 32.0 * SEQ * info.vocab_size * 4 / 1e6);
    bench_note_load("at end (includes this benchmark)", 0);
    printf("\n");

    for (int bi = 0; bi < 2; bi++)
        for (int t = 1; t <= tmax; t++) {
            char name[64];
            snprintf(name, sizeof name, "forward_b%d_t%d_ms", Bs[bi], t);
            bench_line(name, ms[bi][t], "ms");
        }
    for (int t = 1; t <= tmax; t++) {
        char name[64];
        snprintf(name, sizeof name, "forward_b1_t%d_over_mem_floor", t);
        bench_line(name, ratio_mem[t], "ratio");
    }
    for (int t = 1; t <= tmax; t++) {
        char name[64];
        snprintf(name, sizeof name, "forward_b32_t%d_sgemm_ratio", t);
        bench_line(name, ratio_sgemm[1][t], "ratio");
    }
    bench_line("sgemm_peak_t1_gflops", peak[1], "GFLOP/s");
    if (tmax > 1) bench_line("sgemm_peak_t2_gflops", peak[2], "GFLOP/s");
    bench_line("mem_read_bw_gbs", bw[tmax].read_gbs, "GB/s");
    bench_line("peak_rss_over_weights", rss_after[0] / wbytes, "ratio");
    bench_line("peak_rss_b32_over_weights", rss_after[1] / wbytes, "ratio");
    bench_line("hook_overhead_pct", 100.0 * (hook_ms - nohook_ms) / nohook_ms, "%");
    bench_line("hook_noise_pct", 100.0 * noise_ms / nohook_ms, "%");

    free(ids);
    vene_run_free(rs);
    vene_model_free(m);
    return 0;
}
