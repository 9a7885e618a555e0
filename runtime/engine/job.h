// One generation job: a spec -> a running generation with a token sink, progress, cancellation
// and stats. `generate`, `bench` and `serve` all run their generations through RunJob; what a
// process loads once (model, backend, tensor-parallel slices, draft heads) is lent to each job
// as EngineParts, and what one job allocates (KV cache, scratch, decoder, sharded sampler) lives
// for that job only.
#pragma once

#include <atomic>
#include <cstdint>
#include <vector>

#include "common/status.h"
#include "kernels/backend.h"
#include "parallel/communicator.h"
#include "runtime/decode/draft_heads.h"
#include "runtime/decode/tokenswift_decoder.h"
#include "runtime/engine/generator.h"
#include "runtime/model/tensor_parallel.h"
#include "runtime/sampling/sampling_params.h"

namespace ts {

// What a process has loaded and lends to its jobs. Under tensor parallelism config and weights
// are the rank's shard (shard->config(), shard->weights()) and every rank calls RunJob with the
// same spec.
struct EngineParts {
  const ModelConfig* config = nullptr;
  const ModelWeights* weights = nullptr;
  Backend* backend = nullptr;
  const TpShard* shard = nullptr;  // nullptr: one process
  DraftHeads* heads = nullptr;     // TokenSwift jobs (sharded under TP)
  int64_t batch_size = 512;        // prefill rows per forward pass
  // Serving a tensor-parallel group: rank 0's cancel flag is broadcast before each step so every
  // rank stops at the same step (set on every rank, or on none).
  Communicator* control = nullptr;
};

struct JobSpec {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> resumed;  // tokens an earlier run of this very job committed
  int64_t max_new_tokens = 0;    // the job's total, resumed tokens included
  bool ignore_eos = false;
  bool tokenswift = false;
  SamplingParams sampling;
  TokenSwiftOptions tokenswift_options;
  DType kv_dtype = DType::kBF16;
};

// KV-cache slots the job needs: context + new tokens, plus a verify tree's rows past the prefix.
int64_t JobCapacity(const JobSpec& spec);

// BadInput when the job's KV cache (config: the rank's) does not fit in the memory left.
Status CheckJobMemory(const ModelConfig& config, const JobSpec& spec);

// Runs the job to EOS, max_new_tokens or cancellation (stop_reason "cancelled": `cancel` was set;
// it is read before each step, so a cancel takes effect within one step). The context prefilled
// is prompt_ids + resumed; the result's tokens are the new ones only. The KV cache is sized and
// checked against the memory left before anything is prefilled. Under tensor parallelism every
// rank must see the same `cancel` decisions (serve runs one process; see DESIGN.md 4).
StatusOr<GenerationResult> RunJob(const EngineParts& parts, const JobSpec& spec, TokenSink* sink,
                                  const std::atomic<bool>* cancel = nullptr);

// A tensor-parallel server's group (parts.control set on every rank): rank 0 announces each job
// before its RunJob (the spec goes to every rank, whose RunJob then runs in step), an idle beat
// while it waits for work (so a worker's wait stays within the communicator's deadline), and the
// end. The other ranks run WorkerLoop until the end; the TokenSwift options are each rank's own
// (the same flags on every rank).
Status AnnounceJob(Communicator* comm, const JobSpec& spec);
Status AnnounceIdle(Communicator* comm);
Status AnnounceEnd(Communicator* comm);
Status WorkerLoop(const EngineParts& parts, const TokenSwiftOptions& tokenswift_options);

}  // namespace ts
