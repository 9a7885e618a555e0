#include "launch/tensor_parallel_flags.h"

#include "runtime/common/logging.h"
#include "spdlog/spdlog.h"

namespace ts::cli {

void AddTensorParallelOptions(CLI::App* sub, TensorParallelFlags* flags) {
  sub->add_option("--tp,--tensor-parallel-size", flags->tp,
                  "tensor-parallel ranks (start them with mpirun -np N or srun -n N)")
      ->capture_default_str();
  sub->add_option("--comm-timeout", flags->comm_timeout,
                  "seconds a collective may wait for the other ranks before the job is ended")
      ->capture_default_str();
}

Status ValidateTensorParallel(const TensorParallelFlags& flags) {
  if (flags.tp < 1) return BadInput("--tp: expected at least 1, got ", flags.tp);
  if (!(flags.comm_timeout > 0 && flags.comm_timeout <= 7 * 24 * 3600.0)) {
    return BadInput("--comm-timeout: expected seconds in (0, 604800], got ", flags.comm_timeout);
  }
  const int world = LauncherWorldSize();
  if (flags.tp > 1 && world != flags.tp) {
    return BadInput("--tp ", flags.tp, ": start ", flags.tp, " ranks with mpirun -np ", flags.tp,
                    " (or srun -n ", flags.tp, "); this process sees ", world, " rank(s)");
  }
  return absl::OkStatus();
}

StatusOr<TensorParallelRank> SetUpTensorParallel(const TensorParallelFlags& flags,
                                                 const Model& model) {
  TensorParallelRank r;
  if (flags.tp <= 1) return r;
  CommOptions options;
  options.timeout_seconds = flags.comm_timeout;
  TS_ASSIGN_OR_RETURN(r.comm, MakeCommunicator("mpi", options));
  SetLogRank(r.comm->rank());
  // Reduce blocks of 1024 vocabulary rows keep sums bit-exact; tiny test vocabularies use 32.
  const int64_t vocab_block = model.config().vocab_size >= 1024 * flags.tp ? 1024 : 32;
  TS_ASSIGN_OR_RETURN(r.shard,
                      TpShard::Create(model.config(), model.weights(), r.comm.get(), vocab_block));
  spdlog::info("{}", r.shard->plan().Describe());
  return r;
}

Status TensorParallelRank::ShardHeads(DraftHeads* heads) const {
  if (heads == nullptr || shard == nullptr) return absl::OkStatus();
  TS_RETURN_IF_ERROR(heads->Shard(shard->plan().draft_hidden, comm.get()));
  heads->SetVocabRange(shard->plan().vocab);
  return absl::OkStatus();
}

}  // namespace ts::cli
