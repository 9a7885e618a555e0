// The NCCL communicator on real GPUs (one rank per GPU): run by tests/gpu/run_nccl_checks.sh as
//   mpirun -np <number of GPUs> ts_nccl_check
// Sums of small integers are exact in any order, so the all-reduce is checked for equality.
#include <cuda_runtime.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "parallel/communicator.h"

int main() {
  auto made = ts::MakeCommunicator("nccl", ts::CommOptions{});
  if (!made.ok()) {
    std::fprintf(stderr, "nccl_check: %s\n", std::string(made.status().message()).c_str());
    return 2;
  }
  ts::Communicator& c = **made;
  const int rank = c.rank(), size = c.size();
  int failures = 0;
  auto check = [&](bool ok, const char* what) {
    if (!ok) {
      ++failures;
      std::fprintf(stderr, "rank %d: FAIL %s\n", rank, what);
    }
  };
  auto ok_or_abort = [&](const ts::Status& s) {
    if (s.ok()) return;
    std::fprintf(stderr, "rank %d: %s\n", rank, std::string(s.message()).c_str());
    c.Abort(3);
  };

  const size_t n = 576 * 64 + 5;
  std::vector<float> host(n), want(n);
  for (size_t i = 0; i < n; ++i) {
    host[i] = static_cast<float>((i * 7 + rank * 13) % 101);
    float sum = 0;
    for (int r = 0; r < size; ++r) sum += static_cast<float>((i * 7 + r * 13) % 101);
    want[i] = sum;
  }
  float* dev = nullptr;
  cudaMalloc(&dev, n * sizeof(float) * (size + 1));
  cudaMemcpy(dev, host.data(), n * sizeof(float), cudaMemcpyHostToDevice);
  ok_or_abort(c.AllReduceSum(dev, n));
  cudaMemcpy(host.data(), dev, n * sizeof(float), cudaMemcpyDeviceToHost);
  check(std::memcmp(host.data(), want.data(), n * sizeof(float)) == 0, "AllReduceSum");

  std::vector<int32_t> mine(8), all(8 * size);
  for (int i = 0; i < 8; ++i) mine[i] = 100 * rank + i;
  cudaMemcpy(dev, mine.data(), 32, cudaMemcpyHostToDevice);
  ok_or_abort(c.AllGather(dev, 32, dev + 8));
  cudaMemcpy(all.data(), dev + 8, 32 * size, cudaMemcpyDeviceToHost);
  for (int r = 0; r < size; ++r) check(all[8 * r + 3] == 100 * r + 3, "AllGather");

  const int root = size - 1;
  std::vector<int32_t> b(16, rank == root ? 77 : -1);
  cudaMemcpy(dev, b.data(), 64, cudaMemcpyHostToDevice);
  ok_or_abort(c.Broadcast(dev, 64, root));
  cudaMemcpy(b.data(), dev, 64, cudaMemcpyDeviceToHost);
  check(b[15] == 77, "Broadcast");

  auto best = c.MaxReduce({1.0, 1000 - rank});
  ok_or_abort(best.status());
  check(best->index == 1000 - (size - 1), "MaxReduce ties -> lower index");
  ok_or_abort(c.Barrier());
  cudaFree(dev);
  std::printf("rank %d of %d: %s\n", rank, size, failures == 0 ? "nccl checks passed" : "FAILED");
  made->reset();
  return failures == 0 ? 0 : 1;
}
