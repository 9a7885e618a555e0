#include "kernels/cpu/thread_pool.h"

#include <sched.h>

#include <chrono>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define TS_CPU_RELAX() _mm_pause()
#else
#define TS_CPU_RELAX() ((void)0)
#endif

namespace ts::cpu {
namespace {
// How long an idle worker spins before sleeping. Decode issues the next kernel within a few
// microseconds; between tokens or jobs the workers go to sleep and cost nothing.
constexpr auto kSpinTime = std::chrono::microseconds(200);
}  // namespace

ThreadPool::ThreadPool(int n_threads) : n_threads_(n_threads < 1 ? 1 : n_threads) {
  workers_.reserve(n_threads_ - 1);
  for (int t = 1; t < n_threads_; ++t) workers_.emplace_back([this, t] { WorkerLoop(t); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_.store(true);
    generation_.fetch_add(1);
  }
  cv_.notify_all();
  for (auto& w : workers_) w.join();
}

void ThreadPool::DrainTasks(Job& job, int thread) {
  for (;;) {
    const int64_t task = job.next_task.fetch_add(1, std::memory_order_relaxed);
    if (task >= job.n_tasks) return;
    job.fn(job.ctx, task, thread);
  }
}

void ThreadPool::Run(int64_t n_tasks, TaskFn fn, void* ctx) {
  Job job{fn, ctx, n_tasks};
  current_.store(&job);      // seq_cst
  generation_.fetch_add(1);  // seq_cst; pairs with sleepers_ (Dekker)
  if (sleepers_.load() > 0) {
    std::lock_guard<std::mutex> lock(mu_);
    cv_.notify_all();
  }
  DrainTasks(job, 0);
  current_.store(nullptr);
  // Wait for workers still running a task of this job.
  for (int spins = 0; in_job_.load() != 0; ++spins) {
    if (spins < 4096) {
      TS_CPU_RELAX();
    } else {
      sched_yield();  // the worker may have been preempted (oversubscribed machine)
    }
  }
}

void ThreadPool::WorkerLoop(int thread) {
  uint64_t seen = 0;
  for (;;) {
    // Spin, then sleep, until a new generation is published.
    uint64_t gen = generation_.load(std::memory_order_acquire);
    if (gen == seen) {
      const auto deadline = std::chrono::steady_clock::now() + kSpinTime;
      int spins = 0;
      while ((gen = generation_.load(std::memory_order_acquire)) == seen) {
        TS_CPU_RELAX();
        if (++spins == 256) {
          spins = 0;
          if (std::chrono::steady_clock::now() > deadline) break;
          // Lets the caller's thread (or anyone else) run if this core is oversubscribed; a
          // no-op system call when nothing else is runnable here.
          sched_yield();
        }
      }
      if (gen == seen) {
        std::unique_lock<std::mutex> lock(mu_);
        sleepers_.fetch_add(1);
        cv_.wait(lock, [&] { return generation_.load() != seen; });
        sleepers_.fetch_sub(1);
        gen = generation_.load();
      }
    }
    seen = gen;
    if (stop_.load()) return;
    Job* job = current_.load();
    if (job == nullptr) continue;
    in_job_.fetch_add(1);
    if (current_.load() == job) DrainTasks(*job, thread);
    in_job_.fetch_sub(1);
  }
}

}  // namespace ts::cpu
