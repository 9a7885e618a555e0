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
#include <vector>

#include "common/status.h"
#include "parallel/communicator.h"
#include "parallel/shard_plan.h"
#include "runtime/model/config.h"
#include "runtime/model/weights.h"

namespace ts {

// The reduction granules of the row-parallel matmuls that one rank computes (see
// parallel/shard_plan.h): per layer and local granule, a view of o_proj's (down_proj's) columns
// of that granule and where those columns sit in the rank's local input. Built from the whole
// model's weights, so one process and every rank slice the very same views.
struct RowParallelPart {
  Matrix w;    // the granule's columns of the whole weight
  Range cols;  // the same columns in the rank's local input (attention output / intermediate)
};
// All of a layer's local granules in one matrix (the rank's whole local o_proj / down_proj) and
// their column bounds within it, for Backend::MatMulSegments: one pass over the weight rows
// instead of one strided pass per granule. Empty bounds when a granule boundary is not a multiple
// of 64 columns (the kernels' block-pair unit); then the parts are multiplied one by one.
struct RowParallelRun {
  Matrix w;
  std::vector<int64_t> bounds;
};
struct GranuleLayout {
  int64_t total = 1;                 // granules in the model
  Range local{0, 1};                 // this rank's
  std::vector<Range> rank_granules;  // (world) each rank's granules, for the gather
  int64_t max_local = 1;             // most granules a rank holds
  std::vector<std::vector<RowParallelPart>> wo, down;  // (layers, local granules)
  std::vector<RowParallelRun> wo_run, down_run;        // (layers)
};

// BadInput naming --tp when a granule's columns do not fall on a weight's quantization blocks
// (K-quants: 256).
StatusOr<GranuleLayout> MakeGranuleLayout(const ModelWeights& weights, const ShardPlan& plan);
// One process's layout: the model's granules when its weights can be sliced on them, else one
// granule holding the whole matrices (such a model cannot be split over ranks either).
GranuleLayout SingleProcessGranules(const ModelConfig& config, const ModelWeights& weights);

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
  const GranuleLayout& granules() const { return granules_; }

 private:
  TpShard() = default;
  ModelConfig config_;
  ModelWeights weights_;
  ShardPlan plan_;
  GranuleLayout granules_;
  Communicator* comm_ = nullptr;
};

// Rows [r.begin, r.end) of m (a view).
Matrix RowSlice(const Matrix& m, Range r);
// Columns [c.begin, c.end) of m (a view whose rows keep m's stride). BadInput unless the range
// starts and ends on m's quantization block boundaries.
StatusOr<Matrix> ColumnSlice(const Matrix& m, Range c, const char* what);

}  // namespace ts
