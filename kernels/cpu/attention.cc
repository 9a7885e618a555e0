// Masked online-softmax attention, compiled per SIMD target (see attention.h for the algorithm
// and why it is batch- and tree-invariant).

#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/attention.cc"
// foreach_target.h must come first, then highway.h, then contrib headers.
// clang-format off
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
// clang-format on

#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/cpu/quant_blocks.h"

HWY_BEFORE_NAMESPACE();
namespace ts::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

template <typename KT>
HWY_INLINE hn::Vec<hn::ScalableTag<float>> LoadKv(hn::ScalableTag<float> df, const KT* p) {
  if constexpr (std::is_same_v<KT, float>) {
    return hn::LoadU(df, p);
  } else {
    const hn::Rebind<hwy::bfloat16_t, decltype(df)> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::bfloat16_t*>(p)));
  }
}

HWY_INLINE float ScalarKv(float v) { return v; }
HWY_INLINE float ScalarKv(uint16_t v) { return BF16ToF32(v); }

// q . k with a fixed order for a given head_dim (vector chunks, lane reduction, scalar tail).
template <typename KT>
HWY_INLINE float DotQK(const float* q, const KT* k, int head_dim) {
  const hn::ScalableTag<float> df;
  const int N = static_cast<int>(hn::Lanes(df));
  auto a0 = hn::Zero(df), a1 = hn::Zero(df);
  int d = 0;
  for (; d + 2 * N <= head_dim; d += 2 * N) {
    a0 = hn::MulAdd(hn::LoadU(df, q + d), LoadKv(df, k + d), a0);
    a1 = hn::MulAdd(hn::LoadU(df, q + d + N), LoadKv(df, k + d + N), a1);
  }
  for (; d + N <= head_dim; d += N) a0 = hn::MulAdd(hn::LoadU(df, q + d), LoadKv(df, k + d), a0);
  float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(a0, a1)));
  for (; d < head_dim; ++d) sum += q[d] * ScalarKv(k[d]);
  return sum;
}

// acc (head_dim) = acc * c
HWY_INLINE void ScaleAcc(float* acc, float c, int head_dim) {
  const hn::ScalableTag<float> df;
  const int N = static_cast<int>(hn::Lanes(df));
  int d = 0;
  for (; d + N <= head_dim; d += N)
    hn::StoreU(hn::Mul(hn::LoadU(df, acc + d), hn::Set(df, c)), df, acc + d);
  for (; d < head_dim; ++d) acc[d] = acc[d] * c;
}

// acc (head_dim) += p * v
template <typename KT>
HWY_INLINE void AccumulateV(float* acc, float p, const KT* v, int head_dim) {
  const hn::ScalableTag<float> df;
  const int N = static_cast<int>(hn::Lanes(df));
  int d = 0;
  for (; d + N <= head_dim; d += N) {
    hn::StoreU(hn::MulAdd(hn::Set(df, p), LoadKv(df, v + d), hn::LoadU(df, acc + d)), df, acc + d);
  }
  for (; d < head_dim; ++d) acc[d] = acc[d] + p * ScalarKv(v[d]);
}

// Online-softmax state of one (query, head).
struct SoftmaxState {
  float m = -std::numeric_limits<float>::infinity();
  float l = 0.0f;
};

// One block of `count` (<= kAttnBlock) logical keys at cache slots `slots`.
template <typename KT>
HWY_INLINE void AttendBlock(const float* q, const KT* k_head, const KT* v_head, int head_dim,
                            const int32_t* slots, int count, float scale, SoftmaxState& st,
                            float* acc) {
  const hn::ScalableTag<float> df;
  constexpr int kPad = kAttnBlock + 16;
  alignas(64) float s[kPad];
  float bmax = -std::numeric_limits<float>::infinity();
  for (int t = 0; t < count; ++t) {
    s[t] = DotQK(q, k_head + static_cast<int64_t>(slots[t]) * head_dim, head_dim) * scale;
    bmax = std::max(bmax, s[t]);
  }
  const float m_new = std::max(st.m, bmax);
  const float c = std::exp(st.m - m_new);  // 0 for the first block (m = -inf)
  // p_t = exp(s_t - m'), vectorized; lanes past `count` are ignored.
  const int N = static_cast<int>(hn::Lanes(df));
  for (int t = count; t < kPad; ++t) s[t] = m_new;
  for (int t = 0; t < count; t += N) {
    hn::Store(hn::Exp(df, hn::Sub(hn::Load(df, s + t), hn::Set(df, m_new))), df, s + t);
  }
  float l = st.l * c;
  ScaleAcc(acc, c, head_dim);
  for (int t = 0; t < count; ++t) {
    l += s[t];
    AccumulateV(acc, s[t], v_head + static_cast<int64_t>(slots[t]) * head_dim, head_dim);
  }
  st.l = l;
  st.m = m_new;
}

template <typename KT>
void AttendOneT(const float* q, const KvLayerView& cache, int kv_head, const AttentionMask& mask,
                int64_t i, float scale, float* out) {
  const int head_dim = cache.head_dim;
  const int64_t head_offset = static_cast<int64_t>(kv_head) * cache.capacity * head_dim;
  const KT* k_head = static_cast<const KT*>(cache.k) + head_offset;
  const KT* v_head = static_cast<const KT*>(cache.v) + head_offset;
  const int64_t prefix = mask.prefix_len[i];
  const int32_t* extra = nullptr;
  int64_t n_extra = 0;
  if (mask.extra_begin != nullptr) {
    extra = mask.extra_slots + mask.extra_begin[i];
    n_extra = mask.extra_begin[i + 1] - mask.extra_begin[i];
  }
  const int64_t len = prefix + n_extra;
  alignas(64) float acc_stack[kMaxHeadDim];  // (head_dim)
  std::vector<float> acc_heap;               // only for head_dim > kMaxHeadDim
  float* acc = acc_stack;
  if (head_dim > kMaxHeadDim) {
    acc_heap.resize(head_dim);
    acc = acc_heap.data();
  }
  std::fill(acc, acc + head_dim, 0.0f);
  SoftmaxState st;
  int32_t slots[kAttnBlock];
  for (int64_t j0 = 0; j0 < len; j0 += kAttnBlock) {
    const int count = static_cast<int>(std::min<int64_t>(kAttnBlock, len - j0));
    for (int t = 0; t < count; ++t) {
      const int64_t j = j0 + t;
      slots[t] = j < prefix ? static_cast<int32_t>(j) : extra[j - prefix];
    }
    AttendBlock(q, k_head, v_head, head_dim, slots, count, scale, st, acc);
  }
  const float inv = len > 0 ? 1.0f / st.l : 0.0f;
  for (int d = 0; d < head_dim; ++d) out[d] = acc[d] * inv;
}

void AttendOne(const float* q, const KvLayerView& cache, int kv_head, const AttentionMask& mask,
               int64_t i, float scale, float* out) {
  if (cache.dtype == DType::kBF16) {
    AttendOneT<uint16_t>(q, cache, kv_head, mask, i, scale, out);
  } else {
    AttendOneT<float>(q, cache, kv_head, mask, i, scale, out);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace ts::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ts::cpu {

HWY_EXPORT(AttendOne);

void AttendOne(const float* q, const KvLayerView& cache, int kv_head, const AttentionMask& mask,
               int64_t i, float scale, float* out) {
  HWY_DYNAMIC_DISPATCH(AttendOne)(q, cache, kv_head, mask, i, scale, out);
}

void Attention(ThreadPool& pool, const float* q, int64_t n, int n_heads, const KvLayerView& cache,
               const AttentionMask& mask, float scale, float* out) {
  const int head_dim = cache.head_dim;
  const int group = n_heads / cache.n_kv_heads;  // query heads per KV head
  // Tasks are chunks of consecutive (query, head) pairs; heads of one query share a chunk.
  const int64_t pairs = n * n_heads;
  const int64_t chunk =
      std::max<int64_t>(1, std::min<int64_t>(n_heads, pairs / (4 * pool.NumThreads()) + 1));
  const int64_t n_tasks = (pairs + chunk - 1) / chunk;
  pool.ParallelFor(n_tasks, [&](int64_t task, int) {
    const int64_t end = std::min(pairs, (task + 1) * chunk);
    for (int64_t p = task * chunk; p < end; ++p) {
      const int64_t i = p / n_heads;
      const int h = static_cast<int>(p % n_heads);
      const int64_t off = (i * n_heads + h) * head_dim;
      AttendOne(q + off, cache, h / group, mask, i, scale, out + off);
    }
  });
}

}  // namespace ts::cpu
#endif  // HWY_ONCE
