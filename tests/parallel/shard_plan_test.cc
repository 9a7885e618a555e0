#include "parallel/shard_plan.h"

#include <gtest/gtest.h>

#include <vector>

namespace ts {
namespace {

// Reference: deal units one at a time, round robin over a sorted list, then make them contiguous:
// part p gets units [sum of earlier counts, + count_p), count_p = units / parts (+1 for the first
// units % parts parts).
std::vector<Range> ReferenceSplit(int64_t n, int parts, int64_t unit) {
  const int64_t units = (n + unit - 1) / unit;
  std::vector<int64_t> counts(parts, 0);
  for (int64_t u = 0; u < units; ++u) ++counts[u % parts];
  std::vector<Range> out;
  int64_t at = 0;
  for (int p = 0; p < parts; ++p) {
    out.push_back({std::min(n, at * unit), std::min(n, (at + counts[p]) * unit)});
    at += counts[p];
  }
  return out;
}

TEST(SplitRange, MatchesRoundRobinCountsAndTilesTheRange) {
  for (int64_t n : {1, 3, 7, 64, 1000, 1536, 49152, 49153}) {
    for (int parts = 1; parts <= 5; ++parts) {
      for (int64_t unit : {1, 32, 1024}) {
        const std::vector<Range> want = ReferenceSplit(n, parts, unit);
        int64_t at = 0;
        for (int p = 0; p < parts; ++p) {
          const Range got = SplitRange(n, parts, p, unit);
          EXPECT_EQ(got, want[p]) << n << " " << parts << " " << unit << " part " << p;
          EXPECT_EQ(got.begin, at);
          at = got.end;
        }
        EXPECT_EQ(at, n);
      }
    }
  }
}

ShardDims SmolLM2() {
  ShardDims d;
  d.n_heads = 9;
  d.n_kv_heads = 3;
  d.head_dim = 64;
  d.hidden = 576;
  d.intermediate = 1536;
  d.vocab = 49152;
  return d;
}

TEST(ShardPlan, SmolLM2OnTwoRanksSplitsKvHeadsTwoPlusOne) {
  auto p0 = MakeShardPlan(SmolLM2(), 0, 2);
  auto p1 = MakeShardPlan(SmolLM2(), 1, 2);
  ASSERT_TRUE(p0.ok() && p1.ok());
  EXPECT_EQ(p0->kv_heads, (Range{0, 2}));
  EXPECT_EQ(p1->kv_heads, (Range{2, 3}));
  EXPECT_EQ(p0->q_heads, (Range{0, 6}));
  EXPECT_EQ(p1->q_heads, (Range{6, 9}));
  EXPECT_EQ(p1->q_cols, (Range{384, 576}));
  // The FFN follows the KV heads' reduction granules (512 columns each).
  EXPECT_EQ(p0->ffn, (Range{0, 1024}));
  EXPECT_EQ(p1->ffn, (Range{1024, 1536}));
  EXPECT_EQ(p0->vocab, (Range{0, 24576}));
  EXPECT_EQ(p1->vocab, (Range{24576, 49152}));
  EXPECT_EQ(p1->draft_hidden, (Range{288, 576}));
}

TEST(ShardPlan, ThreeRanksAndBlockAlignment) {
  ShardDims d = SmolLM2();
  d.vocab = 49153;  // one past a reduce block: the extra row goes to the last block's owner
  for (int r = 0; r < 3; ++r) {
    auto p = MakeShardPlan(d, r, 3);
    ASSERT_TRUE(p.ok());
    EXPECT_EQ(p->kv_heads, (Range{r, r + 1}));
    EXPECT_EQ(p->ffn.begin % 32, 0);
    EXPECT_EQ(p->ffn.size(), 512);
    EXPECT_EQ(p->vocab.begin % 1024, 0);
  }
  EXPECT_EQ(MakeShardPlan(d, 0, 3)->vocab, (Range{0, 17 * 1024}));  // 49 blocks: 17 + 16 + 16
  EXPECT_EQ(MakeShardPlan(d, 2, 3)->vocab, (Range{33 * 1024, 49153}));
}

// Every shard boundary, at every TP degree, is a granule boundary, and the granules tile the
// columns: the ordered sum of granule partials is the same computation for every degree.
TEST(ShardPlan, ShardBoundariesAreGranuleBoundaries) {
  ShardDims d = SmolLM2();
  d.intermediate = 1000;  // not a multiple of 3 * 32: uneven granules
  int64_t o_at = 0, f_at = 0;
  for (int64_t g = 0; g < d.n_kv_heads; ++g) {
    EXPECT_EQ(OprojGranule(d, g).begin, o_at);
    EXPECT_EQ(FfnGranule(d, g).begin, f_at);
    EXPECT_EQ(FfnGranule(d, g).begin % 32, 0);
    o_at = OprojGranule(d, g).end;
    f_at = FfnGranule(d, g).end;
  }
  EXPECT_EQ(o_at, 576);
  EXPECT_EQ(f_at, 1000);
  for (int world = 1; world <= 3; ++world) {
    for (int r = 0; r < world; ++r) {
      auto p = MakeShardPlan(d, r, world);
      ASSERT_TRUE(p.ok());
      EXPECT_EQ(p->q_cols.begin, OprojGranule(d, p->kv_heads.begin).begin);
      EXPECT_EQ(p->q_cols.end, OprojGranule(d, p->kv_heads.end - 1).end);
      EXPECT_EQ(p->ffn.begin, FfnGranule(d, p->kv_heads.begin).begin);
      EXPECT_EQ(p->ffn.end, FfnGranule(d, p->kv_heads.end - 1).end);
    }
  }
}

TEST(ShardPlan, RejectsMoreRanksThanKvHeads) {
  auto p = MakeShardPlan(SmolLM2(), 0, 4);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().message(), "--tp 4: the model has only 3 KV heads, so at most --tp 3");
  ShardDims bad = SmolLM2();
  bad.n_heads = 10;
  EXPECT_FALSE(MakeShardPlan(bad, 0, 2).ok());
}

}  // namespace
}  // namespace ts
