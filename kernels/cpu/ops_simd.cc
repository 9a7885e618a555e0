// SIMD row kernels of the small ops (per target, chosen at run time). Each row is one call, so
// results do not depend on n or the thread split.

#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/ops_simd.cc"
// foreach_target.h must come first, then highway.h, then contrib headers.
// clang-format off
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
// clang-format on

#include "kernels/cpu/ops_simd.h"

#include <cmath>
#include <cstring>
#include <type_traits>

#include "kernels/cpu/quant_blocks.h"

HWY_BEFORE_NAMESPACE();
namespace ts::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

// out (dim) = gate / (1 + exp(-gate)) * up; exp's argument is clamped to 88 (e^88 < FLT_MAX),
// which changes silu(g) only for g < -88 where it is below 1e-36 in magnitude.
void SwiGluRow(const float* gate, const float* up, int64_t dim, float* out) {
  const hn::ScalableTag<float> df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const auto one = hn::Set(df, 1.0f), limit = hn::Set(df, 88.0f);
  int64_t j = 0;
  for (; j + N <= dim; j += N) {
    const auto g = hn::LoadU(df, gate + j);
    const auto e = hn::Exp(df, hn::Min(hn::Neg(g), limit));
    hn::StoreU(hn::Mul(hn::Div(g, hn::Add(one, e)), hn::LoadU(df, up + j)), df, out + j);
  }
  for (; j < dim; ++j) {
    const float g = gate[j];
    out[j] = g / (1.0f + std::exp(std::fmin(-g, 88.0f))) * up[j];
  }
}

template <typename T>
HWY_INLINE void KeyScoreRowsT(const float* HWY_RESTRICT q, const T* HWY_RESTRICT k, int head_dim,
                              int64_t n, float* HWY_RESTRICT out) {
  const hn::ScalableTag<float> df;
  const hn::Rebind<T, decltype(df)> dk;
  const int N = static_cast<int>(hn::Lanes(df));
  const int body = head_dim - head_dim % N;
  for (int64_t i = 0; i < n; ++i) {
    const T* row = k + i * head_dim;
    auto acc = hn::Zero(df);
    for (int d = 0; d < body; d += N) {
      if constexpr (std::is_same_v<T, float>) {
        acc = hn::MulAdd(hn::LoadU(df, q + d), hn::LoadU(dk, row + d), acc);
      } else {
        acc = hn::MulAdd(hn::LoadU(df, q + d), hn::PromoteTo(df, hn::LoadU(dk, row + d)), acc);
      }
    }
    float s = hn::GetLane(hn::SumOfLanes(df, acc));
    for (int d = body; d < head_dim; ++d) {
      if constexpr (std::is_same_v<T, float>) {
        s += q[d] * row[d];
      } else {
        uint16_t bits;
        std::memcpy(&bits, &row[d], 2);
        s += q[d] * BF16ToF32(bits);
      }
    }
    out[i] = s;
  }
}

void KeyScoreRows(const float* q, const void* k, bool bf16, int head_dim, int64_t n, float* out) {
  if (bf16) {
    KeyScoreRowsT(q, static_cast<const hwy::bfloat16_t*>(k), head_dim, n, out);
  } else {
    KeyScoreRowsT(q, static_cast<const float*>(k), head_dim, n, out);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace ts::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ts::cpu {

HWY_EXPORT(SwiGluRow);
HWY_EXPORT(KeyScoreRows);

void SwiGluRow(const float* gate, const float* up, int64_t dim, float* out) {
  HWY_DYNAMIC_DISPATCH(SwiGluRow)(gate, up, dim, out);
}

void KeyScoreRows(const float* q, const void* k, bool bf16, int head_dim, int64_t n, float* out) {
  HWY_DYNAMIC_DISPATCH(KeyScoreRows)(q, k, bf16, head_dim, n, out);
}

}  // namespace ts::cpu
#endif  // HWY_ONCE
