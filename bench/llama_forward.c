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

#define LL_DIR "/tmp/vene-bench-llama-125m"
#define LL_SEED 20240610

enum { LL_L = 12, LL_D = 768, LL_H = 12, LL_KV = 4, LL_HD = 64, LL_F = 2048, LL_V = 32000, LL_CTX = 2048 };

#define LL_PARAMS                                                                                              \
    (2 * (int64_t)LL_V * LL_D + LL_D +                                                                         \
     (int64_t)LL_L * (2 * LL_D + 2 * (int64_t)LL_D * LL_H * LL_HD + 2 * (int64_t)LL_D * LL_KV * LL_HD +       \
                      3 * (int64_t)LL_D * LL_F))

static int write_llama(const char *dir, vene_error *err) {
    char path[4096], name[128], cfg[1024];
    snprintf(path, sizeof path, "%s/config.json", dir);
    snprintf(cfg, sizeof cfg,
             "{\n  \"model_type\": \"llama\",\n  \"architectures\": [\"LlamaForCausalLM\"],\n"
             "  \"num_hidden_layers\": %d,\n  \"hidden_size\": %d,\n  \"num_attention_heads\": %d,\n"
             "  \"num_key_value_heads\": %d,\n  \"head_dim\": %d,\n  \"intermediate_size\": %d,\n"
             "  \"vocab_size\": %d,\n  \"max_position_embeddings\": %d,\n  \"hidden_act\": \"silu\",\n"
             "  \"rms_norm_eps\": 1e-05,\n  \"rope_theta\": 500000.0,\n  \"tie_word_embeddings\": false,\n"
             "  \"vene_bench_seed\": %d\n}\n",
             LL_L, LL_D, LL_H, LL_KV, LL_HD, LL_F, LL_V, LL_CTX, LL_SEED);
    if (bench_write_text_(path, cfg)) return vene_errorf(err, VENE_ERR_IO, "%s: cannot write", path);
    bench_rng rng = {(uint64_t)LL_SEED, 0, 0.0f};
    st_writer *w = st_writer_new();
    if (!w) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    const int64_t D = LL_D, Q = LL_H * LL_HD, KV = LL_KV * LL_HD, F = LL_F;
    int rc = bench_add_tensor_(w, "model.embed_tokens.weight", 2, LL_V, D, 2, &rng, err);
    for (int l = 0; l < LL_L && !rc; l++) {
        const struct { const char *sfx; int ndim; int64_t a, b; int kind; } t[] = {
            {"input_layernorm.weight", 1, D, 0, 1},   {"self_attn.q_proj.weight", 2, Q, D, 2},
            {"self_attn.k_proj.weight", 2, KV, D, 2}, {"self_attn.v_proj.weight", 2, KV, D, 2},
            {"self_attn.o_proj.weight", 2, D, Q, 2},  {"post_attention_layernorm.weight", 1, D, 0, 1},
            {"mlp.gate_proj.weight", 2, F, D, 2},     {"mlp.up_proj.weight", 2, F, D, 2},
            {"mlp.down_proj.weight", 2, D, F, 2},
        };
        for (size_t i = 0; i < sizeof t / sizeof t[0] && !rc; i++) {
            snprintf(name, sizeof name, "model.layers.%d.%s", l, t[i].sfx);
            rc = bench_add_tensor_(w, name, t[i].ndim, t[i].a, t[i].b, t[i].kind, &rng, err);
        }
    }
    if (!rc) rc = bench_add_tensor_(w, "model.norm.weight", 1, D, 0, 1, &rng, err);
    if (!rc) rc = bench_add_tensor_(w, "lm_head.weight", 2, LL_V, D, 2, &rng, err);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!rc) rc = st_writer_save(w, path, err);
    st_writer_free(w);
    return rc;
}

static int llama_ok(const char *dir) {
    if (!bench_seed_ok_(dir, LL_SEED)) return 0;
    vene_model *m = NULL;
    if (vene_model_load(dir, NULL, &m, NULL) != VENE_OK) return 0;
    vene_model_info info;
    vene_model_get_info(m, &info);
    int ok = info.n_layer == LL_L && info.d_model == LL_D && info.vocab_size == LL_V && info.n_params == LL_PARAMS &&
             info.has_lm_head;
    vene_model_free(m);
    return ok;
}

/* FLOPs of a B x S forward: every projection and the head (2 per multiply-add), and
 * attention's two products as computed (full S x S per head, then causally masked). */
static double forward_flops(int B, int S) {
    double T = (double)B * S, D = LL_D, Q = LL_H * LL_HD, KV = LL_KV * LL_HD, F = LL_F;
    double per_layer = D * Q + 2 * D * KV + Q * D + 3 * D * F;
    return 2.0 * T * (LL_L * per_layer + (double)LL_V * D) + LL_L * 4.0 * B * (double)S * S * Q;
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    const char *dir = bench_model_folder("VENE_BENCH_LLAMA", LL_DIR, "Llama 125M (about 500 MB)", write_llama, llama_ok);
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
