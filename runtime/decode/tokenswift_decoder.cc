#include "runtime/decode/tokenswift_decoder.h"

#include <algorithm>
#include <chrono>
#include <string>

#include "absl/strings/str_format.h"
#include "spdlog/spdlog.h"

namespace ts {
namespace {

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

// Trees up to this many rows get every row's logits in the verify pass (the head reads lm_head
// once for all rows); larger trees compute logits only for the nodes the walk reaches.
constexpr int kEagerLogitsRows = 16;

DraftPlannerOptions PlannerOptions(const TokenSwiftOptions& o, int num_heads) {
  DraftPlannerOptions p;
  p.max_nodes = o.tree.max_nodes;
  p.fixed_nodes = o.fixed_nodes;
  p.num_heads = num_heads;
  p.ngram_topk = o.ngram_topk;
  p.ngram_depth = NgramTable::kContinuationLen;
  p.mode = o.drafting;
  p.ar_fallback = o.ar_fallback;
  return p;
}

}  // namespace

TokenSwiftDecoder::TokenSwiftDecoder(Transformer* model, KvCache* cache, DraftHeads* heads,
                                     const SamplingParams& params, const TokenSwiftOptions& options,
                                     ShardedSampler* sharded)
    : model_(model),
      cache_(cache),
      heads_(heads),
      params_(params),
      options_(options),
      sampler_(params, model->config().vocab_size),
      sharded_(sharded),
      ngrams_(NgramTable::Options{static_cast<int32_t>(model->config().vocab_size), 1 << 18,
                                  std::max(1, options.ngram_topk)}),
      tree_(options.tree),
      planner_(PlannerOptions(options, heads->num_heads())),
      vocab_(sharded != nullptr ? sharded->range().size() : model->config().vocab_size),
      hidden_size_(model->config().hidden_size) {
  const int n_dist = 1 + heads->num_heads();
  if (options_.static_tree) {
    list_k_ = 1;
    for (int w : options_.tree.static_shape) list_k_ = std::max(list_k_, w);
  } else {
    list_k_ = planner_.options().list_k;
  }
  dist_.resize(n_dist * vocab_);
  root_hidden_.resize(hidden_size_);
  token_emb_.resize(hidden_size_);
  hidden_.resize(options.tree.max_nodes * hidden_size_);
  logits_all_.resize(std::min(kEagerLogitsRows, options.tree.max_nodes) * vocab_);
  row_logits_.resize(vocab_);
  topk_.resize(n_dist);
  for (auto& list : topk_) list.reserve(list_k_);
  topk_lists_.resize(n_dist);
  conts_.resize(std::max(1, options.ngram_topk));
  alive_.resize(std::max(1, options.ngram_topk));
  branch_.reserve(NgramTable::kContinuationLen + 1);
  rows_.resize(options.tree.max_nodes);
  for (int i = 0; i < options.tree.max_nodes; ++i) rows_[i] = i;
  path_.reserve(options.tree.max_nodes);
  // Every created node pushes at most list_k head candidates and one n-gram candidate.
  heap_.reserve(static_cast<size_t>(options.tree.max_nodes) * (list_k_ + 1) +
                std::max(1, options.ngram_topk));
  tokens_.reserve(cache->capacity());
  if (sharded != nullptr && sharded->comm()->size() > 1) {
    channel_ = std::make_unique<StepChannel>(sharded->comm(), options.tree.max_nodes);
    coordinator_ = channel_->is_coordinator();
    for (auto* v : {&tree_msg_.tokens, &tree_msg_.parents, &tree_msg_.positions, &commit_msg_.path})
      v->reserve(options.tree.max_nodes);
    tree_msg_.origins.reserve(options.tree.max_nodes);
  }
}

Status TokenSwiftDecoder::Prefill(std::span<const int32_t> prompt) {
  if (prompt.empty()) return BadInput("prompt: expected at least one token");
  if (options_.static_tree &&
      static_cast<int>(options_.tree.static_shape.size()) > 1 + heads_->num_heads()) {
    return BadInput("--tree: ", options_.tree.static_shape.size(), " levels need ",
                    options_.tree.static_shape.size() - 1, " draft heads, the heads file has ",
                    heads_->num_heads());
  }
  if (options_.tree.max_nodes > model_->max_batch()) {
    return absl::InternalError("TokenSwiftDecoder: tree larger than the forward batch");
  }
  if (drafter_ == nullptr) {
    PartialCacheConfig partial = options_.partial;
    partial.budget = std::min(partial.budget, cache_->capacity());
    partial.recent = std::min(partial.recent, partial.budget / 2);
    partial.n_sink = std::min(partial.n_sink, partial.budget / 4);
    partial.reselect_room = std::min(partial.reselect_room, partial.budget / 4);
    partial.draft_slots = std::max<int64_t>(partial.draft_slots, 1);
    TS_ASSIGN_OR_RETURN(drafter_, PartialDrafter::Create(model_, cache_, partial));
  }
  tokens_.assign(prompt.begin(), prompt.end());
  prompt_len_ = static_cast<int64_t>(tokens_.size());
  // Every prompt token but the last (the first tree's root) goes into the cache.
  const int64_t end = prompt_len_ - 1;
  TS_RETURN_IF_ERROR(model_->ForwardCausal(tokens_, 0, end, *cache_, nullptr));
  cached_ = end;
  step_index_ = 0;
  calibrate_next_ = options_.calibrate;
  next_calibration_ = INT64_MAX;  // Calibrate sets the next one
  if (coordinator_) ngrams_.AddUpTo(tokens_, prompt_len_);
  // Under coordination rank 0 says whether to calibrate (its draft pass updates the partial
  // cache), then what the first step does.
  if (channel_ != nullptr) TS_RETURN_IF_ERROR(ExchangeCommit());
  if (calibrate_next_) TS_RETURN_IF_ERROR(Calibrate());
  calibrate_next_ = false;
  if (coordinator_) {
    // The first step cannot be fused: no verified hidden state precedes the root yet.
    n_conts_ =
        options_.ngram_topk > 0 ? ngrams_.TopK(tokens_.back(), options_.ngram_topk, conts_) : 0;
    if (options_.static_tree) {
      plan_ = {options_.drafting == DraftingMode::kFused ? DraftKind::kAr : DraftKind::kSeparate,
               options_.tree.max_nodes};
    } else {
      plan_ = planner_.Plan(n_conts_, /*fused_ready=*/false);
    }
  }
  if (channel_ != nullptr) TS_RETURN_IF_ERROR(ExchangeCommit());
  return absl::OkStatus();
}

// Rank 0: sends the path of step step_index_ - 1 (none after prefill), the next plan, whether to
// calibrate and the next partial-cache action. Workers: check the step and the path against their
// own, then adopt the rest.
Status TokenSwiftDecoder::ExchangeCommit() {
  CommitMessage& m = commit_msg_;
  if (coordinator_) {
    m.step = step_index_ - 1;
    if (step_index_ > 0) {
      m.path.assign(path_.begin(), path_.end());
    } else {
      m.path.clear();
    }
    m.next_kind = static_cast<int32_t>(plan_.kind);
    m.next_nodes = plan_.nodes;
    m.calibrate = calibrate_next_;
    next_partial_ = drafter_->Planned(cached_);
    m.partial_action = static_cast<int32_t>(next_partial_);
  }
  TS_RETURN_IF_ERROR(channel_->Exchange(m));
  partial_decided_ = true;
  if (coordinator_) return absl::OkStatus();
  const int rank = sharded_->comm()->rank();
  const bool path_ok = step_index_ == 0
                           ? m.path.empty()
                           : std::equal(m.path.begin(), m.path.end(), path_.begin(), path_.end());
  if (m.step != step_index_ - 1 || !path_ok) {
    return absl::InternalError(
        absl::StrCat("rank ", rank, " diverged from the coordinator after step ", step_index_ - 1,
                     ": rank 0 accepted ", m.path.size(), " nodes of step ", m.step, ", this rank ",
                     step_index_ > 0 ? path_.size() : 0));
  }
  if (m.next_kind < 0 || m.next_kind > static_cast<int32_t>(DraftKind::kSeparate) ||
      m.partial_action < 0 || m.partial_action > 1) {
    return absl::DataLossError(absl::StrCat("rank ", rank, ": from rank 0: step message: kind ",
                                            m.next_kind, " or partial action ", m.partial_action,
                                            " unknown"));
  }
  plan_ = StepPlan{};
  plan_.kind = static_cast<DraftKind>(m.next_kind);
  plan_.nodes = m.next_nodes;
  calibrate_next_ = m.calibrate;
  next_partial_ = static_cast<PartialDrafter::Action>(m.partial_action);
  return absl::OkStatus();
}

// Times verify passes of trees at a few sizes, one heads application
// and one draft pass. They write K/V only at slots >= cached_, which every step overwrites.
Status TokenSwiftDecoder::Calibrate() {
  static constexpr int kSizes[] = {1, 2, 3, 4, 5, 6, 8, 12, 16, 24, 32, 48, 64};
  const int32_t root = tokens_.back();
  for (int rows : kSizes) {
    if (rows > options_.tree.max_nodes) break;
    double best = 0;
    for (int rep = 0; rep < (rows <= 16 ? 3 : 1); ++rep) {
      tree_.Reset(root, static_cast<int32_t>(cached_));
      // A ternary tree (depth <= 4 at 64 rows), like the trees steps verify.
      for (int i = 1; i < rows; ++i) {
        if (tree_.AddChild((i - 1) / 3, static_cast<int32_t>(i % vocab_), 0) < 0) break;
      }
      tree_.Finalize();
      const auto t0 = std::chrono::steady_clock::now();
      TS_RETURN_IF_ERROR(Verify(rows <= kEagerLogitsRows));
      const float* logits = logits_all_.data();
      if (rows > kEagerLogitsRows) {
        TS_RETURN_IF_ERROR(model_->Logits(hidden_.data(), 1, row_logits_.data()));
        logits = row_logits_.data();
      }
      TS_RETURN_IF_ERROR(SampleNext(logits).status());
      const double s = Seconds(t0);
      best = rep == 0 ? s : std::min(best, s);
    }
    planner_.SetVerifyCost(rows, best);
  }
  planner_.FinishCalibration();
  if (heads_->num_heads() > 0) {
    // The best of 3: the first application also copies the draft vocabulary's lm_head rows,
    // a one-time cost that would otherwise make fused drafting look as dear as a forward pass
    // (and, since the cost is only re-measured on fused steps, keep it unchosen).
    double best = 0;
    for (int rep = 0; rep < 3; ++rep) {
      const auto t0 = std::chrono::steady_clock::now();
      TS_RETURN_IF_ERROR(ApplyHeads(hidden_.data(), tokens_.back(), 0));
      const double s = Seconds(t0);
      best = rep == 0 ? s : std::min(best, s);
    }
    planner_.ObserveHeads(best);
  }
  const auto t1 = std::chrono::steady_clock::now();
  TS_RETURN_IF_ERROR(Draft());
  planner_.ObserveDraft(Seconds(t1));
  std::string table;
  for (int rows : kSizes) {
    if (rows > options_.tree.max_nodes) break;
    absl::StrAppend(&table, table.empty() ? "" : " ", rows, ":",
                    absl::StrFormat("%.2f", planner_.VerifyCost(rows) * 1e3));
  }
  // Workers calibrate in step with rank 0 (the passes are collective) but decide nothing by it.
  spdlog::log(coordinator_ ? spdlog::level::info : spdlog::level::debug,
              "planner calibration at {} tokens: verify ms by rows {}; heads {:.2f} ms, "
              "draft pass {:.2f} ms",
              tokens_.size(), table, planner_.heads_cost() * 1e3, planner_.draft_cost() * 1e3);
  next_calibration_ = options_.recalibrate_every > 0
                          ? static_cast<int64_t>(tokens_.size()) + options_.recalibrate_every
                          : INT64_MAX;
  return absl::OkStatus();
}

Status TokenSwiftDecoder::Draft() {
  // Rank 0's decision when one is pending for this length (the message came after the last
  // commit, so cached_ has not moved since); a second update at the same length appends nothing.
  const PartialDrafter::Action action =
      partial_decided_ ? next_partial_ : drafter_->Planned(cached_);
  partial_decided_ = false;
  TS_RETURN_IF_ERROR(drafter_->Update(cached_, action).status());
  TS_RETURN_IF_ERROR(drafter_->Draft(tokens_.back(), static_cast<int32_t>(cached_),
                                     root_hidden_.data(), dist_.data()));
  if (heads_->num_heads() == 0) return absl::OkStatus();
  int32_t next = -1;
  if (heads_->has_token_input()) {
    // The heads read the token after the root: depth 1's best candidate (the coupled ranking's
    // first, i.e. what the target samples when the draft pass's distribution is the target's).
    const int64_t n = static_cast<int64_t>(tokens_.size());
    const int64_t window = std::min<int64_t>(params_.penalty_window, n);
    const std::span<const int32_t> committed(tokens_.data() + n - window, window);
    if (sharded_ != nullptr) {
      TS_RETURN_IF_ERROR(sharded_->Candidates(dist_.data(), committed, n, 1, guess_));
    } else {
      sampler_.Candidates(dist_.data(), vocab_, committed, n, 1, guess_);
    }
    if (guess_.empty()) return absl::InternalError("separate draft: no depth-1 candidate");
    next = guess_[0];
  }
  return ApplyHeads(root_hidden_.data(), next, 1);
}

Status TokenSwiftDecoder::ApplyHeads(const float* hidden, int32_t next, int first) {
  const float* emb = nullptr;
  if (heads_->has_token_input()) {
    TS_RETURN_IF_ERROR(model_->Embed(std::span<const int32_t>(&next, 1), token_emb_.data()));
    emb = token_emb_.data();
  }
  return heads_->Apply(*model_->backend(), hidden, 1, model_->weights().lm_head,
                       dist_.data() + first * vocab_, emb);
}

// List d proposes the token at depth d + 1, position n + d (n committed tokens). Ranked by the
// sampler with the target's own Gumbel noise at that position (Sampler::Candidates): under
// sampling the draft and the target are coupled, so a head whose distribution is close to the
// target's is accepted nearly always, not with probability max p. The penalty window is the
// committed one (the node's ancestors are not known yet).
Status TokenSwiftDecoder::FillLists(int rows, int k) {
  const int64_t n = static_cast<int64_t>(tokens_.size());
  const int64_t window = std::min<int64_t>(params_.penalty_window, n);
  const std::span<const int32_t> committed(tokens_.data() + n - window, window);
  for (int d = 0; d < static_cast<int>(topk_.size()); ++d) {
    if (d < rows) {
      if (sharded_ != nullptr) {
        TS_RETURN_IF_ERROR(
            sharded_->Candidates(dist_.data() + d * vocab_, committed, n + d, k, topk_[d]));
      } else {
        sampler_.Candidates(dist_.data() + d * vocab_, vocab_, committed, n + d, k, topk_[d]);
      }
    } else {
      topk_[d].clear();
    }
    topk_lists_[d] = topk_[d];
  }
  return absl::OkStatus();
}

// The draft lists are collective (every rank ranks its vocabulary range); the tree is rank 0's.
Status TokenSwiftDecoder::BuildTree() {
  tree_.Reset(tokens_.back(), static_cast<int32_t>(cached_));
  if (plan_.kind != DraftKind::kAr) {
    const int head_depth = planner_.HeadDepth(plan_.kind);
    if (options_.static_tree) {
      const int levels = std::min(head_depth, static_cast<int>(options_.tree.static_shape.size()));
      int k = 1;
      for (int d = 0; d < levels; ++d) k = std::max(k, options_.tree.static_shape[d]);
      TS_RETURN_IF_ERROR(FillLists(levels, k));
      if (coordinator_) BuildStaticTree(levels);
    } else {
      TS_RETURN_IF_ERROR(FillLists(head_depth, list_k_));
      if (coordinator_) BuildPlannedTree(head_depth);
    }
  }
  tree_.Finalize();
  if (channel_ == nullptr || plan_.kind == DraftKind::kAr) return absl::OkStatus();
  if (!coordinator_) return ReceiveTree();
  TreeMessage& m = tree_msg_;
  m.step = step_index_;
  m.base_position = static_cast<int32_t>(cached_);
  m.tokens.assign(tree_.tokens().begin(), tree_.tokens().end());
  m.parents.assign(tree_.parents().begin(), tree_.parents().end());
  m.positions.assign(tree_.positions().begin(), tree_.positions().end());
  m.origins.assign(tree_.origins().begin(), tree_.origins().end());
  return channel_->Exchange(m);
}

Status TokenSwiftDecoder::ReceiveTree() {
  TreeMessage& m = tree_msg_;
  TS_RETURN_IF_ERROR(channel_->Exchange(m));
  const int rank = sharded_->comm()->rank();
  if (m.step != step_index_ || m.base_position != cached_ || m.tokens[0] != tokens_.back() ||
      static_cast<int>(m.tokens.size()) > plan_.nodes) {
    return absl::InternalError(absl::StrCat(
        "rank ", rank, " diverged from the coordinator at step ", step_index_, ": rank 0's tree (",
        m.tokens.size(), " nodes, step ", m.step, ", root ", m.tokens[0], " at ", m.base_position,
        ") against this rank's root ", tokens_.back(), " at ", cached_));
  }
  tree_.Reset(m.tokens[0], m.base_position);
  for (size_t i = 1; i < m.tokens.size(); ++i) {
    if (tree_.AddChild(m.parents[i], m.tokens[i], m.origins[i]) != static_cast<int>(i)) {
      return absl::DataLossError(absl::StrCat("rank ", rank, ": from rank 0: step message: node ",
                                              i, " repeats a sibling or exceeds the tree"));
    }
  }
  tree_.Finalize();
  return absl::OkStatus();
}

void TokenSwiftDecoder::BuildStaticTree(int levels) {
  tree_.AddHeadTree(std::span<const std::span<const int32_t>>(topk_lists_.data(), levels));
  for (int i = 0; i < n_conts_; ++i) {
    tree_.AddBranch(std::span<const int32_t>(conts_[i].tokens.data(), conts_[i].tokens.size()));
  }
}

// Best first over candidate nodes: a head candidate is (parent node, depth, rank in the depth's
// list), an n-gram candidate (parent node, depth, branch); a node's score is the product of the
// planner's acceptance rates along its path. The trie merges equal prefixes, so a row is spent
// only on a new node.
void TokenSwiftDecoder::BuildPlannedTree(int head_depth) {
  std::vector<TreeCandidate>& heap = heap_;
  heap.clear();
  auto push = [&](double p, int parent, int depth, int index, bool ngram) {
    if (!(p > 0.0)) return;  // also NaN, which would break the heap's ordering
    heap.push_back({p, parent, depth, index, ngram});
    std::push_heap(heap.begin(), heap.end());
  };
  auto push_head_children = [&](double p, int node, int depth) {
    if (depth >= head_depth) return;
    const int src = planner_.SourceOfDepth(plan_.kind, depth + 1);
    const auto& list = topk_[depth];
    for (int r = 0; r < static_cast<int>(list.size()); ++r) {
      push(p * planner_.RankProb(src, r), node, depth + 1, r, false);
    }
  };
  push_head_children(1.0, 0, 0);
  for (int b = 0; b < n_conts_; ++b) push(planner_.NgramProb(b, 1), 0, 1, b, true);
  while (tree_.size() < plan_.nodes && !heap.empty()) {
    std::pop_heap(heap.begin(), heap.end());
    const TreeCandidate c = heap.back();
    heap.pop_back();
    if (c.ngram) {
      const int node =
          tree_.AddChild(c.parent, conts_[c.index].tokens[c.depth - 1], DraftTree::kFromNgram);
      if (node < 0) continue;
      if (c.depth < NgramTable::kContinuationLen) {
        push(c.prob * planner_.NgramProb(c.index, c.depth + 1), node, c.depth + 1, c.index, true);
      }
    } else {
      const int node = tree_.AddChild(c.parent, topk_[c.depth - 1][c.index], DraftTree::kFromHeads);
      if (node < 0) continue;
      push_head_children(c.prob, node, c.depth);
    }
  }
}

Status TokenSwiftDecoder::Verify(bool eager_logits) {
  const int n = tree_.size();
  const ForwardBatch batch = tree_.VerifyBatch(std::span<const int32_t>(rows_.data(), n));
  return model_->Forward(batch, *cache_, eager_logits ? logits_all_.data() : nullptr,
                         hidden_.data());
}

StatusOr<int32_t> TokenSwiftDecoder::SampleNext(const float* logits) {
  const int64_t n = static_cast<int64_t>(tokens_.size());
  const int64_t window = std::min<int64_t>(params_.penalty_window, n);
  const std::span<const int32_t> recent(tokens_.data() + n - window, window);
  if (sharded_ != nullptr) return sharded_->Sample(logits, recent, n);
  return sampler_.Sample(logits, recent, n);
}

// Acceptance evidence for the planner: the target at `depth` (1-based, below the root) against
// the sources that could have proposed it.
void TokenSwiftDecoder::RecordTarget(int depth, int32_t target) {
  // Every source that served this depth is scored by where the target sat in its list,
  // including the separate draft pass's own distribution at depth 1 (over the partial cache: exact
  // while the context fits its budget, an approximation beyond it).
  if (plan_.kind != DraftKind::kAr && depth <= planner_.HeadDepth(plan_.kind)) {
    const int src = planner_.SourceOfDepth(plan_.kind, depth);
    const auto& list = topk_[depth - 1];
    int rank = -1;
    for (int r = 0; r < static_cast<int>(list.size()); ++r) {
      if (list[r] == target) {
        rank = r;
        break;
      }
    }
    planner_.RecordRank(src, rank);
  }
  if (depth <= NgramTable::kContinuationLen) {
    for (int b = 0; b < n_conts_; ++b) {
      if (!alive_[b]) continue;
      const bool hit = conts_[b].tokens[depth - 1] == target;
      planner_.RecordNgram(b, depth, hit);
      alive_[b] = hit;
    }
  }
}

Status TokenSwiftDecoder::Step(int64_t max_tokens, std::vector<int32_t>& out) {
  out.clear();
  if (max_tokens < 1) return absl::OkStatus();
  if (cached_ + options_.tree.max_nodes > cache_->capacity()) {
    return absl::OutOfRangeError(absl::StrCat("context full: ", tokens_.size(), " tokens"));
  }
  if (calibrate_next_) {
    // Costs drift with the context length (PlanNext made a fused plan an AR step: calibrating
    // overwrites the heads' lists).
    TS_RETURN_IF_ERROR(Calibrate());
    calibrate_next_ = false;
  }
  const auto t0 = std::chrono::steady_clock::now();
  if (plan_.kind == DraftKind::kSeparate) {
    TS_RETURN_IF_ERROR(Draft());
    planner_.ObserveDraft(Seconds(t0));
  }
  const auto t1 = std::chrono::steady_clock::now();
  TS_RETURN_IF_ERROR(BuildTree());
  const bool eager = tree_.size() <= kEagerLogitsRows;
  TS_RETURN_IF_ERROR(Verify(eager));

  // The acceptance walk: each reached node's target is sampled exactly as AR would at that
  // position (tokens_ already holds the node's accepted ancestors, so they are in the penalty
  // window), then committed.
  std::fill(alive_.begin(), alive_.end(), 1);
  int reached = 0;  // targets sampled so far = depth of the node being sampled
  auto target_of = [&](int node) -> StatusOr<int32_t> {
    float* logits = logits_all_.data() + node * vocab_;
    if (!eager) {
      TS_RETURN_IF_ERROR(
          model_->Logits(hidden_.data() + node * hidden_size_, 1, row_logits_.data()));
      logits = row_logits_.data();
    }
    TS_ASSIGN_OR_RETURN(const int32_t target, SampleNext(logits));
    if (coordinator_) RecordTarget(++reached, target);
    tokens_.push_back(target);
    out.push_back(target);
    return target;
  };
  TS_ASSIGN_OR_RETURN(const DraftTree::Accepted accepted, tree_.Walk(max_tokens, target_of));
  path_.assign(accepted.path.begin(), accepted.path.end());

  // Accepted nodes move to the slots of their positions; the root is already in place.
  const std::span<const uint8_t> origins = tree_.origins();
  for (size_t j = 1; j < path_.size(); ++j) {
    cache_->CopySlot(cached_ + path_[j], cached_ + static_cast<int64_t>(j));
    if (origins[path_[j]] & DraftTree::kFromNgram)
      ++counters_.accepted_ngram;  // proposed by a branch
  }
  cached_ = static_cast<int64_t>(tokens_.size()) - 1;
  if (coordinator_) {
    planner_.ObserveVerify(tree_.size(), Seconds(t1));
    if (!options_.static_tree) {
      planner_.ObserveAccepted(plan_, static_cast<int>(path_.size()) - 1);
    }
  }
  ++counters_.steps;
  switch (plan_.kind) {
    case DraftKind::kAr:
      ++counters_.ar_steps;
      break;
    case DraftKind::kFused:
      ++counters_.fused_steps;
      break;
    case DraftKind::kSeparate:
      ++counters_.separate_steps;
      break;
  }
  counters_.verified_rows += tree_.size();
  counters_.committed += static_cast<int64_t>(out.size());
  counters_.drafted += tree_.size() - 1;
  counters_.accepted += static_cast<int64_t>(path_.size()) - 1;
  // The table learns only from tokens older than the penalty window (DESIGN.md 1.5).
  if (coordinator_) {
    ngrams_.AddUpTo(tokens_, std::max<int64_t>(prompt_len_, static_cast<int64_t>(tokens_.size()) -
                                                                params_.penalty_window));
  }
  ++step_index_;
  return PlanNext();
}

// Rank 0 (or the only rank) plans; under coordination its plan reaches the others with the path.
Status TokenSwiftDecoder::PlanNext() {
  if (coordinator_) {
    n_conts_ =
        options_.ngram_topk > 0 ? ngrams_.TopK(tokens_.back(), options_.ngram_topk, conts_) : 0;
    if (options_.static_tree) {
      plan_ = {options_.drafting == DraftingMode::kFused ? DraftKind::kFused : DraftKind::kSeparate,
               options_.tree.max_nodes};
    } else {
      plan_ = planner_.Plan(n_conts_, /*fused_ready=*/true);
    }
    calibrate_next_ = static_cast<int64_t>(tokens_.size()) >= next_calibration_;
    // Calibrating overwrites the heads' lists: a fused plan becomes an AR step this once.
    if (calibrate_next_ && plan_.kind == DraftKind::kFused) plan_ = {DraftKind::kAr, 1};
  }
  if (channel_ != nullptr) TS_RETURN_IF_ERROR(ExchangeCommit());
  if (plan_.kind == DraftKind::kFused) {
    const auto t0 = std::chrono::steady_clock::now();
    // The heads run on the last accepted node; the token after it is the root of the next tree.
    TS_RETURN_IF_ERROR(ApplyHeads(hidden_.data() + path_.back() * hidden_size_, tokens_.back(), 0));
    if (coordinator_) planner_.ObserveHeads(Seconds(t0));
  }
  return absl::OkStatus();
}

}  // namespace ts
