// The sharded sampler on 2 and 3 ranks (threads sharing memory, tests/common/thread_communicator.h)
// against the single-process Sampler on the whole row: the same token and the same draft list,
// for every filter combination, including top-k boundaries full of ties.
#include "runtime/sampling/sharded_sampler.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "runtime/sampling/sampler.h"
#include "tests/common/thread_communicator.h"

namespace ts {
namespace {

struct Case {
  const char* name;
  SamplingParams params;
};

std::vector<Case> Cases() {
  auto make = [](float t, int64_t k, float p, float min_p, float eta) {
    SamplingParams s;
    s.temperature = t;
    s.top_k = k;
    s.top_p = p;
    s.min_p = min_p;
    s.eta = eta;
    s.penalty = 1.2f;
    s.penalty_window = 64;
    s.seed = 77;
    return s;
  };
  return {
      {"top-p 0.9", make(1.0f, 0, 0.9f, 0.0f, 0.0f)},
      {"top-k 40", make(1.0f, 40, 1.0f, 0.0f, 0.0f)},
      {"top-k 1", make(0.7f, 1, 1.0f, 0.0f, 0.0f)},
      {"top-k 40 + top-p 0.8", make(1.0f, 40, 0.8f, 0.0f, 0.0f)},
      {"eta 0.0009", make(1.0f, 0, 1.0f, 0.0f, 0.0009f)},
      {"min-p 0.05 + top-p 0.95 + top-k 100 + eta", make(0.8f, 100, 0.95f, 0.05f, 0.0003f)},
      {"min-p 0.1 (TokenSwift default)", make(1.0f, 0, 1.0f, 0.1f, 0.0f)},
      {"top-k 3000 (more than a rank holds)", make(1.5f, 3000, 0.99f, 0.0f, 0.0f)},
      // Top-p alone goes in rounds of 256 offers per rank: a flat row needs many.
      {"top-p 0.99 at temperature 4 (many rounds)", make(4.0f, 0, 0.99f, 0.0f, 0.0f)},
      {"top-p 0.6 + min-p 0.01", make(2.0f, 0, 0.6f, 0.01f, 0.0f)},
  };
}

constexpr int64_t kVocab = 5000;  // ranks: [0, 3072) + [3072, 5000), or 2048 + 2048 + 904

// Rows: normal logits, and logits rounded to steps of 0.5 so that the top-k boundary and the
// top-p boundary sit inside runs of equal scores.
std::vector<float> Row(int seed, bool ties) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> row(kVocab);
  for (float& v : row) v = ties ? std::round(2.0f * normal(rng)) / 2.0f : normal(rng);
  return row;
}

TEST(ShardedSampler, SameTokensAndDraftListsAsOneRank) {
  const std::vector<int32_t> window = {5, 17, 4999, 3072, 3071, 17, 2048, 100, 1023, 1024};
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    Sampler whole(c.params, kVocab);
    for (int world : {2, 3}) {
      testing_comm::ThreadGroup group(world);
      for (int trial = 0; trial < 12; ++trial) {
        const std::vector<float> row = Row(100 * world + trial, trial % 2 == 1);
        const int64_t position = 1000 + trial;
        const int32_t want = whole.Sample(row.data(), kVocab, window, position);
        std::vector<int32_t> want_list;
        whole.Candidates(row.data(), kVocab, window, position, 8, want_list);
        std::vector<int32_t> got(world, -2);
        std::vector<std::vector<int32_t>> got_list(world);
        std::vector<std::string> errors(world);
        std::vector<std::thread> ranks;
        for (int r = 0; r < world; ++r) {
          ranks.emplace_back([&, r] {
            const Range range = SplitRange(kVocab, world, r, kReduceBlock);
            auto s = ShardedSampler::Create(c.params, range, &group.rank(r));
            if (!s.ok()) {
              errors[r] = std::string(s.status().message());
              return;  // every rank fails alike (the ranges are aligned)
            }
            auto t = s->Sample(row.data() + range.begin, window, position);
            got[r] = t.ok() ? *t : -3;
            const Status st =
                s->Candidates(row.data() + range.begin, window, position, 8, got_list[r]);
            if (!st.ok()) errors[r] = std::string(st.message());
          });
        }
        for (auto& t : ranks) t.join();
        for (int r = 0; r < world; ++r) {
          ASSERT_EQ(errors[r], "") << "rank " << r;
          EXPECT_EQ(got[r], want) << world << " ranks, rank " << r << ", trial " << trial;
          EXPECT_EQ(got_list[r], want_list) << world << " ranks, rank " << r << ", trial " << trial;
        }
      }
    }
  }
}

// Top-p on 2 and 3 ranks over 300 positions of one row: each position draws other noise, so the
// sampled token probes the cutoff (and the mass it is computed from) many times. A peaked row
// (one round of offers) and a flat one (temperature 5, top-p 0.97: thousands of tokens, rounds).
TEST(ShardedSampler, ManyPositionsTopP) {
  for (const bool flat : {false, true}) {
    for (const int world : {2, 3}) {
      SCOPED_TRACE(std::string(flat ? "flat" : "peaked") + ", " + std::to_string(world) + " ranks");
      SamplingParams p;
      p.top_p = flat ? 0.97f : 0.5f;
      p.temperature = flat ? 5.0f : 1.0f;
      p.seed = 3;
      Sampler whole(p, kVocab);
      const std::vector<float> row = Row(7, false);
      testing_comm::ThreadGroup group(world);
      std::vector<std::vector<int32_t>> got(world);
      std::vector<std::thread> ranks;
      for (int r = 0; r < world; ++r) {
        ranks.emplace_back([&, r] {
          const Range range = SplitRange(kVocab, world, r, kReduceBlock);
          auto s = ShardedSampler::Create(p, range, &group.rank(r));
          ASSERT_TRUE(s.ok());
          for (int64_t pos = 0; pos < 300; ++pos) {
            auto t = s->Sample(row.data() + range.begin, {}, pos);
            got[r].push_back(t.ok() ? *t : -1);
          }
        });
      }
      for (auto& t : ranks) t.join();
      for (int64_t pos = 0; pos < 300; ++pos) {
        const int32_t want = whole.Sample(row.data(), kVocab, {}, pos);
        for (int r = 0; r < world; ++r) EXPECT_EQ(got[r][pos], want) << "rank " << r << ", " << pos;
      }
    }
  }
}

TEST(ShardedSampler, UnalignedRangeIsRefusedForTopP) {
  SamplingParams p;
  p.top_p = 0.9f;
  testing_comm::ThreadGroup group(2);
  auto s = ShardedSampler::Create(p, Range{100, 200}, &group.rank(1));
  ASSERT_FALSE(s.ok());
  EXPECT_NE(std::string(s.status().message()).find("--top-p"), std::string::npos);
  p.top_p = 1.0f;
  p.top_k = 5;  // top-k needs no sums: any range
  EXPECT_TRUE(ShardedSampler::Create(p, Range{100, 200}, &group.rank(1)).ok());
}

}  // namespace
}  // namespace ts
