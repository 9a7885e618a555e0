// Sampling over a split vocabulary; see sharded_sampler.h.
#include "runtime/sampling/sharded_sampler.h"

#include <cmath>

#include "runtime/sampling/gumbel.h"
#include "runtime/sampling/logits_processor.h"

namespace ts {

ShardedSampler::ShardedSampler(const SamplingParams& params, Range range, Communicator* comm)
    : params_(params),
      range_(range),
      comm_(comm),
      scores_(range.size()),
      seen_((range.size() + 63) / 64, 0) {
  if (!IsGreedy(params) && (params.top_p < 1.0f || params.top_k > 0)) {
    candidates_.resize(range.size());  // one rank only (Create)
  }
}

StatusOr<ShardedSampler> ShardedSampler::Create(const SamplingParams& params, Range range,
                                                Communicator* comm) {
  TS_RETURN_IF_ERROR(Validate(params));
  if (range.size() < 1) return absl::InvalidArgumentError("ShardedSampler: empty vocabulary range");
  if (comm->size() > 1 && !IsGreedy(params) &&
      (params.top_p < 1.0f || params.top_k > 0 || params.eta > 0.0f)) {
    return BadInput("--top-p / --top-k / --eta: not supported with --tp > 1 yet (min-p is)");
  }
  return ShardedSampler(params, range, comm);
}

StatusOr<int32_t> ShardedSampler::Sample(const float* logits,
                                         std::span<const int32_t> window_tokens, int64_t position) {
  if (static_cast<int64_t>(window_tokens.size()) > params_.penalty_window) {
    window_tokens = window_tokens.last(static_cast<size_t>(params_.penalty_window));
  }
  const bool greedy = IsGreedy(params_);
  const std::span<float> z(scores_.data(), scores_.size());
  const ScoreStats local =
      ScoreRange(std::span<const float>(logits, scores_.size()), range_.begin, window_tokens,
                 params_.penalty, greedy ? 1.0f : params_.temperature, z, seen_);
  // z_max and the lowest id holding it, over all ranks: the greedy token.
  TS_ASSIGN_OR_RETURN(const ValueIndex top, comm_->MaxReduce({local.max, local.argmax}));
  if (greedy || std::isinf(top.value)) return static_cast<int32_t>(top.index);

  // With several ranks only min-p is on, whose cutoff depends on z_max alone (Create refused the
  // filters that need more); one rank holds the whole row for the others.
  const Cutoff cutoff = ComputeCutoff(params_, z, static_cast<float>(top.value), candidates_);
  const int64_t hint = top.index >= range_.begin && top.index < range_.end ? top.index : -1;
  const Candidate mine = GumbelMaxRange(z, range_.begin, cutoff, params_.seed, position, hint);
  TS_ASSIGN_OR_RETURN(const ValueIndex best, comm_->MaxReduce({mine.value, mine.index}));
  return static_cast<int32_t>(best.index);
}

}  // namespace ts
