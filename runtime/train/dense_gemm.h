// Dense f32/f64 matrix product for training the draft heads: C (m, n) = A (m, k) * B (n, k)^T,
// both operands row-major with the shared dimension k contiguous ("NT" layout). The trainer
// needs it for the lm_head products (logits = normed * lm_head^T, and the backward
// d_normed = d_logits * lm_head, written as d_logits * (lm_head^T)^T with a transposed copy), and
// for the small (hidden, hidden) products of the heads' linear layers.
//
// Algorithm: the k dimension is cut into chunks of kKChunk elements processed one after the
// other (so a chunk of A and a tile of B stay in L2); inside a chunk the n dimension is split
// into tiles of kNTile rows of B, one thread-pool task each, and a task walks its tile in groups
// of 3 B rows by groups of 4 A rows with a register-blocked 4x3 micro-kernel (12 vector
// accumulators of 32 bytes: 8 floats or 4 doubles). Every element of C is one dot product per
// chunk, accumulated in a fixed order (lanes, then a fixed lane reduction, then the chunks in
// order), so results do not depend on the thread count or on which thread runs a task.
//
// On x86-64 the same code is compiled twice, once for AVX+FMA (chosen at run time when the CPU
// has both) and once for the baseline ISA.
#pragma once

#include <cstdint>

#include "kernels/cpu/thread_pool.h"

namespace ts::train {

// C (m, n) = A (m, k) * B (n, k)^T, or C += that product when `accumulate`. lda, ldb, ldc are
// row strides in elements. pool may be nullptr (single-threaded).
template <typename T>
void GemmNT(cpu::ThreadPool* pool, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
            const T* b, int64_t ldb, T* c, int64_t ldc, bool accumulate);

extern template void GemmNT<float>(cpu::ThreadPool*, int64_t, int64_t, int64_t, const float*,
                                   int64_t, const float*, int64_t, float*, int64_t, bool);
extern template void GemmNT<double>(cpu::ThreadPool*, int64_t, int64_t, int64_t, const double*,
                                    int64_t, const double*, int64_t, double*, int64_t, bool);

// Name of the code path GemmNT uses on this CPU ("avx+fma" or "baseline"), for logs.
const char* GemmTargetName();

}  // namespace ts::train
