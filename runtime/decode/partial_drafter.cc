#include "runtime/decode/partial_drafter.h"

#include <chrono>

namespace ts {

StatusOr<std::unique_ptr<PartialDrafter>> PartialDrafter::Create(Transformer* model,
                                                                 const KvCache* full,
                                                                 const PartialCacheConfig& config) {
  if (model == nullptr || full == nullptr) {
    return absl::InternalError("partial drafter: model and full cache are required");
  }
  if (config.draft_slots < 1) {
    return BadInput("partial drafter: draft_slots must be at least 1, got ", config.draft_slots);
  }
  const ModelConfig& mc = model->config();
  std::unique_ptr<PartialDrafter> d(new PartialDrafter());
  TS_ASSIGN_OR_RETURN(d->partial_, PartialKvCache::Create(mc, config, full->capacity(),
                                                          full->dtype(), model->backend()));
  d->model_ = model;
  d->full_ = full;
  d->queries_.assign(static_cast<size_t>(mc.n_layers) * static_cast<size_t>(mc.n_heads) *
                         static_cast<size_t>(mc.head_dim),
                     0.0f);
  return d;
}

Status PartialDrafter::Draft(int32_t token, int32_t position, float* hidden, float* logits) {
  if (position != partial_->covered_len() || partial_->NeedsReselect()) {
    return absl::FailedPreconditionError(
        Cat("partial drafter: draft at position ", position, " but the partial cache covers [0, ",
            partial_->covered_len(), "); call Update(", position, ") first"));
  }
  token_ = token;
  position_ = position;
  slot_ = partial_->DraftSlot(0);
  prefix_ = slot_ + 1;
  row_ = 0;
  ForwardBatch batch;
  batch.tokens = std::span<const int32_t>(&token_, 1);
  batch.positions = std::span<const int32_t>(&position_, 1);
  batch.slots = std::span<const int32_t>(&slot_, 1);
  batch.mask.prefix_len = &prefix_;
  batch.logits_rows = std::span<const int32_t>(&row_, 1);
  batch.capture_rows = std::span<const int32_t>(&row_, 1);
  batch.capture_queries = queries_.data();
  TS_RETURN_IF_ERROR(model_->Forward(batch, partial_->cache(), logits, hidden));
  has_queries_ = true;
  ++stats_.drafts;
  return absl::OkStatus();
}

PartialDrafter::Action PartialDrafter::Planned(int64_t committed_len) const {
  const PartialKvCache& p = *partial_;
  return committed_len - p.covered_len() <= p.config().budget - p.used() ? Action::kAppend
                                                                         : Action::kSelect;
}

StatusOr<const PartialCacheSelection*> PartialDrafter::Update(int64_t committed_len,
                                                              Action action) {
  PartialKvCache& p = *partial_;
  if (committed_len < p.covered_len()) {
    return absl::FailedPreconditionError(Cat("partial drafter: committed length ", committed_len,
                                             " went back below ", p.covered_len()));
  }
  if (action == Action::kAppend) {
    if (Planned(committed_len) != Action::kAppend) {
      return absl::FailedPreconditionError(Cat("partial drafter: told to append up to ",
                                               committed_len, " but only ",
                                               p.config().budget - p.used(), " slots are free"));
    }
    TS_RETURN_IF_ERROR(p.AppendRecent(*full_, committed_len));
    return nullptr;
  }
  // The new positions do not fit: select anew (appending first would only be overwritten).
  const auto start = std::chrono::steady_clock::now();
  if (has_queries_) {
    TS_RETURN_IF_ERROR(p.Select(*full_, committed_len, queries_));
    ++stats_.reselects;
  } else {
    TS_RETURN_IF_ERROR(p.SelectStreaming(*full_, committed_len));
    ++stats_.streaming_selects;
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  stats_.last_select_seconds = seconds;
  stats_.select_seconds += seconds;
  stats_.last_selection_count = p.used();
  stats_.last_selection_len = committed_len;
  return &p.selection();
}

size_t PartialDrafter::bytes() const { return partial_->bytes() + queries_.size() * sizeof(float); }

}  // namespace ts
