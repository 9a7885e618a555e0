// A decoder turns a prompt into committed tokens, one step at a time. AR commits one token per
// step; TokenSwift commits an accepted draft path plus a bonus token. Whatever the decoder, the
// committed stream for a given seed and sampling settings is the same (DESIGN.md section 2).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"

namespace ts {

struct DecodeCounters {
  int64_t steps = 0;           // decoding steps (one verify/decode forward pass each)
  int64_t committed = 0;       // tokens committed by steps
  int64_t drafted = 0;         // draft tokens proposed (0 for AR)
  int64_t accepted = 0;        // draft tokens accepted (0 for AR)
  int64_t accepted_ngram = 0;  // accepted draft tokens that came from n-gram branches
  int64_t verified_rows = 0;   // rows of every verify/decode forward pass
  int64_t ar_steps = 0;        // TokenSwift: steps that verified the root alone
  int64_t fused_steps = 0;     // TokenSwift: steps drafted by heads on the previous verify
  int64_t separate_steps = 0;  // TokenSwift: steps with their own draft pass
};

class Decoder {
 public:
  virtual ~Decoder() = default;
  // Runs the prompt through the model. Must be called once, before Step.
  virtual Status Prefill(std::span<const int32_t> prompt) = 0;
  // Commits between 1 and max_tokens tokens, appending them to `out` (cleared first).
  virtual Status Step(int64_t max_tokens, std::vector<int32_t>& out) = 0;
  virtual const DecodeCounters& counters() const = 0;
};

}  // namespace ts
