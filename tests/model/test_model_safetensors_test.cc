// The safetensors writer: header layout, alignment, validation, and half-float rounding.
#include <gtest/gtest.h>

#include <bit>
#include <cstring>
#include <limits>

#include "nlohmann/json.hpp"
#include "runtime/model/safetensors_writer.h"

namespace ts {
namespace {

SafetensorsTensor Tensor(std::string name, DType dtype, std::vector<int64_t> shape,
                         std::vector<float> values) {
  return {std::move(name), dtype, std::move(shape), EncodeFloats(values, dtype)};
}

TEST(SafetensorsWriter, HeaderIsPaddedAndOffsetsAreContiguousAndAligned) {
  std::vector<SafetensorsTensor> tensors = {
      Tensor("b.half", DType::kBF16, {3}, {1, 2, 3}),
      Tensor("a.f32", DType::kF32, {2, 2}, {1, 2, 3, 4}),
      Tensor("c.f16", DType::kF16, {1}, {0.5f}),
  };
  auto bytes = SerializeSafetensors(tensors, {{"format", "pt"}});
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  uint64_t n = 0;
  std::memcpy(&n, bytes->data(), 8);
  EXPECT_EQ(n % 8, 0u);
  const auto header = nlohmann::json::parse(bytes->substr(8, n));
  EXPECT_EQ(header["__metadata__"]["format"], "pt");
  // f32 first (alignment), then the halves in the caller's order.
  EXPECT_EQ(header["a.f32"]["data_offsets"], nlohmann::json({0, 16}));
  EXPECT_EQ(header["b.half"]["data_offsets"], nlohmann::json({16, 22}));
  EXPECT_EQ(header["c.f16"]["data_offsets"], nlohmann::json({22, 24}));
  EXPECT_EQ(header["b.half"]["dtype"], "BF16");
  EXPECT_EQ(header["a.f32"]["shape"], nlohmann::json({2, 2}));
  EXPECT_EQ(bytes->size(), 8 + n + 24);
  float third = 0;
  std::memcpy(&third, bytes->data() + 8 + n + 8, 4);
  EXPECT_EQ(third, 3.0f);
}

TEST(SafetensorsWriter, RejectsBadTensors) {
  auto code = [](std::vector<SafetensorsTensor> t) { return SerializeSafetensors(t).status(); };
  EXPECT_EQ(code({Tensor("x", DType::kF32, {3}, {1, 2})}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({Tensor("x", DType::kF32, {1}, {1}), Tensor("x", DType::kF32, {1}, {1})}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code({Tensor("", DType::kF32, {1}, {1})}).code(), absl::StatusCode::kInvalidArgument);
  SafetensorsTensor q{"q", DType::kQ8_0, {32}, std::vector<uint8_t>(34)};
  EXPECT_EQ(code({q}).code(), absl::StatusCode::kInvalidArgument);
}

TEST(SafetensorsWriter, HalfConversionsRoundToNearestEven) {
  EXPECT_EQ(F32ToF16Bits(1.0f), 0x3c00);
  EXPECT_EQ(F32ToF16Bits(-2.0f), 0xc000);
  EXPECT_EQ(F32ToF16Bits(65504.0f), 0x7bff);
  EXPECT_EQ(F32ToF16Bits(65520.0f), 0x7c00);             // rounds up to infinity
  EXPECT_EQ(F32ToF16Bits(1.0f + 0x1p-11f), 0x3c00);      // tie -> even
  EXPECT_EQ(F32ToF16Bits(1.0f + 3 * 0x1p-11f), 0x3c02);  // tie -> even (up)
  EXPECT_EQ(F32ToF16Bits(0x1p-24f), 0x0001);             // smallest subnormal
  EXPECT_EQ(F32ToF16Bits(0x1p-25f), 0x0000);             // tie -> even (zero)
  EXPECT_EQ(F32ToF16Bits(3 * 0x1p-25f), 0x0002);         // tie -> even (up)
  EXPECT_EQ(F32ToF16Bits(0x1p-14f), 0x0400);             // smallest normal
  EXPECT_EQ(F32ToF16Bits(std::numeric_limits<float>::infinity()), 0x7c00);
  EXPECT_EQ(F32ToF16Bits(std::numeric_limits<float>::quiet_NaN()) & 0x7c00, 0x7c00);
  EXPECT_NE(F32ToF16Bits(std::numeric_limits<float>::quiet_NaN()) & 0x03ff, 0);

  EXPECT_EQ(F32ToBf16Bits(1.0f), 0x3f80);
  EXPECT_EQ(F32ToBf16Bits(1.0f + 0x1p-8f), 0x3f80);      // tie -> even
  EXPECT_EQ(F32ToBf16Bits(1.0f + 3 * 0x1p-8f), 0x3f82);  // tie -> even (up)
  EXPECT_EQ(F32ToBf16Bits(-0.0f), 0x8000);
  EXPECT_NE(F32ToBf16Bits(std::numeric_limits<float>::quiet_NaN()) & 0x007f, 0);
}

}  // namespace
}  // namespace ts
