// `--tp N` and `--comm-timeout S`, shared by generate and bench: the flags, their check before the
// model is opened, and the rank's communicator and weight slices after.
#pragma once

#include <memory>

#include "CLI/CLI.hpp"
#include "common/status.h"
#include "parallel/communicator.h"
#include "runtime/engine/job.h"
#include "runtime/engine/model.h"
#include "runtime/model/tensor_parallel.h"

namespace ts::cli {

struct TensorParallelFlags {
  int tp = 1;
  double comm_timeout = 60.0;
};

void AddTensorParallelOptions(CLI::App* sub, TensorParallelFlags* flags);

// BadInput naming --tp when N < 1, or N > 1 without N ranks started by a launcher.
Status ValidateTensorParallel(const TensorParallelFlags& flags);

// One rank's share of a tensor-parallel job; empty (single process) when --tp is 1.
struct TensorParallelRank {
  std::unique_ptr<Communicator> comm;
  std::unique_ptr<TpShard> shard;
  std::unique_ptr<PlacedWeights> placed;  // set by Place

  bool printer() const { return comm == nullptr || comm->rank() == 0; }  // prints and writes
  const ModelConfig& config(const Model& m) const { return shard ? shard->config() : m.config(); }
  // The rank's weights in the backend's memory once Place has run (host memory before).
  const ModelWeights& weights(const Model& m) const {
    if (placed != nullptr) return placed->get();
    return shard ? shard->weights() : m.weights();
  }
  // Puts the rank's weights where `backend` computes (an upload on a device backend).
  Status Place(const Model& m, Backend* backend) {
    TS_ASSIGN_OR_RETURN(placed, PlacedWeights::Place(weights(m), config(m), *backend));
    return absl::OkStatus();
  }
  // Splits loaded draft heads like this rank's slices (nothing to do in one process).
  Status ShardHeads(DraftHeads* heads) const;
  // What this rank's jobs run on; control: the group's communicator for a server (every rank).
  EngineParts Parts(const Model& m, Backend* backend, DraftHeads* heads, int64_t batch_size,
                    bool control = false) const {
    return EngineParts{&config(m),
                       &weights(m),
                       backend,
                       shard.get(),
                       heads,
                       batch_size,
                       control ? comm.get() : nullptr};
  }
};

// --tp > 1: MPI communicator (rank in the log prefix) and the rank's slices.
StatusOr<TensorParallelRank> SetUpTensorParallel(const TensorParallelFlags& flags,
                                                 const Model& model);

}  // namespace ts::cli
