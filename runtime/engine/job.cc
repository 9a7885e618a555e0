#include "runtime/engine/job.h"

#include <algorithm>
#include <memory>
#include <optional>
#include <type_traits>

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
  // Everything large is allocated now, before prefill: a job that cannot fit fails here (device
  // memory: the allocation itself says so).
  if (parts.backend->host_memory()) TS_RETURN_IF_ERROR(CheckJobMemory(config, spec));
  TS_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
                      KvCache::Create(config, JobCapacity(spec), spec.kv_dtype, parts.backend));
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
  limits.cancel_comm = parts.control;
  std::vector<int32_t> context = spec.prompt_ids;
  context.insert(context.end(), spec.resumed.begin(), spec.resumed.end());
  TS_ASSIGN_OR_RETURN(GenerationResult result, Generate(*decoder, context, limits, sink));
  if (ts_decoder != nullptr) result.planner = ts_decoder->planner().Describe();
  return result;
}

namespace {

enum class Announcement : int32_t { kIdle = 0, kJob = 1, kEnd = 2 };

// What AnnounceJob sends before the ids (SamplingParams is plain data).
struct JobHeader {
  Announcement what = Announcement::kIdle;
  int32_t tokenswift = 0;
  int32_t ignore_eos = 0;
  int32_t kv_dtype = 0;
  int64_t max_new_tokens = 0;
  int64_t prompt = 0;
  int64_t resumed = 0;
  SamplingParams sampling;
};
static_assert(std::is_trivially_copyable_v<JobHeader>);

Status Announce(Communicator* comm, Announcement what) {
  JobHeader h;
  h.what = what;
  return comm->Broadcast(&h, sizeof(h), 0);
}

}  // namespace

Status AnnounceJob(Communicator* comm, const JobSpec& spec) {
  JobHeader h;
  h.what = Announcement::kJob;
  h.tokenswift = spec.tokenswift ? 1 : 0;
  h.ignore_eos = spec.ignore_eos ? 1 : 0;
  h.kv_dtype = static_cast<int32_t>(spec.kv_dtype);
  h.max_new_tokens = spec.max_new_tokens;
  h.prompt = static_cast<int64_t>(spec.prompt_ids.size());
  h.resumed = static_cast<int64_t>(spec.resumed.size());
  h.sampling = spec.sampling;
  TS_RETURN_IF_ERROR(comm->Broadcast(&h, sizeof(h), 0));
  std::vector<int32_t> ids = spec.prompt_ids;
  ids.insert(ids.end(), spec.resumed.begin(), spec.resumed.end());
  return comm->Broadcast(ids.data(), ids.size() * sizeof(int32_t), 0);
}

Status AnnounceIdle(Communicator* comm) { return Announce(comm, Announcement::kIdle); }
Status AnnounceEnd(Communicator* comm) { return Announce(comm, Announcement::kEnd); }

Status WorkerLoop(const EngineParts& parts, const TokenSwiftOptions& tokenswift_options) {
  Communicator* comm = parts.control;
  while (true) {
    JobHeader h;
    TS_RETURN_IF_ERROR(comm->Broadcast(&h, sizeof(h), 0));
    if (h.what == Announcement::kEnd) return absl::OkStatus();
    if (h.what == Announcement::kIdle) continue;
    if (h.what != Announcement::kJob || h.prompt < 1 || h.resumed < 0 ||
        h.prompt + h.resumed > (int64_t{1} << 30)) {
      return RuntimeFailure("rank ", comm->rank(), ": a malformed job announcement from rank 0");
    }
    std::vector<int32_t> ids(static_cast<size_t>(h.prompt + h.resumed));
    TS_RETURN_IF_ERROR(comm->Broadcast(ids.data(), ids.size() * sizeof(int32_t), 0));
    JobSpec spec;
    spec.prompt_ids.assign(ids.begin(), ids.begin() + h.prompt);
    spec.resumed.assign(ids.begin() + h.prompt, ids.end());
    spec.max_new_tokens = h.max_new_tokens;
    spec.ignore_eos = h.ignore_eos != 0;
    spec.tokenswift = h.tokenswift != 0;
    spec.sampling = h.sampling;
    spec.tokenswift_options = tokenswift_options;
    spec.kv_dtype = static_cast<DType>(h.kv_dtype);
    const std::atomic<bool> never{false};  // rank 0's flag decides (parts.control)
    TS_RETURN_IF_ERROR(RunJob(parts, spec, nullptr, &never).status());
  }
}

}  // namespace ts
