#include "runtime/decode/ar_decoder.h"

#include <algorithm>

namespace ts {

ArDecoder::ArDecoder(Transformer* model, KvCache* cache, const SamplingParams& params,
                     ShardedSampler* sharded)
    : model_(model),
      cache_(cache),
      params_(params),
      sampler_(params, model->config().vocab_size),
      sharded_(sharded),
      logits_(sharded != nullptr ? sharded->range().size() : model->config().vocab_size) {
  tokens_.reserve(cache->capacity());
}

Status ArDecoder::Run(int64_t begin, int64_t end) {
  TS_RETURN_IF_ERROR(model_->ForwardCausal(tokens_, begin, end, *cache_, logits_.data()));
  forwarded_ = end;
  return absl::OkStatus();
}

Status ArDecoder::Prefill(std::span<const int32_t> prompt) {
  if (prompt.empty()) return BadInput("prompt: expected at least one token");
  if (static_cast<int64_t>(prompt.size()) >= cache_->capacity()) {
    return BadInput("prompt: ", prompt.size(), " tokens leave no room in a context of ",
                    cache_->capacity());
  }
  tokens_.assign(prompt.begin(), prompt.end());
  return Run(0, static_cast<int64_t>(tokens_.size()));
}

Status ArDecoder::Step(int64_t max_tokens, std::vector<int32_t>& out) {
  out.clear();
  if (max_tokens < 1) return absl::OkStatus();
  const int64_t n = static_cast<int64_t>(tokens_.size());
  if (forwarded_ < n) TS_RETURN_IF_ERROR(Run(forwarded_, n));
  if (n >= cache_->capacity()) {
    return absl::OutOfRangeError(absl::StrCat("context full: ", n, " tokens"));
  }
  const int64_t window = std::min<int64_t>(params_.penalty_window, n);
  const std::span<const int32_t> recent(tokens_.data() + n - window, window);
  int32_t token = 0;
  if (sharded_ != nullptr) {
    TS_ASSIGN_OR_RETURN(token, sharded_->Sample(logits_.data(), recent, n));
  } else {
    token = sampler_.Sample(logits_.data(), recent, n);
  }
  tokens_.push_back(token);
  out.push_back(token);
  ++counters_.steps;
  ++counters_.committed;
  return absl::OkStatus();
}

}  // namespace ts
