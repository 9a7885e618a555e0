// Collective communication between the ranks of one tensor-parallel group (DESIGN.md section 4).
//
// Implementations: local (one process, size 1), MPI (CPU ranks under mpirun or Slurm, and the
// control channel of GPU ranks), NCCL (GPU buffers; its unique id travels over MPI). Every call
// is collective: all ranks of the group make the same calls in the same order.
//
// Determinism. AllReduceSum returns the same bits on every rank and for every run: the MPI
// implementation gathers all contributions and adds them in rank order (rank 0 + rank 1 + ...),
// never in an order the library picks. Results of a TP=2 run therefore do not depend on timing;
// they differ from TP=1 only by the rounding of the split sums.
//
// Failure. A rank that exits or stops answering must not hang the others: the MPI
// implementation polls its requests against a deadline (CommOptions::timeout_seconds). When it
// passes, the waiting rank pings every other rank on a separate channel, names the ranks that do
// not answer, and returns DeadlineExceeded with that message; the caller logs it and calls
// Abort(), which ends every rank of the job.
//
//   CommOptions options;
//   TS_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> comm, MakeCommunicator("mpi", options));
//   TS_RETURN_IF_ERROR(comm->AllReduceSum(partial.data(), partial.size()));  // after o_proj
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"

namespace ts {

struct CommOptions {
  double timeout_seconds = 60.0;  // a collective that makes no progress this long is an error
  double ping_seconds = 2.0;      // how long the diagnosis waits for the other ranks' answers
};

// One rank's candidate in a (value, index) max-reduction: the sharded Gumbel-max's winner.
struct ValueIndex {
  double value = 0.0;
  int64_t index = -1;  // -1: this rank has no candidate (it loses to any other)
};

// The reduction rule: larger value; equal values -> lower index; index -1 loses.
inline ValueIndex BetterOf(const ValueIndex& a, const ValueIndex& b) {
  if (a.index < 0) return b;
  if (b.index < 0) return a;
  if (a.value != b.value) return a.value > b.value ? a : b;
  return a.index < b.index ? a : b;
}

class Communicator {
 public:
  virtual ~Communicator() = default;

  virtual int rank() const = 0;
  virtual int size() const = 0;
  virtual const char* name() const = 0;  // "local", "mpi", "nccl"

  // data (n floats) <- the sum over ranks of every rank's data, added in rank order.
  virtual Status AllReduceSum(float* data, size_t n) = 0;
  // all (size() * bytes) <- every rank's `mine` (bytes), rank r's at offset r * bytes.
  virtual Status AllGather(const void* mine, size_t bytes, void* all) = 0;
  // data (bytes) <- root's data.
  virtual Status Broadcast(void* data, size_t bytes, int root) = 0;
  // The best candidate over ranks (BetterOf), identical on every rank.
  virtual StatusOr<ValueIndex> MaxReduce(const ValueIndex& mine) = 0;
  virtual Status Barrier() = 0;

  // Bytes this rank has sent so far (payloads of collectives, as the algorithm moves them).
  virtual int64_t bytes_sent() const = 0;

  // Ends every rank of the job (MPI_Abort); for local, exits the process. Does not return.
  [[noreturn]] virtual void Abort(int exit_code) = 0;
};

// kind: "local", "mpi" (built with TS_MPI) or "nccl" (built with TS_NCCL: the GPU is the
// node-local rank's). BadInput for an unknown or unavailable kind.
// "mpi" initialises MPI when nobody has (MPI_THREAD_FUNNELED) and finalises it on destruction.
StatusOr<std::unique_ptr<Communicator>> MakeCommunicator(const std::string& kind,
                                                         const CommOptions& options);

#if TS_NCCL
// NCCL over the GPU `device` (its unique id broadcast over MPI). Buffers passed to the
// collectives are device memory; see nccl_communicator.cc.
StatusOr<std::unique_ptr<Communicator>> MakeNcclCommunicator(const CommOptions& options,
                                                             int device);
#endif

// This process's index among the ranks of its node (the launcher's variables), 0 when none.
int LauncherLocalRank();

// True when this process was started by mpirun/mpiexec or srun with more than one rank (the
// launcher's environment variables), so `--tp N` can check it is under a launcher.
int LauncherWorldSize();

}  // namespace ts
