// Which slice of every weight a tensor-parallel rank owns (DESIGN.md section 4): attention by KV
// head (with the query heads of its group), o_proj by the matching input columns, the MLP by
// intermediate columns (gate/up rows, down_proj input columns), embedding and lm_head by
// vocabulary rows, the draft heads' linears by output rows (gathered after). Pure arithmetic on
// the model's dimensions: parallel/ knows no model files and no decoding.
//
// Splits are contiguous and as even as the unit allows, earlier ranks taking the remainder:
// SmolLM2's 3 KV heads on 2 ranks are 2 + 1. Units keep slices on block boundaries:
//   - vocabulary in sampling reduce blocks (1024, runtime/sampling/logits_processor.h), so the
//     ranks' partial sums add up to the single-rank sums bit for bit.
//
// Reduction granules: the same bits at every TP degree. The row-parallel matmuls (o_proj and
// down_proj) sum over input columns that the ranks split. Floating-point addition is not
// associative, so their result is *defined* as the sum of one partial product per granule,
// added in granule order: y = ((y_0 + y_1) + y_2) + ..., in one process as across ranks. There
// is one granule per KV head (no TP degree exceeds that): granule g of o_proj is the columns of
// KV head g's query heads, granule g of down_proj is part g of the intermediate columns split
// into n_kv_heads parts of whole quantization blocks (32). A rank owns the granules of its KV
// heads, so every shard boundary is a granule boundary.
//
//   ShardDims dims{.n_heads = 9, .n_kv_heads = 3, .head_dim = 64, .hidden = 576,
//                  .intermediate = 1536, .vocab = 49152};
//   TS_ASSIGN_OR_RETURN(ShardPlan plan, MakeShardPlan(dims, /*rank=*/1, /*world=*/2));
//   // plan.kv_heads = [2, 3), plan.q_heads = [6, 9), plan.ffn = [1024, 1536)
//   // OprojGranule(dims, 2) = [384, 576), FfnGranule(dims, 2) = [1024, 1536)
#pragma once

#include <cstdint>
#include <string>

#include "common/status.h"

namespace ts {

struct Range {
  int64_t begin = 0;
  int64_t end = 0;
  int64_t size() const { return end - begin; }
  bool operator==(const Range&) const = default;
};

// Part `index` of `parts` of [0, n) split into contiguous ranges of whole units (the last unit
// may be partial when unit does not divide n): the first (units % parts) parts get one unit more.
Range SplitRange(int64_t n, int parts, int index, int64_t unit = 1);

struct ShardDims {
  int64_t n_heads = 0;
  int64_t n_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t hidden = 0;
  int64_t intermediate = 0;
  int64_t vocab = 0;
  int64_t quant_block = 32;    // intermediate columns per unit of an FFN granule
  int64_t vocab_block = 1024;  // vocabulary rows per unit
};

// Input columns of reduction granule g (in [0, n_kv_heads)) of o_proj and of down_proj.
Range OprojGranule(const ShardDims& dims, int64_t g);
Range FfnGranule(const ShardDims& dims, int64_t g);

struct ShardPlan {
  ShardDims dims;  // the whole model's
  int rank = 0;
  int world = 1;
  Range kv_heads;      // this rank's KV heads, and so its reduction granules
  Range q_heads;       // their query heads (kv_heads * group size)
  Range q_cols;        // o_proj input columns: q_heads * head_dim
  Range ffn;           // intermediate columns (its FFN granules)
  Range vocab;         // embedding and lm_head rows
  Range draft_hidden;  // draft-head linear output rows

  std::string Describe() const;  // one line for logs
};

// BadInput naming --tp when the model cannot be split that way (more ranks than KV heads, heads
// not a multiple of KV heads, a dimension smaller than the ranks).
StatusOr<ShardPlan> MakeShardPlan(const ShardDims& dims, int rank, int world);

}  // namespace ts
