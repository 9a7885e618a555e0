// The small per-row ops of the CPU backend (see kernels/backend.h for their contracts). Each row
// is computed by the same scalar or SIMD code whatever n and the thread count, so they are
// batch-invariant by construction; reductions (RmsNorm) run in index order.
#pragma once

#include <cstdint>

#include "kernels/backend.h"
#include "kernels/cpu/thread_pool.h"

namespace ts::cpu {

void Embed(ThreadPool& pool, const Matrix& table, const int32_t* ids, int64_t n, float* out);
void RmsNorm(ThreadPool& pool, const float* x, const float* weight, int64_t n, int64_t dim,
             float eps, float* out);
void Rope(ThreadPool& pool, float* x, int64_t n, int n_heads, int head_dim,
          const int32_t* positions, const float* inv_freq, float mscale, RopeStyle style);
void StoreKv(const KvLayerView& cache, const float* k, const float* v, int64_t n,
             const int32_t* slots);
void SwiGlu(ThreadPool& pool, const float* gate, const float* up, int64_t n, int64_t dim,
            float* out);
void Add(ThreadPool& pool, float* x, const float* y, int64_t count);
void KeyScores(ThreadPool& pool, const KvLayerView& cache, int head, const float* q, int64_t lo,
               int64_t hi, float* scores);

}  // namespace ts::cpu
