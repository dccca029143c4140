/* Forward benchmark of a LLaMA-shaped ~125M-parameter model (random weights): 12 layers,
 * width 768, 12 query heads and 4 key/value heads of 64, SwiGLU 2048, vocabulary 32000,
 * untied head. Tokens per second at batch x sequence 1x16, 1x128 and 8x128, each next to
 * yardsticks measured in the same run on the same machine:
 *  - the sgemm rate (best of 512x768x3072 and 2048^3 through cblas_sgemm, same threads),
 *    against the forward's own FLOP rate;
 *  - the memory-bound floor for 1x16: float32 weight bytes / streaming-read bandwidth.
 * Threads: OpenMP's count (OMP_NUM_THREADS, default all CPUs).
 *
 * Usage: bench_llama_forward [--quick]   (VENE_BENCH_LLAMA=dir for another llama folder) */
#include "common.h"
#include "llama_model.h"

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    const char *dir = bench_llama_dir();
    vene_error err = {0};
    vene_model *m = NULL;
    vene_run *rs = NULL;
    if (vene_model_load(dir, NULL, &m, &err) || vene_run_new(m, &rs, &err)) bench_die("loading the bench model", &err);
    vene_model_info info;
    vene_model_get_info(m, &info);
    const int threads = omp_get_max_threads();
    printf("vene forward benchmark: Llama-shaped, %lld parameters (%.1f MB float32, mmapped), %s\n",
           (long long)info.n_params, info.weight_bytes / 1e6, dir);
    printf("  %d layers, width %d, %d query / %d kv heads of %d, SwiGLU %d, vocabulary %d; %d threads, %d CPUs\n",
           LL_L, LL_D, LL_H, LL_KV, LL_HD, LL_F, LL_V, threads, bench_cpu_count());
    bench_note_load("at start", 1);

    enum { N_SHAPES = 3 };
    const int Bs[N_SHAPES] = {1, 1, 8}, Ss[N_SHAPES] = {16, 128, 128};
    const int reps[N_SHAPES] = {quick ? 3 : 9, quick ? 2 : 5, quick ? 1 : 3};
    int32_t *ids = malloc(sizeof(int32_t) * 8 * 128);
    if (!ids) bench_die("out of memory", NULL);
    bench_fill_ids(ids, 8 * 128, 11, LL_V);

    double peak = bench_sgemm_peak(threads);
    bench_bw bw = bench_mem_bandwidth(threads, 2);
    bench_set_threads(threads);
    double ms[N_SHAPES], cpu[N_SHAPES];
    for (int i = 0; i < N_SHAPES; i++) {
        bench_fwd c = {rs, {Bs[i], Ss[i], ids, NULL, NULL, NULL}};
        ms[i] = bench_median_ms(1, reps[i], bench_run_forward, &c, &cpu[i]);
    }
    /* the yardsticks again after the forwards: keep the better */
    double peak2 = bench_sgemm_peak(threads);
    bench_bw bw2 = bench_mem_bandwidth(threads, 2);
    if (peak2 > peak) peak = peak2;
    if (bw2.read_gbs > bw.read_gbs) bw = bw2;

    printf("\nyardsticks (best of a pass before and one after): sgemm %.1f GFLOP/s, streaming read %.1f GB/s\n", peak,
           bw.read_gbs);
    printf("\n%-8s %10s %11s %5s %9s %8s %10s\n", "shape", "ms", "tokens/s", "cpu", "GFLOP/s", "/sgemm", "/mem-floor");
    const double mem_floor_ms = (double)info.weight_bytes / (bw.read_gbs * 1e9) * 1e3;
    double tok_s[N_SHAPES], ratio[N_SHAPES];
    for (int i = 0; i < N_SHAPES; i++) {
        double gf = forward_flops(Bs[i], Ss[i]) / (ms[i] * 1e-3) / 1e9;
        tok_s[i] = Bs[i] * Ss[i] / (ms[i] * 1e-3);
        ratio[i] = gf / peak;
        printf("%dx%-6d %10.2f %11.1f %4.2f%s %9.1f %8.2f %10.2f\n", Bs[i], Ss[i], ms[i], tok_s[i], cpu[i],
               cpu[i] < 0.85 * threads ? "*" : " ", gf, ratio[i], ms[i] / mem_floor_ms);
    }
    printf("  (memory floor %.1f ms = weight bytes / read bandwidth; /sgemm = forward GFLOP/s over the sgemm rate;\n"
           "   cpu = process CPU time / wall time, * = well below the thread count: other work held the CPUs)\n",
           mem_floor_ms);
    bench_note_load("at end (includes this benchmark)", 0);
    printf("\n");
    const char *names[N_SHAPES] = {"llama125m_forward_1x16_tok_s", "llama125m_forward_1x128_tok_s",
                                   "llama125m_forward_8x128_tok_s"};
    for (int i = 0; i < N_SHAPES; i++) bench_line(names[i], tok_s[i], "tokens/s");
    bench_line("llama125m_forward_1x16_over_mem_floor", ms[0] / mem_floor_ms, "ratio");
    bench_line("llama125m_forward_1x128_sgemm_ratio", ratio[1], "ratio");
    bench_line("llama125m_forward_8x128_sgemm_ratio", ratio[2], "ratio");
    bench_line("llama125m_sgemm_peak_gflops", peak, "GFLOP/s");
    free(ids);
    vene_run_free(rs);
    vene_model_free(m);
    return 0;
}
