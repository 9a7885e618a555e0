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
  EXPECT_EQ(p0->ffn, (Range{0, 768}));
  EXPECT_EQ(p1->ffn, (Range{768, 1536}));
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
