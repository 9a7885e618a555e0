#include "runtime/decode/draft_tree.h"

#include <algorithm>
#include <cassert>

namespace ts {

DraftTree::DraftTree(const DraftTreeOptions& options) : options_(options) {
  options_.max_nodes = std::max(options_.max_nodes, 1);
  options_.max_depth = std::max(options_.max_depth, 0);
  const size_t n = options_.max_nodes;
  for (auto* v : {&tokens_, &parents_, &depths_, &positions_, &slots_, &prefix_len_, &first_child_,
                  &next_sibling_, &last_child_, &child_list_}) {
    v->resize(n);
  }
  origins_.resize(n);
  extra_begin_.resize(n + 1);
  child_begin_.resize(n + 1);
  extra_slots_.resize(n * (options_.max_depth + 1));
  path_.resize(options_.max_depth + 1);
  Reset(0, 0);
}

void DraftTree::Reset(int32_t root_token, int32_t cached_len) {
  cached_len_ = cached_len;
  size_ = 0;
  finalized_ = false;
  extra_begin_[0] = 0;
  NewNode(-1, root_token, 0);
}

int DraftTree::NewNode(int parent, int32_t token, uint8_t origin) {
  const int i = size_++;
  const int depth = parent < 0 ? 0 : depths_[parent] + 1;
  tokens_[i] = token;
  parents_[i] = parent;
  depths_[i] = depth;
  positions_[i] = cached_len_ + depth;
  slots_[i] = cached_len_ + i;
  prefix_len_[i] = cached_len_;
  origins_[i] = origin;
  first_child_[i] = next_sibling_[i] = last_child_[i] = -1;
  if (parent >= 0) {
    if (last_child_[parent] < 0) {
      first_child_[parent] = i;
    } else {
      next_sibling_[last_child_[parent]] = i;
    }
    last_child_[parent] = i;
  }
  // Mask row: the parent's ancestor slots (root .. parent), then this node's slot.
  int32_t* row = extra_slots_.data() + extra_begin_[i];
  if (parent >= 0) {
    const int32_t* parent_row = extra_slots_.data() + extra_begin_[parent];
    std::copy(parent_row, parent_row + depth, row);
  }
  row[depth] = slots_[i];
  extra_begin_[i + 1] = extra_begin_[i] + depth + 1;
  finalized_ = false;
  return i;
}

int DraftTree::FindChild(int parent, int32_t token) const {
  for (int c = first_child_[parent]; c >= 0; c = next_sibling_[c]) {
    if (tokens_[c] == token) return c;
  }
  return -1;
}

int DraftTree::AddHeadTree(std::span<const std::span<const int32_t>> topk) {
  const int levels = static_cast<int>(std::min(
      {options_.static_shape.size(), topk.size(), static_cast<size_t>(options_.max_depth)}));
  const int size_before = size_;
  for (int d = 0; d < levels; ++d) {
    const int width = std::min(options_.static_shape[d], static_cast<int>(topk[d].size()));
    const int level_end = size_;  // depth-d parents all exist already; children go after
    for (int p = 0; p < level_end; ++p) {
      if (depths_[p] != d || (d > 0 && !(origins_[p] & kFromHeads))) continue;
      for (int r = 0; r < width; ++r) {
        int c = FindChild(p, topk[d][r]);
        if (c < 0) {
          if (size_ == options_.max_nodes) return size_ - size_before;
          c = NewNode(p, topk[d][r], 0);
        }
        origins_[c] |= kFromHeads;
      }
    }
  }
  return size_ - size_before;
}

int DraftTree::AddBranch(std::span<const int32_t> tokens, uint8_t origin) {
  const size_t len = std::min(tokens.size(), static_cast<size_t>(options_.max_depth));
  const int size_before = size_;
  int node = 0;
  for (size_t j = 0; j < len; ++j) {
    int c = FindChild(node, tokens[j]);
    if (c < 0) {
      if (size_ == options_.max_nodes) break;
      c = NewNode(node, tokens[j], 0);
    }
    origins_[c] |= origin;
    node = c;
  }
  return size_ - size_before;
}

int DraftTree::AddChild(int parent, int32_t token, uint8_t origin) {
  int c = FindChild(parent, token);
  if (c < 0) {
    if (size_ == options_.max_nodes || depths_[parent] >= options_.max_depth) return -1;
    c = NewNode(parent, token, 0);
  }
  origins_[c] |= origin;
  return c;
}

void DraftTree::Finalize() {
  // Children of node p are child_list_[child_begin_[p] .. child_begin_[p+1]), in creation order.
  int32_t next = 0;
  for (int p = 0; p < size_; ++p) {
    child_begin_[p] = next;
    for (int c = first_child_[p]; c >= 0; c = next_sibling_[c]) child_list_[next++] = c;
  }
  child_begin_[size_] = next;
  finalized_ = true;
}

int DraftTree::MatchingChild(int node, int32_t token) const {
  assert(finalized_ && "DraftTree: the walk needs Finalize()");
  int next = -1;
  for (int32_t c : Children(node)) {
    if (tokens_[c] == token) {
      // First matching child wins; the trie makes it the only one.
      assert(next < 0 && "DraftTree: two siblings carry the same token");
      if (next < 0) next = c;
    }
  }
  return next;
}

DraftTree::Accepted DraftTree::AcceptPath(std::span<const int32_t> targets) {
  assert(targets.size() == Rows());
  return *Walk(INT64_MAX, [&](int node) -> int32_t { return targets[node]; });
}

}  // namespace ts
