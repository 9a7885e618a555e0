// Helpers shared by the kernel tests: seeded random data, NMSE, sentinel-padded buffers,
// fixture files.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/dequant.h"
#include "kernels/dtype.h"
#include "tests/common/simd_targets.h"

namespace ts::testing {

inline std::vector<float> RandomFloats(int64_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, scale);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

// Normalized mean squared error sum((a-b)^2) / sum(b^2), b the reference.
inline double Nmse(const float* a, const std::vector<double>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(a[i]) - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  return den > 0 ? num / den : num;
}

// A float buffer with kPad sentinel elements on each side; Ok() checks they are untouched.
class PaddedBuffer {
 public:
  static constexpr int64_t kPad = 64;
  static constexpr float kSentinel = -12345.678f;
  explicit PaddedBuffer(int64_t n) : n_(n), buf_(n + 2 * kPad, kSentinel) {}
  float* data() { return buf_.data() + kPad; }
  const float* data() const { return buf_.data() + kPad; }
  int64_t size() const { return n_; }
  bool PaddingIntact() const {
    for (int64_t i = 0; i < kPad; ++i) {
      if (buf_[i] != kSentinel || buf_[kPad + n_ + i] != kSentinel) return false;
    }
    return true;
  }

 private:
  int64_t n_;
  std::vector<float> buf_;
};

inline std::vector<uint8_t> ReadFixture(const std::string& name) {
  const std::string path = std::string(TS_FIXTURES_DIR) + "/kernels/" + name;
  std::ifstream f(path, std::ios::binary);
  EXPECT_TRUE(f.good()) << "missing fixture " << path;
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// A quantized weight matrix (rows, cols) built from random floats; also keeps the exact
// dequantized values for references.
struct TestMatrix {
  std::vector<uint8_t> bytes;
  std::vector<float> dequant;  // (rows, cols)
  Matrix m;
};

inline TestMatrix MakeTestMatrix(DType t, int64_t rows, int64_t cols, uint32_t seed) {
  TestMatrix tm;
  const size_t rb = RowBytes(t, cols);
  tm.bytes.resize(rb * rows);
  tm.dequant.resize(rows * cols);
  const std::vector<float> src = RandomFloats(rows * cols, seed, 0.5f);
  for (int64_t r = 0; r < rows; ++r) {
    QuantizeRow(t, src.data() + r * cols, tm.bytes.data() + r * rb, cols);
    DequantizeRow(t, tm.bytes.data() + r * rb, tm.dequant.data() + r * cols, cols);
  }
  tm.m = Matrix{tm.bytes.data(), t, rows, cols, rb};
  return tm;
}

inline constexpr DType kAllDTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16,
                                       DType::kQ8_0, DType::kQ4_0, DType::kQ4_1,
                                       DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

inline std::string DTypeName(DType t) { return std::string(GetDTypeInfo(t).name); }

}  // namespace ts::testing
