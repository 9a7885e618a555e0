// The target sampler over a vocabulary split across tensor-parallel ranks (DESIGN.md 2): each
// rank scores its own range of the logits row, one (value, index) max-reduction gives z_max and
// the greedy token, and one more gives the sampled token as the best of the ranks' Gumbel-max
// winners. Noise is keyed by the global token id, so the result is the token Sampler::Sample
// returns for the whole row, bit for bit; no rank ever holds the full row.
//
// Filters (logits_processor.h), the same cutoff as one rank computes, bit for bit:
//   min-p: from z_max alone;
//   top-k (with or without top-p): each rank offers its best k min-p survivors and their ties,
//     one all-gather of the counts and one of the offers, then every rank sorts the same merged
//     list;
//   top-p without top-k: in rounds. Each round every rank offers its next kTopPRound survivors
//     in (z desc, id asc) order (one all-gather); every rank merges the offers and consumes, in
//     that order, the tokens no unoffered token can precede (up to the best last offer of the
//     ranks that have more), adding exp(z - z_max) until the target is reached. The tokens are
//     consumed in the order the single-rank sort gives, so the cutoff is the same; a peaked
//     distribution ends in one round (bytes: ranks x kTopPRound x 8), a flat one takes as many
//     rounds as it needs, never more bytes than the whole survivor lists;
//   top-p's target mass is the sum of every rank's kReduceBlock block partials in id order (one
//     more all-gather);
//   eta: the kept mass and entropy the same way.
// With top-p or eta every rank's range must start on a kReduceBlock boundary (the shard plan's
// vocabulary unit is 1024); Create refuses others.
//
//   TS_ASSIGN_OR_RETURN(ShardedSampler s, ShardedSampler::Create(params, shard->vocab(), comm));
//   TS_ASSIGN_OR_RETURN(int32_t token, s.Sample(local_logits, window, position));
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "parallel/communicator.h"
#include "parallel/shard_plan.h"
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
  // The filters' cutoff over every rank's scores_ (see above). Collective when more than one
  // rank has top-k, top-p or eta on.
  StatusOr<Cutoff> FilterCutoff(float z_max);
  StatusOr<Mass> GlobalMass(float z_max, const Cutoff& cut, bool with_entropy);
  // Top-p without top-k over the ranks, in rounds (see the header comment). Collective.
  StatusOr<Cutoff> TopPByRounds(float z_max, const Cutoff& cut);
  static constexpr int64_t kTopPRound = 256;  // tokens each rank offers per round

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
  // FilterCutoff's scratch.
  std::vector<ScoredToken> offers_, gathered_, merged_, round_;
  std::vector<int64_t> counts_;  // (2 * ranks): survivors, offered
  std::vector<Mass> blocks_, all_blocks_;
  int64_t max_blocks_ = 0;  // most blocks any rank holds (0: not exchanged yet)
};

}  // namespace ts
