// Sampling over a split vocabulary; see sharded_sampler.h.
#include "runtime/sampling/sharded_sampler.h"

#include <algorithm>
#include <cmath>

#include "runtime/sampling/gumbel.h"
#include "runtime/sampling/logits_processor.h"

namespace ts {

ShardedSampler::ShardedSampler(const SamplingParams& params, Range range, Communicator* comm)
    : params_(params),
      range_(range),
      comm_(comm),
      scores_(range.size()),
      seen_((range.size() + 63) / 64, 0) {
  if (!IsGreedy(params) && (params.top_p < 1.0f || params.top_k > 0)) {
    candidates_.resize(range.size());  // one rank only (Create)
  }
}

StatusOr<ShardedSampler> ShardedSampler::Create(const SamplingParams& params, Range range,
                                                Communicator* comm) {
  TS_RETURN_IF_ERROR(Validate(params));
  if (range.size() < 1) return absl::InvalidArgumentError("ShardedSampler: empty vocabulary range");
  if (comm->size() > 1 && !IsGreedy(params) &&
      (params.top_p < 1.0f || params.top_k > 0 || params.eta > 0.0f)) {
    return BadInput("--top-p / --top-k / --eta: not supported with --tp > 1 yet (min-p is)");
  }
  return ShardedSampler(params, range, comm);
}

StatusOr<ValueIndex> ShardedSampler::Score(const float* logits,
                                           std::span<const int32_t> window_tokens) {
  if (static_cast<int64_t>(window_tokens.size()) > params_.penalty_window) {
    window_tokens = window_tokens.last(static_cast<size_t>(params_.penalty_window));
  }
  const ScoreStats local =
      ScoreRange(std::span<const float>(logits, scores_.size()), range_.begin, window_tokens,
                 params_.penalty, IsGreedy(params_) ? 1.0f : params_.temperature,
                 std::span<float>(scores_.data(), scores_.size()), seen_);
  // z_max and the lowest id holding it, over all ranks: the greedy token.
  return comm_->MaxReduce({local.max, local.argmax});
}

StatusOr<int32_t> ShardedSampler::Sample(const float* logits,
                                         std::span<const int32_t> window_tokens, int64_t position) {
  TS_ASSIGN_OR_RETURN(const ValueIndex top, Score(logits, window_tokens));
  const bool greedy = IsGreedy(params_);
  const std::span<float> z(scores_.data(), scores_.size());
  if (greedy || std::isinf(top.value)) return static_cast<int32_t>(top.index);

  // With several ranks only min-p is on, whose cutoff depends on z_max alone (Create refused the
  // filters that need more); one rank holds the whole row for the others.
  const Cutoff cutoff = ComputeCutoff(params_, z, static_cast<float>(top.value), candidates_);
  const int64_t hint = top.index >= range_.begin && top.index < range_.end ? top.index : -1;
  const Candidate mine = GumbelMaxRange(z, range_.begin, cutoff, params_.seed, position, hint);
  TS_ASSIGN_OR_RETURN(const ValueIndex best, comm_->MaxReduce({mine.value, mine.index}));
  return static_cast<int32_t>(best.index);
}

Status ShardedSampler::Candidates(const float* logits, std::span<const int32_t> window_tokens,
                                  int64_t position, int k, std::vector<int32_t>& out) {
  out.clear();
  if (k <= 0) return absl::OkStatus();
  TS_ASSIGN_OR_RETURN(const ValueIndex top, Score(logits, window_tokens));
  const bool greedy = IsGreedy(params_);
  const std::span<float> z(scores_.data(), scores_.size());
  auto before = [](const Entry& a, const Entry& b) {
    if (a.group != b.group) return a.group < b.group;
    if (a.value != b.value) return a.value > b.value;
    return a.id < b.id;
  };
  // The rank's best k of each group, by insertion into a sorted list of at most k.
  std::vector<Entry>* groups = groups_;
  groups[0].clear();
  groups[1].clear();
  auto offer = [&](std::vector<Entry>& list, Entry e) {
    if (static_cast<int>(list.size()) == k && !before(e, list.back())) return;
    if (static_cast<int>(list.size()) < k) list.push_back(e);
    size_t i = list.size() - 1;
    while (i > 0 && before(e, list[i - 1])) {
      list[i] = list[i - 1];
      --i;
    }
    list[i] = e;
  };
  const int64_t n = range_.size();
  if (greedy || std::isinf(top.value)) {
    for (int64_t i = 0; i < n; ++i) {
      offer(groups[0], {z[i], static_cast<int32_t>(range_.begin + i), 0});
    }
  } else {
    static const double kMaxNoise = GumbelFromBits(~uint64_t{0});
    const Cutoff cutoff = ComputeCutoff(params_, z, static_cast<float>(top.value), candidates_);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t id = range_.begin + i;
      if (cutoff.Keeps(z[i], id)) {
        if (static_cast<int>(groups[0].size()) == k &&
            static_cast<double>(z[i]) + kMaxNoise < groups[0].back().value) {
          continue;  // cannot enter: its noise need not be drawn
        }
        offer(groups[0], {static_cast<double>(z[i]) + GumbelNoise(params_.seed,
                                                                  static_cast<uint64_t>(position),
                                                                  static_cast<uint32_t>(id)),
                          static_cast<int32_t>(id), 0});
      } else {
        offer(groups[1], {z[i], static_cast<int32_t>(id), 1});
      }
    }
  }
  mine_.assign(2 * static_cast<size_t>(k), Entry{0.0, -1, 2});
  std::copy(groups[0].begin(), groups[0].end(), mine_.begin());
  std::copy(groups[1].begin(), groups[1].end(), mine_.begin() + k);
  all_.resize(mine_.size() * comm_->size());
  TS_RETURN_IF_ERROR(comm_->AllGather(mine_.data(), mine_.size() * sizeof(Entry), all_.data()));
  std::sort(all_.begin(), all_.end(), before);
  for (const Entry& e : all_) {
    if (static_cast<int>(out.size()) == k || e.id < 0) break;
    out.push_back(e.id);
  }
  return absl::OkStatus();
}

}  // namespace ts
