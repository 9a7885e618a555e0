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
      attn_scale_(1.0f / std::sqrt(static_cast<float>(config.head_dim))),
      host_(backend->host_memory()) {
  const int64_t hidden = config.hidden_size;
  const int64_t q_dim = static_cast<int64_t>(config.n_heads) * config.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(config.n_kv_heads) * config.head_dim;
  if (tp != nullptr && !host_) {
    alloc_status_ = BadInput("tensor parallelism on ", backend->Name(),
                             ": the MPI communicator carries host memory only");
  }
  Scratch(&x_, max_batch * hidden);
  Scratch(&h_, max_batch * std::max(hidden, q_dim));
  Scratch(&q_, max_batch * q_dim);
  Scratch(&k_, max_batch * kv_dim);
  Scratch(&v_, max_batch * kv_dim);
  Scratch(&att_, max_batch * q_dim);
  Scratch(&gate_, max_batch * config.intermediate_size);
  Scratch(&up_, max_batch * config.intermediate_size);
  Scratch(&out_rows_, max_batch * hidden);
  const int64_t n_freq = static_cast<int64_t>(rope_.inv_freq.size());
  if (float* f = Scratch(&inv_freq_, n_freq)) {
    backend->Upload(f, rope_.inv_freq.data(), n_freq * sizeof(float));
  }
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
  Scratch(&granule_x_, max_batch * widest);
  Scratch(&partials_, granules_->max_local * max_batch * hidden);
  if (tp != nullptr) {
    gathered_.resize(tp->comm()->size() * granules_->max_local * max_batch * hidden);
  }
}

float* Transformer::Scratch(Buffer* buffer, int64_t count) {
  const size_t bytes = static_cast<size_t>(std::max<int64_t>(count, 1)) * sizeof(float);
  if (buffer->size() >= bytes) return buffer->as<float>();
  StatusOr<Buffer> b = backend_->Alloc(bytes);
  if (!b.ok()) {
    if (alloc_status_.ok()) alloc_status_ = b.status();
    return nullptr;
  }
  *buffer = *std::move(b);
  return buffer->as<float>();
}

Transformer::Staged Transformer::Stage(const ForwardBatch& batch) {
  Staged in;
  if (host_) {
    in.tokens = batch.tokens.data();
    in.positions = batch.positions.data();
    in.slots = batch.slots.data();
    in.mask = batch.mask;
    return in;
  }
  // One upload: tokens | positions | slots | prefix_len | extra_begin | extra_slots.
  const size_t n = batch.tokens.size();
  const AttentionMask& m = batch.mask;
  const size_t n_extra = m.extra_begin != nullptr ? static_cast<size_t>(m.extra_begin[n]) : 0;
  packed_.clear();
  for (std::span<const int32_t> part :
       {batch.tokens, batch.positions, batch.slots, std::span<const int32_t>(m.prefix_len, n)}) {
    packed_.insert(packed_.end(), part.begin(), part.end());
  }
  if (m.extra_begin != nullptr) {
    packed_.insert(packed_.end(), m.extra_begin, m.extra_begin + n + 1);
    packed_.insert(packed_.end(), m.extra_slots, m.extra_slots + n_extra);
  }
  // Scratch counts floats; int32 has the same size.
  auto* dev = reinterpret_cast<int32_t*>(Scratch(&inputs_, static_cast<int64_t>(packed_.size())));
  if (dev == nullptr) return in;
  backend_->Upload(dev, packed_.data(), packed_.size() * sizeof(int32_t));
  in.tokens = dev;
  in.positions = dev + n;
  in.slots = dev + 2 * n;
  in.mask.prefix_len = dev + 3 * n;
  if (m.extra_begin != nullptr) {
    in.mask.extra_begin = dev + 4 * n;
    in.mask.extra_slots = dev + 5 * n + 1;
  }
  return in;
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
    b.MatMulSegments(run.w, x, n, run.bounds, partials_.as<float>());
  } else {
    for (size_t j = 0; j < parts.size(); ++j) {
      const RowParallelPart& part = parts[j];
      float* out = partials_.as<float>() + j * block;
      const int64_t cols = part.cols.size();
      if (cols == 0) {
        b.Memset(out, 0, block * sizeof(float));  // +0.0f
        continue;
      }
      const float* xj = x + part.cols.begin;  // one row: the granule's columns are contiguous
      if (n > 1 && cols != x_cols) {
        b.Copy2D(granule_x_.data(), cols * sizeof(float), x + part.cols.begin,
                 x_cols * sizeof(float), cols * sizeof(float), n);
        xj = granule_x_.as<float>();
      }
      b.MatMul(part.w, xj, n, out);
    }
  }
  // Granule g's partial: in partials_ (one process), or in slot (rank, g - rank's first) of the
  // gathered partials, every rank sending max_local slots.
  const float* all = partials_.as<float>();
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
        b.Copy(y, partial, block * sizeof(float));
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
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n > max_batch_) return absl::InternalError("Transformer::Embed: more tokens than max_batch");
  TS_RETURN_IF_ERROR(alloc_status_);
  ForwardBatch batch;
  batch.tokens = tokens;
  batch.positions = tokens;  // unused; Stage packs them
  batch.slots = tokens;
  std::vector<int32_t> prefix(tokens.size(), 0);
  batch.mask.prefix_len = prefix.data();
  const Staged in = Stage(batch);
  TS_RETURN_IF_ERROR(alloc_status_);
  TS_RETURN_IF_ERROR(EmbedRows(tokens, in.tokens));
  return backend_->Download(out, x_.data(), n * config_.hidden_size * sizeof(float));
}

Status Transformer::EmbedRows(std::span<const int32_t> tokens, const int32_t* staged_tokens) {
  float* x = x_.as<float>();
  if (tp_ == nullptr) {
    backend_->Embed(weights_.embed, staged_tokens, static_cast<int64_t>(tokens.size()), x);
    return absl::OkStatus();
  }
  // Each rank holds its vocabulary rows: zeros elsewhere, summed over ranks (host memory: the
  // constructor refuses tensor parallelism on a device backend).
  const int64_t hidden = config_.hidden_size;
  const Range vocab = tp_->vocab();
  for (size_t i = 0; i < tokens.size(); ++i) {
    float* row = x + static_cast<int64_t>(i) * hidden;
    if (tokens[i] >= vocab.begin && tokens[i] < vocab.end) {
      const int32_t local = static_cast<int32_t>(tokens[i] - vocab.begin);
      backend_->Embed(weights_.embed, &local, 1, row);
    } else {
      std::fill(row, row + hidden, 0.0f);  // another rank's row; adding zeros is exact
    }
  }
  return tp_->comm()->AllReduceSum(x, tokens.size() * hidden);
}

Status Transformer::Layer(int l, int64_t n, const ForwardBatch& batch, const Staged& in,
                          KvCache& cache) {
  const LayerWeights& w = weights_.layers[l];
  const ModelConfig& c = config_;
  Backend& b = *backend_;
  const int64_t hidden = c.hidden_size;
  float* x = x_.as<float>();
  float* h = h_.as<float>();
  float* q = q_.as<float>();
  float* k = k_.as<float>();
  float* v = v_.as<float>();
  float* gate = gate_.as<float>();
  const float* inv_freq = inv_freq_.as<float>();

  // Attention block.
  b.RmsNorm(x, w.attn_norm, n, hidden, c.rms_eps, h);
  b.MatMul(w.wq, h, n, q, w.bq);
  b.MatMul(w.wk, h, n, k, w.bk);
  b.MatMul(w.wv, h, n, v, w.bv);
  b.Rope(q, n, c.n_heads, c.head_dim, in.positions, inv_freq, rope_.mscale, c.rope_style);
  b.Rope(k, n, c.n_kv_heads, c.head_dim, in.positions, inv_freq, rope_.mscale, c.rope_style);
  if (!batch.capture_rows.empty()) {
    CaptureQueries(l, batch, host_ ? batch.capture_queries : captured_.as<float>());
  }
  const KvLayerView kv = cache.Layer(l);
  b.StoreKv(kv, k, v, n, in.slots);
  b.Attention(q, n, c.n_heads, kv, in.mask, attn_scale_, att_.as<float>());
  TS_RETURN_IF_ERROR(RowParallelMatMul(granules_->wo[l], granules_->wo_run[l], att_.as<float>(), n,
                                       static_cast<int64_t>(c.n_heads) * c.head_dim, h));
  b.Add(x, h, n * hidden);

  // MLP block.
  b.RmsNorm(x, w.ffn_norm, n, hidden, c.rms_eps, h);
  b.MatMul(w.w_gate, h, n, gate);
  b.MatMul(w.w_up, h, n, up_.as<float>());
  b.SwiGlu(gate, up_.as<float>(), n, c.intermediate_size, gate);
  TS_RETURN_IF_ERROR(RowParallelMatMul(granules_->down[l], granules_->down_run[l], gate, n,
                                       c.intermediate_size, h));
  b.Add(x, h, n * hidden);
  return absl::OkStatus();
}

void Transformer::CaptureQueries(int l, const ForwardBatch& batch, float* captured) {
  const size_t q_dim = static_cast<size_t>(config_.n_heads) * static_cast<size_t>(config_.head_dim);
  const size_t per_row = static_cast<size_t>(config_.n_layers) * q_dim;
  for (size_t i = 0; i < batch.capture_rows.size(); ++i) {
    backend_->Copy(captured + i * per_row + static_cast<size_t>(l) * q_dim,
                   q_.as<float>() + static_cast<size_t>(batch.capture_rows[i]) * q_dim,
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
  const int64_t captures = static_cast<int64_t>(batch.capture_rows.size());
  const int64_t capture_count = captures * config_.n_layers * config_.n_heads * config_.head_dim;
  if (captures > 0) {
    if (batch.capture_queries == nullptr) {
      return absl::InternalError("Forward: capture_rows given without capture_queries");
    }
    for (const int32_t row : batch.capture_rows) {
      if (row < 0 || row >= n) return absl::InternalError("Forward: capture row out of range");
    }
    if (!host_) Scratch(&captured_, capture_count);
  }
  const int64_t m = static_cast<int64_t>(batch.logits_rows.size());
  if (m > max_batch_) {
    return absl::InternalError(absl::StrCat("Forward: ", m, " logits rows, max ", max_batch_));
  }
  for (const int32_t row : batch.logits_rows) {
    if (row < 0 || row >= n) return absl::InternalError("Forward: logits row out of range");
  }
  TS_RETURN_IF_ERROR(alloc_status_);
  const Staged in = Stage(batch);
  TS_RETURN_IF_ERROR(alloc_status_);
  TS_RETURN_IF_ERROR(EmbedRows(batch.tokens, in.tokens));
  for (int l = 0; l < config_.n_layers; ++l) TS_RETURN_IF_ERROR(Layer(l, n, batch, in, cache));

  Backend& b = *backend_;
  if (captures > 0 && !host_) {
    TS_RETURN_IF_ERROR(
        b.Download(batch.capture_queries, captured_.data(), capture_count * sizeof(float)));
  }
  if (m == 0) return b.Synchronize();
  const int64_t hd = config_.hidden_size;
  for (int64_t i = 0; i < m; ++i) {
    b.Copy(out_rows_.as<float>() + i * hd, x_.as<float>() + batch.logits_rows[i] * hd,
           hd * sizeof(float));
  }
  if (hidden != nullptr) {
    TS_RETURN_IF_ERROR(b.Download(hidden, out_rows_.data(), m * hd * sizeof(float)));
  }
  if (logits != nullptr) return Head(m, logits);
  return b.Synchronize();
}

Status Transformer::Head(int64_t m, float* logits) {
  const int64_t hd = config_.hidden_size;
  float* rows = out_rows_.as<float>();
  backend_->RmsNorm(rows, weights_.final_norm, m, hd, config_.rms_eps, rows);
  if (host_) {
    backend_->MatMul(weights_.lm_head, rows, m, logits);
    return absl::OkStatus();
  }
  const int64_t count = m * weights_.lm_head.rows;
  float* dev = Scratch(&logits_, count);
  TS_RETURN_IF_ERROR(alloc_status_);
  backend_->MatMul(weights_.lm_head, rows, m, dev);
  return backend_->Download(logits, dev, count * sizeof(float));
}

Status Transformer::Logits(const float* hidden, int64_t m, float* logits) {
  if (m > max_batch_) return absl::InternalError("Transformer::Logits: more rows than max_batch");
  TS_RETURN_IF_ERROR(alloc_status_);
  backend_->Upload(out_rows_.data(), hidden, m * config_.hidden_size * sizeof(float));
  return Head(m, logits);
}

}  // namespace ts
