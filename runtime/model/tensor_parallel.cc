// A rank's slices of a tensor-parallel model; see tensor_parallel.h.
#include "runtime/model/tensor_parallel.h"

namespace ts {

Matrix RowSlice(const Matrix& m, Range r) {
  Matrix s = m;
  s.data = m.Row(r.begin);
  s.rows = r.size();
  return s;
}

StatusOr<Matrix> ColumnSlice(const Matrix& m, Range c, const char* what) {
  const int64_t block = GetDTypeInfo(m.dtype).block_elems;
  if (c.begin % block != 0 || (c.end % block != 0 && c.end != m.cols)) {
    return BadInput("--tp: ", what, " columns [", c.begin, ", ", c.end,
                    ") do not fall on its quantization blocks of ", block);
  }
  Matrix s = m;
  s.data = static_cast<const uint8_t*>(m.data) + RowBytes(m.dtype, c.begin);
  s.cols = c.size();
  // row_bytes stays m's: the slice's rows are strided views into the full rows.
  return s;
}

StatusOr<std::unique_ptr<TpShard>> TpShard::Create(const ModelConfig& config,
                                                   const ModelWeights& weights, Communicator* comm,
                                                   int64_t vocab_block) {
  ShardDims dims;
  dims.n_heads = config.n_heads;
  dims.n_kv_heads = config.n_kv_heads;
  dims.head_dim = config.head_dim;
  dims.hidden = config.hidden_size;
  dims.intermediate = config.intermediate_size;
  dims.vocab = config.vocab_size;
  dims.vocab_block = vocab_block;
  TS_ASSIGN_OR_RETURN(ShardPlan plan, MakeShardPlan(dims, comm->rank(), comm->size()));
  std::unique_ptr<TpShard> s(new TpShard());
  s->plan_ = plan;
  s->comm_ = comm;
  s->config_ = config;
  s->config_.n_heads = static_cast<int>(plan.q_heads.size());
  s->config_.n_kv_heads = static_cast<int>(plan.kv_heads.size());
  s->config_.intermediate_size = plan.ffn.size();
  // vocab_size stays global: token ids are global; the head's rows are plan.vocab.
  const int64_t hd = config.head_dim;
  const Range kv_rows{plan.kv_heads.begin * hd, plan.kv_heads.end * hd};
  ModelWeights& w = s->weights_;
  w.embed = RowSlice(weights.embed, plan.vocab);
  w.lm_head = RowSlice(weights.lm_head, plan.vocab);
  w.final_norm = weights.final_norm;
  for (const LayerWeights& full : weights.layers) {
    LayerWeights l = full;
    l.wq = RowSlice(full.wq, plan.q_cols);
    l.wk = RowSlice(full.wk, kv_rows);
    l.wv = RowSlice(full.wv, kv_rows);
    if (full.bq != nullptr) l.bq = full.bq + plan.q_cols.begin;
    if (full.bk != nullptr) l.bk = full.bk + kv_rows.begin;
    if (full.bv != nullptr) l.bv = full.bv + kv_rows.begin;
    TS_ASSIGN_OR_RETURN(l.wo, ColumnSlice(full.wo, plan.q_cols, "o_proj"));
    l.w_gate = RowSlice(full.w_gate, plan.ffn);
    l.w_up = RowSlice(full.w_up, plan.ffn);
    TS_ASSIGN_OR_RETURN(l.w_down, ColumnSlice(full.w_down, plan.ffn, "down_proj"));
    w.layers.push_back(l);
  }
  return s;
}

}  // namespace ts
