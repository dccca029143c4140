/* Shared helpers for the benchmarks in bench/: wall-clock timing (median of N runs after
 * warm-up), thread control for OpenBLAS and OpenMP, the machine's own yardsticks measured
 * in the same run (sgemm GFLOP/s, streaming-read memory bandwidth), peak RSS, and a
 * GPT-2 124M-shaped model folder with random weights (written once, then reused).
 *
 * Header-only: every function is static inline, so each benchmark program includes what
 * it uses without unused-function warnings. */
#ifndef VENE_BENCH_COMMON_H
#define VENE_BENCH_COMMON_H

#include <cblas.h>
#include <cjson/cJSON.h>
#include <errno.h>
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "core/error.h"
#include "io/safetensors.h"
#include "vene.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* Where the random GPT-2 124M folder lives between runs (override: VENE_BENCH_MODEL). */
#define BENCH_GPT2_DIR "/tmp/vene-bench-gpt2-124m"
/* Written into config.json so a folder of someone else's is never mistaken for ours. */
#define BENCH_GPT2_SEED 20240601

/* ---------------------------------------------------------------- failure */

static inline void bench_die(const char *what, const vene_error *err) {
    fprintf(stderr, "bench: %s%s%s\n", what, err && err->msg[0] ? ": " : "", err ? err->msg : "");
    exit(1);
}

/* ---------------------------------------------------------------- timing */

static inline double bench_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static inline int bench_cmp_double_(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Median of n values (the array is sorted in place). */
static inline double bench_median(double *v, int n) {
    qsort(v, (size_t)n, sizeof *v, bench_cmp_double_);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* A timed body: returns 0 on success (anything else aborts the benchmark). */
typedef int (*bench_fn)(void *user);

static inline double bench_cpu_seconds_(void) {
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Median milliseconds of `reps` calls of fn after `warmup` untimed calls. When cpu_share
 * is given it receives the process CPU time over the timed calls divided by their wall
 * time: about the thread count on an idle machine (worker threads spin while waiting),
 * clearly less when other processes took the CPUs. */
static inline double bench_median_ms(int warmup, int reps, bench_fn fn, void *user, double *cpu_share) {
    for (int i = 0; i < warmup; i++)
        if (fn(user)) bench_die("timed body failed during warm-up", NULL);
    double *t = malloc(sizeof(double) * (size_t)reps);
    if (!t) bench_die("out of memory", NULL);
    double c0 = bench_cpu_seconds_(), w0 = bench_now();
    for (int i = 0; i < reps; i++) {
        double t0 = bench_now();
        if (fn(user)) bench_die("timed body failed", NULL);
        t[i] = 1e3 * (bench_now() - t0);
    }
    if (cpu_share) *cpu_share = (bench_cpu_seconds_() - c0) / (bench_now() - w0);
    double m = bench_median(t, reps);
    free(t);
    return m;
}

/* ---------------------------------------------------------------- threads */

/* The library's thread count is OpenMP's: it runs BLAS single-threaded and splits large
 * products over OpenMP threads itself (src/core/kernels.c). */
static inline void bench_set_threads(int n) {
    openblas_set_num_threads(1);
    omp_set_num_threads(n);
}

static inline int bench_cpu_count(void) {
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

/* ---------------------------------------------------------------- yardsticks */

static inline void bench_fill_(float *p, size_t n, uint32_t seed) {
    uint32_t s = seed * 2654435761u + 1u;
    for (size_t i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        p[i] = (float)(s >> 8) * (1.0f / 16777216.0f) - 0.5f;
    }
}

/* Best-of-`reps` GFLOP/s of C[M x N] = A[M x K] * B[K x N] (row-major, no transpose)
 * with the current thread setting. */
static inline double bench_sgemm_gflops(int M, int N, int K, int reps) {
    float *A = malloc(sizeof(float) * (size_t)M * K), *B = malloc(sizeof(float) * (size_t)K * N),
          *C = malloc(sizeof(float) * (size_t)M * N);
    if (!A || !B || !C) bench_die("out of memory (sgemm yardstick)", NULL);
    bench_fill_(A, (size_t)M * K, 1);
    bench_fill_(B, (size_t)K * N, 2);
    memset(C, 0, sizeof(float) * (size_t)M * N);
    double flops = 2.0 * M * N * K, best = 0;
    /* at least ~0.2 s of work per measurement so short shapes are not timer noise */
    int inner = (int)(2e9 / flops) + 1;
    openblas_set_num_threads(omp_get_max_threads()); /* the yardstick is plain threaded BLAS */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
    for (int r = 0; r < reps; r++) {
        double t0 = bench_now();
        for (int i = 0; i < inner; i++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, M, N, K, 1.0f, A, K, B, N, 0.0f, C, N);
        double g = flops * inner / (bench_now() - t0) / 1e9;
        if (g > best) best = g;
    }
    openblas_set_num_threads(1);
    free(A);
    free(B);
    free(C);
    return best;
}

/* The machine's sgemm rate: best over two large representative shapes (GPT-2's MLP
 * up-projection at 512 tokens, and a square 2048 product). */
static inline double bench_sgemm_peak(int threads) {
    bench_set_threads(threads);
    double a = bench_sgemm_gflops(512, 3072, 768, 5);
    double b = bench_sgemm_gflops(2048, 2048, 2048, 3);
    return a > b ? a : b;
}

/* Sum of a buffer with wide loads and several accumulators (the result is used so the
 * compiler keeps the loop). */
static inline double bench_read_sum_(const float *p, size_t n) {
#if defined(__SSE2__)
    __m128 s0 = _mm_setzero_ps(), s1 = s0, s2 = s0, s3 = s0;
    const size_t blocks = n / 16;
    for (size_t k = 0; k < blocks; k++) {
        const float *q = p + 16 * k;
        s0 = _mm_add_ps(s0, _mm_load_ps(q));
        s1 = _mm_add_ps(s1, _mm_load_ps(q + 4));
        s2 = _mm_add_ps(s2, _mm_load_ps(q + 8));
        s3 = _mm_add_ps(s3, _mm_load_ps(q + 12));
    }
    float o[4];
    _mm_storeu_ps(o, _mm_add_ps(_mm_add_ps(s0, s1), _mm_add_ps(s2, s3)));
    double s = (double)o[0] + o[1] + o[2] + o[3];
    for (size_t i = 16 * blocks; i < n; i++) s += p[i];
    return s;
#else
    float a[8] = {0};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++) a[k] += p[i + k];
    double s = 0;
    for (int k = 0; k < 8; k++) s += a[k];
    for (; i < n; i++) s += p[i];
    return s;
#endif
}

typedef struct bench_bw {
    double read_gbs;    /* streaming read, GB/s (1e9 bytes), with `threads` OpenMP threads */
    double memcpy_gbs;  /* memcpy, bytes read + bytes written per second, one thread */
} bench_bw;

/* Memory bandwidth on a 512 MiB buffer (16x the last-level cache of most machines),
 * best of `reps`. */
static inline bench_bw bench_mem_bandwidth(int threads, int reps) {
    const size_t bytes = (size_t)512 << 20, n = bytes / sizeof(float);
    float *a = NULL, *b = NULL;
    if (posix_memalign((void **)&a, 64, bytes) || posix_memalign((void **)&b, 64, bytes))
        bench_die("out of memory (bandwidth yardstick)", NULL);
    bench_fill_(a, n, 3);
    memset(b, 0, bytes);
    bench_bw r = {0, 0};
    volatile double sink = 0;
    for (int k = 0; k < reps; k++) {
        double t0 = bench_now(), s = 0;
#pragma omp parallel for num_threads(threads) reduction(+ : s) schedule(static)
        for (int c = 0; c < 64; c++) s += bench_read_sum_(a + (size_t)c * (n / 64), n / 64);
        double g = (double)bytes / (bench_now() - t0) / 1e9;
        sink += s;
        if (g > r.read_gbs) r.read_gbs = g;
        t0 = bench_now();
        memcpy(b, a, bytes);
        g = 2.0 * (double)bytes / (bench_now() - t0) / 1e9;
        sink += b[n / 2];
        if (g > r.memcpy_gbs) r.memcpy_gbs = g;
    }
    (void)sink;
    free(a);
    free(b);
    return r;
}

/* ---------------------------------------------------------------- memory */

/* Peak resident set size of this process so far, bytes (Linux reports KiB). Mapped file
 * pages that were touched (the weights are mmapped) count as resident. */
static inline double bench_peak_rss_bytes(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_maxrss * 1024.0;
}

/* Current resident set size, bytes (from /proc/self/statm; 0 when unavailable). */
static inline double bench_rss_bytes(void) {
    FILE *f = fopen("/proc/self/statm", "r");
    if (!f) return 0;
    long size = 0, res = 0;
    int ok = fscanf(f, "%ld %ld", &size, &res) == 2;
    fclose(f);
    return ok ? (double)res * (double)sysconf(_SC_PAGESIZE) : 0;
}

/* ---------------------------------------------------------------- random GPT-2 124M */

enum { BENCH_L = 12, BENCH_D = 768, BENCH_H = 12, BENCH_CTX = 1024, BENCH_V = 50257 };

/* Parameters of the bench model (wte tied with the LM head, counted once). */
#define BENCH_GPT2_PARAMS                                                                             \
    ((int64_t)BENCH_V * BENCH_D + (int64_t)BENCH_CTX * BENCH_D + 2 * BENCH_D +                        \
     (int64_t)BENCH_L * (4 * BENCH_D + (int64_t)BENCH_D * 3 * BENCH_D + 3 * BENCH_D +                 \
                         (int64_t)BENCH_D * BENCH_D + BENCH_D + (int64_t)BENCH_D * 4 * BENCH_D +     \
                         4 * BENCH_D + (int64_t)4 * BENCH_D * BENCH_D + BENCH_D))

typedef struct bench_rng {
    uint64_t s;
    int has_spare;
    float spare;
} bench_rng;

static inline uint64_t bench_rng_u64(bench_rng *r) { /* splitmix64 */
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Standard normal (Box-Muller, both values used). */
static inline float bench_rng_normal(bench_rng *r) {
    if (r->has_spare) {
        r->has_spare = 0;
        return r->spare;
    }
    double u1 = ((double)(bench_rng_u64(r) >> 11) + 1.0) * (1.0 / 9007199254740993.0); /* (0, 1] */
    double u2 = (double)(bench_rng_u64(r) >> 11) * (1.0 / 9007199254740992.0);
    double rad = sqrt(-2.0 * log(u1)), th = 6.283185307179586 * u2;
    r->spare = (float)(rad * sin(th));
    r->has_spare = 1;
    return (float)(rad * cos(th));
}

static inline int bench_add_tensor_(st_writer *w, const char *name, int ndim, int64_t a, int64_t b, int kind,
                                    bench_rng *rng, vene_error *err) {
    int64_t shape[2] = {a, b}, n = ndim == 1 ? a : a * b;
    float *p = malloc(sizeof(float) * (size_t)n);
    if (!p) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory (%s)", name);
    for (int64_t i = 0; i < n; i++) p[i] = kind == 0 ? 0.0f : kind == 1 ? 1.0f : 0.02f * bench_rng_normal(rng);
    int rc = st_writer_add(w, name, ST_F32, ndim, shape, p, err);
    free(p);
    return rc;
}

static inline int bench_write_text_(const char *path, const char *text) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t n = strlen(text);
    int ok = fwrite(text, 1, n, f) == n;
    return (fclose(f) == 0 && ok) ? 0 : -1;
}

/* Write config.json and model.safetensors of the bench model into dir (which exists). */
static inline int bench_write_gpt2_(const char *dir, vene_error *err) {
    char path[4096], name[128];
    snprintf(path, sizeof path, "%s/config.json", dir);
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\n  \"model_type\": \"gpt2\",\n  \"architectures\": [\"GPT2LMHeadModel\"],\n"
             "  \"n_layer\": %d,\n  \"n_embd\": %d,\n  \"n_head\": %d,\n  \"n_positions\": %d,\n"
             "  \"n_ctx\": %d,\n  \"vocab_size\": %d,\n  \"activation_function\": \"gelu_new\",\n"
             "  \"layer_norm_epsilon\": 1e-05,\n  \"vene_bench_seed\": %d\n}\n",
             BENCH_L, BENCH_D, BENCH_H, BENCH_CTX, BENCH_CTX, BENCH_V, BENCH_GPT2_SEED);
    if (bench_write_text_(path, cfg)) return vene_errorf(err, VENE_ERR_IO, "%s: cannot write", path);
    bench_rng rng = {(uint64_t)BENCH_GPT2_SEED, 0, 0.0f};
    st_writer *w = st_writer_new();
    if (!w) return vene_errorf(err, VENE_ERR_MEMORY, "out of memory");
    const int64_t D = BENCH_D;
    int rc = bench_add_tensor_(w, "transformer.wte.weight", 2, BENCH_V, D, 2, &rng, err);
    if (!rc) rc = bench_add_tensor_(w, "transformer.wpe.weight", 2, BENCH_CTX, D, 2, &rng, err);
    for (int l = 0; l < BENCH_L && !rc; l++) {
        static const struct { const char *sfx; int ndim; int64_t a, b; int kind; } t[] = {
            {"ln_1.weight", 1, 1, 0, 1},          {"ln_1.bias", 1, 1, 0, 0},
            {"attn.c_attn.weight", 2, 1, 3, 2},   {"attn.c_attn.bias", 1, 3, 0, 0},
            {"attn.c_proj.weight", 2, 1, 1, 2},   {"attn.c_proj.bias", 1, 1, 0, 0},
            {"ln_2.weight", 1, 1, 0, 1},          {"ln_2.bias", 1, 1, 0, 0},
            {"mlp.c_fc.weight", 2, 1, 4, 2},      {"mlp.c_fc.bias", 1, 4, 0, 0},
            {"mlp.c_proj.weight", 2, 4, 1, 2},    {"mlp.c_proj.bias", 1, 1, 0, 0},
        };
        for (size_t i = 0; i < sizeof t / sizeof t[0] && !rc; i++) {
            snprintf(name, sizeof name, "transformer.h.%d.%s", l, t[i].sfx);
            rc = bench_add_tensor_(w, name, t[i].ndim, t[i].a * D, t[i].b * D, t[i].kind, &rng, err);
        }
    }
    if (!rc) rc = bench_add_tensor_(w, "transformer.ln_f.weight", 1, D, 0, 1, &rng, err);
    if (!rc) rc = bench_add_tensor_(w, "transformer.ln_f.bias", 1, D, 0, 0, &rng, err);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (!rc) rc = st_writer_save(w, path, err);
    st_writer_free(w);
    return rc;
}

/* Does dir/config.json carry our marker `seed`? */
static inline int bench_seed_ok_(const char *dir, int seed) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cJSON *c = cJSON_Parse(buf);
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(c, "vene_bench_seed");
    int ok = cJSON_IsNumber(v) && v->valueint == seed;
    cJSON_Delete(c);
    return ok;
}

/* Is dir our bench model? (config.json carries our marker and loads as 124M GPT-2.) */
static inline int bench_gpt2_ok_(const char *dir) {
    if (!bench_seed_ok_(dir, BENCH_GPT2_SEED)) return 0;
    vene_model *m = NULL;
    if (vene_model_load(dir, NULL, &m, NULL) != VENE_OK) return 0;
    vene_model_info info;
    vene_model_get_info(m, &info);
    int ok = info.n_layer == BENCH_L && info.d_model == BENCH_D && info.n_head == BENCH_H && info.vocab_size == BENCH_V &&
             info.n_ctx == BENCH_CTX && info.n_params == BENCH_GPT2_PARAMS && info.has_lm_head;
    vene_model_free(m);
    return ok;
}

static inline void bench_rm_folder_(const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    unlink(path);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

/* A random-weight bench model folder: `env` (an environment variable naming another
 * folder) if set, else `dir`, written there by `write` (in a child process, so the ~1 GB
 * the writer holds never shows in this process's peak RSS) unless `ok` accepts what is
 * already there. */
static inline const char *bench_model_folder(const char *env_name, const char *dir, const char *what,
                                             int (*write)(const char *, vene_error *), int (*ok)(const char *)) {
    const char *env = getenv(env_name);
    if (env && *env) return env;
    if (ok(dir)) return dir;
    fprintf(stderr, "bench: writing a random-weight %s into %s (once)...\n", what, dir);
    fflush(NULL);
    double t0 = bench_now();
    pid_t pid = fork();
    if (pid < 0) bench_die("fork failed", NULL);
    if (pid == 0) {
        char tmp[2048];
        snprintf(tmp, sizeof tmp, "%s.tmpXXXXXX", dir);
        if (!mkdtemp(tmp)) _exit(2);
        vene_error err = {0};
        if (write(tmp, &err) != VENE_OK) {
            fprintf(stderr, "bench: %s\n", err.msg);
            bench_rm_folder_(tmp);
            _exit(1);
        }
        chmod(tmp, 0755);
        bench_rm_folder_(dir); /* a stale or foreign-but-ours-by-name folder */
        if (rename(tmp, dir) != 0) {
            fprintf(stderr, "bench: rename %s -> %s: %s\n", tmp, dir, strerror(errno));
            bench_rm_folder_(tmp);
            _exit(1);
        }
        _exit(0);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        bench_die("writing the bench model failed", NULL);
    if (!ok(dir)) bench_die("the bench model just written does not load as expected", NULL);
    fprintf(stderr, "bench: model written in %.1f s\n", bench_now() - t0);
    return dir;
}

/* The folder of the random-weight GPT-2 124M model (VENE_BENCH_MODEL overrides). */
static inline const char *bench_gpt2_dir(void) {
    return bench_model_folder("VENE_BENCH_MODEL", BENCH_GPT2_DIR, "GPT-2 124M (about 500 MB)", bench_write_gpt2_,
                              bench_gpt2_ok_);
}

/* The bench GPT-2 loaded (the caller frees it), its info into *info, its folder into *dir. */
static inline vene_model *bench_load_gpt2(vene_model_info *info, const char **dir) {
    const char *d = bench_gpt2_dir();
    vene_error err = {0};
    vene_model *m = NULL;
    if (vene_model_load(d, NULL, &m, &err)) bench_die("loading the bench model", &err);
    vene_model_get_info(m, info);
    if (dir) *dir = d;
    return m;
}

/* A plain forward as a timed body (bench_fn): user is a bench_fwd. */
typedef struct bench_fwd {
    vene_run *rs;
    vene_batch batch;
} bench_fwd;

static inline int bench_run_forward(void *user) {
    bench_fwd *c = user;
    vene_error err = {0};
    int rc = vene_forward(c->rs, &c->batch, &err);
    if (rc) fprintf(stderr, "forward: %s\n", err.msg);
    return rc;
}

/* Deterministic token ids in [0, vocab). */
static inline void bench_fill_ids(int32_t *ids, int n, uint32_t seed, int vocab) {
    uint32_t s = seed * 747796405u + 2891336453u;
    for (int i = 0; i < n; i++) {
        s = s * 1664525u + 1013904223u;
        ids[i] = (int32_t)((s >> 8) % (uint32_t)vocab);
    }
}

/* ---------------------------------------------------------------- reporting */

/* 1-minute load average (-1 when unknown). The machine may be shared: a load well above
 * the benchmark's own threads means the figures are pessimistic. */
static inline double bench_loadavg(void) {
    double l[1];
    return getloadavg(l, 1) == 1 ? l[0] : -1.0;
}

static inline void bench_note_load(const char *when, int warn) {
    double l = bench_loadavg();
    int n = bench_cpu_count();
    printf("load average (1 min) %s: %.2f on %d CPUs%s\n", when, l, n,
           warn && l > n - 0.5 ? "  <- other work is running: figures are pessimistic" : "");
}

/* The closing lines: one per headline figure, "BENCH <name> <value> <unit>". */
static inline void bench_line(const char *name, double value, const char *unit) {
    double a = fabs(value);
    int prec = a == floor(a) && a < 1e9 ? 0 : a >= 100 ? 1 : a >= 1 ? 2 : 3;
    printf("BENCH %s %.*f %s\n", name, prec, value, unit);
}

#endif
