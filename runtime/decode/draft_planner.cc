#include "runtime/decode/draft_planner.h"

#include <algorithm>
#include <cstdio>

namespace ts {
namespace {

// Priors (pseudo-observations) before any evidence: moderately optimistic, so that speculation is
// tried and measured rather than ruled out.
constexpr double kPriorTrials = 4.0;
constexpr double kModelPrior[] = {0.6, 0.12, 0.05, 0.03, 0.02, 0.01, 0.01, 0.01};
constexpr double kHeadPrior[] = {0.35, 0.1, 0.05, 0.03, 0.02, 0.01, 0.01, 0.01};
constexpr double kNgramPrior = 0.3;
constexpr double kCostEma = 0.1;         // weight of a new observation in a cost average
constexpr double kAcceptedDecay = 0.98;  // per speculative step, on the realized/predicted sums

}  // namespace

const char* DraftKindName(DraftKind kind) {
  switch (kind) {
    case DraftKind::kAr:
      return "ar";
    case DraftKind::kFused:
      return "fused";
    case DraftKind::kSeparate:
      return "separate";
  }
  return "?";
}

DraftPlanner::DraftPlanner(const DraftPlannerOptions& options) : options_(options) {
  options_.max_nodes = std::max(options_.max_nodes, 1);
  options_.list_k = std::clamp(options_.list_k, 1, 8);
  options_.num_heads = std::max(options_.num_heads, 0);
  options_.ngram_topk = std::max(options_.ngram_topk, 0);
  options_.ngram_depth = std::max(options_.ngram_depth, 1);
  num_sources_ = 1 + options_.num_heads;
  const int k = options_.list_k;
  rank_hits_.assign(num_sources_ * k, 0.0);
  rank_trials_.assign(num_sources_, kPriorTrials);
  for (int s = 0; s < num_sources_; ++s) {
    for (int r = 0; r < k; ++r) {
      rank_hits_[s * k + r] = kPriorTrials * (s == kModelSource ? kModelPrior[r] : kHeadPrior[r]);
    }
  }
  const int nb = options_.ngram_topk * options_.ngram_depth;
  ngram_hits_.assign(nb, kPriorTrials * kNgramPrior);
  ngram_trials_.assign(nb, kPriorTrials);
  verify_cost_.assign(options_.max_nodes + 1, 0.0);
  calibrated_.assign(options_.max_nodes + 1, false);
  heap_.reserve(static_cast<size_t>(options_.max_nodes) * (k + 1) + options_.ngram_topk + 1);
  best_.resize(options_.max_nodes);
}

int DraftPlanner::SourceOfDepth(DraftKind kind, int depth) const {
  if (depth < 1) return -1;
  if (kind == DraftKind::kFused) return depth <= options_.num_heads ? depth : -1;
  if (kind == DraftKind::kSeparate) {
    if (depth == 1) return kModelSource;
    return depth - 1 <= options_.num_heads ? depth - 1 : -1;
  }
  return -1;
}

int DraftPlanner::HeadDepth(DraftKind kind) const {
  switch (kind) {
    case DraftKind::kFused:
      return options_.num_heads;
    case DraftKind::kSeparate:
      return options_.num_heads + 1;
    case DraftKind::kAr:
      return 0;
  }
  return 0;
}

void DraftPlanner::RecordRank(int source, int rank) {
  if (source < 0 || source >= num_sources_) return;
  const int k = options_.list_k;
  double* hits = rank_hits_.data() + source * k;
  for (int r = 0; r < k; ++r) hits[r] *= options_.decay;
  rank_trials_[source] = rank_trials_[source] * options_.decay + 1.0;
  if (rank >= 0 && rank < k) hits[rank] += 1.0;
}

void DraftPlanner::RecordNgram(int branch, int depth, bool hit) {
  if (branch < 0 || branch >= options_.ngram_topk || depth < 1 || depth > options_.ngram_depth) {
    return;
  }
  const int i = branch * options_.ngram_depth + depth - 1;
  ngram_hits_[i] = ngram_hits_[i] * options_.decay + (hit ? 1.0 : 0.0);
  ngram_trials_[i] = ngram_trials_[i] * options_.decay + 1.0;
}

double DraftPlanner::RankProb(int source, int rank) const {
  if (source < 0 || source >= num_sources_ || rank < 0 || rank >= options_.list_k) return 0.0;
  return rank_hits_[source * options_.list_k + rank] / rank_trials_[source];
}

double DraftPlanner::NgramProb(int branch, int depth) const {
  if (branch < 0 || branch >= options_.ngram_topk || depth < 1 || depth > options_.ngram_depth) {
    return 0.0;
  }
  const int i = branch * options_.ngram_depth + depth - 1;
  return ngram_hits_[i] / ngram_trials_[i];
}

void DraftPlanner::SetVerifyCost(int rows, double seconds) {
  if (rows < 1 || rows > options_.max_nodes) return;
  verify_cost_[rows] = seconds;
  calibrated_[rows] = true;
}

void DraftPlanner::FinishCalibration() {
  // Linear interpolation between calibrated points; flat beyond the last one, extrapolated by the
  // last slope past it.
  int prev = -1;
  for (int t = 1; t <= options_.max_nodes; ++t) {
    if (!calibrated_[t]) continue;
    if (prev < 0) {
      for (int u = 1; u < t; ++u) verify_cost_[u] = verify_cost_[t];
    } else {
      for (int u = prev + 1; u < t; ++u) {
        const double a = static_cast<double>(u - prev) / (t - prev);
        verify_cost_[u] = verify_cost_[prev] + a * (verify_cost_[t] - verify_cost_[prev]);
      }
    }
    prev = t;
  }
  if (prev < 0) return;
  int before = -1;
  for (int t = prev - 1; t >= 1; --t) {
    if (calibrated_[t]) {
      before = t;
      break;
    }
  }
  const double slope =
      before > 0 ? (verify_cost_[prev] - verify_cost_[before]) / (prev - before) : 0.0;
  for (int u = prev + 1; u <= options_.max_nodes; ++u) {
    verify_cost_[u] = verify_cost_[prev] + slope * (u - prev);
  }
}

void DraftPlanner::ObserveVerify(int rows, double seconds) {
  if (rows < 1 || rows > options_.max_nodes) return;
  double& c = verify_cost_[rows];
  const double old = c;
  c = old > 0 ? (1 - kCostEma) * old + kCostEma * seconds : seconds;
  // Context growth and machine load move every size alike: carry a damped share of this
  // observation's relative change to the other sizes, so sizes not visited lately do not go
  // stale (each is also corrected directly when it is chosen).
  if (old > 0) {
    const double ratio = c / old;
    const double factor = 1.0 + 0.5 * (ratio - 1.0);
    for (int t = 1; t <= options_.max_nodes; ++t) {
      if (t != rows) verify_cost_[t] *= factor;
    }
  }
}

void DraftPlanner::ObserveHeads(double seconds) {
  heads_cost_ = heads_cost_ > 0 ? (1 - kCostEma) * heads_cost_ + kCostEma * seconds : seconds;
}

void DraftPlanner::ObserveDraft(double seconds) {
  draft_cost_ = draft_cost_ > 0 ? (1 - kCostEma) * draft_cost_ + kCostEma * seconds : seconds;
}

void DraftPlanner::ObserveAccepted(const StepPlan& plan, int accepted) {
  if (plan.kind == DraftKind::kAr) return;
  realized_accepted_ = realized_accepted_ * kAcceptedDecay + std::max(accepted, 0);
  predicted_accepted_ = predicted_accepted_ * kAcceptedDecay + std::max(plan.raw_accepted, 0.0);
  // Keep both sums away from 0 so the ratio stays defined after a long dry spell.
  realized_accepted_ = std::max(realized_accepted_, 1e-3);
  predicted_accepted_ = std::max(predicted_accepted_, 1e-3);
}

int DraftPlanner::EnumerateNodes(DraftKind kind, int ngram_branches) {
  const int limit = options_.max_nodes - 1;
  if (kind == DraftKind::kAr || limit <= 0) return 0;
  const int head_depth = HeadDepth(kind);
  const int k = options_.list_k;
  heap_.clear();
  auto push = [&](double p, int depth, int branch) {
    if (p <= 0.0) return;
    heap_.push_back({p, depth, branch});
    std::push_heap(heap_.begin(), heap_.end());
  };
  if (head_depth >= 1) {
    const int src = SourceOfDepth(kind, 1);
    for (int r = 0; r < k; ++r) push(RankProb(src, r), 1, -1);
  }
  const int branches = std::min(ngram_branches, options_.ngram_topk);
  for (int b = 0; b < branches; ++b) push(NgramProb(b, 1), 1, b);
  int n = 0;
  while (n < limit && !heap_.empty()) {
    std::pop_heap(heap_.begin(), heap_.end());
    const Candidate c = heap_.back();
    heap_.pop_back();
    best_[n++] = c.prob;
    if (c.branch >= 0) {
      if (c.depth < options_.ngram_depth) {
        push(c.prob * NgramProb(c.branch, c.depth + 1), c.depth + 1, c.branch);
      }
    } else if (c.depth < head_depth) {
      const int src = SourceOfDepth(kind, c.depth + 1);
      for (int r = 0; r < k; ++r) push(c.prob * RankProb(src, r), c.depth + 1, -1);
    }
  }
  return n;
}

double DraftPlanner::ExpectedTokens(DraftKind kind, int rows, int ngram_branches) {
  const int n = std::min(EnumerateNodes(kind, ngram_branches), rows - 1);
  double e = 0.0;
  for (int i = 0; i < n; ++i) e += best_[i];
  return 1.0 + e * acceptance_scale();
}

void DraftPlanner::Consider(DraftKind kind, int ngram_branches, StepPlan& best) {
  const int n = EnumerateNodes(kind, ngram_branches);
  const double overhead = kind == DraftKind::kFused ? heads_cost_ : draft_cost_;
  const double scale = acceptance_scale();
  double raw = 0.0;  // predicted accepted drafts, before the realized/predicted scale
  auto consider_rows = [&](int rows) {
    const double e = 1.0 + raw * scale;
    const double seconds = verify_cost_[rows] + overhead;
    if (seconds <= 0) {
      // Nothing measured yet (no calibration): a forced size speculates anyway, and its steps
      // teach the planner their cost.
      if (options_.fixed_nodes > 0 && best.kind == DraftKind::kAr) {
        best = {kind, rows, e, 0, false, raw};
      }
      return;
    }
    const double rate = e / seconds;
    const double best_rate =
        best.expected_seconds > 0 ? best.expected_tokens / best.expected_seconds : -1.0;
    if (rate > best_rate) best = {kind, rows, e, seconds, false, raw};
  };
  if (options_.fixed_nodes > 0) {
    const int rows = std::min(options_.fixed_nodes, options_.max_nodes);
    for (int i = 0; i < std::min(n, rows - 1); ++i) raw += best_[i];
    consider_rows(rows);
    return;
  }
  for (int rows = 2; rows <= n + 1; ++rows) {
    raw += best_[rows - 2];
    consider_rows(rows);
  }
}

StepPlan DraftPlanner::Plan(int ngram_branches, bool fused_ready) {
  StepPlan ar{DraftKind::kAr, 1, 1.0, verify_cost_[1], false};
  StepPlan spec{DraftKind::kAr, 1, 0.0, 0.0, false};  // best speculative plan
  const bool can_fuse = fused_ready && options_.num_heads > 0;
  switch (options_.mode) {
    case DraftingMode::kAuto:
      if (can_fuse) Consider(DraftKind::kFused, ngram_branches, spec);
      Consider(DraftKind::kSeparate, ngram_branches, spec);
      break;
    case DraftingMode::kFused:
      if (can_fuse) Consider(DraftKind::kFused, ngram_branches, spec);
      break;
    case DraftingMode::kSeparate:
      Consider(DraftKind::kSeparate, ngram_branches, spec);
      break;
  }
  if (spec.kind == DraftKind::kAr) {  // nothing to speculate with (first fused step)
    last_ = ar;
    return last_;
  }
  const bool ar_allowed = options_.mode == DraftingMode::kAuto && options_.ar_fallback &&
                          options_.fixed_nodes == 0 && ar.expected_seconds > 0;
  const bool ar_faster =
      ar_allowed && ar.expected_tokens / ar.expected_seconds * (1.0 + options_.switch_margin) >=
                        spec.expected_tokens / spec.expected_seconds;
  if (probe_interval_ == 0) probe_interval_ = options_.probe_every;
  if (ar_faster && ++steps_since_speculation_ < probe_interval_) {
    last_ar_alternative_ = spec;
    last_ = ar;
    return last_;
  }
  spec.probe = ar_faster;
  steps_since_speculation_ = 0;
  probe_interval_ = ar_faster
                        ? std::min<int64_t>(2 * probe_interval_,
                                            std::max(options_.probe_max, options_.probe_every))
                        : options_.probe_every;
  last_ = spec;
  return last_;
}

std::string DraftPlanner::Describe() const {
  char buf[384];
  const StepPlan& p = last_.kind == DraftKind::kAr ? last_ar_alternative_ : last_;
  const double spec_rate = p.expected_seconds > 0 ? p.expected_tokens / p.expected_seconds : 0.0;
  std::snprintf(buf, sizeof(buf),
                "%s%s: best speculation %s with %d rows, expected %.2f tokens per %.2f ms "
                "(%.0f tok/s) vs AR %.0f tok/s; head-0 top-1 rate %.2f, model top-1 rate %.2f, "
                "realized/predicted accepted %.2f, heads %.2f ms, draft pass %.2f ms",
                DraftKindName(last_.kind), last_.probe ? " (probe)" : "", DraftKindName(p.kind),
                p.nodes, p.expected_tokens, p.expected_seconds * 1e3, spec_rate, ar_rate(),
                RankProb(1, 0), RankProb(kModelSource, 0), acceptance_scale(), heads_cost_ * 1e3,
                draft_cost_ * 1e3);
  return buf;
}

}  // namespace ts
