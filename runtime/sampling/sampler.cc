#include "runtime/sampling/sampler.h"

#include <algorithm>
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

namespace {

// Keeps `top` the best k of what it is offered: larger value first, ties -> lower id.
template <typename Entry>
void Offer(std::vector<Entry>& top, size_t k, double value, int32_t id) {
  auto before = [](const Entry& a, double v, int32_t i) {
    return a.value > v || (a.value == v && a.id < i);
  };
  if (top.size() == k && before(top.back(), value, id)) return;
  if (top.size() < k) top.push_back({value, id});
  size_t i = top.size() - 1;
  while (i > 0 && !before(top[i - 1], value, id)) {
    top[i] = top[i - 1];
    --i;
  }
  top[i] = {value, id};
}

}  // namespace

void Sampler::Candidates(const float* logits, int64_t vocab, std::span<const int32_t> window_tokens,
                         int64_t position, int k, std::vector<int32_t>& out) {
  assert(vocab > 0 && vocab <= max_vocab());
  assert(position >= 0);
  out.clear();
  if (k <= 0) return;
  if (static_cast<int64_t>(window_tokens.size()) > params_.penalty_window) {
    window_tokens = window_tokens.last(static_cast<size_t>(params_.penalty_window));
  }
  const bool greedy = IsGreedy(params_);
  const std::span<float> z(scores_.data(), static_cast<size_t>(vocab));
  const ScoreStats stats = ScoreRange(std::span<const float>(logits, static_cast<size_t>(vocab)),
                                      /*begin=*/0, window_tokens, params_.penalty,
                                      greedy ? 1.0f : params_.temperature, z, seen_);
  const size_t want = static_cast<size_t>(std::min<int64_t>(k, vocab));
  ranked_.clear();
  ranked_.reserve(want);
  if (greedy || std::isinf(stats.max)) {
    for (int64_t i = 0; i < vocab; ++i) Offer(ranked_, want, z[i], static_cast<int32_t>(i));
  } else {
    // Survivors by perturbed score. A survivor with z + (largest possible G) below the k-th
    // value so far cannot enter, so its noise is not drawn.
    static const double kMaxNoise = GumbelFromBits(~uint64_t{0});
    const Cutoff cutoff = ComputeCutoff(params_, z, stats.max, candidates_);
    for (int64_t i = 0; i < vocab; ++i) {
      if (!cutoff.Keeps(z[i], i)) continue;
      if (ranked_.size() == want && static_cast<double>(z[i]) + kMaxNoise < ranked_.back().value) {
        continue;
      }
      const double v =
          static_cast<double>(z[i]) +
          GumbelNoise(params_.seed, static_cast<uint64_t>(position), static_cast<uint32_t>(i));
      Offer(ranked_, want, v, static_cast<int32_t>(i));
    }
    const size_t survivors = ranked_.size();
    if (survivors < want) {
      // Then the removed tokens by z, in a second list so that no perturbed value competes.
      for (const Ranked& r : ranked_) out.push_back(r.id);
      ranked_.clear();
      for (int64_t i = 0; i < vocab; ++i) {
        if (!cutoff.Keeps(z[i], i)) Offer(ranked_, want - survivors, z[i], static_cast<int32_t>(i));
      }
    }
  }
  for (const Ranked& r : ranked_) out.push_back(r.id);
}

}  // namespace ts
