// Masked attention on the CPU (kernels/backend.h, Backend::Attention).
//
// For each (query row i, head h) the query walks its LOGICAL key sequence — cache slots
// [0, prefix_len[i]), then extra_slots[extra_begin[i] .. extra_begin[i+1]) — in fixed blocks of
// kAttnBlock logical keys with an online softmax:
//   s_t = scale * (q . k_t)                 t in the block
//   m'  = max(m, max_t s_t);  c = exp(m - m')
//   l   = l * c + sum_t exp(s_t - m');  acc = acc * c + sum_t exp(s_t - m') v_t   (t in order)
//   out = acc / l
// Every step depends only on the logical sequence, so a tree node whose sequence (prefix, then
// ancestors, then itself) equals the AR sequence of the same token gets a bit-identical output,
// and slots outside the sequence are never read. Threads split over (query, head) pairs.
//
// A later optimisation can share block reads between tree nodes with a common prefix: the
// per-block step (AttendBlock) is separate from the walk over the sequence for that reason.
#pragma once

#include <cstdint>

#include "kernels/backend.h"
#include "kernels/cpu/thread_pool.h"

namespace ts::cpu {

inline constexpr int kAttnBlock = 32;    // logical keys per online-softmax block
inline constexpr int kMaxHeadDim = 512;  // larger head_dim works, via a heap buffer

void Attention(ThreadPool& pool, const float* q, int64_t n, int n_heads, const KvLayerView& cache,
               const AttentionMask& mask, float scale, float* out);

// One (query, head): q (head_dim) against KV head kv_head over query i's logical sequence.
void AttendOne(const float* q, const KvLayerView& cache, int kv_head, const AttentionMask& mask,
               int64_t i, float scale, float* out);

}  // namespace ts::cpu
