// The MPI communicator (communicator.h): non-blocking collectives polled against a deadline, and
// a control channel on which ranks answer pings while they wait, so that a timed-out rank can name
// the ranks that are gone or stopped.
#if TS_MPI
#include <mpi.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "parallel/communicator.h"

namespace ts {
namespace {

constexpr int kPingTag = 1;
constexpr int kPongTag = 2;
constexpr int kPong = 1;  // the answer's content does not matter; a constant buffer stays valid

using Clock = std::chrono::steady_clock;

// An MPI return code as a Status naming the call.
Status Check(int rc, const char* call) {
  if (rc == MPI_SUCCESS) return absl::OkStatus();
  char text[MPI_MAX_ERROR_STRING] = {};
  int length = 0;
  MPI_Error_string(rc, text, &length);
  return RuntimeFailure("MPI: ", call, " failed: ", std::string(text, length));
}

class MpiCommunicator final : public Communicator {
 public:
  static StatusOr<std::unique_ptr<Communicator>> Create(const CommOptions& options, bool owns_mpi) {
    std::unique_ptr<MpiCommunicator> c(new MpiCommunicator(options, owns_mpi));
    TS_RETURN_IF_ERROR(Check(MPI_Comm_dup(MPI_COMM_WORLD, &c->data_), "MPI_Comm_dup"));
    TS_RETURN_IF_ERROR(Check(MPI_Comm_dup(MPI_COMM_WORLD, &c->control_), "MPI_Comm_dup"));
    TS_RETURN_IF_ERROR(Check(MPI_Comm_rank(c->data_, &c->rank_), "MPI_Comm_rank"));
    TS_RETURN_IF_ERROR(Check(MPI_Comm_size(c->data_, &c->size_), "MPI_Comm_size"));
    c->gather_.resize(1024);
    c->ping_out_.assign(c->size_, 0);
    c->pong_in_.assign(c->size_, -1);
    c->pong_reqs_.assign(c->size_, MPI_REQUEST_NULL);
    return std::unique_ptr<Communicator>(std::move(c));
  }

  ~MpiCommunicator() override {
    for (MPI_Request& r : pong_reqs_) {
      if (r != MPI_REQUEST_NULL) {
        MPI_Cancel(&r);
        MPI_Request_free(&r);
      }
    }
    if (control_ != MPI_COMM_NULL) MPI_Comm_free(&control_);
    if (data_ != MPI_COMM_NULL) MPI_Comm_free(&data_);
    int finalized = 0;
    MPI_Finalized(&finalized);
    if (owns_mpi_ && !finalized) MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  const char* name() const override { return "mpi"; }
  int64_t bytes_sent() const override { return bytes_sent_; }

  Status AllReduceSum(float* data, size_t n) override {
    // Gathered, then added in rank order: the same bits on every rank, whatever the timing.
    const size_t bytes = n * sizeof(float);
    if (gather_.size() < bytes * size_) gather_.resize(bytes * size_);
    TS_RETURN_IF_ERROR(AllGather(data, bytes, gather_.data()));
    const float* parts = reinterpret_cast<const float*>(gather_.data());
    for (size_t i = 0; i < n; ++i) {
      float sum = parts[i];
      for (int r = 1; r < size_; ++r) sum += parts[r * n + i];
      data[i] = sum;
    }
    return absl::OkStatus();
  }

  Status AllGather(const void* mine, size_t bytes, void* all) override {
    if (bytes > static_cast<size_t>(INT32_MAX)) {
      return absl::InvalidArgumentError("AllGather: more than 2 GiB per rank");
    }
    MPI_Request req;
    TS_RETURN_IF_ERROR(Check(MPI_Iallgather(mine, static_cast<int>(bytes), MPI_BYTE, all,
                                            static_cast<int>(bytes), MPI_BYTE, data_, &req),
                             "MPI_Iallgather"));
    bytes_sent_ += static_cast<int64_t>(bytes) * (size_ - 1);
    return Wait(req, "AllGather");
  }

  Status Broadcast(void* data, size_t bytes, int root) override {
    if (root < 0 || root >= size_) {
      return absl::InvalidArgumentError(
          absl::StrCat("Broadcast: root ", root, " outside 0..", size_ - 1));
    }
    if (bytes > static_cast<size_t>(INT32_MAX)) {
      return absl::InvalidArgumentError("Broadcast: more than 2 GiB");
    }
    MPI_Request req;
    TS_RETURN_IF_ERROR(Check(MPI_Ibcast(data, static_cast<int>(bytes), MPI_BYTE, root, data_, &req),
                             "MPI_Ibcast"));
    if (rank_ == root) bytes_sent_ += static_cast<int64_t>(bytes) * (size_ - 1);
    return Wait(req, "Broadcast");
  }

  StatusOr<ValueIndex> MaxReduce(const ValueIndex& mine) override {
    // A gather of 16 bytes per rank and the reduction rule applied in rank order: ties are
    // broken by index exactly as BetterOf says, which MPI_MAXLOC on doubles would not promise.
    candidates_.resize(size_);  // no allocation after the first call (twice per token)
    TS_RETURN_IF_ERROR(AllGather(&mine, sizeof(ValueIndex), candidates_.data()));
    ValueIndex best = candidates_[0];
    for (int r = 1; r < size_; ++r) best = BetterOf(best, candidates_[r]);
    return best;
  }

  Status Barrier() override {
    MPI_Request req;
    TS_RETURN_IF_ERROR(Check(MPI_Ibarrier(data_, &req), "MPI_Ibarrier"));
    return Wait(req, "Barrier");
  }

  [[noreturn]] void Abort(int exit_code) override {
    MPI_Abort(MPI_COMM_WORLD, exit_code);
    std::_Exit(exit_code);  // MPI_Abort should not return
  }

 private:
  MpiCommunicator(const CommOptions& options, bool owns_mpi)
      : options_(options), owns_mpi_(owns_mpi) {}

  // Answers every ping that has arrived (another rank diagnosing a timeout).
  void AnswerPings() {
    for (;;) {
      int flag = 0;
      MPI_Status st;
      if (MPI_Iprobe(MPI_ANY_SOURCE, kPingTag, control_, &flag, &st) != MPI_SUCCESS || !flag) {
        return;
      }
      int seq = 0;
      if (MPI_Recv(&seq, 1, MPI_INT, st.MPI_SOURCE, kPingTag, control_, MPI_STATUS_IGNORE) !=
          MPI_SUCCESS) {
        return;
      }
      MPI_Request r;
      // kPong is a constant: the freed send's buffer stays valid until it completes.
      if (MPI_Isend(&kPong, 1, MPI_INT, st.MPI_SOURCE, kPongTag, control_, &r) == MPI_SUCCESS) {
        MPI_Request_free(&r);
      }
    }
  }

  // Polls `req` until it completes or the deadline passes. Spins first (collectives of a decode
  // step take microseconds), then yields the core.
  Status Wait(MPI_Request& req, const char* op) {
    ++sequence_;
    const auto start = Clock::now();
    const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                      std::chrono::duration<double>(options_.timeout_seconds));
    for (int64_t spins = 0;; ++spins) {
      int done = 0;
      TS_RETURN_IF_ERROR(Check(MPI_Test(&req, &done, MPI_STATUS_IGNORE), op));
      if (done) return absl::OkStatus();
      if ((spins & 1023) == 0) {
        AnswerPings();
        if (Clock::now() > deadline) return Diagnose(op);
      }
      if (spins > 20000) std::this_thread::sleep_for(std::chrono::microseconds(50));
    }
  }

  // Pings every other rank and names the ones that do not answer within ping_seconds. The ping
  // and answer buffers are members: a send or receive still in flight when this returns (a
  // stopped rank never answers) keeps valid memory until the communicator is destroyed, which
  // cancels the receives.
  Status Diagnose(const char* op) {
    std::vector<MPI_Request>& recvs = pong_reqs_;
    std::vector<int>& answers = pong_in_;
    for (int r = 0; r < size_; ++r) {
      if (r == rank_ || recvs[r] != MPI_REQUEST_NULL) continue;  // a ping still waiting: reuse
      ping_out_[r] = static_cast<int>(sequence_);
      answers[r] = -1;
      MPI_Request s;
      if (MPI_Isend(&ping_out_[r], 1, MPI_INT, r, kPingTag, control_, &s) == MPI_SUCCESS) {
        MPI_Request_free(&s);
      }
      if (MPI_Irecv(&answers[r], 1, MPI_INT, r, kPongTag, control_, &recvs[r]) != MPI_SUCCESS) {
        recvs[r] = MPI_REQUEST_NULL;
      }
    }
    const auto until = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(options_.ping_seconds));
    std::vector<bool> answered(size_, false), failed(size_, false);
    answered[rank_] = true;
    auto settled = [&] {
      for (int r = 0; r < size_; ++r) {
        if (!answered[r] && !failed[r]) return false;
      }
      return true;
    };
    while (Clock::now() < until && !settled()) {
      AnswerPings();
      for (int r = 0; r < size_; ++r) {
        if (answered[r] || failed[r]) continue;
        int done = 0;
        MPI_Status st;
        // A request that completes with an error (the peer's connection is gone) is no answer.
        if (MPI_Test(&recvs[r], &done, &st) != MPI_SUCCESS) {
          recvs[r] = MPI_REQUEST_NULL;
          failed[r] = true;
        } else if (done && recvs[r] == MPI_REQUEST_NULL && answers[r] == kPong) {
          answered[r] = true;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    std::vector<int> silent;
    for (int r = 0; r < size_; ++r) {
      if (!answered[r]) silent.push_back(r);
    }
    const std::string head =
        absl::StrCat("rank ", rank_, ": ", op, " (collective #", sequence_,
                     ") made no progress for ", options_.timeout_seconds, " s");
    if (silent.empty()) {
      return absl::DeadlineExceededError(absl::StrCat(
          head, "; every rank answers, so they disagree on the sequence of collectives"));
    }
    return absl::DeadlineExceededError(absl::StrCat(
        head, "; ", silent.size() == 1 ? "rank " : "ranks ", absl::StrJoin(silent, ", "),
        silent.size() == 1 ? " does" : " do", " not answer (exited, stopped or hung)"));
  }

  CommOptions options_;
  bool owns_mpi_;
  MPI_Comm data_ = MPI_COMM_NULL;
  MPI_Comm control_ = MPI_COMM_NULL;
  int rank_ = 0;
  int size_ = 1;
  int64_t sequence_ = 0;
  int64_t bytes_sent_ = 0;
  std::vector<unsigned char> gather_;
  std::vector<ValueIndex> candidates_;  // MaxReduce's gathered candidates
  std::vector<int> ping_out_;           // (size) Diagnose's pings
  std::vector<int> pong_in_;            // (size) their answers
  std::vector<MPI_Request> pong_reqs_;  // (size) receives of the answers
};

}  // namespace

StatusOr<std::unique_ptr<Communicator>> MakeMpiCommunicator(const CommOptions& options) {
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) {
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
      return RuntimeFailure("MPI_Init_thread failed");
    }
  }
  // Errors come back as codes, not as an abort inside the library.
  MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
  return MpiCommunicator::Create(options, !initialized);
}

}  // namespace ts
#endif  // TS_MPI
