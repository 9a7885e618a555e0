#include "runtime/sampling/sampler.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <set>
#include <vector>

#include "runtime/sampling/gumbel.h"

namespace ts {
namespace {

Sampler MakeSampler(const SamplingParams& params, int64_t vocab) {
  StatusOr<Sampler> s = Sampler::Create(params, vocab);
  EXPECT_TRUE(s.ok()) << s.status();
  return *std::move(s);
}

SamplingParams Sampled(uint64_t seed, float temperature = 1.0f) {
  SamplingParams p;
  p.seed = seed;
  p.temperature = temperature;
  return p;
}

std::vector<float> RandomLogits(uint32_t seed, int64_t n, float scale) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> l(n);
  for (float& x : l) x = normal(rng);
  return l;
}

TEST(SamplerCreate, RejectsBadParamsAndVocab) {
  SamplingParams p;
  p.top_p = 2.0f;
  EXPECT_EQ(Sampler::Create(p, 10).status().message(),
            "--top-p: expected a value in (0, 1], got 2");
  EXPECT_FALSE(Sampler::Create(SamplingParams{}, 0).ok());
}

// ---- greedy -------------------------------------------------------------------------------------

TEST(SamplerGreedy, TakesTheLowestIdAmongTiedMaxima) {
  SamplingParams p = Sampled(1, 0.0f);
  Sampler s = MakeSampler(p, 8);
  const std::vector<float> l = {0.0f, 1.0f, 0.5f, 3.0f, -1.0f, 2.0f, 0.0f, 3.0f};
  for (int64_t pos : {0, 1, 77}) EXPECT_EQ(s.Sample(l.data(), 8, {}, pos), 3);
}

TEST(SamplerGreedy, AppliesPenaltyOncePerDistinctToken) {
  // Token 0: 2.0 -> 2.0 / 1.2 = 1.67 once (still beats token 1's 1.5); thrice would be 1.16.
  SamplingParams p = Sampled(1, 0.0f);
  p.penalty = 1.2f;
  Sampler s = MakeSampler(p, 3);
  const std::vector<float> l = {2.0f, 1.5f, -5.0f};
  const std::vector<int32_t> once = {0};
  const std::vector<int32_t> thrice = {0, 2, 0, 0};
  EXPECT_EQ(s.Sample(l.data(), 3, once, 5), 0);
  EXPECT_EQ(s.Sample(l.data(), 3, thrice, 5), 0);
  p.penalty = 1.5f;  // 2.0 / 1.5 = 1.33 < 1.5
  Sampler s2 = MakeSampler(p, 3);
  EXPECT_EQ(s2.Sample(l.data(), 3, thrice, 5), 1);
}

TEST(SamplerGreedy, PenalisesOnlyTheLastPenaltyWindowTokens) {
  SamplingParams p = Sampled(1, 0.0f);
  p.penalty = 2.0f;
  p.penalty_window = 2;
  Sampler s = MakeSampler(p, 3);
  const std::vector<float> l = {2.0f, 1.5f, 0.0f};
  const std::vector<int32_t> old_zero = {0, 2, 2};  // token 0 is outside the last 2
  const std::vector<int32_t> new_zero = {2, 2, 0};
  EXPECT_EQ(s.Sample(l.data(), 3, old_zero, 3), 0);
  EXPECT_EQ(s.Sample(l.data(), 3, new_zero, 3), 1);
}

TEST(SamplerGreedy, NeverPicksNaN) {
  Sampler s = MakeSampler(Sampled(1, 0.0f), 3);
  const std::vector<float> l = {std::nanf(""), -1.0f, -2.0f};
  EXPECT_EQ(s.Sample(l.data(), 3, {}, 0), 1);
  Sampler t = MakeSampler(Sampled(1), 3);
  for (int64_t pos = 0; pos < 100; ++pos) EXPECT_NE(t.Sample(l.data(), 3, {}, pos), 0);
}

// ---- determinism --------------------------------------------------------------------------------

TEST(SamplerDeterminism, SameSeedAndPositionGiveTheSameToken) {
  constexpr int64_t kVocab = 5000;
  const std::vector<float> l = RandomLogits(3, kVocab, 2.0f);
  SamplingParams p = Sampled(1234, 0.9f);
  p.min_p = 0.02f;
  p.top_p = 0.95f;
  p.penalty = 1.2f;
  const std::vector<int32_t> window = {1, 2, 3, 4000, 17};
  Sampler a = MakeSampler(p, kVocab);
  std::vector<int32_t> first;
  for (int64_t pos = 0; pos < 64; ++pos) first.push_back(a.Sample(l.data(), kVocab, window, pos));
  // A fresh sampler, positions visited backwards with other work interleaved: same tokens.
  Sampler b = MakeSampler(p, kVocab);
  for (int64_t pos = 63; pos >= 0; --pos) {
    b.Sample(l.data(), kVocab, {}, pos + 1000);
    EXPECT_EQ(b.Sample(l.data(), kVocab, window, pos), first[pos]) << pos;
  }
}

TEST(SamplerDeterminism, DifferentPositionsAndSeedsAreDifferentDraws) {
  constexpr int64_t kVocab = 1000;
  const std::vector<float> flat(kVocab, 0.0f);
  Sampler a = MakeSampler(Sampled(1), kVocab);
  Sampler b = MakeSampler(Sampled(2), kVocab);
  std::set<int32_t> distinct;
  int same_across_seeds = 0;
  for (int64_t pos = 0; pos < 200; ++pos) {
    const int32_t t = a.Sample(flat.data(), kVocab, {}, pos);
    distinct.insert(t);
    same_across_seeds += t == b.Sample(flat.data(), kVocab, {}, pos);
  }
  // Uniform over 1000: ~181 distinct of 200 expected, ~0.2 coincidences across seeds.
  EXPECT_GT(distinct.size(), 160u);
  EXPECT_LE(same_across_seeds, 3);
}

TEST(SamplerDeterminism, VocabShardsReduceToTheSameToken) {
  // DESIGN.md 2: each shard takes the Gumbel-max of its range; one reduction picks the token.
  constexpr int64_t kVocab = 3001;
  const std::vector<float> l = RandomLogits(5, kVocab, 3.0f);
  SamplingParams p = Sampled(99, 0.8f);
  p.min_p = 0.01f;
  p.top_k = 200;
  Sampler s = MakeSampler(p, kVocab);
  std::vector<float> z(kVocab);
  std::vector<uint64_t> seen((kVocab + 63) / 64);
  std::vector<ScoredToken> scratch(kVocab);
  const ScoreStats st = ScoreRange(l, 0, {}, 1.0f, p.temperature, z, seen);
  const Cutoff cut = ComputeCutoff(p, z, st.max, scratch);
  for (int64_t pos = 0; pos < 50; ++pos) {
    Candidate reduced;
    const int64_t bounds[] = {0, 333, 334, 1777, kVocab};
    for (int r = 0; r + 1 < 5; ++r) {
      const std::span<const float> shard(z.data() + bounds[r], bounds[r + 1] - bounds[r]);
      reduced = Better(reduced, GumbelMaxRange(shard, bounds[r], cut, p.seed, pos, /*hint=*/-1));
    }
    EXPECT_EQ(reduced.index, s.Sample(l.data(), kVocab, {}, pos)) << pos;
    // The hint only speeds things up.
    EXPECT_EQ(GumbelMaxRange(z, 0, cut, p.seed, pos, 2999).index, reduced.index);
  }
}

// ---- statistics ---------------------------------------------------------------------------------

// Pearson chi-square of token counts over `draws` positions against `probs`; tokens with
// probability 0 must never be drawn. Bins with expected count < 5 are pooled.
double ChiSquare(Sampler& s, const std::vector<float>& l, const std::vector<double>& probs,
                 int draws) {
  std::vector<int> counts(l.size(), 0);
  for (int pos = 0; pos < draws; ++pos) ++counts[s.Sample(l.data(), l.size(), {}, pos)];
  double chi = 0.0, pooled_expected = 0.0, pooled_observed = 0.0;
  for (size_t i = 0; i < l.size(); ++i) {
    const double expected = probs[i] * draws;
    if (probs[i] == 0.0) {
      EXPECT_EQ(counts[i], 0) << "filtered token " << i << " was drawn";
    } else if (expected < 5.0) {
      pooled_expected += expected;
      pooled_observed += counts[i];
    } else {
      chi += (counts[i] - expected) * (counts[i] - expected) / expected;
    }
  }
  if (pooled_expected > 0.0) {
    chi +=
        (pooled_observed - pooled_expected) * (pooled_observed - pooled_expected) / pooled_expected;
  }
  return chi;
}

std::vector<double> SoftmaxOver(const std::vector<float>& l, float temperature,
                                const std::vector<bool>& kept) {
  std::vector<double> p(l.size(), 0.0);
  double sum = 0.0;
  for (size_t i = 0; i < l.size(); ++i) {
    if (kept[i]) sum += p[i] = std::exp(static_cast<double>(l[i]) / temperature);
  }
  for (double& x : p) x /= sum;
  return p;
}

TEST(SamplerStatistics, FrequenciesMatchSoftmax) {
  const std::vector<float> l = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -3.0f};
  Sampler s = MakeSampler(Sampled(7, 0.8f), 6);
  const std::vector<double> probs = SoftmaxOver(l, 0.8f, std::vector<bool>(6, true));
  // 6 bins, 5 degrees of freedom: P(chi2 > 30) ~ 1e-5.
  EXPECT_LT(ChiSquare(s, l, probs, 40000), 30.0);
}

TEST(SamplerStatistics, FrequenciesMatchSoftmaxOnALargerVocabulary) {
  const std::vector<float> l = RandomLogits(11, 64, 1.5f);
  Sampler s = MakeSampler(Sampled(8, 1.3f), 64);
  const std::vector<double> probs = SoftmaxOver(l, 1.3f, std::vector<bool>(64, true));
  // <= 63 degrees of freedom: mean 63, sd ~11; 120 is ~5 sd out.
  EXPECT_LT(ChiSquare(s, l, probs, 60000), 120.0);
}

TEST(SamplerStatistics, FrequenciesMatchTheRenormalisedFilteredDistribution) {
  const std::vector<float> l = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -3.0f, 1.9f, 0.7f};
  SamplingParams p = Sampled(9, 1.0f);
  p.min_p = 0.2f;  // keeps p >= 0.2 * p_max: ids 0, 1, 4, 6, 7 (e^-1.5 = 0.22 > 0.2)
  p.top_k = 4;     // then drops id 1 (0.5)
  Sampler s = MakeSampler(p, 8);
  const std::vector<bool> kept = {true, false, false, false, true, false, true, true};
  EXPECT_LT(ChiSquare(s, l, SoftmaxOver(l, 1.0f, kept), 40000), 25.0);
}

// ---- speed
// ----------------------------------------------------------------------------------------

// Run with --gtest_also_run_disabled_tests --gtest_filter='*Perf*'.
TEST(SamplerPerf, DISABLED_MicrosecondsPerCallAtVocab49152) {
  constexpr int64_t kVocab = 49152;
  const std::vector<float> l = RandomLogits(1, kVocab, 3.0f);
  std::vector<int32_t> window(1024);
  std::mt19937 rng(2);
  for (int32_t& t : window) t = std::uniform_int_distribution<int32_t>(0, kVocab - 1)(rng);

  struct Config {
    const char* name;
    SamplingParams params;
  };
  SamplingParams greedy = Sampled(1, 0.0f);
  SamplingParams tokenswift = Sampled(1, 1.0f);
  tokenswift.min_p = 0.1f;
  tokenswift.penalty = 1.2f;
  tokenswift.penalty_window = 1024;
  SamplingParams plain = Sampled(1, 1.0f);
  SamplingParams top_p = Sampled(1, 1.0f);
  top_p.top_p = 0.9f;
  const Config configs[] = {{"greedy", greedy},
                            {"temp 1, min-p 0.1, penalty 1.2, window 1024", tokenswift},
                            {"temp 1, no filters", plain},
                            {"temp 1, top-p 0.9 (no min-p)", top_p}};
  for (const Config& c : configs) {
    Sampler s = MakeSampler(c.params, kVocab);
    const std::span<const int32_t> w =
        c.params.penalty != 1.0f ? std::span<const int32_t>(window) : std::span<const int32_t>();
    int64_t sink = 0;
    for (int pos = 0; pos < 20; ++pos) sink += s.Sample(l.data(), kVocab, w, pos);
    constexpr int kCalls = 300;
    const auto start = std::chrono::steady_clock::now();
    for (int pos = 0; pos < kCalls; ++pos) sink += s.Sample(l.data(), kVocab, w, pos);
    const double us =
        std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - start)
            .count() /
        kCalls;
    std::printf("%-48s %9.1f us/call (checksum %lld)\n", c.name, us, static_cast<long long>(sink));
  }
}

// ---- Candidates: draft lists ranked with the target's noise
// ---------------------------------------

// Straightforward reference: every token's processed score (penalty none, z = l / T), survivors of
// min-p by the documented test z_i >= z_max + ln(min_p), ranked by z + G; then the rest by z.
std::vector<int32_t> ReferenceCandidates(const std::vector<float>& l, float temperature,
                                         float min_p, uint64_t seed, int64_t position, int k) {
  const int64_t n = static_cast<int64_t>(l.size());
  std::vector<double> z(n);
  for (int64_t i = 0; i < n; ++i) z[i] = static_cast<double>(l[i] / temperature);
  const double z_max = *std::max_element(z.begin(), z.end());
  struct E {
    int group;
    double v;
    int32_t id;
  };
  std::vector<E> all;
  for (int64_t i = 0; i < n; ++i) {
    const float zf = static_cast<float>(z[i]);
    const bool keep = min_p <= 0 || zf >= z_max + std::log(static_cast<double>(min_p));
    all.push_back(keep ? E{0, zf + GumbelNoise(seed, position, static_cast<uint32_t>(i)),
                           static_cast<int32_t>(i)}
                       : E{1, zf, static_cast<int32_t>(i)});
  }
  std::sort(all.begin(), all.end(), [](const E& a, const E& b) {
    if (a.group != b.group) return a.group < b.group;
    if (a.v != b.v) return a.v > b.v;
    return a.id < b.id;
  });
  std::vector<int32_t> out;
  for (int i = 0; i < k && i < n; ++i) out.push_back(all[i].id);
  return out;
}

TEST(SamplerCandidates, MatchesTheReferenceAndPutsTheSampleFirst) {
  std::vector<int32_t> got;
  for (float min_p : {0.0f, 0.1f, 0.5f}) {
    for (float temperature : {0.7f, 1.0f}) {
      SamplingParams p = Sampled(42, temperature);
      p.min_p = min_p;
      Sampler s = MakeSampler(p, 3000);
      for (int trial = 0; trial < 20; ++trial) {
        const std::vector<float> l = RandomLogits(100 + trial, 3000, 2.0f);
        const int64_t position = 1000 + 37 * trial;
        s.Candidates(l.data(), 3000, {}, position, 12, got);
        EXPECT_EQ(got, ReferenceCandidates(l, temperature, min_p, 42, position, 12))
            << "min_p " << min_p << " T " << temperature << " trial " << trial;
        ASSERT_FALSE(got.empty());
        EXPECT_EQ(got[0], s.Sample(l.data(), 3000, {}, position));
      }
    }
  }
}

TEST(SamplerCandidates, GreedyRanksByPenalisedLogit) {
  SamplingParams p = Sampled(1, 0.0f);
  p.penalty = 2.0f;
  Sampler s = MakeSampler(p, 6);
  const std::vector<float> l = {3.0f, 1.0f, 2.5f, 2.5f, -1.0f, 0.5f};
  const std::vector<int32_t> window = {0, 4};  // 3.0 -> 1.5, -1.0 -> -2.0
  std::vector<int32_t> got;
  s.Candidates(l.data(), 6, window, 9, 6, got);
  EXPECT_EQ(got, (std::vector<int32_t>{2, 3, 0, 1, 5, 4}));
  EXPECT_EQ(got[0], s.Sample(l.data(), 6, window, 9));
  s.Candidates(l.data(), 6, window, 9, 2, got);
  EXPECT_EQ(got, (std::vector<int32_t>{2, 3}));
}

// The reason for the noise: a draft row that is a perturbed copy of the target row proposes the
// target's sample far more often with the target's noise than by its own argmax.
TEST(SamplerCandidates, CouplesANearbyDraftWithTheTargetSample) {
  const int64_t vocab = 64;
  SamplingParams p = Sampled(7, 1.0f);
  Sampler s = MakeSampler(p, vocab);
  std::mt19937 rng(5);
  std::normal_distribution<float> small(0.0f, 0.05f);
  int coupled = 0, argmax = 0;
  const int trials = 2000;
  std::vector<int32_t> got;
  for (int t = 0; t < trials; ++t) {
    std::vector<float> target = RandomLogits(t, vocab, 0.5f);  // a flat target distribution
    std::vector<float> draft = target;
    for (float& x : draft) x += small(rng);
    const int32_t want = s.Sample(target.data(), vocab, {}, t);
    s.Candidates(draft.data(), vocab, {}, t, 1, got);
    coupled += got[0] == want;
    argmax +=
        static_cast<int32_t>(std::max_element(draft.begin(), draft.end()) - draft.begin()) == want;
  }
  EXPECT_GT(coupled, trials * 9 / 10);
  EXPECT_LT(argmax, trials / 4);
}

}  // namespace
}  // namespace ts
