// Small-batch MatMul timing (tree verification: T = 1..16 rows share each weight pass), run with
//   ts_kernels_tests --gtest_also_run_disabled_tests --gtest_filter='MatMulSmallBatch*'
//
// 1. SmolLM2-135M-shaped matmuls (q/o 576x576, k/v 192x576, gate/up 1536x576, down 576x1536 in
//    Q4_1, lm_head 49152x576 in Q8_0) at n = 1, 2, 3, 4, 6, 8, 12, 16 rows, 2 threads: time per
//    call and per row. Each call reads a different copy of the matrix (64 MiB in all) so the
//    weights come from memory, as in decode where the whole model does not fit in cache.
// 2. Transformer::Forward of T = 1, 2, 4, 8, 16 tokens on the real SmolLM2 model after a
//    128-token prefill, logits for every row (what a tree verify pass computes).
// The machine is shared: every figure is the minimum over several trials (preemption only ever
// adds time), and the rows are printed so that before/after binaries can be run interleaved.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cpu/matmul.h"
#include "runtime/engine/model.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/transformer.h"
#include "tests/common/default_model.h"
#include "tests/kernels/kernel_test_util.h"

namespace ts {
namespace {

using testing::MakeTestMatrix;
using testing::RandomFloats;

// FNV-1a over the bits of v: before/after binaries print it to show that their outputs agree
// bit for bit.
uint64_t BitsHash(const std::vector<float>& v) {
  uint64_t h = 1469598103934665603ull;
  for (float f : v) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    h = (h ^ u) * 1099511628211ull;
  }
  return h;
}

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// Best time of one MatMul call of n rows against a (rows, cols) matrix of type t, in seconds;
// *hash: BitsHash of the output.
double BestCallSeconds(Backend& backend, DType t, int64_t rows, int64_t cols, int64_t n,
                       uint64_t* hash) {
  const size_t rb = RowBytes(t, cols);
  const size_t mat_bytes = rb * rows;
  const int copies = static_cast<int>(std::max<size_t>(2, (64u << 20) / mat_bytes));
  const auto proto = MakeTestMatrix(t, rows, cols, 3);
  std::vector<uint8_t> all(mat_bytes * copies);  // (copies, rows, row bytes)
  for (int c = 0; c < copies; ++c) {
    std::memcpy(all.data() + c * mat_bytes, proto.bytes.data(), mat_bytes);
  }
  const std::vector<float> x = RandomFloats(n * cols, 4);  // (n, cols)
  std::vector<float> y(n * rows);                          // (n, rows)
  auto sweep = [&] {
    for (int c = 0; c < copies; ++c) {
      const Matrix m{all.data() + c * mat_bytes, t, rows, cols, rb};
      backend.MatMul(m, x.data(), n, y.data());
    }
  };
  sweep();
  double best = 1e30;
  for (int trial = 0; trial < 9; ++trial) {
    const auto t0 = std::chrono::steady_clock::now();
    sweep();
    best = std::min(best, Seconds(t0) / copies);
  }
  *hash = BitsHash(y);
  return best;
}

void PrintShapeTimes() {
  struct Shape {
    const char* name;
    DType t;
    int64_t rows, cols;
  };
  const Shape shapes[] = {{"q/o  576x576  q4_1", DType::kQ4_1, 576, 576},
                          {"k/v  192x576  q4_1", DType::kQ4_1, 192, 576},
                          {"g/u 1536x576  q4_1", DType::kQ4_1, 1536, 576},
                          {"down 576x1536 q4_1", DType::kQ4_1, 576, 1536},
                          {"lm 49152x576  q8_0", DType::kQ8_0, 49152, 576}};
  auto backend = MakeCpuBackend(2);
  std::printf("%s [%s]; us per call (us per row)\n", backend->Name().c_str(),
              cpu::MatMulTargetName());
  for (const Shape& s : shapes) {
    std::printf("%s:", s.name);
    uint64_t hash = 0;
    for (int64_t n : {1, 2, 3, 4, 6, 8, 12, 16}) {
      uint64_t h;
      const double sec = BestCallSeconds(*backend, s.t, s.rows, s.cols, n, &h);
      hash = hash * 31 + h;
      std::printf("  n=%-2lld %7.1f (%6.1f)", static_cast<long long>(n), sec * 1e6, sec * 1e6 / n);
      std::fflush(stdout);
    }
    std::printf("  outputs %016llx\n", static_cast<unsigned long long>(hash));
  }
}

TEST(MatMulSmallBatch, DISABLED_PerfShapes) { PrintShapeTimes(); }

// The same on the AVX2 kernels (machines without AVX-512), where this CPU can run them.
TEST(MatMulSmallBatch, DISABLED_PerfShapesAvx2) {
  if ((hwy::SupportedTargets() & HWY_AVX2) == 0) GTEST_SKIP() << "no AVX2";
  hwy::SetSupportedTargetsForTest(HWY_AVX2);
  PrintShapeTimes();
  hwy::SetSupportedTargetsForTest(0);
}

// Hashes of MatMul outputs for the integer kernels at n = 1..17 on every SIMD target this CPU
// supports: two binaries (say before and after a kernel change) print the same lines exactly
// when their outputs agree bit for bit.
TEST(MatMulSmallBatch, DISABLED_OutputHashes) {
  auto backend = MakeCpuBackend(2);
  testing::ForEachSimdTarget([&] {
    std::printf("%s:", cpu::MatMulTargetName());
    for (DType t : {DType::kQ8_0, DType::kQ4_0, DType::kQ4_1}) {
      for (int64_t cols : {160, 576}) {
        const auto tm = MakeTestMatrix(t, 83, cols, 51);
        uint64_t hash = 0;
        for (int64_t n = 1; n <= 17; ++n) {
          const std::vector<float> x = RandomFloats(n * cols, 52);  // (n, cols)
          std::vector<float> y(n * 83);                             // (n, 83)
          backend->MatMul(tm.m, x.data(), n, y.data());
          hash = hash * 31 + BitsHash(y);
        }
        std::printf(" %016llx", static_cast<unsigned long long>(hash));
      }
    }
    std::printf("\n");
  });
}

TEST(MatMulSmallBatch, DISABLED_PerfForward) {
  const std::string path = testing_paths::DefaultModelPath();
  if (path.empty()) GTEST_SKIP() << "default model not found (run scripts/fetch-model.sh)";
  StatusOr<Model> model = LoadModel(path, /*require_tokenizer=*/false);
  ASSERT_TRUE(model.ok()) << model.status();
  constexpr int64_t kPrefix = 128, kMaxT = 16;
  auto backend = MakeCpuBackend(2);
  auto cache = KvCache::Create(model->config(), kPrefix + kMaxT, DType::kF32);
  ASSERT_TRUE(cache.ok()) << cache.status();
  Transformer tf(model->config(), model->weights(), backend.get(), kMaxT);
  std::vector<int32_t> stream(kPrefix + kMaxT);
  for (size_t i = 0; i < stream.size(); ++i) stream[i] = static_cast<int32_t>(100 + 37 * i % 9000);
  ASSERT_TRUE(tf.ForwardCausal(stream, 0, kPrefix, **cache, nullptr).ok());

  const int64_t vocab = model->config().vocab_size;
  std::vector<int32_t> positions(kMaxT), prefix(kMaxT), rows(kMaxT);  // (kMaxT) each
  std::vector<float> logits(kMaxT * vocab);                           // (kMaxT, vocab)
  std::printf("%s; Transformer::Forward after a %lld-token prefix, logits for every row\n",
              backend->Name().c_str(), static_cast<long long>(kPrefix));
  double t1 = 0;
  for (int64_t t : {1, 2, 4, 8, 16}) {
    for (int64_t i = 0; i < t; ++i) {
      positions[i] = static_cast<int32_t>(kPrefix + i);
      prefix[i] = static_cast<int32_t>(kPrefix + i + 1);
      rows[i] = static_cast<int32_t>(i);
    }
    ForwardBatch batch;
    batch.tokens = std::span<const int32_t>(stream.data() + kPrefix, t);
    batch.positions = std::span<const int32_t>(positions.data(), t);
    batch.slots = batch.positions;
    batch.mask.prefix_len = prefix.data();
    batch.logits_rows = std::span<const int32_t>(rows.data(), t);
    ASSERT_TRUE(tf.Forward(batch, **cache, logits.data()).ok());
    double best = 1e30;
    for (int trial = 0; trial < 15; ++trial) {
      const auto t0 = std::chrono::steady_clock::now();
      ASSERT_TRUE(tf.Forward(batch, **cache, logits.data()).ok());
      best = std::min(best, Seconds(t0));
    }
    if (t == 1) t1 = best;
    std::printf(
        "  T=%-2lld %7.2f ms per pass  %6.2f ms per row  (%.2fx the T=1 pass)  logits %016llx\n",
        static_cast<long long>(t), best * 1e3, best * 1e3 / t, best / t1,
        static_cast<unsigned long long>(BitsHash(logits)));
  }
}

}  // namespace
}  // namespace ts
