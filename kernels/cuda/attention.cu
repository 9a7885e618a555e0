// Attention over each query's masked cache slots in LOGICAL key order (kernels/backend.h,
// AttentionMask): logical key t < prefix_len[i] is slot t; logical key t >= prefix_len[i] is
// extra_slots[extra_begin[i] + t - prefix_len[i]].
//
// One CTA of 8 warps per (query i, head h); query head h reads KV head h / (n_heads / n_kv_heads).
// The logical sequence of L keys is cut into fixed blocks of 32 (block b = keys 32b .. 32b + 31).
// Warp w handles blocks b = w, w + 8, w + 16, ... in ascending order with an online softmax:
//   scores     lane k of the warp owns key 32b + k: s_k = (sum_d q[d] * K[d]) * scale, the sum
//              sequential over d ascending (K staged through shared memory, 32 dims at a time);
//   block max  xor butterfly of max (exact); m' = max(m, block max); alpha = exp(m - m');
//   weights    p_k = exp(s_k - m') (0 for keys past L); l = l * alpha + butterfly sum of p;
//   values     lane owns dims d = lane + 32r; acc_d = acc_d * alpha, then acc_d += p_k * V_k[d]
//              for k = 0, 1, ... (sequential fmaf).
// Finally the 8 warp states are merged in ascending warp order:
//   M = max m_w; e_w = exp(m_w - M) (0 for a warp that saw no key); out_d = (sum_w e_w acc_w,d) /
//   (sum_w e_w l_w).
//
// Invariance: the operations for (i, h) depend only on q, L and the K/V rows of the logical keys,
// never on slot numbers, n, other queries, or masked-out entries (never read). So a tree node whose
// ancestors sit in extra slots computes bit for bit what the same token computes in AR mode with
// the same keys at contiguous prefix slots, and a query alone equals the same query in a batch.
// An empty key set (L = 0) yields zeros. Compiled with --fmad=false; exp is expf (not __expf).
//
// Cost and next steps: every query streams its own keys (GQA siblings and tree nodes share via L2
// only). DESIGN.md section 7 wants each KV block read once for all tree nodes: a CTA per
// (KV head, logical block range) serving all queries that share the prefix, plus a split over
// fixed logical chunks for long contexts (flash-decoding), both keep the per-query order above.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/launch.h"

namespace ts::cuda {
namespace {

constexpr int kWarps = 8;
constexpr int kBlockKeys = 32;  // logical keys per block: one per lane

__device__ __forceinline__ float LoadKv(const float* p) { return __ldg(p); }
__device__ __forceinline__ float LoadKv(const __nv_bfloat16* p) { return __bfloat162float(*p); }

template <int kDimsPerLane, typename KvT>
__global__ void __launch_bounds__(kWarps * 32)
    AttentionKernel(const float* __restrict__ q, int n_heads, int group,
                    const KvT* __restrict__ k_cache, const KvT* __restrict__ v_cache,
                    int64_t capacity, const int32_t* __restrict__ prefix_len,
                    const int32_t* __restrict__ extra_begin,
                    const int32_t* __restrict__ extra_slots, float scale, float* __restrict__ out,
                    int* err) {
  constexpr int kDim = kDimsPerLane * 32;
  __shared__ float q_s[kDim];
  __shared__ float k_s[kWarps][kBlockKeys][33];  // +1 column: conflict-free row reads
  __shared__ float m_s[kWarps];
  __shared__ float l_s[kWarps];
  __shared__ float acc_s[kWarps][kDim];

  const int64_t i = blockIdx.x / n_heads;
  const int h = static_cast<int>(blockIdx.x % n_heads);
  const int kvh = h / group;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;

  const float* qrow = q + blockIdx.x * static_cast<int64_t>(kDim);  // (i * n_heads + h) * kDim
  for (int d = threadIdx.x; d < kDim; d += blockDim.x) q_s[d] = qrow[d];

  int64_t prefix = prefix_len[i];
  int64_t e0 = 0, e1 = 0;
  if (extra_begin != nullptr) {
    e0 = extra_begin[i];
    e1 = extra_begin[i + 1];
  }
  if (prefix < 0 || prefix > capacity || e1 < e0) {
    if (threadIdx.x == 0) atomicOr(err, kErrAttentionBadMask);
    prefix = 0;
    e1 = e0;
  }
  const int64_t len = prefix + (e1 - e0);
  __syncthreads();

  const KvT* kbase = k_cache + kvh * capacity * kDim;
  const KvT* vbase = v_cache + kvh * capacity * kDim;
  float m = -INFINITY;
  float l = 0.0f;
  float acc[kDimsPerLane];
#pragma unroll
  for (int r = 0; r < kDimsPerLane; ++r) acc[r] = 0.0f;

  for (int64_t start = static_cast<int64_t>(warp) * kBlockKeys; start < len;
       start += static_cast<int64_t>(kWarps) * kBlockKeys) {
    const int64_t t = start + lane;
    int valid = t < len;
    int64_t slot = 0;
    if (valid) {
      slot = t < prefix ? t : extra_slots[e0 + (t - prefix)];
      if (slot < 0 || slot >= capacity) {
        atomicOr(err, kErrAttentionSlotOutOfRange);
        valid = 0;
        slot = 0;
      }
    }
    const int count = static_cast<int>(min(static_cast<int64_t>(kBlockKeys), len - start));

    // Scores: stage 32 keys x 32 dims, lane k reduces key k over d ascending.
    float s = 0.0f;
#pragma unroll
    for (int dc = 0; dc < kDimsPerLane; ++dc) {
      for (int kk = 0; kk < kBlockKeys; ++kk) {
        const int64_t slot_k = __shfl_sync(0xffffffffu, slot, kk);
        const int valid_k = __shfl_sync(0xffffffffu, valid, kk);
        k_s[warp][kk][lane] = valid_k ? LoadKv(kbase + slot_k * kDim + dc * 32 + lane) : 0.0f;
      }
      __syncwarp();
#pragma unroll
      for (int j = 0; j < 32; ++j) s = __fmaf_rn(q_s[dc * 32 + j], k_s[warp][lane][j], s);
      __syncwarp();
    }
    s = valid ? s * scale : -INFINITY;

    float bmax = s;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
      bmax = fmaxf(bmax, __shfl_xor_sync(0xffffffffu, bmax, off));
    const float m_new = fmaxf(m, bmax);
    // A block always holds key `start` (< len); if it was an invalid slot, bmax may be -inf.
    const float alpha = m == -INFINITY ? 0.0f : expf(m - m_new);
    const float p = (valid && m_new != -INFINITY) ? expf(s - m_new) : 0.0f;
    float psum = p;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
      psum = __fadd_rn(psum, __shfl_xor_sync(0xffffffffu, psum, off));
    l = __fadd_rn(l * alpha, psum);
#pragma unroll
    for (int r = 0; r < kDimsPerLane; ++r) acc[r] = acc[r] * alpha;
    for (int kk = 0; kk < count; ++kk) {
      const float p_k = __shfl_sync(0xffffffffu, p, kk);
      const int64_t slot_k = __shfl_sync(0xffffffffu, slot, kk);
      const int valid_k = __shfl_sync(0xffffffffu, valid, kk);
      if (valid_k) {
        const KvT* vrow = vbase + slot_k * kDim;
#pragma unroll
        for (int r = 0; r < kDimsPerLane; ++r) {
          acc[r] = __fmaf_rn(p_k, LoadKv(vrow + r * 32 + lane), acc[r]);
        }
      }
    }
    m = m_new;
  }

  if (lane == 0) {
    m_s[warp] = m;
    l_s[warp] = l;
  }
#pragma unroll
  for (int r = 0; r < kDimsPerLane; ++r) acc_s[warp][r * 32 + lane] = acc[r];
  __syncthreads();

  float big = -INFINITY;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) big = fmaxf(big, m_s[w]);
  float denom = 0.0f;
  float e[kWarps];
#pragma unroll
  for (int w = 0; w < kWarps; ++w) {
    e[w] = (l_s[w] > 0.0f) ? expf(m_s[w] - big) : 0.0f;
    denom = __fadd_rn(denom, e[w] * l_s[w]);
  }
  float* orow = out + blockIdx.x * static_cast<int64_t>(kDim);
  for (int d = threadIdx.x; d < kDim; d += blockDim.x) {
    float num = 0.0f;
#pragma unroll
    for (int w = 0; w < kWarps; ++w) num = __fadd_rn(num, e[w] * acc_s[w][d]);
    orow[d] = denom > 0.0f ? num / denom : 0.0f;
  }
}

template <typename KvT>
void LaunchTyped(const float* q, int64_t n, int n_heads, const void* k_cache, const void* v_cache,
                 int n_kv_heads, int head_dim, int64_t capacity, const int32_t* prefix_len,
                 const int32_t* extra_begin, const int32_t* extra_slots, float scale, float* out,
                 int* err, cudaStream_t stream) {
  const unsigned grid = static_cast<unsigned>(n * n_heads);
  const int group = n_heads / n_kv_heads;
  const auto* k = static_cast<const KvT*>(k_cache);
  const auto* v = static_cast<const KvT*>(v_cache);
#define TS_ATTENTION_CASE(DPL)                                                                     \
  case DPL:                                                                                        \
    AttentionKernel<DPL, KvT><<<grid, kWarps * 32, 0, stream>>>(                                   \
        q, n_heads, group, k, v, capacity, prefix_len, extra_begin, extra_slots, scale, out, err); \
    break;
  switch (head_dim / 32) {
    TS_ATTENTION_CASE(1)
    TS_ATTENTION_CASE(2)
    TS_ATTENTION_CASE(3)
    TS_ATTENTION_CASE(4)
    TS_ATTENTION_CASE(5)
    TS_ATTENTION_CASE(6)
    TS_ATTENTION_CASE(7)
    TS_ATTENTION_CASE(8)
    default:
      break;  // rejected on the host
  }
#undef TS_ATTENTION_CASE
}

}  // namespace

void LaunchAttention(const float* q, int64_t n, int n_heads, const void* k_cache,
                     const void* v_cache, bool kv_bf16, int n_kv_heads, int head_dim,
                     int64_t capacity, const int32_t* prefix_len, const int32_t* extra_begin,
                     const int32_t* extra_slots, float scale, float* out, int* err,
                     cudaStream_t stream) {
  if (kv_bf16) {
    LaunchTyped<__nv_bfloat16>(q, n, n_heads, k_cache, v_cache, n_kv_heads, head_dim, capacity,
                               prefix_len, extra_begin, extra_slots, scale, out, err, stream);
  } else {
    LaunchTyped<float>(q, n, n_heads, k_cache, v_cache, n_kv_heads, head_dim, capacity, prefix_len,
                       extra_begin, extra_slots, scale, out, err, stream);
  }
}

}  // namespace ts::cuda
