// The target sampler over a vocabulary split across tensor-parallel ranks (DESIGN.md 2): each
// rank scores its own range of the logits row, one (value, index) max-reduction gives z_max and
// the greedy token, and one more gives the sampled token as the best of the ranks' Gumbel-max
// winners. Noise is keyed by the global token id, so the result is the token Sampler::Sample
// returns for the whole row, bit for bit; no rank ever holds the full row.
//
// Filters: min-p needs only z_max. top-p, top-k and eta need sums or selections over all
// survivors (logits_processor.h says what would be reduced); with more than one rank they are
// refused at Create for now.
//
//   TS_ASSIGN_OR_RETURN(ShardedSampler s, ShardedSampler::Create(params, shard->vocab(), comm));
//   TS_ASSIGN_OR_RETURN(int32_t token, s.Sample(local_logits, window, position));
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "parallel/communicator.h"
#include "parallel/shard_plan.h"
#include "runtime/common/status.h"
#include "runtime/sampling/logits_processor.h"
#include "runtime/sampling/sampling_params.h"

namespace ts {

class ShardedSampler {
 public:
  // range: this rank's vocabulary ids (the logits rows handed to Sample cover exactly these).
  static StatusOr<ShardedSampler> Create(const SamplingParams& params, Range range,
                                         Communicator* comm);

  // logits: (range.size()) of one row. window_tokens, position: as Sampler::Sample. Collective.
  StatusOr<int32_t> Sample(const float* logits, std::span<const int32_t> window_tokens,
                           int64_t position);

  // Sampler::Candidates over the split row: the same k ids in the same order. Each rank offers
  // its best k survivors and best k removed tokens, one all-gather, then the same merge rule.
  // Collective.
  Status Candidates(const float* logits, std::span<const int32_t> window_tokens, int64_t position,
                    int k, std::vector<int32_t>& out);

  Range range() const { return range_; }
  Communicator* comm() const { return comm_; }

 private:
  ShardedSampler(const SamplingParams& params, Range range, Communicator* comm);
  // scores_ <- the rank's processed scores (penalty, temperature); returns (z_max, argmax) over
  // all ranks. Collective.
  StatusOr<ValueIndex> Score(const float* logits, std::span<const int32_t> window_tokens);
  SamplingParams params_;
  Range range_;
  Communicator* comm_;
  std::vector<float> scores_;
  std::vector<uint64_t> seen_;
  std::vector<ScoredToken> candidates_;  // top-p / top-k scratch (one rank only)
  struct Entry {
    double value;
    int32_t id;     // -1: padding
    int32_t group;  // 0: survives the filters (value = z + G), 1: removed (value = z)
  };
  std::vector<Entry> groups_[2];   // Candidates' best survivors and best removed tokens
  std::vector<Entry> mine_, all_;  // Candidates' offers and the gathered offers
};

}  // namespace ts
