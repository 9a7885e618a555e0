// TokenSwift's draft pass over the partial KV cache (DESIGN.md sections 1.1 and 1.5).
//
// The draft pass runs the *target* model on the last committed token (the root of the next tree),
// but its attention reads a PartialKvCache (runtime/kv/partial_cache.h) of `budget` slots instead
// of the full prefix: per (layer, KV head) the sinks, the positions most important for a recent
// query, and the most recent window. The partial cache is an ordinary KvCache whose slots
// [0, used) hold the chosen rows (keys roped at their true positions), so the pass is the one
// Transformer::Forward with
//   tokens = {root}, positions = {n} (its true position), slots = {DraftSlot(0) = used},
//   mask prefix_len = used + 1,
// and the root's K/V goes to the partial cache only (the verify pass writes it to the full cache).
// Outputs: the hidden state before the final norm (what the draft heads read) and optionally the
// model's own next-token logits; both only propose, so drafting quality never changes the output
// (DESIGN.md section 2).
//
// While committed_len <= budget the partial cache is the whole prefix at slot = position, so a
// draft equals a full-cache draft bit for bit (same rows, same order, same kernels).
//
// Which query selects. Importance needs a query per layer, but the current token's query at
// layer l is only known inside the forward pass, after layers < l have attended over the very
// cache being selected. We select with the queries the *latest draft pass* captured
// (ForwardBatch::capture_rows): the previous root's post-rope query at every layer, a committed
// token a few positions back, computed over the partial cache of its step. Capturing is a copy of
// (n_layers, n_heads * head_dim) floats per draft; selecting costs nothing extra in passes.
// TokenSwift's reference (bigai-nlco/TokenSwift, models/cache.py RetrievalCache and
// models/modeling_qwen2_5.py) is stale in the same way: when its recent window overflows
// (update_retri_cache) the next draft runs over sinks + the latest positions, and the next
// *verify* pass re-selects at every layer with `query_states[:, :, -1:]`, the query of the last
// token of the verify batch (a speculative tree node, not necessarily accepted), summed over the
// GQA group, top (B - 16) of the committed prefix past the 16 sinks; newer tokens then overwrite
// the lowest-ranked slots. Before any draft has run (a prompt longer than the budget) we do the
// same as its overflow step: sinks + latest positions (PartialKvCache::SelectStreaming).
//
// Per decoding step (n = committed tokens whose K/V is in the full cache; root = token n):
//   Update(n)            after prefill and after each step's compaction: appends the newly
//                        committed positions; when they do not fit, selects anew (returns the
//                        selection, plain data a coordinator can broadcast; nullptr otherwise);
//   Draft(root, n, h, l) before building the tree.
// A selection refills budget - reselect_room slots, so with reselect_room = R it runs about once
// every R committed tokens (R = 0 selects on every step once the cache is full).
//
// No allocation after Create.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "common/status.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/kv/partial_cache.h"
#include "runtime/model/transformer.h"

namespace ts {

struct PartialDrafterStats {
  int64_t drafts = 0;
  int64_t reselects = 0;             // importance selections (with a captured query)
  int64_t streaming_selects = 0;     // selections made before any query was known
  int64_t last_selection_count = 0;  // positions per (layer, KV head) of the last selection
  int64_t last_selection_len = 0;    // committed length the last selection was made for
  double select_seconds = 0.0;       // all selections: scoring, top-k and copying rows
  double last_select_seconds = 0.0;
};

class PartialDrafter {
 public:
  // `full` is the full cache the verify pass fills (read only here; its dtype is the partial
  // cache's). config.draft_slots must be at least 1.
  static StatusOr<std::unique_ptr<PartialDrafter>> Create(Transformer* model, const KvCache* full,
                                                          const PartialCacheConfig& config);
  PartialDrafter(const PartialDrafter&) = delete;
  PartialDrafter& operator=(const PartialDrafter&) = delete;

  // Runs `token` at `position` over the partial cache, which must cover [0, position) (call
  // Update(position) first). hidden (hidden_size): the hidden state before the final norm;
  // logits (vocab): the model's next-token logits; either may be nullptr. Captures the token's
  // queries for the next selection.
  Status Draft(int32_t token, int32_t position, float* hidden, float* logits);

  // What bringing the partial cache up to committed_len takes: appending the new positions when
  // they fit the budget, else selecting anew (importance with the captured queries, or streaming
  // before any draft). Under tensor parallelism rank 0 decides this and every rank executes it
  // (the message's partial_action); the selection itself is per KV head, so each rank makes it for
  // its own heads from its own keys.
  enum class Action : int32_t { kAppend = 0, kSelect = 1 };
  Action Planned(int64_t committed_len) const;

  // The full cache holds K/V of positions [0, committed_len): bring the partial cache up to date
  // with `action` (kSelect may select although the new positions would fit; kAppend fails when
  // they do not). Returns the new selection when one was made (valid until the next call),
  // nullptr otherwise.
  StatusOr<const PartialCacheSelection*> Update(int64_t committed_len, Action action);
  StatusOr<const PartialCacheSelection*> Update(int64_t committed_len) {
    return Update(committed_len, Planned(committed_len));
  }

  // The queries the latest Draft captured: (n_layers, n_heads * head_dim), post-rope.
  std::span<const float> queries() const { return queries_; }
  bool has_queries() const { return has_queries_; }
  const PartialKvCache& partial() const { return *partial_; }
  PartialKvCache& partial() { return *partial_; }
  const PartialDrafterStats& stats() const { return stats_; }
  // Bytes held: the partial cache, its selection scratch and the captured queries.
  size_t bytes() const;

 private:
  PartialDrafter() = default;

  Transformer* model_ = nullptr;
  const KvCache* full_ = nullptr;
  std::unique_ptr<PartialKvCache> partial_;
  std::vector<float> queries_;  // (n_layers, n_heads * head_dim)
  bool has_queries_ = false;
  PartialDrafterStats stats_;
  // The one-token batch, kept here so the spans Forward reads stay valid.
  int32_t token_ = 0;
  int32_t position_ = 0;
  int32_t slot_ = 0;
  int32_t prefix_ = 0;
  int32_t row_ = 0;
};

}  // namespace ts
