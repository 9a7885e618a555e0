#include "runtime/decode/tokenswift_decoder.h"

#include <algorithm>

namespace ts {
namespace {

// The k largest entries of row (ties -> lower id), best first, into out (resized to k).
void TopK(const float* row, int64_t vocab, int k, std::vector<int32_t>& out) {
  out.assign(k, -1);
  int filled = 0;
  for (int64_t id = 0; id < vocab; ++id) {
    const float v = row[id];
    if (filled == k && !(v > row[out[k - 1]])) continue;
    int i = filled < k ? filled++ : k - 1;
    while (i > 0 && v > row[out[i - 1]]) {
      out[i] = out[i - 1];
      --i;
    }
    out[i] = static_cast<int32_t>(id);
  }
  out.resize(filled);
}

}  // namespace

TokenSwiftDecoder::TokenSwiftDecoder(Transformer* model, KvCache* cache, DraftHeads* heads,
                                     const SamplingParams& params, const TokenSwiftOptions& options)
    : model_(model),
      cache_(cache),
      heads_(heads),
      params_(params),
      options_(options),
      sampler_(params, model->config().vocab_size),
      ngrams_(NgramTable::Options{static_cast<int32_t>(model->config().vocab_size), 1 << 18,
                                  std::max(1, options.ngram_topk)}),
      tree_(options.tree),
      vocab_(model->config().vocab_size),
      hidden_size_(model->config().hidden_size) {
  const int n_dist = static_cast<int>(options.tree.static_shape.size());
  dist_.resize((1 + heads->num_heads()) * vocab_);
  root_hidden_.resize(hidden_size_);
  hidden_.resize(options.tree.max_nodes * hidden_size_);
  row_logits_.resize(vocab_);
  topk_.resize(n_dist);
  for (int d = 0; d < n_dist; ++d) topk_[d].reserve(options.tree.static_shape[d]);
  topk_lists_.resize(n_dist);
  conts_.resize(std::max(1, options.ngram_topk));
  branch_.reserve(NgramTable::kContinuationLen + 1);
  rows_.resize(options.tree.max_nodes);
  for (int i = 0; i < options.tree.max_nodes; ++i) rows_[i] = i;
  path_.reserve(options.tree.max_nodes);
  tokens_.reserve(cache->capacity());
}

Status TokenSwiftDecoder::Prefill(std::span<const int32_t> prompt) {
  if (prompt.empty()) return BadInput("prompt: expected at least one token");
  if (static_cast<int>(options_.tree.static_shape.size()) > 1 + heads_->num_heads()) {
    return BadInput("--tree: ", options_.tree.static_shape.size(), " levels need ",
                    options_.tree.static_shape.size() - 1, " draft heads, the heads file has ",
                    heads_->num_heads());
  }
  if (options_.tree.max_nodes > model_->max_batch()) {
    return absl::InternalError("TokenSwiftDecoder: tree larger than the forward batch");
  }
  tokens_.assign(prompt.begin(), prompt.end());
  prompt_len_ = static_cast<int64_t>(tokens_.size());
  // Every prompt token but the last (the first tree's root) goes into the cache.
  const int64_t end = prompt_len_ - 1;
  TS_RETURN_IF_ERROR(model_->ForwardCausal(tokens_, 0, end, *cache_, nullptr));
  cached_ = end;
  ngrams_.AddUpTo(tokens_, prompt_len_);
  return absl::OkStatus();
}

Status TokenSwiftDecoder::Draft() {
  const int32_t pos = static_cast<int32_t>(cached_);
  const int32_t prefix = pos + 1;
  const int32_t row = 0;
  ForwardBatch batch;
  batch.tokens = std::span<const int32_t>(&tokens_.back(), 1);
  batch.positions = std::span<const int32_t>(&pos, 1);
  batch.slots = batch.positions;
  batch.mask.prefix_len = &prefix;
  batch.logits_rows = std::span<const int32_t>(&row, 1);
  TS_RETURN_IF_ERROR(model_->Forward(batch, *cache_, dist_.data(), root_hidden_.data()));
  return heads_->Apply(*model_->backend(), root_hidden_.data(), 1, model_->weights().lm_head,
                       dist_.data() + vocab_);
}

void TokenSwiftDecoder::BuildTree() {
  tree_.Reset(tokens_.back(), static_cast<int32_t>(cached_));
  for (size_t d = 0; d < topk_.size(); ++d) {
    TopK(dist_.data() + d * vocab_, vocab_, options_.tree.static_shape[d], topk_[d]);
    topk_lists_[d] = topk_[d];
  }
  tree_.AddHeadTree(topk_lists_);
  if (!topk_.empty() && !topk_[0].empty() && options_.ngram_topk > 0) {
    const int32_t first = topk_[0][0];
    const int n = ngrams_.TopK(first, options_.ngram_topk, conts_);
    for (int i = 0; i < n; ++i) {
      branch_.assign(1, first);
      branch_.insert(branch_.end(), conts_[i].tokens.begin(), conts_[i].tokens.end());
      tree_.AddBranch(branch_);
    }
  }
  tree_.Finalize();
}

Status TokenSwiftDecoder::Verify() {
  const int n = tree_.size();
  ForwardBatch batch;
  batch.tokens = tree_.tokens();
  batch.positions = tree_.positions();
  batch.slots = tree_.slots();
  batch.mask = tree_.mask();
  batch.logits_rows = std::span<const int32_t>(rows_.data(), n);
  return model_->Forward(batch, *cache_, nullptr, hidden_.data());
}

int32_t TokenSwiftDecoder::SampleNext(const float* logits) {
  const int64_t n = static_cast<int64_t>(tokens_.size());
  const int64_t window = std::min<int64_t>(params_.penalty_window, n);
  return sampler_.Sample(logits, std::span<const int32_t>(tokens_.data() + n - window, window), n);
}

Status TokenSwiftDecoder::Step(int64_t max_tokens, std::vector<int32_t>& out) {
  out.clear();
  if (max_tokens < 1) return absl::OkStatus();
  if (cached_ + options_.tree.max_nodes > cache_->capacity()) {
    return absl::OutOfRangeError(absl::StrCat("context full: ", tokens_.size(), " tokens"));
  }
  TS_RETURN_IF_ERROR(Draft());
  BuildTree();
  TS_RETURN_IF_ERROR(Verify());

  // Walk from the root, sampling each node's target only when the walk reaches it.
  const std::span<const int32_t> node_tokens = tree_.tokens();
  path_.assign(1, 0);
  int node = 0;
  while (true) {
    model_->Logits(hidden_.data() + node * hidden_size_, 1, row_logits_.data());
    const int32_t target = SampleNext(row_logits_.data());
    tokens_.push_back(target);
    out.push_back(target);
    if (static_cast<int64_t>(out.size()) == max_tokens) break;
    int next = -1;
    for (int child : tree_.Children(node)) {
      if (node_tokens[child] == target) {
        next = child;
        break;
      }
    }
    if (next < 0) break;
    node = next;
    path_.push_back(node);
  }

  // Accepted nodes move to the slots of their positions; the root is already in place.
  const std::span<const uint8_t> origins = tree_.origins();
  for (size_t j = 1; j < path_.size(); ++j) {
    cache_->CopySlot(cached_ + path_[j], cached_ + static_cast<int64_t>(j));
    if (origins[path_[j]] & DraftTree::kFromNgram)
      ++counters_.accepted_ngram;  // proposed by a branch
  }
  cached_ = static_cast<int64_t>(tokens_.size()) - 1;
  ++counters_.steps;
  counters_.committed += static_cast<int64_t>(out.size());
  counters_.drafted += tree_.size() - 1;
  counters_.accepted += static_cast<int64_t>(path_.size()) - 1;
  // The table learns only from tokens older than the penalty window (DESIGN.md 1.5).
  ngrams_.AddUpTo(tokens_, std::max<int64_t>(prompt_len_, static_cast<int64_t>(tokens_.size()) -
                                                              params_.penalty_window));
  return absl::OkStatus();
}

}  // namespace ts
