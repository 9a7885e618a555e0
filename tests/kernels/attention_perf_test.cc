// Attention timing (DISABLED_ by default; run with --gtest_also_run_disabled_tests
// --gtest_filter='*PerfAttention*'): one layer of SmolLM2-135M attention (9 query heads on 3 KV
// heads, head_dim 64) for a TokenSwift verify pass of T tree rows over a committed prefix of P
// tokens, f32 and bf16 KV, 1 and 2 threads. Rows form chains of depth 4 (a [1,3,3,3]-like tree
// flattened), so each row has 1-4 extra (ancestor) slots past the prefix.
//
// Figures printed: wall ms per call (best of a few), the process CPU time of that call (robust
// on a loaded machine), the effective KV read rate if the prefix were read once (bytes of K and V
// of the prefix / wall time), and CPU ns per (row, query head, key). TS_PERF_THREADS=N picks the
// thread count (default 2), TS_PERF_PREFIX=P one prefix length instead of the default three,
// TS_PERF_ROWS=T one row count, TS_PERF_HUGE=1 transparent huge pages for the KV buffers.
#include <sys/mman.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <limits>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/backend.h"
#include "tests/kernels/kernel_test_util.h"

namespace ts {
namespace {

constexpr int kHeads = 9, kKvHeads = 3, kHeadDim = 64;

double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

struct Timing {
  double wall_s;  // best of the trials
  double cpu_s;   // process CPU time of that trial (all threads)
};

Timing TimeAttention(Backend& b, DType dtype, int64_t prefix, int rows) {
  const int64_t capacity = prefix + rows;
  const int64_t elems = int64_t{kKvHeads} * capacity * kHeadDim;
  const size_t elem_bytes = dtype == DType::kF32 ? 4 : 2;
  // Anonymous mappings like KvCache's; TS_PERF_HUGE=1 asks for transparent huge pages (at a 100K
  // context on Zen 4: 10.6 vs 9.7 GB/s, within run-to-run noise; KvCache does not ask).
  const size_t bytes = elems * elem_bytes;
  auto map = [&] {
    void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    const char* huge = std::getenv("TS_PERF_HUGE");
    if (huge != nullptr && std::string(huge) == "1") madvise(p, bytes, MADV_HUGEPAGE);
    return static_cast<uint8_t*>(p);
  };
  uint8_t* k = map();
  uint8_t* v = map();
  struct Unmap {
    void* p;
    size_t n;
    ~Unmap() { munmap(p, n); }
  } unmap_k{k, bytes}, unmap_v{v, bytes};
  KvLayerView view{k, v, dtype, kKvHeads, kHeadDim, capacity};
  {
    // Fill in chunks to keep the temporary small.
    constexpr int64_t kChunk = 4096;
    const std::vector<float> src_k = testing::RandomFloats(kChunk * kKvHeads * kHeadDim, 1);
    const std::vector<float> src_v = testing::RandomFloats(kChunk * kKvHeads * kHeadDim, 2);
    std::vector<int32_t> slots(kChunk);
    for (int64_t s0 = 0; s0 < capacity; s0 += kChunk) {
      const int64_t cnt = std::min(kChunk, capacity - s0);
      for (int64_t t = 0; t < cnt; ++t) slots[t] = static_cast<int32_t>(s0 + t);
      b.StoreKv(view, src_k.data(), src_v.data(), cnt, slots.data());
    }
  }
  std::vector<int32_t> prefix_len(rows, static_cast<int32_t>(prefix)), extra_begin{0}, extra;
  for (int r = 0; r < rows; ++r) {
    // Row r sits at depth r % 4 below a chain of earlier rows.
    for (int a = r - r % 4; a <= r; ++a) extra.push_back(static_cast<int32_t>(prefix + a));
    extra_begin.push_back(static_cast<int32_t>(extra.size()));
  }
  const AttentionMask mask{prefix_len.data(), extra_begin.data(), extra.data()};
  const std::vector<float> q = testing::RandomFloats(int64_t{rows} * kHeads * kHeadDim, 3, 0.5f);
  std::vector<float> out(q.size());
  b.Attention(q.data(), rows, kHeads, view, mask, 0.125f, out.data());
  Timing best{1e30, 0};
  double total = 0;
  for (int trial = 0; trial < 20 && (trial < 3 || total < 0.5); ++trial) {
    const double c0 = CpuSeconds();
    const auto t0 = std::chrono::steady_clock::now();
    b.Attention(q.data(), rows, kHeads, view, mask, 0.125f, out.data());
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s < best.wall_s) best = {s, CpuSeconds() - c0};
    total += s;
  }
  return best;
}

TEST(Attention, DISABLED_PerfAttention) {
  std::vector<int> thread_counts = {2};
  if (const char* e = std::getenv("TS_PERF_THREADS")) thread_counts = {std::atoi(e)};
  for (int threads : thread_counts) {
    auto b = MakeCpuBackend(threads);
    std::printf("%s\n", b->Name().c_str());
    for (DType dtype : {DType::kBF16, DType::kF32}) {
      std::vector<int64_t> prefixes = {2048, 10240, 102400};
      if (const char* e = std::getenv("TS_PERF_PREFIX")) prefixes = {std::atoll(e)};
      for (int64_t prefix : prefixes) {
        std::vector<int> row_counts = {1, 4, 16, 41};
        if (const char* e = std::getenv("TS_PERF_ROWS")) row_counts = {std::atoi(e)};
        for (int rows : row_counts) {
          const Timing t = TimeAttention(*b, dtype, prefix, rows);
          const double bytes = 2.0 * kKvHeads * prefix * kHeadDim * (dtype == DType::kF32 ? 4 : 2);
          const double pair_keys = double{kHeads} * rows * prefix;
          std::printf(
              "  %-4s prefix %6lld T=%2d: %9.3f ms wall %9.3f ms cpu  %6.2f GB/s (prefix read "
              "once)  %6.2f ns cpu per (row,head,key)\n",
              testing::DTypeName(dtype).c_str(), static_cast<long long>(prefix), rows,
              t.wall_s * 1e3, t.cpu_s * 1e3, bytes / t.wall_s / 1e9, t.cpu_s / pair_keys * 1e9);
          std::fflush(stdout);
        }
      }
    }
  }
}

}  // namespace
}  // namespace ts
