// The local communicator and the factory; see communicator.h.
#include "parallel/communicator.h"

#include <cstdlib>
#include <cstring>

namespace ts {

#if TS_MPI
StatusOr<std::unique_ptr<Communicator>> MakeMpiCommunicator(const CommOptions& options);
#endif

namespace {

// One rank: every collective is the identity.
class LocalCommunicator final : public Communicator {
 public:
  int rank() const override { return 0; }
  int size() const override { return 1; }
  const char* name() const override { return "local"; }
  Status AllReduceSum(float*, size_t) override { return absl::OkStatus(); }
  Status AllGather(const void* mine, size_t bytes, void* all) override {
    if (bytes > 0 && all != mine) std::memmove(all, mine, bytes);
    return absl::OkStatus();
  }
  Status Broadcast(void*, size_t, int root) override {
    if (root != 0) return absl::InvalidArgumentError("Broadcast: root outside the group");
    return absl::OkStatus();
  }
  StatusOr<ValueIndex> MaxReduce(const ValueIndex& mine) override { return mine; }
  Status Barrier() override { return absl::OkStatus(); }
  int64_t bytes_sent() const override { return 0; }
  [[noreturn]] void Abort(int exit_code) override { std::exit(exit_code); }
};

int EnvInt(const char* name) {
  const char* v = std::getenv(name);
  return v == nullptr ? 0 : std::atoi(v);
}

}  // namespace

int LauncherLocalRank() {
  for (const char* name : {"OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID", "SLURM_LOCALID"}) {
    const char* v = std::getenv(name);
    if (v != nullptr) return std::atoi(v);
  }
  return 0;
}

int LauncherWorldSize() {
  for (const char* name : {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE", "SLURM_NTASKS"}) {
    const int n = EnvInt(name);
    if (n > 0) return n;
  }
  return 0;
}

StatusOr<std::unique_ptr<Communicator>> MakeCommunicator(const std::string& kind,
                                                         const CommOptions& options) {
  // Finite and at most a week: an infinite or huge deadline would turn a lost rank into a hang.
  constexpr double kMaxSeconds = 7 * 24 * 3600.0;
  if (!(options.timeout_seconds > 0 && options.timeout_seconds <= kMaxSeconds) ||
      !(options.ping_seconds > 0 && options.ping_seconds <= kMaxSeconds)) {
    return BadInput("--comm-timeout: expected seconds in (0, ", kMaxSeconds, "], got ",
                    options.timeout_seconds);
  }
  if (kind == "local") return std::unique_ptr<Communicator>(new LocalCommunicator());
  if (kind == "mpi") {
#if TS_MPI
    return MakeMpiCommunicator(options);
#else
    return BadInput("--comm mpi: this build has no MPI (configure with -DTS_MPI=ON and Open MPI)");
#endif
  }
  if (kind == "nccl") {
#if TS_NCCL
    return MakeNcclCommunicator(options, LauncherLocalRank());
#else
    return BadInput("--comm nccl: this build has no NCCL (needs the CUDA toolkit and MPI)");
#endif
  }
  return BadInput("--comm: expected local, mpi or nccl, got '", kind, "'");
}

}  // namespace ts
