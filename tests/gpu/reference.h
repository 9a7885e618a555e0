// Straightforward CPU references for tests/gpu: dequantisation written after ggml's
// dequantize_row_* loops (independently of kernels/cuda/quant_decode.cuh), and the ops of
// kernels/backend.h in double precision.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/quant_blocks.h"
#include "kernels/dtype.h"

namespace ts::gputest {

// Row `cols` elements of type t at `row` -> float, as ggml dequantises.
inline void DequantRow(DType t, const uint8_t* row, int64_t cols, float* y) {
  switch (t) {
    case DType::kF32:
      std::memcpy(y, row, cols * 4);
      return;
    case DType::kF16:
    case DType::kBF16:
      for (int64_t k = 0; k < cols; ++k) {
        uint16_t h;
        std::memcpy(&h, row + 2 * k, 2);
        y[k] = t == DType::kF16 ? F16ToF32(h) : BF16ToF32(h);
      }
      return;
    case DType::kQ8_0:
      for (int64_t b = 0; b < cols / kQK; ++b) {
        BlockQ8_0 blk;
        std::memcpy(&blk, row + b * sizeof(blk), sizeof(blk));
        const float d = F16ToF32(blk.d);
        for (int j = 0; j < kQK; ++j) y[b * kQK + j] = d * blk.qs[j];
      }
      return;
    case DType::kQ4_0:
      for (int64_t b = 0; b < cols / kQK; ++b) {
        BlockQ4_0 blk;
        std::memcpy(&blk, row + b * sizeof(blk), sizeof(blk));
        const float d = F16ToF32(blk.d);
        for (int j = 0; j < kQK / 2; ++j) {
          y[b * kQK + j] = d * ((blk.qs[j] & 0xF) - 8);
          y[b * kQK + j + 16] = d * ((blk.qs[j] >> 4) - 8);
        }
      }
      return;
    case DType::kQ4_1:
      for (int64_t b = 0; b < cols / kQK; ++b) {
        BlockQ4_1 blk;
        std::memcpy(&blk, row + b * sizeof(blk), sizeof(blk));
        const float d = F16ToF32(blk.d), m = F16ToF32(blk.m);
        for (int j = 0; j < kQK / 2; ++j) {
          y[b * kQK + j] = d * (blk.qs[j] & 0xF) + m;
          y[b * kQK + j + 16] = d * (blk.qs[j] >> 4) + m;
        }
      }
      return;
    case DType::kQ4_K:
    case DType::kQ5_K:
      for (int64_t b = 0; b < cols / kQKK; ++b) {
        const bool q5 = t == DType::kQ5_K;
        BlockQ5_K b5{};
        BlockQ4_K b4{};
        const uint8_t *scales, *q, *qh = nullptr;
        uint16_t dd, dm;
        if (q5) {
          std::memcpy(&b5, row + b * sizeof(b5), sizeof(b5));
          scales = b5.scales, q = b5.qs, qh = b5.qh, dd = b5.d, dm = b5.dmin;
        } else {
          std::memcpy(&b4, row + b * sizeof(b4), sizeof(b4));
          scales = b4.scales, q = b4.qs, dd = b4.d, dm = b4.dmin;
        }
        const float d = F16ToF32(dd), mn = F16ToF32(dm);
        float* out = y + b * kQKK;
        int is = 0;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < kQKK; j += 64) {
          uint8_t sc, m;
          GetScaleMinK4(is, scales, &sc, &m);
          const float d1 = d * sc, m1 = mn * m;
          GetScaleMinK4(is + 1, scales, &sc, &m);
          const float d2 = d * sc, m2 = mn * m;
          for (int l = 0; l < 32; ++l) {
            const int hi = q5 && (qh[l] & u1) ? 16 : 0;
            *out++ = d1 * ((q[l] & 0xF) + hi) - m1;
          }
          for (int l = 0; l < 32; ++l) {
            const int hi = q5 && (qh[l] & u2) ? 16 : 0;
            *out++ = d2 * ((q[l] >> 4) + hi) - m2;
          }
          q += 32;
          is += 2;
          u1 <<= 2;
          u2 <<= 2;
        }
      }
      return;
    case DType::kQ6_K:
      for (int64_t b = 0; b < cols / kQKK; ++b) {
        BlockQ6_K blk;
        std::memcpy(&blk, row + b * sizeof(blk), sizeof(blk));
        const float d = F16ToF32(blk.d);
        const uint8_t* ql = blk.ql;
        const uint8_t* qh = blk.qh;
        const int8_t* sc = blk.scales;
        float* out = y + b * kQKK;
        for (int n = 0; n < kQKK; n += 128) {
          for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            out[l] = d * sc[is] * q1;
            out[l + 32] = d * sc[is + 2] * q2;
            out[l + 64] = d * sc[is + 4] * q3;
            out[l + 96] = d * sc[is + 6] * q4;
          }
          out += 128;
          ql += 64;
          qh += 32;
          sc += 8;
        }
      }
      return;
  }
}

// Random bytes for a (rows, cols) matrix of type t whose scale fields are sane f16 values.
inline std::vector<uint8_t> RandomMatrixBytes(DType t, int64_t rows, int64_t cols,
                                              std::mt19937& rng) {
  const size_t row_bytes = RowBytes(t, cols);
  std::vector<uint8_t> bytes(row_bytes * rows);
  std::uniform_int_distribution<int> byte(0, 255);
  for (auto& b : bytes) b = static_cast<uint8_t>(byte(rng));
  std::uniform_real_distribution<float> unit(-1.0f, 1.0f), scale(0.002f, 0.02f);
  auto put16 = [&](size_t off, uint16_t v) { std::memcpy(bytes.data() + off, &v, 2); };
  const int64_t total = rows * cols;
  const DTypeInfo info = GetDTypeInfo(t);
  const int64_t blocks = total / info.block_elems;
  for (int64_t b = 0; b < blocks; ++b) {
    const size_t base = static_cast<size_t>(b) * info.block_bytes;
    switch (t) {
      case DType::kF32: {
        const float v = unit(rng);
        std::memcpy(bytes.data() + base, &v, 4);
        break;
      }
      case DType::kF16:
        put16(base, F32ToF16(unit(rng)));
        break;
      case DType::kBF16:
        put16(base, F32ToBF16(unit(rng)));
        break;
      case DType::kQ8_0:
      case DType::kQ4_0:
        put16(base, F32ToF16(scale(rng)));
        break;
      case DType::kQ4_1:
      case DType::kQ4_K:
      case DType::kQ5_K:
        put16(base, F32ToF16(scale(rng)));
        put16(base + 2, F32ToF16(t == DType::kQ4_1 ? 0.1f * unit(rng) : scale(rng) * 0.5f));
        break;
      case DType::kQ6_K:
        put16(base + 208, F32ToF16(scale(rng) * 0.1f));
        break;
    }
  }
  return bytes;
}

inline std::vector<float> RandomFloats(size_t count, std::mt19937& rng, float lo = -1.0f,
                                       float hi = 1.0f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(count);
  for (auto& x : v) x = u(rng);
  return v;
}

// Normalised mean squared error of `got` against `want`.
inline double Nmse(const std::vector<double>& want, const float* got) {
  double num = 0, den = 0;
  for (size_t k = 0; k < want.size(); ++k) {
    const double d = static_cast<double>(got[k]) - want[k];
    if (!std::isfinite(got[k])) return INFINITY;
    num += d * d;
    den += want[k] * want[k];
  }
  return den > 0 ? num / den : num;
}

// Reference attention of one (query, head) in double over the logical keys `slots`.
// k, v: host copies of the cache, (n_kv_heads, capacity, head_dim), as floats.
inline void AttentionRef(const float* q, const std::vector<int>& slots, const float* k,
                         const float* v, int kvh, int64_t capacity, int head_dim, float scale,
                         double* out) {
  std::vector<double> s(slots.size());
  double mx = -INFINITY;
  for (size_t t = 0; t < slots.size(); ++t) {
    const float* kr = k + (kvh * capacity + slots[t]) * head_dim;
    double dot = 0;
    for (int d = 0; d < head_dim; ++d) dot += static_cast<double>(q[d]) * kr[d];
    s[t] = dot * scale;
    mx = std::max(mx, s[t]);
  }
  double den = 0;
  for (auto& x : s) den += (x = std::exp(x - mx));
  for (int d = 0; d < head_dim; ++d) out[d] = 0;
  for (size_t t = 0; t < slots.size(); ++t) {
    const float* vr = v + (kvh * capacity + slots[t]) * head_dim;
    for (int d = 0; d < head_dim; ++d) out[d] += s[t] / den * vr[d];
  }
}

}  // namespace ts::gputest
