// Drives a decoder from a prompt to a stop condition (EOS or max new tokens), streaming committed
// tokens to a sink and timing prefill and decode separately.
#pragma once

#include <atomic>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "common/status.h"
#include "parallel/communicator.h"
#include "runtime/decode/decoder.h"

namespace ts {

class TokenSink {
 public:
  virtual ~TokenSink() = default;
  // Newly committed tokens; `generated` counts all tokens so far, `decode_seconds` the time
  // since decoding began.
  virtual void OnTokens(std::span<const int32_t> tokens, int64_t generated,
                        double decode_seconds) = 0;
};

struct GenerationLimits {
  int64_t max_new_tokens = 0;
  bool ignore_eos = false;
  std::vector<int32_t> eos_ids;
  const std::atomic<bool>* cancel = nullptr;  // read before each step; set: stop ("cancelled")
  // A tensor-parallel group's control: rank 0's cancel flag is broadcast before each step, so
  // every rank stops at the same step (every rank sets it, or none).
  Communicator* cancel_comm = nullptr;
};

struct GenerationResult {
  std::vector<int32_t> tokens;  // generated tokens (EOS included when it stopped generation)
  int64_t prompt_tokens = 0;
  double prefill_seconds = 0;
  double decode_seconds = 0;
  std::string stop_reason;  // "eos", "length" or "cancelled"
  DecodeCounters counters;
  std::string planner;  // TokenSwift: the planner's last decision (Planner::Describe)
};

StatusOr<GenerationResult> Generate(Decoder& decoder, std::span<const int32_t> prompt,
                                    const GenerationLimits& limits, TokenSink* sink);

}  // namespace ts
