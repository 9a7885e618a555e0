// PartialKvCache against a straightforward reference: every score in double, all candidates
// sorted by (score desc, position asc), the top k taken, then sinks and window added. The cache
// scores in f32 (Backend::KeyScores); the two agree unless two candidates at the cut are within
// f32 rounding of each other, which these random caches never are.
#include "runtime/kv/partial_cache.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/backend.h"

namespace ts {
namespace {

constexpr int kLayers = 2;
constexpr int kHeads = 4;
constexpr int kKvHeads = 2;
constexpr int kHeadDim = 8;
constexpr int64_t kFullCapacity = 320;

// The CPU backend the caches score with (two threads: the chunks of KeyScores run in parallel).
Backend* TestBackend() {
  static const std::unique_ptr<Backend> backend = MakeCpuBackend(2);
  return backend.get();
}

ModelConfig TestModel() {
  ModelConfig m;
  m.arch = "llama";
  m.n_layers = kLayers;
  m.n_heads = kHeads;
  m.n_kv_heads = kKvHeads;
  m.head_dim = kHeadDim;
  return m;
}

PartialCacheConfig SmallConfig(int64_t room = 0) {
  PartialCacheConfig c;
  c.budget = 64;
  c.n_sink = 16;
  c.recent = 16;
  c.reselect_room = room;
  c.draft_slots = 4;
  return c;
}

size_t Elem(DType t) { return t == DType::kBF16 ? 2 : 4; }

const uint8_t* RowPtr(const KvLayerView& v, bool key, int head, int64_t slot) {
  const size_t row = static_cast<size_t>(v.head_dim) * Elem(v.dtype);
  const uint8_t* base = static_cast<const uint8_t*>(key ? v.k : v.v);
  return base + (static_cast<size_t>(head) * v.capacity + slot) * row;
}

uint8_t* MutRowPtr(const KvLayerView& v, bool key, int head, int64_t slot) {
  return const_cast<uint8_t*>(RowPtr(v, key, head, slot));
}

void WriteRow(const KvLayerView& v, bool key, int head, int64_t slot, const float* x) {
  uint8_t* dst = MutRowPtr(v, key, head, slot);
  for (int d = 0; d < v.head_dim; ++d) {
    if (v.dtype == DType::kBF16) {
      uint32_t bits;
      std::memcpy(&bits, &x[d], 4);
      const uint16_t h = static_cast<uint16_t>(bits >> 16);
      std::memcpy(dst + 2 * d, &h, 2);
    } else {
      std::memcpy(dst + 4 * d, &x[d], 4);
    }
  }
}

float ReadElem(const KvLayerView& v, int head, int64_t slot, int d) {
  const uint8_t* src = RowPtr(v, true, head, slot);
  if (v.dtype == DType::kBF16) {
    uint16_t h;
    std::memcpy(&h, src + 2 * d, 2);
    const uint32_t bits = static_cast<uint32_t>(h) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
  float f;
  std::memcpy(&f, src + 4 * d, 4);
  return f;
}

std::unique_ptr<KvCache> RandomFull(DType dtype, uint32_t seed) {
  auto full = KvCache::Create(TestModel(), kFullCapacity, dtype);
  EXPECT_TRUE(full.ok()) << full.status();
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  float row[kHeadDim];
  for (int l = 0; l < kLayers; ++l) {
    const KvLayerView v = (*full)->Layer(l);
    for (int g = 0; g < kKvHeads; ++g) {
      for (int64_t s = 0; s < kFullCapacity; ++s) {
        for (bool key : {true, false}) {
          for (float& x : row) x = dist(rng);
          WriteRow(v, key, g, s, row);
        }
      }
    }
  }
  return std::move(*full);
}

std::vector<float> RandomQueries(uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  std::vector<float> q(static_cast<size_t>(kLayers) * kHeads * kHeadDim);
  for (float& x : q) x = dist(rng);
  return q;
}

// The reference selection for (layer, head).
std::vector<int32_t> Reference(const KvCache& full, int64_t committed, const std::vector<float>& q,
                               const PartialCacheConfig& c, int layer, int head) {
  std::vector<int32_t> out;
  if (committed <= c.budget) {
    for (int64_t i = 0; i < committed; ++i) out.push_back(static_cast<int32_t>(i));
    return out;
  }
  const KvLayerView v = full.Layer(layer);
  const int group = kHeads / kKvHeads;
  const int64_t k = c.budget - c.reselect_room - c.n_sink - c.recent;
  std::vector<std::pair<double, int32_t>> cand;
  for (int64_t p = c.n_sink; p < committed - c.recent; ++p) {
    double score = 0.0;
    for (int h = head * group; h < (head + 1) * group; ++h) {
      for (int d = 0; d < kHeadDim; ++d) {
        score += static_cast<double>(q[(static_cast<size_t>(layer) * kHeads + h) * kHeadDim + d]) *
                 static_cast<double>(ReadElem(v, head, p, d));
      }
    }
    cand.emplace_back(score, static_cast<int32_t>(p));
  }
  std::sort(cand.begin(), cand.end(), [](const auto& a, const auto& b) {
    return a.first > b.first || (a.first == b.first && a.second < b.second);
  });
  for (int64_t i = 0; i < c.n_sink; ++i) out.push_back(static_cast<int32_t>(i));
  for (int64_t i = 0; i < k; ++i) out.push_back(cand[i].second);
  for (int64_t i = committed - c.recent; i < committed; ++i) out.push_back(static_cast<int32_t>(i));
  std::sort(out.begin(), out.end());
  return out;
}

// Every slot [0, used) of `partial` equals the full cache's row at the recorded position, K and V,
// bit for bit.
void ExpectRowsCopied(const PartialKvCache& partial, const KvCache& full) {
  const size_t row = static_cast<size_t>(kHeadDim) * Elem(full.dtype());
  for (int l = 0; l < kLayers; ++l) {
    const KvLayerView src = full.Layer(l);
    const KvLayerView dst = partial.Layer(l);
    for (int g = 0; g < kKvHeads; ++g) {
      const auto pos = partial.selection().Positions(l, g);
      ASSERT_EQ(static_cast<int64_t>(pos.size()), partial.used());
      for (size_t i = 0; i < pos.size(); ++i) {
        for (bool key : {true, false}) {
          ASSERT_EQ(std::memcmp(RowPtr(dst, key, g, i), RowPtr(src, key, g, pos[i]), row), 0)
              << "layer " << l << " head " << g << " slot " << i << " position " << pos[i];
        }
      }
    }
  }
}

void ExpectSinksAndWindow(const PartialKvCache& partial, int64_t committed) {
  const PartialCacheConfig& c = partial.config();
  for (int l = 0; l < kLayers; ++l) {
    for (int g = 0; g < kKvHeads; ++g) {
      const auto pos = partial.selection().Positions(l, g);
      ASSERT_TRUE(std::is_sorted(pos.begin(), pos.end()));
      ASSERT_EQ(std::adjacent_find(pos.begin(), pos.end()), pos.end());
      for (int64_t s = 0; s < std::min(c.n_sink, committed); ++s) {
        EXPECT_TRUE(std::binary_search(pos.begin(), pos.end(), s)) << "sink " << s;
      }
      for (int64_t s = std::max<int64_t>(0, committed - c.recent); s < committed; ++s) {
        EXPECT_TRUE(std::binary_search(pos.begin(), pos.end(), s)) << "recent " << s;
      }
    }
  }
}

std::unique_ptr<PartialKvCache> MakePartial(DType dtype, const PartialCacheConfig& c) {
  auto p = PartialKvCache::Create(TestModel(), c, kFullCapacity, dtype, TestBackend());
  EXPECT_TRUE(p.ok()) << p.status();
  return std::move(*p);
}

class PartialCacheTest : public ::testing::TestWithParam<DType> {};

TEST_P(PartialCacheTest, Select_MatchesReferenceAndCopiesRowsBitExact) {
  const PartialCacheConfig c = SmallConfig();
  for (uint32_t seed = 1; seed <= 4; ++seed) {
    auto full = RandomFull(GetParam(), seed);
    const auto q = RandomQueries(100 + seed);
    auto partial = MakePartial(GetParam(), c);
    for (int64_t committed : {65, 97, 200, 320}) {
      ASSERT_TRUE(partial->Select(*full, committed, q).ok());
      EXPECT_EQ(partial->used(), c.budget);
      EXPECT_FALSE(partial->selection().whole_prefix);
      EXPECT_FALSE(partial->NeedsReselect());
      for (int l = 0; l < kLayers; ++l) {
        for (int g = 0; g < kKvHeads; ++g) {
          const auto got = partial->selection().Positions(l, g);
          EXPECT_EQ(std::vector<int32_t>(got.begin(), got.end()),
                    Reference(*full, committed, q, c, l, g))
              << "seed " << seed << " committed " << committed << " layer " << l << " head " << g;
        }
      }
      ExpectRowsCopied(*partial, *full);
      ExpectSinksAndWindow(*partial, committed);
    }
  }
}

TEST_P(PartialCacheTest, Select_HeadsOfOneLayerChooseDifferentPositions) {
  auto full = RandomFull(GetParam(), 7);
  auto partial = MakePartial(GetParam(), SmallConfig());
  ASSERT_TRUE(partial->Select(*full, 300, RandomQueries(8)).ok());
  const auto a = partial->selection().Positions(0, 0);
  const auto b = partial->selection().Positions(0, 1);
  EXPECT_FALSE(std::equal(a.begin(), a.end(), b.begin(), b.end()));
}

// A budget of only sinks, recent window and reselect room: nothing to pick by importance.
TEST_P(PartialCacheTest, Select_BudgetWithoutImportantSlots) {
  PartialCacheConfig c = SmallConfig(/*room=*/32);  // 16 sinks + 16 recent + 32 room = 64
  auto full = RandomFull(GetParam(), 13);
  auto partial = MakePartial(GetParam(), c);
  ASSERT_TRUE(partial->Select(*full, 200, RandomQueries(14)).ok());
  EXPECT_EQ(partial->used(), 32);
  for (int l = 0; l < kLayers; ++l) {
    for (int g = 0; g < kKvHeads; ++g) {
      const auto got = partial->selection().Positions(l, g);
      EXPECT_EQ(std::vector<int32_t>(got.begin(), got.end()),
                Reference(*full, 200, RandomQueries(14), c, l, g));
    }
  }
  ExpectRowsCopied(*partial, *full);
}

TEST_P(PartialCacheTest, Select_LeavesReselectRoomAndMatchesReference) {
  const PartialCacheConfig c = SmallConfig(/*room=*/8);
  auto full = RandomFull(GetParam(), 11);
  const auto q = RandomQueries(12);
  auto partial = MakePartial(GetParam(), c);
  ASSERT_TRUE(partial->Select(*full, 150, q).ok());
  EXPECT_EQ(partial->used(), 56);
  for (int l = 0; l < kLayers; ++l) {
    for (int g = 0; g < kKvHeads; ++g) {
      const auto got = partial->selection().Positions(l, g);
      EXPECT_EQ(std::vector<int32_t>(got.begin(), got.end()), Reference(*full, 150, q, c, l, g));
    }
  }
  ExpectRowsCopied(*partial, *full);
}

TEST_P(PartialCacheTest, Select_TiesGoToLowerPositionsDeterministically) {
  const PartialCacheConfig c = SmallConfig();
  auto full = RandomFull(GetParam(), 21);
  // Every key of the middle range is one of three rows, so scores tie in large groups.
  float rows[3][kHeadDim];
  std::mt19937 rng(22);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  for (auto& r : rows) {
    for (float& x : r) x = dist(rng);
  }
  for (int l = 0; l < kLayers; ++l) {
    for (int g = 0; g < kKvHeads; ++g) {
      for (int64_t p = 16; p < 300; ++p) WriteRow(full->Layer(l), true, g, p, rows[(p * 7) % 3]);
    }
  }
  const auto q = RandomQueries(23);
  auto a = MakePartial(GetParam(), c);
  auto b = MakePartial(GetParam(), c);
  ASSERT_TRUE(a->Select(*full, 300, q).ok());
  ASSERT_TRUE(b->Select(*full, 250, q).ok());
  ASSERT_TRUE(b->Select(*full, 300, q).ok());
  EXPECT_EQ(a->selection().positions, b->selection().positions);
  for (int l = 0; l < kLayers; ++l) {
    for (int g = 0; g < kKvHeads; ++g) {
      const auto got = a->selection().Positions(l, g);
      EXPECT_EQ(std::vector<int32_t>(got.begin(), got.end()), Reference(*full, 300, q, c, l, g));
    }
  }
  // All-equal keys: the important positions are exactly the lowest ones after the sinks.
  for (int l = 0; l < kLayers; ++l) {
    for (int g = 0; g < kKvHeads; ++g) {
      for (int64_t p = 16; p < 300; ++p) WriteRow(full->Layer(l), true, g, p, rows[0]);
    }
  }
  ASSERT_TRUE(a->Select(*full, 300, q).ok());
  const auto got = a->selection().Positions(1, 1);
  for (int64_t i = 0; i < 48; ++i) EXPECT_EQ(got[i], i) << i;  // sinks + positions 16..47
  for (int64_t i = 48; i < 64; ++i) EXPECT_EQ(got[i], 300 - 64 + i) << i;  // window
  ExpectRowsCopied(*a, *full);
}

TEST_P(PartialCacheTest, SelectStreaming_KeepsSinksAndLatestThenAppends) {
  const PartialCacheConfig c = SmallConfig(/*room=*/8);
  auto full = RandomFull(GetParam(), 9);
  auto partial = MakePartial(GetParam(), c);
  // Short prefix: the whole prefix.
  ASSERT_TRUE(partial->SelectStreaming(*full, 40).ok());
  EXPECT_TRUE(partial->selection().whole_prefix);
  EXPECT_EQ(partial->used(), 40);
  ExpectRowsCopied(*partial, *full);
  // Longer: sinks [0, 16) then the latest budget - room - sinks = 40 positions, every row.
  ASSERT_TRUE(partial->SelectStreaming(*full, 300).ok());
  EXPECT_FALSE(partial->selection().whole_prefix);
  EXPECT_EQ(partial->used(), 56);
  EXPECT_EQ(partial->covered_len(), 300);
  std::vector<int32_t> want;
  for (int32_t p = 0; p < 16; ++p) want.push_back(p);
  for (int32_t p = 260; p < 300; ++p) want.push_back(p);
  for (int l = 0; l < kLayers; ++l) {
    for (int g = 0; g < kKvHeads; ++g) {
      const auto got = partial->selection().Positions(l, g);
      EXPECT_EQ(std::vector<int32_t>(got.begin(), got.end()), want);
    }
  }
  ExpectRowsCopied(*partial, *full);
  // The room takes the next committed positions without selecting again.
  ASSERT_TRUE(partial->AppendRecent(*full, 308).ok());
  EXPECT_FALSE(partial->NeedsReselect());
  EXPECT_EQ(partial->used(), 64);
  ExpectSinksAndWindow(*partial, 308);
  ExpectRowsCopied(*partial, *full);
  ASSERT_TRUE(partial->AppendRecent(*full, 309).ok());
  EXPECT_TRUE(partial->NeedsReselect());
  // A selection not sized for this cache is rejected.
  PartialCacheSelection wrong;
  wrong.Resize(kLayers, kKvHeads, 8);
  EXPECT_FALSE(partial->ComputeStreamingSelection(*full, 300, &wrong).ok());
  EXPECT_GT(partial->bytes(), partial->cache().bytes());
}

TEST_P(PartialCacheTest, ShortPrefix_CopiesEverything) {
  const PartialCacheConfig c = SmallConfig();
  auto full = RandomFull(GetParam(), 31);
  for (int64_t committed : {0, 1, 40, 64}) {
    auto partial = MakePartial(GetParam(), c);
    // Queries are not needed (and not checked) for a prefix within the budget.
    ASSERT_TRUE(partial->Select(*full, committed, {}).ok());
    EXPECT_EQ(partial->used(), committed);
    EXPECT_TRUE(partial->selection().whole_prefix);
    EXPECT_EQ(partial->DraftSlot(0), committed);
    for (int l = 0; l < kLayers; ++l) {
      for (int g = 0; g < kKvHeads; ++g) {
        const auto got = partial->selection().Positions(l, g);
        for (int64_t i = 0; i < committed; ++i) EXPECT_EQ(got[i], i);
      }
    }
    ExpectRowsCopied(*partial, *full);
  }
}

TEST_P(PartialCacheTest, AppendRecent_FillsUntilFullThenAsksForReselect) {
  const PartialCacheConfig c = SmallConfig(/*room=*/8);
  auto full = RandomFull(GetParam(), 41);
  const auto q = RandomQueries(42);
  auto partial = MakePartial(GetParam(), c);
  // Sentinel in the draft slots: selection and refresh never write past the budget.
  const size_t row = static_cast<size_t>(kHeadDim) * Elem(GetParam());
  for (int l = 0; l < kLayers; ++l) {
    for (int g = 0; g < kKvHeads; ++g) {
      for (int64_t s = c.budget; s < c.budget + c.draft_slots; ++s) {
        std::memset(MutRowPtr(partial->Layer(l), true, g, s), 0xA5, row);
        std::memset(MutRowPtr(partial->Layer(l), false, g, s), 0xA5, row);
      }
    }
  }
  // Whole-prefix phase: appends from an empty cache.
  ASSERT_TRUE(partial->AppendRecent(*full, 10).ok());
  EXPECT_EQ(partial->used(), 10);
  ASSERT_TRUE(partial->AppendRecent(*full, 64).ok());
  EXPECT_EQ(partial->used(), 64);
  EXPECT_FALSE(partial->NeedsReselect());
  EXPECT_TRUE(partial->selection().whole_prefix);
  ExpectRowsCopied(*partial, *full);
  // Committed passes the budget: nothing fits.
  ASSERT_TRUE(partial->AppendRecent(*full, 67).ok());
  EXPECT_TRUE(partial->NeedsReselect());
  EXPECT_EQ(partial->used(), 64);
  // Steps of 1..5 accepted tokens, reselecting when asked.
  std::mt19937 rng(43);
  int64_t committed = 67;
  int reselects = 0;
  while (committed < kFullCapacity) {
    if (partial->NeedsReselect()) {
      ASSERT_TRUE(partial->Select(*full, committed, q).ok());
      ++reselects;
      EXPECT_EQ(partial->used(), c.budget - c.reselect_room);
      EXPECT_EQ(partial->covered_len(), committed);
      ExpectSinksAndWindow(*partial, committed);
    }
    committed = std::min<int64_t>(kFullCapacity, committed + 1 + rng() % 5);
    ASSERT_TRUE(partial->AppendRecent(*full, committed).ok());
    EXPECT_LE(partial->used(), c.budget);
    EXPECT_EQ(partial->NeedsReselect(), partial->covered_len() < committed);
    ExpectRowsCopied(*partial, *full);
    if (!partial->NeedsReselect()) ExpectSinksAndWindow(*partial, committed);
  }
  EXPECT_GT(reselects, 10);
  for (int l = 0; l < kLayers; ++l) {
    for (int g = 0; g < kKvHeads; ++g) {
      for (int64_t s = c.budget; s < c.budget + c.draft_slots; ++s) {
        for (bool key : {true, false}) {
          const uint8_t* p = RowPtr(partial->Layer(l), key, g, s);
          EXPECT_TRUE(std::all_of(p, p + row, [](uint8_t b) { return b == 0xA5; }));
        }
      }
    }
  }
}

TEST_P(PartialCacheTest, BroadcastSelection_ReproducesTheCoordinatorsCache) {
  const PartialCacheConfig c = SmallConfig();
  auto full = RandomFull(GetParam(), 51);
  const auto q = RandomQueries(52);
  auto coordinator = MakePartial(GetParam(), c);
  auto follower = MakePartial(GetParam(), c);
  ASSERT_TRUE(coordinator->Select(*full, 222, q).ok());
  PartialCacheSelection received = follower->NewSelection();
  ASSERT_TRUE(coordinator->ComputeSelection(*full, 222, q, &received).ok());
  EXPECT_EQ(received.positions, coordinator->selection().positions);
  ASSERT_TRUE(follower->Apply(*full, received).ok());
  EXPECT_EQ(follower->used(), coordinator->used());
  EXPECT_EQ(follower->covered_len(), 222);
  ExpectRowsCopied(*follower, *full);
  const size_t bytes = KvCache::BytesFor(TestModel(), c.budget + c.draft_slots, GetParam());
  for (int l = 0; l < kLayers; ++l) {
    const size_t n = bytes / kLayers / 2 / (c.budget + c.draft_slots) / kKvHeads * c.budget;
    for (int g = 0; g < kKvHeads; ++g) {
      EXPECT_EQ(std::memcmp(RowPtr(follower->Layer(l), true, g, 0),
                            RowPtr(coordinator->Layer(l), true, g, 0), n),
                0);
    }
  }
  // A corrupted selection is refused and changes nothing.
  received.positions[5] = 400;
  EXPECT_FALSE(follower->Apply(*full, received).ok());
  ExpectRowsCopied(*follower, *full);
}

INSTANTIATE_TEST_SUITE_P(Dtypes, PartialCacheTest, ::testing::Values(DType::kF32, DType::kBF16),
                         [](const auto& info) {
                           return std::string(info.param == DType::kF32 ? "F32" : "BF16");
                         });

TEST(PartialCacheErrors, RejectsBadConfigAndInputs) {
  PartialCacheConfig c = SmallConfig();
  c.recent = 40;  // 16 + 40 + 16 > 64
  c.reselect_room = 16;
  EXPECT_FALSE(
      PartialKvCache::Create(TestModel(), c, kFullCapacity, DType::kF32, TestBackend()).ok());
  c = SmallConfig();
  c.budget = 0;
  EXPECT_FALSE(
      PartialKvCache::Create(TestModel(), c, kFullCapacity, DType::kF32, TestBackend()).ok());
  EXPECT_FALSE(
      PartialKvCache::Create(TestModel(), SmallConfig(), kFullCapacity, DType::kQ8_0, TestBackend())
          .ok());

  auto full = RandomFull(DType::kF32, 61);
  auto partial = MakePartial(DType::kF32, SmallConfig());
  // Wrong query size past the budget.
  EXPECT_FALSE(partial->Select(*full, 100, std::vector<float>(3)).ok());
  // Beyond the full cache.
  EXPECT_FALSE(partial->Select(*full, kFullCapacity + 1, RandomQueries(1)).ok());
  // dtype mismatch.
  auto bf16 = MakePartial(DType::kBF16, SmallConfig());
  EXPECT_FALSE(bf16->Select(*full, 10, {}).ok());
  // Committed length going back.
  ASSERT_TRUE(partial->AppendRecent(*full, 20).ok());
  EXPECT_FALSE(partial->AppendRecent(*full, 19).ok());
}

}  // namespace
}  // namespace ts
