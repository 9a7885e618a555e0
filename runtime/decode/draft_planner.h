// DraftPlanner: before every TokenSwift step, decides how to draft and how many tree nodes to
// verify, from the measured cost of a verify pass on this backend and running acceptance
// statistics (issue 3 item 7). Decisions are plain data (StepPlan), so a coordinator rank can
// broadcast them.
//
// Kinds of step:
//   kAr        one row (the root = last committed token): a plain autoregressive step.
//   kFused     Medusa-style: the draft heads were applied to the verified hidden state of the
//              previous step's last accepted node, so no separate draft pass is needed; head i's
//              list serves depth i + 1 (3 heads -> depths 1..3).
//   kSeparate  TokenSwift's draft pass: the root goes through the model (over the partial cache)
//              first; the model's own head serves depth 1 and head i depth i + 2 (depths 1..4),
//              at the cost of one more forward pass per step.
// N-gram branches (the table's continuations of the root token) can hang below the root in
// either kind; they reach depth 4.
//
// Statistics. For each source (the model's own head, draft head i, n-gram branch b at depth d) the
// planner keeps how often the verifier's target at a depth served by that source was the rank-r
// entry of its list, counted only when the walk reached the parent depth (so the estimate is the
// conditional acceptance Medusa and Sequoia build trees from). Counts decay geometrically (old
// text fades: n-gram branches win in repetitive stretches and lose elsewhere).
//
// Expected tokens. A node's acceptance probability is the product of its path's rates
// (independence assumption). The best tree with T rows (root included) holds the T - 1 most
// probable nodes: a best-first enumeration over rank tuples gives them in order, and
//   E[tokens per step](T) = 1 (the bonus token) + sum of the T - 1 best node probabilities.
// Cost. seconds(T) of a verify step with T rows, measured by the decoder at a few T (Calibrate)
// and refreshed by every real step (exponential moving average); plus the heads' cost (kFused
// pays it at the end of the previous step) or the draft pass's cost (kSeparate).
// Realized acceptance. The independence assumption and the rates' lag make E[tokens] a biased
// prediction; every speculative step reports the drafts it actually got accepted, and the
// planner scales its predicted accepted drafts by (decayed sum of accepted) / (decayed sum of
// predicted), so a planner that keeps overestimating its trees learns to stop.
// Plan = argmax over {kAr} and {kind, T} of E[tokens](kind, T) / seconds(kind, T); speculation
// must beat AR by switch_margin (hysteresis: decisions near the break-even point would flip on
// timing noise and gain nothing). While kAr
// wins, a step still speculates now and then (a probe) so the statistics stay fresh: after
// probe_every AR steps, then after twice as many each time AR keeps winning (up to probe_max),
// back to probe_every once speculation wins on its merits. Failing probes thus cost at most
// about 1/probe_max of the run.
//
// Example:
//   DraftPlanner planner(options);
//   planner.SetVerifyCost(1, 0.006); planner.SetVerifyCost(4, 0.009); ...  // from calibration
//   StepPlan plan = planner.Plan(/*ngram_branches=*/3);
//   ... build a tree of at most plan.nodes rows, verify, walk ...
//   planner.RecordRank(planner.SourceOfDepth(plan.kind, d), rank);  // per depth the walk reached
//   planner.ObserveVerify(tree_rows, seconds);
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace ts {

enum class DraftKind : uint8_t { kAr, kFused, kSeparate };
const char* DraftKindName(DraftKind kind);

// What `--drafting` allows the planner to choose.
enum class DraftingMode : uint8_t {
  kAuto,      // AR, fused or separate, whichever is expected to be fastest
  kFused,     // always fused (AR only for the first step, when no heads output exists yet)
  kSeparate,  // always a separate draft pass
};

struct StepPlan {
  DraftKind kind = DraftKind::kAr;
  int nodes = 1;                  // tree rows to verify, root included
  double expected_tokens = 1.0;   // per step
  double expected_seconds = 0.0;  // per step
  bool probe = false;             // speculating although AR was expected to be faster
  double raw_accepted = 0.0;      // accepted drafts the rates predict (before the planner's
                                  // realized/predicted scale)
};

struct DraftPlannerOptions {
  int max_nodes = 64;   // largest tree, root included
  int fixed_nodes = 0;  // > 0: always this many rows (no sizing); 0: sized by the planner
  int list_k = 8;       // candidates per depth considered from each head's top list
  int num_heads = 3;    // draft heads
  int ngram_topk = 20;  // n-gram branches per step
  int ngram_depth = 4;  // tokens per branch
  DraftingMode mode = DraftingMode::kAuto;
  bool ar_fallback = true;      // kAuto may choose plain AR steps
  double decay = 0.995;         // per observation, on every count of the observed source
  int probe_every = 16;         // while AR wins: the first probe after this many AR steps
  int probe_max = 256;          // longest interval between probes (doubling from probe_every)
  double switch_margin = 0.03;  // speculation must be expected this much faster than AR
};

class DraftPlanner {
 public:
  // Source indices: 0 = the model's own head, 1 + i = draft head i.
  static constexpr int kModelSource = 0;

  explicit DraftPlanner(const DraftPlannerOptions& options);

  // The source serving `depth` (1-based) of a tree of this kind, or -1 (n-gram only there).
  int SourceOfDepth(DraftKind kind, int depth) const;
  // Deepest depth the heads serve for this kind.
  int HeadDepth(DraftKind kind) const;

  // Acceptance evidence. rank: position of the target in the source's list, or -1 when absent.
  void RecordRank(int source, int rank);
  void RecordNgram(int branch, int depth, bool hit);
  double RankProb(int source, int rank) const;
  double NgramProb(int branch, int depth) const;

  // Cost evidence, in seconds. SetVerifyCost: a calibration point (rows in [1, max_nodes]);
  // entries between points are interpolated when FinishCalibration is called.
  void SetVerifyCost(int rows, double seconds);
  void FinishCalibration();
  void ObserveVerify(int rows, double seconds);
  void ObserveHeads(double seconds);
  void ObserveDraft(double seconds);
  // A speculative step planned as `plan` got `accepted` drafts accepted (tokens - 1).
  void ObserveAccepted(const StepPlan& plan, int accepted);
  // Realized / predicted accepted drafts (1 until steps are observed).
  double acceptance_scale() const { return realized_accepted_ / predicted_accepted_; }
  double VerifyCost(int rows) const { return verify_cost_[rows]; }

  // The next step's plan. `ngram_branches`: continuations the table has for the root.
  // `fused_ready`: the heads' lists for a fused step can be produced (false on the first step).
  StepPlan Plan(int ngram_branches, bool fused_ready);

  // Expected tokens per step of the best `rows`-row tree (rows in [1, max_nodes]).
  double ExpectedTokens(DraftKind kind, int rows, int ngram_branches);

  // One line: the last plan, why, and the current estimates (for logs and stats).
  std::string Describe() const;
  const DraftPlannerOptions& options() const { return options_; }
  const StepPlan& last_plan() const { return last_; }
  double ar_rate() const { return verify_cost_[1] > 0 ? 1.0 / verify_cost_[1] : 0.0; }
  double heads_cost() const { return heads_cost_; }
  double draft_cost() const { return draft_cost_; }

 private:
  // Fills best_ with the node probabilities of the best tree of this kind, best first, up to
  // max_nodes - 1 nodes; returns their count.
  int EnumerateNodes(DraftKind kind, int ngram_branches);
  void Consider(DraftKind kind, int ngram_branches, StepPlan& best);

  DraftPlannerOptions options_;
  int num_sources_;
  // (num_sources, list_k) rank hits and (num_sources) trials, decayed.
  std::vector<double> rank_hits_, rank_trials_;
  // (ngram_topk, ngram_depth) hits and trials, decayed.
  std::vector<double> ngram_hits_, ngram_trials_;
  std::vector<double> verify_cost_;  // (max_nodes + 1): seconds by rows; [0] unused
  std::vector<bool> calibrated_;     // (max_nodes + 1)
  double heads_cost_ = 0.0;
  double draft_cost_ = 0.0;
  // Decayed sums of accepted and predicted drafts per speculative step (4 prior steps, ratio 1).
  double realized_accepted_ = 4.0;
  double predicted_accepted_ = 4.0;
  int64_t steps_since_speculation_ = 0;
  int64_t probe_interval_ = 0;  // AR steps before the next probe (0: probe_every)
  StepPlan last_;
  StepPlan last_ar_alternative_;  // best speculative plan when AR was chosen (for Describe)
  // Enumeration scratch.
  struct Candidate {
    double prob;
    int depth;
    int branch;  // n-gram branch, or -1 for head nodes
    bool operator<(const Candidate& o) const { return prob < o.prob; }
  };
  std::vector<Candidate> heap_;
  std::vector<double> best_;  // (max_nodes)
};

}  // namespace ts
