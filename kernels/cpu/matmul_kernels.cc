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
// On AVX-512 one call takes R = 1..8 x rows against one weight row, unpacking each weight block
// pair once for all R (a verify batch of T <= 8 tokens reads and unpacks the weights once); each
// row keeps its own accumulators and the one-row operation sequence, so R changes no bits.

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

#include <array>
#include <cmath>
#include <cstring>
#include <utility>

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

// One x row's block pair (64 8-bit values) and its metadata [dxA, sxA, dxB, sxB], in the pair
// layout of Q8Rows: a missing odd last block is stored as zeros.
HWY_INLINE __m512i LoadXPair(const int8_t* p) { return _mm512_loadu_si512(p); }
HWY_INLINE __m128 LoadXdsPair(const float* p) { return _mm_loadu_ps(p); }

// [s0 x 8, s2 x 8] from [s0, s1, s2, s3].
HWY_INLINE __m512 PairScale(__m128 s) {
  const __m512i idx = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
  return _mm512_permutexvar_ps(idx, _mm512_zextps128_ps512(s));
}

// Q4_0 or Q4_1 weights against R activation rows at once (a verify batch or a prefill tile shares
// the weight unpack), two blocks per step. Every output runs the same instruction sequence
// whatever R, so R = 8 and R = 1 give identical bits: the R rows are independent accumulator
// chains, unrolled so that they live in registers (R = 8: 8 zmm acc + 8 xmm macc + wq, dm and
// two constants, well under the 32 vector registers). An odd last block pairs with itself, its
// twin's activations and scales being stored as zeros (Q8Rows), so it adds exact zeros. The R
// rows' pairs are adjacent in that layout: row k at xq + k * kXPairBytes, xds + k * kXPairFloats.
template <bool kQ4_0, int R, bool kSingle>
TS_INT8_DOT_ATTR HWY_INLINE void Q4PairStep(const uint8_t* ba, const int8_t* xq, const float* xds,
                                            __m512 (&acc)[R], __m128 (&macc)[R]) {
  constexpr int kBytes = kQ4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ4_1);
  constexpr int kQsOffset = kQ4_0 ? 2 : 4;
  const uint8_t* bb = kSingle ? ba : ba + kBytes;
  const __m128i qa = _mm_loadu_si128(reinterpret_cast<const __m128i*>(ba + kQsOffset));
  const __m128i qb = _mm_loadu_si128(reinterpret_cast<const __m128i*>(bb + kQsOffset));
  const __m256i ab = _mm256_set_m128i(qb, qa);
  // [qa, qb, qa >> 4, qb >> 4] -> [qa lo, qa hi, qb lo, qb hi] = elements in x order.
  __m512i wq = _mm512_inserti64x4(_mm512_castsi256_si512(ab), _mm256_srli_epi16(ab, 4), 1);
  wq = _mm512_and_si512(_mm512_shuffle_i64x2(wq, wq, 0xD8), _mm512_set1_epi8(0x0F));
  __m128 dm;  // [dA, mA, dB, mB]
  if constexpr (kQ4_0) {
    dm = _mm_mul_ps(PairF16Scales(ba, bb), _mm_setr_ps(1.0f, -8.0f, 1.0f, -8.0f));
  } else {
    dm = _mm_cvtph_ps(_mm_insert_epi32(_mm_cvtsi32_si128(static_cast<int>(Load32(ba))),
                                       static_cast<int>(Load32(bb)), 1));
  }
#pragma GCC unroll 8
  for (int k = 0; k < R; ++k) {
    const __m512 isum = _mm512_cvtepi32_ps(DotU8S8(wq, LoadXPair(xq + k * kXPairBytes)));
    const __m128 prod = _mm_mul_ps(dm, LoadXdsPair(xds + k * kXPairFloats));  // [dA dxA, mA sxA..]
    acc[k] = _mm512_fmadd_ps(PairScale(prod), isum, acc[k]);
    macc[k] = _mm_add_ps(macc[k], prod);
  }
}

template <bool kQ4_0, int R>
TS_INT8_DOT_ATTR HWY_NOINLINE void DotQ4(const uint8_t* wrow, const int8_t* xq, const float* xds,
                                         int64_t stride, int64_t nb, float* out) {
  constexpr int kBytes = kQ4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ4_1);
  __m512 acc[R];
  __m128 macc[R];  // lanes 1, 3: min terms of blocks A, B
#pragma GCC unroll 8
  for (int k = 0; k < R; ++k) {
    acc[k] = _mm512_setzero_ps();
    macc[k] = _mm_setzero_ps();
  }
  const int64_t xstep = stride * kXPairBytes, dstep = stride * kXPairFloats;
  int64_t b = 0;
  for (; b + 1 < nb; b += 2, xq += xstep, xds += dstep) {
    Q4PairStep<kQ4_0, R, false>(wrow + b * kBytes, xq, xds, acc, macc);
  }
  if (b < nb) Q4PairStep<kQ4_0, R, true>(wrow + b * kBytes, xq, xds, acc, macc);
#pragma GCC unroll 8
  for (int k = 0; k < R; ++k) {
    alignas(16) float m[4];
    _mm_store_ps(m, macc[k]);
    out[k] = ReduceLanes(acc[k]) + (m[1] + m[3]);
  }
}

// Q8_0 weights against R activation rows; same structure and invariance as DotQ4.
template <int R, bool kSingle>
TS_INT8_DOT_ATTR HWY_INLINE void Q8PairStep(const uint8_t* ba, const int8_t* xq, const float* xds,
                                            __m512 (&acc)[R]) {
  const uint8_t* bb = kSingle ? ba : ba + sizeof(BlockQ8_0);
  const __m256i wa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(ba + 2));
  const __m256i wb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bb + 2));
  const __m512i w = _mm512_inserti64x4(_mm512_castsi256_si512(wa), wb, 1);
  // w * x = |w| * (sign(w) x): the left factor is unsigned as the instructions need.
  const __m512i wabs = _mm512_abs_epi8(w);
  const __mmask64 wneg = _mm512_movepi8_mask(w);
  const __m128 dw = PairF16Scales(ba, bb);
#pragma GCC unroll 8
  for (int k = 0; k < R; ++k) {
    const __m512i xv = LoadXPair(xq + k * kXPairBytes);
    const __m512i xs = _mm512_mask_sub_epi8(xv, wneg, _mm512_setzero_si512(), xv);
    const __m512 isum = _mm512_cvtepi32_ps(DotU8S8(wabs, xs));
    const __m128 prod = _mm_mul_ps(dw, LoadXdsPair(xds + k * kXPairFloats));
    acc[k] = _mm512_fmadd_ps(PairScale(prod), isum, acc[k]);
  }
}

template <int R>
TS_INT8_DOT_ATTR HWY_NOINLINE void DotQ8_0(const uint8_t* wrow, const int8_t* xq, const float* xds,
                                           int64_t stride, int64_t nb, float* out) {
  constexpr int kBytes = sizeof(BlockQ8_0);
  __m512 acc[R];
#pragma GCC unroll 8
  for (int k = 0; k < R; ++k) acc[k] = _mm512_setzero_ps();
  const int64_t xstep = stride * kXPairBytes, dstep = stride * kXPairFloats;
  int64_t b = 0;
  for (; b + 1 < nb; b += 2, xq += xstep, xds += dstep) {
    Q8PairStep<R, false>(wrow + b * kBytes, xq, xds, acc);
  }
  if (b < nb) Q8PairStep<R, true>(wrow + b * kBytes, xq, xds, acc);
#pragma GCC unroll 8
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

// R x rows against one weight row, one block per step: the block's weights are unpacked once
// and each row runs the one-row sequence on its own accumulators (R changes no bits).
template <bool kQ4_0, int R>
HWY_NOINLINE void DotQ4(const uint8_t* wrow, const int8_t* xq, const float* xds, int64_t stride,
                        int64_t nb, float* out) {
  constexpr int kBytes = kQ4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ4_1);
  constexpr int kQsOffset = kQ4_0 ? 2 : 4;
  const __m256i low4 = _mm256_set1_epi8(0x0F);
  __m256 acc[R];
  float macc[R];
#pragma GCC unroll 8
  for (int k = 0; k < R; ++k) {
    acc[k] = _mm256_setzero_ps();
    macc[k] = 0.0f;
  }
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = wrow + b * kBytes;
    const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(blk + kQsOffset));
    const __m256i wq = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(q, 4), q), low4);
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
    const int8_t* xb = XBlock(xq, stride, b);     // row k at xb + k * kXPairBytes
    const float* dsb = XdsBlock(xds, stride, b);  // row k at dsb + k * kXPairFloats
#pragma GCC unroll 8
    for (int k = 0; k < R; ++k) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + k * kXPairBytes));
      const __m256 isum = _mm256_cvtepi32_ps(DotU8S8(wq, xv));
      acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dsb[k * kXPairFloats]), isum, acc[k]);
      const float mt = mw * dsb[k * kXPairFloats + 1];
      macc[k] += mt;
    }
  }
#pragma GCC unroll 8
  for (int k = 0; k < R; ++k) out[k] = ReduceLanes(acc[k]) + macc[k];
}

template <int R>
HWY_NOINLINE void DotQ8_0(const uint8_t* wrow, const int8_t* xq, const float* xds, int64_t stride,
                          int64_t nb, float* out) {
  __m256 acc[R];
#pragma GCC unroll 8
  for (int k = 0; k < R; ++k) acc[k] = _mm256_setzero_ps();
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = wrow + b * sizeof(BlockQ8_0);
    const __m256i w = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(blk + 2));
    const __m256i wabs = _mm256_sign_epi8(w, w);
    uint16_t dh;
    std::memcpy(&dh, blk, 2);
    const float dw = _cvtsh_ss(dh);
    const int8_t* xb = XBlock(xq, stride, b);
    const float* dsb = XdsBlock(xds, stride, b);
#pragma GCC unroll 8
    for (int k = 0; k < R; ++k) {
      const __m256i xv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xb + k * kXPairBytes));
      const __m256 isum = _mm256_cvtepi32_ps(DotU8S8(wabs, _mm256_sign_epi8(xv, w)));
      acc[k] = _mm256_fmadd_ps(_mm256_set1_ps(dw * dsb[k * kXPairFloats]), isum, acc[k]);
    }
  }
#pragma GCC unroll 8
  for (int k = 0; k < R; ++k) out[k] = ReduceLanes(acc[k]);
}

#else  // portable scalar fallback (targets below AVX2)

template <bool kQ4_0>
HWY_NOINLINE float DotQ4Row(const uint8_t* wrow, const int8_t* xq, const float* xds, int64_t stride,
                            int64_t nb) {
  constexpr int kBytes = kQ4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ4_1);
  constexpr int kQsOffset = kQ4_0 ? 2 : 4;
  float acc = 0.0f, macc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* blk = wrow + b * kBytes;
    const int8_t* x = XBlock(xq, stride, b);
    const float* dsb = XdsBlock(xds, stride, b);
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
    const float scale = dw * dsb[0];
    acc += scale * static_cast<float>(isum);
    const float mt = mw * dsb[1];
    macc += mt;
  }
  return acc + macc;
}

HWY_NOINLINE float DotQ8_0Row(const uint8_t* wrow, const int8_t* xq, const float* xds,
                              int64_t stride, int64_t nb) {
  float acc = 0.0f;
  for (int64_t b = 0; b < nb; ++b) {
    const auto* blk = reinterpret_cast<const BlockQ8_0*>(wrow + b * sizeof(BlockQ8_0));
    int32_t isum = 0;
    const int8_t* x = XBlock(xq, stride, b);
    for (int j = 0; j < kQK; ++j) isum += blk->qs[j] * x[j];
    const float scale = F16ToF32(blk->d) * XdsBlock(xds, stride, b)[0];
    acc += scale * static_cast<float>(isum);
  }
  return acc;
}
#endif

#if !TS_MATMUL_AVX512 && !TS_MATMUL_AVX2
// Below AVX2 the R-row kernels are R calls of the one-row kernel.
template <bool kQ4_0, int R>
void DotQ4(const uint8_t* wrow, const int8_t* xq, const float* xds, int64_t stride, int64_t nb,
           float* out) {
  for (int k = 0; k < R; ++k) {
    out[k] = DotQ4Row<kQ4_0>(wrow, xq + k * kXPairBytes, xds + k * kXPairFloats, stride, nb);
  }
}
template <int R>
void DotQ8_0(const uint8_t* wrow, const int8_t* xq, const float* xds, int64_t stride, int64_t nb,
             float* out) {
  for (int k = 0; k < R; ++k) {
    out[k] = DotQ8_0Row(wrow, xq + k * kXPairBytes, xds + k * kXPairFloats, stride, nb);
  }
}
#endif

// ---- activation quantization -----------------------------------------------------------------

void QuantizeActivationRow(const float* x, int64_t cols, int64_t stride, int8_t* q, float* ds) {
  const hn::CappedTag<float, kQK> df;  // a block is a whole number of vectors
  const hn::Rebind<int32_t, decltype(df)> di;
  const int64_t N = static_cast<int64_t>(hn::Lanes(df));
  const int64_t nb = cols / kQK;
  for (int64_t b = 0; b < nb; ++b) {
    const float* xb = x + b * kQK;
    int8_t* qb = XBlock(q, stride, b);
    float* dsb = XdsBlock(ds, stride, b);
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
        qb[j + l] = static_cast<int8_t>(lanes[l]);
        isum += lanes[l];
      }
    }
    dsb[0] = db;
    dsb[1] = db * static_cast<float>(isum);
  }
  if (nb % 2 == 1) {  // the missing twin of the last block: zeros, which add exact zeros
    std::memset(XBlock(q, stride, nb), 0, kQK);
    XdsBlock(ds, stride, nb)[0] = 0.0f;
    XdsBlock(ds, stride, nb)[1] = 0.0f;
  }
}

// ---- the tile driver -------------------------------------------------------------------------

// Integer row-dot kernels for R = 1..kMaxGroup x rows sharing one weight row.
constexpr int kMaxGroup = 8;
using DotFn = void (*)(const uint8_t* wrow, const int8_t* xq, const float* xds, int64_t stride,
                       int64_t nb, float* out);

template <int... I>
constexpr std::array<std::array<DotFn, kMaxGroup + 1>, 3> MakeDotTable(
    std::integer_sequence<int, I...>) {
  return {{{nullptr, &DotQ8_0<I + 1>...},
           {nullptr, &DotQ4<true, I + 1>...},
           {nullptr, &DotQ4<false, I + 1>...}}};
}

// dots[R] for R in 1..kMaxGroup for Q8_0, Q4_0 or Q4_1 weights.
const DotFn* DotTable(DType t) {
  static constexpr auto kTable = MakeDotTable(std::make_integer_sequence<int, kMaxGroup>());
  return kTable[t == DType::kQ8_0 ? 0 : t == DType::kQ4_0 ? 1 : 2].data();
}

void MatMulTile(const Matrix& w, int64_t r0, int64_t r1, const float* x, const Q8Rows& xq,
                int64_t i0, int64_t i1, float* y, int64_t ldy, const float* bias, float* wbuf,
                const int64_t* bounds, int64_t n_segments, int64_t segment_stride) {
  const int64_t cols = w.cols;
  const int64_t whole[2] = {0, cols};
  if (bounds == nullptr) {
    bounds = whole;
    n_segments = 1;
  }
  auto store = [&](int64_t s, int64_t i, int64_t r, float v) {
    y[s * segment_stride + i * ldy + r] = bias != nullptr ? v + bias[r] : v;
  };
  switch (w.dtype) {
    case DType::kQ8_0:
    case DType::kQ4_0:
    case DType::kQ4_1: {
      // The tile's x rows are split into as few groups of at most kMaxGroup rows as possible,
      // of near-equal sizes (7 rows: one group of 7; 12 rows: 6 + 6; 17 rows: 6 + 6 + 5); a
      // group shares each weight row's unpacking among its rows. Which group a row falls in
      // does not matter: every R-row instance runs the one-row arithmetic per output.
      // A segment [c0, c1) (c0 a multiple of 64: it starts on a block pair) is the dot product
      // of a weight row slice and an x slice that starts on a pair of Q8Rows: the call a matrix
      // holding only those columns would make.
      const int64_t m = i1 - i0;
      const int64_t groups = (m + kMaxGroup - 1) / kMaxGroup;
      const DotFn* dots = DotTable(w.dtype);
      const int64_t block_bytes = static_cast<int64_t>(RowBytes(w.dtype, kQK));
      for (int64_t gi = 0, i = i0; gi < groups; ++gi) {
        const int g = static_cast<int>(m / groups + (gi < m % groups ? 1 : 0));
        const int8_t* q = xq.q + i * kXPairBytes;    // rows i.. of pair 0
        const float* ds = xq.ds + i * kXPairFloats;  // rows i.. of pair 0
        const DotFn dot = dots[g];
        float out[kMaxGroup];  // (g)
        for (int64_t r = r0; r < r1; ++r) {
          for (int64_t sg = 0; sg < n_segments; ++sg) {
            const int64_t b0 = bounds[sg] / kQK, pair0 = bounds[sg] / (2 * kQK);
            dot(w.Row(r) + b0 * block_bytes, q + pair0 * xq.stride * kXPairBytes,
                ds + pair0 * xq.stride * kXPairFloats, xq.stride, bounds[sg + 1] / kQK - b0, out);
            for (int k = 0; k < g; ++k) store(sg, i + k, r, out[k]);
          }
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
          for (int64_t sg = 0; sg < n_segments; ++sg) {
            const int64_t c0 = bounds[sg], len = bounds[sg + 1] - c0;
            float v;
            if (w.dtype == DType::kF32) {
              v = DotFloat(xi + c0, reinterpret_cast<const float*>(wr) + c0, len);
            } else if (w.dtype == DType::kF16) {
              v = DotFloat(xi + c0, reinterpret_cast<const hwy::float16_t*>(wr) + c0, len);
            } else {
              v = DotFloat(xi + c0, reinterpret_cast<const hwy::bfloat16_t*>(wr) + c0, len);
            }
            store(sg, i, r, v);
          }
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
          for (int64_t sg = 0; sg < n_segments; ++sg) {
            const int64_t c0 = bounds[sg], len = bounds[sg + 1] - c0;
            store(sg, i, r, DotFloat(x + i * cols + c0, wbuf + (r - r0) * cols + c0, len));
          }
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

void QuantizeActivationRow(const float* x, int64_t cols, int64_t stride, int8_t* q, float* ds) {
  HWY_DYNAMIC_DISPATCH(QuantizeActivationRow)(x, cols, stride, q, ds);
}

void MatMulTile(const Matrix& w, int64_t r0, int64_t r1, const float* x, const Q8Rows& xq,
                int64_t i0, int64_t i1, float* y, int64_t ldy, const float* bias, float* wbuf,
                const int64_t* bounds, int64_t n_segments, int64_t segment_stride) {
  HWY_DYNAMIC_DISPATCH(MatMulTile)
  (w, r0, r1, x, xq, i0, i1, y, ldy, bias, wbuf, bounds, n_segments, segment_stride);
}

const char* MatMulTargetName() { return HWY_DYNAMIC_DISPATCH(TargetName)(); }

}  // namespace ts::cpu
#endif  // HWY_ONCE
