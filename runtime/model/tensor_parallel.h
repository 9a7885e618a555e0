// One rank's share of a tensor-parallel model (DESIGN.md section 4): the local configuration
// (its query and KV heads, its intermediate columns) and views of its weight slices in the
// memory-mapped file, laid out by parallel/shard_plan.h. A Transformer built on a TpShard runs
// the rank's part of every layer and all-reduces after o_proj and down_proj; its embedding
// lookup covers the rank's vocabulary rows (zeros elsewhere, then an all-reduce) and its head
// yields the logits of the rank's vocabulary range only.
//
//   TS_ASSIGN_OR_RETURN(auto shard, TpShard::Create(model.config(), model.weights(), comm));
//   auto cache = KvCache::Create(shard->config(), capacity, DType::kF32);  // local KV heads
//   Transformer tf(shard->config(), shard->weights(), backend, max_batch, shard.get());
//   tf.Forward(batch, *cache, local_logits);  // (rows, shard->vocab().size())
#pragma once

#include <memory>

#include "parallel/communicator.h"
#include "parallel/shard_plan.h"
#include "runtime/common/status.h"
#include "runtime/model/config.h"
#include "runtime/model/weights.h"

namespace ts {

class TpShard {
 public:
  // BadInput naming --tp when the model cannot be split over comm->size() ranks, or a weight's
  // quantization blocks do not fall on the slice boundaries. vocab_block: vocabulary rows per
  // split unit (1024 keeps sharded sampling sums bit-exact; tiny test vocabularies use less).
  static StatusOr<std::unique_ptr<TpShard>> Create(const ModelConfig& config,
                                                   const ModelWeights& weights, Communicator* comm,
                                                   int64_t vocab_block = 1024);

  const ModelConfig& config() const { return config_; }  // local heads / intermediate
  const ModelWeights& weights() const { return weights_; }
  const ShardPlan& plan() const { return plan_; }
  Range vocab() const { return plan_.vocab; }
  Communicator* comm() const { return comm_; }

 private:
  TpShard() = default;
  ModelConfig config_;
  ModelWeights weights_;
  ShardPlan plan_;
  Communicator* comm_ = nullptr;
};

// Rows [r.begin, r.end) of m (a view).
Matrix RowSlice(const Matrix& m, Range r);
// Columns [c.begin, c.end) of m (a view whose rows keep m's stride). BadInput unless the range
// starts and ends on m's quantization block boundaries.
StatusOr<Matrix> ColumnSlice(const Matrix& m, Range c, const char* what);

}  // namespace ts
