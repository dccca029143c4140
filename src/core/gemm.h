/* Row-stable matrix products for the forward pass.
 *
 * Every output element is computed by one fixed sequence of float operations that reads
 * only its own row of x, the weights and the bias: it does not depend on how many rows the
 * call has, where the row sits in the batch, the thread count or the CPU's vector width.
 * So a sequence's activations are bit-identical whatever batch it runs in, which is what
 * lets a patching sweep batch hundreds of cells together and still equal the cell-by-cell
 * runs bit for bit (engine/sweep.c). OpenBLAS cannot promise that: its kernels round a
 * row differently by its position in the call.
 *
 * The contract (s_0 = 0.0f, fma = a correctly rounded fused multiply-add, as fmaf):
 *   out[i][j] = s_K + bias[j],   s_{k+1} = fma(x[i][k], w(k, j), s_k)
 * with w(k, j) = W[k][j] (nn, W is K x N) or W[j][k] (nt, W is N x K, nn.Linear's layout);
 * without bias the "+ bias[j]" is left out. AVX2 + FMA code runs where the CPU has it; the
 * portable code computes the same bits. */
#ifndef VENE_CORE_GEMM_H
#define VENE_CORE_GEMM_H

/* out[M x N] (row stride ldo) = x[M x K] (row stride ldx) * W[K x N] (row stride ldw) + bias. */
void vk_gemm_nn(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo, int M, int K,
                int N);
/* out[M x N] = x[M x K] * W^T, W[N x K] (row stride ldw) + bias. */
void vk_gemm_nt(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo, int M, int K,
                int N);

/* The same with the vector kernels switched off (simd = 0), for tests that check both
 * paths give the same bits. */
void vk_gemm_nn_ex(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo, int M,
                   int K, int N, int simd);
void vk_gemm_nt_ex(const float *x, int ldx, const float *W, int ldw, const float *bias, float *out, int ldo, int M,
                   int K, int N, int simd);

/* Accumulating forms for the backward's activation gradients (no bias): the chain starts
 * from the value out already holds, s_0 = out[i][j], instead of 0; otherwise the contract
 * above. So a row's gradient, like a forward row, never depends on the other rows of the
 * call: the row-restricted backward equals the full one on its rows bit for bit. */
void vk_gemm_nn_acc(const float *x, int ldx, const float *W, int ldw, float *out, int ldo, int M, int K, int N, int simd);
void vk_gemm_nt_acc(const float *x, int ldx, const float *W, int ldw, float *out, int ldo, int M, int K, int N, int simd);

/* 1 when the vector kernels run on this CPU (for benchmarks and tests to report). */
int vk_gemm_vectorized(void);

#endif
