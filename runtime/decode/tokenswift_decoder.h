// TokenSwift decoding (DESIGN.md sections 1 and 2), first version: draft heads + n-gram
// branches merged into one trie, verified in one forward pass over the full KV cache with a tree
// mask, accepted by walking the tree with the position-keyed sampler, compacted in the cache.
//
// Invariant between steps: tokens_ is the committed stream; the K/V of every committed token but
// the last (the root of the next tree) is in the full cache at slot = position. One step:
//   1. draft: forward the root alone (writes its K/V at slot cached) -> hidden h;
//      distribution 0 = the model's head on h, distributions 1..3 = draft heads on h;
//   2. tree: root, then the static shape over the 4 top-k lists, plus n-gram branches
//      [top1(d0), c0..c3] for the table's top continuations of top1(d0);
//   3. verify: forward every tree node (root included, same K/V again) at position cached+depth,
//      slot cached+index, each node seeing the committed prefix and its ancestors;
//   4. accept: from the root, sample the target of the current node exactly as AR would at that
//      position (same logits bit for bit: batch-invariant kernels; same window: the committed
//      tokens plus the node's ancestors; same key: seed and absolute position); if a child carries
//      that token, move to it and repeat; otherwise the target is the bonus token;
//   5. compact the accepted nodes' K/V to slots cached+1.., feed the n-gram table with tokens
//      older than the penalty window.
// The draft pass here reads the full cache (not yet the partial cache of DESIGN 1.1) and is a
// separate forward pass; the planner of issue 3 (fused drafting, budgets) is still to come.
#pragma once

#include <memory>
#include <vector>

#include "runtime/decode/decoder.h"
#include "runtime/decode/draft_heads.h"
#include "runtime/decode/draft_tree.h"
#include "runtime/decode/ngram_table.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/transformer.h"
#include "runtime/sampling/sampler.h"

namespace ts {

struct TokenSwiftOptions {
  DraftTreeOptions tree;  // static shape [1,3,3,3], max depth 5, max 64 nodes
  int ngram_topk = 20;    // n-gram branches per step
};

class TokenSwiftDecoder : public Decoder {
 public:
  // The cache must hold prompt + committed tokens + options.tree.max_nodes slots; the
  // transformer's max_batch must be at least options.tree.max_nodes.
  TokenSwiftDecoder(Transformer* model, KvCache* cache, DraftHeads* heads,
                    const SamplingParams& params, const TokenSwiftOptions& options);

  Status Prefill(std::span<const int32_t> prompt) override;
  Status Step(int64_t max_tokens, std::vector<int32_t>& out) override;
  const DecodeCounters& counters() const override { return counters_; }

 private:
  Status Draft();                           // fills dist_ from the root
  void BuildTree();                         // tree_ from dist_ and the n-gram table
  Status Verify();                          // hidden_ for every tree node
  int32_t SampleNext(const float* logits);  // target for position tokens_.size()

  Transformer* model_;
  KvCache* cache_;
  DraftHeads* heads_;
  SamplingParams params_;
  TokenSwiftOptions options_;
  Sampler sampler_;
  NgramTable ngrams_;
  DraftTree tree_;
  int64_t vocab_;
  int64_t hidden_size_;
  int64_t prompt_len_ = 0;
  std::vector<int32_t> tokens_;  // committed stream
  int64_t cached_ = 0;           // tokens_[0, cached_) have their K/V in the cache
  // Scratch.
  std::vector<float> dist_;                 // (1 + heads, vocab): distribution 0, then the heads'
  std::vector<float> root_hidden_;          // (hidden)
  std::vector<float> hidden_;               // (max_nodes, hidden): verified hidden states
  std::vector<float> row_logits_;           // (vocab)
  std::vector<std::vector<int32_t>> topk_;  // per distribution
  std::vector<std::span<const int32_t>> topk_lists_;  // views of topk_ handed to the tree
  std::vector<NgramTable::Continuation> conts_;
  std::vector<int32_t> branch_;
  std::vector<int32_t> rows_;
  std::vector<int32_t> path_;  // accepted nodes, root first
  DecodeCounters counters_;
};

}  // namespace ts
