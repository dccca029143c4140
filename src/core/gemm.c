#include "core/gemm.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define VK_X86 1
#define VK_AVX2 __attribute__((target("avx2,fma")))
#define VK_TILE static inline __attribute__((always_inline, target("avx2,fma")))
#endif

/* Blocking: a slice of KC weight rows x NC columns (192 KB) stays in L2 while blocks of
 * MC rows of x pass over it; its rows are copied in runs of NC floats, long enough for the
 * hardware prefetchers to stream them (KC = 256 x NC = 192 was 25% slower on a 16-token
 * forward at one thread). Partial sums go through `out` between slices, which is exact,
 * so the blocking never changes a result. */
#define KC 64
#define NC 768
#define MC 64

static int64_t at(int64_t i, int ld) { return i * (int64_t)ld; }

/* ---------------------------------------------------------------- portable */

static void nn_portable(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo,
                        int M, int K, int j0, int j1) {
    for (int i = 0; i < M; i++)
        for (int j = j0; j < j1; j++) {
            float s = 0.0f;
            for (int k = 0; k < K; k++) s = fmaf(x[at(i, ldx) + k], W[at(k, ldw) + j], s);
            out[at(i, ldo) + j] = bias ? s + bias[j] : s;
        }
}

static float nt_dot_portable(const float *x, const float *w, int K) {
    const int K8 = K & ~7;
    float p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (int k = 0; k < K8; k += 8)
        for (int l = 0; l < 8; l++) p[l] = fmaf(x[k + l], w[k + l], p[l]);
    const float a = p[0] + p[4], b = p[2] + p[6], c = p[1] + p[5], d = p[3] + p[7];
    const float ab = a + b, cd = c + d;
    float r = ab + cd;
    for (int k = K8; k < K; k++) r = fmaf(x[k], w[k], r);
    return r;
}

static void nt_portable(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo,
                        int M, int K, int j0, int j1) {
    for (int i = 0; i < M; i++)
        for (int j = j0; j < j1; j++) {
            float r = nt_dot_portable(x + at(i, ldx), W + at(j, ldw), K);
            out[at(i, ldo) + j] = bias ? r + bias[j] : r;
        }
}

#ifdef VK_X86
/* ---------------------------------------------------------------- AVX2 + FMA */

/* mr rows x nv vectors of 8 columns over kc steps; x is packed (row r of step k at
 * x[k * mr + r]); first: start from 0, else from out; last: add the bias. mr and nv are
 * constants at every call, so acc lives in registers. */
VK_TILE void nn_tile(const int mr, const int nv, const float *x, const float *W, int ldw, const float *bias,
                     float *out, int ldo, int kc, int first, int last) {
    __m256 acc[4][8];
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) acc[r][v] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(out + at(r, ldo) + 8 * v);
#pragma GCC unroll 4
    for (int k = 0; k < kc; k++) {
        __m256 b[8];
        const float *wk = W + at(k, ldw);
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) b[v] = _mm256_loadu_ps(wk + 8 * v);
#pragma GCC unroll 4
        for (int r = 0; r < mr; r++) {
            const __m256 a = _mm256_broadcast_ss(x + k * mr + r);
#pragma GCC unroll 8
            for (int v = 0; v < nv; v++) acc[r][v] = _mm256_fmadd_ps(a, b[v], acc[r][v]);
        }
    }
    if (last && bias) {
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) {
            const __m256 bb = _mm256_loadu_ps(bias + 8 * v);
#pragma GCC unroll 4
            for (int r = 0; r < mr; r++) acc[r][v] = _mm256_add_ps(acc[r][v], bb);
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < mr; r++)
#pragma GCC unroll 8
        for (int v = 0; v < nv; v++) _mm256_storeu_ps(out + at(r, ldo) + 8 * v, acc[r][v]);
}

#define NN_CASE(MR, NV)                                                                                      \
    case MR * 16 + NV:                                                                                       \
        nn_tile(MR, NV, x, W, ldw, bias, out, ldo, kc, first, last);                                    \
        break;

static VK_AVX2 void nn_tile_any(int mr, int nv, const float *x, const float *W, int ldw, const float *bias,
                                float *out, int ldo, int kc, int first, int last) {
    switch (mr * 16 + nv) {
        NN_CASE(1, 1) NN_CASE(1, 2) NN_CASE(1, 3) NN_CASE(1, 8) NN_CASE(2, 1) NN_CASE(2, 2) NN_CASE(2, 3)
        NN_CASE(2, 4) NN_CASE(3, 1) NN_CASE(3, 2) NN_CASE(3, 3) NN_CASE(3, 4) NN_CASE(4, 1) NN_CASE(4, 2)
        NN_CASE(4, 3)
    default: break; /* unreachable: the driver only asks for the shapes above */
    }
}

static int nn_mr(int M) { return M <= 4 ? M : 4; }

/* x (M x K, row stride ldx) into tiles of nn_mr(M) rows, once per call: tile t (rows
 * t*mr ..) stores row r of step k at xp[t*mr*K + k*rows + r], so a tile's broadcasts read
 * front to back (rows a multiple of 1024 floats apart would share one L1 set). */
static void nn_pack_x(const float *x, int ldx, float *xp, int M, int K) {
    const int mr = nn_mr(M);
    for (int t = 0; t < M; t += mr) {
        const int rows = M - t < mr ? M - t : mr;
        float *dst = xp + at(t, K);
        for (int k = 0; k < K; k++)
            for (int r = 0; r < rows; r++) dst[at(k, rows) + r] = x[at(t + r, ldx) + k];
    }
}

/* Columns [j0, j1) of out, all M rows; x arrives packed by nn_pack_x (ldx unused). A
 * slice of the thread's weight columns is copied into tile order first (the weight rows
 * read front to back, at the memory's streaming rate); the tiles then read it contiguously. Few rows (a decoding
 * step, a short prompt) take wide tiles; more rows take 4 x 24 tiles. */
static int nn_panel_nv(int left, int nv_main) { return left >= 8 * nv_main ? nv_main : (left >= 16 && nv_main >= 2 ? 2 : 1); }

/* nv vectors of 8 floats, spelled out: written as a loop, compilers turn it into a memcpy
 * call per weight row (96 bytes), which cost a third of a 16-row forward. */
VK_TILE void copy_vecs(float *dst, const float *src, int nv) {
    switch (nv) {
    case 8: _mm256_store_ps(dst + 56, _mm256_loadu_ps(src + 56)); /* fall through */
    case 7: _mm256_store_ps(dst + 48, _mm256_loadu_ps(src + 48)); /* fall through */
    case 6: _mm256_store_ps(dst + 40, _mm256_loadu_ps(src + 40)); /* fall through */
    case 5: _mm256_store_ps(dst + 32, _mm256_loadu_ps(src + 32)); /* fall through */
    case 4: _mm256_store_ps(dst + 24, _mm256_loadu_ps(src + 24)); /* fall through */
    case 3: _mm256_store_ps(dst + 16, _mm256_loadu_ps(src + 16)); /* fall through */
    case 2: _mm256_store_ps(dst + 8, _mm256_loadu_ps(src + 8));   /* fall through */
    default: _mm256_store_ps(dst, _mm256_loadu_ps(src));
    }
}

static VK_AVX2 void nn_avx2(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo,
                            int M, int K, int j0, int j1) {
    static const int wide_nv[5] = {0, 8, 4, 4, 3};
    const int mr_main = nn_mr(M), nv_main = M <= 4 ? wide_nv[M] : 3;
    const int j8 = j0 + ((j1 - j0) & ~7);
    const int direct = M <= 2; /* one or two rows read each weight once: copying it first only costs */
    _Alignas(32) float wpack[NC * KC];
    (void)ldx;
    /* BLIS's order: a weight slice is copied once per call; blocks of x pass over it */
    for (int c0 = j0; c0 < j8; c0 += NC) {
        const int c1 = j8 - c0 < NC ? j8 : c0 + NC;
        for (int k0 = 0; k0 < K; k0 += KC) {
            const int kk = K - k0 < KC ? K - k0 : KC, first = k0 == 0, last = k0 + kk == K;
            for (int k = 0; k < kk && !direct; k++) {
                const float *wk = W + at(k0 + k, ldw);
                float *dst = wpack;
                for (int j = c0; j < c1;) {
                    const int nv = nn_panel_nv(c1 - j, nv_main);
                    copy_vecs(dst + k * 8 * nv, wk + j, nv);
                    dst += (size_t)kk * 8 * nv;
                    j += 8 * nv;
                }
            }
            /* the next slice's weights, requested a few rows per panel while this one
             * computes, so the memory streams under the arithmetic instead of after it */
            int nk0 = k0 + KC, nc0 = c0;
            if (nk0 >= K) nk0 = 0, nc0 = c0 + NC;
            const int nc1 = nc0 >= j8 ? nc0 : (j8 - nc0 < NC ? j8 : nc0 + NC), nkk = K - nk0 < KC ? K - nk0 : KC;
            const int n_panels = (c1 - c0 + 8 * nv_main - 1) / (8 * nv_main), per_panel = (nkk + n_panels - 1) / n_panels;
            int next_row = 0;
            for (int i0 = 0; i0 < M; i0 += MC) {
                const int mc = M - i0 < MC ? M - i0 : MC;
                const float *panel = wpack;
                for (int j = c0; j < c1;) {
                    const int nv = nn_panel_nv(c1 - j, nv_main);
                    for (int r = 0; r < per_panel && next_row < nkk && nc0 < nc1; r++, next_row++) {
                        const float *row = W + at(nk0 + next_row, ldw);
                        for (int c = nc0; c < nc1; c += 16) _mm_prefetch((const char *)(row + c), _MM_HINT_T1);
                        _mm_prefetch((const char *)(row + nc1 - 1), _MM_HINT_T1);
                    }
                    const float *wt = direct ? W + at(k0, ldw) + j : panel;
                    const int ldt = direct ? ldw : 8 * nv;
                    for (int t = 0; t < mc; t += mr_main) {
                        const int mr = mc - t < mr_main ? mc - t : mr_main;
                        nn_tile_any(mr, nv, x + at(i0 + t, K) + at(k0, mr), wt, ldt, bias ? bias + j : NULL,
                                    out + at(i0 + t, ldo) + j, ldo, kk, first, last);
                    }
                    panel += (size_t)kk * 8 * nv;
                    j += 8 * nv;
                }
            }
        }
    }
    for (int t = 0; t < M && j8 < j1; t += mr_main) { /* columns past the last multiple of 8 */
        const int rows = M - t < mr_main ? M - t : mr_main;
        const float *xt = x + at(t, K);
        for (int r = 0; r < rows; r++)
            for (int j = j8; j < j1; j++) {
                float s = 0.0f;
                for (int k = 0; k < K; k++) s = fmaf(xt[at(k, rows) + r], W[at(k, ldw) + j], s);
                out[at(t + r, ldo) + j] = bias ? s + bias[j] : s;
            }
    }
}

VK_TILE float hsum8(__m256 v) {
    const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); /* p_l + p_(l+4) */
    const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));                               /* (a + b), (c + d) */
    return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

/* ir rows of x against jr rows of W. */
VK_TILE void nt_tile(const int ir, const int jr, const float *x, int ldx, const float *W, int ldw, const float *bias,
                     float *out, int ldo, int K) {
    const int K8 = K & ~7;
    __m256 acc[3][8];
#pragma GCC unroll 3
    for (int i = 0; i < ir; i++)
#pragma GCC unroll 8
        for (int j = 0; j < jr; j++) acc[i][j] = _mm256_setzero_ps();
    for (int k = 0; k < K8; k += 8) {
        __m256 w[8];
#pragma GCC unroll 8
        for (int j = 0; j < jr; j++) w[j] = _mm256_loadu_ps(W + at(j, ldw) + k);
#pragma GCC unroll 3
        for (int i = 0; i < ir; i++) {
            const __m256 a = _mm256_loadu_ps(x + at(i, ldx) + k);
#pragma GCC unroll 8
            for (int j = 0; j < jr; j++) acc[i][j] = _mm256_fmadd_ps(a, w[j], acc[i][j]);
        }
    }
    for (int i = 0; i < ir; i++)
        for (int j = 0; j < jr; j++) {
            float r = hsum8(acc[i][j]);
            for (int k = K8; k < K; k++) r = fmaf(x[at(i, ldx) + k], W[at(j, ldw) + k], r);
            out[at(i, ldo) + j] = bias ? r + bias[j] : r;
        }
}

#define NT_CASE(IR, JR)                                                                                      \
    case IR * 16 + JR:                                                                                       \
        nt_tile(IR, JR, x, ldx, W, ldw, bias, out, ldo, K);                                                  \
        break;

static VK_AVX2 void nt_tile_any(int ir, int jr, const float *x, int ldx, const float *W, int ldw, const float *bias,
                                float *out, int ldo, int K) {
    switch (ir * 16 + jr) {
        NT_CASE(1, 1) NT_CASE(1, 2) NT_CASE(1, 3) NT_CASE(1, 4) NT_CASE(1, 8) NT_CASE(2, 1) NT_CASE(2, 2)
        NT_CASE(2, 3) NT_CASE(2, 4) NT_CASE(3, 1) NT_CASE(3, 2) NT_CASE(3, 3) NT_CASE(3, 4)
    default: break;
    }
}

/* Rows [j0, j1) of W (output columns), all M rows of x. A block of W rows (~192 KB) stays
 * in L2 while every row of x passes over it, so the weights are read from memory once
 * however many rows the call has (the sweeps' heads run hundreds). */
static VK_AVX2 void nt_avx2(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo,
                            int M, int K, int j0, int j1) {
    const int jr_main = M == 1 ? 8 : 4;
    int jb = (int)(49152 / (K > 0 ? K : 1)) / 8 * 8;
    if (jb < 8) jb = 8;
    for (int b0 = j0; b0 < j1; b0 += jb) {
        const int b1 = j1 - b0 < jb ? j1 : b0 + jb;
        for (int i = 0; i < M; i += 3) {
            const int ir = M - i < 3 ? M - i : 3;
            for (int j = b0; j < b1; j += jr_main) {
                const int jr = b1 - j < jr_main ? b1 - j : jr_main;
                if (jr > 4 && jr < 8) { /* the last few W rows of a one-row call */
                    nt_tile_any(ir, 4, x + at(i, ldx), ldx, W + at(j, ldw), ldw, bias ? bias + j : NULL,
                                out + at(i, ldo) + j, ldo, K);
                    nt_tile_any(ir, jr - 4, x + at(i, ldx), ldx, W + at(j + 4, ldw), ldw, bias ? bias + j + 4 : NULL,
                                out + at(i, ldo) + j + 4, ldo, K);
                } else {
                    nt_tile_any(ir, jr, x + at(i, ldx), ldx, W + at(j, ldw), ldw, bias ? bias + j : NULL,
                                out + at(i, ldo) + j, ldo, K);
                }
            }
        }
    }
}
#endif

int vk_gemm_vectorized(void) {
#ifdef VK_X86
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

typedef void (*gemm_part)(const float *, int, const float *, int, const float *, float *, int, int, int, int, int);

/* Split the output columns over OpenMP's threads (in multiples of `align`); small products
 * and calls from inside a parallel region stay on the calling thread. */
static void run_parts(gemm_part part, int align, const float *x, int ldx, const float *W, int ldw, const float *bias,
                      float *out, int ldo, int M, int K, int N) {
    if (M <= 0 || N <= 0) return;
    const int T = omp_get_max_threads() > 1 && !omp_in_parallel() && (double)M * N * K >= 1e6 ? omp_get_max_threads()
                                                                                               : 1;
    if (T == 1) {
        part(x, ldx, W, ldw, bias, out, ldo, M, K, 0, N);
        return;
    }
#pragma omp parallel num_threads(T)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        const int chunk = ((N + nt - 1) / nt + align - 1) / align * align;
        const int j0 = t * chunk, j1 = j0 + chunk < N ? j0 + chunk : N;
        if (j0 < j1) part(x, ldx, W, ldw, bias, out, ldo, M, K, j0, j1);
    }
}

static void gemm(int nt, const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo,
                 int M, int K, int N, int simd) {
    gemm_part part = nt ? nt_portable : nn_portable;
    int align = nt ? 8 : 16;
#ifdef VK_X86
    if (simd && vk_gemm_vectorized() && nt) part = nt_avx2;
    if (simd && vk_gemm_vectorized() && !nt && M > 0 && K > 0) {
        /* the packed x is shared by the threads (small ones on the stack: attention calls this
         * per head); without memory, the portable path (same bits) */
        _Alignas(32) float small[4096];
        const size_t n = (size_t)M * (size_t)K;
        float *xp = n <= sizeof small / sizeof *small ? small : malloc(sizeof(float) * n);
        if (xp) {
            nn_pack_x(x, ldx, xp, M, K);
            run_parts(nn_avx2, 24, xp, K, W, ldw, bias, out, ldo, M, K, N);
            if (xp != small) free(xp);
            return;
        }
    }
#else
    (void)simd;
#endif
    run_parts(part, align, x, ldx, W, ldw, bias, out, ldo, M, K, N);
}

void vk_gemm_nn_ex(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo, int M,
                   int K, int N, int simd) {
    gemm(0, x, ldx, W, ldw, bias, out, ldo, M, K, N, simd);
}

void vk_gemm_nt_ex(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo, int M,
                   int K, int N, int simd) {
    gemm(1, x, ldx, W, ldw, bias, out, ldo, M, K, N, simd);
}

void vk_gemm_nn(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo, int M, int K,
                int N) {
    vk_gemm_nn_ex(x, ldx, W, ldw, bias, out, ldo, M, K, N, 1);
}

void vk_gemm_nt(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo, int M, int K,
                int N) {
    vk_gemm_nt_ex(x, ldx, W, ldw, bias, out, ldo, M, K, N, 1);
}
