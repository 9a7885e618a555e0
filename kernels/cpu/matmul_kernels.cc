// Row-dot kernels of MatMul, compiled once per SIMD target (Highway foreach_target) and chosen
// at run time. See matmul.h for the batch-invariance argument: every output element is one call
// of one kernel below, whose operation sequence depends only on the number of columns.
//
// Integer kernels (Q8_0 / Q4_0 / Q4_1 weights times 8-bit activations), per 32-element block b:
//   isum_lanes = int8 products summed in groups of 4 (AVX-512 VNNI) or 2+2 (maddubs + madd),
//   acc_lanes += (dw_b * dx_b) * float(isum_lanes)        (one FMA per lane; lanes of a block)
//   mterm     += mw_b * (dx_b * sum(qx_b))                 (Q4_1 min; Q4_0 uses mw = -8 dw)
// and finally y = sum(acc_lanes) + mterm. The integer sums are exact; only the float steps round.
// AVX-512 handles two blocks per 512-bit vector (lanes 0-7 and 8-15), AVX2 one block per vector.

#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL  // compile the AVX-512 VNNI target too (chosen only where supported)
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/matmul_kernels.cc"
// foreach_target.h must come first, then highway.h, then contrib headers.
// clang-format off
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on

#include <cmath>
#include <cstring>

#include "kernels/cpu/dequant.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/quant_blocks.h"

#if HWY_ARCH_X86
#include <immintrin.h>
#endif

HWY_BEFORE_NAMESPACE();
namespace ts::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

#undef TS_MATMUL_AVX512
#undef TS_MATMUL_AVX2
#undef TS_INT8_DOT_ATTR
#if HWY_TARGET == HWY_AVX3_DL
// Highway 1.0.3's AVX3_DL target string lacks avx512vnni (the CPU check requires it), so the
// integer kernels add it themselves.
#define TS_INT8_DOT_ATTR __attribute__((target("avx512vnni")))
#else
#define TS_INT8_DOT_ATTR
#endif
#if HWY_TARGET == HWY_AVX3 || HWY_TARGET == HWY_AVX3_DL
#define TS_MATMUL_AVX512 1
#define TS_MATMUL_AVX2 0
#elif HWY_TARGET == HWY_AVX2
#define TS_MATMUL_AVX512 0
#define TS_MATMUL_AVX2 1
#else
#define TS_MATMUL_AVX512 0
#define TS_MATMUL_AVX2 0
#endif

// ---- float dot products ----------------------------------------------------------------------

template <typename WT>
HWY_INLINE hn::Vec<hn::ScalableTag<float>> LoadW(hn::ScalableTag<float> df, const WT* p) {
  if constexpr (std::is_same_v<WT, float>) {
    return hn::LoadU(df, p);
  } else {
    const hn::Rebind<WT, decltype(df)> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, p));
  }
}

HWY_INLINE float ScalarW(float v) { return v; }
HWY_INLINE float ScalarW(hwy::float16_t v) {
  uint16_t bits;
  std::memcpy(&bits, &v, 2);
  return F16ToF32(bits);
}
HWY_INLINE float ScalarW(hwy::bfloat16_t v) {
  uint16_t bits;
  std::memcpy(&bits, &v, 2);
  return BF16ToF32(bits);
}

// Four accumulators over 4N-element chunks, then N-element chunks into the first, a fixed tree
// to combine them, a lane reduction and a scalar tail; the order depends only on n.
template <typename WT>
HWY_NOINLINE float DotFloat(const float* x, const WT* w, int64_t n) {
  const hn::ScalableTag<float> df;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  auto a0 = hn::Zero(df), a1 = hn::Zero(df), a2 = hn::Zero(df), a3 = hn::Zero(df);
  int64_t i = 0;
  for (; i + 4 * N <= n; i += 4 * N) {
    a0 = hn::MulAdd(hn::LoadU(df, x + i), LoadW(df, w + i), a0);
    a1 = hn::MulAdd(hn::LoadU(df, x + i + N), LoadW(df, w + i + N), a1);
    a2 = hn::MulAdd(hn::LoadU(df, x + i + 2 * N), LoadW(df, w + i + 2 * N), a2);
    a3 = hn::MulAdd(hn::LoadU(df, x + i + 3 * N), LoadW(df, w + i + 3 * N), a3);
  }
  for (; i + N <= n; i += N) a0 = hn::MulAdd(hn::LoadU(df, x + i), LoadW(df, w + i), a0);
  float sum = hn::GetLane(hn::SumOfLanes(df, hn::Add(hn::Add(a0, a1), hn::Add(a2, a3))));
  for (; i < n; ++i) sum += x[i] * ScalarW(w[i]);
  return sum;
}

// ---- integer kernels -------------------------------------------------------------------------

#if TS_MATMUL_AVX512
// 16 int32 lanes: lanes 0-7 sum block A's products, lanes 8-15 block B's. w is unsigned (0..255),
// x signed; every pair sum fits int16 for our operands (|w| <= 128, |x| <= 127).
TS_INT8_DOT_ATTR HWY_INLINE __m512i DotU8S8(__m512i w, __m512i x) {
#if HWY_TARGET == HWY_AVX3_DL
  return _mm512_dpbusd_epi32(_mm512_setzero_si512(), w, x);
#else
  return _mm512_madd_epi16(_mm512_maddubs_epi16(w, x), _mm512_set1_epi16(1));
#endif
}

// Broadcasts lane 0 of s to lanes 0-7 and lane 2 to lanes 8-15.
HWY_INLINE __m512 PairScale(__m128 s) {
  const __m512i idx = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_permutexvar_ps(idx, _mm512_castps128_ps512(s));
}

HWY_INLINE float ReduceLanes(__m512 acc) {
  const hn::ScalableTag<float> df;
  return hn::GetLane(hn::SumOfLanes(df, hn::VFromD<decltype(df)>{acc}));
}

HWY_INLINE uint32_t Load32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
HWY_INLINE uint32_t Load16(const uint8_t* p) {
  uint16_t v;
  std::memcpy(&v, p, 2);
  return v;
}

// [dA, dA, dB, dB] from the f16 scales at the start of blocks a and b.
HWY_INLINE __m128 PairF16Scales(const uint8_t* a, const uint8_t* b) {
  const __m128 d2 =
      _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(Load16(a) | (Load16(b) << 16))));
  return _mm_unpacklo_ps(d2, d2);
}

// Activation 8-bit values of blocks b, b+1 (or of block b only, zero-extended) and their
// metadata [dxA, sxA, dxB, sxB].
HWY_INLINE __m512i LoadXPair(const int8_t* xq, int64_t b, bool single) {
  return single ? _mm512_maskz_loadu_epi8(0xFFFFFFFFull, xq + b * kQK)
                : _mm512_loadu_si512(xq + b * kQK);
}
HWY_INLINE __m128 LoadXdsPair(const float* xds, int64_t b, bool single) {
  return single ? _mm_castpd_ps(_mm_load_sd(reinterpret_cast<const double*>(xds + 2 * b)))
                : _mm_loadu_ps(xds + 2 * b);
}

// Q4_0 or Q4_1 weights against R activation rows at once (prefill shares the weight unpack),
// two blocks per step. Every output runs the same instruction sequence whatever R, so R = 4 and
// R = 1 give identical bits. An odd last block pairs with itself, its twin's activation and
// scales zeroed, so it adds exact zeros.
template <bool kQ4_0, int R>
TS_INT8_DOT_ATTR HWY_NOINLINE void DotQ4(const uint8_t* wrow, const int8_t* const* xq,
                                         const float* const* xds, int64_t nb, float* out) {
  constexpr int kBytes = kQ4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ4_1);
  constexpr int kQsOffset = kQ4_0 ? 2 : 4;
  const __m512i low4 = _mm512_set1_epi8(0x0F);
  const __m128 q4_0_mins = _mm_setr_ps(1.0f, -8.0f, 1.0f, -8.0f);
  __m512 acc[R];
  __m128 macc[R];  // lanes 1, 3: min terms of blocks A, B
  for (int k = 0; k < R; ++k) {
    acc[k] = _mm512_setzero_ps();
    macc[k] = _mm_setzero_ps();
  }
  for (int64_t b = 0; b < nb; b += 2) {
    const bool single = b + 1 == nb;
    const uint8_t* ba = wrow + b * kBytes;
    const uint8_t* bb = single ? ba : ba + kBytes;
    const __m128i qa = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ba + kQsOffset));
    const __m128i qb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bb + kQsOffset));
    const __m256i ab = _mm256_set_m128i(qb, qa);
    // [qa, qb, qa >> 4, qb >> 4] -> [qa lo, qa hi, qb lo, qb hi] = elements in x order.
    __m512i wq = _mm512_inserti64x4(_mm512_castsi256_si512(ab), _mm256_srli_epi16(ab, 4), 1);
    wq = _mm512_and_si512(_mm512_shuffle_i64x2(wq, wq, 0xD8), low4);
    __m128 dm;  // [dA, mA, dB, mB]
    if constexpr (kQ4_0) {
      dm = _mm_mul_ps(PairF16Scales(ba, bb), q4_0_mins);
    } else {
      dm = _mm_cvtph_ps(_mm_insert_epi32(_mm_cvtsi32_si128(static_cast<int>(Load32(ba))),
                                         static_cast<int>(Load32(bb)), 1));
    }
    for (int k = 0; k < R; ++k) {
      const __m512 isum = _mm512_cvtepi32_ps(DotU8S8(wq, LoadXPair(xq[k], b, single)));
      const __m128 prod = _mm_mul_ps(dm, LoadXdsPair(xds[k], b, single));  // [dA dxA, mA sxA..]
      acc[k] = _mm512_fmadd_ps(PairScale(prod), isum, acc[k]);
      macc[k] = _mm_add_ps(macc[k], prod);
    }
  }
  for (int k = 0; k < R; ++k) {
    alignas(16) float m[4];
    _mm_store_ps(m, macc[k]);
    out[k] = ReduceLanes(acc[k]) + (m[1] + m[3]);
  }
}

template <int R>
TS_INT8_DOT_ATTR HWY_NOINLINE void DotQ8_0(const uint8_t* wrow, const int8_t* const* xq,
                                           const float* const* xds, int64_t nb, float* out) {
  constexpr int kBytes = sizeof(BlockQ8_0);
  __m512 acc[R];
  for (int k = 0; k < R; ++k) acc[k] = _mm512_setzero_ps();
  for (int64_t b = 0; b < nb; b += 2) {
    const bool single = b + 1 == nb;
    const uint8_t* ba = wrow + b * kBytes;
    const uint8_t* bb = single ? ba : ba + kBytes;
    const __m256i wa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ba + 2));
    const __m256i wb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bb + 2));
    const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(wa), wb, 1);
    // w * x = |w| * (sign(w) x): the left factor is unsigned as the instructions need.
    const __m512i wabs = _mm512_abs_epi8(w);
    const __mmask64 wneg = _mm512_movepi8_mask(w);
    const __m128 dw = PairF16Scales(ba, bb);
    for (int k = 0; k < R; ++k) {
      const __m512i xv = LoadXPair(xq[k], b, single);
      const __m512i xs = _mm512_mask_sub_epi8(xv, wneg, _mm512_setzero_si512(), xv);
      const __m512 isum = _mm512_cvtepi32_ps(DotU8S8(wabs, xs));
      const __m128 prod = _mm_mul_ps(dw, LoadXdsPair(xds[k], b, single));
      acc[k] = _mm512_fmadd_ps(PairScale(prod), isum, acc[k]);
    }
  }
  for (int k = 0; k < R; ++k) out[k] = ReduceLanes(acc[k]);
}

#elif TS_MATMUL_AVX2

HWY_INLINE __m256i DotU8S8(__m256i w, __m256i x) {
  return _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
}

HWY_INLINE float ReduceLanes(__m256 acc) {
  const hn::ScalableTag<float> df;
  return hn::GetLane(hn::SumOfLanes(df, hn::VFromD<decltype(df)>{acc}));
}

template <bool kQ4_0>
HWY_NOINLINE float DotQ4Row(const uint8_t* wrow, const int8_t* xq, const float* xds, int64_t nb) {
  constexpr int kBytes = kQ4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ4_1);
  constexpr int kQsOffset = kQ4_0 ? 2 : 4;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256 acc = _mm256_setzero_ps();
  float macc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = wrow + b * kBytes;
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + kQsOffset));
    const __m256i wq = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), low4);
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * kQK));
    const __m256 isum = _mm256_cvtepi32_ps(DotU8S8(wq, xv));
    uint16_t dh, mh;
    std::memcpy(&dh, blk, 2);
    const float dw = _cvtsh_ss(dh);
    float mw;
    if constexpr (kQ4_0) {
      mw = -8.0f * dw;
    } else {
      std::memcpy(&mh, blk + 2, 2);
      mw = _cvtsh_ss(mh);
    }
    acc = _mm256_fmadd_ps(_mm256_set1_ps(dw * xds[2 * b]), isum, acc);
    const float mt = mw * xds[2 * b + 1];
    macc += mt;
  }
  return ReduceLanes(acc) + macc;
}

HWY_NOINLINE float DotQ8_0Row(const uint8_t* wrow, const int8_t* xq, const float* xds, int64_t nb) {
  __m256 acc = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = wrow + b * sizeof(BlockQ8_0);
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xq + b * kQK));
    const __m256 isum =
        _mm256_cvtepi32_ps(DotU8S8(_mm256_sign_epi8(w, w), _mm256_sign_epi8(xv, w)));
    uint16_t dh;
    std::memcpy(&dh, blk, 2);
    acc = _mm256_fmadd_ps(_mm256_set1_ps(_cvtsh_ss(dh) * xds[2 * b]), isum, acc);
  }
  return ReduceLanes(acc);
}

#else  // portable scalar fallback (targets below AVX2)

template <bool kQ4_0>
HWY_NOINLINE float DotQ4Row(const uint8_t* wrow, const int8_t* xq, const float* xds, int64_t nb) {
  constexpr int kBytes = kQ4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ4_1);
  constexpr int kQsOffset = kQ4_0 ? 2 : 4;
  float acc = 0.0f, macc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = wrow + b * kBytes;
    const int8_t* x = xq + b * kQK;
    int32_t isum = 0;
    for (int j = 0; j < kQK / 2; ++j) {
      isum += (blk[kQsOffset + j] & 0xF) * x[j] + (blk[kQsOffset + j] >> 4) * x[j + kQK / 2];
    }
    uint16_t dh, mh;
    std::memcpy(&dh, blk, 2);
    const float dw = F16ToF32(dh);
    float mw = -8.0f * dw;
    if constexpr (!kQ4_0) {
      std::memcpy(&mh, blk + 2, 2);
      mw = F16ToF32(mh);
    }
    const float scale = dw * xds[2 * b];
    acc += scale * static_cast<float>(isum);
    const float mt = mw * xds[2 * b + 1];
    macc += mt;
  }
  return acc + macc;
}

HWY_NOINLINE float DotQ8_0Row(const uint8_t* wrow, const int8_t* xq, const float* xds, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const auto* blk = reinterpret_cast<const BlockQ8_0*>(wrow + b * sizeof(BlockQ8_0));
    int32_t isum = 0;
    for (int j = 0; j < kQK; ++j) isum += blk->qs[j] * xq[b * kQK + j];
    const float scale = F16ToF32(blk->d) * xds[2 * b];
    acc += scale * static_cast<float>(isum);
  }
  return acc;
}
#endif

#if !TS_MATMUL_AVX512
// Below AVX-512 the R-row kernels are R calls of the one-row kernel.
template <bool kQ4_0, int R>
void DotQ4(const uint8_t* wrow, const int8_t* const* xq, const float* const* xds, int64_t nb,
           float* out) {
  for (int k = 0; k < R; ++k) out[k] = DotQ4Row<kQ4_0>(wrow, xq[k], xds[k], nb);
}
template <int R>
void DotQ8_0(const uint8_t* wrow, const int8_t* const* xq, const float* const* xds, int64_t nb,
             float* out) {
  for (int k = 0; k < R; ++k) out[k] = DotQ8_0Row(wrow, xq[k], xds[k], nb);
}
#endif

// ---- activation quantization -----------------------------------------------------------------

void QuantizeActivationRow(const float* x, int64_t cols, int8_t* q, float* ds) {
  const hn::CappedTag<float, kQK> df;  // a block is a whole number of vectors
  const hn::Rebind<int32_t, decltype(df)> di;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  for (int64_t b = 0; b < cols / kQK; ++b) {
    const float* xb = x + b * kQK;
    auto vmax = hn::Zero(df);
    for (int64_t j = 0; j < kQK; j += N) vmax = hn::Max(vmax, hn::Abs(hn::LoadU(df, xb + j)));
    const float amax = hn::GetLane(hn::MaxOfLanes(df, vmax));
    const float db = amax / 127.0f;
    const float id = db != 0.0f ? 1.0f / db : 0.0f;
    int32_t isum = 0;
    for (int64_t j = 0; j < kQK; j += N) {
      const auto qi = hn::NearestInt(hn::Mul(hn::LoadU(df, xb + j), hn::Set(df, id)));
      alignas(64) int32_t lanes[kQK];
      hn::StoreU(qi, di, lanes);
      for (int64_t l = 0; l < N; ++l) {
        q[b * kQK + j + l] = static_cast<int8_t>(lanes[l]);
        isum += lanes[l];
      }
    }
    ds[2 * b] = db;
    ds[2 * b + 1] = db * static_cast<float>(isum);
  }
}

// ---- the tile driver -------------------------------------------------------------------------

void MatMulTile(const Matrix& w, int64_t r0, int64_t r1, const float* x, const Q8Rows& xq,
                int64_t i0, int64_t i1, float* y, int64_t ldy, const float* bias, float* wbuf) {
  const int64_t cols = w.cols;
  const int64_t nb = cols / kQK;
  auto store = [&](int64_t i, int64_t r, float v) {
    y[i * ldy + r] = bias != nullptr ? v + bias[r] : v;
  };
  switch (w.dtype) {
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4_1: {
      // Groups of kGroup x rows share each weight row's unpacking; the remaining rows use the
      // one-row instance of the same kernel (identical arithmetic per output).
      constexpr int kGroup = 4;
      auto* dot_group = w.dtype == DType::kQ8_0   ? &DotQ8_0<kGroup>
                        : w.dtype == DType::kQ4_0 ? &DotQ4<true, kGroup>
                                                  : &DotQ4<false, kGroup>;
      auto* dot_one = w.dtype == DType::kQ8_0   ? &DotQ8_0<1>
                      : w.dtype == DType::kQ4_0 ? &DotQ4<true, 1>
                                                : &DotQ4<false, 1>;
      for (int64_t i = i0; i < i1;) {
        const int g = i + kGroup <= i1 ? kGroup : 1;
        const int8_t* q[kGroup];
        const float* ds[kGroup];
        for (int k = 0; k < g; ++k) {
          q[k] = xq.q + (i + k) * cols;
          ds[k] = xq.ds + 2 * (i + k) * nb;
        }
        float out[kGroup];
        for (int64_t r = r0; r < r1; ++r) {
          (g == kGroup ? dot_group : dot_one)(w.Row(r), q, ds, nb, out);
          for (int k = 0; k < g; ++k) store(i + k, r, out[k]);
        }
        i += g;
      }
      return;
    }
    case DType::kF32:
    case DType::kF16:
    case DType::kBF16:
      for (int64_t i = i0; i < i1; ++i) {
        const float* xi = x + i * cols;
        for (int64_t r = r0; r < r1; ++r) {
          const uint8_t* wr = w.Row(r);
          float v;
          if (w.dtype == DType::kF32) {
            v = DotFloat(xi, reinterpret_cast<const float*>(wr), cols);
          } else if (w.dtype == DType::kF16) {
            v = DotFloat(xi, reinterpret_cast<const hwy::float16_t*>(wr), cols);
          } else {
            v = DotFloat(xi, reinterpret_cast<const hwy::bfloat16_t*>(wr), cols);
          }
          store(i, r, v);
        }
      }
      return;
    case DType::kQ4_K:
    case DType::kQ5_K:
    case DType::kQ6_K:
      for (int64_t r = r0; r < r1; ++r)
        DequantizeRow(w.dtype, w.Row(r), wbuf + (r - r0) * cols, cols);
      for (int64_t i = i0; i < i1; ++i) {
        for (int64_t r = r0; r < r1; ++r) {
          store(i, r, DotFloat(x + i * cols, wbuf + (r - r0) * cols, cols));
        }
      }
      return;
  }
}

const char* TargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace ts::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ts::cpu {

HWY_EXPORT(QuantizeActivationRow);
HWY_EXPORT(MatMulTile);
HWY_EXPORT(TargetName);

void QuantizeActivationRow(const float* x, int64_t cols, int8_t* q, float* ds) {
  HWY_DYNAMIC_DISPATCH(QuantizeActivationRow)(x, cols, q, ds);
}

void MatMulTile(const Matrix& w, int64_t r0, int64_t r1, const float* x, const Q8Rows& xq,
                int64_t i0, int64_t i1, float* y, int64_t ldy, const float* bias, float* wbuf) {
  HWY_DYNAMIC_DISPATCH(MatMulTile)(w, r0, r1, x, xq, i0, i1, y, ldy, bias, wbuf);
}

const char* MatMulTargetName() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace ts::cpu
#endif  // HWY_ONCE
