// Device-side dequantisation of one "chunk" (32 consecutive elements of a row) for every DType.
//
// All matmul and embedding kernels see a weight row as ceil(cols / 32) chunks. For Q8_0, Q4_0
// and Q4_1 a chunk is one block; for the K-quants chunk c is sub-block c % 8 of super-block c / 8
// (Q6_K: two of its 16-element scale groups). For f32/f16/bf16 a chunk is 32 plain elements and
// the last chunk of a row may be partial (cols need not be a multiple of 32 there).
//
// The formulas follow ggml's dequantize_row_* for each layout (ggml-common.h / ggml-quants.c):
//   Q8_0  x = d * q                        q int8
//   Q4_0  x = d * (q - 8)                  q: element j low nibble of qs[j], j + 16 high nibble
//   Q4_1  x = d * q + m
//   Q4_K  x = (d * sc_j) * q - (dmin * m_j) sub-block j: 6-bit (sc, m) from scales[12];
//                                          qs[32 * (j / 2) + l], low nibble for even j
//   Q5_K  as Q4_K with q += 16 * bit j of qh[l]
//   Q6_K  x = (d * sc) * (q - 32)          q = 4 bits of ql | 2 bits of qh << 4, see DecodeQ6K
// Every operation is a single IEEE op (the .cu files are compiled with --fmad=false, so nvcc
// never contracts a*b+c); a chunk therefore decodes to the same floats in every kernel.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "kernels/dtype.h"

namespace ts::cuda {

inline constexpr int kChunk = 32;

__device__ __forceinline__ float HalfBitsToFloat(uint16_t bits) {
  return __half2float(__ushort_as_half(bits));
}
__device__ __forceinline__ float Bf16BitsToFloat(uint16_t bits) {
  return __uint_as_float(static_cast<uint32_t>(bits) << 16);
}
__device__ __forceinline__ bool Aligned16(const void* p) {
  return (reinterpret_cast<uintptr_t>(p) & 15) == 0;
}
// Block fields are 2-byte aligned whenever the row base is (checked on the host).
__device__ __forceinline__ uint16_t LoadU16(const uint8_t* p) {
  return *reinterpret_cast<const uint16_t*>(p);
}

// Sub-block j (0..7) scale and min of a Q4_K/Q5_K super-block: 6 bits each, packed in 12 bytes.
__device__ __forceinline__ void ScaleMinK4(int j, const uint8_t* s, int* sc, int* m) {
  if (j < 4) {
    *sc = s[j] & 63;
    *m = s[j + 4] & 63;
  } else {
    *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
    *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
  }
}

template <DType T>
struct ChunkDecoder;

template <>
struct ChunkDecoder<DType::kF32> {
  static __device__ __forceinline__ void Decode(const uint8_t* row, int64_t c, int valid,
                                                float* w) {
    const float* p = reinterpret_cast<const float*>(row) + c * kChunk;
    if (valid == kChunk && Aligned16(p)) {  // 8 x 16-byte loads; the same values
#pragma unroll
      for (int v = 0; v < kChunk / 4; ++v) {
        const float4 f = __ldg(reinterpret_cast<const float4*>(p) + v);
        w[4 * v] = f.x;
        w[4 * v + 1] = f.y;
        w[4 * v + 2] = f.z;
        w[4 * v + 3] = f.w;
      }
      return;
    }
#pragma unroll
    for (int j = 0; j < kChunk; ++j) w[j] = j < valid ? p[j] : 0.0f;
  }
};
// f16 and bf16: a full chunk on a 16-byte boundary is read with 4 x 16-byte loads (the same
// values as element loads; little-endian: element 2k is the low half of word k).
template <bool kBf16>
__device__ __forceinline__ float Bits16ToFloat(uint16_t bits) {
  return kBf16 ? Bf16BitsToFloat(bits) : HalfBitsToFloat(bits);
}
template <bool kBf16>
__device__ __forceinline__ void Decode16(const uint8_t* row, int64_t c, int valid, float* w) {
  const uint16_t* p = reinterpret_cast<const uint16_t*>(row) + c * kChunk;
  if (valid == kChunk && Aligned16(p)) {
#pragma unroll
    for (int v = 0; v < kChunk / 8; ++v) {
      const uint4 u = __ldg(reinterpret_cast<const uint4*>(p) + v);
      const uint32_t words[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        w[8 * v + 2 * k] = Bits16ToFloat<kBf16>(static_cast<uint16_t>(words[k] & 0xFFFFu));
        w[8 * v + 2 * k + 1] = Bits16ToFloat<kBf16>(static_cast<uint16_t>(words[k] >> 16));
      }
    }
    return;
  }
#pragma unroll
  for (int j = 0; j < kChunk; ++j) w[j] = j < valid ? Bits16ToFloat<kBf16>(p[j]) : 0.0f;
}
template <>
struct ChunkDecoder<DType::kF16> {
  static __device__ __forceinline__ void Decode(const uint8_t* row, int64_t c, int valid,
                                                float* w) {
    Decode16<false>(row, c, valid, w);
  }
};
template <>
struct ChunkDecoder<DType::kBF16> {
  static __device__ __forceinline__ void Decode(const uint8_t* row, int64_t c, int valid,
                                                float* w) {
    Decode16<true>(row, c, valid, w);
  }
};

template <>
struct ChunkDecoder<DType::kQ8_0> {  // 34 bytes: f16 d, int8 q[32]
  static __device__ __forceinline__ void Decode(const uint8_t* row, int64_t c, int, float* w) {
    const uint8_t* b = row + c * 34;
    const float d = HalfBitsToFloat(LoadU16(b));
#pragma unroll
    for (int j = 0; j < kChunk; ++j) w[j] = d * static_cast<float>(static_cast<int8_t>(b[2 + j]));
  }
};
template <>
struct ChunkDecoder<DType::kQ4_0> {  // 18 bytes: f16 d, u8 qs[16]
  static __device__ __forceinline__ void Decode(const uint8_t* row, int64_t c, int, float* w) {
    const uint8_t* b = row + c * 18;
    const float d = HalfBitsToFloat(LoadU16(b));
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int q = b[2 + j];
      w[j] = d * static_cast<float>((q & 0xF) - 8);
      w[j + 16] = d * static_cast<float>((q >> 4) - 8);
    }
  }
};
template <>
struct ChunkDecoder<DType::kQ4_1> {  // 20 bytes: f16 d, f16 m, u8 qs[16]
  static __device__ __forceinline__ void Decode(const uint8_t* row, int64_t c, int, float* w) {
    const uint8_t* b = row + c * 20;
    const float d = HalfBitsToFloat(LoadU16(b));
    const float m = HalfBitsToFloat(LoadU16(b + 2));
#pragma unroll
    for (int j = 0; j < 16; ++j) {
      const int q = b[4 + j];
      w[j] = d * static_cast<float>(q & 0xF) + m;
      w[j + 16] = d * static_cast<float>(q >> 4) + m;
    }
  }
};
template <>
struct ChunkDecoder<DType::kQ4_K> {  // 144 bytes: f16 d, f16 dmin, scales[12], qs[128]
  static __device__ __forceinline__ void Decode(const uint8_t* row, int64_t c, int, float* w) {
    const uint8_t* b = row + (c >> 3) * 144;
    const int j = static_cast<int>(c & 7);
    int sc, m;
    ScaleMinK4(j, b + 4, &sc, &m);
    const float d = HalfBitsToFloat(LoadU16(b)) * static_cast<float>(sc);
    const float mn = HalfBitsToFloat(LoadU16(b + 2)) * static_cast<float>(m);
    const uint8_t* qs = b + 16 + 32 * (j >> 1);
    const int shift = (j & 1) * 4;
#pragma unroll
    for (int l = 0; l < kChunk; ++l) {
      w[l] = d * static_cast<float>((qs[l] >> shift) & 0xF) - mn;
    }
  }
};
template <>
struct ChunkDecoder<DType::kQ5_K> {  // 176 bytes: f16 d, f16 dmin, scales[12], qh[32], qs[128]
  static __device__ __forceinline__ void Decode(const uint8_t* row, int64_t c, int, float* w) {
    const uint8_t* b = row + (c >> 3) * 176;
    const int j = static_cast<int>(c & 7);
    int sc, m;
    ScaleMinK4(j, b + 4, &sc, &m);
    const float d = HalfBitsToFloat(LoadU16(b)) * static_cast<float>(sc);
    const float mn = HalfBitsToFloat(LoadU16(b + 2)) * static_cast<float>(m);
    const uint8_t* qh = b + 16;
    const uint8_t* qs = b + 48 + 32 * (j >> 1);
    const int shift = (j & 1) * 4;
#pragma unroll
    for (int l = 0; l < kChunk; ++l) {
      const int q = ((qs[l] >> shift) & 0xF) | (((qh[l] >> j) & 1) << 4);
      w[l] = d * static_cast<float>(q) - mn;
    }
  }
};
// Q6_K, 210 bytes: ql[128], qh[64], int8 scales[16], f16 d. The super-block is two halves of
// 128; quarter qq (0..3) of half h covers elements 128h + 32qq + l, l < 32, with low 4 bits in
// ql[64h + 32(qq & 1) + l] (low nibble for qq < 2, high nibble otherwise), high 2 bits at
// bit 2qq of qh[32h + l], and scale scales[8h + 2qq + l / 16].
template <>
struct ChunkDecoder<DType::kQ6_K> {
  static __device__ __forceinline__ void Decode(const uint8_t* row, int64_t c, int, float* w) {
    const uint8_t* b = row + (c >> 3) * 210;
    const int j = static_cast<int>(c & 7);
    const int h = j >> 2;
    const int qq = j & 3;
    const uint8_t* ql = b + 64 * h + 32 * (qq & 1);
    const uint8_t* qh = b + 128 + 32 * h;
    const int8_t* sc = reinterpret_cast<const int8_t*>(b + 192) + 8 * h + 2 * qq;
    const float d = HalfBitsToFloat(LoadU16(b + 208));
    const float d0 = d * static_cast<float>(sc[0]);
    const float d1 = d * static_cast<float>(sc[1]);
    const int lshift = (qq >> 1) * 4;
    const int hshift = 2 * qq;
#pragma unroll
    for (int l = 0; l < kChunk; ++l) {
      const int q = (((ql[l] >> lshift) & 0xF) | (((qh[l] >> hshift) & 3) << 4)) - 32;
      w[l] = (l < 16 ? d0 : d1) * static_cast<float>(q);
    }
  }
};

// Calls f.template operator()<T>() with T the DType as a template argument.
template <typename F>
void DispatchDType(DType t, F&& f) {
  switch (t) {
    case DType::kF32:
      f.template operator()<DType::kF32>();
      break;
    case DType::kF16:
      f.template operator()<DType::kF16>();
      break;
    case DType::kBF16:
      f.template operator()<DType::kBF16>();
      break;
    case DType::kQ8_0:
      f.template operator()<DType::kQ8_0>();
      break;
    case DType::kQ4_0:
      f.template operator()<DType::kQ4_0>();
      break;
    case DType::kQ4_1:
      f.template operator()<DType::kQ4_1>();
      break;
    case DType::kQ4_K:
      f.template operator()<DType::kQ4_K>();
      break;
    case DType::kQ5_K:
      f.template operator()<DType::kQ5_K>();
      break;
    case DType::kQ6_K:
      f.template operator()<DType::kQ6_K>();
      break;
  }
}

}  // namespace ts::cuda
