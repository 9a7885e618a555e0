// Partial KV cache re-selection timing (DISABLED_ by default; run with
// --gtest_also_run_disabled_tests --gtest_filter='*PerfSelect*'): SmolLM2-135M's shape (30 layers,
// 9 query heads on 3 KV heads, head_dim 64, bf16 KV) at 100K committed tokens, budget 4096.
// Prints the wall ms of one Select (best of 3) through Backend::KeyScores at 1 and 2 threads, and
// of the scalar double-precision scoring loop it replaced (the same positions, one thread).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "runtime/kv/partial_cache.h"

namespace ts {
namespace {

constexpr int kLayers = 30, kHeads = 9, kKvHeads = 3, kHeadDim = 64;
constexpr int64_t kContext = 100000;

template <typename Fn>
double BestMs(Fn&& fn) {
  double best = 1e30;
  for (int rep = 0; rep < 3; ++rep) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    best = std::min(
        best,
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return best;
}

TEST(PartialCache, DISABLED_PerfSelect) {
  ModelConfig m;
  m.arch = "llama";
  m.n_layers = kLayers;
  m.n_heads = kHeads;
  m.n_kv_heads = kKvHeads;
  m.head_dim = kHeadDim;
  auto full = KvCache::Create(m, kContext, DType::kBF16);
  ASSERT_TRUE(full.ok());
  std::mt19937 rng(1);
  for (int l = 0; l < kLayers; ++l) {
    auto* k = static_cast<uint16_t*>((*full)->Layer(l).k);
    std::normal_distribution<float> normal;
    for (int64_t i = 0; i < kKvHeads * kContext * kHeadDim; ++i) {
      const float x = normal(rng);
      uint32_t bits;
      std::memcpy(&bits, &x, 4);
      k[i] = static_cast<uint16_t>(bits >> 16);
    }
  }
  std::vector<float> q(static_cast<size_t>(kLayers) * kHeads * kHeadDim);
  for (float& x : q) x = std::normal_distribution<float>()(rng);
  PartialCacheConfig c;
  for (int threads : {1, 2}) {
    auto backend = MakeCpuBackend(threads);
    auto partial = PartialKvCache::Create(m, c, kContext, DType::kBF16, backend.get());
    ASSERT_TRUE(partial.ok());
    const double ms = BestMs([&] { ASSERT_TRUE((*partial)->Select(**full, kContext, q).ok()); });
    PartialCacheSelection selection = (*partial)->NewSelection();
    const double compute_ms = BestMs(
        [&] { ASSERT_TRUE((*partial)->ComputeSelection(**full, kContext, q, &selection).ok()); });
    std::vector<float> scores(kContext);
    const double score_ms = BestMs([&] {
      for (int l = 0; l < kLayers; ++l) {
        for (int g = 0; g < kKvHeads; ++g) {
          backend->KeyScores((*full)->Layer(l), g, q.data(), 0, kContext, scores.data());
        }
      }
    });
    std::printf(
        "Select at %lld tokens, %d thread(s): %.1f ms; choosing the positions %.1f ms, of which "
        "scoring (KeyScores) %.1f ms; the rest copies the chosen rows\n",
        static_cast<long long>(kContext), threads, ms, compute_ms, score_ms);
  }
  // The scoring loop before KeyScores: double accumulation, scalar, one thread.
  std::vector<double> scores(kContext), q_sum(kHeadDim);
  std::vector<float> row(kHeadDim);
  const double scalar_ms = BestMs([&] {
    for (int l = 0; l < kLayers; ++l) {
      const auto* k = static_cast<const uint16_t*>((*full)->Layer(l).k);
      for (int g = 0; g < kKvHeads; ++g) {
        std::fill(q_sum.begin(), q_sum.end(), 0.0);
        for (int h = g * 3; h < g * 3 + 3; ++h) {
          for (int d = 0; d < kHeadDim; ++d) q_sum[d] += q[(l * kHeads + h) * kHeadDim + d];
        }
        for (int64_t p = 0; p < kContext; ++p) {
          const uint16_t* src = k + (g * kContext + p) * kHeadDim;
          for (int d = 0; d < kHeadDim; ++d) {
            const uint32_t bits = static_cast<uint32_t>(src[d]) << 16;
            std::memcpy(&row[d], &bits, 4);
          }
          double acc = 0.0;
          for (int d = 0; d < kHeadDim; ++d) acc += q_sum[d] * row[d];
          scores[p] = acc;
        }
      }
    }
  });
  std::printf("scoring alone, the replaced scalar double loop: %.1f ms\n", scalar_ms);
}

}  // namespace
}  // namespace ts
