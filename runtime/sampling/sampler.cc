#include "runtime/sampling/sampler.h"

#include <cassert>
#include <cmath>

#include "runtime/sampling/gumbel.h"

namespace ts {

StatusOr<Sampler> Sampler::Create(const SamplingParams& params, int64_t max_vocab) {
  TS_RETURN_IF_ERROR(Validate(params));
  if (max_vocab <= 0 || max_vocab > Cutoff::kAllTies) {
    return BadInput("sampler: expected a vocabulary size in [1, 2^31 - 1], got ", max_vocab);
  }
  return Sampler(params, max_vocab);
}

Sampler::Sampler(const SamplingParams& params, int64_t max_vocab)
    : params_(params), scores_(max_vocab), seen_((max_vocab + 63) / 64, 0) {
  assert(Validate(params).ok());
  assert(max_vocab > 0 && max_vocab <= Cutoff::kAllTies);
  if (!IsGreedy(params) && (params.top_p < 1.0f || params.top_k > 0)) {
    candidates_.resize(max_vocab);
  }
}

int32_t Sampler::Sample(const float* logits, int64_t vocab, std::span<const int32_t> window_tokens,
                        int64_t position) {
  assert(vocab > 0 && vocab <= max_vocab());
  assert(position >= 0);
  if (static_cast<int64_t>(window_tokens.size()) > params_.penalty_window) {
    window_tokens = window_tokens.last(static_cast<size_t>(params_.penalty_window));
  }
  const bool greedy = IsGreedy(params_);
  const std::span<float> z(scores_.data(), static_cast<size_t>(vocab));
  const ScoreStats stats = ScoreRange(std::span<const float>(logits, static_cast<size_t>(vocab)),
                                      /*begin=*/0, window_tokens, params_.penalty,
                                      greedy ? 1.0f : params_.temperature, z, seen_);
  // Greedy, or nothing finite to sample from: the lowest id with the largest score.
  if (greedy || std::isinf(stats.max)) return stats.argmax;

  const Cutoff cutoff = ComputeCutoff(params_, z, stats.max, candidates_);
  const Candidate best =
      GumbelMaxRange(z, /*begin=*/0, cutoff, params_.seed, position, /*hint=*/stats.argmax);
  return best.index;  // the argmax always survives the filters, so index >= 0
}

}  // namespace ts
