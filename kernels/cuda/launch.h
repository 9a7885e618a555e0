// Kernel launchers: the seam between the host code of the CUDA backend (cuda_backend.cc, plain
// C++ with absl) and the .cu files (device code, no absl). Every launcher only enqueues work on
// `stream`: no allocation, no synchronisation, no host reads of device data, so all of them can
// be recorded into a CUDA graph. Launch errors are picked up by the caller with
// cudaGetLastError(); data errors found on the device (a token id or cache slot out of range)
// set bits in `err` (a device int, see ErrorBits), read back at CudaBackend::Synchronize().
//
// All pointers are device pointers. Shapes are those of kernels/backend.h.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "kernels/dtype.h"

namespace ts::cuda {

// Bits of the device error word.
enum ErrorBits : int {
  kErrEmbedIdOutOfRange = 1,
  kErrStoreSlotOutOfRange = 2,
  kErrAttentionSlotOutOfRange = 4,
  kErrAttentionBadMask = 8,
  kErrGatherSlotOutOfRange = 16,
};

// Largest batch (rows of x) one MatMul launch accepts: grid.y = ceil(n / 8) <= 65535.
inline constexpr int64_t kMaxMatMulRows = int64_t{65535} * 8;
// Attention supports head_dim = 32 * k for k in [1, 8].
inline constexpr int kMaxHeadDim = 256;

// Partial KV cache gather (Backend::GatherKv): row_bytes = head_dim * element size.
void LaunchGatherKv(const void* src_k, const void* src_v, int64_t src_capacity, void* dst_k,
                    void* dst_v, int64_t dst_capacity, int n_kv_heads, size_t row_bytes,
                    const int32_t* slots, int64_t count, int64_t stride, int* err,
                    cudaStream_t stream);

// y (n, rows) = x (n, cols) * dequant(w)^T (+ bias). Fixed-order reduction, see matmul.cu.
void LaunchMatMul(DType dtype, const void* w, int64_t rows, int64_t cols, size_t row_bytes,
                  const float* x, int64_t n, float* y, const float* bias, cudaStream_t stream);

// out (n, cols) = dequant(table rows ids[0..n)).
void LaunchEmbed(DType dtype, const void* table, int64_t rows, int64_t cols, size_t row_bytes,
                 const int32_t* ids, int64_t n, float* out, int* err, cudaStream_t stream);

void LaunchRmsNorm(const float* x, const float* weight, int64_t n, int64_t dim, float eps,
                   float* out, cudaStream_t stream);

// interleaved = false: pairs (j, j + head_dim/2); true: pairs (2j, 2j + 1).
void LaunchRope(float* x, int64_t n, int n_heads, int head_dim, const int32_t* positions,
                const float* inv_freq, float mscale, bool interleaved, cudaStream_t stream);

// kv_bf16 selects the cache element type (f32 otherwise).
void LaunchStoreKv(void* k_cache, void* v_cache, bool kv_bf16, int n_kv_heads, int head_dim,
                   int64_t capacity, const float* k, const float* v, int64_t n,
                   const int32_t* slots, int* err, cudaStream_t stream);

void LaunchAttention(const float* q, int64_t n, int n_heads, const void* k_cache,
                     const void* v_cache, bool kv_bf16, int n_kv_heads, int head_dim,
                     int64_t capacity, const int32_t* prefix_len, const int32_t* extra_begin,
                     const int32_t* extra_slots, float scale, float* out, int* err,
                     cudaStream_t stream);

// Split-KV attention (flash-decoding; attention.cu): the same contract, `partials` of
// AttentionPartialFloats(n, n_heads, head_dim, capacity) floats of device scratch.
inline constexpr int64_t kChunkKeys = 2048;  // logical keys per split chunk
int AttentionChunks(int64_t capacity);
size_t AttentionPartialFloats(int64_t n, int n_heads, int head_dim, int64_t capacity);
void LaunchAttentionSplit(const float* q, int64_t n, int n_heads, const void* k_cache,
                          const void* v_cache, bool kv_bf16, int n_kv_heads, int head_dim,
                          int64_t capacity, const int32_t* prefix_len, const int32_t* extra_begin,
                          const int32_t* extra_slots, float scale, float* out, float* partials,
                          int* err, cudaStream_t stream);

void LaunchSwiGlu(const float* gate, const float* up, int64_t count, float* out,
                  cudaStream_t stream);
void LaunchAdd(float* x, const float* y, int64_t count, cudaStream_t stream);
// scores[i] = q . k(head, lo + i) for i < hi - lo (Backend::KeyScores).
void LaunchKeyScores(const void* k_cache, bool kv_bf16, int head, int head_dim, int64_t capacity,
                     const float* q, int64_t lo, int64_t hi, float* scores, cudaStream_t stream);

// dst (count) = src rounded to nearest even in f16 (to_bf16 = false) or bf16 (true).
void LaunchConvertF32(const float* src, int64_t count, bool to_bf16, void* dst,
                      cudaStream_t stream);
// y (n, rows) += bias (rows), one add per element (used after cuBLASLt).
void LaunchAddBias(float* y, const float* bias, int64_t n, int64_t rows, cudaStream_t stream);

}  // namespace ts::cuda
