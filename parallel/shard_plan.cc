// Tensor-parallel slices; see shard_plan.h.
#include "parallel/shard_plan.h"

#include <algorithm>

#include "absl/strings/str_format.h"

namespace ts {

Range SplitRange(int64_t n, int parts, int index, int64_t unit) {
  const int64_t units = (n + unit - 1) / unit;
  const int64_t base = units / parts, extra = units % parts;
  const int64_t first = index * base + std::min<int64_t>(index, extra);
  const int64_t count = base + (index < extra ? 1 : 0);
  return Range{std::min(n, first * unit), std::min(n, (first + count) * unit)};
}

Range OprojGranule(const ShardDims& d, int64_t g) {
  const int64_t cols = d.n_heads / d.n_kv_heads * d.head_dim;
  return Range{g * cols, (g + 1) * cols};
}

Range FfnGranule(const ShardDims& d, int64_t g) {
  return SplitRange(d.intermediate, static_cast<int>(d.n_kv_heads), static_cast<int>(g),
                    d.quant_block);
}

std::string ShardPlan::Describe() const {
  return absl::StrFormat(
      "tp rank %d/%d: kv heads [%d, %d), q heads [%d, %d), ffn columns [%d, %d), vocab [%d, %d), "
      "draft-head rows [%d, %d)",
      rank, world, kv_heads.begin, kv_heads.end, q_heads.begin, q_heads.end, ffn.begin, ffn.end,
      vocab.begin, vocab.end, draft_hidden.begin, draft_hidden.end);
}

StatusOr<ShardPlan> MakeShardPlan(const ShardDims& d, int rank, int world) {
  if (world < 1) return BadInput("--tp: expected at least 1 rank, got ", world);
  if (rank < 0 || rank >= world) {
    return absl::InvalidArgumentError(absl::StrFormat("shard plan: rank %d of %d", rank, world));
  }
  if (d.n_kv_heads < 1 || d.n_heads % d.n_kv_heads != 0) {
    return BadInput("--tp: the model's ", d.n_heads, " attention heads are not a multiple of its ",
                    d.n_kv_heads, " KV heads");
  }
  if (world > d.n_kv_heads) {
    return BadInput("--tp ", world, ": the model has only ", d.n_kv_heads,
                    " KV heads, so at most --tp ", d.n_kv_heads);
  }
  const int64_t ffn_units = (d.intermediate + d.quant_block - 1) / d.quant_block;
  const int64_t vocab_units = (d.vocab + d.vocab_block - 1) / d.vocab_block;
  if ((world > 1 && ffn_units < d.n_kv_heads) || vocab_units < world || d.hidden < world) {
    return BadInput("--tp ", world, ": the model is too small to split over ", world, " ranks");
  }
  ShardPlan p;
  p.dims = d;
  p.rank = rank;
  p.world = world;
  const int64_t group = d.n_heads / d.n_kv_heads;
  p.kv_heads = SplitRange(d.n_kv_heads, world, rank);
  p.q_heads = {p.kv_heads.begin * group, p.kv_heads.end * group};
  p.q_cols = {p.q_heads.begin * d.head_dim, p.q_heads.end * d.head_dim};
  p.ffn = {FfnGranule(d, p.kv_heads.begin).begin, FfnGranule(d, p.kv_heads.end - 1).end};
  p.vocab = SplitRange(d.vocab, world, rank, d.vocab_block);
  p.draft_hidden = SplitRange(d.hidden, world, rank);
  return p;
}

}  // namespace ts
