// The one forward pass of a decoder-only transformer (llama / qwen2 by configuration). Prefill,
// AR decode, draft and tree verification all call Forward; they differ only in the batch:
// which tokens, at which rope positions, written to which cache slots, under which mask, and
// which rows need logits.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "kernels/backend.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/config.h"
#include "runtime/model/rope.h"
#include "runtime/model/tensor_parallel.h"
#include "runtime/model/weights.h"

namespace ts {

// Every span and pointer of a ForwardBatch, and the logits / hidden outputs of Forward, are host
// memory; the transformer stages them to and from its backend (a copy in, one copy out per
// Forward on a device backend, nothing on the CPU backend).
struct ForwardBatch {
  std::span<const int32_t> tokens;       // (n)
  std::span<const int32_t> positions;    // (n) rope positions
  std::span<const int32_t> slots;        // (n) cache slots receiving this batch's K/V
  AttentionMask mask;                    // over cache slots, see kernels/backend.h
  std::span<const int32_t> logits_rows;  // rows whose logits are computed, in this order
  // Optional query capture (the partial KV cache's importance scores need the draft token's query
  // at every layer): for each listed row, its query after rope (and after yarn's mscale), exactly
  // as attention reads it, into capture_queries (capture_rows.size(), n_layers, n_heads *
  // head_dim). Empty rows: nothing is captured and nothing is computed for it.
  std::span<const int32_t> capture_rows;
  float* capture_queries = nullptr;
};

class Transformer {
 public:
  // Scratch buffers (backend memory) are sized for batches of up to `max_batch` tokens; when they
  // cannot be allocated, Forward returns why. `weights` are backend memory (UploadWeights for a
  // device backend). With `tp` (one rank of a
  // tensor-parallel group), config and weights are tp->config() and tp->weights(): the layers
  // run the rank's heads and columns and all-reduce their outputs, and logits cover the rank's
  // vocabulary range tp->vocab() (runtime/model/tensor_parallel.h).
  Transformer(const ModelConfig& config, const ModelWeights& weights, Backend* backend,
              int64_t max_batch, const TpShard* tp = nullptr);

  // logits: (logits_rows.size(), vocab) (vocab: the rank's range under tp), or nullptr to skip
  // the head. hidden (optional): the
  // final hidden state before the final norm for the same rows, (logits_rows.size(), hidden).
  Status Forward(const ForwardBatch& batch, KvCache& cache, float* logits, float* hidden = nullptr);
  // Causal prefill/decode of stream[begin, end) at positions = slots = indices, in chunks of
  // max_batch. last_logits (vocab), when not nullptr, receives the logits of stream[end - 1].
  Status ForwardCausal(std::span<const int32_t> stream, int64_t begin, int64_t end, KvCache& cache,
                       float* last_logits);
  // logits (m, vocab) of final hidden states (m, hidden) computed exactly as Forward's head does,
  // bit for bit: a verifier can run the head only on the tree nodes its walk reaches.
  Status Logits(const float* hidden, int64_t m, float* logits);
  // out (tokens.size(), hidden) <- the tokens' embeddings, as Forward's first step computes them
  // (under tensor parallelism: collective, each rank adds the rows it holds). `out` is host memory.
  Status Embed(std::span<const int32_t> tokens, float* out);

  const ModelConfig& config() const { return config_; }
  const ModelWeights& weights() const { return weights_; }
  int64_t max_batch() const { return max_batch_; }
  Backend* backend() const { return backend_; }

 private:
  // A ForwardBatch's inputs in backend memory (the batch's own spans on a host backend).
  struct Staged {
    const int32_t* tokens = nullptr;
    const int32_t* positions = nullptr;
    const int32_t* slots = nullptr;
    AttentionMask mask;
  };
  // Float scratch of `count` values in backend memory.
  float* Scratch(Buffer* buffer, int64_t count);
  Staged Stage(const ForwardBatch& batch);
  // Embeds into x_ (backend memory).
  Status EmbedRows(std::span<const int32_t> tokens, const int32_t* staged_tokens);
  Status Layer(int l, int64_t n, const ForwardBatch& batch, const Staged& in, KvCache& cache);
  // Copies layer l's roped queries of batch.capture_rows into the capture buffer.
  void CaptureQueries(int l, const ForwardBatch& batch, float* captured);
  // y (n, hidden) = x (n, local input) * W^T of a row-parallel matmul (o_proj or down_proj) as the
  // ordered sum of its reduction granules' partial products (parallel/shard_plan.h): the same
  // bits in one process and at every TP degree. Under TP the ranks all-gather their partials.
  Status RowParallelMatMul(const std::vector<RowParallelPart>& parts, const RowParallelRun& run,
                           const float* x, int64_t n, int64_t x_cols, float* y);
  // Final norm + lm_head over the first m rows of out_rows_, into host `logits`.
  Status Head(int64_t m, float* logits);

  const ModelConfig& config_;
  const ModelWeights& weights_;
  Backend* backend_;
  int64_t max_batch_;
  const TpShard* tp_;
  RopeTable rope_;
  float attn_scale_;
  bool host_;            // backend memory is host memory: nothing is staged
  Status alloc_status_;  // the first scratch allocation that failed
  Buffer inv_freq_;      // rope_.inv_freq in backend memory
  // Scratch in backend memory, (max_batch, ...) each.
  Buffer x_;         // residual stream (n, hidden)
  Buffer h_;         // normed / projected (n, hidden)
  Buffer q_;         // (n, n_heads * head_dim)
  Buffer k_;         // (n, n_kv_heads * head_dim)
  Buffer v_;         // (n, n_kv_heads * head_dim)
  Buffer att_;       // (n, n_heads * head_dim)
  Buffer gate_;      // (n, intermediate)
  Buffer up_;        // (n, intermediate)
  Buffer out_rows_;  // (n, hidden) gathered rows for the head
  // Device backends only: staged inputs, logits and captured queries before their download.
  Buffer inputs_, logits_, captured_;
  std::vector<int32_t> packed_;                            // host side of inputs_
  std::vector<int32_t> causal_positions_, causal_prefix_;  // (max_batch) for ForwardCausal
  GranuleLayout own_granules_;                             // one process's (unused under tp)
  const GranuleLayout* granules_;                          // own_granules_ or tp->granules()
  Buffer granule_x_;             // (n, granule columns) one granule's input, n > 1
  Buffer partials_;              // (max_local, n, hidden) this rank's granule partials
  std::vector<float> gathered_;  // (world, max_local, n, hidden) every rank's, under tp
};

}  // namespace ts
