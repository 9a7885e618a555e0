// Masked attention on the CPU (kernels/backend.h, Backend::Attention), reading each KV block once
// for every query row and every query head of a GQA group that needs it.
//
// The logical key sequence of query row i is cache slots [0, prefix_len[i]), then
// extra_slots[extra_begin[i] .. extra_begin[i+1]) (a tree node's ancestors, then itself); its
// length is len_i. Per (row i, query head h) the arithmetic is a function of that sequence only:
//
//   Segments. The logical sequence is cut into segments of kAttnSegment keys (a constant, so
//   the cut never depends on the batch, the thread count or another row). Each segment yields an
//   online-softmax partial (m_s, l_s, acc_s); partials are combined in segment order:
//     M = max_s m_s;  l = sum_s l_s * exp(m_s - M);  acc = sum_s acc_s * exp(m_s - M)
//     out = acc * (1 / l)            (one segment: exactly acc * (1 / l))
//   Segments are what keeps two threads busy at batch 1 with 3 KV heads (tasks are
//   (KV head, segment, chunk of rows)).
//
//   Blocks. Inside a segment, keys go in blocks of kAttnBlock logical keys (block boundaries
//   at multiples of kAttnBlock of the logical index, so a block never straddles segments). A
//   block's K is transposed to (head_dim, kAttnBlock) f32 once, so that scores are lanes:
//     s_t  = (scale q) . k_t            one FMA chain over d = 0 .. head_dim-1 per key lane
//     m'   = max(m, max_t s_t);  c = exp(m - m')   (Highway Exp, as p_t)
//     p_t  = exp(s_t - m')              (Highway Exp, lane-wise)
//     l    = fma(l, c, sum_t p_t)       (p vectors added in order, then one lane reduction)
//     acc  = acc * c, then acc = fma(p_t, v_t, acc) for t in order   (one chain per d lane)
//   These are GEMM tiles: the scores of several (row, head) pairs against the block's keys
//   (QᵀK with the queries broadcast and the keys in lanes), then the value products of several
//   pairs against the block's values (PV with d in lanes), each tile held in registers. A tile
//   only chooses which pairs' lanes run side by side; each lane's chain is the pair's own.
//   A block is applied by one non-inlined function (UpdatePairs) whatever its source, so the
//   same logical block gives the same bits whether its keys came straight from the cache (a
//   full block of the shared prefix) or were gathered (a row's prefix tail and its ancestors).
//
// Sharing. Within a task, the blocks that lie wholly inside the prefix are walked once: each
// block is loaded (K transposed, bf16 widened to f32 once) and then every (row, group head) pair
// whose prefix covers it updates its state from L1 in GEMM tiles (f32 values are read in place
// when head_dim is a multiple of the vector width). Then each row walks its own remaining blocks
// (the last partial prefix block and its extra slots), gathered into the same block buffer. So a
// verify pass of T tree rows over a prefix of P keys reads the prefix's K/V from memory once per KV
// head, not T * group times; causal prefill shares blocks the same way.
//
// Consequences (tests/kernels/attention_test.cc, attention_batch_test.cc): a tree node whose
// logical sequence equals the AR sequence of the same token gets a bit-identical output; a row's
// result does not depend on the other rows, the thread count, or slots outside its sequence
// (never read). Scores and value products are per-lane chains, so the vector width does not shape
// them; the sum of a block's probabilities is a lane reduction, and a target without FMA rounds
// differently, so results do depend on the SIMD target, as every reduction kernel here does: one
// machine, one target, one answer.
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/thread_pool.h"

namespace ts::cpu {

inline constexpr int kAttnBlock = 32;      // logical keys per online-softmax block
inline constexpr int kAttnSegment = 1024;  // logical keys per partial (multiple of kAttnBlock)
inline constexpr int kAttnRowChunk = 64;   // query rows sharing one pass over a segment

// Buffers reused across calls; they grow to the largest call seen and are never shrunk, so a
// decode loop allocates only while its sequence grows past the previous capacity.
struct AttentionThreadScratch {
  std::vector<float> floats;    // transposed K block, V block, scaled queries, scores
  std::vector<const float*> q;  // (pairs) of the block being applied
  std::vector<float*> ml, acc;  // (pairs)
  std::vector<float> combine;   // (head_dim_padded) CombineRow's sum
};
struct AttentionScratch {
  std::vector<float> partial_acc;             // (pair-segments, head_dim_padded) running acc
  std::vector<float> partial_ml;              // (pair-segments, 2): m, l
  std::vector<int64_t> row_base;              // (n + 1) first pair-segment of each row in a round
  std::vector<AttentionThreadScratch> local;  // per thread
};

// out (n, n_heads, head_dim) = softmax(q k^T * scale) v over each row's logical sequence.
void Attention(ThreadPool& pool, AttentionScratch& scratch, const float* q, int64_t n, int n_heads,
               const KvLayerView& cache, const AttentionMask& mask, float scale, float* out);

}  // namespace ts::cpu
