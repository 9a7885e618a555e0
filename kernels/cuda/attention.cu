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
// Split-KV (flash-decoding, the default path): one CTA per (query, head, chunk of kChunkKeys
// logical keys); the chunk runs the scheme above over its own blocks (block starts 32-aligned in
// logical order, warp w takes the chunk's blocks w, w + 8, ...), then writes its merged state
// (m_c, l_c, acc_c). The last chunk also takes every key past the others' end. A second kernel
// merges chunks c = 0, 1, ... in ascending order exactly as warps are merged above. Chunk
// boundaries are logical positions fixed by kChunkKeys alone, so the invariance argument holds
// unchanged: a query computes the same bits alone or in a batch, in a tree or in AR (a query longer
// than all chunks but the last, possible only with repeated extra slots, puts its tail in the last
// chunk). The grid has floor(capacity / kChunkKeys) + 1 chunks per (query, head); chunks past a
// query's length write an empty state (l = 0) and return at once.
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

// Keys [begin, end) of one (query, head) in the scheme above: warp w takes the blocks starting at
// begin + 32 w, begin + 32 (w + 8), ... (begin is a multiple of 32), and ends with its online
// softmax state (m, l, acc). Reads K/V rows of the logical keys only.
template <int kDimsPerLane, typename KvT>
__device__ __forceinline__ void ScanKeys(const float* q_s, float (*k_s)[33], const KvT* kbase,
                                         const KvT* vbase, int64_t capacity, int64_t prefix,
                                         const int32_t* extra_slots, int64_t e0, int64_t begin,
                                         int64_t end, float scale, int* err, float& m, float& l,
                                         float (&acc)[kDimsPerLane]) {
  constexpr int kDim = kDimsPerLane * 32;
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  m = -INFINITY;
  l = 0.0f;
#pragma unroll
  for (int r = 0; r < kDimsPerLane; ++r) acc[r] = 0.0f;
  for (int64_t start = begin + static_cast<int64_t>(warp) * kBlockKeys; start < end;
       start += static_cast<int64_t>(kWarps) * kBlockKeys) {
    const int64_t t = start + lane;
    int valid = t < end;
    int64_t slot = 0;
    if (valid) {
      slot = t < prefix ? t : extra_slots[e0 + (t - prefix)];
      if (slot < 0 || slot >= capacity) {
        atomicOr(err, kErrAttentionSlotOutOfRange);
        valid = 0;
        slot = 0;
      }
    }
    const int count = static_cast<int>(min(static_cast<int64_t>(kBlockKeys), end - start));

    // Scores: stage 32 keys x 32 dims, lane k reduces key k over d ascending.
    float s = 0.0f;
#pragma unroll
    for (int dc = 0; dc < kDimsPerLane; ++dc) {
      for (int kk = 0; kk < kBlockKeys; ++kk) {
        const int64_t slot_k = __shfl_sync(0xffffffffu, slot, kk);
        const int valid_k = __shfl_sync(0xffffffffu, valid, kk);
        k_s[kk][lane] = valid_k ? LoadKv(kbase + slot_k * kDim + dc * 32 + lane) : 0.0f;
      }
      __syncwarp();
#pragma unroll
      for (int j = 0; j < 32; ++j) s = __fmaf_rn(q_s[dc * 32 + j], k_s[lane][j], s);
      __syncwarp();
    }
    s = valid ? s * scale : -INFINITY;

    float bmax = s;
#pragma unroll
    for (int off = 16; off > 0; off >>= 1)
      bmax = fmaxf(bmax, __shfl_xor_sync(0xffffffffu, bmax, off));
    const float m_new = fmaxf(m, bmax);
    // A block always holds key `start` (< end); if it was an invalid slot, bmax may be -inf.
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
}

// The shared state of one CTA: the query and every warp's (m, l, acc).
template <int kDim>
struct WarpStates {
  float q[kDim];
  float k[kWarps][kBlockKeys][33];  // +1 column: conflict-free row reads
  float m[kWarps];
  float l[kWarps];
  float acc[kWarps][kDim];
};

// The warps' states merged in ascending warp order relative to their max: *big = max m_w over
// warps that saw a key, *lsum = sum_w e_w l_w, and num_d = sum_w e_w acc_w,d (threads stride d).
template <int kDim>
__device__ __forceinline__ void MergeWarps(const WarpStates<kDim>& st, float* big, float* lsum,
                                           float (&e)[kWarps]) {
  float mx = -INFINITY;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) mx = fmaxf(mx, st.l[w] > 0.0f ? st.m[w] : -INFINITY);
  float sum = 0.0f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) {
    e[w] = (st.l[w] > 0.0f) ? expf(st.m[w] - mx) : 0.0f;
    sum = __fadd_rn(sum, e[w] * st.l[w]);
  }
  *big = mx;
  *lsum = sum;
}
template <int kDim>
__device__ __forceinline__ float MergedNum(const WarpStates<kDim>& st, const float (&e)[kWarps],
                                           int d) {
  float num = 0.0f;
#pragma unroll
  for (int w = 0; w < kWarps; ++w) num = __fadd_rn(num, e[w] * st.acc[w][d]);
  return num;
}

// Reads query (i, h)'s mask: its logical length and where its extra slots start (a bad mask is
// reported and treated as empty).
__device__ __forceinline__ int64_t MaskLength(int64_t i, const int32_t* prefix_len,
                                              const int32_t* extra_begin, int64_t capacity,
                                              bool report, int* err, int64_t* prefix, int64_t* e0) {
  int64_t p = prefix_len[i];
  int64_t b = 0, e = 0;
  if (extra_begin != nullptr) {
    b = extra_begin[i];
    e = extra_begin[i + 1];
  }
  if (p < 0 || p > capacity || e < b) {
    if (report) atomicOr(err, kErrAttentionBadMask);
    p = 0;
    e = b;
  }
  *prefix = p;
  *e0 = b;
  return p + (e - b);
}

// Whole-context attention: one CTA per (query, head), output normalised in place.
template <int kDimsPerLane, typename KvT>
__global__ void __launch_bounds__(kWarps * 32)
    AttentionKernel(const float* __restrict__ q, int n_heads, int group,
                    const KvT* __restrict__ k_cache, const KvT* __restrict__ v_cache,
                    int64_t capacity, const int32_t* __restrict__ prefix_len,
                    const int32_t* __restrict__ extra_begin,
                    const int32_t* __restrict__ extra_slots, float scale, float* __restrict__ out,
                    int* err) {
  constexpr int kDim = kDimsPerLane * 32;
  __shared__ WarpStates<kDim> st;
  const int64_t qh = blockIdx.x;  // i * n_heads + h
  const int h = static_cast<int>(qh % n_heads);
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  for (int d = threadIdx.x; d < kDim; d += blockDim.x) st.q[d] = q[qh * kDim + d];
  int64_t prefix = 0, e0 = 0;
  const int64_t len = MaskLength(qh / n_heads, prefix_len, extra_begin, capacity, threadIdx.x == 0,
                                 err, &prefix, &e0);
  __syncthreads();
  const int64_t head_off = static_cast<int64_t>(h / group) * capacity * kDim;
  float m, l, acc[kDimsPerLane];
  ScanKeys<kDimsPerLane>(st.q, st.k[warp], k_cache + head_off, v_cache + head_off, capacity, prefix,
                         extra_slots, e0, 0, len, scale, err, m, l, acc);
  if (lane == 0) {
    st.m[warp] = m;
    st.l[warp] = l;
  }
#pragma unroll
  for (int r = 0; r < kDimsPerLane; ++r) st.acc[warp][r * 32 + lane] = acc[r];
  __syncthreads();
  float big, denom, e[kWarps];
  MergeWarps(st, &big, &denom, e);
  for (int d = threadIdx.x; d < kDim; d += blockDim.x) {
    out[qh * kDim + d] = denom > 0.0f ? MergedNum(st, e, d) / denom : 0.0f;
  }
}

// Split-KV chunk: the state of keys [c * kChunkKeys, end) of query (i, h), where end is the next
// chunk's start (the last chunk: len).
template <int kDimsPerLane, typename KvT>
__global__ void __launch_bounds__(kWarps * 32)
    AttentionChunkKernel(const float* __restrict__ q, int n_heads, int group,
                         const KvT* __restrict__ k_cache, const KvT* __restrict__ v_cache,
                         int64_t capacity, const int32_t* __restrict__ prefix_len,
                         const int32_t* __restrict__ extra_begin,
                         const int32_t* __restrict__ extra_slots, float scale, int n_chunks,
                         float* __restrict__ part_acc, float* __restrict__ part_ml, int* err) {
  constexpr int kDim = kDimsPerLane * 32;
  __shared__ WarpStates<kDim> st;
  const int64_t qh = blockIdx.x;  // i * n_heads + h
  const int h = static_cast<int>(qh % n_heads);
  const int c = static_cast<int>(blockIdx.y);
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  float* acc_out = part_acc + (qh * n_chunks + c) * static_cast<int64_t>(kDim);
  float* ml_out = part_ml + (qh * n_chunks + c) * 2;
  int64_t prefix = 0, e0 = 0;
  const int64_t len = MaskLength(qh / n_heads, prefix_len, extra_begin, capacity,
                                 threadIdx.x == 0 && c == 0, err, &prefix, &e0);
  const int64_t chunk_begin = static_cast<int64_t>(c) * kChunkKeys;
  const int64_t chunk_end = c == n_chunks - 1 ? len : min(len, chunk_begin + kChunkKeys);
  if (chunk_begin >= chunk_end) {  // the same for every thread: an empty state the merge skips
    if (threadIdx.x == 0) {        // (l = 0: its acc is never read)
      ml_out[0] = -INFINITY;
      ml_out[1] = 0.0f;
    }
    return;
  }
  for (int d = threadIdx.x; d < kDim; d += blockDim.x) st.q[d] = q[qh * kDim + d];
  __syncthreads();
  const int64_t head_off = static_cast<int64_t>(h / group) * capacity * kDim;
  float m, l, acc[kDimsPerLane];
  ScanKeys<kDimsPerLane>(st.q, st.k[warp], k_cache + head_off, v_cache + head_off, capacity, prefix,
                         extra_slots, e0, chunk_begin, chunk_end, scale, err, m, l, acc);
  if (lane == 0) {
    st.m[warp] = m;
    st.l[warp] = l;
  }
#pragma unroll
  for (int r = 0; r < kDimsPerLane; ++r) st.acc[warp][r * 32 + lane] = acc[r];
  __syncthreads();
  float big, lsum, e[kWarps];
  MergeWarps(st, &big, &lsum, e);
  for (int d = threadIdx.x; d < kDim; d += blockDim.x) acc_out[d] = MergedNum(st, e, d);
  if (threadIdx.x == 0) {
    ml_out[0] = big;
    ml_out[1] = lsum;
  }
}

// out (i, h) = the chunks' states merged in ascending chunk order.
__global__ void AttentionMergeKernel(int dim, int n_chunks, const float* __restrict__ part_acc,
                                     const float* __restrict__ part_ml, float* __restrict__ out) {
  const int64_t qh = blockIdx.x;
  const float* ml = part_ml + qh * n_chunks * 2;
  float big = -INFINITY;
  for (int c = 0; c < n_chunks; ++c) {
    if (ml[2 * c + 1] > 0.0f) big = fmaxf(big, ml[2 * c]);
  }
  float denom = 0.0f;
  for (int c = 0; c < n_chunks; ++c) {
    const float l = ml[2 * c + 1];
    if (l > 0.0f) denom = __fadd_rn(denom, expf(ml[2 * c] - big) * l);
  }
  float* orow = out + qh * dim;
  for (int d = threadIdx.x; d < dim; d += blockDim.x) {
    float num = 0.0f;
    for (int c = 0; c < n_chunks; ++c) {
      const float l = ml[2 * c + 1];
      if (l > 0.0f) {
        num = __fadd_rn(num, expf(ml[2 * c] - big) * part_acc[(qh * n_chunks + c) * dim + d]);
      }
    }
    orow[d] = denom > 0.0f ? num / denom : 0.0f;
  }
}

template <typename KvT>
void LaunchSplitTyped(const float* q, int64_t n, int n_heads, const void* k_cache,
                      const void* v_cache, int n_kv_heads, int head_dim, int64_t capacity,
                      const int32_t* prefix_len, const int32_t* extra_begin,
                      const int32_t* extra_slots, float scale, float* out, float* partials,
                      int* err, cudaStream_t stream) {
  const int n_chunks = AttentionChunks(capacity);
  const dim3 grid(static_cast<unsigned>(n * n_heads), static_cast<unsigned>(n_chunks));
  const int group = n_heads / n_kv_heads;
  const auto* k = static_cast<const KvT*>(k_cache);
  const auto* v = static_cast<const KvT*>(v_cache);
  float* part_acc = partials;
  float* part_ml = partials + n * n_heads * n_chunks * static_cast<int64_t>(head_dim);
#define TS_SPLIT_CASE(DPL)                                                                        \
  case DPL:                                                                                       \
    AttentionChunkKernel<DPL, KvT><<<grid, kWarps * 32, 0, stream>>>(                             \
        q, n_heads, group, k, v, capacity, prefix_len, extra_begin, extra_slots, scale, n_chunks, \
        part_acc, part_ml, err);                                                                  \
    break;
  switch (head_dim / 32) {
    TS_SPLIT_CASE(1)
    TS_SPLIT_CASE(2)
    TS_SPLIT_CASE(3)
    TS_SPLIT_CASE(4)
    TS_SPLIT_CASE(5)
    TS_SPLIT_CASE(6)
    TS_SPLIT_CASE(7)
    TS_SPLIT_CASE(8)
    default:
      return;  // rejected on the host
  }
#undef TS_SPLIT_CASE
  AttentionMergeKernel<<<static_cast<unsigned>(n * n_heads), head_dim, 0, stream>>>(
      head_dim, n_chunks, part_acc, part_ml, out);
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

int AttentionChunks(int64_t capacity) { return static_cast<int>(capacity / kChunkKeys) + 1; }

size_t AttentionPartialFloats(int64_t n, int n_heads, int head_dim, int64_t capacity) {
  return static_cast<size_t>(n) * static_cast<size_t>(n_heads) *
         static_cast<size_t>(AttentionChunks(capacity)) * static_cast<size_t>(head_dim + 2);
}

void LaunchAttentionSplit(const float* q, int64_t n, int n_heads, const void* k_cache,
                          const void* v_cache, bool kv_bf16, int n_kv_heads, int head_dim,
                          int64_t capacity, const int32_t* prefix_len, const int32_t* extra_begin,
                          const int32_t* extra_slots, float scale, float* out, float* partials,
                          int* err, cudaStream_t stream) {
  if (kv_bf16) {
    LaunchSplitTyped<__nv_bfloat16>(q, n, n_heads, k_cache, v_cache, n_kv_heads, head_dim, capacity,
                                    prefix_len, extra_begin, extra_slots, scale, out, partials, err,
                                    stream);
  } else {
    LaunchSplitTyped<float>(q, n, n_heads, k_cache, v_cache, n_kv_heads, head_dim, capacity,
                            prefix_len, extra_begin, extra_slots, scale, out, partials, err,
                            stream);
  }
}

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
