#include "runtime/engine/generator.h"

#include <algorithm>
#include <chrono>

namespace ts {
namespace {

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

StatusOr<GenerationResult> Generate(Decoder& decoder, std::span<const int32_t> prompt,
                                    const GenerationLimits& limits, TokenSink* sink) {
  GenerationResult result;
  result.prompt_tokens = static_cast<int64_t>(prompt.size());
  result.tokens.reserve(limits.max_new_tokens);
  auto t0 = std::chrono::steady_clock::now();
  TS_RETURN_IF_ERROR(decoder.Prefill(prompt));
  result.prefill_seconds = SecondsSince(t0);

  result.stop_reason = "length";
  std::vector<int32_t> step_tokens;
  step_tokens.reserve(64);
  t0 = std::chrono::steady_clock::now();
  while (static_cast<int64_t>(result.tokens.size()) < limits.max_new_tokens) {
    if (limits.cancel != nullptr || limits.cancel_comm != nullptr) {
      int32_t stop = limits.cancel != nullptr && limits.cancel->load(std::memory_order_relaxed);
      if (limits.cancel_comm != nullptr) {
        TS_RETURN_IF_ERROR(limits.cancel_comm->Broadcast(&stop, sizeof(stop), 0));
      }
      if (stop != 0) {
        result.stop_reason = "cancelled";
        break;
      }
    }
    const int64_t room = limits.max_new_tokens - static_cast<int64_t>(result.tokens.size());
    TS_RETURN_IF_ERROR(decoder.Step(room, step_tokens));
    size_t keep = std::min<size_t>(step_tokens.size(), room);
    bool eos = false;
    if (!limits.ignore_eos) {
      for (size_t i = 0; i < keep; ++i) {
        if (std::find(limits.eos_ids.begin(), limits.eos_ids.end(), step_tokens[i]) !=
            limits.eos_ids.end()) {
          keep = i + 1;
          eos = true;
          break;
        }
      }
    }
    result.tokens.insert(result.tokens.end(), step_tokens.begin(), step_tokens.begin() + keep);
    if (sink != nullptr) {
      sink->OnTokens(std::span<const int32_t>(step_tokens.data(), keep),
                     static_cast<int64_t>(result.tokens.size()), SecondsSince(t0));
    }
    if (eos) {
      result.stop_reason = "eos";
      break;
    }
  }
  result.decode_seconds = SecondsSince(t0);
  result.counters = decoder.counters();
  return result;
}

}  // namespace ts
