// The partial (retrieval) KV cache read by TokenSwift's draft pass (DESIGN.md section 1.1, 1.5).
//
// The draft pass runs the target model on the last committed token, but its attention reads a
// small cache of `budget` slots instead of the full prefix. For every layer and every KV head the
// partial cache holds a *subset* of the committed positions:
//   - the sinks:          positions [0, n_sink),
//   - the recent window:  the last `recent` committed positions,
//   - important positions: the top-k of the rest by importance for the current query, where the
//     importance of position p for KV head g is  sum over g's query heads h of  q_h . k_{g,p}
//     (GQA: query head h reads KV head h / (n_heads / n_kv_heads)), in f32: the query heads are
//     summed in head order, then one Backend::KeyScores dot product per position (threaded and
//     SIMD on the CPU). Ties go to the lower position; NaN ranks last.
// The chosen positions are copied, in increasing position order, into the partial cache's slots
// [0, used). `used` is the same for every layer and KV head (each (layer, head) selects the same
// number of positions), only *which* positions differ; so the draft pass attends with the
// ordinary mask prefix_len = used (+ its own tokens, see below) and the partial cache is an
// ordinary KvCache (same KvLayerView) that Transformer::Forward runs over unchanged. Rope was
// applied before K was stored, so copied rows keep their true positions; the draft token is
// roped at its true position and stored at slot DraftSlot(0) = used.
//
// Per-step life cycle (the decoder drives it):
//   committed_len <= budget: the cache is the whole prefix (slot = position, no selection).
//   AppendRecent(full, committed_len): copy newly committed positions while room remains
//     (the same positions for every head). If some did not fit, NeedsReselect() is true and the
//     caller calls Select (TokenSwift's dynamic KV update).
//   SelectStreaming(full, committed_len): sinks + latest positions, when no query is known yet.
//   Select(full, committed_len, queries): choose anew; the selection fills
//     budget - reselect_room slots so that the next reselect_room committed tokens are appended
//     without selecting again (reselect_room = 0 is the literal "top-(B - sinks - R)").
//
// Decisions are plain data (PartialCacheSelection) so a coordinator rank can compute them and
// broadcast the flat position array; every rank then calls Apply with it.
//
// No allocation after Create: the score and index scratch is sized for the full cache's capacity.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/status.h"
#include "kernels/backend.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/config.h"

namespace ts {

struct PartialCacheConfig {
  int64_t budget = 4096;      // B: slots holding committed positions
  int64_t n_sink = 16;        // positions [0, n_sink) always kept
  int64_t recent = 1024;      // R: the last R committed positions always kept
  int64_t reselect_room = 0;  // slots a selection leaves free for AppendRecent
  int64_t draft_slots = 4;    // extra slots past `budget` for the draft pass's own tokens
};

// Which full-cache positions the partial cache holds: for (layer l, KV head g), positions
// [count) of row (l, g), strictly increasing; slot i of the partial cache holds position i of
// the row. `count` is the same for every row. Storage is sized once (n_layers * n_kv_heads *
// budget) and reused; `positions` is one flat array so it can be broadcast as is.
struct PartialCacheSelection {
  int n_layers = 0;
  int n_kv_heads = 0;
  int64_t budget = 0;
  int64_t count = 0;               // valid positions per row
  int64_t committed_len = 0;       // committed positions this selection was made for
  bool whole_prefix = false;       // true: position i == i for every row (no selection was needed)
  std::vector<int32_t> positions;  // (n_layers, n_kv_heads, budget)

  void Resize(int layers, int kv_heads, int64_t budget_slots);
  int32_t* Row(int layer, int head) {
    return positions.data() + (static_cast<int64_t>(layer) * n_kv_heads + head) * budget;
  }
  std::span<const int32_t> Positions(int layer, int head) const {
    return {positions.data() + (static_cast<int64_t>(layer) * n_kv_heads + head) * budget,
            static_cast<size_t>(count)};
  }
};

class PartialKvCache {
 public:
  // `max_context`: capacity of the full cache this one reads (bounds the selection scratch).
  // `dtype` must equal the full cache's dtype (rows are copied bit for bit). `backend` (not
  // owned) computes the importance scores (Backend::KeyScores) over the full cache's memory.
  static StatusOr<std::unique_ptr<PartialKvCache>> Create(const ModelConfig& model,
                                                          const PartialCacheConfig& config,
                                                          int64_t max_context, DType dtype,
                                                          Backend* backend);
  PartialKvCache(const PartialKvCache&) = delete;
  PartialKvCache& operator=(const PartialKvCache&) = delete;

  // Chooses the positions for `committed_len` committed tokens of `full` into *out (which must
  // have been Resize'd for this cache, see NewSelection) without touching the cache.
  // queries: (n_layers, n_heads, head_dim) f32, the current token's post-rope query per layer
  // (unused when committed_len <= budget).
  Status ComputeSelection(const KvCache& full, int64_t committed_len,
                          std::span<const float> queries, PartialCacheSelection* out);
  // Copies the K/V rows `selection` names from `full` into slots [0, selection.count).
  Status Apply(const KvCache& full, const PartialCacheSelection& selection);
  // ComputeSelection + Apply into this cache's own selection.
  Status Select(const KvCache& full, int64_t committed_len, std::span<const float> queries);
  // The selection when no query is known yet (a prompt longer than the budget, before the first
  // draft pass): the sinks and the latest budget - reselect_room - n_sink positions, the same for
  // every (layer, head) (StreamingLLM's layout; TokenSwift's reference drafts over this layout for
  // one step after its window overflows). Whole prefix when committed_len <= budget.
  Status ComputeStreamingSelection(const KvCache& full, int64_t committed_len,
                                   PartialCacheSelection* out) const;
  Status SelectStreaming(const KvCache& full, int64_t committed_len);

  // Appends positions [covered_len(), committed_len) of `full`, as many as fit in the budget.
  // The first call after Create may start from 0 (the whole-prefix case).
  Status AppendRecent(const KvCache& full, int64_t committed_len);
  // True when committed positions exist that the cache could not take (call Select).
  bool NeedsReselect() const { return pending_; }

  // An empty selection sized for this cache (allocate once, e.g. on a receiving rank).
  PartialCacheSelection NewSelection() const;

  // The store the draft pass runs Forward over: attend to slots [0, used()) plus its own tokens
  // written at DraftSlot(0), DraftSlot(1), ...
  KvCache& cache() { return *cache_; }
  const KvCache& cache() const { return *cache_; }
  KvLayerView Layer(int layer) const { return cache_->Layer(layer); }
  int64_t used() const { return selection_.count; }
  int32_t DraftSlot(int i) const { return static_cast<int32_t>(selection_.count + i); }
  // Committed positions [0, covered_len()) have been considered (held or deliberately dropped).
  int64_t covered_len() const { return covered_len_; }
  const PartialCacheSelection& selection() const { return selection_; }
  const PartialCacheConfig& config() const { return config_; }
  // Bytes held: the slot store, the selection and the selection scratch.
  size_t bytes() const;

 private:
  PartialKvCache() = default;
  Status CheckFull(const KvCache& full, int64_t committed_len) const;
  // Top `k` of [lo, hi) for (layer, head) into row[0..k), in increasing position order.
  Status PickImportant(const KvLayerView& view, int head, const float* q_group, int64_t lo,
                       int64_t hi, int64_t k, int32_t* row);

  PartialCacheConfig config_;
  int n_layers_ = 0;
  int n_heads_ = 0;
  int n_kv_heads_ = 0;
  int head_dim_ = 0;
  int64_t max_context_ = 0;
  DType dtype_ = DType::kF32;
  std::unique_ptr<KvCache> cache_;  // capacity budget + draft_slots
  PartialCacheSelection selection_;
  int64_t covered_len_ = 0;
  bool pending_ = false;
  // Scratch, sized at Create.
  Backend* backend_ = nullptr;
  std::vector<float> scores_;       // (max_context) importance by position
  std::vector<int32_t> order_;      // (max_context) candidate positions
  std::vector<float> q_sum_;        // (head_dim) query heads of one group, summed
  std::vector<int64_t> histogram_;  // (2^kRadixBits) radix buckets of the top-k pass
  std::vector<uint32_t> keys_;      // (max_context) bucket of each position's score
  // A device backend's side of q_sum_, scores_ and the selection (empty on host memory).
  Buffer q_dev_, scores_dev_, slots_dev_;
};

}  // namespace ts
