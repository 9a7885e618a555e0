// DequantizeRow / QuantizeRow against gguf-py (scripts/make_quant_fixtures.py), bit for bit.
#include "kernels/cpu/dequant.h"

#include <cmath>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/cpu/quant_blocks.h"
#include "tests/kernels/kernel_test_util.h"

namespace ts {
namespace {

using testing::ReadFixture;

struct FixtureCase {
  DType type;
  const char* name;
};

constexpr FixtureCase kDequantCases[] = {
    {DType::kF16, "f16"},   {DType::kBF16, "bf16"}, {DType::kQ8_0, "q8_0"}, {DType::kQ4_0, "q4_0"},
    {DType::kQ4_1, "q4_1"}, {DType::kQ4_K, "q4_k"}, {DType::kQ5_K, "q5_k"}, {DType::kQ6_K, "q6_k"},
};

TEST(Dequant, MatchesGgufPyExactly) {
  for (const auto& c : kDequantCases) {
    SCOPED_TRACE(c.name);
    const std::vector<uint8_t> blocks = ReadFixture(std::string(c.name) + ".blocks");
    const std::vector<uint8_t> expected = ReadFixture(std::string(c.name) + ".f32");
    const int64_t n = static_cast<int64_t>(expected.size() / sizeof(float));
    ASSERT_GT(n, 0);
    ASSERT_EQ(RowBytes(c.type, n), blocks.size());
    std::vector<float> out(n + 1, -1.0f);
    DequantizeRow(c.type, blocks.data(), out.data(), n);
    EXPECT_EQ(std::memcmp(out.data(), expected.data(), expected.size()), 0);
    int64_t mismatches = 0;
    for (int64_t i = 0; i < n; ++i) {
      float e;
      std::memcpy(&e, expected.data() + 4 * i, 4);
      if (std::memcmp(&e, &out[i], 4) != 0 && mismatches++ < 5) {
        ADD_FAILURE() << "element " << i << ": got " << out[i] << " want " << e;
      }
    }
    EXPECT_EQ(out[n], -1.0f) << "wrote past the row";
  }
}

TEST(Quantize, Q8Q4MatchGgufPyExactly) {
  for (const auto& c : {FixtureCase{DType::kQ8_0, "q8_0"}, FixtureCase{DType::kQ4_0, "q4_0"},
                        FixtureCase{DType::kQ4_1, "q4_1"}}) {
    SCOPED_TRACE(c.name);
    const std::vector<uint8_t> in = ReadFixture(std::string(c.name) + ".quant_in.f32");
    const std::vector<uint8_t> expected = ReadFixture(std::string(c.name) + ".quant_out");
    const int64_t n = static_cast<int64_t>(in.size() / sizeof(float));
    std::vector<float> x(n);
    std::memcpy(x.data(), in.data(), in.size());
    std::vector<uint8_t> out(RowBytes(c.type, n));
    ASSERT_EQ(out.size(), expected.size());
    QuantizeRow(c.type, x.data(), out.data(), n);
    EXPECT_EQ(out, expected);
  }
}

// Quantize -> dequantize stays close to the input for every type (the K-quant quantizers are
// simple, not ggml's searching ones).
TEST(Quantize, RoundTripErrorIsSmall) {
  const struct {
    DType type;
    double max_nmse;
  } cases[] = {{DType::kF32, 0},     {DType::kF16, 1e-6},  {DType::kBF16, 1e-4},
               {DType::kQ8_0, 1e-4}, {DType::kQ4_0, 2e-2}, {DType::kQ4_1, 2e-2},
               {DType::kQ4_K, 2e-2}, {DType::kQ5_K, 5e-3}, {DType::kQ6_K, 2e-3}};
  const int64_t n = 1024;
  const std::vector<float> x = testing::RandomFloats(n, 7, 2.0f);
  const std::vector<double> ref(x.begin(), x.end());
  for (const auto& c : cases) {
    SCOPED_TRACE(testing::DTypeName(c.type));
    std::vector<uint8_t> q(RowBytes(c.type, n));
    std::vector<float> y(n);
    QuantizeRow(c.type, x.data(), q.data(), n);
    DequantizeRow(c.type, q.data(), y.data(), n);
    EXPECT_LE(testing::Nmse(y.data(), ref), c.max_nmse);
  }
}

TEST(HalfConversions, RoundToNearestEven) {
  EXPECT_EQ(F32ToF16(1.0f), 0x3C00);
  EXPECT_EQ(F32ToF16(65504.0f), 0x7BFF);
  EXPECT_EQ(F32ToF16(65520.0f), 0x7C00);
  EXPECT_EQ(F32ToF16(-0.0f), 0x8000);
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -24)), 0x0001);         // smallest subnormal
  EXPECT_EQ(F32ToF16(std::ldexp(1.0f, -25)), 0x0000);         // tie -> even (0)
  EXPECT_EQ(F32ToF16(std::ldexp(3.0f, -25)), 0x0002);         // 1.5 ulp tie -> even (2)
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(1.0f, -11)), 0x3C00);  // tie -> even
  EXPECT_EQ(F32ToF16(1.0f + std::ldexp(3.0f, -11)), 0x3C02);  // tie -> even (up)
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0) continue;  // NaN
    ASSERT_EQ(F32ToF16(F16ToF32(static_cast<uint16_t>(h))), h);
  }
  EXPECT_EQ(F32ToBF16(1.0f), 0x3F80);
  float f;
  uint32_t bits = 0x3F808000u;  // exactly halfway between 0x3F80 and 0x3F81 -> even
  std::memcpy(&f, &bits, 4);
  EXPECT_EQ(F32ToBF16(f), 0x3F80);
  bits = 0x3F818000u;  // halfway, odd below -> rounds up
  std::memcpy(&f, &bits, 4);
  EXPECT_EQ(F32ToBF16(f), 0x3F82);
}

}  // namespace
}  // namespace ts
