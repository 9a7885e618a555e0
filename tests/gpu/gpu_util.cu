#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>

#include "tests/gpu/gpu_util.h"

namespace ts::gpu {
namespace {

__device__ uint64_t SplitMix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

__global__ void FillKernel(void* dst, int64_t count, bool bf16, uint64_t seed, float scale) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t r = SplitMix(seed * 0x100000001B3ull + static_cast<uint64_t>(i));
    const float u = static_cast<float>(static_cast<int64_t>(r >> 40) - (int64_t{1} << 23)) *
                    (1.0f / static_cast<float>(1 << 23));
    if (bf16) {
      static_cast<__nv_bfloat16*>(dst)[i] = __float2bfloat16(scale * u);
    } else {
      static_cast<float*>(dst)[i] = scale * u;
    }
  }
}

__global__ void ConstKernel(float* dst, int64_t count, float value) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[i] = value;
  }
}

// Each thread sums its uint4 loads; one write per block keeps the loads live.
__global__ void ReadKernel(const uint4* src, int64_t count, unsigned* sink) {
  unsigned acc = 0;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint4 v = __ldcs(src + i);
    acc ^= v.x ^ v.y ^ v.z ^ v.w;
  }
  if (acc == 0x12345678u) sink[blockIdx.x] = acc;  // practically never; the compiler cannot know
}

int Blocks(int64_t count) {
  return static_cast<int>(std::min<int64_t>((count + 255) / 256, 132 * 16));
}

}  // namespace

bool FillRandom(void* dst, int64_t count, bool bf16, uint64_t seed, float scale, void* stream) {
  if (count <= 0) return true;
  FillKernel<<<Blocks(count), 256, 0, static_cast<cudaStream_t>(stream)>>>(dst, count, bf16, seed,
                                                                           scale);
  return cudaGetLastError() == cudaSuccess;
}

bool FillConstant(float* dst, int64_t count, float value, void* stream) {
  if (count <= 0) return true;
  ConstKernel<<<Blocks(count), 256, 0, static_cast<cudaStream_t>(stream)>>>(dst, count, value);
  return cudaGetLastError() == cudaSuccess;
}

double MeasureReadBandwidth(size_t bytes, int reps) {
  void* buf = nullptr;
  unsigned* sink = nullptr;
  if (cudaMalloc(&buf, bytes) != cudaSuccess) return 0;
  if (cudaMalloc(&sink, sizeof(unsigned) * 132 * 16) != cudaSuccess) {
    cudaFree(buf);
    return 0;
  }
  cudaMemset(buf, 1, bytes);
  const int64_t count = static_cast<int64_t>(bytes / sizeof(uint4));
  const int blocks = 132 * 16;  // enough resident warps on any current part
  cudaEvent_t start, stop;
  cudaEventCreate(&start);
  cudaEventCreate(&stop);
  ReadKernel<<<blocks, 256>>>(static_cast<const uint4*>(buf), count, sink);  // warm-up
  double best = 0;
  for (int r = 0; r < reps; ++r) {
    cudaEventRecord(start);
    ReadKernel<<<blocks, 256>>>(static_cast<const uint4*>(buf), count, sink);
    cudaEventRecord(stop);
    cudaEventSynchronize(stop);
    float ms = 0;
    cudaEventElapsedTime(&ms, start, stop);
    if (ms > 0) best = std::max(best, static_cast<double>(count) * sizeof(uint4) / (ms * 1e-3));
  }
  const bool ok = cudaGetLastError() == cudaSuccess;
  cudaEventDestroy(start);
  cudaEventDestroy(stop);
  cudaFree(sink);
  cudaFree(buf);
  return ok ? best : 0;
}

}  // namespace ts::gpu
