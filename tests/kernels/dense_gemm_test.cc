// The training GEMM (kernels/cpu/dense_gemm) against a plain triple loop in double precision on
// every SIMD target, with strided rows, accumulation, k past one chunk and ragged m/n; and the
// bits do not depend on the thread pool.
#include "kernels/cpu/dense_gemm.h"

#include <cmath>
#include <tuple>
#include <vector>

#include "common/hash_random.h"
#include "gtest/gtest.h"
#include "kernels/cpu/thread_pool.h"
#include "tests/common/simd_targets.h"

namespace ts::cpu {
namespace {

TEST(DenseGemm, MatchesPlainLoopsOnEveryTarget) {
  ThreadPool pool(2);
  ts::testing::ForEachSimdTarget([&] {
    for (auto [m, n, k] : {std::tuple<int64_t, int64_t, int64_t>{1, 1, 1},
                           {5, 7, 13},
                           {17, 50, 64},
                           {4, 97, 1030},
                           {9, 3, 2500}}) {
      // Row strides wider than k (and than n for C): the padding must be neither read into a
      // product nor written.
      const int64_t lda = k + 3, ldb = k + 5, ldc = n + 2;
      std::vector<double> a(m * lda), b(n * ldb), c(m * ldc, 1.0);
      for (size_t j = 0; j < a.size(); ++j) a[j] = HashNormal(1, j);
      for (size_t j = 0; j < b.size(); ++j) b[j] = HashNormal(2, j);
      DenseGemmNT(&pool, m, n, k, a.data(), lda, b.data(), ldb, c.data(), ldc,
                  /*accumulate=*/true);
      std::vector<float> af(a.begin(), a.end()), bf(b.begin(), b.end());
      std::vector<float> cf(m * ldc, -7.0f), cf1(m * ldc, -7.0f);
      DenseGemmNT(nullptr, m, n, k, af.data(), lda, bf.data(), ldb, cf.data(), ldc, false);
      DenseGemmNT(&pool, m, n, k, af.data(), lda, bf.data(), ldb, cf1.data(), ldc, false);
      for (int64_t i = 0; i < m; ++i) {
        for (int64_t j = 0; j < ldc; ++j) {
          const int64_t at = i * ldc + j;
          if (j >= n) {
            EXPECT_EQ(c[at], 1.0);
            EXPECT_EQ(cf[at], -7.0f);
            continue;
          }
          double ref = 0;
          for (int64_t t = 0; t < k; ++t) ref += a[i * lda + t] * b[j * ldb + t];
          EXPECT_NEAR(c[at], ref + 1.0, 1e-9 * (1 + std::sqrt(double(k))))
              << m << "x" << n << "x" << k << " at " << i << "," << j;
          EXPECT_NEAR(cf[at], ref, 1e-4 * std::sqrt(double(k)));
          EXPECT_EQ(cf[at], cf1[at]) << "thread pool changed the bits at " << i << "," << j;
        }
      }
    }
  });
}

TEST(DenseGemm, EmptyInnerDimensionZeroesOrKeeps) {
  std::vector<float> c(6, 3.0f);
  DenseGemmNT(nullptr, 2, 3, 0, static_cast<const float*>(nullptr), 0, nullptr, 0, c.data(), 3,
              /*accumulate=*/true);
  for (float v : c) EXPECT_EQ(v, 3.0f);
  DenseGemmNT(nullptr, 2, 3, 0, static_cast<const float*>(nullptr), 0, nullptr, 0, c.data(), 3,
              false);
  for (float v : c) EXPECT_EQ(v, 0.0f);
}

}  // namespace
}  // namespace ts::cpu
