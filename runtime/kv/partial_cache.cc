#include "runtime/kv/partial_cache.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace ts {
namespace {

size_t ElemBytes(DType t) { return t == DType::kBF16 ? 2 : 4; }

constexpr int kRadixBits = 12;

// Order-preserving key of a non-NaN float: a < b (as floats, -0 excluded) iff key(a) < key(b).
uint32_t OrderedKey(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, sizeof(bits));
  return (bits & 0x80000000u) != 0 ? ~bits : bits | 0x80000000u;
}

}  // namespace

void PartialCacheSelection::Resize(int layers, int kv_heads, int64_t budget_slots) {
  n_layers = layers;
  n_kv_heads = kv_heads;
  budget = budget_slots;
  count = 0;
  committed_len = 0;
  whole_prefix = true;
  positions.assign(static_cast<size_t>(layers) * static_cast<size_t>(kv_heads) *
                       static_cast<size_t>(budget_slots),
                   0);
}

StatusOr<std::unique_ptr<PartialKvCache>> PartialKvCache::Create(const ModelConfig& model,
                                                                 const PartialCacheConfig& config,
                                                                 int64_t max_context, DType dtype,
                                                                 Backend* backend) {
  if (backend == nullptr) return absl::InternalError("partial KV cache: no backend");
  if (config.budget <= 0) return BadInput("partial KV cache: budget must be positive");
  if (config.n_sink < 0 || config.recent < 0 || config.reselect_room < 0 ||
      config.draft_slots < 0) {
    return BadInput(
        "partial KV cache: sinks, recent window, reselect room and draft slots must "
        "not be negative");
  }
  if (config.n_sink + config.recent + config.reselect_room > config.budget) {
    return BadInput("partial KV cache: sinks (", config.n_sink, ") + recent window (",
                    config.recent, ") + reselect room (", config.reselect_room,
                    ") exceed the budget (", config.budget, ")");
  }
  if (max_context <= 0 || max_context > std::numeric_limits<int32_t>::max()) {
    return BadInput("partial KV cache: max context out of range: ", max_context);
  }
  if (model.n_kv_heads <= 0 || model.n_heads % model.n_kv_heads != 0) {
    return BadInput("partial KV cache: n_heads (", model.n_heads,
                    ") is not a multiple of n_kv_heads (", model.n_kv_heads, ")");
  }
  std::unique_ptr<PartialKvCache> p(new PartialKvCache());
  TS_ASSIGN_OR_RETURN(p->cache_,
                      KvCache::Create(model, config.budget + config.draft_slots, dtype, backend));
  p->config_ = config;
  p->n_layers_ = model.n_layers;
  p->n_heads_ = model.n_heads;
  p->n_kv_heads_ = model.n_kv_heads;
  p->head_dim_ = model.head_dim;
  p->max_context_ = max_context;
  p->dtype_ = dtype;
  p->selection_ = p->NewSelection();
  p->scores_.resize(static_cast<size_t>(max_context));
  p->order_.resize(static_cast<size_t>(max_context));
  p->q_sum_.resize(static_cast<size_t>(model.head_dim));
  p->histogram_.resize(size_t{1} << kRadixBits);
  p->keys_.resize(static_cast<size_t>(max_context));
  p->backend_ = backend;
  if (!backend->host_memory()) {
    TS_ASSIGN_OR_RETURN(p->q_dev_, backend->Alloc(p->q_sum_.size() * sizeof(float)));
    TS_ASSIGN_OR_RETURN(p->scores_dev_, backend->Alloc(p->scores_.size() * sizeof(float)));
    TS_ASSIGN_OR_RETURN(p->slots_dev_,
                        backend->Alloc(p->selection_.positions.size() * sizeof(int32_t)));
  }
  return p;
}

PartialCacheSelection PartialKvCache::NewSelection() const {
  PartialCacheSelection s;
  s.Resize(n_layers_, n_kv_heads_, config_.budget);
  return s;
}

Status PartialKvCache::CheckFull(const KvCache& full, int64_t committed_len) const {
  if (full.dtype() != dtype_) {
    return BadInput("partial KV cache: full cache dtype differs from the partial cache's");
  }
  const KvLayerView view = full.Layer(0);
  if (view.n_kv_heads != n_kv_heads_ || view.head_dim != head_dim_) {
    return BadInput("partial KV cache: full cache shape differs from the model's");
  }
  if (committed_len < 0 || committed_len > full.capacity() || committed_len > max_context_) {
    return absl::OutOfRangeError(Cat("partial KV cache: committed length ", committed_len,
                                     " outside the full cache (", full.capacity(), " slots)"));
  }
  return absl::OkStatus();
}

Status PartialKvCache::PickImportant(const KvLayerView& view, int head, const float* q_group,
                                     int64_t lo, int64_t hi, int64_t k, int32_t* row) {
  const int group = n_heads_ / n_kv_heads_;
  std::copy(q_group, q_group + head_dim_, q_sum_.begin());
  for (int h = 1; h < group; ++h) {
    for (int d = 0; d < head_dim_; ++d)
      q_sum_[d] += q_group[static_cast<size_t>(h) * head_dim_ + d];
  }
  float* scores = scores_.data();
  if (backend_->host_memory()) {
    backend_->KeyScores(view, head, q_sum_.data(), lo, hi, scores + lo);
  } else {
    float* dev = scores_dev_.as<float>();
    backend_->Upload(q_dev_.data(), q_sum_.data(), q_sum_.size() * sizeof(float));
    backend_->KeyScores(view, head, q_dev_.as<float>(), lo, hi, dev + lo);
    TS_RETURN_IF_ERROR(backend_->Download(scores + lo, dev + lo, (hi - lo) * sizeof(float)));
  }
  // The chosen set: the first k positions by (score descending, position ascending), a strict
  // total order, so the set is unique whatever the algorithm. NaN ranks last (-inf) and -0 is
  // made +0 (they compare equal, and the radix keys below must agree with the comparison).
  // Radix pass: a histogram of the top kRadixBits of each score's order-preserving key finds the
  // bucket holding the k-th; buckets above it are taken whole, only the boundary bucket's
  // candidates go through nth_element with the exact order, and the chosen positions come out
  // in increasing order (no sort afterwards).
  uint32_t* keys = keys_.data();
  std::fill(histogram_.begin(), histogram_.end(), 0);
  for (int64_t i = lo; i < hi; ++i) {
    if (std::isnan(scores[i])) scores[i] = -std::numeric_limits<float>::infinity();
    scores[i] += 0.0f;
    keys[i] = OrderedKey(scores[i]) >> (32 - kRadixBits);
    ++histogram_[keys[i]];
  }
  uint32_t boundary = static_cast<uint32_t>(histogram_.size());
  int64_t above = 0;  // positions in buckets above the boundary
  while (boundary > 0 && above + histogram_[boundary - 1] < k) above += histogram_[--boundary];
  --boundary;  // the bucket holding the k-th (k <= n, so it exists)
  int64_t candidates = 0;
  for (int64_t i = lo; i < hi; ++i) {
    order_[candidates] = static_cast<int32_t>(i);
    candidates += keys[i] == boundary ? 1 : 0;
  }
  const int64_t need = k - above;  // >= 1 by the choice of boundary
  auto before = [scores](int32_t a, int32_t b) {
    return scores[a] > scores[b] || (scores[a] == scores[b] && a < b);
  };
  if (need < candidates) {
    std::nth_element(order_.begin(), order_.begin() + need, order_.begin() + candidates, before);
  }
  // The last chosen candidate; boundary positions up to it in the order are chosen.
  const int32_t last = *std::max_element(order_.begin(), order_.begin() + need, before);
  int64_t taken = 0;
  for (int64_t i = lo; i < hi; ++i) {
    const bool chosen =
        keys[i] > boundary || (keys[i] == boundary && !before(last, static_cast<int32_t>(i)));
    if (chosen) row[taken++] = static_cast<int32_t>(i);
  }
  return absl::OkStatus();
}

Status PartialKvCache::ComputeSelection(const KvCache& full, int64_t committed_len,
                                        std::span<const float> queries,
                                        PartialCacheSelection* out) {
  TS_RETURN_IF_ERROR(CheckFull(full, committed_len));
  if (out->n_layers != n_layers_ || out->n_kv_heads != n_kv_heads_ ||
      out->budget != config_.budget ||
      out->positions.size() != static_cast<size_t>(n_layers_) * n_kv_heads_ * config_.budget) {
    return BadInput("partial KV cache: selection not sized for this cache (use NewSelection)");
  }
  out->committed_len = committed_len;
  if (committed_len <= config_.budget) {
    for (int l = 0; l < n_layers_; ++l) {
      for (int g = 0; g < n_kv_heads_; ++g) {
        int32_t* row = out->Row(l, g);
        for (int64_t i = 0; i < committed_len; ++i) row[i] = static_cast<int32_t>(i);
      }
    }
    out->count = committed_len;
    out->whole_prefix = true;
    return absl::OkStatus();
  }
  const size_t q_per_layer = static_cast<size_t>(n_heads_) * static_cast<size_t>(head_dim_);
  if (queries.size() != static_cast<size_t>(n_layers_) * q_per_layer) {
    return BadInput("partial KV cache: queries must be (n_layers, n_heads, head_dim) = ",
                    static_cast<size_t>(n_layers_) * q_per_layer, " floats, got ", queries.size());
  }
  const int64_t selected = config_.budget - config_.reselect_room;
  const int64_t n_sink = config_.n_sink;
  const int64_t recent = config_.recent;
  const int64_t k = selected - n_sink - recent;
  const int group = n_heads_ / n_kv_heads_;
  for (int l = 0; l < n_layers_; ++l) {
    const KvLayerView view = full.Layer(l);
    const float* q_layer = queries.data() + static_cast<size_t>(l) * q_per_layer;
    for (int g = 0; g < n_kv_heads_; ++g) {
      int32_t* row = out->Row(l, g);
      for (int64_t i = 0; i < n_sink; ++i) row[i] = static_cast<int32_t>(i);
      // committed_len > budget >= selected, so [n_sink, committed_len - recent) holds > k.
      if (k > 0) {  // k = 0: the budget is all sinks, recent window and reselect room
        TS_RETURN_IF_ERROR(PickImportant(view, g,
                                         q_layer + static_cast<size_t>(g) * group * head_dim_,
                                         n_sink, committed_len - recent, k, row + n_sink));
      }
      for (int64_t i = 0; i < recent; ++i) {
        row[n_sink + k + i] = static_cast<int32_t>(committed_len - recent + i);
      }
    }
  }
  out->count = selected;
  out->whole_prefix = false;
  return absl::OkStatus();
}

Status PartialKvCache::ComputeStreamingSelection(const KvCache& full, int64_t committed_len,
                                                 PartialCacheSelection* out) const {
  TS_RETURN_IF_ERROR(CheckFull(full, committed_len));
  if (out->n_layers != n_layers_ || out->n_kv_heads != n_kv_heads_ ||
      out->budget != config_.budget ||
      out->positions.size() != static_cast<size_t>(n_layers_) * n_kv_heads_ * config_.budget) {
    return BadInput("partial KV cache: selection not sized for this cache (use NewSelection)");
  }
  const bool whole = committed_len <= config_.budget;
  const int64_t count = whole ? committed_len : config_.budget - config_.reselect_room;
  const int64_t n_sink = whole ? count : config_.n_sink;
  for (int l = 0; l < n_layers_; ++l) {
    for (int g = 0; g < n_kv_heads_; ++g) {
      int32_t* row = out->Row(l, g);
      for (int64_t i = 0; i < n_sink; ++i) row[i] = static_cast<int32_t>(i);
      // Not whole: committed_len > budget >= count, so the window starts past the sinks.
      for (int64_t i = n_sink; i < count; ++i) {
        row[i] = static_cast<int32_t>(committed_len - count + i);
      }
    }
  }
  out->count = count;
  out->committed_len = committed_len;
  out->whole_prefix = whole;
  return absl::OkStatus();
}

Status PartialKvCache::SelectStreaming(const KvCache& full, int64_t committed_len) {
  TS_RETURN_IF_ERROR(ComputeStreamingSelection(full, committed_len, &selection_));
  return Apply(full, selection_);
}

size_t PartialKvCache::bytes() const {
  return cache_->bytes() + selection_.positions.size() * sizeof(int32_t) +
         scores_.size() * sizeof(float) + order_.size() * sizeof(int32_t) +
         q_sum_.size() * sizeof(float) + histogram_.size() * sizeof(int64_t) +
         keys_.size() * sizeof(uint32_t);
}

Status PartialKvCache::Apply(const KvCache& full, const PartialCacheSelection& selection) {
  TS_RETURN_IF_ERROR(CheckFull(full, selection.committed_len));
  if (selection.n_layers != n_layers_ || selection.n_kv_heads != n_kv_heads_ ||
      selection.budget != config_.budget || selection.count < 0 ||
      selection.count > config_.budget ||
      selection.positions.size() != selection_.positions.size()) {
    return BadInput("partial KV cache: selection does not match this cache");
  }
  // Check everything first so a bad (e.g. corrupted broadcast) selection changes nothing.
  for (int l = 0; l < n_layers_; ++l) {
    for (int g = 0; g < n_kv_heads_; ++g) {
      for (const int32_t p : selection.Positions(l, g)) {
        if (p < 0 || p >= selection.committed_len) {
          return BadInput("partial KV cache: selected position ", p,
                          " outside the committed prefix");
        }
      }
    }
  }
  // One gather per layer; the selection's rows are `budget` apart.
  const int32_t* slots = selection.positions.data();
  if (!backend_->host_memory()) {
    backend_->Upload(slots_dev_.data(), slots, selection.positions.size() * sizeof(int32_t));
    slots = slots_dev_.as<int32_t>();
  }
  const int64_t per_layer = static_cast<int64_t>(n_kv_heads_) * config_.budget;
  for (int l = 0; l < n_layers_; ++l) {
    backend_->GatherKv(full.Layer(l), cache_->Layer(l), slots + l * per_layer, selection.count,
                       config_.budget);
  }
  if (&selection != &selection_) {
    std::copy(selection.positions.begin(), selection.positions.end(), selection_.positions.begin());
    selection_.count = selection.count;
    selection_.committed_len = selection.committed_len;
    selection_.whole_prefix = selection.whole_prefix;
  }
  covered_len_ = selection.committed_len;
  pending_ = false;
  return absl::OkStatus();
}

Status PartialKvCache::Select(const KvCache& full, int64_t committed_len,
                              std::span<const float> queries) {
  TS_RETURN_IF_ERROR(ComputeSelection(full, committed_len, queries, &selection_));
  return Apply(full, selection_);
}

Status PartialKvCache::AppendRecent(const KvCache& full, int64_t committed_len) {
  TS_RETURN_IF_ERROR(CheckFull(full, committed_len));
  if (committed_len < covered_len_) {
    return absl::FailedPreconditionError(Cat("partial KV cache: committed length ", committed_len,
                                             " went back below ", covered_len_));
  }
  const int64_t take = std::min(committed_len - covered_len_, config_.budget - selection_.count);
  const size_t row = static_cast<size_t>(head_dim_) * ElemBytes(dtype_);
  for (int l = 0; l < n_layers_; ++l) {
    const KvLayerView src = full.Layer(l);
    const KvLayerView dst = cache_->Layer(l);
    for (int g = 0; g < n_kv_heads_; ++g) {
      int32_t* positions = selection_.Row(l, g);
      for (int64_t i = 0; i < take; ++i) {
        positions[selection_.count + i] = static_cast<int32_t>(covered_len_ + i);
      }
    }
    // Slots [covered, covered + take) of every head to [count, count + take): one 2-D copy each
    // for K and V, a head's capacity apart.
    const size_t src_pitch = static_cast<size_t>(src.capacity) * row;
    const size_t dst_pitch = static_cast<size_t>(dst.capacity) * row;
    const size_t from = static_cast<size_t>(covered_len_) * row;
    const size_t to = static_cast<size_t>(selection_.count) * row;
    backend_->Copy2D(static_cast<uint8_t*>(dst.k) + to, dst_pitch,
                     static_cast<const uint8_t*>(src.k) + from, src_pitch,
                     static_cast<size_t>(take) * row, n_kv_heads_);
    backend_->Copy2D(static_cast<uint8_t*>(dst.v) + to, dst_pitch,
                     static_cast<const uint8_t*>(src.v) + from, src_pitch,
                     static_cast<size_t>(take) * row, n_kv_heads_);
  }
  selection_.count += take;
  covered_len_ += take;
  selection_.committed_len = covered_len_;
  pending_ = covered_len_ < committed_len;
  return absl::OkStatus();
}

}  // namespace ts
