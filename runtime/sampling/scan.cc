// Compiled once per SIMD target (Highway's foreach_target) and dispatched at run time. Every op
// used is exact (compare, min/max, IEEE division), so all targets give bit-identical results.
#include "runtime/sampling/scan.h"

#include <algorithm>
#include <cmath>
#include <limits>

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "runtime/sampling/scan.cc"
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"

HWY_BEFORE_NAMESPACE();
namespace ts::sampling_scan {
namespace HWY_NAMESPACE {
namespace {

namespace hn = hwy::HWY_NAMESPACE;
using D = hn::ScalableTag<float>;

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kFloatMax = std::numeric_limits<float>::max();

inline float Sanitize(float v) { return std::isnan(v) ? -kInf : std::min(v, kFloatMax); }

}  // namespace

float ScaleSanitizeMaxImpl(const float* logits, float temperature, int64_t n, float* z) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto neg_inf = hn::Set(d, -kInf);
  const auto float_max = hn::Set(d, kFloatMax);
  const auto t = hn::Set(d, temperature);
  const bool scale = temperature != 1.0f;
  // Two accumulators so the max is not one serial dependency chain.
  auto max0 = neg_inf;
  auto max1 = neg_inf;
  int64_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    auto a = hn::LoadU(d, logits + i);
    auto b = hn::LoadU(d, logits + i + lanes);
    if (scale) {
      a = a / t;
      b = b / t;
    }
    a = hn::IfThenElse(hn::IsNaN(a), neg_inf, hn::Min(a, float_max));
    b = hn::IfThenElse(hn::IsNaN(b), neg_inf, hn::Min(b, float_max));
    hn::StoreU(a, d, z + i);
    hn::StoreU(b, d, z + i + lanes);
    max0 = hn::Max(max0, a);
    max1 = hn::Max(max1, b);
  }
  float max = hn::GetLane(hn::MaxOfLanes(d, hn::Max(max0, max1)));
  for (; i < n; ++i) {
    z[i] = Sanitize(scale ? logits[i] / temperature : logits[i]);
    max = std::max(max, z[i]);
  }
  return max;
}

float MaxImpl(const float* z, int64_t n) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  auto max0 = hn::Set(d, -kInf);
  auto max1 = max0;
  int64_t i = 0;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    max0 = hn::Max(max0, hn::LoadU(d, z + i));
    max1 = hn::Max(max1, hn::LoadU(d, z + i + lanes));
  }
  float max = hn::GetLane(hn::MaxOfLanes(d, hn::Max(max0, max1)));
  for (; i < n; ++i) max = std::max(max, z[i]);
  return max;
}

int64_t FindFirstEqualImpl(const float* z, int64_t from, int64_t n, float value) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto v = hn::Set(d, value);
  int64_t i = from;
  for (; i + lanes <= n; i += lanes) {
    const intptr_t hit = hn::FindFirstTrue(d, hn::LoadU(d, z + i) == v);
    if (hit >= 0) return i + hit;
  }
  for (; i < n; ++i) {
    if (z[i] == value) return i;
  }
  return n;
}

int64_t FindFirstAtLeastImpl(const float* z, int64_t from, int64_t n, float value) {
  const D d;
  const int64_t lanes = static_cast<int64_t>(hn::Lanes(d));
  const auto v = hn::Set(d, value);
  int64_t i = from;
  for (; i + 2 * lanes <= n; i += 2 * lanes) {
    const auto a = hn::LoadU(d, z + i) >= v;
    const auto b = hn::LoadU(d, z + i + lanes) >= v;
    if (hn::AllFalse(d, hn::Or(a, b))) continue;
    const intptr_t hit = hn::FindFirstTrue(d, a);
    return hit >= 0 ? i + hit : i + lanes + hn::FindFirstTrue(d, b);
  }
  for (; i < n; ++i) {
    if (z[i] >= value) return i;
  }
  return n;
}

}  // namespace HWY_NAMESPACE
}  // namespace ts::sampling_scan
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ts::sampling_scan {

HWY_EXPORT(ScaleSanitizeMaxImpl);
HWY_EXPORT(MaxImpl);
HWY_EXPORT(FindFirstEqualImpl);
HWY_EXPORT(FindFirstAtLeastImpl);

float ScaleSanitizeMax(const float* logits, float temperature, int64_t n, float* z) {
  return HWY_DYNAMIC_DISPATCH(ScaleSanitizeMaxImpl)(logits, temperature, n, z);
}

float Max(const float* z, int64_t n) { return HWY_DYNAMIC_DISPATCH(MaxImpl)(z, n); }

int64_t FindFirstEqual(const float* z, int64_t from, int64_t n, float value) {
  return HWY_DYNAMIC_DISPATCH(FindFirstEqualImpl)(z, from, n, value);
}

int64_t FindFirstAtLeast(const float* z, int64_t from, int64_t n, float value) {
  return HWY_DYNAMIC_DISPATCH(FindFirstAtLeastImpl)(z, from, n, value);
}

}  // namespace ts::sampling_scan
#endif  // HWY_ONCE
