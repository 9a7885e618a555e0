// Each filter against a straightforward reference: double precision, sort-based, written the way
// HF transformers' warpers read (remove by setting -inf, renormalise for the next one).
#include "runtime/sampling/logits_processor.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

namespace ts {
namespace {

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

std::vector<double> Softmax(const std::vector<double>& s) {
  const double m = *std::max_element(s.begin(), s.end());
  std::vector<double> p(s.size());
  double sum = 0.0;
  for (size_t i = 0; i < s.size(); ++i) sum += p[i] = std::exp(s[i] - m);
  for (double& x : p) x /= sum;
  return p;
}

// Ids of the finite scores, ordered by (score desc, id asc).
std::vector<int> Ordered(const std::vector<double>& s) {
  std::vector<int> ids;
  for (int i = 0; i < static_cast<int>(s.size()); ++i) {
    if (s[i] != kNegInf) ids.push_back(i);
  }
  std::stable_sort(ids.begin(), ids.end(), [&](int a, int b) { return s[a] > s[b]; });
  return ids;
}

std::vector<bool> ReferenceKept(const std::vector<float>& z, const SamplingParams& params) {
  std::vector<double> s(z.begin(), z.end());
  const int n = static_cast<int>(s.size());
  if (params.min_p > 0.0f) {
    const std::vector<double> p = Softmax(s);
    const double p_max = *std::max_element(p.begin(), p.end());
    for (int i = 0; i < n; ++i) {
      if (p[i] < params.min_p * p_max) s[i] = kNegInf;
    }
  }
  if (params.top_p < 1.0f) {
    const std::vector<double> p = Softmax(s);
    double cumulative = 0.0;
    bool done = false;
    for (int i : Ordered(s)) {
      if (done) s[i] = kNegInf;
      cumulative += p[i];
      if (cumulative >= params.top_p) done = true;
    }
  }
  if (params.top_k > 0) {
    const std::vector<int> order = Ordered(s);
    if (static_cast<int64_t>(order.size()) > params.top_k) {
      const double kth = s[order[params.top_k - 1]];
      for (int i = 0; i < n; ++i) {
        if (s[i] < kth) s[i] = kNegInf;
      }
    }
  }
  if (params.eta > 0.0f) {
    const std::vector<double> p = Softmax(s);
    double entropy = 0.0;
    for (double x : p) {
      if (x > 0) entropy -= x * std::log(x);
    }
    const double eps = params.eta;
    const double eta = std::min(eps, std::sqrt(eps) * std::exp(-entropy));
    const int best = Ordered(s)[0];  // min_tokens_to_keep = 1
    for (int i = 0; i < n; ++i) {
      if (p[i] < eta && i != best) s[i] = kNegInf;
    }
  }
  std::vector<bool> kept(n);
  for (int i = 0; i < n; ++i) kept[i] = s[i] != kNegInf;
  return kept;
}

std::vector<bool> Kept(const std::vector<float>& z, const SamplingParams& params) {
  const float z_max = *std::max_element(z.begin(), z.end());
  std::vector<ScoredToken> scratch(z.size());
  const Cutoff c = ComputeCutoff(params, z, z_max, scratch);
  std::vector<bool> kept(z.size());
  for (size_t i = 0; i < z.size(); ++i) kept[i] = c.Keeps(z[i], static_cast<int64_t>(i));
  return kept;
}

// Scores with spread `scale`; quantised to multiples of `step` (> 0) to force ties.
std::vector<float> RandomScores(std::mt19937& rng, int n, float scale, float step = 0.0f) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> z(n);
  for (float& x : z) {
    x = normal(rng);
    if (step > 0.0f) x = std::round(x / step) * step;
  }
  return z;
}

void ExpectMatchesReference(const SamplingParams& params, float step, uint32_t seed) {
  std::mt19937 rng(seed);
  for (int trial = 0; trial < 40; ++trial) {
    const int n = std::uniform_int_distribution<int>(1, 3000)(rng);
    const float scale = std::uniform_real_distribution<float>(0.3f, 6.0f)(rng);
    const std::vector<float> z = RandomScores(rng, n, scale, step);
    const std::vector<bool> got = Kept(z, params);
    const std::vector<bool> want = ReferenceKept(z, params);
    ASSERT_EQ(got, want) << "trial " << trial << " n " << n << " scale " << scale << " kept "
                         << std::count(got.begin(), got.end(), true) << " vs "
                         << std::count(want.begin(), want.end(), true);
    ASSERT_GE(std::count(got.begin(), got.end(), true), 1);
  }
}

SamplingParams With(float min_p, float top_p, int64_t top_k, float eta) {
  SamplingParams p;
  p.min_p = min_p;
  p.top_p = top_p;
  p.top_k = top_k;
  p.eta = eta;
  return p;
}

TEST(LogitsFilters, MinPMatchesReference) {
  for (float min_p : {0.01f, 0.1f, 0.5f, 1.0f}) ExpectMatchesReference(With(min_p, 1, 0, 0), 0, 1);
}

TEST(LogitsFilters, TopPMatchesReference) {
  for (float top_p : {0.05f, 0.5f, 0.9f, 0.999f})
    ExpectMatchesReference(With(0, top_p, 0, 0), 0, 2);
}

TEST(LogitsFilters, TopKMatchesReference) {
  for (int64_t k : {1, 5, 40, 2000}) ExpectMatchesReference(With(0, 1, k, 0), 0, 3);
}

TEST(LogitsFilters, EtaMatchesReference) {
  for (float eta : {1e-4f, 3e-4f, 0.01f, 0.2f}) ExpectMatchesReference(With(0, 1, 0, eta), 0, 4);
}

TEST(LogitsFilters, ChainedFiltersMatchReference) {
  ExpectMatchesReference(With(0.1f, 0.9f, 20, 3e-4f), 0, 5);
  ExpectMatchesReference(With(0.02f, 0.7f, 0, 0), 0, 6);
  ExpectMatchesReference(With(0, 0.95f, 50, 0), 0, 7);
  ExpectMatchesReference(With(0.05f, 1, 10, 0.01f), 0, 8);
}

TEST(LogitsFilters, TiesMatchReference) {
  // Quantised scores: top-k keeps every tie of the k-th value; top-p breaks ties by id.
  ExpectMatchesReference(With(0, 1, 7, 0), 0.5f, 9);
  ExpectMatchesReference(With(0, 0.6f, 0, 0), 0.5f, 10);
  ExpectMatchesReference(With(0, 0.8f, 12, 0), 1.0f, 11);
  ExpectMatchesReference(With(0.1f, 0.9f, 5, 1e-3f), 0.25f, 12);
}

TEST(LogitsFilters, TopKKeepsAllTiesOfTheKthScore) {
  const std::vector<float> z = {1.0f, 3.0f, 2.0f, 2.0f, 0.0f, 2.0f};
  const std::vector<bool> kept = Kept(z, With(0, 1, 2, 0));
  EXPECT_EQ(kept, (std::vector<bool>{false, true, true, true, false, true}));
}

TEST(LogitsFilters, TopPBreaksTiesByLowerId) {
  // Four equal tokens: top-p 0.5 keeps exactly two of them, the two lowest ids.
  const std::vector<float> z = {0.0f, 0.0f, 0.0f, 0.0f};
  EXPECT_EQ(Kept(z, With(0, 0.5f, 0, 0)), (std::vector<bool>{true, true, false, false}));
  EXPECT_EQ(Kept(z, With(0, 0.51f, 0, 0)), (std::vector<bool>{true, true, true, false}));
}

TEST(LogitsFilters, MinPOneKeepsOnlyTheMaximum) {
  const std::vector<float> z = {1.0f, 3.0f, 2.9999f, 3.0f};
  EXPECT_EQ(Kept(z, With(1.0f, 1, 0, 0)), (std::vector<bool>{false, true, false, true}));
}

TEST(LogitsFilters, MinusInfinityNeverSurvives) {
  const float ninf = -std::numeric_limits<float>::infinity();
  const std::vector<float> z = {ninf, 0.0f, ninf, -1.0f};
  EXPECT_EQ(Kept(z, SamplingParams{}), (std::vector<bool>{false, true, false, true}));
  EXPECT_EQ(Kept(z, With(0, 1, 3, 0)), (std::vector<bool>{false, true, false, true}));
  EXPECT_EQ(Kept(z, With(0, 0.999f, 0, 1e-3f)), (std::vector<bool>{false, true, false, true}));
}

// ---- penalty and temperature ----------------------------------------------------------------

struct Scored {
  std::vector<float> z;
  ScoreStats stats;
};

Scored Score(const std::vector<float>& logits, std::vector<int32_t> window, float penalty,
             float temperature, int64_t begin = 0) {
  Scored out;
  out.z.resize(logits.size());
  std::vector<uint64_t> seen((logits.size() + 63) / 64, 0);
  out.stats = ScoreRange(logits, begin, window, penalty, temperature, out.z, seen);
  for (uint64_t word : seen) EXPECT_EQ(word, 0u) << "seen bits must be cleared";
  return out;
}

TEST(ScoreRange, PenalisesEachDistinctTokenOnce) {
  const std::vector<float> logits = {2.0f, -1.0f, 0.0f, 4.0f, 1.0f};
  const Scored s = Score(logits, {0, 0, 0, 1, 1, 2, 3, 0}, 2.0f, 1.0f);
  EXPECT_EQ(s.z, (std::vector<float>{1.0f, -2.0f, 0.0f, 2.0f, 1.0f}));
  EXPECT_EQ(s.stats.max, 2.0f);
  EXPECT_EQ(s.stats.argmax, 3);
}

TEST(ScoreRange, AppliesPenaltyBeforeTemperature) {
  const std::vector<float> logits = {3.0f, -3.0f, 1.5f};
  const Scored s = Score(logits, {0, 1}, 1.2f, 0.7f);
  EXPECT_EQ(s.z[0], (3.0f / 1.2f) / 0.7f);
  EXPECT_EQ(s.z[1], (-3.0f * 1.2f) / 0.7f);
  EXPECT_EQ(s.z[2], 1.5f / 0.7f);
}

TEST(ScoreRange, SkipsWindowTokensOutsideItsRange) {
  // A shard owning ids [10, 13): token 3 and 42 belong to other shards.
  const std::vector<float> logits = {2.0f, 2.0f, 2.0f};
  const Scored s = Score(logits, {3, 11, 42, 11}, 2.0f, 1.0f, /*begin=*/10);
  EXPECT_EQ(s.z, (std::vector<float>{2.0f, 1.0f, 2.0f}));
  EXPECT_EQ(s.stats.argmax, 10);
}

TEST(ScoreRange, SanitisesNaNAndInfinity) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float inf = std::numeric_limits<float>::infinity();
  const Scored s = Score({nan, 1.0f, inf, -inf}, {}, 1.0f, 1.0f);
  EXPECT_EQ(s.z[0], -inf);
  EXPECT_EQ(s.z[2], std::numeric_limits<float>::max());
  EXPECT_EQ(s.z[3], -inf);
  EXPECT_EQ(s.stats.argmax, 2);
}

TEST(ScoreRange, ArgmaxTiesGoToTheLowestId) {
  const Scored s = Score({0.0f, 5.0f, 1.0f, 5.0f}, {}, 1.0f, 1.0f);
  EXPECT_EQ(s.stats.argmax, 1);
}

}  // namespace
}  // namespace ts
