// MatMul on the CPU: y (n, w.rows) = x (n, w.cols) * W^T (+ bias), every stored DType.
//
// How it stays batch-invariant (kernels/backend.h): each output element y[i][r] is produced by
// one call of the row-dot kernel for (x row i, weight row r) whose arithmetic depends only on
// w.cols. Batching and threading only change which (i, r) pairs a task visits and in what
// order; remainder rows go through the very same kernel.
//
//  * Q8_0 / Q4_0 / Q4_1 weights: each x row is first quantized to 8 bits in 32-element blocks
//    (scale d and d * sum(q) per block), once per row; the kernel multiplies int8 by int8/uint4
//    in integer SIMD (AVX-512 VNNI, or AVX2/AVX-512 maddubs), scales each block's partial sums
//    and accumulates them in float lanes, then reduces the lanes in a fixed order.
//  * F32 / F16 / BF16 weights: a float dot product with a fixed lane and accumulator layout.
//  * K-quants: a tile of weight rows is dequantized (scalar reference) into a per-thread buffer,
//    then the F32 kernel runs; slower, but exact and invariant.
//
// Decode (n = 1) streams each weight row once, threads taking contiguous chunks of rows; prefill
// walks each chunk in tiles of (16 weight rows) x (64 x rows) so a weight tile stays in L1 while
// it meets many x rows.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/cpu/thread_pool.h"
#include "kernels/dtype.h"

namespace ts::cpu {

// x rows quantized to 8 bits in 32-element blocks (the activation side of the integer kernels).
struct Q8Rows {
  const int8_t* q = nullptr;  // (n, cols)
  const float* ds = nullptr;  // (n, cols / 32, 2): block scale d, then d * sum of the block's q
  int64_t cols = 0;
};

// Working memory reused across calls (grows, never shrinks; steady-state decode allocates
// nothing).
struct MatMulScratch {
  std::vector<int8_t> q;                  // (n, cols)
  std::vector<float> ds;                  // (n, cols / 32, 2)
  std::vector<std::vector<float>> wtile;  // per thread: (tile rows, cols) dequantized weights
};

void MatMul(ThreadPool& pool, MatMulScratch& scratch, const Matrix& w, const float* x, int64_t n,
            float* y, const float* bias);

// ---- per-target kernels (matmul_kernels.cc) ----------------------------------------------------

// q (cols), ds (cols / 32, 2) = x (cols) quantized per 32-element block, round to nearest even.
void QuantizeActivationRow(const float* x, int64_t cols, int8_t* q, float* ds);

// y[i * ldy + r] = dot(x row i, weight row r) (+ bias[r]) for r in [r0, r1), i in [i0, i1).
// x is f32 (n, cols) for float and K-quant weights, xq the quantized rows for the others.
// wbuf: at least (r1 - r0) * cols floats, used for K-quants.
void MatMulTile(const Matrix& w, int64_t r0, int64_t r1, const float* x, const Q8Rows& xq,
                int64_t i0, int64_t i1, float* y, int64_t ldy, const float* bias, float* wbuf);

// Name of the SIMD target the dispatcher chose (for logs and benchmarks).
const char* MatMulTargetName();

}  // namespace ts::cpu
