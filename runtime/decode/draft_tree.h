// DraftTree: one TokenSwift step's token tree as plain arrays (DESIGN.md 1.2-1.4), in the spirit
// of TensorRT-LLM's speculativeChoicesUtils: nodes with parent and depth, then rope positions,
// cache slots and the tree attention mask the kernels read (AttentionMask, kernels/backend.h).
//
// The root. Node 0 is the LAST COMMITTED token: the bonus token of the previous step, whose K/V is
// not in the full cache yet. `cached_len` is the number of tokens whose K/V is in the full cache,
// so the root sits at position cached_len (committed stream = cached_len + 1 tokens). Forwarding
// the root in the verify pass writes its K/V and yields its target sample, the exact next token;
// every draft node is then checked against its parent's target, so the root is always accepted and
// the whole tree is lossless. (TokenSwift's reference roots the tree at the top-1 of the model's
// own head computed on the PARTIAL cache; that token is only a draft, so here it is the depth-1
// node.)
//
// The static tree, shape [1,3,3,3] (DESIGN.md default). Distribution d (d = 0: the model's own
// head, d = 1..3: draft heads 1..3, all from the draft pass) gives a top-k list topk[d]; depth
// d + 1 of the tree is the Cartesian expansion: every depth-d node gets the first shape[d] tokens
// of topk[d] as children (Medusa heads do not condition on the parent's token, so every parent
// gets the same list). Nodes are numbered breadth first, then by parent, then by rank:
//   depth 1:  1 node   (topk[0][0])                          node 1
//   depth 2:  1*3 = 3  (topk[1][0..2] under node 1)          nodes 2..4
//   depth 3:  3*3 = 9  (topk[2][0..2] under each of 2..4)    nodes 5..13
//   depth 4:  9*3 = 27 (topk[3][0..2] under each of 5..13)   nodes 14..40
// 1 + 3 + 9 + 27 = 40 draft nodes, 41 rows with the root.
//
// N-gram branches (DESIGN.md 1.2). A branch is a token sequence hanging below the root: tokens[0]
// at depth 1, tokens[1] at depth 2, ... (at most max_depth tokens; the rest is cut). The decoder
// builds them from NgramTable: for the top-1 token `a` of distribution 0 and each continuation
// (c0 c1 c2 c3) of `a`, the branch is [a, c0, c1, c2, c3] (depth 5, hence max_depth = 5 by
// default). Everything is merged into one trie: a child is created only when its parent has no
// child with that token, so a prefix appears once and siblings always carry distinct tokens.
// Example: topk[0] = {a}, topk[1] = {b, x, y}; the branch [a, b, q] reuses node 1 (a) and node 2
// (b) and adds only q under node 2.
// origins[i] is a bitmask: kFromHeads (static tree), kFromNgram (some branch), both when both
// proposed that prefix; the root has none. The decoder counts accepted n-gram tokens from it.
//
// Node budget. At most max_nodes nodes (root included). Nodes are created in call order: the
// static tree breadth first (so a cut keeps whole shallow levels first), then branches in the order
// given; once the budget is reached no node is created and a branch stops at the first token that
// would need one (its existing prefix still gets the kFromNgram flag). Same inputs, same tree.
//
// Arrays, for node i (parent[i] < i always, so arrays are in topological order):
//   tokens[i], parents[i] (-1 for the root), depths[i] (root 0),
//   positions[i] = cached_len + depth[i]   (rope position: the node's place in its own path),
//   slots[i]     = cached_len + i          (distinct cache slot for every node),
//   mask: prefix_len[i] = cached_len; extra_slots[extra_begin[i] .. extra_begin[i+1]) = the slots
//   of the node's ancestors from the root down to itself.
// Example, cached_len = 10, root r, node 1 = a (child of r), node 2 = b (child of a), node 3 = c
// (child of r): positions {10,11,12,11}, slots {10,11,12,13}, prefix_len {10,10,10,10},
// extra_begin {0,1,3,6,8}, extra_slots {10, 10,11, 10,11,12, 10,13}.
//
// Acceptance (DESIGN.md 1.4). targets[i] is the token the verifier sampled at node i (for the
// position after node i). From the root: the child whose token equals the current node's target
// is accepted (at most one can: siblings are distinct); stop when none does. The result is the
// accepted node path (root first) and the bonus token = target of the last accepted node. The
// decoder commits tokens[path[1..]] then the bonus, and compacts the K/V of path node path[j]
// from slot cached_len + path[j] to cached_len + j (the root is already in place).
//
// Use per step (nothing allocates after construction):
//   tree.Reset(root_token, cached_len);
//   tree.AddHeadTree(topk);            // topk[d]: distribution d's tokens, best first
//   tree.AddBranch(branch);            // for every n-gram branch
//   tree.Finalize();                   // children lists; arrays are ready
//   ... verify forward over tree.tokens()/positions()/slots()/mask() ...
//   DraftTree::Accepted acc = tree.AcceptPath(targets);
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "common/status.h"
#include "kernels/backend.h"
#include "runtime/model/transformer.h"

namespace ts {

struct DraftTreeOptions {
  std::vector<int> static_shape = {1, 3, 3, 3};  // shape[d]: top-k of distribution d at depth d+1
  int max_depth = 5;   // deepest node below the root (static depth and n-gram branches)
  int max_nodes = 64;  // nodes per tree, root included (verify batch rows)
};

class DraftTree {
 public:
  static constexpr uint8_t kFromHeads = 1;  // origin bit: node is in the static head tree
  static constexpr uint8_t kFromNgram = 2;  // origin bit: node is on an n-gram branch

  struct Accepted {
    std::span<const int32_t> path;  // node indices, root first; valid until the next Reset
    int32_t bonus_token = -1;       // target of path.back()
  };

  explicit DraftTree(const DraftTreeOptions& options);

  // Starts a tree with only the root (see the file comment for what the root is).
  void Reset(int32_t root_token, int32_t cached_len);
  // Adds the static tree: depth d+1 expands every depth-d node with the first
  // min(shape[d], topk[d].size()) tokens of topk[d], for d < min(shape.size(), topk.size(),
  // max_depth). Returns the number of nodes created.
  int AddHeadTree(std::span<const std::span<const int32_t>> topk);
  // Merges `tokens` (depth 1 downwards, cut at max_depth) into the trie under the root, flagging
  // every node on it with `origin`. Returns the number of nodes created.
  int AddBranch(std::span<const int32_t> tokens, uint8_t origin = kFromNgram);
  // The child of `parent` carrying `token`: the existing one (its origin gains `origin`) or a new
  // node. -1 when a new node is needed but the tree is full or parent is at max_depth.
  int AddChild(int parent, int32_t token, uint8_t origin);
  // Builds the children lists. Call after the last Add and before Children/AcceptPath.
  void Finalize();

  int size() const { return size_; }
  int32_t cached_len() const { return cached_len_; }
  std::span<const int32_t> tokens() const { return {tokens_.data(), Rows()}; }
  std::span<const int32_t> parents() const { return {parents_.data(), Rows()}; }
  std::span<const int32_t> depths() const { return {depths_.data(), Rows()}; }
  std::span<const int32_t> positions() const { return {positions_.data(), Rows()}; }
  std::span<const int32_t> slots() const { return {slots_.data(), Rows()}; }
  std::span<const uint8_t> origins() const { return {origins_.data(), Rows()}; }
  std::span<const int32_t> prefix_len() const { return {prefix_len_.data(), Rows()}; }
  std::span<const int32_t> extra_begin() const { return {extra_begin_.data(), Rows() + 1}; }
  std::span<const int32_t> extra_slots() const {
    return {extra_slots_.data(), static_cast<size_t>(extra_begin_[size_])};
  }
  // Pointers into this tree; valid until the next Reset.
  AttentionMask mask() const {
    return {prefix_len_.data(), extra_begin_.data(), extra_slots_.data()};
  }
  // The verify pass over this tree: every node's token at its position and slot under the tree
  // mask, logits for `logits_rows`. Pointers into this tree; valid until the next Reset.
  ForwardBatch VerifyBatch(std::span<const int32_t> logits_rows) const {
    ForwardBatch batch;
    batch.tokens = tokens();
    batch.positions = positions();
    batch.slots = slots();
    batch.mask = mask();
    batch.logits_rows = logits_rows;
    return batch;
  }
  // Children of `node` in creation order. Needs Finalize.
  std::span<const int32_t> Children(int node) const {
    return {child_list_.data() + child_begin_[node],
            static_cast<size_t>(child_begin_[node + 1] - child_begin_[node])};
  }
  // The acceptance walk, the only one (TokenSwiftDecoder::Step runs it; tests run it through
  // AcceptPath too). From the root: target_of(node) returns the token the target distribution
  // samples at `node` (a StatusOr<int32_t>, or a plain int32_t); it is called only for nodes the
  // walk reaches, in path order, so a caller can append each target to its penalty window and
  // to the committed stream before the next call (a node's target then sees its ancestors). The
  // walk moves to the child carrying that token and stops at a node without one, or after
  // max_targets targets (the last is then the bonus token even when a child matches). Returns
  // the path and the last target; a target_of error ends the walk with that error. Needs
  // Finalize.
  template <typename TargetFn>
  StatusOr<Accepted> Walk(int64_t max_targets, TargetFn&& target_of) {
    int len = 0;
    int node = 0;
    path_[len++] = 0;
    for (int64_t n = 1;; ++n) {
      StatusOr<int32_t> got = target_of(node);
      if (!got.ok()) return got.status();
      const int32_t target = *got;
      if (n >= max_targets) return Accepted{{path_.data(), static_cast<size_t>(len)}, target};
      const int next = MatchingChild(node, target);
      if (next < 0) return Accepted{{path_.data(), static_cast<size_t>(len)}, target};
      node = next;
      path_[len++] = node;
    }
  }
  // Walk with precomputed targets (targets.size() == size()). Needs Finalize.
  Accepted AcceptPath(std::span<const int32_t> targets);

  const DraftTreeOptions& options() const { return options_; }

 private:
  size_t Rows() const { return static_cast<size_t>(size_); }
  // Child of `parent` carrying `token`, or -1. Linear in the number of children.
  int FindChild(int parent, int32_t token) const;
  // The same from the finalized children lists (the trie makes the match unique).
  int MatchingChild(int node, int32_t token) const;
  // Appends a node; the caller checks the budget and depth.
  int NewNode(int parent, int32_t token, uint8_t origin);

  DraftTreeOptions options_;
  int32_t cached_len_ = 0;
  int size_ = 0;
  bool finalized_ = false;
  // (max_nodes) each
  std::vector<int32_t> tokens_, parents_, depths_, positions_, slots_, prefix_len_;
  std::vector<uint8_t> origins_;
  std::vector<int32_t> first_child_, next_sibling_, last_child_;  // build-time linked lists
  std::vector<int32_t> extra_begin_;                              // (max_nodes + 1)
  std::vector<int32_t> extra_slots_;                              // (max_nodes * (max_depth + 1))
  std::vector<int32_t> child_begin_;                              // (max_nodes + 1)
  std::vector<int32_t> child_list_;                               // (max_nodes)
  std::vector<int32_t> path_;                                     // (max_depth + 1)
};

}  // namespace ts
