// TokenSwift decoding (DESIGN.md sections 1 and 2): draft heads + n-gram branches merged into one
// trie, verified in one forward pass over the full KV cache with a tree mask, accepted by walking
// the tree with the position-keyed sampler, compacted in the cache. A DraftPlanner chooses, step
// by step, how to draft and how many rows to verify (see draft_planner.h).
//
// Invariant between steps: tokens_ is the committed stream; the K/V of every committed token but
// the last (the root of the next tree) is in the full cache at slot = position. One step:
//   1. draft, by the plan's kind:
//        kAr:       nothing; the tree is the root alone (a plain AR step);
//        kFused:    the draft heads already ran at the end of the previous step, on the verified
//                   hidden state of its last accepted node (the root's parent): head i's top list
//                   serves depth i + 1;
//        kSeparate: forward the root alone (writes its K/V at slot cached) -> hidden h; the
//                   model's head on h serves depth 1, draft head i depth i + 2;
//   2. tree: the root, then the nodes of highest estimated acceptance (planner statistics) from
//      the heads' top lists and the n-gram table's continuations of the root, best first, up to
//      the plan's row budget; or, with a static shape (--tree), the Cartesian tree + branches;
//   3. verify: forward every tree node (root included) at position cached+depth, slot
//      cached+index, each node seeing the committed prefix and its ancestors;
//   4. accept: from the root, sample the target of the current node exactly as AR would at that
//      position (same logits bit for bit: batch-invariant kernels; same window: the committed
//      tokens plus the node's ancestors; same key: seed and absolute position); if a child carries
//      that token, move to it and repeat; otherwise the target is the bonus token;
//   5. compact the accepted nodes' K/V to slots cached+1.., feed the n-gram table with tokens
//      older than the penalty window, record acceptance statistics and the step's cost, plan the
//      next step (and run the heads now when it is fused).
// The separate draft pass reads the partial KV cache (PartialDrafter), brought up to date from the
// full cache right before each draft pass (so steps that do not draft separately pay nothing).
#pragma once

#include <memory>
#include <vector>

#include "parallel/step_message.h"
#include "runtime/decode/decoder.h"
#include "runtime/decode/draft_heads.h"
#include "runtime/decode/draft_planner.h"
#include "runtime/decode/draft_tree.h"
#include "runtime/decode/ngram_table.h"
#include "runtime/decode/partial_drafter.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/transformer.h"
#include "runtime/sampling/sampler.h"
#include "runtime/sampling/sharded_sampler.h"

namespace ts {

struct TokenSwiftOptions {
  DraftTreeOptions tree;     // max_nodes: verify rows (root included); static_shape: see below
  bool static_tree = false;  // true: tree.static_shape every step (--tree), no sizing, no AR steps
  int ngram_topk = 20;       // n-gram branches per step
  DraftingMode drafting = DraftingMode::kAuto;
  bool ar_fallback = true;  // the planner may take plain AR steps when speculation does not pay
  int fixed_nodes = 0;      // > 0: verify this many rows every speculative step
  bool calibrate = true;    // measure verify costs after prefill (and every recalibrate_every)
  int64_t recalibrate_every = 4096;  // committed tokens between calibrations; 0 = never
  // The separate draft pass's partial KV cache (DESIGN.md 1.1); its budget is capped at the full
  // cache's capacity (a job shorter than the budget drafts over its whole prefix).
  PartialCacheConfig partial{
      .budget = 4096, .n_sink = 16, .recent = 1024, .reselect_room = 512, .draft_slots = 1};
};

class TokenSwiftDecoder : public Decoder {
 public:
  // The cache must hold prompt + committed tokens + options.tree.max_nodes slots; the
  // transformer's max_batch must be at least options.tree.max_nodes.
  // Tensor parallel: `sharded` samples and ranks draft lists over the rank's vocabulary range
  // (the model's and the heads' logits cover only that). With more than one rank, rank 0 is the
  // coordinator (DESIGN.md 4): it alone keeps the n-gram table and the planner, builds each tree
  // and sends it (TreeMessage), and after acceptance sends the accepted path with the next step's
  // plan, calibration and partial-cache action (CommitMessage, parallel/step_message.h). The
  // other ranks run the same forward passes and collective sampling on their shards, rebuild the
  // tree from the message, and check that their walk of it gives rank 0's path (it must: the
  // targets are collective results); a difference is an error naming the rank and the step.
  TokenSwiftDecoder(Transformer* model, KvCache* cache, DraftHeads* heads,
                    const SamplingParams& params, const TokenSwiftOptions& options,
                    ShardedSampler* sharded = nullptr);

  Status Prefill(std::span<const int32_t> prompt) override;
  Status Step(int64_t max_tokens, std::vector<int32_t>& out) override;
  const DecodeCounters& counters() const override { return counters_; }
  const DraftPlanner& planner() const { return planner_; }
  const PartialDrafter* drafter() const { return drafter_.get(); }

 private:
  Status Draft();  // kSeparate: dist_ rows 0..heads from the root
  // dist_ rows `first`.. <- the heads on `hidden`; `next` is the token after hidden's position
  // (read by heads with a token input).
  Status ApplyHeads(const float* hidden, int32_t next, int first);
  Status FillLists(int rows, int k);  // topk_[0..rows) from dist_
  Status BuildTree();                 // tree_ for plan_ (rank 0's, under coordination)
  void BuildStaticTree(int levels);
  void BuildPlannedTree(int head_depth);
  Status ReceiveTree();              // workers: tree_ <- rank 0's TreeMessage
  Status ExchangeCommit();           // rank 0 sends, workers check and adopt
  Status Verify(bool eager_logits);  // hidden_ (and logits_all_) for every tree node
  Status Calibrate();                // verify costs by rows, heads and draft costs
  Status PlanNext();                 // plan_ for the next step (+ heads when fused)
  StatusOr<int32_t> SampleNext(const float* logits);  // target for position tokens_.size()
  void RecordTarget(int depth, int32_t target);

  Transformer* model_;
  KvCache* cache_;
  DraftHeads* heads_;
  SamplingParams params_;
  TokenSwiftOptions options_;
  Sampler sampler_;
  ShardedSampler* sharded_;
  NgramTable ngrams_;
  DraftTree tree_;
  DraftPlanner planner_;
  std::unique_ptr<PartialDrafter> drafter_;  // created by Prefill
  StepPlan plan_;                            // this step's plan
  bool calibrate_next_ = false;              // calibrate at the start of the next step
  // Under coordination: what the next partial-cache update does (rank 0's decision).
  PartialDrafter::Action next_partial_ = PartialDrafter::Action::kAppend;
  bool partial_decided_ = false;          // next_partial_ holds a decision not yet executed
  std::unique_ptr<StepChannel> channel_;  // more than one rank: rank 0's messages
  bool coordinator_ = true;               // rank 0, or no tensor parallelism
  int64_t step_index_ = 0;                // steps taken (the messages' step)
  TreeMessage tree_msg_;
  CommitMessage commit_msg_;
  int list_k_ = 8;                // top-list length per distribution
  int n_conts_ = 0;               // n-gram continuations of the root, in conts_
  int64_t next_calibration_ = 0;  // committed length at which to calibrate again
  int64_t vocab_;  // width of a logits row: the rank's range under tensor parallelism
  int64_t hidden_size_;
  int64_t prompt_len_ = 0;
  std::vector<int32_t> tokens_;  // committed stream
  int64_t cached_ = 0;           // tokens_[0, cached_) have their K/V in the cache
  // Scratch.
  std::vector<float> dist_;         // (1 + heads, vocab): by depth - 1 (see Step)
  std::vector<float> root_hidden_;  // (hidden)
  std::vector<float> token_emb_;    // (hidden): embedding of the heads' token input
  std::vector<int32_t> guess_;      // separate drafting: depth 1's best candidate
  std::vector<float> hidden_;       // (max_nodes, hidden): verified hidden states
  std::vector<float> logits_all_;   // (kEagerLogitsRows, vocab): logits of small trees' rows
  std::vector<float> row_logits_;   // (vocab)
  std::vector<uint8_t> alive_;      // (ngram_topk): branch still on the walked path
  std::vector<std::vector<int32_t>> topk_;            // per distribution
  std::vector<std::span<const int32_t>> topk_lists_;  // views of topk_ handed to the tree
  std::vector<NgramTable::Continuation> conts_;
  std::vector<int32_t> branch_;
  std::vector<int32_t> rows_;
  std::vector<int32_t> path_;  // accepted nodes, root first
  struct TreeCandidate {
    double prob;               // product of acceptance rates along the path
    int parent, depth, index;  // index: rank in the depth's list (heads) or n-gram branch
    bool ngram;
    bool operator<(const TreeCandidate& o) const { return prob < o.prob; }
  };
  std::vector<TreeCandidate> heap_;  // BuildPlannedTree's best-first queue
  DecodeCounters counters_;
};

}  // namespace ts
