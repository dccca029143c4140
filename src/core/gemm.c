#include "core/gemm.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
/* nn with NN_TALL rows or more (a training step's 128 .. 256): slices of KC_L steps x NC_L
 * columns (96 KB) and all the rows at once. The wide slices above make every 4 x 24 tile
 * reload its partial sums from a 393 KB band of `out` (128 rows x 768 columns, past L2)
 * every 64 steps; here the band is M x 96 and each reload carries 256 steps. At 128 rows
 * (GPT-2's four products, 12 layers, 2 threads) best of 21 runs 148 ms against 164, at
 * 256 rows 288-298 against 309; at 32 and 64 rows the two were equal. */
#define NN_TALL 64
#define KC_L 256
#define NC_L 96
_Static_assert(NC_L * KC_L <= NC * KC, "the tall slices share blocked()'s buffer");
#define KC_T 256 /* nt: a slice of 256 steps of 192 weight rows */
#define NC_T 192
#define NR_RUN 4096 /* 16 KB of partial sums per row of x, in L1 */
/* nn with 3 .. SMALL_NN - 1 rows (batched decoding, short prompts): the tiles read the
 * weights where they lie, KB_S rows per pass, with the lines PF_S floats ahead requested
 * while a panel computes. Copying a slice first (the blocked path) costs as much as the
 * arithmetic at so few rows: 12 layers' products at 4 rows took 44-55 ms packed and 26
 * streamed, at 8 rows 59-61 and 35-37 (2 threads); at 16 the two were equal. */
#define SMALL_NN 16
#define KB_S 16
#define PF_S 96
/* nt with 3 .. SMALL_NN - 1 rows: the rows of x across the vector lanes, x transposed a
 * block of steps at a time into XT_S floats (64 KB: 2048 steps of 8 lanes, 1024 of 16),
 * the blocks as long as that allows: whole weight rows streamed ran the 8-row LM head at
 * 16-18 GB/s, rows cut into 512-step pieces at 9-10. */
#define XT_S 16384

static int64_t at(int64_t i, int ld) { return i * (int64_t)ld; }

/* ---------------------------------------------------------------- portable */

/* w(k, j): W[k][j] for nn, W[j][k] for nt (transposed). */
static float w_at(const float *W, int ldw, int trans, int k, int j) { return trans ? W[at(j, ldw) + k] : W[at(k, ldw) + j]; }

static void portable(int trans, const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo,
                     int M, int K, int j0, int j1, int from_out) {
    for (int i = 0; i < M; i++)
        for (int j = j0; j < j1; j++) {
            float s = from_out ? out[at(i, ldo) + j] : 0.0f;
            for (int k = 0; k < K; k++) s = fmaf(x[at(i, ldx) + k], w_at(W, ldw, trans, k, j), s);
            out[at(i, ldo) + j] = bias ? s + bias[j] : s;
        }
}

static void nn_portable(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo,
                        int M, int K, int j0, int j1, int from_out) {
    portable(0, x, ldx, W, ldw, bias, out, ldo, M, K, j0, j1, from_out);
}

static void nt_portable(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo,
                        int M, int K, int j0, int j1, int from_out) {
    portable(1, x, ldx, W, ldw, bias, out, ldo, M, K, j0, j1, from_out);
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

VK_TILE void nn_tile_any(int mr, int nv, const float *x, const float *W, int ldw, const float *bias,
                        float *out, int ldo, int kc, int first, int last) {
    switch (mr * 16 + nv) {
        NN_CASE(1, 1) NN_CASE(1, 2) NN_CASE(1, 3) NN_CASE(2, 1) NN_CASE(2, 2) NN_CASE(2, 3) NN_CASE(3, 1)
        NN_CASE(3, 2) NN_CASE(3, 3) NN_CASE(4, 1) NN_CASE(4, 2) NN_CASE(4, 3)
    default: break; /* unreachable: the driver only asks for the shapes above */
    }
}

static int nn_mr(int M) { return M <= 4 ? M : 4; }

/* x (M x K, row stride ldx) into tiles of nn_mr(M) rows, once per call: tile t (rows
 * t*mr ..) stores row r of step k at xp[t*mr*K + k*rows + r], so a tile's broadcasts read
 * front to back (rows a multiple of 1024 floats apart would share one L1 set). Thread
 * `part` of `parts` packs its share of the tiles. */
static void pack_x(const float *x, int ldx, float *xp, int M, int K, int part, int parts) {
    const int mr = nn_mr(M), tiles = (M + mr - 1) / mr, per = (tiles + parts - 1) / parts;
    const int t1 = (part + 1) * per * mr < M ? (part + 1) * per * mr : M;
    for (int t = part * per * mr; t < t1; t += mr) {
        const int rows = M - t < mr ? M - t : mr;
        float *dst = xp + at(t, K);
        for (int k = 0; k < K; k++)
            for (int r = 0; r < rows; r++) dst[at(k, rows) + r] = x[at(t + r, ldx) + k];
    }
}

/* The width, in vectors of 8 columns, of the next panel of a slice with `left` columns:
 * NV_MAIN (the 4 x 24 tiles), narrower at the slice's end. */
#define NV_MAIN 3
static int nn_panel_nv(int left) { return left >= 8 * NV_MAIN ? NV_MAIN : left >= 16 ? 2 : 1; }

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

/* The 8 x 8 transpose of r (rows) into o (columns), in registers. */
VK_TILE void transpose8_regs(const __m256 r[8], __m256 o[8]) {
    __m256 t[8], u[8];
    for (int i = 0; i < 8; i += 2) t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]), t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    for (int i = 0; i < 8; i += 4) {
        u[i] = _mm256_shuffle_ps(t[i], t[i + 2], 0x44), u[i + 1] = _mm256_shuffle_ps(t[i], t[i + 2], 0xEE);
        u[i + 2] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0x44), u[i + 3] = _mm256_shuffle_ps(t[i + 1], t[i + 3], 0xEE);
    }
    for (int i = 0; i < 4; i++) o[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20), o[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
}

/* Eight rows of W (row stride lds) x eight steps into eight panel rows (stride ldd): the
 * transpose that turns an out x in weight (nn.Linear) into the panel layout. */
VK_TILE void transpose8(const float *src, int lds, float *dst, int ldd) {
    __m256 r[8], o[8];
    for (int i = 0; i < 8; i++) r[i] = _mm256_loadu_ps(src + at(i, lds));
    transpose8_regs(r, o);
    for (int i = 0; i < 8; i++) _mm256_store_ps(dst + at(i, ldd), o[i]);
}

/* Eight outputs j .. j + 7 of M (1 or 2, a constant) rows: the eight weight rows are read
 * side by side, front to back, transposed in registers and fed to the chain step by step. */
VK_TILE void nt_rows8(const float *x, const float *W, int ldw, const float *bias, float *out, int ldo, const int M,
                      int K, int j, int from_out) {
    const int K8 = K & ~7;
    const float *w = W + at(j, ldw);
    __m256 acc[2] = {_mm256_setzero_ps(), _mm256_setzero_ps()};
    for (int i = 0; i < M && from_out; i++) acc[i] = _mm256_loadu_ps(out + at(i, ldo) + j);
    for (int k = 0; k < K8; k += 8) {
        __m256 r[8], o[8];
        for (int c = 0; c < 8; c++) r[c] = _mm256_loadu_ps(w + at(c, ldw) + k);
        transpose8_regs(r, o);
        for (int q = 0; q < 8; q++)
            for (int i = 0; i < M; i++) acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(x + at(k + q, M) + i), o[q], acc[i]);
    }
    for (int k = K8; k < K; k++) {
        const __m256 wk = _mm256_setr_ps(w[k], w[at(1, ldw) + k], w[at(2, ldw) + k], w[at(3, ldw) + k], w[at(4, ldw) + k],
                                         w[at(5, ldw) + k], w[at(6, ldw) + k], w[at(7, ldw) + k]);
        for (int i = 0; i < M; i++) acc[i] = _mm256_fmadd_ps(_mm256_broadcast_ss(x + at(k, M) + i), wk, acc[i]);
    }
    for (int i = 0; i < M; i++) {
        if (bias) acc[i] = _mm256_add_ps(acc[i], _mm256_loadu_ps(bias + j));
        _mm256_storeu_ps(out + at(i, ldo) + j, acc[i]);
    }
}

/* nt, one or two rows (a decoding step, the LM head): the weights stream once and nothing is
 * copied (1.6x slower than OpenBLAS's sgemv at one row, whose dot products sum in another
 * order; two rows are faster than sgemv). */
static VK_AVX2 void nt_rows_avx2(const float *x, const float *W, int ldw, const float *bias, float *out, int ldo, int M,
                                 int K, int j0, int j8, int from_out) {
    for (int j = j0; j < j8; j += 8) {
        if (M == 1) nt_rows8(x, W, ldw, bias, out, ldo, 1, K, j, from_out); /* the row count a constant: acc in registers */
        else nt_rows8(x, W, ldw, bias, out, ldo, 2, K, j, from_out);
    }
}

/* The panels of columns [c0, c1) x steps [k0, k0 + kk) of w(k, j), panel after panel, each
 * step's 8 nv columns contiguous. */
static VK_AVX2 void pack_slice(int trans, const float *W, int ldw, float *pack, int c0, int c1, int k0, int kk) {
    if (!trans) {
        for (int k = 0; k < kk; k++) {
            const float *wk = W + at(k0 + k, ldw);
            float *dst = pack;
            for (int j = c0; j < c1;) {
                const int nv = nn_panel_nv(c1 - j);
                copy_vecs(dst + k * 8 * nv, wk + j, nv);
                dst += (size_t)kk * 8 * nv;
                j += 8 * nv;
            }
        }
        return;
    }
    const int k8 = kk & ~7;
    float *dst = pack;
    for (int j = c0; j < c1;) {
        const int nv = nn_panel_nv(c1 - j), w = 8 * nv;
        for (int v = 0; v < nv; v++) {
            const float *src = W + at(j + 8 * v, ldw) + k0;
            for (int k = 0; k < k8; k += 8) transpose8(src + k, ldw, dst + at(k, w) + 8 * v, w);
            for (int k = k8; k < kk; k++)
                for (int c = 0; c < 8; c++) dst[at(k, w) + 8 * v + c] = src[at(c, ldw) + k];
        }
        dst += (size_t)kk * w;
        j += w;
    }
}

/* nn, one or two rows (a decoding step): the weights stream once, row after row, in runs of
 * up to NR_RUN floats (whole rows of a thread's columns, so the prefetchers see long
 * streams); the partial sums of the run stay in `out` (L1) and take four weight rows per
 * visit. Every element is still the one fma chain over k ascending. */
static VK_AVX2 void nn_rows_avx2(const float *x, const float *W, int ldw, const float *bias, float *out, int ldo, int M,
                                 int K, int j0, int j8, int from_out) {
    for (int c0 = j0; c0 < j8; c0 += NR_RUN) {
        const int c1 = j8 - c0 < NR_RUN ? j8 : c0 + NR_RUN;
        for (int i = 0; i < M && !from_out; i++)
            for (int j = c0; j < c1; j += 8) _mm256_storeu_ps(out + at(i, ldo) + j, _mm256_setzero_ps());
        int k = 0;
        for (; k + 4 <= K; k += 4) {
            const float *w0 = W + at(k, ldw), *w1 = w0 + ldw, *w2 = w1 + ldw, *w3 = w2 + ldw;
            for (int i = 0; i < M; i++) {
                const float *xk = x + at(k, M) + i; /* packed: row i of step k at x[k * M + i] */
                const __m256 a0 = _mm256_broadcast_ss(xk), a1 = _mm256_broadcast_ss(xk + M);
                const __m256 a2 = _mm256_broadcast_ss(xk + 2 * M), a3 = _mm256_broadcast_ss(xk + 3 * M);
                float *o = out + at(i, ldo);
                for (int j = c0; j < c1; j += 8) {
                    __m256 acc = _mm256_loadu_ps(o + j);
                    acc = _mm256_fmadd_ps(a0, _mm256_loadu_ps(w0 + j), acc);
                    acc = _mm256_fmadd_ps(a1, _mm256_loadu_ps(w1 + j), acc);
                    acc = _mm256_fmadd_ps(a2, _mm256_loadu_ps(w2 + j), acc);
                    acc = _mm256_fmadd_ps(a3, _mm256_loadu_ps(w3 + j), acc);
                    _mm256_storeu_ps(o + j, acc);
                }
            }
        }
        for (; k < K; k++) {
            const float *wk = W + at(k, ldw);
            for (int i = 0; i < M; i++) {
                const __m256 a = _mm256_broadcast_ss(x + at(k, M) + i);
                float *o = out + at(i, ldo);
                for (int j = c0; j < c1; j += 8)
                    _mm256_storeu_ps(o + j, _mm256_fmadd_ps(a, _mm256_loadu_ps(wk + j), _mm256_loadu_ps(o + j)));
            }
        }
        for (int i = 0; bias && i < M; i++)
            for (int j = c0; j < c1; j += 8) {
                float *o = out + at(i, ldo) + j;
                _mm256_storeu_ps(o, _mm256_add_ps(_mm256_loadu_ps(o), _mm256_loadu_ps(bias + j)));
            }
    }
}

/* nn, 3 .. SMALL_NN - 1 rows: pass after pass of KB_S weight rows, panel by panel from left
 * to right, the 4 x 24 tiles reading the weight rows in place (stride ldw). Each pass
 * reads KB_S rows front to back; the lines PF_S floats ahead of the panel (or, near the
 * end, the next pass's first) are requested while it computes. Partial sums go through
 * out between passes, as in the blocked path: the same chain per element. */
static VK_AVX2 void nn_stream_avx2(const float *x, const float *W, int ldw, const float *bias, float *out, int ldo,
                                   int M, int K, int j0, int j8, int from_out) {
    for (int k0 = 0; k0 < K; k0 += KB_S) {
        const int kk = K - k0 < KB_S ? K - k0 : KB_S, first = k0 == 0 && !from_out, last = k0 + kk == K;
        const int nk0 = k0 + kk, nkk = K - nk0 < KB_S ? K - nk0 : KB_S;
        const float *Wk = W + at(k0, ldw);
        for (int j = j0; j < j8;) {
            const int nv = nn_panel_nv(j8 - j);
            const int ahead = j + PF_S < j8, pj = ahead ? j + PF_S : j0 + (j + PF_S - j8);
            const float *pw = ahead ? Wk : W + at(nk0, ldw);
            for (int r = 0; r < (ahead ? kk : nk0 < K ? nkk : 0); r++) {
                _mm_prefetch((const char *)(pw + at(r, ldw) + pj), _MM_HINT_T0);
                _mm_prefetch((const char *)(pw + at(r, ldw) + pj + 16), _MM_HINT_T0);
            }
            for (int t = 0; t < M; t += 4) {
                const int mr = M - t < 4 ? M - t : 4;
                nn_tile_any(mr, nv, x + at(t, K) + at(k0, mr), Wk + j, ldw, bias ? bias + j : NULL,
                            out + at(t, ldo) + j, ldo, kk, first, last);
            }
            j += 8 * nv;
        }
    }
}

/* R vectors of 8 rows (lanes) x C output columns over kk steps: lane i of acc[r][c] is row
 * 8r + i's chain for column c, fed one step at a time by a broadcast of that column's
 * weight (its row of W, read front to back) and the step's rows of xt. tmp holds the
 * chains between step blocks ([c][r] vectors); first: start from 0. */
VK_TILE void lanes_tile(const int R, const int C, const float *xt, const float *w, int ldw, int kk, float *tmp,
                        int first) {
    __m256 acc[2][12];
#pragma GCC unroll 12
    for (int c = 0; c < C; c++)
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) acc[r][c] = first ? _mm256_setzero_ps() : _mm256_loadu_ps(tmp + 8 * (c * R + r));
    for (int k = 0; k < kk; k++) {
        __m256 xv[2];
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) xv[r] = _mm256_load_ps(xt + at(k, 8 * R) + 8 * r);
#pragma GCC unroll 12
        for (int c = 0; c < C; c++) {
            const __m256 b = _mm256_broadcast_ss(w + at(c, ldw) + k);
#pragma GCC unroll 2
            for (int r = 0; r < R; r++) acc[r][c] = _mm256_fmadd_ps(xv[r], b, acc[r][c]);
        }
    }
#pragma GCC unroll 12
    for (int c = 0; c < C; c++)
#pragma GCC unroll 2
        for (int r = 0; r < R; r++) _mm256_storeu_ps(tmp + 8 * (c * R + r), acc[r][c]);
}

/* nt, 3 .. SMALL_NN - 1 rows (batched decoding's LM head, the backward's dy W^T on a few
 * rows): the rows of x lie across the lanes (one vector up to 8 rows, two up to 15), so
 * each output column is a broadcast of its weight row per step: twelve (six) weight rows
 * stream front to back side by side and nothing is transposed. (Transposing 16 weight rows
 * per step block into the nn tiles' layout ran at 10 GB/s at 8 rows.) x arrives in pack_x's
 * tiles and is turned into xt, a block of steps at a time; the chains go through out
 * between those blocks, as everywhere: the same chain per element. */
static VK_AVX2 void nt_lanes_avx2(const float *x, const float *W, int ldw, const float *bias, float *out, int ldo, int M,
                                  int K, int j0, int j8, int from_out) {
    _Alignas(32) float xt[XT_S];
    _Alignas(32) float tmp[12 * 8];
    const int R = M > 8 ? 2 : 1, CM = R == 1 ? 12 : 6, lanes = 8 * R;
    const int blocks = (K + XT_S / lanes - 1) / (XT_S / lanes), kb = (K + blocks - 1) / blocks;
    for (int k0 = 0; k0 < K; k0 += kb) {
        const int kk = K - k0 < kb ? K - k0 : kb, first = k0 == 0 && !from_out, last = k0 + kk == K;
        memset(xt, 0, sizeof(float) * (size_t)kk * lanes);
        for (int t = 0; t < M; t += 4) { /* pack_x's tile t: row r of step k at x[t*K + k*rows + r] */
            const int rows = M - t < 4 ? M - t : 4;
            for (int k = 0; k < kk; k++)
                for (int r = 0; r < rows; r++) xt[at(k, lanes) + t + r] = x[at(t, K) + at(k0 + k, rows) + r];
        }
        for (int j = j0; j < j8;) {
            const int C = j8 - j >= CM ? CM : 1;
            if (!first)
                for (int c = 0; c < C; c++)
                    for (int i = 0; i < M; i++) tmp[8 * (c * R + i / 8) + i % 8] = out[at(i, ldo) + j + c];
            const float *w = W + at(j, ldw) + k0;
            /* constant shapes, so acc lives in registers */
            if (R == 1) C == 1 ? lanes_tile(1, 1, xt, w, ldw, kk, tmp, first) : lanes_tile(1, 12, xt, w, ldw, kk, tmp, first);
            else C == 1 ? lanes_tile(2, 1, xt, w, ldw, kk, tmp, first) : lanes_tile(2, 6, xt, w, ldw, kk, tmp, first);
            for (int c = 0; c < C; c++)
                for (int i = 0; i < M; i++) {
                    const float v = tmp[8 * (c * R + i / 8) + i % 8];
                    out[at(i, ldo) + j + c] = last && bias ? v + bias[j + c] : v;
                }
            j += C;
        }
    }
}

/* Columns [j0, j1) of out, all M rows; x arrives packed by pack_x (ldx unused). One or two
 * rows stream whole weight rows; 3 .. SMALL_NN - 1 rows read the weights in place (nn) or
 * lie across the vector lanes while the weight rows stream as broadcasts (nt). From
 * SMALL_NN rows on, a slice of the thread's weight columns is copied into panel order
 * first (nn: weight rows read front to back in runs of NC floats; nt: runs of KC_T floats
 * of each weight row, transposed), and the 4 x 24 tiles read it contiguously. */
static VK_AVX2 void blocked(int trans, const float *x, const float *W, int ldw, const float *bias, float *out, int ldo,
                            int M, int K, int j0, int j1, int from_out) {
    const int mr_main = nn_mr(M);
    const int tall = !trans && M >= NN_TALL, mc_max = tall ? M : MC;
    const int j8 = j0 + ((j1 - j0) & ~7), kc = trans ? KC_T : tall ? KC_L : KC, nc = trans ? NC_T : tall ? NC_L : NC;
    _Alignas(32) float wpack[NC * KC];
    const int packed = M >= SMALL_NN;
    if (M <= 2) (trans ? nt_rows_avx2 : nn_rows_avx2)(x, W, ldw, bias, out, ldo, M, K, j0, j8, from_out);
    else if (!packed) (trans ? nt_lanes_avx2 : nn_stream_avx2)(x, W, ldw, bias, out, ldo, M, K, j0, j8, from_out);
    /* BLIS's order: a weight slice is copied once per call; blocks of x pass over it */
    for (int c0 = j0; c0 < j8 && packed; c0 += nc) {
        const int c1 = j8 - c0 < nc ? j8 : c0 + nc;
        for (int k0 = 0; k0 < K; k0 += kc) {
            const int kk = K - k0 < kc ? K - k0 : kc, first = k0 == 0 && !from_out, last = k0 + kk == K;
            pack_slice(trans, W, ldw, wpack, c0, c1, k0, kk);
            /* the next slice's weights, requested a few lines per panel while this one
             * computes, so the memory streams under the arithmetic instead of after it */
            int nk0 = k0 + kc, nc0 = c0;
            if (nk0 >= K) nk0 = 0, nc0 = c0 + nc;
            const int nc1 = nc0 >= j8 ? nc0 : (j8 - nc0 < nc ? j8 : nc0 + nc), nkk = K - nk0 < kc ? K - nk0 : kc;
            const int n_rows = trans ? nc1 - nc0 : (nc0 < nc1 ? nkk : 0); /* weight rows to request */
            const int n_panels = (c1 - c0 + 8 * NV_MAIN - 1) / (8 * NV_MAIN), per_panel = (n_rows + n_panels - 1) / n_panels;
            int next_row = 0;
            for (int i0 = 0; i0 < M; i0 += mc_max) {
                const int mc = M - i0 < mc_max ? M - i0 : mc_max;
                const float *panel = wpack;
                for (int j = c0; j < c1;) {
                    const int nv = nn_panel_nv(c1 - j);
                    for (int r = 0; r < per_panel && next_row < n_rows; r++, next_row++) {
                        const float *row = trans ? W + at(nc0 + next_row, ldw) + nk0 : W + at(nk0 + next_row, ldw) + nc0;
                        const int len = trans ? nkk : nc1 - nc0;
                        for (int c = 0; c < len; c += 16) _mm_prefetch((const char *)(row + c), _MM_HINT_T1);
                        _mm_prefetch((const char *)(row + len - 1), _MM_HINT_T1);
                    }
                    for (int t = 0; t < mc; t += mr_main) {
                        const int mr = mc - t < mr_main ? mc - t : mr_main;
                        nn_tile_any(mr, nv, x + at(i0 + t, K) + at(k0, mr), panel, 8 * nv, bias ? bias + j : NULL,
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
                float s = from_out ? out[at(t + r, ldo) + j] : 0.0f;
                for (int k = 0; k < K; k++) s = fmaf(xt[at(k, rows) + r], w_at(W, ldw, trans, k, j), s);
                out[at(t + r, ldo) + j] = bias ? s + bias[j] : s;
            }
    }
}

static VK_AVX2 void nn_avx2(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo,
                            int M, int K, int j0, int j1, int from_out) {
    (void)ldx;
    blocked(0, x, W, ldw, bias, out, ldo, M, K, j0, j1, from_out);
}

static VK_AVX2 void nt_avx2(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo,
                            int M, int K, int j0, int j1, int from_out) {
    (void)ldx;
    blocked(1, x, W, ldw, bias, out, ldo, M, K, j0, j1, from_out);
}
#endif

int vk_gemm_vectorized(void) {
#ifdef VK_X86
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

typedef void (*gemm_part)(const float *, int, const float *, int, const float *, float *, int, int, int, int, int, int);

/* Split the output columns over OpenMP's threads (in multiples of `align`); small products
 * and calls from inside a parallel region stay on the calling thread. With raw, the
 * threads first pack it (row stride ldraw) into x, the buffer the parts then read. */
static void run_parts(gemm_part part, int align, const float *x, int ldx, const float *W, int ldw, const float *bias,
                      float *out, int ldo, int M, int K, int N, int from_out, const float *raw, int ldraw) {
    if (M <= 0 || N <= 0) return;
    /* a few rows read ~1 MB of weights: both cores' memory bandwidth pays off already */
    const int big = (double)M * N * K >= 1e6 || (double)N * K >= 262144;
    const int T = omp_get_max_threads() > 1 && !omp_in_parallel() && big ? omp_get_max_threads() : 1;
    if (T == 1) {
#ifdef VK_X86
        if (raw) pack_x(raw, ldraw, (float *)x, M, K, 0, 1);
#endif
        part(x, ldx, W, ldw, bias, out, ldo, M, K, 0, N, from_out);
        return;
    }
#pragma omp parallel num_threads(T)
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
#ifdef VK_X86
        if (raw) {
            pack_x(raw, ldraw, (float *)x, M, K, t, nt);
#pragma omp barrier
        }
#endif
        const int chunk = ((N + nt - 1) / nt + align - 1) / align * align;
        const int j0 = t * chunk, j1 = j0 + chunk < N ? j0 + chunk : N;
        if (j0 < j1) part(x, ldx, W, ldw, bias, out, ldo, M, K, j0, j1, from_out);
    }
}

static void gemm(int nt, const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo,
                 int M, int K, int N, int simd, int from_out) {
    gemm_part part = nt ? nt_portable : nn_portable;
#ifdef VK_X86
    if (simd && vk_gemm_vectorized() && M > 0 && K > 0) {
        /* the packed x is shared by the threads (small ones on the stack: attention calls this
         * per head); without memory, the portable path (same bits) */
        _Alignas(32) float small[4096];
        const size_t n = (size_t)M * (size_t)K;
        float *xp = n <= sizeof small / sizeof *small ? small : malloc(sizeof(float) * n);
        if (xp) {
            run_parts(nt ? nt_avx2 : nn_avx2, 24, xp, K, W, ldw, bias, out, ldo, M, K, N, from_out, x, ldx);
            if (xp != small) free(xp);
            return;
        }
    }
#else
    (void)simd;
#endif
    run_parts(part, 24, x, ldx, W, ldw, bias, out, ldo, M, K, N, from_out, NULL, 0);
}

void vk_gemm_nn_ex(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo, int M,
                   int K, int N, int simd) {
    gemm(0, x, ldx, W, ldw, bias, out, ldo, M, K, N, simd, 0);
}

void vk_gemm_nt_ex(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo, int M,
                   int K, int N, int simd) {
    gemm(1, x, ldx, W, ldw, bias, out, ldo, M, K, N, simd, 0);
}

void vk_gemm_nn(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo, int M, int K,
                int N) {
    vk_gemm_nn_ex(x, ldx, W, ldw, bias, out, ldo, M, K, N, 1);
}

void vk_gemm_nt(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo, int M, int K,
                int N) {
    vk_gemm_nt_ex(x, ldx, W, ldw, bias, out, ldo, M, K, N, 1);
}

void vk_gemm_nn_acc(const float *x, int ldx, const float *W, int ldw, float *out, int ldo, int M, int K, int N, int simd) {
    gemm(0, x, ldx, W, ldw, NULL, out, ldo, M, K, N, simd, 1);
}

void vk_gemm_nt_acc(const float *x, int ldx, const float *W, int ldw, float *out, int ldo, int M, int K, int N, int simd) {
    gemm(1, x, ldx, W, ldw, NULL, out, ldo, M, K, N, simd, 1);
}
