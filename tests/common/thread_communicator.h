// Ranks as threads of one test process: a Communicator over shared memory, so unit tests can run
// sharded code on several ranks without mpirun. Every collective is: deposit this rank's part,
// wait for all, read, wait again (a generation-counted barrier). Sums add in rank order, as the
// MPI communicator does.
//
//   ThreadGroup group(3);
//   std::vector<std::thread> ranks;
//   for (int r = 0; r < 3; ++r) ranks.emplace_back([&, r] { Communicator& c = group.rank(r); ...
//   });
#pragma once

#include <condition_variable>
#include <cstring>
#include <memory>
#include <mutex>
#include <vector>

#include "parallel/communicator.h"

namespace ts::testing_comm {

class ThreadGroup;

class ThreadCommunicator : public Communicator {
 public:
  ThreadCommunicator(ThreadGroup* group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int size() const override;
  const char* name() const override { return "threads"; }
  Status AllReduceSum(float* data, size_t n) override;
  Status AllGather(const void* mine, size_t bytes, void* all) override;
  Status Broadcast(void* data, size_t bytes, int root) override;
  StatusOr<ValueIndex> MaxReduce(const ValueIndex& mine) override;
  Status Barrier() override;
  int64_t bytes_sent() const override { return sent_; }
  [[noreturn]] void Abort(int exit_code) override { std::exit(exit_code); }

 private:
  ThreadGroup* group_;
  int rank_;
  int64_t sent_ = 0;
};

class ThreadGroup {
 public:
  explicit ThreadGroup(int size) : parts_(size) {
    for (int r = 0; r < size; ++r) comms_.push_back(std::make_unique<ThreadCommunicator>(this, r));
  }
  int size() const { return static_cast<int>(comms_.size()); }
  ThreadCommunicator& rank(int r) { return *comms_[r]; }

  // Every rank deposits `bytes` (may differ only if the caller handles it), then `read` runs on
  // each rank with all parts visible, then everyone leaves together.
  template <typename Read>
  void Exchange(int rank, const void* mine, size_t bytes, Read read) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      parts_[rank].assign(static_cast<const char*>(mine), static_cast<const char*>(mine) + bytes);
    }
    Wait();
    read(parts_);
    Wait();
  }

 private:
  void Wait() {
    std::unique_lock<std::mutex> lock(mu_);
    const int64_t gen = generation_;
    if (++arrived_ == size()) {
      arrived_ = 0;
      ++generation_;
      cv_.notify_all();
    } else {
      cv_.wait(lock, [&] { return generation_ != gen; });
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  int arrived_ = 0;
  int64_t generation_ = 0;
  std::vector<std::vector<char>> parts_;
  std::vector<std::unique_ptr<ThreadCommunicator>> comms_;
};

inline int ThreadCommunicator::size() const { return group_->size(); }

inline Status ThreadCommunicator::AllReduceSum(float* data, size_t n) {
  sent_ += static_cast<int64_t>(n * sizeof(float));
  std::vector<float> sum(n, 0.0f);
  group_->Exchange(rank_, data, n * sizeof(float), [&](const std::vector<std::vector<char>>& p) {
    for (const auto& part : p) {
      const float* f = reinterpret_cast<const float*>(part.data());
      for (size_t i = 0; i < n; ++i) sum[i] += f[i];
    }
  });
  std::memcpy(data, sum.data(), n * sizeof(float));
  return absl::OkStatus();
}

inline Status ThreadCommunicator::AllGather(const void* mine, size_t bytes, void* all) {
  sent_ += static_cast<int64_t>(bytes);
  group_->Exchange(rank_, mine, bytes, [&](const std::vector<std::vector<char>>& p) {
    for (size_t r = 0; r < p.size(); ++r) {
      std::memcpy(static_cast<char*>(all) + r * bytes, p[r].data(), bytes);
    }
  });
  return absl::OkStatus();
}

inline Status ThreadCommunicator::Broadcast(void* data, size_t bytes, int root) {
  if (rank_ == root) sent_ += static_cast<int64_t>(bytes);
  std::vector<char> copy(bytes);
  group_->Exchange(rank_, data, bytes, [&](const std::vector<std::vector<char>>& p) {
    std::memcpy(copy.data(), p[root].data(), bytes);
  });
  std::memcpy(data, copy.data(), bytes);
  return absl::OkStatus();
}

inline StatusOr<ValueIndex> ThreadCommunicator::MaxReduce(const ValueIndex& mine) {
  sent_ += static_cast<int64_t>(sizeof(ValueIndex));
  ValueIndex best;
  group_->Exchange(rank_, &mine, sizeof(mine), [&](const std::vector<std::vector<char>>& p) {
    for (const auto& part : p) {
      ValueIndex v;
      std::memcpy(&v, part.data(), sizeof(v));
      best = BetterOf(best, v);
    }
  });
  return best;
}

inline Status ThreadCommunicator::Barrier() {
  group_->Exchange(rank_, nullptr, 0, [](const std::vector<std::vector<char>>&) {});
  return absl::OkStatus();
}

}  // namespace ts::testing_comm
