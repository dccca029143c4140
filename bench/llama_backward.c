/* Forward + backward benchmark of the LLaMA-shaped ~125M-parameter model of
 * bench_llama_forward (bench/llama_model.h) with weight gradients on (VENE_GRAD_MODEL,
 * as fine-tuning or IIT runs it): tokens per second of forward + backward at batch x
 * sequence 1x128 and 8x128, with a dense d_logits (what a next-token cross-entropy at
 * every position gives). Next to it, measured in the same run on the same machine:
 *  - the sgemm rate (best of 512x768x3072 and 2048^3 through cblas_sgemm, same
 *    threads), against the step's FLOP rate; a step is counted as 3 forwards (every
 *    product once forward and twice backward: the inputs' and the weights' gradients);
 *  - a plain forward (no gradient mode) of the same shape: step / forward, ideally ~3.
 * Threads: OpenMP's count (OMP_NUM_THREADS, default all CPUs). The machine may be shared:
 * the `cpu` column and the load average say when other work held the CPUs.
 *
 * Usage: bench_llama_backward [--quick]   (VENE_BENCH_LLAMA=dir for another llama folder) */
#include "common.h"
#include "llama_model.h"

typedef struct step_ctx {
    vene_run *rs;
    vene_batch batch;
    vene_tensor d_logits;
} step_ctx;

static int run_step(void *user) {
    step_ctx *c = user;
    vene_error err = {0};
    int rc = vene_forward(c->rs, &c->batch, &err);
    if (!rc) rc = vene_backward(c->rs, &c->d_logits, NULL, &err);
    if (rc) fprintf(stderr, "forward + backward: %s\n", err.msg);
    return rc;
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    const char *dir = bench_llama_dir();
    vene_error err = {0};
    vene_model *m = NULL;
    vene_run *rs = NULL, *plain = NULL;
    if (vene_model_load(dir, NULL, &m, &err) || vene_run_new(m, &rs, &err) || vene_run_new(m, &plain, &err) ||
        vene_run_set_grad(rs, VENE_GRAD_MODEL, &err))
        bench_die("loading the bench model", &err);
    vene_model_info info;
    vene_model_get_info(m, &info);
    const int threads = omp_get_max_threads();
    printf("vene forward + backward benchmark: Llama-shaped, %lld parameters (%.1f MB float32, mmapped), %s\n",
           (long long)info.n_params, info.weight_bytes / 1e6, dir);
    printf("  %d layers, width %d, %d query / %d kv heads of %d, SwiGLU %d, vocabulary %d; weight gradients on;\n"
           "  %d threads, %d CPUs\n",
           LL_L, LL_D, LL_H, LL_KV, LL_HD, LL_F, LL_V, threads, bench_cpu_count());
    bench_note_load("at start", 1);

    enum { N_SHAPES = 2 };
    const int Bs[N_SHAPES] = {1, 8}, Ss[N_SHAPES] = {128, 128};
    const int reps[N_SHAPES] = {quick ? 1 : 3, quick ? 1 : 2};
    int32_t *ids = malloc(sizeof(int32_t) * 8 * 128);
    float *dl = malloc(sizeof(float) * (size_t)8 * 128 * LL_V);
    if (!ids || !dl) bench_die("out of memory", NULL);
    bench_fill_ids(ids, 8 * 128, 11, LL_V);
    bench_fill_(dl, (size_t)8 * 128 * LL_V, 5);
    for (size_t i = 0; i < (size_t)8 * 128 * LL_V; i++) dl[i] *= 1e-3f;

    double peak = bench_sgemm_peak(threads);
    bench_set_threads(threads);
    double ms[N_SHAPES], fwd_ms[N_SHAPES], cpu[N_SHAPES], mem[N_SHAPES];
    for (int i = 0; i < N_SHAPES; i++) {
        bench_fwd f = {plain, {Bs[i], Ss[i], ids, NULL, NULL, NULL}};
        fwd_ms[i] = bench_median_ms(1, reps[i], bench_run_forward, &f, NULL);
        step_ctx c = {rs, {Bs[i], Ss[i], ids, NULL, NULL, NULL}, {dl, 3, {Bs[i], Ss[i], LL_V}}};
        ms[i] = bench_median_ms(1, reps[i], run_step, &c, &cpu[i]);
        mem[i] = (double)vene_run_grad_bytes(rs);
    }
    double peak2 = bench_sgemm_peak(threads); /* again after the steps: keep the better */
    if (peak2 > peak) peak = peak2;

    printf("\nyardstick (best of a pass before and one after): sgemm %.1f GFLOP/s\n", peak);
    printf("\n%-8s %10s %11s %5s %9s %8s %10s %10s\n", "shape", "step ms", "tokens/s", "cpu", "GFLOP/s", "/sgemm",
           "fwd ms", "step/fwd");
    double tok_s[N_SHAPES], ratio[N_SHAPES];
    for (int i = 0; i < N_SHAPES; i++) {
        double gf = 3.0 * forward_flops(Bs[i], Ss[i]) / (ms[i] * 1e-3) / 1e9;
        tok_s[i] = Bs[i] * Ss[i] / (ms[i] * 1e-3);
        ratio[i] = gf / peak;
        printf("%dx%-6d %10.1f %11.1f %4.2f%s %9.1f %8.2f %10.1f %10.2f\n", Bs[i], Ss[i], ms[i], tok_s[i], cpu[i],
               cpu[i] < 0.85 * threads ? "*" : " ", gf, ratio[i], fwd_ms[i], ms[i] / fwd_ms[i]);
    }
    printf("  (step = vene_forward + vene_backward with d_logits; FLOPs = 3 x the forward's; cpu = process CPU time /\n"
           "   wall time, * = well below the thread count: other work held the CPUs)\n");
    printf("reverse-mode memory (vene_run_grad_bytes: run arena + gradient arena + weight gradients): %.0f MB at 1x128,"
           " %.0f MB at 8x128\n", mem[0] / 1e6, mem[1] / 1e6);
    bench_note_load("at end (includes this benchmark)", 0);
    printf("\n");
    bench_line("llama125m_train_step_1x128_tok_s", tok_s[0], "tokens/s");
    bench_line("llama125m_train_step_8x128_tok_s", tok_s[1], "tokens/s");
    bench_line("llama125m_train_step_1x128_sgemm_ratio", ratio[0], "ratio");
    bench_line("llama125m_train_step_8x128_sgemm_ratio", ratio[1], "ratio");
    bench_line("llama125m_train_step_8x128_over_forward", ms[1] / fwd_ms[1], "ratio");
    bench_line("llama125m_train_8x128_grad_memory_mb", mem[1] / 1e6, "MB");
    bench_line("llama125m_sgemm_peak_gflops", peak, "GFLOP/s");
    free(ids);
    free(dl);
    vene_run_free(rs);
    vene_run_free(plain);
    vene_model_free(m);
    return 0;
}
