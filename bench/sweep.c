/* Sweep benchmark: ROME's block_output restore sweep, 12 layers x 16 positions, on GPT-2
 * 124M (random weights): a 16-token prompt whose first four "subject" tokens get pyvene's
 * NoiseIntervention, and each cell restores one (layer, position) of block_output from
 * the clean run, scored at the last position.
 *
 *   naive   one vene_intervenable_forward per cell, pyvene's way: a source pass that
 *           stops after the restored layer, then the noised and restored base pass
 *   reuse   vene_sweep: both runs once, each cell resumed after its layer over its
 *           position onwards, all cells batched layer by layer
 *
 * at 1 and 2 threads, with the machine's sgemm rate measured in the same run, the floor
 * that rate sets for the sweep's products (the flops it cannot avoid), and optionally the
 * same sweep as a plain PyTorch hook loop (bench/sweep_torch.py, Debian's python3-torch).
 *
 * Usage: bench_sweep [--quick] [--no-torch]   (--quick: naive on 2 layers, extrapolated)
 *        bench_sweep --loop THREADS N         (N reuse sweeps and nothing else: for perf)
 * The PyTorch loop times the cells of 2 layers (1 with --quick) and scales to 12: each of
 * its cells is the same full forward. */
#include "common.h"

#define SEQ 16
#define SUBJ 4

typedef struct ctx {
    vene_model *m;
    vene_model_info info;
    int32_t ids[SEQ];
    double noise[SUBJ * 1024];
    float level;
    vene_sweep_run runs[2];
    vene_sweep_cell *cells;
    int n_cells, pos[SEQ], subj[SUBJ], answer;
    float *probs;     /* p(answer) per cell */
    vene_sweep_stats st;
} ctx;

static double p_answer(const float *lg, int V, int answer) {
    double mx = lg[0], s = 0;
    for (int v = 1; v < V; v++) mx = lg[v] > mx ? lg[v] : mx;
    for (int v = 0; v < V; v++) s += exp((double)lg[v] - mx);
    return exp((double)lg[answer] - mx) / s;
}

static int keep(void *user, int cell, const float *lg, vene_error *err) {
    (void)err;
    ctx *c = user;
    if (cell >= 0) c->probs[cell] = (float)p_answer(lg, c->info.vocab_size, c->answer);
    return VENE_OK;
}

static int run_reuse(void *user) {
    ctx *c = user;
    vene_error err = {0};
    vene_sweep_params p = {.on_logits = keep, .user = c};
    int rc = vene_sweep(c->m, c->runs, 2, c->cells, c->n_cells, &p, &c->st, &err);
    if (rc) fprintf(stderr, "sweep: %s\n", err.msg);
    return rc;
}

/* Cells layer_lo .. layer_hi - 1, one intervened forward each; probs into out. */
static double run_naive(ctx *c, int layer_lo, int layer_hi, float *out) {
    vene_error err = {0};
    const int D = c->info.d_model;
    float *nz = malloc(sizeof(float) * SUBJ * D);
    for (int i = 0; i < SUBJ * D; i++) nz[i] = (float)c->noise[i];
    vene_tensor tn = {nz, 3, {1, SUBJ, D}}, tl = {&c->level, 0, {0}};
    vene_batch base = {1, SEQ, c->ids, NULL, NULL, NULL};
    const vene_batch *sources[2] = {NULL, &base};
    double t0 = bench_now();
    for (int l = layer_lo; l < layer_hi; l++) {
        char cfg[400];
        snprintf(cfg, sizeof cfg, "[{\"layer\": 0, \"component\": \"block_input\", \"intervention_type\": "
                 "\"NoiseIntervention\"}, {\"layer\": %d, \"component\": \"block_output\"}]", l);
        vene_intervenable *iv = NULL;
        if (vene_intervenable_new(c->m, cfg, &iv, &err) || vene_intervenable_set_param(iv, 0, "noise", &tn, &err) ||
            vene_intervenable_set_param(iv, 0, "noise_level", &tl, &err))
            bench_die("naive setup", &err);
        for (int p = 0; p < SEQ; p++) {
            char ul[200];
            snprintf(ul, sizeof ul, "{\"sources->base\": [[null, [[%d]]], [[[0, 1, 2, 3]], [[%d]]]]}", p, p);
            vene_call call = {.base = &base, .sources = sources, .n_sources = 2, .unit_locations = ul};
            if (vene_intervenable_forward(iv, &call, &err)) bench_die("naive cell", &err);
            const vene_tensor *lg = vene_intervenable_logits(iv, 1);
            out[l * SEQ + p] = (float)p_answer(lg->data + (size_t)(SEQ - 1) * c->info.vocab_size, c->info.vocab_size, c->answer);
        }
        vene_intervenable_free(iv);
    }
    double t = bench_now() - t0;
    free(nz);
    return t;
}

/* The PyTorch hook loop, when Debian's torch is there: seconds, or -1. */
static double torch_sweep(int threads, int layers) {
    char cmd[1200], dir[1024];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    if (slash) *slash = '\0';
    else snprintf(dir, sizeof dir, ".");
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s/sweep_torch.py' %d %d 2>&1", dir, threads, layers);
    FILE *f = access("/usr/bin/python3", X_OK) == 0 && system("/usr/bin/python3 -c 'import torch' 2>/dev/null") == 0
                  ? popen(cmd, "r") : NULL;
    if (!f) return -1;
    char line[512];
    double secs = -1;
    while (fgets(line, sizeof line, f)) {
        if (sscanf(line, "TORCH_SWEEP_SECONDS %lf", &secs) != 1) printf("  torch: %s", line);
    }
    pclose(f);
    return secs;
}

int main(int argc, char **argv) {
    int quick = 0, no_torch = 0;
    for (int i = 1; i < argc; i++) quick |= !strcmp(argv[i], "--quick"), no_torch |= !strcmp(argv[i], "--no-torch");
    int loop = argc > 3 && !strcmp(argv[1], "--loop");
    ctx c;
    memset(&c, 0, sizeof c);
    const char *dir;
    c.m = bench_load_gpt2(&c.info, &dir);
    const int L = c.info.n_layer, D = c.info.d_model;
    if (D > 1024) bench_die("bench model wider than 1024", NULL);
    bench_fill_ids(c.ids, SEQ, 5, c.info.vocab_size);
    c.answer = 262; /* any token: the timing does not depend on it */
    /* seeded Gaussian noise at the default NoiseIntervention level (values do not change the timing) */
    bench_rng rng = {1, 0, 0.0f};
    for (int i = 0; i < SUBJ * D; i++) c.noise[i] = bench_rng_normal(&rng);
    c.level = 0.13462981581687927f;
    for (int i = 0; i < SUBJ; i++) c.subj[i] = i;
    c.runs[0] = (vene_sweep_run){.ids = c.ids, .len = SEQ};
    c.runs[1] = (vene_sweep_run){c.ids, SEQ, c.subj, SUBJ, c.noise, c.level};
    c.n_cells = L * SEQ;
    c.cells = malloc(sizeof *c.cells * (size_t)c.n_cells);
    c.probs = malloc(sizeof(float) * (size_t)c.n_cells);
    for (int p = 0; p < SEQ; p++) c.pos[p] = p;
    for (int l = 0; l < L; l++)
        for (int p = 0; p < SEQ; p++) c.cells[l * SEQ + p] = (vene_sweep_cell){1, 0, "block_output", l, 1, &c.pos[p], 1, -1};

    if (loop) {
        bench_set_threads(atoi(argv[2]));
        for (int i = 0, n = atoi(argv[3]); i < n; i++)
            if (run_reuse(&c)) return 1;
        return 0;
    }
    int ncpu = bench_cpu_count();
    printf("vene sweep benchmark: ROME block_output restore, %d layers x %d positions = %d cells, GPT-2 124M shapes\n"
           "(random weights, %s), noise on the first %d tokens, p(answer) at the last position; %d CPUs\n",
           L, SEQ, c.n_cells, dir, SUBJ, ncpu);
    bench_note_load("at start", 1);

    int threads[2] = {1, ncpu >= 2 ? 2 : 1};
    double reuse_ms[2], reuse_cpu[2], naive_s[2], sg[2];
    float *naive_p = malloc(sizeof(float) * (size_t)c.n_cells);
    double worst = 0;
    for (int k = 0; k < 2; k++) {
        bench_set_threads(threads[k]);
        reuse_ms[k] = bench_median_ms(1, quick ? 3 : 5, run_reuse, &c, &reuse_cpu[k]);
        /* naive: every cell (or two layers' worth with --quick, scaled up) */
        int hi = quick ? 2 : L;
        double t = run_naive(&c, 0, hi, naive_p);
        naive_s[k] = t * L / hi;
        for (int i = 0; i < hi * SEQ; i++) {
            double d = fabs((double)naive_p[i] - c.probs[i]) / fmax(1e-30, fabs((double)naive_p[i]));
            worst = d > worst ? d : worst;
        }
        sg[k] = bench_sgemm_peak(threads[k]);
    }
    double torch_s[2] = {-1, -1};
    if (!no_torch) {
        for (int k = 0; k < 2; k++) torch_s[k] = torch_sweep(threads[k], quick ? 1 : 2);
        if (torch_s[0] < 0) printf("PyTorch hook loop skipped: /usr/bin/python3 with torch not found\n");
    }

    /* the flops of the reuse sweep's products: units x (4 D^2 + 2 D F) multiply-adds, the last
     * layer's query-key-value product alone for kv_units, the head on one row per cell and run */
    const double F = c.info.d_ff, V = c.info.vocab_size;
    double per_unit = 2.0 * (4.0 * D * D + 2.0 * D * F);
    double flops = c.st.units * per_unit + c.st.kv_units * 2.0 * 3.0 * D * D + 2.0 * D * V * (c.n_cells + 2);
    double naive_flops = c.st.naive_units * per_unit + 2.0 * D * V * SEQ * c.n_cells;
    printf("\nwork: %lld of %lld position-layers recomputed (%.3f of one full forward per cell; %lld more positions of\n"
           "      the last layer through their keys and values only), %d chunk(s), %d forwards,\n"
           "      %.1f GFLOP (naive cell-by-cell base passes: %.1f GFLOP, source passes not counted)\n",
           (long long)c.st.units, (long long)c.st.naive_units, (double)c.st.units / c.st.naive_units, (long long)c.st.kv_units, c.st.chunks,
           c.st.forwards, flops / 1e9, naive_flops / 1e9);
    printf("agreement: reuse vs naive p(answer), worst relative difference %.3g over %d cells\n", worst,
           quick ? 2 * SEQ : c.n_cells);
    printf("\n%7s %10s %10s %9s %10s %9s %11s %10s %6s\n", "threads", "reuse-ms", "naive-s", "speedup", "sgemm-GF/s",
           "floor-ms", "reuse/floor", "torch-s", "cpu");
    for (int k = 0; k < 2; k++) {
        double floor_ms = 1e3 * flops / (sg[k] * 1e9);
        char ts[32];
        if (torch_s[k] >= 0) snprintf(ts, sizeof ts, "%.2f", torch_s[k]);
        else snprintf(ts, sizeof ts, "-");
        printf("%7d %10.1f %10.2f %9.1f %10.1f %9.1f %11.2f %10s %6.2f%s\n", threads[k], reuse_ms[k], naive_s[k],
               1e3 * naive_s[k] / reuse_ms[k], sg[k], floor_ms, reuse_ms[k] / floor_ms, ts, reuse_cpu[k],
               reuse_cpu[k] < 0.85 * threads[k] ? "*" : "");
    }
    printf("* cpu (process CPU time / wall time while timing) well below the thread count: other processes\n"
           "  held the CPUs, so that row is pessimistic.\n"
           "floor-ms = the sweep's unavoidable flops at the machine's sgemm rate measured above.\n");
    bench_note_load("at end (includes this benchmark)", 0);
    printf("\n");
    int b = 1;
    bench_line("sweep_reuse_1t_ms", reuse_ms[0], "ms");
    bench_line("sweep_reuse_2t_ms", reuse_ms[b], "ms");
    bench_line("sweep_naive_2t_s", naive_s[b], "s");
    bench_line("sweep_speedup_2t", 1e3 * naive_s[b] / reuse_ms[b], "x");
    bench_line("sweep_reuse_over_floor_2t", reuse_ms[b] / (1e3 * flops / (sg[b] * 1e9)), "ratio");
    bench_line("sweep_work_ratio", (double)c.st.units / c.st.naive_units, "ratio");
    bench_line("sweep_sgemm_2t_gflops", sg[b], "GFLOP/s");
    bench_line("sweep_agreement_worst_rel_x1e6", worst * 1e6, "1e-6");
    if (torch_s[b] >= 0) bench_line("sweep_torch_over_reuse_2t", 1e3 * torch_s[b] / reuse_ms[b], "x");
    free(naive_p);
    free(c.cells);
    free(c.probs);
    vene_model_free(c.m);
    return 0;
}
