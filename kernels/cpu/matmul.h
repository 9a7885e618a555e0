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
// Decode (n = 1) streams each weight row once, threads taking contiguous chunks of rows (of equal
// size to within one 16-row sub-tile); prefill walks each chunk in tiles of (16 weight rows) x
// (64 x rows) so a weight tile stays in L1 while it meets many x rows. Within a tile the integer
// kernels take the x rows in as few groups of at most 8 as possible (a verify batch of 2..16
// rows: 7 = one group of 7, 12 = 6 + 6), each weight block being unpacked once per group; the
// R-row kernel runs the one-row arithmetic for each of its rows, so grouping changes no bits.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/cpu/thread_pool.h"
#include "kernels/dtype.h"

namespace ts::cpu {

// x rows quantized to 8 bits in 32-element blocks (the activation side of the integer kernels),
// stored by block pairs: pair p of all n rows, then pair p + 1, so the rows of a group that
// shares a weight block pair sit next to each other at fixed offsets. When cols / 32 is odd the
// last pair's second block is zeros (q and ds), which add exact zeros.
inline constexpr int64_t kXPairBytes = 64;  // 8-bit values of one row's block pair
inline constexpr int64_t kXPairFloats = 4;  // [d, d * sum(q)] of the pair's two blocks
struct Q8Rows {
  const int8_t* q = nullptr;  // (cols / 64 rounded up, stride, 64)
  const float* ds = nullptr;  // (cols / 64 rounded up, stride, 4): block scale d, d * sum(q)
  int64_t stride = 0;         // rows per pair slab (the batch's n)
  int64_t cols = 0;
};

// Block b of the x row whose pair 0 is at q (ds) in a Q8Rows layout with `stride` rows.
template <typename T>
T* XBlock(T* q, int64_t stride, int64_t b) {
  return q + (b / 2) * stride * kXPairBytes + (b % 2) * (kXPairBytes / 2);
}
template <typename T>
T* XdsBlock(T* ds, int64_t stride, int64_t b) {
  return ds + (b / 2) * stride * kXPairFloats + (b % 2) * (kXPairFloats / 2);
}

// Working memory reused across calls (grows, never shrinks; steady-state decode allocates
// nothing).
struct MatMulScratch {
  std::vector<int8_t> q;                  // Q8Rows::q of n rows, + 64 bytes to align it
  std::vector<float> ds;                  // Q8Rows::ds of n rows
  std::vector<std::vector<float>> wtile;  // per thread: (tile rows, cols) dequantized weights
};

// With `bounds` (c_0 = 0 < c_1 < ... < c_S = w.cols; internal bounds multiples of 64): y holds S
// products, y + s * n * w.rows = x[:, c_s:c_s+1] * W[:, c_s:c_s+1]^T, each the very bits a matrix
// of those columns alone gives (Backend::MatMulSegments). bias must be null then.
void MatMul(ThreadPool& pool, MatMulScratch& scratch, const Matrix& w, const float* x, int64_t n,
            float* y, const float* bias, std::span<const int64_t> bounds = {});

// ---- per-target kernels (matmul_kernels.cc) ----------------------------------------------------

// x (cols) quantized per 32-element block, round to nearest even, into the row of a Q8Rows
// layout with `stride` rows whose pair 0 is at q (64 bytes) and ds (4 floats).
void QuantizeActivationRow(const float* x, int64_t cols, int64_t stride, int8_t* q, float* ds);

// y[i * ldy + r] = dot(x row i, weight row r) (+ bias[r]) for r in [r0, r1), i in [i0, i1).
// x is f32 (n, cols) for float and K-quant weights, xq the quantized rows for the others.
// wbuf: at least (r1 - r0) * cols floats, used for K-quants. With bounds (n_segments + 1 column
// bounds), segment s's dot products go to y + s * segment_stride.
void MatMulTile(const Matrix& w, int64_t r0, int64_t r1, const float* x, const Q8Rows& xq,
                int64_t i0, int64_t i1, float* y, int64_t ldy, const float* bias, float* wbuf,
                const int64_t* bounds = nullptr, int64_t n_segments = 1,
                int64_t segment_stride = 0);

// Name of the SIMD target the dispatcher chose (for logs and benchmarks).
const char* MatMulTargetName();

}  // namespace ts::cpu
