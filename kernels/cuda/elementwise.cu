// The row-local and element-wise ops: Embed, RmsNorm, Rope, StoreKv, SwiGlu, Add, and the two
// helpers of the cuBLASLt path (f32 -> f16/bf16 conversion, bias add).
//
// Batch invariance: each output element is a function of its own row's inputs only. The one
// reduction (RmsNorm's sum of squares) runs in one CTA of a fixed 256 threads per row: thread t
// sums elements t, t + 256, ... in ascending order, then the warp xor butterfly, then the 8 warp
// sums in ascending warp order. That order depends on dim only, never on n.
// Compiled with --fmad=false: every expression rounds exactly as written.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/quant_decode.cuh"

namespace ts::cuda {
namespace {

constexpr int kThreads = 256;

unsigned GridFor(int64_t count) {
  const int64_t blocks = (count + kThreads - 1) / kThreads;
  return static_cast<unsigned>(blocks < 65536 * 16 ? blocks : 65536 * 16);  // grid-stride beyond
}

// ---- Embed: one CTA per token, thread t decodes chunks t, t + 256, ... of the table row. ----
template <DType T>
__global__ void EmbedKernel(const uint8_t* __restrict__ table, int64_t rows, int64_t cols,
                            size_t row_bytes, const int32_t* __restrict__ ids,
                            float* __restrict__ out, int* err) {
  const int64_t i = blockIdx.x;
  const int32_t id = ids[i];
  float* o = out + i * cols;
  if (id < 0 || id >= rows) {
    if (threadIdx.x == 0) atomicOr(err, kErrEmbedIdOutOfRange);
    for (int64_t k = threadIdx.x; k < cols; k += blockDim.x) o[k] = 0.0f;
    return;
  }
  const uint8_t* row = table + static_cast<size_t>(id) * row_bytes;
  const int64_t chunks = (cols + kChunk - 1) / kChunk;
  float w[kChunk];
  for (int64_t c = threadIdx.x; c < chunks; c += blockDim.x) {
    const int valid = static_cast<int>(min(static_cast<int64_t>(kChunk), cols - c * kChunk));
    ChunkDecoder<T>::Decode(row, c, valid, w);
#pragma unroll
    for (int j = 0; j < kChunk; ++j) {
      if (j < valid) o[c * kChunk + j] = w[j];
    }
  }
}

// ---- RmsNorm: one CTA of kThreads per row. out may alias x. ----
__global__ void __launch_bounds__(kThreads)
    RmsNormKernel(const float* x, const float* __restrict__ weight, int64_t dim, float eps,
                  float* out) {
  __shared__ float warp_sums[kThreads / 32];
  const float* xr = x + blockIdx.x * dim;
  float* orow = out + blockIdx.x * dim;
  float s = 0.0f;
  for (int64_t k = threadIdx.x; k < dim; k += kThreads) s = __fmaf_rn(xr[k], xr[k], s);
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) s = __fadd_rn(s, __shfl_xor_sync(0xffffffffu, s, off));
  if ((threadIdx.x & 31) == 0) warp_sums[threadIdx.x >> 5] = s;
  __syncthreads();  // also orders every read of x before any write of out (aliasing)
  float total = 0.0f;
#pragma unroll
  for (int w = 0; w < kThreads / 32; ++w) total = __fadd_rn(total, warp_sums[w]);
  const float inv = 1.0f / sqrtf(total / static_cast<float>(dim) + eps);
  for (int64_t k = threadIdx.x; k < dim; k += kThreads) orow[k] = (xr[k] * inv) * weight[k];
}

// ---- Rope: one thread per (row, head, pair). ----
// angle = float(positions[i]) * inv_freq[j] in f32 (as HF transformers computes it), then cos and
// sin in double rounded to f32, so the only f32 error is the angle's own rounding.
__global__ void RopeKernel(float* x, int64_t n, int n_heads, int head_dim,
                           const int32_t* __restrict__ positions,
                           const float* __restrict__ inv_freq, float mscale, bool interleaved) {
  const int half = head_dim / 2;
  const int64_t total = n * n_heads * half;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int j = static_cast<int>(idx % half);
    const int64_t row_head = idx / half;  // i * n_heads + h
    const int64_t i = row_head / n_heads;
    float* v = x + row_head * head_dim;
    const float angle = static_cast<float>(positions[i]) * inv_freq[j];
    double sd, cd;
    sincos(static_cast<double>(angle), &sd, &cd);
    const float sn = static_cast<float>(sd);
    const float cs = static_cast<float>(cd);
    const int a = interleaved ? 2 * j : j;
    const int b = interleaved ? 2 * j + 1 : j + half;
    const float x0 = v[a];
    const float x1 = v[b];
    v[a] = (x0 * cs - x1 * sn) * mscale;
    v[b] = (x0 * sn + x1 * cs) * mscale;
  }
}

// ---- StoreKv: one thread per (token, kv head, element). ----
template <typename KvT>
__device__ __forceinline__ KvT FromFloat(float v);
template <>
__device__ __forceinline__ float FromFloat<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

template <typename KvT>
__global__ void StoreKvKernel(KvT* k_cache, KvT* v_cache, int n_kv_heads, int head_dim,
                              int64_t capacity, const float* __restrict__ k,
                              const float* __restrict__ v, int64_t n,
                              const int32_t* __restrict__ slots, int* err) {
  const int64_t total = n * n_kv_heads * head_dim;
  for (int64_t idx = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; idx < total;
       idx += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int d = static_cast<int>(idx % head_dim);
    const int64_t row_head = idx / head_dim;
    const int h = static_cast<int>(row_head % n_kv_heads);
    const int64_t i = row_head / n_kv_heads;
    const int32_t slot = slots[i];
    if (slot < 0 || slot >= capacity) {
      if (d == 0) atomicOr(err, kErrStoreSlotOutOfRange);
      continue;
    }
    const int64_t dst = (h * capacity + slot) * head_dim + d;
    k_cache[dst] = FromFloat<KvT>(k[idx]);
    v_cache[dst] = FromFloat<KvT>(v[idx]);
  }
}

__global__ void SwiGluKernel(const float* gate, const float* up, int64_t count, float* out) {
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < count;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const float g = gate[k];
    out[k] = (g / (1.0f + expf(-g))) * up[k];
  }
}

__global__ void AddKernel(float* x, const float* y, int64_t count) {
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < count;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    x[k] = x[k] + y[k];
  }
}

__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

// One warp per key row: lane l sums d = l, l + 32, ... in order, then a fixed butterfly.
template <typename KvT>
__global__ void KeyScoresKernel(const KvT* __restrict__ k, const float* __restrict__ q,
                                int head_dim, int64_t n, float* __restrict__ scores) {
  const int64_t row = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= n) return;
  const KvT* kr = k + row * head_dim;
  float s = 0.0f;
  for (int d = lane; d < head_dim; d += 32) s = fmaf(q[d], ToFloat(kr[d]), s);
  for (int off = 16; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
  if (lane == 0) scores[row] = s;
}

__global__ void ConvertKernel(const float* __restrict__ src, int64_t count, bool to_bf16,
                              uint16_t* __restrict__ dst) {
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < count;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    dst[k] = to_bf16 ? __bfloat16_as_ushort(__float2bfloat16_rn(src[k]))
                     : __half_as_ushort(__float2half_rn(src[k]));
  }
}

__global__ void AddBiasKernel(float* y, const float* __restrict__ bias, int64_t n, int64_t rows) {
  const int64_t count = n * rows;
  for (int64_t k = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; k < count;
       k += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    y[k] = y[k] + bias[k % rows];
  }
}

}  // namespace

void LaunchEmbed(DType dtype, const void* table, int64_t rows, int64_t cols, size_t row_bytes,
                 const int32_t* ids, int64_t n, float* out, int* err, cudaStream_t stream) {
  DispatchDType(dtype, [&]<DType T>() {
    EmbedKernel<T><<<static_cast<unsigned>(n), 128, 0, stream>>>(
        static_cast<const uint8_t*>(table), rows, cols, row_bytes, ids, out, err);
  });
}

void LaunchRmsNorm(const float* x, const float* weight, int64_t n, int64_t dim, float eps,
                   float* out, cudaStream_t stream) {
  RmsNormKernel<<<static_cast<unsigned>(n), kThreads, 0, stream>>>(x, weight, dim, eps, out);
}

void LaunchRope(float* x, int64_t n, int n_heads, int head_dim, const int32_t* positions,
                const float* inv_freq, float mscale, bool interleaved, cudaStream_t stream) {
  RopeKernel<<<GridFor(n * n_heads * (head_dim / 2)), kThreads, 0, stream>>>(
      x, n, n_heads, head_dim, positions, inv_freq, mscale, interleaved);
}

void LaunchStoreKv(void* k_cache, void* v_cache, bool kv_bf16, int n_kv_heads, int head_dim,
                   int64_t capacity, const float* k, const float* v, int64_t n,
                   const int32_t* slots, int* err, cudaStream_t stream) {
  const unsigned grid = GridFor(n * n_kv_heads * head_dim);
  if (kv_bf16) {
    StoreKvKernel<__nv_bfloat16><<<grid, kThreads, 0, stream>>>(
        static_cast<__nv_bfloat16*>(k_cache), static_cast<__nv_bfloat16*>(v_cache), n_kv_heads,
        head_dim, capacity, k, v, n, slots, err);
  } else {
    StoreKvKernel<float><<<grid, kThreads, 0, stream>>>(static_cast<float*>(k_cache),
                                                        static_cast<float*>(v_cache), n_kv_heads,
                                                        head_dim, capacity, k, v, n, slots, err);
  }
}

void LaunchSwiGlu(const float* gate, const float* up, int64_t count, float* out,
                  cudaStream_t stream) {
  SwiGluKernel<<<GridFor(count), kThreads, 0, stream>>>(gate, up, count, out);
}

void LaunchAdd(float* x, const float* y, int64_t count, cudaStream_t stream) {
  AddKernel<<<GridFor(count), kThreads, 0, stream>>>(x, y, count);
}

void LaunchKeyScores(const void* k_cache, bool kv_bf16, int head, int head_dim, int64_t capacity,
                     const float* q, int64_t lo, int64_t hi, float* scores, cudaStream_t stream) {
  const int64_t n = hi - lo;
  const int64_t offset = (head * capacity + lo) * head_dim;
  const unsigned blocks = static_cast<unsigned>((n * 32 + kThreads - 1) / kThreads);
  if (kv_bf16) {
    KeyScoresKernel<<<blocks, kThreads, 0, stream>>>(
        static_cast<const __nv_bfloat16*>(k_cache) + offset, q, head_dim, n, scores);
  } else {
    KeyScoresKernel<<<blocks, kThreads, 0, stream>>>(static_cast<const float*>(k_cache) + offset, q,
                                                     head_dim, n, scores);
  }
}

void LaunchConvertF32(const float* src, int64_t count, bool to_bf16, void* dst,
                      cudaStream_t stream) {
  ConvertKernel<<<GridFor(count), kThreads, 0, stream>>>(src, count, to_bf16,
                                                         static_cast<uint16_t*>(dst));
}

void LaunchAddBias(float* y, const float* bias, int64_t n, int64_t rows, cudaStream_t stream) {
  AddBiasKernel<<<GridFor(n * rows), kThreads, 0, stream>>>(y, bias, n, rows);
}

// ---- GatherKv: one block per (row, kv head), 4-byte words (row_bytes is a multiple of 4). ----

namespace {

__global__ void GatherKvKernel(const uint32_t* src_k, const uint32_t* src_v, int64_t src_capacity,
                               uint32_t* dst_k, uint32_t* dst_v, int64_t dst_capacity,
                               int64_t row_words, const int32_t* slots, int64_t stride, int* err) {
  const int64_t i = blockIdx.x;
  const int64_t h = blockIdx.y;
  const int32_t slot = slots[h * stride + i];
  if (slot < 0 || slot >= src_capacity) {
    if (threadIdx.x == 0) atomicOr(err, kErrGatherSlotOutOfRange);
    return;
  }
  const int64_t s = (h * src_capacity + slot) * row_words;
  const int64_t d = (h * dst_capacity + i) * row_words;
  for (int64_t w = threadIdx.x; w < row_words; w += blockDim.x) {
    dst_k[d + w] = src_k[s + w];
    dst_v[d + w] = src_v[s + w];
  }
}

}  // namespace

void LaunchGatherKv(const void* src_k, const void* src_v, int64_t src_capacity, void* dst_k,
                    void* dst_v, int64_t dst_capacity, int n_kv_heads, size_t row_bytes,
                    const int32_t* slots, int64_t count, int64_t stride, int* err,
                    cudaStream_t stream) {
  if (count <= 0) return;
  const int64_t row_words = static_cast<int64_t>(row_bytes / 4);
  const dim3 grid(static_cast<unsigned>(count), static_cast<unsigned>(n_kv_heads));
  const int threads = static_cast<int>(std::min<int64_t>(128, (row_words + 31) / 32 * 32));
  GatherKvKernel<<<grid, threads, 0, stream>>>(
      static_cast<const uint32_t*>(src_k), static_cast<const uint32_t*>(src_v), src_capacity,
      static_cast<uint32_t*>(dst_k), static_cast<uint32_t*>(dst_v), dst_capacity, row_words, slots,
      stride, err);
}

}  // namespace ts::cuda
