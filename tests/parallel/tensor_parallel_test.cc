#include "runtime/model/tensor_parallel.h"

#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/dequant.h"

namespace ts {
namespace {

// y = x W^T computed whole and as the sum of two column slices (o_proj / down_proj under TP):
// for block-aligned slices the two must agree to rounding, for every weight type.
TEST(ColumnSlice, PartialProductsSumToTheWholeProduct) {
  const int64_t rows = 40, cols = 576, n = 3;
  std::unique_ptr<Backend> backend = MakeCpuBackend(1);
  for (DType t : {DType::kF32, DType::kQ8_0, DType::kQ4_1}) {
    const size_t rb = RowBytes(t, cols);
    std::vector<uint8_t> data(rows * rb);
    std::vector<float> src(cols);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t c = 0; c < cols; ++c) src[c] = std::sin(0.1 * r + 0.013 * c * (r % 5 + 1));
      QuantizeRow(t, src.data(), data.data() + r * rb, cols);
    }
    Matrix w{data.data(), t, rows, cols, rb};
    std::vector<float> x(n * cols);
    for (int64_t i = 0; i < n * cols; ++i) x[i] = std::cos(0.37 * i);
    std::vector<float> whole(n * rows), a(n * rows), b(n * rows);
    backend->MatMul(w, x.data(), n, whole.data());
    for (int64_t cut : {384, 192, 64}) {
      auto left = ColumnSlice(w, Range{0, cut}, "w");
      auto right = ColumnSlice(w, Range{cut, cols}, "w");
      ASSERT_TRUE(left.ok() && right.ok());
      std::vector<float> xl(n * cut), xr(n * (cols - cut));
      for (int64_t i = 0; i < n; ++i) {
        std::copy(x.begin() + i * cols, x.begin() + i * cols + cut, xl.begin() + i * cut);
        std::copy(x.begin() + i * cols + cut, x.begin() + (i + 1) * cols,
                  xr.begin() + i * (cols - cut));
      }
      backend->MatMul(*left, xl.data(), n, a.data());
      backend->MatMul(*right, xr.data(), n, b.data());
      for (int64_t i = 0; i < n * rows; ++i) {
        EXPECT_NEAR(a[i] + b[i], whole[i], 1e-4 * (1 + std::fabs(whole[i])))
            << "dtype " << static_cast<int>(t) << " cut " << cut << " element " << i;
      }
    }
  }
}

TEST(ColumnSlice, RejectsSlicesThatCutAQuantizationBlock) {
  std::vector<uint8_t> data(RowBytes(DType::kQ4_1, 64) * 2);
  Matrix w{data.data(), DType::kQ4_1, 2, 64, RowBytes(DType::kQ4_1, 64)};
  auto bad = ColumnSlice(w, Range{16, 64}, "o_proj");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().message(),
            "--tp: o_proj columns [16, 64) do not fall on its quantization blocks of 32");
  EXPECT_TRUE(ColumnSlice(w, Range{32, 64}, "o_proj").ok());
}

}  // namespace
}  // namespace ts
