// Masked online-softmax attention, compiled per SIMD target (see attention.h for the algorithm:
// segments, blocks, and how one pass over a KV block serves every row and group head, and why
// the result is batch-, thread- and tree-invariant).

#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/attention.cc"
// foreach_target.h must come first, then highway.h, then contrib headers.
// clang-format off
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
#include "hwy/contrib/math/math-inl.h"
// clang-format on

#include "kernels/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/cpu/quant_blocks.h"

HWY_BEFORE_NAMESPACE();
namespace ts::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;

using DF = hn::ScalableTag<float>;
using VF = hn::Vec<DF>;
constexpr int kLanes = static_cast<int>(hn::MaxLanes(DF()));
static_assert(kAttnBlock % kLanes == 0 && kAttnSegment % kAttnBlock == 0);
constexpr float kNegInf = -std::numeric_limits<float>::infinity();
// Rows of partial state per round: bounds the partial buffers for long causal prefills.
constexpr int64_t kRoundPartialFloats = int64_t{1} << 22;
// A shared bf16 block read by at least this many (row, head) pairs is widened to f32 once rather
// than on every load (measured on SmolLM2 shapes: in place wins up to T = 4 rows x 3 group
// heads, widening from T = 16).
constexpr int64_t kWidenMinPairs = 16;

// One block of keys/values stored as KT (float, or uint16_t = bf16): rows t < count of k and v,
// `stride` elements apart, are the block's keys in logical order. k rows [count, kAttnBlock) must
// be readable (their scores are dropped). bf16 widens to f32 exactly, so a block gives the same
// bits read in place as bf16 or after conversion to f32.
template <typename KT>
struct Block {
  const KT* k;
  const KT* v;
  int64_t stride;
  int count;
};

template <typename KT>
HWY_INLINE VF LoadKv(const KT* HWY_RESTRICT p) {
  const DF df;
  if constexpr (std::is_same_v<KT, float>) {
    return hn::LoadU(df, p);
  } else {
    const hn::Rebind<hwy::bfloat16_t, DF> dh;
    return hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::bfloat16_t*>(p)));
  }
}

// q . k over dp floats as a vector of d-chunk partial products (lane sum = the dot): a chain of
// MulAdd over the chunks. kC > 0: dp = kC * kLanes and qv holds q; kC == 0: any dp, q from memory.
template <int kC, typename KT>
HWY_INLINE VF DotChunks(const VF* qv, const float* HWY_RESTRICT q, const KT* HWY_RESTRICT k,
                        int dp) {
  const DF df;
  if constexpr (kC > 0) {
    VF a = hn::Mul(qv[0], LoadKv(k));
    HWY_UNROLL(16)
    for (int c = 1; c < kC; ++c) a = hn::MulAdd(qv[c], LoadKv(k + c * kLanes), a);
    return a;
  } else {
    VF a = hn::Mul(hn::LoadU(df, q), LoadKv(k));
    for (int c = kLanes; c < dp; c += kLanes)
      a = hn::MulAdd(hn::LoadU(df, q + c), LoadKv(k + c), a);
    return a;
  }
}

// Dots of kKeys consecutive keys (rows `stride` floats apart) as kKeys groups of kLanes / kKeys
// lanes, group g summing to key g's dot; kKeys == kLanes gives one key per lane, in order. A
// fixed pairwise tree: Add(ConcatEven(hi, lo), ConcatOdd(hi, lo)) halves every group.
template <int kKeys, int kC, typename KT>
HWY_INLINE VF TreeDots(const VF* qv, const float* HWY_RESTRICT q, const KT* HWY_RESTRICT k,
                       int64_t stride, int dp) {
  if constexpr (kKeys == 1) {
    return DotChunks<kC>(qv, q, k, dp);
  } else {
#if HWY_TARGET != HWY_SCALAR
    const DF df;
    const VF lo = TreeDots<kKeys / 2, kC>(qv, q, k, stride, dp);
    const VF hi = TreeDots<kKeys / 2, kC>(qv, q, k + kKeys / 2 * stride, stride, dp);
    return hn::Add(hn::ConcatEven(df, hi, lo), hn::ConcatOdd(df, hi, lo));
#endif
  }
}

// acc[d0, d0 + kG * kLanes) = acc * c + (o_0 + o_1) + (o_2 + o_3), o_r = sum over t = r mod 4
// (t < count, in order) of p_t v_t. The grouping kG only changes register use, not arithmetic.
template <int kG, typename KT>
HWY_INLINE void AccumulateV(const float* HWY_RESTRICT p, const Block<KT>& blk, int d0, VF cv,
                            float* HWY_RESTRICT acc) {
  const DF df;
  const KT* v = blk.v + d0;
  const int64_t stride = blk.stride;
  const int count = blk.count;
  VF o[4][kG];
  HWY_UNROLL(4)
  for (int r = 0; r < 4; ++r) {
    HWY_UNROLL(16)
    for (int g = 0; g < kG; ++g) o[r][g] = hn::Zero(df);
  }
  int t = 0;
  for (; t + 4 <= count; t += 4) {
    HWY_UNROLL(4)
    for (int r = 0; r < 4; ++r) {
      const VF pv = hn::Set(df, p[t + r]);
      HWY_UNROLL(16)
      for (int g = 0; g < kG; ++g) {
        o[r][g] = hn::MulAdd(pv, LoadKv(v + (t + r) * stride + g * kLanes), o[r][g]);
      }
    }
  }
  HWY_UNROLL(4)
  for (int r = 0; r < 3; ++r) {
    if (t + r >= count) break;
    const VF pv = hn::Set(df, p[t + r]);
    HWY_UNROLL(16)
    for (int g = 0; g < kG; ++g) {
      o[r][g] = hn::MulAdd(pv, LoadKv(v + (t + r) * stride + g * kLanes), o[r][g]);
    }
  }
  HWY_UNROLL(16)
  for (int g = 0; g < kG; ++g) {
    const VF sum = hn::Add(hn::Add(o[0][g], o[1][g]), hn::Add(o[2][g], o[3][g]));
    float* a = acc + d0 + g * kLanes;
    hn::StoreU(hn::MulAdd(hn::LoadU(df, a), cv, sum), df, a);
  }
}

// The per-(row, head) step over one block (attention.h). q and acc: (dp) floats, dp a multiple
// of kLanes, zero past head_dim; ml: (m, l). kC: dp / kLanes when specialised, else 0. Not
// inlined: every caller of one dp runs the same machine code.
template <int kC, typename KT>
HWY_NOINLINE void UpdateBlock(const float* HWY_RESTRICT q, const Block<KT>& blk, int dp,
                              float scale, float* HWY_RESTRICT ml, float* HWY_RESTRICT acc) {
  const DF df;
  alignas(64) float s[kAttnBlock];  // scores, then probabilities
  const int count = blk.count;
  VF qv[kC > 0 ? kC : 1];
  if constexpr (kC > 0) {
    HWY_UNROLL(16)
    for (int c = 0; c < kC; ++c) qv[c] = hn::LoadU(df, q + c * kLanes);
  }
  int j0 = 0;
  for (; j0 < count; j0 += kLanes) {
    const VF dots = TreeDots<kLanes, kC>(qv, q, blk.k + j0 * blk.stride, blk.stride, dp);
    VF sv = hn::Mul(dots, hn::Set(df, scale));
    if (count - j0 < kLanes) {
      sv =
          hn::IfThenElse(hn::FirstN(df, static_cast<size_t>(count - j0)), sv, hn::Set(df, kNegInf));
    }
    hn::Store(sv, df, s + j0);
  }
  const int used = j0;  // multiple of kLanes covering count
  VF vmax = hn::Set(df, kNegInf);
  for (int j = 0; j < used; j += kLanes) vmax = hn::Max(vmax, hn::Load(df, s + j));
  const float m_old = ml[0];
  const float m_new = std::max(m_old, hn::GetLane(hn::MaxOfLanes(df, vmax)));
  const float c = std::exp(m_old - m_new);  // 0 for the first block (m = -inf)
  VF psum = hn::Zero(df);
  for (int j = 0; j < used; j += kLanes) {
    VF p = hn::Exp(df, hn::Sub(hn::Load(df, s + j), hn::Set(df, m_new)));
    if (count - j < kLanes) {
      p = hn::IfThenElseZero(hn::FirstN(df, static_cast<size_t>(count - j)), p);
    }
    hn::Store(p, df, s + j);
    psum = hn::Add(psum, p);
  }
  ml[0] = m_new;
  ml[1] = std::fma(ml[1], c, hn::GetLane(hn::SumOfLanes(df, psum)));
  const VF cv = hn::Set(df, c);
  constexpr int kGroup = kLanes >= 16 ? 4 : 2;  // value vectors in flight per t
  int d0 = 0;
  for (; d0 + kGroup * kLanes <= dp; d0 += kGroup * kLanes)
    AccumulateV<kGroup>(s, blk, d0, cv, acc);
  for (; d0 < dp; d0 += kLanes) AccumulateV<1>(s, blk, d0, cv, acc);
}

template <typename KT>
using UpdateBlockFn = void (*)(const float*, const Block<KT>&, int, float, float*, float*);

template <typename KT>
UpdateBlockFn<KT> SelectUpdateBlock(int dp) {
  switch (dp / kLanes) {
    case 1:
      return &UpdateBlock<1, KT>;
    case 2:
      return &UpdateBlock<2, KT>;
    case 3:
      return &UpdateBlock<3, KT>;
    case 4:
      return &UpdateBlock<4, KT>;
    case 5:
      return &UpdateBlock<5, KT>;
    case 6:
      return &UpdateBlock<6, KT>;
    case 8:
      return &UpdateBlock<8, KT>;
    default:
      return &UpdateBlock<0, KT>;
  }
}

// dst (dp) = row (head_dim) as f32, zero past head_dim.
template <typename KT>
HWY_INLINE void RowToF32(const KT* HWY_RESTRICT row, int head_dim, int dp,
                         float* HWY_RESTRICT dst) {
  const DF df;
  int d = 0;
  if constexpr (std::is_same_v<KT, float>) {
    std::memcpy(dst, row, sizeof(float) * head_dim);
    d = head_dim;
  } else {
    const hn::Rebind<hwy::bfloat16_t, DF> dh;
    for (; d + kLanes <= head_dim; d += kLanes) {
      hn::StoreU(
          hn::PromoteTo(df, hn::LoadU(dh, reinterpret_cast<const hwy::bfloat16_t*>(row + d))), df,
          dst + d);
    }
    for (; d < head_dim; ++d) dst[d] = BF16ToF32(row[d]);
  }
  for (; d < dp; ++d) dst[d] = 0.0f;
}

// Everything one Attention call needs, shared by its tasks.
struct Job {
  const float* q;  // (n, n_heads, head_dim)
  int64_t n;
  int n_heads, group, head_dim, dp;
  const KvLayerView* cache;
  const AttentionMask* mask;
  float scale;
  float* out;               // (n, n_heads, head_dim)
  float* partial_acc;       // (pair-segments, dp)
  float* partial_ml;        // (pair-segments, 2)
  const int64_t* row_base;  // (rows of the round + 1), pair-segment of (row, segment 0) / n_heads
  int64_t round_begin;      // first row of the round
  UpdateBlockFn<float> update_f32;      // UpdateBlock for dp, f32 blocks
  UpdateBlockFn<uint16_t> update_bf16;  // UpdateBlock for dp, bf16 blocks
};

inline int64_t PrefixLen(const Job& job, int64_t i) { return job.mask->prefix_len[i]; }
inline int64_t SeqLen(const Job& job, int64_t i) {
  const AttentionMask& m = *job.mask;
  return m.prefix_len[i] + (m.extra_begin ? m.extra_begin[i + 1] - m.extra_begin[i] : 0);
}
inline int64_t NumSegments(int64_t len) { return (len + kAttnSegment - 1) / kAttnSegment; }

// Pair-segment index of (row i, head h, segment seg).
inline int64_t PairSegment(const Job& job, int64_t i, int h, int64_t seg) {
  return (job.row_base[i - job.round_begin] + seg) * job.n_heads + h;
}

// Rows [r0, r1) of at most one segment, KV head kvh's query heads: out = acc * (1 / l) (what
// CombineRow computes for one segment), or 0 for an empty sequence.
void FinishShortRows(const Job& job, int kvh, int64_t r0, int64_t r1) {
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t len = SeqLen(job, i);
    if (len > kAttnSegment) continue;
    for (int g = 0; g < job.group; ++g) {
      const int h = kvh * job.group + g;
      float* out = job.out + (i * job.n_heads + h) * job.head_dim;
      if (len == 0) {
        std::fill(out, out + job.head_dim, 0.0f);
        continue;
      }
      const int64_t ps = PairSegment(job, i, h, 0);
      const float inv = 1.0f / job.partial_ml[2 * ps + 1];
      const float* acc = job.partial_acc + ps * job.dp;
      for (int d = 0; d < job.head_dim; ++d) out[d] = acc[d] * inv;
    }
  }
}

// One task: KV head kvh, segment seg, rows [r0, r1). local: per-thread floats, at least
// (2 * kAttnBlock + (r1 - r0) * group) * dp.
template <typename KT>
void RunTask(const Job& job, int kvh, int64_t seg, int64_t r0, int64_t r1, float* local) {
  const int dp = job.dp, head_dim = job.head_dim, group = job.group;
  const int64_t seg_lo = seg * kAttnSegment, seg_hi = seg_lo + kAttnSegment;
  const KvLayerView& cache = *job.cache;
  const int64_t head_offset = static_cast<int64_t>(kvh) * cache.capacity * head_dim;
  const KT* k_head = static_cast<const KT*>(cache.k) + head_offset;  // (capacity, head_dim)
  const KT* v_head = static_cast<const KT*>(cache.v) + head_offset;
  float* kbuf = local;                   // (kAttnBlock, dp)
  float* vbuf = kbuf + kAttnBlock * dp;  // (kAttnBlock, dp)
  float* qbuf = vbuf + kAttnBlock * dp;  // (r1 - r0, group, dp)
  int64_t shared_end = seg_lo;           // end of the blocks some row sees whole
  bool any = false;
  for (int64_t i = r0; i < r1; ++i) {
    if (SeqLen(job, i) <= seg_lo) continue;
    any = true;
    shared_end = std::max(shared_end, PrefixLen(job, i) / kAttnBlock * kAttnBlock);
    for (int g = 0; g < group; ++g) {
      const int h = kvh * group + g;
      float* qd = qbuf + ((i - r0) * group + g) * dp;
      std::memcpy(qd, job.q + (i * job.n_heads + h) * head_dim, sizeof(float) * head_dim);
      std::fill(qd + head_dim, qd + dp, 0.0f);
      const int64_t ps = PairSegment(job, i, h, seg);
      job.partial_ml[2 * ps] = kNegInf;
      job.partial_ml[2 * ps + 1] = 0.0f;
      std::fill(job.partial_acc + ps * dp, job.partial_acc + (ps + 1) * dp, 0.0f);
    }
  }
  if (!any) {
    if (seg == 0) FinishShortRows(job, kvh, r0, r1);
    return;
  }
  shared_end = std::min(shared_end, seg_hi);
  auto update_row = [&](int64_t i, const auto& blk) {
    for (int g = 0; g < group; ++g) {
      const int64_t ps = PairSegment(job, i, kvh * group + g, seg);
      const float* qg = qbuf + ((i - r0) * group + g) * dp;
      if constexpr (std::is_same_v<std::decay_t<decltype(blk)>, Block<uint16_t>>) {
        job.update_bf16(qg, blk, dp, job.scale, job.partial_ml + 2 * ps, job.partial_acc + ps * dp);
      } else {
        job.update_f32(qg, blk, dp, job.scale, job.partial_ml + 2 * ps, job.partial_acc + ps * dp);
      }
    }
  };
  // Whole prefix blocks: read once, applied to every row whose prefix covers them.
  for (int64_t b0 = seg_lo; b0 < shared_end; b0 += kAttnBlock) {
    int64_t users = 0;  // (row, head) pairs that see the whole block
    for (int64_t i = r0; i < r1; ++i) users += PrefixLen(job, i) >= b0 + kAttnBlock ? group : 0;
    // In place for f32, and for bf16 read by few pairs; else widened once (same bits either way).
    if (dp == head_dim && (std::is_same_v<KT, float> || users < kWidenMinPairs)) {
      const Block<KT> blk{k_head + b0 * head_dim, v_head + b0 * head_dim, head_dim, kAttnBlock};
      for (int64_t i = r0; i < r1; ++i) {
        if (PrefixLen(job, i) >= b0 + kAttnBlock) update_row(i, blk);
      }
    } else {  // f32 copy (padded to dp)
      for (int t = 0; t < kAttnBlock; ++t) {
        RowToF32(k_head + (b0 + t) * head_dim, head_dim, dp, kbuf + t * dp);
        RowToF32(v_head + (b0 + t) * head_dim, head_dim, dp, vbuf + t * dp);
      }
      const Block<float> blk{kbuf, vbuf, dp, kAttnBlock};
      for (int64_t i = r0; i < r1; ++i) {
        if (PrefixLen(job, i) >= b0 + kAttnBlock) update_row(i, blk);
      }
    }
  }
  // Each row's own blocks in this segment: the partial prefix block, then its extra slots.
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t prefix = PrefixLen(job, i), len = SeqLen(job, i);
    const int32_t* extra =
        job.mask->extra_begin ? job.mask->extra_slots + job.mask->extra_begin[i] : nullptr;
    const int64_t end = std::min(len, seg_hi);
    for (int64_t b0 = std::max(prefix / kAttnBlock * kAttnBlock, seg_lo); b0 < end;
         b0 += kAttnBlock) {
      const int count = static_cast<int>(std::min<int64_t>(kAttnBlock, len - b0));
      for (int t = 0; t < count; ++t) {
        const int64_t j = b0 + t;
        const int64_t slot = j < prefix ? j : extra[j - prefix];
        RowToF32(k_head + slot * head_dim, head_dim, dp, kbuf + t * dp);
        RowToF32(v_head + slot * head_dim, head_dim, dp, vbuf + t * dp);
      }
      update_row(i, Block<float>{kbuf, vbuf, dp, count});
    }
  }
  if (seg == 0) FinishShortRows(job, kvh, r0, r1);
}

// out for row i of more than one segment, all heads: the segment partials combined in segment
// order (rows of one segment were finished by their task, FinishShortRows).
void CombineRow(const Job& job, int64_t i, float* tmp /* (dp) */) {
  const DF df;
  const int dp = job.dp;
  const int64_t n_seg = NumSegments(SeqLen(job, i));
  if (n_seg <= 1) return;
  for (int h = 0; h < job.n_heads; ++h) {
    float* out = job.out + (i * job.n_heads + h) * job.head_dim;
    const int64_t ps0 = PairSegment(job, i, h, 0);
    float m = kNegInf;
    for (int64_t s = 0; s < n_seg; ++s)
      m = std::max(m, job.partial_ml[2 * (ps0 + s * job.n_heads)]);
    float l = 0.0f;
    std::fill(tmp, tmp + dp, 0.0f);
    for (int64_t s = 0; s < n_seg; ++s) {
      const int64_t ps = ps0 + s * job.n_heads;
      const float w = std::exp(job.partial_ml[2 * ps] - m);
      l = std::fma(job.partial_ml[2 * ps + 1], w, l);
      const float* a = job.partial_acc + ps * dp;
      for (int d = 0; d < dp; d += kLanes) {
        hn::StoreU(hn::MulAdd(hn::LoadU(df, a + d), hn::Set(df, w), hn::LoadU(df, tmp + d)), df,
                   tmp + d);
      }
    }
    const float inv = 1.0f / l;
    for (int d = 0; d < job.head_dim; ++d) out[d] = tmp[d] * inv;
  }
}

template <typename KT>
void AttentionT(ThreadPool& pool, AttentionScratch& scratch, Job& job) {
  const int n_kv = job.cache->n_kv_heads, dp = job.dp;
  const int n_threads = pool.NumThreads();
  const size_t local_floats =
      static_cast<size_t>(2 * kAttnBlock + kAttnRowChunk * job.group + 1) * dp;
  if (static_cast<int>(scratch.local.size()) < n_threads) scratch.local.resize(n_threads);
  for (auto& l : scratch.local) {
    if (l.size() < local_floats) l.assign(local_floats, 0.0f);
  }
  auto grow = [](auto& v, size_t need) {
    if (v.size() < need) v.resize(std::max(need, v.size() + v.size() / 2));
  };
  grow(scratch.row_base, static_cast<size_t>(job.n) + 1);
  for (int64_t ra = 0; ra < job.n;) {
    // A round: rows [ra, rb) whose partials fit kRoundPartialFloats (at least one row).
    int64_t rb = ra, pair_segments = 0, max_seg = 0;
    scratch.row_base[0] = 0;
    while (rb < job.n) {
      const int64_t ns = NumSegments(SeqLen(job, rb));
      if (rb > ra && (pair_segments + ns) * job.n_heads * dp > kRoundPartialFloats) break;
      pair_segments += ns;
      max_seg = std::max(max_seg, ns);
      scratch.row_base[++rb - ra] = pair_segments;
    }
    grow(scratch.partial_acc, static_cast<size_t>(pair_segments * job.n_heads * dp));
    grow(scratch.partial_ml, static_cast<size_t>(pair_segments * job.n_heads * 2));
    job.partial_acc = scratch.partial_acc.data();
    job.partial_ml = scratch.partial_ml.data();
    job.row_base = scratch.row_base.data();
    job.round_begin = ra;
    const int64_t n_chunks = (rb - ra + kAttnRowChunk - 1) / kAttnRowChunk;
    // Task order: chunk, then KV head, then segment.
    const int64_t n_seg = std::max<int64_t>(max_seg, 1);  // segment 0 also zeroes empty rows
    pool.ParallelFor(n_chunks * n_kv * n_seg, [&](int64_t task, int thread) {
      const int64_t seg = task % n_seg;
      const int kvh = static_cast<int>(task / n_seg % n_kv);
      const int64_t r0 = ra + task / (n_seg * n_kv) * kAttnRowChunk;
      RunTask<KT>(job, kvh, seg, r0, std::min(rb, r0 + kAttnRowChunk),
                  scratch.local[thread].data());
    });
    if (max_seg <= 1) {
      ra = rb;
      continue;
    }
    pool.ParallelFor(rb - ra, [&](int64_t r, int thread) {
      CombineRow(job, ra + r, scratch.local[thread].data());
    });
    ra = rb;
  }
}

void AttentionImpl(ThreadPool& pool, AttentionScratch& scratch, const float* q, int64_t n,
                   int n_heads, const KvLayerView& cache, const AttentionMask& mask, float scale,
                   float* out) {
  if (n <= 0) return;
  Job job{};
  job.q = q;
  job.n = n;
  job.n_heads = n_heads;
  job.group = n_heads / cache.n_kv_heads;
  job.head_dim = cache.head_dim;
  job.dp = (cache.head_dim + kLanes - 1) / kLanes * kLanes;
  job.cache = &cache;
  job.mask = &mask;
  job.scale = scale;
  job.out = out;
  job.update_f32 = SelectUpdateBlock<float>(job.dp);
  job.update_bf16 = SelectUpdateBlock<uint16_t>(job.dp);
  if (cache.dtype == DType::kBF16) {
    AttentionT<uint16_t>(pool, scratch, job);
  } else {
    AttentionT<float>(pool, scratch, job);
  }
}

}  // namespace HWY_NAMESPACE
}  // namespace ts::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ts::cpu {

HWY_EXPORT(AttentionImpl);

void Attention(ThreadPool& pool, AttentionScratch& scratch, const float* q, int64_t n, int n_heads,
               const KvLayerView& cache, const AttentionMask& mask, float scale, float* out) {
  HWY_DYNAMIC_DISPATCH(AttentionImpl)(pool, scratch, q, n, n_heads, cache, mask, scale, out);
}

}  // namespace ts::cpu
#endif  // HWY_ONCE
