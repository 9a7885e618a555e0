// A rank's slices of a tensor-parallel model; see tensor_parallel.h.
#include "runtime/model/tensor_parallel.h"

#include <algorithm>

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

namespace {

ShardDims DimsOf(const ModelConfig& config, int64_t vocab_block) {
  ShardDims dims;
  dims.n_heads = config.n_heads;
  dims.n_kv_heads = config.n_kv_heads;
  dims.head_dim = config.head_dim;
  dims.hidden = config.hidden_size;
  dims.intermediate = config.intermediate_size;
  dims.vocab = config.vocab_size;
  dims.vocab_block = vocab_block;
  return dims;
}

// The run of a layer's local parts (see RowParallelRun); `local` is the rank's input columns of
// the full weight, which the parts tile in order.
StatusOr<RowParallelRun> MakeRun(const Matrix& full, const std::vector<RowParallelPart>& parts,
                                 Range local, const char* what) {
  RowParallelRun run;
  TS_ASSIGN_OR_RETURN(run.w, ColumnSlice(full, local, what));
  run.bounds.push_back(0);
  for (const RowParallelPart& part : parts) {
    if (part.cols.begin != run.bounds.back() || part.cols.begin % 64 != 0 ||
        part.cols.size() == 0) {
      return RowParallelRun{};
    }
    run.bounds.push_back(part.cols.end);
  }
  if (run.bounds.back() != local.size()) return RowParallelRun{};
  return run;
}

}  // namespace

StatusOr<GranuleLayout> MakeGranuleLayout(const ModelWeights& weights, const ShardPlan& plan) {
  GranuleLayout g;
  g.total = plan.dims.n_kv_heads;
  g.local = plan.kv_heads;
  for (int r = 0; r < plan.world; ++r) {
    g.rank_granules.push_back(SplitRange(g.total, plan.world, r));
    g.max_local = std::max(g.max_local, g.rank_granules.back().size());
  }
  for (const LayerWeights& full : weights.layers) {
    std::vector<RowParallelPart> wo, down;
    for (int64_t k = g.local.begin; k < g.local.end; ++k) {
      const Range o = OprojGranule(plan.dims, k), f = FfnGranule(plan.dims, k);
      TS_ASSIGN_OR_RETURN(Matrix wo_k, ColumnSlice(full.wo, o, "o_proj"));
      TS_ASSIGN_OR_RETURN(Matrix down_k, ColumnSlice(full.w_down, f, "down_proj"));
      wo.push_back({wo_k, {o.begin - plan.q_cols.begin, o.end - plan.q_cols.begin}});
      down.push_back({down_k, {f.begin - plan.ffn.begin, f.end - plan.ffn.begin}});
    }
    TS_ASSIGN_OR_RETURN(RowParallelRun wo_run, MakeRun(full.wo, wo, plan.q_cols, "o_proj"));
    TS_ASSIGN_OR_RETURN(RowParallelRun down_run, MakeRun(full.w_down, down, plan.ffn, "down_proj"));
    g.wo.push_back(std::move(wo));
    g.down.push_back(std::move(down));
    g.wo_run.push_back(std::move(wo_run));
    g.down_run.push_back(std::move(down_run));
  }
  return g;
}

GranuleLayout SingleProcessGranules(const ModelConfig& config, const ModelWeights& weights) {
  StatusOr<ShardPlan> plan = MakeShardPlan(DimsOf(config, 1), 0, 1);
  if (plan.ok()) {
    StatusOr<GranuleLayout> layout = MakeGranuleLayout(weights, *plan);
    if (layout.ok()) return *std::move(layout);
  }
  GranuleLayout g;
  g.rank_granules = {Range{0, 1}};
  for (const LayerWeights& full : weights.layers) {
    g.wo.push_back({{full.wo, Range{0, full.wo.cols}}});
    g.down.push_back({{full.w_down, Range{0, full.w_down.cols}}});
    g.wo_run.emplace_back();
    g.down_run.emplace_back();
  }
  return g;
}

StatusOr<std::unique_ptr<TpShard>> TpShard::Create(const ModelConfig& config,
                                                   const ModelWeights& weights, Communicator* comm,
                                                   int64_t vocab_block) {
  TS_ASSIGN_OR_RETURN(ShardPlan plan,
                      MakeShardPlan(DimsOf(config, vocab_block), comm->rank(), comm->size()));
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
  TS_ASSIGN_OR_RETURN(s->granules_, MakeGranuleLayout(weights, plan));
  return s;
}

}  // namespace ts
