// Logits processing, TokenSwift's order (DESIGN.md 1.6): contextual penalty, temperature, then the
// filters min-p, top-p, top-k, eta. Each step matches the HF transformers logits processor of the
// same name, computed in double precision where HF uses float32.
//
// Notation. l = one row of raw logits (vocab,), z = processed scores (vocab,), z_max = max z.
// Softmax weights w_i = exp(z_i - z_max); a filter works on the distribution renormalised over
// the tokens that the filters before it kept (HF sets removed scores to -inf, same thing).
//
//  1. Penalty (HF RepetitionPenaltyLogitsProcessor): each *distinct* token id t among the window
//     tokens gets l_t / p if l_t > 0, else l_t * p, once however often it occurs.
//  2. Temperature: z = l / T (T = 1 and greedy: z = l). NaN becomes -inf and +inf becomes
//     FLT_MAX, so a bad row cannot poison the comparisons below.
//  3. min-p (HF MinPLogitsWarper): keep i iff p_i >= min_p * p_max, i.e. z_i >= z_max + ln(min_p),
//     evaluated as (double)z_i >= (double)z_max + log(min_p).
//  4. top-p (HF TopPLogitsWarper): order survivors by (z desc, id asc); keep the shortest prefix
//     whose cumulative probability is >= top_p (HF drops the tail of mass <= 1 - top_p: the same
//     set). Ties at the boundary are broken by token id: the lower id is kept first.
//  5. top-k (HF TopKLogitsWarper): keep i iff z_i >= the k-th largest surviving score; as in HF,
//     every token tied with the k-th is kept, so more than k can survive.
//  6. eta (HF EtaLogitsWarper, Hewitt et al. 2022): H = entropy of the surviving distribution,
//     eta = min(epsilon, sqrt(epsilon) * exp(-H)); keep i iff p_i >= eta, i.e.
//     (double)z_i >= z_max + log(eta * Z) with Z = sum of surviving w.
// Every filter keeps the best token (first in (z desc, id asc) order), so at least one survives.
//
// Every filter keeps a prefix of the order (z desc, id asc), so the intersection of all of them is
// one such prefix, described by a single Cutoff: two scalars. That is the seam for sharded
// sampling (DESIGN.md 2): ranks own vocab ranges, compute their scores with ScoreRange, agree on
// global scalars, compute the Cutoff, and each takes the Gumbel-max of its range (gumbel.h).
// What would need reducing across ranks:
//   - z_max: all-reduce max (exact).
//   - Z and the entropy sum (top-p, eta): summed per kReduceBlock block of vocab ids; ranks whose
//     ranges are block-aligned all-gather the block partials and add them in block order, which
//     reproduces the single-rank sum bit for bit.
//   - top-p / top-k boundary: a selection over all survivors. After min-p these are few, so ranks
//     all-gather their local (z, id) survivors, or only their local best k when top-k is set.
//   - the Cutoff itself is then identical on every rank (computed redundantly, no broadcast).
#pragma once

#include <cstdint>
#include <limits>
#include <span>

#include "runtime/sampling/sampling_params.h"

namespace ts {

// Keeps token i iff z_i > value, or z_i == value and i <= index. A larger (value, -index) is
// stricter. index = kAllTies keeps every token tied at value.
struct Cutoff {
  static constexpr int32_t kAllTies = std::numeric_limits<int32_t>::max();
  float value = -std::numeric_limits<float>::max();  // default: every finite score survives
  int32_t index = kAllTies;

  bool Keeps(float z, int64_t id) const { return z > value || (z == value && id <= index); }
};

inline Cutoff Stricter(const Cutoff& a, const Cutoff& b) {
  if (a.value != b.value) return a.value > b.value ? a : b;
  return a.index < b.index ? a : b;
}

// A token's processed score and id (scratch for the top-p / top-k selection).
struct ScoredToken {
  float z;
  int32_t id;
};

struct ScoreStats {
  float max;       // max z over the range (-inf when every score is -inf)
  int32_t argmax;  // lowest id with z == max (global id)
};

// Token counts of the blocks in which sums over the vocabulary are accumulated (see above).
inline constexpr int64_t kReduceBlock = 1024;

// Steps 1-2 for the vocab ids [begin, begin + logits.size()). `logits` and `z` are indexed by
// id - begin; window tokens outside the range are skipped (another rank penalises them).
// `seen` is penalty de-duplication scratch of (logits.size() + 63) / 64 words that must be zero
// on entry and is zero again on return. temperature must be > 0 (pass 1 for greedy).
ScoreStats ScoreRange(std::span<const float> logits, int64_t begin,
                      std::span<const int32_t> window_tokens, float penalty, float temperature,
                      std::span<float> z, std::span<uint64_t> seen);

// Steps 3-6 on the full vocabulary's scores z (z_max = their max, finite). `scratch` holds at
// least z.size() entries; it is used only when top-p or top-k is on.
Cutoff ComputeCutoff(const SamplingParams& params, std::span<const float> z, float z_max,
                     std::span<ScoredToken> scratch);

// The pieces ComputeCutoff is made of, for the sharded sampler (sharded_sampler.cc), which
// computes the same cutoff from the ranks' parts.

// (z desc, id asc): the order in which top-p and top-k keep tokens.
inline bool ScoreBefore(const ScoredToken& a, const ScoredToken& b) {
  return a.z > b.z || (a.z == b.z && a.id < b.id);
}

// Sums over kept tokens of w = exp(z - z_max) and of w * (z - z_max) (= w ln w).
struct Mass {
  double w = 0.0;
  double w_log_w = 0.0;
};

// blocks[b] = the kept mass of block b of the ids [begin, begin + z.size()) (z[0] is token
// `begin`, a multiple of kReduceBlock); returns the number of blocks. Adding every rank's blocks
// in id order (total.w += part.w, ...) gives ComputeCutoff's sums bit for bit.
int64_t KeptMassBlocks(std::span<const float> z, int64_t begin, float z_max, const Cutoff& cut,
                       bool with_entropy, std::span<Mass> blocks);
// Step 3 alone (keeps everything when min-p is off).
Cutoff MinPCutoff(const SamplingParams& params, float z_max);
// Step 6 from the kept mass (with entropy) of the tokens the earlier steps keep.
Cutoff EtaCutoff(const SamplingParams& params, const Mass& kept, float z_max);

}  // namespace ts
