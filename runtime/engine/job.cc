#include "runtime/engine/job.h"

#include <algorithm>
#include <memory>
#include <optional>

#include "absl/strings/str_cat.h"
#include "runtime/decode/ar_decoder.h"
#include "runtime/engine/memory_budget.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/transformer.h"
#include "runtime/sampling/sharded_sampler.h"

namespace ts {

int64_t JobCapacity(const JobSpec& spec) {
  return static_cast<int64_t>(spec.prompt_ids.size()) + spec.max_new_tokens +
         (spec.tokenswift ? spec.tokenswift_options.tree.max_nodes : 0);
}

Status CheckJobMemory(const ModelConfig& config, const JobSpec& spec) {
  const int64_t capacity = JobCapacity(spec);
  return CheckMemory(
      static_cast<int64_t>(KvCache::BytesFor(config, capacity, spec.kv_dtype)) + (64 << 20),
      absl::StrCat("the KV cache for ", capacity, " tokens (",
                   std::string(GetDTypeInfo(spec.kv_dtype).name), ")"),
      spec.kv_dtype == DType::kF32 ? "lower --max-new-tokens, or use --kv-dtype bf16"
                                   : "lower --max-new-tokens");
}

StatusOr<GenerationResult> RunJob(const EngineParts& parts, const JobSpec& spec, TokenSink* sink,
                                  const std::atomic<bool>* cancel) {
  if (spec.tokenswift && parts.heads == nullptr) {
    return BadInput("--heads: a TokenSwift job needs draft heads");
  }
  const ModelConfig& config = *parts.config;
  // Everything large is allocated now, before prefill: a job that cannot fit fails here.
  TS_RETURN_IF_ERROR(CheckJobMemory(config, spec));
  TS_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
                      KvCache::Create(config, JobCapacity(spec), spec.kv_dtype));
  std::optional<ShardedSampler> sharded;
  if (parts.shard != nullptr) {
    TS_ASSIGN_OR_RETURN(
        ShardedSampler s,
        ShardedSampler::Create(spec.sampling, parts.shard->vocab(), parts.shard->comm()));
    sharded.emplace(std::move(s));
  }
  ShardedSampler* sampler = sharded.has_value() ? &*sharded : nullptr;
  Transformer transformer(
      config, *parts.weights, parts.backend,
      spec.tokenswift ? std::max<int64_t>(parts.batch_size, spec.tokenswift_options.tree.max_nodes)
                      : parts.batch_size,
      parts.shard);
  std::unique_ptr<Decoder> decoder;
  const TokenSwiftDecoder* ts_decoder = nullptr;
  if (spec.tokenswift) {
    auto d = std::make_unique<TokenSwiftDecoder>(&transformer, cache.get(), parts.heads,
                                                 spec.sampling, spec.tokenswift_options, sampler);
    ts_decoder = d.get();
    decoder = std::move(d);
  } else {
    decoder = std::make_unique<ArDecoder>(&transformer, cache.get(), spec.sampling, sampler);
  }
  GenerationLimits limits;
  limits.max_new_tokens = spec.max_new_tokens - static_cast<int64_t>(spec.resumed.size());
  limits.ignore_eos = spec.ignore_eos;
  limits.eos_ids = config.eos_ids;
  limits.cancel = cancel;
  std::vector<int32_t> context = spec.prompt_ids;
  context.insert(context.end(), spec.resumed.begin(), spec.resumed.end());
  TS_ASSIGN_OR_RETURN(GenerationResult result, Generate(*decoder, context, limits, sink));
  if (ts_decoder != nullptr) result.planner = ts_decoder->planner().Describe();
  return result;
}

}  // namespace ts
