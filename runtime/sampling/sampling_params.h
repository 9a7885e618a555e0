// What the user asks of the sampler (the generate flags --temperature ... --eta), and the check
// that runs on it before any work.
#pragma once

#include <cstdint>
#include <limits>

#include "common/status.h"

namespace ts {

// Every field's "off" value leaves the distribution untouched, so a default SamplingParams is
// plain softmax sampling at temperature 1.
struct SamplingParams {
  uint64_t seed = 0;
  // 0 = greedy (argmax of the penalised logits). Values below kGreedyTemperature are greedy too,
  // as in vLLM: dividing by them would overflow the scores.
  float temperature = 1.0f;
  int64_t top_k = 0;              // 0 = off
  float top_p = 1.0f;             // 1 = off
  float min_p = 0.0f;             // 0 = off
  float eta = 0.0f;               // epsilon of eta-sampling (HF EtaLogitsWarper); 0 = off
  float penalty = 1.0f;           // contextual (repetition) penalty; 1 = off
  int64_t penalty_window = 1024;  // only the last this-many window tokens are penalised
};

inline constexpr float kGreedyTemperature = 1e-5f;

inline bool IsGreedy(const SamplingParams& p) { return p.temperature < kGreedyTemperature; }

// Rejects, as vLLM does, before any work: negative/NaN/infinite temperature, top_p outside
// (0, 1], min_p outside [0, 1], penalty <= 0 or NaN/infinite, top_k < 0, eta outside [0, 1),
// penalty_window < 0. The message is one line naming the flag as the CLI spells it, e.g.
// "--top-p: expected a value in (0, 1], got 1.5".
Status Validate(const SamplingParams& params);

}  // namespace ts
