#include "runtime/model/transformer.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace ts {

Transformer::Transformer(const ModelConfig& config, const ModelWeights& weights, Backend* backend,
                         int64_t max_batch, const TpShard* tp)
    : config_(config),
      weights_(weights),
      backend_(backend),
      max_batch_(max_batch),
      tp_(tp),
      rope_(ComputeRope(config)),
      attn_scale_(1.0f / std::sqrt(static_cast<float>(config.head_dim))) {
  const int64_t hidden = config.hidden_size;
  const int64_t q_dim = static_cast<int64_t>(config.n_heads) * config.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(config.n_kv_heads) * config.head_dim;
  x_.resize(max_batch * hidden);
  h_.resize(max_batch * std::max(hidden, q_dim));
  q_.resize(max_batch * q_dim);
  k_.resize(max_batch * kv_dim);
  v_.resize(max_batch * kv_dim);
  att_.resize(max_batch * q_dim);
  gate_.resize(max_batch * config.intermediate_size);
  up_.resize(max_batch * config.intermediate_size);
  out_rows_.resize(max_batch * hidden);
  causal_positions_.resize(max_batch);
  causal_prefix_.resize(max_batch);
  if (tp == nullptr) own_granules_ = SingleProcessGranules(config, weights);
  granules_ = tp == nullptr ? &own_granules_ : &tp->granules();
  int64_t widest = 0;
  for (const auto* parts : {&granules_->wo, &granules_->down}) {
    for (const std::vector<RowParallelPart>& layer : *parts) {
      for (const RowParallelPart& part : layer) widest = std::max(widest, part.cols.size());
    }
  }
  granule_x_.resize(max_batch * widest);
  partials_.resize(granules_->max_local * max_batch * hidden);
  if (tp != nullptr) gathered_.resize(tp->comm()->size() * partials_.size());
}

Status Transformer::RowParallelMatMul(const std::vector<RowParallelPart>& parts,
                                      const RowParallelRun& run, const float* x, int64_t n,
                                      int64_t x_cols, float* y) {
  Backend& b = *backend_;
  const int64_t hidden = config_.hidden_size;
  const int64_t block = n * hidden;
  if (granules_->total == 1) {
    b.MatMul(parts[0].w, x, n, y);
    return absl::OkStatus();
  }
  if (!run.bounds.empty()) {
    // Every local granule in one pass over the weight rows (the same bits as the parts).
    b.MatMulSegments(run.w, x, n, run.bounds, partials_.data());
  } else {
    for (size_t j = 0; j < parts.size(); ++j) {
      const RowParallelPart& part = parts[j];
      float* out = partials_.data() + j * block;
      const int64_t cols = part.cols.size();
      if (cols == 0) {
        std::fill(out, out + block, 0.0f);
        continue;
      }
      const float* xj = x + part.cols.begin;  // one row: the granule's columns are contiguous
      if (n > 1 && cols != x_cols) {
        for (int64_t i = 0; i < n; ++i) {
          std::memcpy(granule_x_.data() + i * cols, x + i * x_cols + part.cols.begin,
                      cols * sizeof(float));
        }
        xj = granule_x_.data();
      }
      b.MatMul(part.w, xj, n, out);
    }
  }
  // Granule g's partial: in partials_ (one process), or in slot (rank, g - rank's first) of the
  // gathered partials, every rank sending max_local slots.
  const float* all = partials_.data();
  if (tp_ != nullptr) {
    TS_RETURN_IF_ERROR(tp_->comm()->AllGather(
        partials_.data(), granules_->max_local * block * sizeof(float), gathered_.data()));
    all = gathered_.data();
  }
  for (size_t r = 0; r < granules_->rank_granules.size(); ++r) {
    const Range mine = granules_->rank_granules[r];
    for (int64_t g = mine.begin; g < mine.end; ++g) {
      const float* partial =
          all + ((tp_ != nullptr ? static_cast<int64_t>(r) * granules_->max_local : 0) +
                 (g - mine.begin)) *
                    block;
      if (g == 0) {
        std::memcpy(y, partial, block * sizeof(float));
      } else {
        b.Add(y, partial, block);
      }
    }
  }
  return absl::OkStatus();
}

Status Transformer::ForwardCausal(std::span<const int32_t> stream, int64_t begin, int64_t end,
                                  KvCache& cache, float* last_logits) {
  for (int64_t start = begin; start < end; start += max_batch_) {
    const int64_t n = std::min(max_batch_, end - start);
    for (int64_t i = 0; i < n; ++i) {
      causal_positions_[i] = static_cast<int32_t>(start + i);
      causal_prefix_[i] = static_cast<int32_t>(start + i + 1);
    }
    const int32_t row = static_cast<int32_t>(n - 1);
    const bool want_logits = last_logits != nullptr && start + n == end;
    ForwardBatch batch;
    batch.tokens = stream.subspan(start, n);
    batch.positions = std::span<const int32_t>(causal_positions_.data(), n);
    batch.slots = batch.positions;  // causal: slot = position
    batch.mask.prefix_len = causal_prefix_.data();
    if (want_logits) batch.logits_rows = std::span<const int32_t>(&row, 1);
    TS_RETURN_IF_ERROR(Forward(batch, cache, want_logits ? last_logits : nullptr));
  }
  return absl::OkStatus();
}

Status Transformer::Embed(std::span<const int32_t> tokens, float* out) {
  if (tp_ == nullptr) {
    backend_->Embed(weights_.embed, tokens.data(), static_cast<int64_t>(tokens.size()), out);
    return absl::OkStatus();
  }
  // Each rank holds its vocabulary rows: zeros elsewhere, summed over ranks.
  const int64_t hidden = config_.hidden_size;
  const Range vocab = tp_->vocab();
  for (size_t i = 0; i < tokens.size(); ++i) {
    float* row = out + static_cast<int64_t>(i) * hidden;
    if (tokens[i] >= vocab.begin && tokens[i] < vocab.end) {
      const int32_t local = static_cast<int32_t>(tokens[i] - vocab.begin);
      backend_->Embed(weights_.embed, &local, 1, row);
    } else {
      std::fill(row, row + hidden, 0.0f);  // another rank's row; adding zeros is exact
    }
  }
  return tp_->comm()->AllReduceSum(out, tokens.size() * hidden);
}

Status Transformer::Layer(int l, int64_t n, const ForwardBatch& batch, KvCache& cache) {
  const LayerWeights& w = weights_.layers[l];
  const ModelConfig& c = config_;
  Backend& b = *backend_;
  const int64_t hidden = c.hidden_size;

  // Attention block.
  b.RmsNorm(x_.data(), w.attn_norm, n, hidden, c.rms_eps, h_.data());
  b.MatMul(w.wq, h_.data(), n, q_.data(), w.bq);
  b.MatMul(w.wk, h_.data(), n, k_.data(), w.bk);
  b.MatMul(w.wv, h_.data(), n, v_.data(), w.bv);
  b.Rope(q_.data(), n, c.n_heads, c.head_dim, batch.positions.data(), rope_.inv_freq.data(),
         rope_.mscale, c.rope_style);
  b.Rope(k_.data(), n, c.n_kv_heads, c.head_dim, batch.positions.data(), rope_.inv_freq.data(),
         rope_.mscale, c.rope_style);
  if (!batch.capture_rows.empty()) CaptureQueries(l, batch);
  const KvLayerView kv = cache.Layer(l);
  b.StoreKv(kv, k_.data(), v_.data(), n, batch.slots.data());
  b.Attention(q_.data(), n, c.n_heads, kv, batch.mask, attn_scale_, att_.data());
  TS_RETURN_IF_ERROR(RowParallelMatMul(granules_->wo[l], granules_->wo_run[l], att_.data(), n,
                                       static_cast<int64_t>(c.n_heads) * c.head_dim, h_.data()));
  b.Add(x_.data(), h_.data(), n * hidden);

  // MLP block.
  b.RmsNorm(x_.data(), w.ffn_norm, n, hidden, c.rms_eps, h_.data());
  b.MatMul(w.w_gate, h_.data(), n, gate_.data());
  b.MatMul(w.w_up, h_.data(), n, up_.data());
  b.SwiGlu(gate_.data(), up_.data(), n, c.intermediate_size, gate_.data());
  TS_RETURN_IF_ERROR(RowParallelMatMul(granules_->down[l], granules_->down_run[l], gate_.data(), n,
                                       c.intermediate_size, h_.data()));
  b.Add(x_.data(), h_.data(), n * hidden);
  return absl::OkStatus();
}

void Transformer::CaptureQueries(int l, const ForwardBatch& batch) {
  const size_t q_dim = static_cast<size_t>(config_.n_heads) * static_cast<size_t>(config_.head_dim);
  const size_t per_row = static_cast<size_t>(config_.n_layers) * q_dim;
  for (size_t i = 0; i < batch.capture_rows.size(); ++i) {
    std::memcpy(batch.capture_queries + i * per_row + static_cast<size_t>(l) * q_dim,
                q_.data() + static_cast<size_t>(batch.capture_rows[i]) * q_dim,
                q_dim * sizeof(float));
  }
}

Status Transformer::Forward(const ForwardBatch& batch, KvCache& cache, float* logits,
                            float* hidden) {
  const int64_t n = static_cast<int64_t>(batch.tokens.size());
  if (n == 0 || n > max_batch_) {
    return absl::InternalError(absl::StrCat("Forward: batch of ", n, " tokens, max ", max_batch_));
  }
  if (batch.positions.size() != batch.tokens.size() || batch.slots.size() != batch.tokens.size()) {
    return absl::InternalError("Forward: tokens, positions and slots differ in length");
  }
  for (int64_t i = 0; i < n; ++i) {
    if (batch.tokens[i] < 0 || batch.tokens[i] >= config_.vocab_size) {
      return BadInput("token id ", batch.tokens[i], " outside the vocabulary [0, ",
                      config_.vocab_size, ")");
    }
    if (batch.slots[i] < 0 || batch.slots[i] >= cache.capacity()) {
      return absl::InternalError(absl::StrCat("Forward: cache slot ", batch.slots[i],
                                              " outside capacity ", cache.capacity()));
    }
  }
  if (!batch.capture_rows.empty()) {
    if (batch.capture_queries == nullptr) {
      return absl::InternalError("Forward: capture_rows given without capture_queries");
    }
    for (const int32_t row : batch.capture_rows) {
      if (row < 0 || row >= n) return absl::InternalError("Forward: capture row out of range");
    }
  }
  Backend& b = *backend_;
  const int64_t hd = config_.hidden_size;
  TS_RETURN_IF_ERROR(Embed(batch.tokens, x_.data()));
  for (int l = 0; l < config_.n_layers; ++l) TS_RETURN_IF_ERROR(Layer(l, n, batch, cache));

  const int64_t m = static_cast<int64_t>(batch.logits_rows.size());
  if (m == 0) return absl::OkStatus();
  for (int64_t i = 0; i < m; ++i) {
    const int32_t row = batch.logits_rows[i];
    if (row < 0 || row >= n) return absl::InternalError("Forward: logits row out of range");
    std::memcpy(out_rows_.data() + i * hd, x_.data() + row * hd, hd * sizeof(float));
  }
  if (hidden != nullptr) std::memcpy(hidden, out_rows_.data(), m * hd * sizeof(float));
  if (logits != nullptr) Head(m, logits);
  return absl::OkStatus();
}

void Transformer::Head(int64_t m, float* logits) {
  const int64_t hd = config_.hidden_size;
  backend_->RmsNorm(out_rows_.data(), weights_.final_norm, m, hd, config_.rms_eps,
                    out_rows_.data());
  backend_->MatMul(weights_.lm_head, out_rows_.data(), m, logits);
}

void Transformer::Logits(const float* hidden, int64_t m, float* logits) {
  std::memcpy(out_rows_.data(), hidden, m * config_.hidden_size * sizeof(float));
  Head(m, logits);
}

}  // namespace ts
