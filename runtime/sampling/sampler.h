// The target sampler: one row of logits -> one token, as a pure function of
// (logits row, penalty-window tokens, SamplingParams incl. seed, absolute position).
//
// This is what makes speculative decoding exactly lossless (DESIGN.md 2): the verifier samples a
// tree node at position n + depth with that node's own window (committed tokens + ancestors) and
// gets the very token that autoregressive decoding gets at that position. Nothing is carried
// between calls; the scratch buffers below are overwritten by every call.
//
//   Sampler sampler = *Sampler::Create(params, model.vocab_size);   // once per job
//   int32_t token = sampler.Sample(logits, vocab, last_tokens, position);  // per token, no alloc
//
// Steps: penalty and temperature (ScoreRange), filters (ComputeCutoff, only when sampling), then
// greedy: the lowest id with the largest penalised logit;
// sampled: the Gumbel-max over the surviving tokens (GumbelMaxRange).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "runtime/sampling/logits_processor.h"
#include "runtime/sampling/sampling_params.h"

namespace ts {

class Sampler {
 public:
  // Validates `params` and sizes the scratch for rows of up to max_vocab logits.
  static StatusOr<Sampler> Create(const SamplingParams& params, int64_t max_vocab);

  // For callers that have already run Validate(params) (checked by assert only);
  // 0 < max_vocab < 2^31.
  Sampler(const SamplingParams& params, int64_t max_vocab);

  // logits: (vocab,), 0 < vocab <= max_vocab. window_tokens: the tokens before `position`, oldest
  // first; only the last params.penalty_window of them are penalised, and ids outside
  // [0, vocab) are ignored. position: absolute position (>= 0) of the token being sampled.
  // Not thread-safe (shared scratch): use one Sampler per thread.
  int32_t Sample(const float* logits, int64_t vocab, std::span<const int32_t> window_tokens,
                 int64_t position);

  // The same for a full row of max_vocab() logits.
  int32_t Sample(const float* logits, std::span<const int32_t> window_tokens, int64_t position) {
    return Sample(logits, max_vocab(), window_tokens, position);
  }

  // The k tokens most likely to be what Sample returns at `position` for a row whose logits are
  // close to these (a draft's estimate of the target row), best first, into out:
  //   greedy: by processed score z (ties -> lower id), so out[0] is Sample's choice;
  //   sampled: the filters' survivors by z_i + G(seed, position, i), the very perturbed score the
  //     target's Gumbel-max uses, then the removed tokens by z.
  // For the target row itself out[0] == Sample(...). A draft ranked with the target's own noise
  // is accepted with probability about 1 - TV(draft, target) instead of about max p: the draft
  // and the target sample are coupled. Fewer than k when vocab < k.
  void Candidates(const float* logits, int64_t vocab, std::span<const int32_t> window_tokens,
                  int64_t position, int k, std::vector<int32_t>& out);

  const SamplingParams& params() const { return params_; }
  int64_t max_vocab() const { return static_cast<int64_t>(scores_.size()); }

 private:
  SamplingParams params_;
  std::vector<float> scores_;            // (max_vocab,) processed scores z
  std::vector<uint64_t> seen_;           // (ceil(max_vocab / 64),) penalty de-dup bits, all 0
  std::vector<ScoredToken> candidates_;  // (max_vocab,) top-p/top-k selection; else empty
  struct Ranked {
    double value;
    int32_t id;
  };
  std::vector<Ranked> ranked_;  // Candidates' running top k
};

}  // namespace ts
