// Dense f32/f64 matrix product (training the draft heads): C (m, n) = A (m, k) * B (n, k)^T,
// both operands row-major with the shared dimension k contiguous ("NT" layout), strided rows.
// The head trainer uses it for the lm_head products (logits = normed * lm_head^T and the
// backward through it, with a transposed copy) and for the small products of the heads' layers;
// the weight matrices of a model go through Backend::MatMul instead (quantized, f32 outputs only).
//
// Algorithm: the k dimension is cut into chunks of kKChunk elements processed one after the
// other (so a chunk of A and a tile of B stay in L2); inside a chunk the n dimension is split
// into tiles of kNTile rows of B, one thread-pool task each, and a task walks its tile in groups
// of 3 B rows by groups of 4 A rows with a register-blocked 4x3 micro-kernel (12 vector
// accumulators of at most 256 bits: on Zen 4, 512-bit vectors ran this kernel at half the rate,
// 42 vs 82 GFLOP/s on one thread for 256 x 49152 x 576). Every element of C is one dot product per
// chunk, accumulated in a fixed order (lanes, then Highway's lane reduction, then the scalar tail,
// then the chunks in order), so results do not depend on the thread count or on which thread runs a
// task; they depend on the SIMD target (the lane count), which Highway picks at run time like every
// kernel here.
#pragma once

#include <cstdint>

#include "kernels/cpu/thread_pool.h"

namespace ts::cpu {

// C (m, n) = A (m, k) * B (n, k)^T, or C += that product when `accumulate`. lda, ldb, ldc are
// row strides in elements. pool may be nullptr (single-threaded).
void DenseGemmNT(ThreadPool* pool, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate);
void DenseGemmNT(ThreadPool* pool, int64_t m, int64_t n, int64_t k, const double* a, int64_t lda,
                 const double* b, int64_t ldb, double* c, int64_t ldc, bool accumulate);

// Name of the SIMD target DenseGemmNT runs on this CPU (e.g. "AVX3_ZEN4"), for logs.
const char* DenseGemmTargetName();

}  // namespace ts::cpu
