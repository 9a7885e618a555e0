// DraftPlanner: expected tokens against a brute-force enumeration of every tree node, the choice
// between AR, fused and separate drafting from given costs, probing, and the statistics' decay.
#include "runtime/decode/draft_planner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <vector>

namespace ts {
namespace {

DraftPlannerOptions SmallOptions() {
  DraftPlannerOptions o;
  o.max_nodes = 32;
  o.list_k = 3;
  o.num_heads = 3;
  o.ngram_topk = 2;
  o.ngram_depth = 4;
  o.decay = 1.0;  // plain frequencies
  return o;
}

// Feeds `trials` observations to `source` with the given per-rank hit rates.
void Teach(DraftPlanner& planner, int source, const std::vector<double>& rates, int trials) {
  for (int t = 0; t < trials; ++t) {
    // Deterministic: observation t is a hit at rank r for the first rates[0..r] share of trials.
    const double u = (t + 0.5) / trials;
    double acc = 0;
    int rank = -1;
    for (size_t r = 0; r < rates.size(); ++r) {
      acc += rates[r];
      if (u < acc) {
        rank = static_cast<int>(r);
        break;
      }
    }
    planner.RecordRank(source, rank);
  }
}

// Every node of the fused (or separate) head tree and every n-gram node, with its path probability,
// enumerated exhaustively; the expected tokens of the best T rows is 1 + the sum of the T - 1
// largest.
double BruteForceExpected(const DraftPlanner& planner, DraftKind kind, int rows, int branches) {
  std::vector<double> probs;
  const int depth_max = planner.HeadDepth(kind);
  const int k = planner.options().list_k;
  std::function<void(int, double)> walk = [&](int depth, double p) {
    if (depth > depth_max) return;
    const int src = planner.SourceOfDepth(kind, depth);
    for (int r = 0; r < k; ++r) {
      const double q = p * planner.RankProb(src, r);
      if (q <= 0) continue;
      probs.push_back(q);
      walk(depth + 1, q);
    }
  };
  walk(1, 1.0);
  for (int b = 0; b < branches; ++b) {
    double p = 1.0;
    for (int d = 1; d <= planner.options().ngram_depth; ++d) {
      p *= planner.NgramProb(b, d);
      if (p > 0) probs.push_back(p);
    }
  }
  std::sort(probs.rbegin(), probs.rend());
  double e = 1.0;
  for (int i = 0; i < rows - 1 && i < static_cast<int>(probs.size()); ++i) e += probs[i];
  return e;
}

TEST(DraftPlanner, ExpectedTokensEqualBruteForce) {
  DraftPlanner planner(SmallOptions());
  Teach(planner, DraftPlanner::kModelSource, {0.7, 0.15, 0.05}, 200);
  Teach(planner, 1, {0.5, 0.2, 0.1}, 200);
  Teach(planner, 2, {0.35, 0.15, 0.05}, 200);
  Teach(planner, 3, {0.25, 0.1, 0.05}, 200);
  for (int t = 0; t < 100; ++t) {
    planner.RecordNgram(0, 1, t % 3 == 0);
    planner.RecordNgram(0, 2, t % 2 == 0);
    planner.RecordNgram(1, 1, t % 5 == 0);
  }
  for (DraftKind kind : {DraftKind::kFused, DraftKind::kSeparate}) {
    for (int branches : {0, 2}) {
      for (int rows : {1, 2, 3, 5, 8, 13, 32}) {
        EXPECT_NEAR(planner.ExpectedTokens(kind, rows, branches),
                    BruteForceExpected(planner, kind, rows, branches), 1e-9)
            << DraftKindName(kind) << " rows " << rows << " branches " << branches;
      }
    }
  }
}

TEST(DraftPlanner, RankProbIsDecayedFrequency) {
  DraftPlannerOptions o = SmallOptions();
  o.decay = 0.5;
  DraftPlanner planner(o);
  // Priors: 4 trials. After hits at rank 0 then a miss, with decay 0.5 per observation.
  const double prior_hits = planner.RankProb(1, 0) * 4.0;
  planner.RecordRank(1, 0);
  planner.RecordRank(1, -1);
  const double hits = (prior_hits * 0.5 + 1.0) * 0.5;
  const double trials = (4.0 * 0.5 + 1.0) * 0.5 + 1.0;
  EXPECT_NEAR(planner.RankProb(1, 0), hits / trials, 1e-12);
}

// GPU-like costs: rows are nearly free, so the largest useful tree wins over AR.
TEST(DraftPlanner, FlatCostChoosesLargeTree) {
  DraftPlanner planner(SmallOptions());
  Teach(planner, 1, {0.6, 0.2, 0.1}, 100);
  Teach(planner, 2, {0.5, 0.2, 0.1}, 100);
  Teach(planner, 3, {0.4, 0.2, 0.1}, 100);
  for (int t = 1; t <= 32; ++t) planner.SetVerifyCost(t, 0.010 + 0.0001 * t);
  planner.FinishCalibration();
  planner.ObserveHeads(0.001);
  planner.ObserveDraft(0.011);
  const StepPlan plan = planner.Plan(0, /*fused_ready=*/true);
  EXPECT_EQ(plan.kind, DraftKind::kFused);  // the draft pass costs a whole step
  EXPECT_GT(plan.nodes, 10);
  EXPECT_GT(plan.expected_tokens, 2.0);
}

// CPU-like costs where every row costs a whole step: no tree can beat AR.
TEST(DraftPlanner, LinearCostFallsBackToArAndProbes) {
  DraftPlannerOptions o = SmallOptions();
  o.probe_every = 4;
  o.probe_max = 16;
  DraftPlanner planner(o);
  Teach(planner, 1, {0.3, 0.1, 0.05}, 100);
  for (int t = 1; t <= 32; ++t) planner.SetVerifyCost(t, 0.010 * t);
  planner.FinishCalibration();
  planner.ObserveHeads(0.002);
  planner.ObserveDraft(0.012);
  std::vector<int> probe_steps;
  for (int step = 1; step <= 80; ++step) {
    const StepPlan plan = planner.Plan(0, true);
    if (plan.kind == DraftKind::kAr) {
      EXPECT_EQ(plan.nodes, 1);
    } else {
      EXPECT_TRUE(plan.probe);
      probe_steps.push_back(step);
    }
  }
  // Probes back off while AR keeps winning: after 4 plans, then 8, 16 (probe_max), 16, ...
  EXPECT_EQ(probe_steps, (std::vector<int>{4, 12, 28, 44, 60, 76}));
}

// A probe whose evidence makes speculation win resets the interval to probe_every.
TEST(DraftPlanner, ProbeIntervalResetsWhenSpeculationWins) {
  DraftPlannerOptions o = SmallOptions();
  o.probe_every = 2;
  o.probe_max = 64;
  DraftPlanner planner(o);
  Teach(planner, 1, {0.3, 0.1, 0.05}, 100);
  for (int t = 1; t <= 32; ++t) planner.SetVerifyCost(t, 0.010 * t);
  planner.FinishCalibration();
  planner.ObserveHeads(0.002);
  planner.ObserveDraft(0.012);
  std::vector<int> probe_steps;
  int step = 0;
  for (; step < 14; ++step) {
    if (planner.Plan(0, true).kind != DraftKind::kAr) probe_steps.push_back(step + 1);
  }
  EXPECT_EQ(probe_steps, (std::vector<int>{2, 6, 14}));  // intervals 2, 4, 8
  // Rows become nearly free: speculation wins on its merits, not as a probe.
  for (int t = 1; t <= 32; ++t) planner.SetVerifyCost(t, 0.010 + 0.0001 * t);
  planner.FinishCalibration();
  const StepPlan won = planner.Plan(0, true);
  EXPECT_NE(won.kind, DraftKind::kAr);
  EXPECT_FALSE(won.probe);
  // Costs turn linear again: the next probe comes after probe_every AR plans, not 16.
  for (int t = 1; t <= 32; ++t) planner.SetVerifyCost(t, 0.010 * t);
  planner.FinishCalibration();
  EXPECT_EQ(planner.Plan(0, true).kind, DraftKind::kAr);
  const StepPlan probe = planner.Plan(0, true);
  EXPECT_NE(probe.kind, DraftKind::kAr);
  EXPECT_TRUE(probe.probe);
}

TEST(DraftPlanner, SeparateWhenFusedNotReadyOrForced) {
  DraftPlannerOptions o = SmallOptions();
  o.ar_fallback = false;
  DraftPlanner planner(o);
  for (int t = 1; t <= 32; ++t) planner.SetVerifyCost(t, 0.01);
  planner.FinishCalibration();
  planner.ObserveHeads(0.001);
  planner.ObserveDraft(0.002);
  EXPECT_EQ(planner.Plan(0, /*fused_ready=*/false).kind, DraftKind::kSeparate);
  o.mode = DraftingMode::kFused;
  DraftPlanner fused(o);
  EXPECT_EQ(fused.Plan(0, false).kind, DraftKind::kAr);  // nothing to fuse with yet
  fused.SetVerifyCost(1, 0.01);
  fused.FinishCalibration();
  EXPECT_EQ(fused.Plan(0, true).kind, DraftKind::kFused);
}

TEST(DraftPlanner, FixedNodesAreHonoured) {
  DraftPlannerOptions o = SmallOptions();
  o.fixed_nodes = 7;
  o.mode = DraftingMode::kFused;
  DraftPlanner planner(o);
  for (int t = 1; t <= 32; ++t) planner.SetVerifyCost(t, 0.01 * t);  // AR would win
  planner.FinishCalibration();
  const StepPlan plan = planner.Plan(2, true);
  EXPECT_EQ(plan.kind, DraftKind::kFused);
  EXPECT_EQ(plan.nodes, 7);
}

TEST(DraftPlanner, CalibrationInterpolatesBetweenPoints) {
  DraftPlanner planner(SmallOptions());
  planner.SetVerifyCost(1, 1.0);
  planner.SetVerifyCost(5, 3.0);
  planner.SetVerifyCost(9, 4.0);
  planner.FinishCalibration();
  EXPECT_DOUBLE_EQ(planner.VerifyCost(3), 2.0);
  EXPECT_DOUBLE_EQ(planner.VerifyCost(7), 3.5);
  EXPECT_DOUBLE_EQ(planner.VerifyCost(13), 5.0);  // last slope, extrapolated
}

// Rates that promise more than the walks deliver: once the steps report what was accepted, the
// planner scales its predictions down and stops speculating (probes aside).
TEST(DraftPlanner, RealizedAcceptanceCorrectsOptimisticRates) {
  DraftPlannerOptions o = SmallOptions();
  o.probe_every = 1000;  // no probes in this test
  DraftPlanner planner(o);
  Teach(planner, 1, {0.6, 0.1, 0.05}, 100);
  Teach(planner, 2, {0.5, 0.1, 0.05}, 100);
  Teach(planner, 3, {0.4, 0.1, 0.05}, 100);
  // CPU-like: each extra row costs a third of a step.
  for (int t = 1; t <= 32; ++t) planner.SetVerifyCost(t, 0.010 * (1.0 + (t - 1) / 3.0));
  planner.FinishCalibration();
  planner.ObserveHeads(0.0005);
  planner.ObserveDraft(0.012);
  StepPlan plan = planner.Plan(0, /*fused_ready=*/true);
  ASSERT_EQ(plan.kind, DraftKind::kFused);
  EXPECT_NEAR(planner.acceptance_scale(), 1.0, 1e-12);
  // The walks accept nothing, whatever the rates say (the rates are not updated here: this is
  // the bias the independence assumption and stale rates leave).
  int steps = 0;
  while (plan.kind != DraftKind::kAr && steps < 200) {
    planner.ObserveAccepted(plan, 0);
    plan = planner.Plan(0, true);
    ++steps;
  }
  EXPECT_EQ(plan.kind, DraftKind::kAr);
  EXPECT_LT(steps, 60);
  EXPECT_LT(planner.acceptance_scale(), 0.7);
  // Walks that deliver what was predicted bring the scale back to 1 and speculation back.
  StepPlan fused = plan;
  fused.kind = DraftKind::kFused;
  fused.raw_accepted = 1.0;
  for (int i = 0; i < 400; ++i) planner.ObserveAccepted(fused, 1);
  EXPECT_NEAR(planner.acceptance_scale(), 1.0, 0.01);
  EXPECT_EQ(planner.Plan(0, true).kind, DraftKind::kFused);
  // AR plans are not evidence.
  const double before = planner.acceptance_scale();
  planner.ObserveAccepted(StepPlan{}, 0);
  EXPECT_EQ(planner.acceptance_scale(), before);
}

// Near break-even AR keeps the step: speculation must be expected to win by switch_margin.
TEST(DraftPlanner, SwitchMarginHoldsArNearBreakEven) {
  auto plan_with_gain = [](double gain) {
    DraftPlannerOptions o = SmallOptions();
    o.probe_every = 1000;
    o.switch_margin = 0.03;
    o.num_heads = 1;
    o.list_k = 1;
    DraftPlanner planner(o);
    Teach(planner, 1, {0.5}, 100);  // one node, accepted half the time: E = 1.5 at 2 rows
    // AR: 1 token / 10 ms. Two rows: 1.5 tokens / (10 ms * 1.5 / gain) = gain x AR's rate.
    planner.SetVerifyCost(1, 0.010);
    planner.SetVerifyCost(2, 0.010 * 1.5 / gain);
    for (int t = 3; t <= 32; ++t) planner.SetVerifyCost(t, 1.0);
    planner.FinishCalibration();
    planner.ObserveHeads(1e-9);
    planner.ObserveDraft(1.0);  // no separate drafting
    return planner.Plan(0, /*fused_ready=*/true);
  };
  EXPECT_EQ(plan_with_gain(1.02).kind, DraftKind::kAr);
  const StepPlan win = plan_with_gain(1.05);
  EXPECT_EQ(win.kind, DraftKind::kFused);
  EXPECT_EQ(win.nodes, 2);
  EXPECT_FALSE(win.probe);
}

}  // namespace
}  // namespace ts
