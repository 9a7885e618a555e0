// Scalar reference dequantizers and quantizers (see dequant.h). This file is compiled for the
// baseline ISA without FMA, so `d * q + m` rounds twice exactly as ggml's C and numpy do.
#include "kernels/cpu/dequant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "kernels/cpu/quant_blocks.h"

namespace ts {
namespace {

void DequantQ8_0(const BlockQ8_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = F16ToF32(b[i].d);
    for (int j = 0; j < kQK; ++j) y[i * kQK + j] = d * static_cast<float>(b[i].qs[j]);
  }
}

void DequantQ4_0(const BlockQ4_0* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = F16ToF32(b[i].d);
    for (int j = 0; j < kQK / 2; ++j) {
      y[i * kQK + j] = d * static_cast<float>((b[i].qs[j] & 0xF) - 8);
      y[i * kQK + j + kQK / 2] = d * static_cast<float>((b[i].qs[j] >> 4) - 8);
    }
  }
}

void DequantQ4_1(const BlockQ4_1* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = F16ToF32(b[i].d);
    const float m = F16ToF32(b[i].m);
    for (int j = 0; j < kQK / 2; ++j) {
      y[i * kQK + j] = d * static_cast<float>(b[i].qs[j] & 0xF) + m;
      y[i * kQK + j + kQK / 2] = d * static_cast<float>(b[i].qs[j] >> 4) + m;
    }
  }
}

void DequantQ4_K(const BlockQ4_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = F16ToF32(b[i].d);
    const float dmin = F16ToF32(b[i].dmin);
    const uint8_t* q = b[i].qs;
    float* out = y + i * kQKK;
    for (int c = 0; c < 4; ++c) {  // 64 elements per chunk: sub-blocks 2c (low) and 2c+1 (high)
      uint8_t sc, m;
      GetScaleMinK4(2 * c, b[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      GetScaleMinK4(2 * c + 1, b[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      for (int l = 0; l < 32; ++l) out[64 * c + l] = d1 * static_cast<float>(q[l] & 0xF) - m1;
      for (int l = 0; l < 32; ++l) out[64 * c + 32 + l] = d2 * static_cast<float>(q[l] >> 4) - m2;
      q += 32;
    }
  }
}

void DequantQ5_K(const BlockQ5_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = F16ToF32(b[i].d);
    const float dmin = F16ToF32(b[i].dmin);
    const uint8_t* ql = b[i].qs;
    const uint8_t* qh = b[i].qh;
    float* out = y + i * kQKK;
    for (int c = 0; c < 4; ++c) {
      uint8_t sc, m;
      GetScaleMinK4(2 * c, b[i].scales, &sc, &m);
      const float d1 = d * sc, m1 = dmin * m;
      GetScaleMinK4(2 * c + 1, b[i].scales, &sc, &m);
      const float d2 = d * sc, m2 = dmin * m;
      const int u1 = 2 * c, u2 = 2 * c + 1;  // qh bit of each sub-block
      for (int l = 0; l < 32; ++l) {
        const int q = (ql[l] & 0xF) + (((qh[l] >> u1) & 1) << 4);
        out[64 * c + l] = d1 * static_cast<float>(q) - m1;
      }
      for (int l = 0; l < 32; ++l) {
        const int q = (ql[l] >> 4) + (((qh[l] >> u2) & 1) << 4);
        out[64 * c + 32 + l] = d2 * static_cast<float>(q) - m2;
      }
      ql += 32;
    }
  }
}

void DequantQ6_K(const BlockQ6_K* b, float* y, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i) {
    const float d = F16ToF32(b[i].d);
    float* out = y + i * kQKK;
    for (int e = 0; e < kQKK; ++e) {
      const int h = e / 128, r = e % 128;
      const int lo = (b[i].ql[64 * h + r % 64] >> (4 * (r / 64))) & 0xF;
      const int hi = (b[i].qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
      const float dsc = d * static_cast<float>(b[i].scales[e / 16]);
      out[e] = dsc * static_cast<float>((lo | (hi << 4)) - 32);
    }
  }
}

// ---- quantizers ------------------------------------------------------------------------------

void QuantQ8_0(const float* x, BlockQ8_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0.0f;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = F32ToF16(d);
    for (int j = 0; j < kQK; ++j) b[i].qs[j] = static_cast<int8_t>(std::roundf(x[j] * id));
  }
}

void QuantQ4_0(const float* x, BlockQ4_0* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float amax = 0.0f, max = 0.0f;
    for (int j = 0; j < kQK; ++j) {
      if (std::fabs(x[j]) > amax) {
        amax = std::fabs(x[j]);
        max = x[j];
      }
    }
    const float d = max / -8.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = F32ToF16(d);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>(x[j] * id + 8.5f));
      const int q1 = std::min(15, static_cast<int>(x[j + kQK / 2] * id + 8.5f));
      b[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

void QuantQ4_1(const float* x, BlockQ4_1* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQK) {
    float min = x[0], max = x[0];
    for (int j = 1; j < kQK; ++j) {
      min = std::min(min, x[j]);
      max = std::max(max, x[j]);
    }
    const float d = (max - min) / 15.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    b[i].d = F32ToF16(d);
    b[i].m = F32ToF16(min);
    for (int j = 0; j < kQK / 2; ++j) {
      const int q0 = std::min(15, static_cast<int>((x[j] - min) * id + 0.5f));
      const int q1 = std::min(15, static_cast<int>((x[j + kQK / 2] - min) * id + 0.5f));
      b[i].qs[j] = static_cast<uint8_t>(q0 | (q1 << 4));
    }
  }
}

// Packs 8 six-bit scales and mins as ggml's Q4_K/Q5_K do.
void PackScalesK4(const uint8_t* ls, const uint8_t* lm, uint8_t* scales) {
  for (int j = 0; j < 8; ++j) {
    if (j < 4) {
      scales[j] = ls[j];
      scales[j + 4] = lm[j];
    } else {
      scales[j + 4] = (ls[j] & 0xF) | ((lm[j] & 0xF) << 4);
      scales[j - 4] |= (ls[j] >> 4) << 6;
      scales[j] |= (lm[j] >> 4) << 6;
    }
  }
}

// Shared by Q4_K (nmax 15) and Q5_K (nmax 31): per 32-element sub-block an affine map
// x ~= d*sc*q - dmin*m, scales and mins quantized to 6 bits. Writes d, dmin, scales and the
// integer levels L (256).
void QuantizeAffineK(const float* x, int nmax, uint16_t* d_out, uint16_t* dmin_out, uint8_t* scales,
                     uint8_t* levels) {
  float sub_scale[8], sub_min[8];  // sub_min >= 0 is the negated minimum
  float max_scale = 0.0f, max_min = 0.0f;
  for (int j = 0; j < 8; ++j) {
    float lo = std::min(0.0f, x[32 * j]), hi = x[32 * j];
    for (int l = 0; l < 32; ++l) {
      lo = std::min(lo, x[32 * j + l]);
      hi = std::max(hi, x[32 * j + l]);
    }
    sub_scale[j] = (hi - lo) / nmax;
    sub_min[j] = -lo;
    max_scale = std::max(max_scale, sub_scale[j]);
    max_min = std::max(max_min, sub_min[j]);
  }
  const float inv_scale = max_scale > 0 ? 63.0f / max_scale : 0.0f;
  const float inv_min = max_min > 0 ? 63.0f / max_min : 0.0f;
  uint8_t ls[8], lm[8];
  for (int j = 0; j < 8; ++j) {
    ls[j] = static_cast<uint8_t>(
        std::min(63, static_cast<int>(std::nearbyint(inv_scale * sub_scale[j]))));
    lm[j] =
        static_cast<uint8_t>(std::min(63, static_cast<int>(std::nearbyint(inv_min * sub_min[j]))));
  }
  std::memset(scales, 0, kKScaleSize);
  PackScalesK4(ls, lm, scales);
  *d_out = F32ToF16(max_scale / 63.0f);
  *dmin_out = F32ToF16(max_min / 63.0f);
  const float d = F16ToF32(*d_out), dmin = F16ToF32(*dmin_out);
  for (int j = 0; j < 8; ++j) {
    uint8_t sc, m;
    GetScaleMinK4(j, scales, &sc, &m);
    const float ds = d * sc, dm = dmin * m;
    for (int l = 0; l < 32; ++l) {
      const int q = ds > 0 ? static_cast<int>(std::nearbyint((x[32 * j + l] + dm) / ds)) : 0;
      levels[32 * j + l] = static_cast<uint8_t>(std::clamp(q, 0, nmax));
    }
  }
}

void QuantQ4_K(const float* x, BlockQ4_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    uint8_t levels[kQKK];
    QuantizeAffineK(x, 15, &b[i].d, &b[i].dmin, b[i].scales, levels);
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        b[i].qs[32 * c + l] =
            static_cast<uint8_t>(levels[64 * c + l] | (levels[64 * c + 32 + l] << 4));
      }
    }
  }
}

void QuantQ5_K(const float* x, BlockQ5_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    uint8_t levels[kQKK];
    QuantizeAffineK(x, 31, &b[i].d, &b[i].dmin, b[i].scales, levels);
    std::memset(b[i].qh, 0, sizeof(b[i].qh));
    for (int c = 0; c < 4; ++c) {
      for (int l = 0; l < 32; ++l) {
        const int q1 = levels[64 * c + l], q2 = levels[64 * c + 32 + l];
        b[i].qs[32 * c + l] = static_cast<uint8_t>((q1 & 0xF) | ((q2 & 0xF) << 4));
        b[i].qh[l] |= static_cast<uint8_t>(((q1 >> 4) << (2 * c)) | ((q2 >> 4) << (2 * c + 1)));
      }
    }
  }
}

void QuantQ6_K(const float* x, BlockQ6_K* b, int64_t nb) {
  for (int64_t i = 0; i < nb; ++i, x += kQKK) {
    float sub_scale[16];  // signed: the extreme value maps to level -32
    float max_abs_scale = 0.0f, max_scale = 0.0f;
    for (int s = 0; s < 16; ++s) {
      float amax = 0.0f, max = 0.0f;
      for (int l = 0; l < 16; ++l) {
        if (std::fabs(x[16 * s + l]) > amax) {
          amax = std::fabs(x[16 * s + l]);
          max = x[16 * s + l];
        }
      }
      sub_scale[s] = max / -32.0f;
      if (std::fabs(sub_scale[s]) > max_abs_scale) {
        max_abs_scale = std::fabs(sub_scale[s]);
        max_scale = sub_scale[s];
      }
    }
    const float iscale = max_scale != 0.0f ? -128.0f / max_scale : 0.0f;
    b[i].d = F32ToF16(max_scale != 0.0f ? 1.0f / iscale : 0.0f);
    const float d = F16ToF32(b[i].d);
    uint8_t levels[kQKK];
    for (int s = 0; s < 16; ++s) {
      b[i].scales[s] = static_cast<int8_t>(
          std::clamp(static_cast<int>(std::nearbyint(iscale * sub_scale[s])), -128, 127));
      const float ds = d * b[i].scales[s];
      for (int l = 0; l < 16; ++l) {
        const int q = ds != 0.0f ? static_cast<int>(std::nearbyint(x[16 * s + l] / ds)) : 0;
        levels[16 * s + l] = static_cast<uint8_t>(std::clamp(q, -32, 31) + 32);
      }
    }
    std::memset(b[i].ql, 0, sizeof(b[i].ql));
    std::memset(b[i].qh, 0, sizeof(b[i].qh));
    for (int e = 0; e < kQKK; ++e) {
      const int h = e / 128, r = e % 128;
      b[i].ql[64 * h + r % 64] |= static_cast<uint8_t>((levels[e] & 0xF) << (4 * (r / 64)));
      b[i].qh[32 * h + r % 32] |= static_cast<uint8_t>((levels[e] >> 4) << (2 * (r / 32)));
    }
  }
}

}  // namespace

void DequantizeRow(DType t, const void* src, float* dst, int64_t n) {
  const int64_t nb = n / GetDTypeInfo(t).block_elems;
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = F16ToF32(h[i]);
      return;
    }
    case DType::kBF16: {
      const auto* h = static_cast<const uint16_t*>(src);
      for (int64_t i = 0; i < n; ++i) dst[i] = BF16ToF32(h[i]);
      return;
    }
    case DType::kQ8_0:
      return DequantQ8_0(static_cast<const BlockQ8_0*>(src), dst, nb);
    case DType::kQ4_0:
      return DequantQ4_0(static_cast<const BlockQ4_0*>(src), dst, nb);
    case DType::kQ4_1:
      return DequantQ4_1(static_cast<const BlockQ4_1*>(src), dst, nb);
    case DType::kQ4_K:
      return DequantQ4_K(static_cast<const BlockQ4_K*>(src), dst, nb);
    case DType::kQ5_K:
      return DequantQ5_K(static_cast<const BlockQ5_K*>(src), dst, nb);
    case DType::kQ6_K:
      return DequantQ6_K(static_cast<const BlockQ6_K*>(src), dst, nb);
  }
}

void QuantizeRow(DType t, const float* src, void* dst, int64_t n) {
  const int64_t nb = n / GetDTypeInfo(t).block_elems;
  switch (t) {
    case DType::kF32:
      std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(float));
      return;
    case DType::kF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = F32ToF16(src[i]);
      return;
    }
    case DType::kBF16: {
      auto* h = static_cast<uint16_t*>(dst);
      for (int64_t i = 0; i < n; ++i) h[i] = F32ToBF16(src[i]);
      return;
    }
    case DType::kQ8_0:
      return QuantQ8_0(src, static_cast<BlockQ8_0*>(dst), nb);
    case DType::kQ4_0:
      return QuantQ4_0(src, static_cast<BlockQ4_0*>(dst), nb);
    case DType::kQ4_1:
      return QuantQ4_1(src, static_cast<BlockQ4_1*>(dst), nb);
    case DType::kQ4_K:
      return QuantQ4_K(src, static_cast<BlockQ4_K*>(dst), nb);
    case DType::kQ5_K:
      return QuantQ5_K(src, static_cast<BlockQ5_K*>(dst), nb);
    case DType::kQ6_K:
      return QuantQ6_K(src, static_cast<BlockQ6_K*>(dst), nb);
  }
}

}  // namespace ts
