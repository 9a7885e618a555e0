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
    candidates_.resize(range.size());  // ComputeCutoff's scratch on a single rank
  }
  blocks_.resize((range.size() + kReduceBlock - 1) / kReduceBlock);
}

StatusOr<ShardedSampler> ShardedSampler::Create(const SamplingParams& params, Range range,
                                                Communicator* comm) {
  TS_RETURN_IF_ERROR(Validate(params));
  if (range.size() < 1) return absl::InvalidArgumentError("ShardedSampler: empty vocabulary range");
  if (comm->size() > 1 && !IsGreedy(params) && (params.top_p < 1.0f || params.eta > 0.0f) &&
      range.begin % kReduceBlock != 0) {
    return BadInput("--top-p / --eta with --tp: this rank's vocabulary range starts at ",
                    range.begin, ", expected a multiple of ", kReduceBlock);
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

  TS_ASSIGN_OR_RETURN(const Cutoff cutoff, FilterCutoff(static_cast<float>(top.value)));
  const int64_t hint = top.index >= range_.begin && top.index < range_.end ? top.index : -1;
  const Candidate mine = GumbelMaxRange(z, range_.begin, cutoff, params_.seed, position, hint);
  TS_ASSIGN_OR_RETURN(const ValueIndex best, comm_->MaxReduce({mine.value, mine.index}));
  return static_cast<int32_t>(best.index);
}

StatusOr<Mass> ShardedSampler::GlobalMass(float z_max, const Cutoff& cut, bool with_entropy) {
  const int world = comm_->size();
  if (max_blocks_ == 0) {  // once: every rank's block count
    const int64_t mine = static_cast<int64_t>(blocks_.size());
    counts_.resize(2 * static_cast<size_t>(world));
    TS_RETURN_IF_ERROR(comm_->AllGather(&mine, sizeof(mine), counts_.data()));
    max_blocks_ = *std::max_element(counts_.begin(), counts_.begin() + world);
    blocks_.resize(max_blocks_);
    all_blocks_.resize(static_cast<size_t>(world * max_blocks_));
  }
  const std::span<const float> z(scores_.data(), scores_.size());
  const int64_t used = KeptMassBlocks(z, range_.begin, z_max, cut, with_entropy, blocks_);
  std::fill(blocks_.begin() + used, blocks_.end(), Mass{});
  TS_RETURN_IF_ERROR(
      comm_->AllGather(blocks_.data(), blocks_.size() * sizeof(Mass), all_blocks_.data()));
  // Rank order is id order; a rank's padding blocks add exact zeros only after its last block,
  // which changes no sum (x + 0 == x).
  Mass total;
  for (const Mass& part : all_blocks_) {
    total.w += part.w;
    total.w_log_w += part.w_log_w;
  }
  return total;
}

StatusOr<Cutoff> ShardedSampler::FilterCutoff(float z_max) {
  const std::span<const float> z(scores_.data(), scores_.size());
  const int world = comm_->size();
  if (world == 1) return ComputeCutoff(params_, z, z_max, candidates_);
  Cutoff cut = MinPCutoff(params_, z_max);
  if (params_.top_p < 1.0f && params_.top_k == 0) {
    TS_ASSIGN_OR_RETURN(const Cutoff top_p, TopPByRounds(z_max, cut));
    cut = Stricter(cut, top_p);
  } else if (params_.top_p < 1.0f || params_.top_k > 0) {
    offers_.clear();
    for (int64_t i = 0; i < range_.size(); ++i) {
      const int64_t id = range_.begin + i;
      if (cut.Keeps(z[i], id)) offers_.push_back({z[i], static_cast<int32_t>(id)});
    }
    const int64_t survivors = static_cast<int64_t>(offers_.size());
    const int64_t k = params_.top_k;
    if (k > 0 && survivors > k) {
      // The global k-th score is at least this rank's k-th: its best k and their ties suffice.
      std::nth_element(offers_.begin(), offers_.begin() + (k - 1), offers_.end(), ScoreBefore);
      const float v = offers_[k - 1].z;
      offers_.erase(std::partition(offers_.begin() + k, offers_.end(),
                                   [v](const ScoredToken& t) { return t.z == v; }),
                    offers_.end());
    }
    const int64_t mine[2] = {survivors, static_cast<int64_t>(offers_.size())};
    counts_.resize(2 * static_cast<size_t>(world));
    TS_RETURN_IF_ERROR(comm_->AllGather(mine, sizeof(mine), counts_.data()));
    int64_t total = 0, most = 0;
    for (int r = 0; r < world; ++r) {
      total += counts_[2 * r];
      most = std::max(most, counts_[2 * r + 1]);
    }
    offers_.resize(most, ScoredToken{0.0f, -1});
    gathered_.resize(static_cast<size_t>(world * most));
    if (most > 0) {
      TS_RETURN_IF_ERROR(
          comm_->AllGather(offers_.data(), most * sizeof(ScoredToken), gathered_.data()));
    }
    merged_.clear();
    for (int r = 0; r < world; ++r) {
      merged_.insert(merged_.end(), gathered_.begin() + r * most,
                     gathered_.begin() + r * most + counts_[2 * r + 1]);
    }
    std::sort(merged_.begin(), merged_.end(), ScoreBefore);
    Cutoff result;  // keeps all
    int64_t n_work = static_cast<int64_t>(merged_.size());
    if (k > 0 && k < total) {  // as ComputeCutoff: the k-th score, every tie kept
      const float v = merged_[k - 1].z;
      result = Cutoff{v, Cutoff::kAllTies};
      while (n_work > k && merged_[n_work - 1].z < v) --n_work;
    }
    if (params_.top_p < 1.0f) {
      TS_ASSIGN_OR_RETURN(const Mass m, GlobalMass(z_max, cut, /*with_entropy=*/false));
      const double target = static_cast<double>(params_.top_p) * m.w;
      double cumulative = 0.0;
      for (int64_t j = 0; j < n_work; ++j) {
        cumulative += std::exp(static_cast<double>(merged_[j].z) - z_max);
        if (cumulative >= target) {
          result = Stricter(result, Cutoff{merged_[j].z, merged_[j].id});
          break;
        }
      }
    }
    cut = Stricter(cut, result);
  }
  if (params_.eta > 0.0f) {
    TS_ASSIGN_OR_RETURN(const Mass m, GlobalMass(z_max, cut, /*with_entropy=*/true));
    cut = Stricter(cut, EtaCutoff(params_, m, z_max));
  }
  return cut;
}

StatusOr<Cutoff> ShardedSampler::TopPByRounds(float z_max, const Cutoff& cut) {
  const int world = comm_->size();
  TS_ASSIGN_OR_RETURN(const Mass m, GlobalMass(z_max, cut, /*with_entropy=*/false));
  const double target = static_cast<double>(params_.top_p) * m.w;
  const std::span<const float> z(scores_.data(), scores_.size());
  offers_.clear();
  for (int64_t i = 0; i < range_.size(); ++i) {
    const int64_t id = range_.begin + i;
    if (cut.Keeps(z[i], id)) offers_.push_back({z[i], static_cast<int32_t>(id)});
  }
  const int64_t survivors = static_cast<int64_t>(offers_.size());
  const int64_t slot = kTopPRound + 1;  // a round's offers, then {0, 1 if more follow}
  round_.resize(static_cast<size_t>(slot));
  gathered_.resize(static_cast<size_t>(world * slot));
  merged_.clear();  // offered by some rank, not yet consumed, best first
  double cumulative = 0.0;
  for (int64_t next = 0;; next += kTopPRound) {
    // This rank's next kTopPRound survivors in order, padded with id -1.
    const int64_t end = std::min(survivors, next + kTopPRound);
    if (next < end) {
      if (end < survivors) {
        std::nth_element(offers_.begin() + next, offers_.begin() + (end - 1), offers_.end(),
                         ScoreBefore);
      }
      std::sort(offers_.begin() + next, offers_.begin() + end, ScoreBefore);
    }
    std::fill(round_.begin(), round_.end(), ScoredToken{0.0f, -1});
    if (next < end) std::copy(offers_.begin() + next, offers_.begin() + end, round_.begin());
    round_[kTopPRound] = ScoredToken{0.0f, end < survivors ? 1 : 0};
    TS_RETURN_IF_ERROR(
        comm_->AllGather(round_.data(), slot * sizeof(ScoredToken), gathered_.data()));
    // Tokens not yet offered all come after `bound`: the best of the last offers of the ranks
    // that have more. Tokens up to it (inclusive) are final in the global order.
    bool bounded = false;
    ScoredToken bound{0.0f, -1};
    const size_t fresh = merged_.size();
    for (int r = 0; r < world; ++r) {
      const ScoredToken* part = gathered_.data() + static_cast<size_t>(r) * slot;
      int64_t n = 0;
      while (n < kTopPRound && part[n].id >= 0) merged_.push_back(part[n++]);
      if (part[kTopPRound].id == 1 && (!bounded || ScoreBefore(part[n - 1], bound))) {
        bound = part[n - 1];
        bounded = true;
      }
    }
    std::sort(merged_.begin() + fresh, merged_.end(), ScoreBefore);
    std::inplace_merge(merged_.begin(), merged_.begin() + fresh, merged_.end(), ScoreBefore);
    size_t used = 0;
    for (; used < merged_.size() && !(bounded && ScoreBefore(bound, merged_[used])); ++used) {
      cumulative += std::exp(static_cast<double>(merged_[used].z) - z_max);
      if (cumulative >= target) return Cutoff{merged_[used].z, merged_[used].id};
    }
    merged_.erase(merged_.begin(), merged_.begin() + static_cast<int64_t>(used));
    if (!bounded) return Cutoff{};  // every survivor consumed below the target: keep all
  }
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
    TS_ASSIGN_OR_RETURN(const Cutoff cutoff, FilterCutoff(static_cast<float>(top.value)));
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
