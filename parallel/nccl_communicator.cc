// The NCCL communicator (communicator.h) for GPU ranks: collectives on device buffers in one
// stream, the unique id broadcast over MPI, and the same failure rule as MPI: a collective that
// does not complete within the deadline, or an asynchronous NCCL error, aborts the NCCL
// communicator (ncclCommAbort) and returns an error naming this rank and the operation; the
// caller then calls Abort(), which ends every rank through MPI.
//
// Pointers handed to AllReduceSum, AllGather and Broadcast are device memory (the CUDA backend's
// buffers). MaxReduce takes a host value and stages it. Sums: NCCL's ring and tree all-reduces
// give every rank the same result and repeat run to run for one topology and NCCL version, but the
// order of addition is NCCL's, not rank order as in the MPI communicator.
#if TS_NCCL
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdlib>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "parallel/communicator.h"

namespace ts {
namespace {

using Clock = std::chrono::steady_clock;

Status CudaError(const char* what, cudaError_t e) {
  return RuntimeFailure(what, ": ", cudaGetErrorString(e));
}
Status NcclError(const char* what, ncclResult_t r) {
  return RuntimeFailure(what, ": ", ncclGetErrorString(r));
}

class NcclCommunicator final : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<Communicator> mpi, const CommOptions& options)
      : mpi_(std::move(mpi)), options_(options), rank_(mpi_->rank()), size_(mpi_->size()) {}

  ~NcclCommunicator() override {
    if (comm_ != nullptr) ncclCommDestroy(comm_);
    if (staging_ != nullptr) cudaFree(staging_);
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  Status Init(int device) {
    cudaError_t e = cudaSetDevice(device);
    if (e != cudaSuccess) return CudaError("cudaSetDevice", e);
    e = cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking);
    if (e != cudaSuccess) return CudaError("cudaStreamCreate", e);
    e = cudaMalloc(&staging_, sizeof(ValueIndex) * static_cast<size_t>(size_ + 1));
    if (e != cudaSuccess) return CudaError("cudaMalloc", e);
    ncclUniqueId id{};
    if (rank_ == 0) {
      const ncclResult_t r = ncclGetUniqueId(&id);
      if (r != ncclSuccess) return NcclError("ncclGetUniqueId", r);
    }
    TS_RETURN_IF_ERROR(mpi_->Broadcast(&id, sizeof(id), 0));
    const ncclResult_t r = ncclCommInitRank(&comm_, size_, id, rank_);
    if (r != ncclSuccess) return NcclError("ncclCommInitRank", r);
    return absl::OkStatus();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "nccl"; }
  int64_t bytes_sent() const override { return bytes_sent_; }

  Status AllReduceSum(float* data, size_t n) override {
    TS_RETURN_IF_ERROR(
        Check("ncclAllReduce", ncclAllReduce(data, data, n, ncclFloat, ncclSum, comm_, stream_)));
    // A ring all-reduce sends 2 (size - 1) / size of the buffer per rank.
    bytes_sent_ += static_cast<int64_t>(2 * (size_ - 1) * n * sizeof(float) / size_);
    return Wait("AllReduceSum");
  }

  Status AllGather(const void* mine, size_t bytes, void* all) override {
    TS_RETURN_IF_ERROR(
        Check("ncclAllGather", ncclAllGather(mine, all, bytes, ncclUint8, comm_, stream_)));
    bytes_sent_ += static_cast<int64_t>(bytes) * (size_ - 1);
    return Wait("AllGather");
  }

  Status Broadcast(void* data, size_t bytes, int root) override {
    if (root < 0 || root >= size_) {
      return absl::InvalidArgumentError(
          absl::StrCat("Broadcast: root ", root, " outside 0..", size_ - 1));
    }
    TS_RETURN_IF_ERROR(
        Check("ncclBroadcast", ncclBroadcast(data, data, bytes, ncclUint8, root, comm_, stream_)));
    if (rank_ == root) bytes_sent_ += static_cast<int64_t>(bytes) * (size_ - 1);
    return Wait("Broadcast");
  }

  StatusOr<ValueIndex> MaxReduce(const ValueIndex& mine) override {
    // staging_[0] = mine, staging_[1 .. size] = everyone's, gathered; reduced on the host in
    // rank order by BetterOf (ties -> lower index), as the MPI communicator does.
    auto* slots = static_cast<ValueIndex*>(staging_);
    cudaError_t e =
        cudaMemcpyAsync(slots, &mine, sizeof(ValueIndex), cudaMemcpyHostToDevice, stream_);
    if (e != cudaSuccess) return CudaError("cudaMemcpyAsync", e);
    TS_RETURN_IF_ERROR(AllGather(slots, sizeof(ValueIndex), slots + 1));
    std::vector<ValueIndex>& all = candidates_;
    all.resize(size_);  // no allocation after the first call
    e = cudaMemcpyAsync(all.data(), slots + 1, sizeof(ValueIndex) * size_, cudaMemcpyDeviceToHost,
                        stream_);
    if (e != cudaSuccess) return CudaError("cudaMemcpyAsync", e);
    TS_RETURN_IF_ERROR(Wait("MaxReduce"));
    ValueIndex best = all[0];
    for (int r = 1; r < size_; ++r) best = BetterOf(best, all[r]);
    return best;
  }

  Status Barrier() override { return AllReduceSum(static_cast<float*>(staging_), 1); }

  [[noreturn]] void Abort(int exit_code) override {
    if (comm_ != nullptr) ncclCommAbort(comm_);
    comm_ = nullptr;
    mpi_->Abort(exit_code);
    std::_Exit(exit_code);  // not reached: MPI_Abort ends the process
  }

 private:
  Status Check(const char* what, ncclResult_t r) {
    if (r == ncclSuccess) return absl::OkStatus();
    return NcclError(what, r);
  }

  // Polls the stream until the enqueued work completes, an asynchronous NCCL error appears, or
  // the deadline passes; the last two abort the NCCL communicator.
  Status Wait(const char* op) {
    ++sequence_;
    const auto deadline =
        Clock::now() + std::chrono::duration_cast<Clock::duration>(
                           std::chrono::duration<double>(options_.timeout_seconds));
    for (int64_t spins = 0;; ++spins) {
      const cudaError_t e = cudaStreamQuery(stream_);
      if (e == cudaSuccess) return absl::OkStatus();
      if (e != cudaErrorNotReady) return CudaError(op, e);
      ncclResult_t async = ncclSuccess;
      ncclCommGetAsyncError(comm_, &async);
      if (async != ncclSuccess && async != ncclInProgress) {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        return RuntimeFailure("rank ", rank_, ": ", op, " (collective #", sequence_,
                              "): NCCL error: ", ncclGetErrorString(async));
      }
      if (Clock::now() > deadline) {
        ncclCommAbort(comm_);
        comm_ = nullptr;
        return absl::DeadlineExceededError(absl::StrCat(
            "rank ", rank_, ": ", op, " (collective #", sequence_, ") made no progress for ",
            options_.timeout_seconds, " s; a peer exited, stopped or hung (NCCL aborted)"));
      }
      if (spins > 2000) std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  std::unique_ptr<Communicator> mpi_;
  CommOptions options_;
  int rank_ = 0;
  int size_ = 1;
  ncclComm_t comm_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* staging_ = nullptr;
  int64_t sequence_ = 0;
  int64_t bytes_sent_ = 0;
  std::vector<ValueIndex> candidates_;  // MaxReduce's gathered candidates (host)
};

}  // namespace

StatusOr<std::unique_ptr<Communicator>> MakeNcclCommunicator(const CommOptions& options,
                                                             int device) {
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Communicator> mpi, MakeCommunicator("mpi", options));
  auto comm = std::make_unique<NcclCommunicator>(std::move(mpi), options);
  TS_RETURN_IF_ERROR(comm->Init(device));
  return std::unique_ptr<Communicator>(std::move(comm));
}

}  // namespace ts
#endif  // TS_NCCL
