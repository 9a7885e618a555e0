// Attention batch invariance at realistic lengths (the kernel shares each KV block between all
// rows and group heads, and cuts sequences into kAttnSegment-key partials): for verify-pass
// trees of T rows (T = 1, 3, 17, 41, 64) over prefixes that cross block and segment boundaries,
// f32 and bf16 KV, GQA groups 1, 3 and 4 and an odd head_dim,
//   - each batch row is bit-identical to the same row computed alone, at 1 and 2 threads;
//   - rows with different prefix_len in one batch are bit-identical to themselves alone;
//   - a tree node is bit-identical to the same token in AR (causal) attention;
//   - unused cache slots hold NaN and must not matter;
//   - results agree with a straightforward double-precision softmax reference.
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "kernels/cpu/quant_blocks.h"
#include "tests/kernels/kernel_test_util.h"

namespace ts {
namespace {

using testing::RandomFloats;

struct Shape {
  int n_kv_heads, group, head_dim;
  int n_heads() const { return n_kv_heads * group; }
};

// A (n_kv_heads, capacity, head_dim) cache, every slot NaN until written.
class NanCache {
 public:
  NanCache(DType dtype, Shape shape, int64_t capacity)
      : dtype_(dtype), shape_(shape), capacity_(capacity) {
    const int64_t elems = int64_t{shape.n_kv_heads} * capacity * shape.head_dim;
    if (dtype == DType::kF32) {
      k32_.assign(elems, std::numeric_limits<float>::quiet_NaN());
      v32_ = k32_;
    } else {
      k16_.assign(elems, 0x7FC1);  // bf16 NaN
      v16_ = k16_;
    }
  }
  KvLayerView View() {
    const bool f32 = dtype_ == DType::kF32;
    return KvLayerView{f32 ? static_cast<void*>(k32_.data()) : k16_.data(),
                       f32 ? static_cast<void*>(v32_.data()) : v16_.data(),
                       dtype_,
                       shape_.n_kv_heads,
                       shape_.head_dim,
                       capacity_};
  }
  // k, v (n_kv_heads, head_dim): one token into `slot`.
  void Put(Backend& b, int32_t slot, const float* k, const float* v) {
    b.StoreKv(View(), k, v, 1, &slot);
  }
  // The stored element as the kernel reads it.
  double K(int h, int64_t slot, int d) const { return At(k32_, k16_, h, slot, d); }
  double V(int h, int64_t slot, int d) const { return At(v32_, v16_, h, slot, d); }

 private:
  double At(const std::vector<float>& a, const std::vector<uint16_t>& b, int h, int64_t slot,
            int d) const {
    const int64_t i = (h * capacity_ + slot) * shape_.head_dim + d;
    return dtype_ == DType::kF32 ? a[i] : BF16ToF32(b[i]);
  }
  DType dtype_;
  Shape shape_;
  int64_t capacity_;
  std::vector<float> k32_, v32_;
  std::vector<uint16_t> k16_, v16_;
};

// out (n_heads, head_dim) for one query over `slots`, in double.
std::vector<double> Reference(const NanCache& c, Shape sh, const float* q,
                              const std::vector<int32_t>& slots, float scale) {
  std::vector<double> out(sh.n_heads() * sh.head_dim, 0.0);
  for (int h = 0; h < sh.n_heads(); ++h) {
    const int kvh = h / sh.group;
    std::vector<double> s(slots.size());
    double mx = -1e300;
    for (size_t t = 0; t < slots.size(); ++t) {
      double dot = 0;
      for (int d = 0; d < sh.head_dim; ++d) {
        dot += double{q[h * sh.head_dim + d]} * c.K(kvh, slots[t], d);
      }
      s[t] = dot * scale;
      mx = std::max(mx, s[t]);
    }
    double l = 0;
    for (auto& x : s) l += (x = std::exp(x - mx));
    for (size_t t = 0; t < slots.size(); ++t) {
      for (int d = 0; d < sh.head_dim; ++d) {
        out[h * sh.head_dim + d] += s[t] / l * c.V(kvh, slots[t], d);
      }
    }
  }
  return out;
}

// One batch: row i attends to prefix_len[i] slots then its extra slots.
struct Batch {
  std::vector<int32_t> prefix_len, extra_begin{0}, extra_slots;
  int64_t rows() const { return static_cast<int64_t>(prefix_len.size()); }
  AttentionMask Mask() const {
    return AttentionMask{prefix_len.data(), extra_begin.data(), extra_slots.data()};
  }
  // Row i alone, as a one-row mask (its own copies).
  Batch Row(int64_t i) const {
    Batch r;
    r.prefix_len = {prefix_len[i]};
    r.extra_slots.assign(extra_slots.begin() + extra_begin[i],
                         extra_slots.begin() + extra_begin[i + 1]);
    r.extra_begin = {0, static_cast<int32_t>(r.extra_slots.size())};
    return r;
  }
  std::vector<int32_t> Slots(int64_t i) const {
    std::vector<int32_t> s;
    for (int32_t j = 0; j < prefix_len[i]; ++j) s.push_back(j);
    s.insert(s.end(), extra_slots.begin() + extra_begin[i],
             extra_slots.begin() + extra_begin[i + 1]);
    return s;
  }
};

// Runs `batch` at 2 threads and 1 thread and each row alone; all must agree bit for bit. A few
// rows are checked against the double reference.
void CheckBatch(NanCache& cache, Shape sh, const Batch& batch, const std::vector<float>& q,
                float scale) {
  auto two = MakeCpuBackend(2);
  auto one = MakeCpuBackend(1);
  const int64_t n = batch.rows();
  const int64_t row_floats = int64_t{sh.n_heads()} * sh.head_dim;
  testing::PaddedBuffer out2(n * row_floats), out1(n * row_floats);
  two->Attention(q.data(), n, sh.n_heads(), cache.View(), batch.Mask(), scale, out2.data());
  one->Attention(q.data(), n, sh.n_heads(), cache.View(), batch.Mask(), scale, out1.data());
  EXPECT_TRUE(out2.PaddingIntact());
  EXPECT_TRUE(out1.PaddingIntact());
  ASSERT_EQ(std::memcmp(out1.data(), out2.data(), n * row_floats * sizeof(float)), 0)
      << "1 vs 2 threads";
  for (int64_t i = 0; i < n; ++i) {
    const Batch row = batch.Row(i);
    std::vector<float> alone(row_floats);
    (i % 2 ? one : two)
        ->Attention(q.data() + i * row_floats, 1, sh.n_heads(), cache.View(), row.Mask(), scale,
                    alone.data());
    ASSERT_EQ(std::memcmp(alone.data(), out2.data() + i * row_floats, row_floats * sizeof(float)),
              0)
        << "row " << i << " of " << n;
    if (i == 0 || i == n - 1 || i == n / 2) {
      EXPECT_LE(testing::Nmse(alone.data(), Reference(cache, sh, q.data() + i * row_floats,
                                                      batch.Slots(i), scale)),
                1e-11)
          << "row " << i;
    }
  }
}

struct Param {
  DType dtype;
  Shape shape;
};

std::string ParamName(const ::testing::TestParamInfo<Param>& info) {
  const Param& p = info.param;
  return testing::DTypeName(p.dtype) + "_kv" + std::to_string(p.shape.n_kv_heads) + "_g" +
         std::to_string(p.shape.group) + "_d" + std::to_string(p.shape.head_dim);
}

class AttentionBatchTest : public ::testing::TestWithParam<Param> {};

// Verify-pass trees: T nodes with random parents below a committed prefix of `prefix` tokens;
// node t at slot prefix + 2t (odd slots stay NaN). Each batch row must equal itself alone, and
// selected nodes must equal the AR computation of the same token. Runs on every SIMD target the
// CPU supports (tests/common/simd_targets.h).
void CheckTrees(DType dtype, Shape sh) {
  auto b = MakeCpuBackend(2);
  const int kv_elems = sh.n_kv_heads * sh.head_dim;
  const int64_t row_floats = int64_t{sh.n_heads()} * sh.head_dim;
  const float scale = 1.0f / std::sqrt(static_cast<float>(sh.head_dim));
  for (int prefix : {45, 1000, 1061}) {
    for (int nodes : {1, 3, 17, 41, 64}) {
      SCOPED_TRACE("prefix " + std::to_string(prefix) + " T=" + std::to_string(nodes));
      std::mt19937 rng(prefix * 100 + nodes);
      std::vector<int> parent(nodes, -1);
      for (int t = 1; t < nodes; ++t) {
        parent[t] = std::uniform_int_distribution<int>(std::max(0, t - 3), t - 1)(rng);
      }
      const int64_t capacity = prefix + 2 * nodes + 3;
      NanCache cache(dtype, sh, capacity);
      const std::vector<float> pk = RandomFloats(int64_t{prefix} * kv_elems, 1);
      const std::vector<float> pv = RandomFloats(int64_t{prefix} * kv_elems, 2);
      const std::vector<float> nk = RandomFloats(int64_t{nodes} * kv_elems, 3);
      const std::vector<float> nv = RandomFloats(int64_t{nodes} * kv_elems, 4);
      const std::vector<float> q = RandomFloats(nodes * row_floats, 5, 0.7f);
      std::vector<int32_t> slots(prefix);
      for (int i = 0; i < prefix; ++i) slots[i] = i;
      b->StoreKv(cache.View(), pk.data(), pv.data(), prefix, slots.data());
      for (int t = 0; t < nodes; ++t) {
        cache.Put(*b, prefix + 2 * t, nk.data() + t * kv_elems, nv.data() + t * kv_elems);
      }
      Batch batch;
      std::vector<std::vector<int>> paths(nodes);
      for (int t = 0; t < nodes; ++t) {
        for (int a = t; a != -1; a = parent[a]) paths[t].insert(paths[t].begin(), a);
        batch.prefix_len.push_back(prefix);
        for (int a : paths[t]) batch.extra_slots.push_back(prefix + 2 * a);
        batch.extra_begin.push_back(static_cast<int32_t>(batch.extra_slots.size()));
      }
      CheckBatch(cache, sh, batch, q, scale);
      if (::testing::Test::HasFatalFailure()) return;

      // AR: the deepest node and the last node, their paths in consecutive slots.
      testing::PaddedBuffer tree_out(nodes * row_floats);
      b->Attention(q.data(), nodes, sh.n_heads(), cache.View(), batch.Mask(), scale,
                   tree_out.data());
      int deepest = 0;
      for (int t = 0; t < nodes; ++t) {
        if (paths[t].size() > paths[deepest].size()) deepest = t;
      }
      for (int t : {deepest, nodes - 1}) {
        NanCache ar(dtype, sh, prefix + static_cast<int64_t>(paths[t].size()) + 5);
        b->StoreKv(ar.View(), pk.data(), pv.data(), prefix, slots.data());
        for (size_t j = 0; j < paths[t].size(); ++j) {
          ar.Put(*b, prefix + static_cast<int32_t>(j), nk.data() + paths[t][j] * kv_elems,
                 nv.data() + paths[t][j] * kv_elems);
        }
        const int32_t len = prefix + static_cast<int32_t>(paths[t].size());
        std::vector<float> ar_out(row_floats);
        b->Attention(q.data() + t * row_floats, 1, sh.n_heads(), ar.View(),
                     AttentionMask{&len, nullptr, nullptr}, scale, ar_out.data());
        EXPECT_EQ(std::memcmp(ar_out.data(), tree_out.data() + t * row_floats,
                              row_floats * sizeof(float)),
                  0)
            << "node " << t << " (depth " << paths[t].size() << ") vs AR";
      }
    }
  }
}

TEST_P(AttentionBatchTest, TreeRowsMatchAloneAndAr) {
  const auto [dtype, sh] = GetParam();
  testing::ForEachSimdTarget([&] { CheckTrees(dtype, sh); });
}

// Rows with different prefix lengths (0 .. ~2.5 segments, rarely block multiples) and 0-3 extra
// slots past every prefix, in one batch.
TEST_P(AttentionBatchTest, MixedPrefixLengthsMatchAlone) {
  const auto [dtype, sh] = GetParam();
  auto b = MakeCpuBackend(2);
  const int kv_elems = sh.n_kv_heads * sh.head_dim;
  const int64_t row_floats = int64_t{sh.n_heads()} * sh.head_dim;
  constexpr int kRows = 41, kMaxPrefix = 2600;
  const int64_t capacity = kMaxPrefix + 16;
  NanCache cache(dtype, sh, capacity);
  const std::vector<float> k = RandomFloats(capacity * kv_elems, 11);
  const std::vector<float> v = RandomFloats(capacity * kv_elems, 12);
  std::vector<int32_t> slots(capacity);
  for (int i = 0; i < capacity; ++i) slots[i] = i;
  b->StoreKv(cache.View(), k.data(), v.data(), capacity, slots.data());
  std::mt19937 rng(7);
  Batch batch;
  for (int i = 0; i < kRows; ++i) {
    // Rows 0 and 3 have prefix 0 (row 3 an empty sequence: output 0); 1 and 2 end on a segment.
    const int p = i == 0 || i == 3 ? 0
                  : i == 1         ? 1024
                  : i == 2         ? 2048
                                   : 1 + static_cast<int>(rng() % 2599);
    batch.prefix_len.push_back(p);
    const int n_extra = i == 0 ? 1 : i == 3 ? 0 : static_cast<int>(rng() % 4);
    for (int e = 0; e < n_extra; ++e) batch.extra_slots.push_back(kMaxPrefix + (e * 5 + i) % 16);
    batch.extra_begin.push_back(static_cast<int32_t>(batch.extra_slots.size()));
  }
  const std::vector<float> q = RandomFloats(kRows * row_floats, 13, 0.7f);
  CheckBatch(cache, sh, batch, q, 1.0f / std::sqrt(static_cast<float>(sh.head_dim)));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, AttentionBatchTest,
    ::testing::Values(Param{DType::kF32, {3, 3, 64}}, Param{DType::kBF16, {3, 3, 64}},
                      Param{DType::kF32, {2, 1, 64}}, Param{DType::kBF16, {2, 4, 64}},
                      Param{DType::kF32, {1, 4, 40}}, Param{DType::kBF16, {2, 3, 40}}),
    ParamName);

// Every SIMD target the CPU has (the lane count changes the arithmetic, so each target must hold
// the contract on its own): one mid-size tree per target, bf16, GQA 3.
TEST(AttentionBatch, TreeRowsMatchAloneOnEverySimdTarget) {
  const Shape sh{3, 3, 64};
  testing::ForEachSimdTarget([&] {
    auto b = MakeCpuBackend(2);
    const int kv_elems = sh.n_kv_heads * sh.head_dim;
    const int64_t row_floats = int64_t{sh.n_heads()} * sh.head_dim;
    constexpr int kPrefix = 1010, kNodes = 17;
    NanCache cache(DType::kBF16, sh, kPrefix + kNodes);
    const std::vector<float> k = RandomFloats(int64_t{kPrefix + kNodes} * kv_elems, 21);
    const std::vector<float> v = RandomFloats(int64_t{kPrefix + kNodes} * kv_elems, 22);
    std::vector<int32_t> slots(kPrefix + kNodes);
    for (int i = 0; i < kPrefix + kNodes; ++i) slots[i] = i;
    b->StoreKv(cache.View(), k.data(), v.data(), kPrefix + kNodes, slots.data());
    Batch batch;  // a chain: node t sees nodes 0..t
    for (int t = 0; t < kNodes; ++t) {
      batch.prefix_len.push_back(kPrefix);
      for (int a = 0; a <= t; ++a) batch.extra_slots.push_back(kPrefix + a);
      batch.extra_begin.push_back(static_cast<int32_t>(batch.extra_slots.size()));
    }
    const std::vector<float> q = RandomFloats(kNodes * row_floats, 23, 0.7f);
    CheckBatch(cache, sh, batch, q, 0.125f);
    // The chain's last node is AR at length kPrefix + kNodes.
    const int32_t len = kPrefix + kNodes;
    std::vector<float> ar(row_floats), tree(kNodes * row_floats);
    b->Attention(q.data() + (kNodes - 1) * row_floats, 1, sh.n_heads(), cache.View(),
                 AttentionMask{&len, nullptr, nullptr}, 0.125f, ar.data());
    b->Attention(q.data(), kNodes, sh.n_heads(), cache.View(), batch.Mask(), 0.125f, tree.data());
    EXPECT_EQ(
        std::memcmp(ar.data(), tree.data() + (kNodes - 1) * row_floats, row_floats * sizeof(float)),
        0);
  });
}

}  // namespace
}  // namespace ts
