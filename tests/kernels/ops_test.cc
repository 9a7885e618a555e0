// The small ops against double-precision references, sentinel padding, aliasing and batch
// invariance.
#include <cmath>
#include <cstring>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cpu/dequant.h"
#include "kernels/cpu/quant_blocks.h"
#include "tests/common/simd_targets.h"
#include "tests/kernels/kernel_test_util.h"

namespace ts {
namespace {

using testing::Nmse;
using testing::PaddedBuffer;
using testing::RandomFloats;

TEST(RmsNorm, MatchesReferenceAliasesAndIsBatchInvariant) {
  auto b = MakeCpuBackend(2);
  const int64_t dim = 576;
  const std::vector<float> w = RandomFloats(dim, 1);
  for (int64_t n : {1, 17, 54, 97, 128}) {
    const std::vector<float> x = RandomFloats(n * dim, 2 + n, 3.0f);
    PaddedBuffer out(n * dim);
    b->RmsNorm(x.data(), w.data(), n, dim, 1e-5f, out.data());
    EXPECT_TRUE(out.PaddingIntact());
    std::vector<double> ref(n * dim);
    for (int64_t i = 0; i < n; ++i) {
      double ss = 0;
      for (int64_t j = 0; j < dim; ++j) ss += double(x[i * dim + j]) * x[i * dim + j];
      const double inv = 1.0 / std::sqrt(ss / dim + 1e-5);
      for (int64_t j = 0; j < dim; ++j) ref[i * dim + j] = x[i * dim + j] * inv * w[j];
    }
    EXPECT_LE(Nmse(out.data(), ref), 1e-12);
    std::vector<float> inplace = x;  // out aliases x
    b->RmsNorm(inplace.data(), w.data(), n, dim, 1e-5f, inplace.data());
    EXPECT_EQ(std::memcmp(inplace.data(), out.data(), inplace.size() * 4), 0);
    std::vector<float> last(dim);
    b->RmsNorm(x.data() + (n - 1) * dim, w.data(), 1, dim, 1e-5f, last.data());
    EXPECT_EQ(std::memcmp(last.data(), out.data() + (n - 1) * dim, dim * 4), 0);
  }
}

TEST(Rope, BothStylesMatchReference) {
  auto b = MakeCpuBackend(2);
  const int heads = 3, hd = 64;
  std::vector<float> inv_freq(hd / 2);
  for (int j = 0; j < hd / 2; ++j) inv_freq[j] = std::pow(10000.0f, -2.0f * j / hd);
  for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kInterleaved}) {
    for (int64_t n : {1, 17, 97}) {
      const std::vector<float> x = RandomFloats(n * heads * hd, 9);
      std::vector<int32_t> pos(n);
      for (int64_t i = 0; i < n; ++i) pos[i] = static_cast<int32_t>(i * 131 % 9000);
      const float mscale = style == RopeStyle::kNeox ? 1.0f : 1.25f;
      PaddedBuffer y(n * heads * hd);
      std::memcpy(y.data(), x.data(), x.size() * 4);
      b->Rope(y.data(), n, heads, hd, pos.data(), inv_freq.data(), mscale, style);
      EXPECT_TRUE(y.PaddingIntact());
      std::vector<double> ref(x.size());
      for (int64_t i = 0; i < n; ++i) {
        for (int h = 0; h < heads; ++h) {
          const float* xh = x.data() + (i * heads + h) * hd;
          double* rh = ref.data() + (i * heads + h) * hd;
          for (int j = 0; j < hd / 2; ++j) {
            const double angle = static_cast<float>(pos[i]) * inv_freq[j];  // float, as HF
            const double c = std::cos(angle) * mscale, s = std::sin(angle) * mscale;
            const int a = style == RopeStyle::kNeox ? j : 2 * j;
            const int bb = style == RopeStyle::kNeox ? j + hd / 2 : 2 * j + 1;
            rh[a] = xh[a] * c - xh[bb] * s;
            rh[bb] = xh[bb] * c + xh[a] * s;
          }
        }
      }
      EXPECT_LE(Nmse(y.data(), ref), 1e-12);
    }
  }
}

TEST(StoreKv, F32ExactBf16RoundsToNearestEvenOthersUntouched) {
  auto b = MakeCpuBackend(2);
  const int kvh = 3, hd = 64;
  const int64_t cap = 40, n = 5;
  const int32_t slots[n] = {7, 0, 39, 12, 13};
  const std::vector<float> k = RandomFloats(n * kvh * hd, 10), v = RandomFloats(n * kvh * hd, 11);
  std::vector<float> k32(kvh * cap * hd, 42.0f), v32 = k32;
  std::vector<uint16_t> k16(kvh * cap * hd, 0xABCD), v16 = k16;
  b->StoreKv(KvLayerView{k32.data(), v32.data(), DType::kF32, kvh, hd, cap}, k.data(), v.data(), n,
             slots);
  b->StoreKv(KvLayerView{k16.data(), v16.data(), DType::kBF16, kvh, hd, cap}, k.data(), v.data(), n,
             slots);
  int64_t written = 0;
  for (int h = 0; h < kvh; ++h) {
    for (int64_t s = 0; s < cap; ++s) {
      int64_t src = -1;
      for (int64_t i = 0; i < n; ++i) {
        if (slots[i] == s) src = i;
      }
      for (int d = 0; d < hd; ++d) {
        const int64_t c = (h * cap + s) * hd + d;
        if (src < 0) {
          ASSERT_EQ(k32[c], 42.0f);
          ASSERT_EQ(v16[c], 0xABCD);
          continue;
        }
        const int64_t e = (src * kvh + h) * hd + d;
        ASSERT_EQ(k32[c], k[e]);
        ASSERT_EQ(v32[c], v[e]);
        ASSERT_EQ(k16[c], F32ToBF16(k[e]));
        ASSERT_EQ(v16[c], F32ToBF16(v[e]));
        ++written;
      }
    }
  }
  EXPECT_EQ(written, n * kvh * hd);
}

TEST(SwiGlu, MatchesReferenceAndAliases) {
  auto b = MakeCpuBackend(2);
  const int64_t dim = 1536;
  for (int64_t n : {1, 17, 54}) {
    const std::vector<float> g = RandomFloats(n * dim, 12, 4.0f), u = RandomFloats(n * dim, 13);
    PaddedBuffer out(n * dim);
    b->SwiGlu(g.data(), u.data(), n, dim, out.data());
    EXPECT_TRUE(out.PaddingIntact());
    std::vector<double> ref(n * dim);
    for (int64_t i = 0; i < n * dim; ++i) ref[i] = g[i] / (1.0 + std::exp(-double(g[i]))) * u[i];
    EXPECT_LE(Nmse(out.data(), ref), 1e-12);
    std::vector<float> inplace = g;
    b->SwiGlu(inplace.data(), u.data(), n, dim, inplace.data());
    EXPECT_EQ(std::memcmp(inplace.data(), out.data(), inplace.size() * 4), 0);
    std::vector<float> last(dim);
    b->SwiGlu(g.data() + (n - 1) * dim, u.data() + (n - 1) * dim, 1, dim, last.data());
    EXPECT_EQ(std::memcmp(last.data(), out.data() + (n - 1) * dim, dim * 4), 0);
  }
}

TEST(Add, Exact) {
  auto b = MakeCpuBackend(2);
  const int64_t count = 97 * 576;
  const std::vector<float> x = RandomFloats(count, 14), y = RandomFloats(count, 15);
  PaddedBuffer out(count);
  std::memcpy(out.data(), x.data(), count * 4);
  b->Add(out.data(), y.data(), count);
  EXPECT_TRUE(out.PaddingIntact());
  for (int64_t i = 0; i < count; ++i) ASSERT_EQ(out.data()[i], x[i] + y[i]);
}

// KeyScores on every SIMD target this CPU runs (printed; the others are skipped), f32 and bf16
// keys, head_dim with and without a scalar tail: within f32 rounding of a double reference, and
// bit-identical whatever the thread count or the slot range a score is computed in.
TEST(KeyScores, MatchesReferenceOnEveryTargetAndIsRangeAndThreadInvariant) {
  const int64_t capacity = 3000;
  const int kv_heads = 2;
  testing::ForEachSimdTarget([&] {
    for (const DType dtype : {DType::kF32, DType::kBF16}) {
      for (const int head_dim : {64, 67}) {
        const std::vector<float> keys = RandomFloats(kv_heads * capacity * head_dim, 21);
        const std::vector<float> q = RandomFloats(head_dim, 22);
        std::vector<uint16_t> k16(keys.size());
        std::vector<float> k32 = keys;
        for (size_t i = 0; i < keys.size(); ++i) {
          k16[i] = F32ToBF16(keys[i]);
          k32[i] = BF16ToF32(k16[i]);  // the values the bf16 cache holds
        }
        KvLayerView view;
        view.k = dtype == DType::kBF16 ? static_cast<void*>(k16.data()) : k32.data();
        view.v = view.k;
        view.dtype = dtype;
        view.n_kv_heads = kv_heads;
        view.head_dim = head_dim;
        view.capacity = capacity;
        const std::string what =
            testing::DTypeName(dtype) + " head_dim " + std::to_string(head_dim);
        auto one = MakeCpuBackend(1), two = MakeCpuBackend(2);
        const int64_t lo = 5, hi = 2900;  // 3 chunks of 1024, the last partial
        PaddedBuffer a(hi - lo), b(hi - lo), c(100);
        one->KeyScores(view, 1, q.data(), lo, hi, a.data());
        two->KeyScores(view, 1, q.data(), lo, hi, b.data());
        two->KeyScores(view, 1, q.data(), 1500, 1600, c.data());
        EXPECT_TRUE(a.PaddingIntact() && b.PaddingIntact() && c.PaddingIntact()) << what;
        for (int64_t i = 0; i < hi - lo; ++i) {
          double ref = 0.0;
          for (int d = 0; d < head_dim; ++d) {
            ref += static_cast<double>(q[d]) * k32[(capacity + lo + i) * head_dim + d];
          }
          ASSERT_NEAR(a.data()[i], ref, 1e-5 * head_dim) << what << " slot " << lo + i;
          ASSERT_EQ(a.data()[i], b.data()[i]) << what << " threads, slot " << lo + i;
        }
        for (int64_t i = 0; i < 100; ++i) {
          ASSERT_EQ(c.data()[i], a.data()[1500 - lo + i]) << what << " range, slot " << 1500 + i;
        }
      }
    }
  });
}

TEST(Embed, EqualsDequantizedRows) {
  auto b = MakeCpuBackend(2);
  for (DType t : testing::kAllDTypes) {
    SCOPED_TRACE(testing::DTypeName(t));
    const int64_t cols = GetDTypeInfo(t).block_elems == 256 ? 512 : 576;
    const auto table = testing::MakeTestMatrix(t, 50, cols, 16);
    const int32_t ids[] = {3, 49, 0, 3, 17, 22, 8};
    const int64_t n = 7;
    PaddedBuffer out(n * cols);
    b->Embed(table.m, ids, n, out.data());
    EXPECT_TRUE(out.PaddingIntact());
    for (int64_t i = 0; i < n; ++i) {
      ASSERT_EQ(std::memcmp(out.data() + i * cols, table.dequant.data() + ids[i] * cols, cols * 4),
                0);
    }
  }
}

}  // namespace
}  // namespace ts
