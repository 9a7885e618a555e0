// The small ops. SwiGlu's row kernel is SIMD (ops_simd.cc); the rest is scalar, compiled for the
// baseline ISA (no FMA contraction), so every row rounds the same way at any n or thread count.
#include "kernels/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/cpu/dequant.h"
#include "kernels/cpu/ops_simd.h"
#include "kernels/cpu/quant_blocks.h"

namespace ts::cpu {
namespace {

// Rows per task for row-wise ops: small ops on one row are not worth a thread hand-off.
int64_t RowsPerTask(int64_t dim) {
  constexpr int64_t kMinElemsPerTask = 16384;
  return std::max<int64_t>(1, kMinElemsPerTask / std::max<int64_t>(1, dim));
}

template <typename Fn>
void ForRows(ThreadPool& pool, int64_t n, int64_t dim, Fn&& fn) {
  const int64_t per = RowsPerTask(dim);
  const int64_t tasks = (n + per - 1) / per;
  pool.ParallelFor(tasks, [&](int64_t t, int) {
    for (int64_t i = t * per; i < std::min(n, (t + 1) * per); ++i) fn(i);
  });
}

}  // namespace

void Embed(ThreadPool& pool, const Matrix& table, const int32_t* ids, int64_t n, float* out) {
  ForRows(pool, n, table.cols, [&](int64_t i) {
    DequantizeRow(table.dtype, table.Row(ids[i]), out + i * table.cols, table.cols);
  });
}

void RmsNorm(ThreadPool& pool, const float* x, const float* weight, int64_t n, int64_t dim,
             float eps, float* out) {
  ForRows(pool, n, dim, [&](int64_t i) {
    const float* xi = x + i * dim;
    float* oi = out + i * dim;
    float ss = 0.0f;
    for (int64_t j = 0; j < dim; ++j) ss += xi[j] * xi[j];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(dim) + eps);
    for (int64_t j = 0; j < dim; ++j) oi[j] = weight[j] * (xi[j] * inv);
  });
}

void Rope(ThreadPool& pool, float* x, int64_t n, int n_heads, int head_dim,
          const int32_t* positions, const float* inv_freq, float mscale, RopeStyle style) {
  constexpr int kMaxHalf = 256;
  const int half = head_dim / 2;
  ForRows(pool, n, static_cast<int64_t>(n_heads) * head_dim, [&](int64_t i) {
    float cos_stack[2 * kMaxHalf];  // (2, half)
    std::vector<float> cos_heap;    // only for head_dim > 2 * kMaxHalf
    float* cos_t = cos_stack;
    if (half > kMaxHalf) {
      cos_heap.resize(2 * half);
      cos_t = cos_heap.data();
    }
    float* sin_t = cos_t + half;
    for (int j = 0; j < half; ++j) {
      const float angle = static_cast<float>(positions[i]) * inv_freq[j];
      cos_t[j] = std::cos(angle) * mscale;
      sin_t[j] = std::sin(angle) * mscale;
    }
    for (int h = 0; h < n_heads; ++h) {
      float* xh = x + (i * n_heads + h) * head_dim;
      for (int j = 0; j < half; ++j) {
        const int a = style == RopeStyle::kNeox ? j : 2 * j;
        const int b = style == RopeStyle::kNeox ? j + half : 2 * j + 1;
        const float x0 = xh[a], x1 = xh[b];
        xh[a] = x0 * cos_t[j] - x1 * sin_t[j];
        xh[b] = x1 * cos_t[j] + x0 * sin_t[j];
      }
    }
  });
}

void StoreKv(const KvLayerView& cache, const float* k, const float* v, int64_t n,
             const int32_t* slots) {
  const int hd = cache.head_dim;
  for (int64_t i = 0; i < n; ++i) {
    for (int h = 0; h < cache.n_kv_heads; ++h) {
      const float* ks = k + (i * cache.n_kv_heads + h) * hd;
      const float* vs = v + (i * cache.n_kv_heads + h) * hd;
      const int64_t dst = (static_cast<int64_t>(h) * cache.capacity + slots[i]) * hd;
      if (cache.dtype == DType::kBF16) {
        auto* kd = static_cast<uint16_t*>(cache.k) + dst;
        auto* vd = static_cast<uint16_t*>(cache.v) + dst;
        for (int d = 0; d < hd; ++d) {
          kd[d] = F32ToBF16(ks[d]);
          vd[d] = F32ToBF16(vs[d]);
        }
      } else {
        std::memcpy(static_cast<float*>(cache.k) + dst, ks, hd * sizeof(float));
        std::memcpy(static_cast<float*>(cache.v) + dst, vs, hd * sizeof(float));
      }
    }
  }
}

void SwiGlu(ThreadPool& pool, const float* gate, const float* up, int64_t n, int64_t dim,
            float* out) {
  ForRows(pool, n, dim,
          [&](int64_t i) { SwiGluRow(gate + i * dim, up + i * dim, dim, out + i * dim); });
}

void Add(ThreadPool& pool, float* x, const float* y, int64_t count) {
  (void)pool;  // memory-bound and tiny for decode; one pass on the caller
  for (int64_t j = 0; j < count; ++j) x[j] += y[j];
}

// Rows split into fixed chunks; each row is one KeyScoreRows chain, so the thread count does not
// change a score.
void KeyScores(ThreadPool& pool, const KvLayerView& cache, int head, const float* q, int64_t lo,
               int64_t hi, float* scores) {
  constexpr int64_t kChunk = 1024;
  const bool bf16 = cache.dtype == DType::kBF16;
  const size_t elem = bf16 ? 2 : 4;
  const auto* base =
      static_cast<const uint8_t*>(cache.k) +
      (static_cast<size_t>(head) * static_cast<size_t>(cache.capacity) + static_cast<size_t>(lo)) *
          static_cast<size_t>(cache.head_dim) * elem;
  const int64_t n = hi - lo;
  pool.ParallelFor((n + kChunk - 1) / kChunk, [&](int64_t task, int) {
    const int64_t r0 = task * kChunk;
    const int64_t rows = std::min(kChunk, n - r0);
    KeyScoreRows(q, base + static_cast<size_t>(r0) * cache.head_dim * elem, bf16, cache.head_dim,
                 rows, scores + r0);
  });
}

}  // namespace ts::cpu
