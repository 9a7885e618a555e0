// MatMul: accuracy against a double-precision reference at awkward sizes, sentinel padding,
// and batch invariance (row alone vs in a batch, 1 vs 2 threads, bit-exact) for every dtype.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <memory>
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

int64_t ColsFor(DType t, bool small) {
  if (GetDTypeInfo(t).block_elems == 256) return small ? 256 : 512;
  if (GetDTypeInfo(t).block_elems == 32) return small ? 96 : 576;  // 3 blocks: odd count
  return small ? 100 : 576;  // float types: not a multiple of the vector width
}

// Bound on NMSE against a reference that uses the exact dequantized weights. Integer kernels
// also quantize x to 8 bits per 32-block, so their bound is looser.
double MaxNmse(DType t) {
  return (t == DType::kQ8_0 || t == DType::kQ4_0 || t == DType::kQ4_1) ? 1e-4 : 1e-11;
}

std::vector<double> Reference(const testing::TestMatrix& tm, const float* x, int64_t n,
                              const float* bias) {
  const int64_t rows = tm.m.rows, cols = tm.m.cols;
  std::vector<double> y(n * rows);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t r = 0; r < rows; ++r) {
      double acc = bias != nullptr ? bias[r] : 0.0;
      for (int64_t c = 0; c < cols; ++c) {
        acc += static_cast<double>(x[i * cols + c]) * tm.dequant[r * cols + c];
      }
      y[i * rows + r] = acc;
    }
  }
  return y;
}

void CheckAgainstReference();
void CheckBatchInvariance();

TEST(MatMul, MatchesDoubleReferenceAtAwkwardSizes) {
  testing::ForEachSimdTarget([] { CheckAgainstReference(); });
}

TEST(MatMul, BatchInvariantBitExact) {
  testing::ForEachSimdTarget([] { CheckBatchInvariance(); });
}

void CheckAgainstReference() {
  auto backend = MakeCpuBackend(2);
  for (DType t : kAllDTypes) {
    for (bool small : {true, false}) {
      const int64_t cols = ColsFor(t, small), rows = small ? 67 : 33;
      const auto tm = MakeTestMatrix(t, rows, cols, 11);
      const std::vector<float> bias = RandomFloats(rows, 5);
      for (int64_t n : {1, 17, 54, 97, 128}) {
        SCOPED_TRACE(DTypeName(t) + " cols=" + std::to_string(cols) + " n=" + std::to_string(n));
        const std::vector<float> x = RandomFloats(n * cols, 100 + n);
        const bool with_bias = (n % 2) == 1;
        PaddedBuffer y(n * rows);
        backend->MatMul(tm.m, x.data(), n, y.data(), with_bias ? bias.data() : nullptr);
        EXPECT_TRUE(y.PaddingIntact());
        const auto ref = Reference(tm, x.data(), n, with_bias ? bias.data() : nullptr);
        EXPECT_LE(testing::Nmse(y.data(), ref), MaxNmse(t));
      }
    }
  }
}

// DESIGN.md section 2: a row's output is bit-identical alone or in a batch of 64, with 1 or 2
// threads.
void CheckBatchInvariance() {
  auto one = MakeCpuBackend(1);
  auto two = MakeCpuBackend(2);
  constexpr int64_t kBatch = 64;
  for (DType t : kAllDTypes) {
    SCOPED_TRACE(DTypeName(t));
    const int64_t cols = ColsFor(t, false), rows = 83;
    const auto tm = MakeTestMatrix(t, rows, cols, 21);
    const std::vector<float> x = RandomFloats(kBatch * cols, 22);
    const std::vector<float> bias = RandomFloats(rows, 23);
    std::vector<float> batch2(kBatch * rows), batch1(kBatch * rows), alone(rows);
    two->MatMul(tm.m, x.data(), kBatch, batch2.data(), bias.data());
    one->MatMul(tm.m, x.data(), kBatch, batch1.data(), bias.data());
    EXPECT_EQ(std::memcmp(batch1.data(), batch2.data(), batch1.size() * 4), 0);
    for (int64_t i = 0; i < kBatch; ++i) {
      for (Backend* b : {one.get(), two.get()}) {
        b->MatMul(tm.m, x.data() + i * cols, 1, alone.data(), bias.data());
        ASSERT_EQ(std::memcmp(alone.data(), batch2.data() + i * rows, rows * 4), 0)
            << "row " << i << " differs alone (" << b->Name() << ")";
      }
    }
    // A sub-batch starting mid-way (different tiling of the same rows).
    std::vector<float> sub(37 * rows);
    two->MatMul(tm.m, x.data() + 5 * cols, 37, sub.data(), bias.data());
    EXPECT_EQ(std::memcmp(sub.data(), batch2.data() + 5 * rows, sub.size() * 4), 0);
  }
}

// Perf harness (run with --gtest_also_run_disabled_tests --gtest_filter='*Perf*'): n = 1
// matvec GB/s of weight bytes, cycling through enough copies of the matrix to defeat caches.
double MatVecGBs(Backend& backend, DType t, int64_t rows, int64_t cols,
                 size_t footprint = 256u << 20) {
  const size_t rb = RowBytes(t, cols);
  const size_t mat_bytes = rb * rows;
  const int copies = static_cast<int>(std::max<size_t>(2, footprint / mat_bytes));
  const auto proto = MakeTestMatrix(t, rows, cols, 3);
  std::vector<uint8_t> all(mat_bytes * copies);
  for (int c = 0; c < copies; ++c)
    std::memcpy(all.data() + c * mat_bytes, proto.bytes.data(), mat_bytes);
  const std::vector<float> x = RandomFloats(cols, 4);
  std::vector<float> y(rows);
  auto run = [&](int reps) {
    for (int r = 0; r < reps; ++r) {
      for (int c = 0; c < copies; ++c) {
        Matrix m{all.data() + c * mat_bytes, t, rows, cols, rb};
        backend.MatMul(m, x.data(), 1, y.data());
      }
    }
  };
  run(1);
  // Best of several timed runs: this machine is shared, and preemption only ever adds time.
  const int reps = copies > 8 ? 1 : 200;
  double best = 1e30;
  for (int trial = 0; trial < 7; ++trial) {
    const auto t0 = std::chrono::steady_clock::now();
    run(reps);
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return static_cast<double>(mat_bytes) * copies * reps / best / 1e9;
}

// Prefill throughput: n x rows x cols multiply-adds per call, in GMAC/s.
double PrefillGmacs(Backend& backend, DType t, int64_t n, int64_t rows, int64_t cols) {
  const auto tm = MakeTestMatrix(t, rows, cols, 5);
  const std::vector<float> x = RandomFloats(n * cols, 6);
  std::vector<float> y(n * rows);
  backend.MatMul(tm.m, x.data(), n, y.data());
  double best = 1e30;
  for (int trial = 0; trial < 7; ++trial) {
    const auto t0 = std::chrono::steady_clock::now();
    backend.MatMul(tm.m, x.data(), n, y.data());
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return static_cast<double>(n) * rows * cols / best / 1e9;
}

TEST(MatMul, DISABLED_PerfMatVec) {
  for (int threads : {1, 2}) {
    auto b = MakeCpuBackend(threads);
    std::printf("%s\n", b->Name().c_str());
    std::printf("  q4_1 1536x576 (ffn up)  : %6.2f GB/s\n", MatVecGBs(*b, DType::kQ4_1, 1536, 576));
    std::printf("  q4_1 576x1536 (ffn down): %6.2f GB/s\n", MatVecGBs(*b, DType::kQ4_1, 576, 1536));
    std::printf("  q8_0 49152x576 (lm_head): %6.2f GB/s\n",
                MatVecGBs(*b, DType::kQ8_0, 49152, 576));
    std::printf("  f32  576x576            : %6.2f GB/s\n", MatVecGBs(*b, DType::kF32, 576, 576));
    std::printf("  q4_1 1536x576 in cache  : %6.2f GB/s\n",
                MatVecGBs(*b, DType::kQ4_1, 1536, 576, 1u << 20));
    std::printf("  q8_0 1536x576 in cache  : %6.2f GB/s\n",
                MatVecGBs(*b, DType::kQ8_0, 1536, 576, 1u << 20));
    for (DType t : {DType::kQ4_1, DType::kQ8_0, DType::kF32, DType::kQ4_K}) {
      std::printf("  prefill n=256 %s 1536x576: %6.2f GMAC/s\n", DTypeName(t).c_str(),
                  PrefillGmacs(*b, t, 256, 1536, t == DType::kQ4_K ? 512 : 576));
    }
  }
}

}  // namespace
}  // namespace ts
