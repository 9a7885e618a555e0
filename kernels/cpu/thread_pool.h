// A persistent fork-join pool for the CPU kernels: `n_threads` counts the calling thread, so
// n_threads - 1 workers are started once and live as long as the pool.
//
// Dispatch is built for decode, which issues ~200 small kernels per token: after a job the
// workers spin (with a pause instruction) for a short while waiting for the next one, and only
// then sleep on a condition variable. Tasks are handed out dynamically (an atomic counter), so
// which thread runs a task varies between calls; kernels must make each task's result
// independent of the thread that runs it (batch invariance, kernels/backend.h).
//
// Not reentrant: one ParallelFor at a time, called from one thread.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace ts::cpu {

class ThreadPool {
 public:
  explicit ThreadPool(int n_threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int NumThreads() const { return n_threads_; }

  // Runs fn(task, thread) for task in [0, n_tasks), thread in [0, NumThreads()), and returns
  // when all tasks are done. Runs inline when n_tasks <= 1 or there are no workers.
  template <typename Fn>
  void ParallelFor(int64_t n_tasks, Fn&& fn) {
    if (n_tasks <= 0) return;
    if (n_tasks == 1 || n_threads_ == 1) {
      for (int64_t t = 0; t < n_tasks; ++t) fn(t, 0);
      return;
    }
    Run(n_tasks, &Trampoline<std::remove_reference_t<Fn>>, &fn);
  }

 private:
  using TaskFn = void (*)(void* ctx, int64_t task, int thread);

  // One ParallelFor call; lives on the caller's stack for the duration of Run.
  struct Job {
    TaskFn fn;
    void* ctx;
    int64_t n_tasks;
    std::atomic<int64_t> next_task{0};
  };

  template <typename Fn>
  static void Trampoline(void* ctx, int64_t task, int thread) {
    (*static_cast<Fn*>(ctx))(task, thread);
  }

  void Run(int64_t n_tasks, TaskFn fn, void* ctx);
  void WorkerLoop(int thread);
  static void DrainTasks(Job& job, int thread);

  const int n_threads_;
  std::vector<std::thread> workers_;

  // Protocol: the caller publishes `current_`, bumps `generation_` to wake workers, runs tasks
  // itself, then clears `current_` and waits only for workers that have *entered* the job
  // (in_job_), never for a worker that is asleep or was descheduled before it entered. A worker
  // enters by incrementing in_job_ and then re-checking that current_ still holds the job.
  alignas(64) std::atomic<Job*> current_{nullptr};
  alignas(64) std::atomic<uint64_t> generation_{0};
  alignas(64) std::atomic<int> in_job_{0};
  std::atomic<bool> stop_{false};
  std::atomic<int> sleepers_{0};
  std::mutex mu_;
  std::condition_variable cv_;
};

}  // namespace ts::cpu
