// Per-token log-probabilities of a token sequence under the model (teacher forcing), the basis of
// `tokenswift score` and of perplexity comparisons with llama.cpp.
//
// Long sequences are cut into consecutive, non-overlapping windows of `window` tokens; each
// window starts with an empty cache, and its first token is context only. A sequence that fits
// in one window therefore scores tokens 1..n-1, each given all tokens before it.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/transformer.h"

namespace ts {

struct ScoreResult {
  std::vector<int32_t> scored_ids;  // the tokens that received a log-probability
  std::vector<double> logprobs;     // natural log, one per scored token
  double mean_logprob = 0;
  double perplexity = 0;
};

// The cache must hold at least `window` slots.
StatusOr<ScoreResult> ScoreTokens(Transformer& model, KvCache& cache,
                                  std::span<const int32_t> tokens, int64_t window);

}  // namespace ts
