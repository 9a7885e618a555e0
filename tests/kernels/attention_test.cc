// Attention: double-precision reference, and the tree/AR bit-exactness contract — a tree node
// computes exactly what the same token computes in causal (AR) decoding, whatever other cache
// slots hold (NaN garbage here), at any batch size or thread count.
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cpu/quant_blocks.h"
#include "tests/kernels/kernel_test_util.h"

namespace ts {
namespace {

using testing::RandomFloats;

constexpr int kHeads = 9, kKvHeads = 3, kHeadDim = 64;
constexpr int64_t kCapacity = 160;

// A cache whose slots all start as NaN.
struct TestCache {
  explicit TestCache(DType dtype) : dtype(dtype) {
    const int64_t elems = int64_t{kKvHeads} * kCapacity * kHeadDim;
    if (dtype == DType::kF32) {
      k32.assign(elems, std::numeric_limits<float>::quiet_NaN());
      v32 = k32;
    } else {
      k16.assign(elems, 0x7FC1);  // bf16 NaN
      v16 = k16;
    }
  }
  KvLayerView View() {
    KvLayerView view;
    view.k = dtype == DType::kF32 ? static_cast<void*>(k32.data()) : k16.data();
    view.v = dtype == DType::kF32 ? static_cast<void*>(v32.data()) : v16.data();
    view.dtype = dtype;
    view.n_kv_heads = kKvHeads;
    view.head_dim = kHeadDim;
    view.capacity = kCapacity;
    return view;
  }
  // k, v: (n_kv_heads, head_dim) for one token.
  void Put(Backend& b, int32_t slot, const float* k, const float* v) {
    b.StoreKv(View(), k, v, 1, &slot);
  }
  // Element of the stored key/value (as the kernel reads it).
  double K(int h, int64_t slot, int d) const {
    return At(dtype == DType::kF32, k32, k16, h, slot, d);
  }
  double V(int h, int64_t slot, int d) const {
    return At(dtype == DType::kF32, v32, v16, h, slot, d);
  }

  static double At(bool f32, const std::vector<float>& a, const std::vector<uint16_t>& b, int h,
                   int64_t slot, int d) {
    const int64_t i = (h * kCapacity + slot) * kHeadDim + d;
    return f32 ? a[i] : BF16ToF32(b[i]);
  }

  DType dtype;
  std::vector<float> k32, v32;
  std::vector<uint16_t> k16, v16;
};

// out (kHeads, kHeadDim) for one query over the given slots, in double.
std::vector<double> Reference(const TestCache& c, const float* q, const std::vector<int>& slots,
                              float scale) {
  std::vector<double> out(kHeads * kHeadDim, 0.0);
  for (int h = 0; h < kHeads; ++h) {
    const int kvh = h / (kHeads / kKvHeads);
    std::vector<double> s(slots.size());
    double mx = -1e300;
    for (size_t t = 0; t < slots.size(); ++t) {
      double dot = 0;
      for (int d = 0; d < kHeadDim; ++d) dot += q[h * kHeadDim + d] * c.K(kvh, slots[t], d);
      s[t] = dot * scale;
      mx = std::max(mx, s[t]);
    }
    double l = 0;
    for (auto& x : s) l += (x = std::exp(x - mx));
    for (size_t t = 0; t < slots.size(); ++t) {
      for (int d = 0; d < kHeadDim; ++d) out[h * kHeadDim + d] += s[t] / l * c.V(kvh, slots[t], d);
    }
  }
  return out;
}

class AttentionTest : public ::testing::TestWithParam<DType> {};

// Tree over a committed prefix of 45 tokens (not a multiple of the 32-key block), 10 nodes:
//   0 root; 1,2,3 children of 0; 4 child of 1; 5 child of 4; 6 child of 2; 7,8 children of 5;
//   9 child of 8. Node t sits in slot kPrefix + t. Sibling slots and slots past the tree hold
//   NaN or unrelated keys and must not matter.
void CheckTreeMatchesAr(DType dtype);

TEST_P(AttentionTest, TreeMatchesArBitExact) {
  testing::ForEachSimdTarget([&] { CheckTreeMatchesAr(GetParam()); });
}

void CheckTreeMatchesAr(DType dtype) {
  auto two = MakeCpuBackend(2);
  auto one = MakeCpuBackend(1);
  constexpr int kPrefix = 45, kNodes = 10;
  const int parent[kNodes] = {-1, 0, 0, 0, 1, 4, 2, 5, 5, 8};
  const int kv_elems = kKvHeads * kHeadDim;
  const std::vector<float> prefix_k = RandomFloats(int64_t{kPrefix} * kv_elems, 1);
  const std::vector<float> prefix_v = RandomFloats(int64_t{kPrefix} * kv_elems, 2);
  const std::vector<float> node_k = RandomFloats(int64_t{kNodes} * kv_elems, 3);
  const std::vector<float> node_v = RandomFloats(int64_t{kNodes} * kv_elems, 4);
  const std::vector<float> q = RandomFloats(int64_t{kNodes} * kHeads * kHeadDim, 5, 0.5f);
  const float scale = 1.0f / std::sqrt(static_cast<float>(kHeadDim));

  TestCache tree_cache(dtype);
  std::vector<int32_t> prefix_slots(kPrefix);
  for (int i = 0; i < kPrefix; ++i) prefix_slots[i] = i;
  two->StoreKv(tree_cache.View(), prefix_k.data(), prefix_v.data(), kPrefix, prefix_slots.data());
  std::vector<int32_t> node_slots(kNodes);
  for (int t = 0; t < kNodes; ++t) node_slots[t] = kPrefix + t;
  two->StoreKv(tree_cache.View(), node_k.data(), node_v.data(), kNodes, node_slots.data());

  // Mask: each node sees the prefix, then its ancestors from the root, then itself.
  std::vector<std::vector<int>> paths(kNodes);
  std::vector<int32_t> prefix_len(kNodes, kPrefix), extra_begin{0}, extra_slots;
  for (int t = 0; t < kNodes; ++t) {
    for (int a = t; a != -1; a = parent[a]) paths[t].insert(paths[t].begin(), a);
    for (int a : paths[t]) extra_slots.push_back(kPrefix + a);
    extra_begin.push_back(static_cast<int32_t>(extra_slots.size()));
  }
  const AttentionMask tree_mask{prefix_len.data(), extra_begin.data(), extra_slots.data()};
  testing::PaddedBuffer tree_out(int64_t{kNodes} * kHeads * kHeadDim);
  two->Attention(q.data(), kNodes, kHeads, tree_cache.View(), tree_mask, scale, tree_out.data());
  EXPECT_TRUE(tree_out.PaddingIntact());

  for (int t = 0; t < kNodes; ++t) {
    SCOPED_TRACE("node " + std::to_string(t));
    // The AR history of node t: prefix, then its path in consecutive slots.
    TestCache ar_cache(dtype);
    one->StoreKv(ar_cache.View(), prefix_k.data(), prefix_v.data(), kPrefix, prefix_slots.data());
    for (size_t j = 0; j < paths[t].size(); ++j) {
      ar_cache.Put(*one, kPrefix + static_cast<int32_t>(j), node_k.data() + paths[t][j] * kv_elems,
                   node_v.data() + paths[t][j] * kv_elems);
    }
    const int32_t len = kPrefix + static_cast<int32_t>(paths[t].size());
    const AttentionMask causal{&len, nullptr, nullptr};
    std::vector<float> ar_out(kHeads * kHeadDim);
    const float* qt = q.data() + t * kHeads * kHeadDim;
    one->Attention(qt, 1, kHeads, ar_cache.View(), causal, scale, ar_out.data());
    EXPECT_EQ(std::memcmp(ar_out.data(), tree_out.data() + t * kHeads * kHeadDim,
                          ar_out.size() * sizeof(float)),
              0);
    std::vector<int> slots(len);
    for (int i = 0; i < len; ++i) slots[i] = i;
    EXPECT_LE(testing::Nmse(ar_out.data(), Reference(ar_cache, qt, slots, scale)), 1e-11);
  }
}

// Causal prefill of n queries vs each query alone, at awkward sizes; lengths cross the 32-key
// block boundaries.
TEST_P(AttentionTest, CausalBatchMatchesSingleQueries) {
  const DType dtype = GetParam();
  auto two = MakeCpuBackend(2);
  auto one = MakeCpuBackend(1);
  const int kv_elems = kKvHeads * kHeadDim;
  TestCache cache(dtype);
  constexpr int kMaxN = 128;
  const std::vector<float> k = RandomFloats(int64_t{kMaxN} * kv_elems, 6);
  const std::vector<float> v = RandomFloats(int64_t{kMaxN} * kv_elems, 7);
  std::vector<int32_t> slots(kMaxN);
  for (int i = 0; i < kMaxN; ++i) slots[i] = i;
  two->StoreKv(cache.View(), k.data(), v.data(), kMaxN, slots.data());
  const std::vector<float> q = RandomFloats(int64_t{kMaxN} * kHeads * kHeadDim, 8, 0.5f);
  const float scale = 0.125f;
  for (int n : {1, 17, 54, 97, 128}) {
    SCOPED_TRACE("n=" + std::to_string(n));
    const int first = kMaxN - n;  // queries at positions first .. kMaxN-1
    std::vector<int32_t> len(n);
    for (int i = 0; i < n; ++i) len[i] = first + i + 1;
    testing::PaddedBuffer out(int64_t{n} * kHeads * kHeadDim);
    two->Attention(q.data() + int64_t{first} * kHeads * kHeadDim, n, kHeads, cache.View(),
                   AttentionMask{len.data(), nullptr, nullptr}, scale, out.data());
    EXPECT_TRUE(out.PaddingIntact());
    for (int i = 0; i < n; ++i) {
      std::vector<float> single(kHeads * kHeadDim);
      const float* qi = q.data() + int64_t{first + i} * kHeads * kHeadDim;
      one->Attention(qi, 1, kHeads, cache.View(), AttentionMask{&len[i], nullptr, nullptr}, scale,
                     single.data());
      ASSERT_EQ(std::memcmp(single.data(), out.data() + int64_t{i} * kHeads * kHeadDim,
                            single.size() * sizeof(float)),
                0)
          << "query " << i;
      if (i % 13 == 0) {
        std::vector<int> s(len[i]);
        for (int j = 0; j < len[i]; ++j) s[j] = j;
        EXPECT_LE(testing::Nmse(single.data(), Reference(cache, qi, s, scale)), 1e-11);
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(CacheTypes, AttentionTest, ::testing::Values(DType::kF32, DType::kBF16),
                         [](const auto& info) { return testing::DTypeName(info.param); });

}  // namespace
}  // namespace ts
