// MatMul at verify-batch sizes (TokenSwift checks a draft tree of 2..16 tokens in one pass).
//
// The integer kernels share each weight block's unpacking among a group of up to 8 x rows, and
// a tile's rows are split into groups whose sizes depend on the batch (7 rows: one group of 7;
// 12: 6 + 6; 17: 6 + 6 + 5). DESIGN.md section 2 needs a row's output to be bit-identical
// whatever group it lands in, so every batch size 1..17 at several offsets, with 1 and 2 threads,
// is compared bit for bit against the row computed alone, for every dtype, on every SIMD target
// this CPU supports; and each batch agrees with a double-precision product of the dequantized
// weights within the bound the other MatMul tests use.
#include <cstring>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "tests/kernels/kernel_test_util.h"

namespace ts {
namespace {

using testing::DTypeName;
using testing::kAllDTypes;
using testing::MakeTestMatrix;
using testing::PaddedBuffer;
using testing::RandomFloats;

constexpr int64_t kMaxRows = 20;  // x rows available: batches of 1..17 at offsets 0, 1, 3

bool IsQ8Kernel(DType t) { return t == DType::kQ8_0 || t == DType::kQ4_0 || t == DType::kQ4_1; }

// Column counts per dtype: an odd and an even number of 32-blocks (the kernels pair blocks),
// whole super-blocks for K-quants, a count that is no multiple of the vector width for floats.
std::vector<int64_t> ColsFor(DType t) {
  if (GetDTypeInfo(t).block_elems == 256) return {256};
  if (GetDTypeInfo(t).block_elems == 32) return {160, 576};
  return {100};
}

// y (n, rows) = x (n, cols) * dequant^T + bias in double precision, straight from the definition.
std::vector<double> Reference(const testing::TestMatrix& tm, const float* x, int64_t n,
                              const float* bias) {
  const int64_t rows = tm.m.rows, cols = tm.m.cols;
  std::vector<double> y(n * rows);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t r = 0; r < rows; ++r) {
      double acc = bias[r];
      for (int64_t c = 0; c < cols; ++c) {
        acc += static_cast<double>(x[i * cols + c]) * tm.dequant[r * cols + c];
      }
      y[i * rows + r] = acc;
    }
  }
  return y;
}

void CheckSmallBatches(DType t, int64_t rows, int64_t cols) {
  auto one = MakeCpuBackend(1);
  auto two = MakeCpuBackend(2);
  const auto tm = MakeTestMatrix(t, rows, cols, 31);
  const std::vector<float> x = RandomFloats(kMaxRows * cols, 32);  // (kMaxRows, cols)
  const std::vector<float> bias = RandomFloats(rows, 33);          // (rows)
  std::vector<float> alone(kMaxRows * rows);                       // (kMaxRows, rows)
  for (int64_t i = 0; i < kMaxRows; ++i) {
    one->MatMul(tm.m, x.data() + i * cols, 1, alone.data() + i * rows, bias.data());
  }
  const double max_nmse = IsQ8Kernel(t) ? 1e-4 : 1e-11;
  for (int64_t n = 1; n <= 17; ++n) {
    for (int64_t offset : {0, 1, 3}) {
      for (Backend* b : {one.get(), two.get()}) {
        SCOPED_TRACE("n=" + std::to_string(n) + " offset=" + std::to_string(offset) + " " +
                     b->Name());
        PaddedBuffer y(n * rows);  // (n, rows)
        b->MatMul(tm.m, x.data() + offset * cols, n, y.data(), bias.data());
        ASSERT_TRUE(y.PaddingIntact());
        for (int64_t k = 0; k < n; ++k) {
          ASSERT_EQ(std::memcmp(y.data() + k * rows, alone.data() + (offset + k) * rows, rows * 4),
                    0)
              << "row " << offset + k << " differs from the row computed alone";
        }
        if (offset == 0 && b == two.get()) {
          EXPECT_LE(testing::Nmse(y.data(), Reference(tm, x.data(), n, bias.data())), max_nmse);
        }
      }
    }
  }
}

TEST(MatMulSmallBatch, EveryBatchSizeBitExactWithRowAlone) {
  testing::ForEachSimdTarget([] {
    for (DType t : kAllDTypes) {
      for (int64_t cols : ColsFor(t)) {
        // 83 rows: several chunks per thread, a partial 16-row sub-tile; 5: fewer than a tile.
        for (int64_t rows : {83, 5}) {
          SCOPED_TRACE(DTypeName(t) + " rows=" + std::to_string(rows) +
                       " cols=" + std::to_string(cols));
          CheckSmallBatches(t, rows, cols);
          if (::testing::Test::HasFatalFailure()) return;
        }
      }
    }
  });
}

// The row split between threads must cover every weight row exactly once for any row count,
// including counts that leave some chunks one 16-row sub-tile shorter than others.
TEST(MatMulSmallBatch, ThreadSplitCoversEveryWeightRow) {
  auto two = MakeCpuBackend(2);
  constexpr int64_t cols = 64, n = 3;
  const std::vector<float> x = RandomFloats(n * cols, 41);  // (n, cols)
  const std::vector<float> zero_bias(600, 0.0f);
  for (int64_t rows : {1, 15, 16, 17, 127, 129, 192, 200, 576}) {
    SCOPED_TRACE("rows=" + std::to_string(rows));
    const auto tm = MakeTestMatrix(DType::kQ4_1, rows, cols, 42);
    PaddedBuffer y(n * rows);  // (n, rows)
    two->MatMul(tm.m, x.data(), n, y.data(), zero_bias.data());
    EXPECT_TRUE(y.PaddingIntact());
    const auto ref = Reference(tm, x.data(), n, zero_bias.data());
    EXPECT_LE(testing::Nmse(y.data(), ref), 1e-4);
    for (int64_t e = 0; e < n * rows; ++e) {
      ASSERT_NE(y.data()[e], PaddedBuffer::kSentinel) << "output " << e << " never written";
    }
  }
}

}  // namespace
}  // namespace ts

namespace ts {
namespace {

// MatMulSegments (the row-parallel granules in one pass): each segment's products are the bits
// of MatMul on a separate matrix holding only that segment's columns, fed only those x columns,
// for every dtype, batch sizes 1..9 (one and two kernel groups), 1 and 2 threads, on every SIMD
// target. Bounds: multiples of 64 (block pairs), a last segment with an odd block count, and
// K-quant super-blocks.
TEST(MatMulSegments, EachSegmentEqualsItsColumnsAlone) {
  testing::ForEachSimdTarget([] {
    for (DType t : kAllDTypes) {
      const bool k_quant = GetDTypeInfo(t).block_elems == 256;
      const std::vector<int64_t> bounds = k_quant ? std::vector<int64_t>{0, 256, 768, 1024}
                                                  : std::vector<int64_t>{0, 192, 320, 544};
      const int64_t cols = bounds.back(), rows = 37;
      SCOPED_TRACE(DTypeName(t));
      const auto tm = MakeTestMatrix(t, rows, cols, 51);
      const std::vector<float> x = RandomFloats(9 * cols, 52);
      for (int threads : {1, 2}) {
        auto b = MakeCpuBackend(threads);
        for (int64_t n : {1, 4, 9}) {
          const int64_t segs = static_cast<int64_t>(bounds.size()) - 1;
          PaddedBuffer y(segs * n * rows);
          b->MatMulSegments(tm.m, x.data(), n, bounds, y.data());
          ASSERT_TRUE(y.PaddingIntact());
          for (int64_t s = 0; s < segs; ++s) {
            const int64_t c0 = bounds[s], len = bounds[s + 1] - c0;
            // The segment as its own matrix (rows copied out) and its own x rows.
            const size_t rb = RowBytes(t, len), off = RowBytes(t, c0);
            std::vector<uint8_t> bytes(rb * rows);
            for (int64_t r = 0; r < rows; ++r) {
              std::memcpy(bytes.data() + r * rb, tm.bytes.data() + r * tm.m.row_bytes + off, rb);
            }
            const Matrix part{bytes.data(), t, rows, len, rb};
            std::vector<float> xs(n * len);
            for (int64_t i = 0; i < n; ++i) {
              std::memcpy(xs.data() + i * len, x.data() + i * cols + c0, len * sizeof(float));
            }
            std::vector<float> want(n * rows);
            b->MatMul(part, xs.data(), n, want.data());
            ASSERT_EQ(std::memcmp(y.data() + s * n * rows, want.data(), want.size() * 4), 0)
                << "segment " << s << ", n " << n << ", " << threads << " thread(s)";
          }
        }
      }
    }
  });
}

}  // namespace
}  // namespace ts
