// Plain autoregressive decoding: one forward pass of one token per step. It is the reference the
// TokenSwift decoder must reproduce token for token.
#pragma once

#include <memory>
#include <vector>

#include "runtime/decode/decoder.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/transformer.h"
#include "runtime/sampling/sampler.h"
#include "runtime/sampling/sharded_sampler.h"

namespace ts {

class ArDecoder : public Decoder {
 public:
  // The cache must hold the prompt plus every token this decoder will commit. Tensor parallel:
  // `sharded` samples from the rank's vocabulary range (the model's logits cover only that).
  ArDecoder(Transformer* model, KvCache* cache, const SamplingParams& params,
            ShardedSampler* sharded = nullptr);

  Status Prefill(std::span<const int32_t> prompt) override;
  Status Step(int64_t max_tokens, std::vector<int32_t>& out) override;
  const DecodeCounters& counters() const override { return counters_; }

 private:
  // Forwards tokens_[begin, end) at positions begin.. and keeps the last row's logits.
  Status Run(int64_t begin, int64_t end);

  Transformer* model_;
  KvCache* cache_;
  SamplingParams params_;
  Sampler sampler_;
  ShardedSampler* sharded_;
  std::vector<int32_t> tokens_;  // committed sequence: prompt then generated
  int64_t forwarded_ = 0;        // tokens_[0, forwarded_) have their K/V in the cache
  std::vector<float> logits_;    // (vocab) for the next position
  DecodeCounters counters_;
};

}  // namespace ts
