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

// ---- one block of keys against many (row, head) pairs -------------------------------------
//
// The block is kAttnBlock logical keys, `count` of them valid (count < kAttnBlock only for a
// row's last block). K is held transposed, kt (head_dim, kAttnBlock) f32, so the scores of one
// pair are whole vectors with one key per lane; V is read as rows (t, dp) f32 with `v_stride`.
// Per pair p (query q_p already multiplied by the softmax scale, state m, l, acc):
//   s_t  = q[0] k_t[0];  s_t = fma(q[d], k_t[d], s_t) for d = 1 .. head_dim - 1   (lane t)
//   s_t  = -inf for t >= count
//   m'   = max(m, max_t s_t);  c = exp(m - m')  (Highway Exp; 0 while m = -inf)
//   p_t  = exp(s_t - m')   (Highway Exp, lane-wise);  l = fma(l, c, sum_t p_t)
//   acc  = acc * c;  acc = fma(p_t, v_t, acc) for t = 0 .. count - 1 in order   (lane = d)
// Every lane's chain is fixed by the pair's own data: register blocking over several pairs (a
// GEMM tile of kQkPairs pairs x the block's keys, then of kPvPairs pairs x kPvVecs value vectors)
// only decides which lanes run side by side, so a pair gets the same bits alone, among 64 rows,
// or in a tail tile. Scores and value products do not depend on the vector width; sum_t p_t
// (vector adds, then one lane reduction) does.

constexpr int kKeyVecs = kAttnBlock / kLanes;                 // vectors of one pair's scores
constexpr int kQkPairs = kKeyVecs >= 12 ? 1 : 12 / kKeyVecs;  // QK tile: pairs x kKeyVecs accs
constexpr int kPvVecs = 4;                                    // PV tile: value vectors per pair
constexpr int kPvPairs = 3;                                   // PV tile: pairs

// The active pairs of one block: query, state and score row of each.
struct PairList {
  const float** q;  // (n) scaled queries, head_dim floats each
  float** ml;       // (n) m, l
  float** acc;      // (n) dp floats
  float* s;         // (n, kAttnBlock) scores, then probabilities
  float* c;         // (n) rescale factor of each pair's acc
  int n = 0;
};

// Scores of kP pairs: s[i][t] = q_i . k_t, one FMA chain over d per lane.
template <int kP>
HWY_INLINE void QkTile(const float* const* q, const float* HWY_RESTRICT kt, int head_dim,
                       float* HWY_RESTRICT s) {
  const DF df;
  VF a[kP][kKeyVecs];
  HWY_UNROLL(16)
  for (int i = 0; i < kP; ++i) {
    const VF qd = hn::Set(df, q[i][0]);
    HWY_UNROLL(16)
    for (int j = 0; j < kKeyVecs; ++j) a[i][j] = hn::Mul(qd, hn::Load(df, kt + j * kLanes));
  }
  for (int d = 1; d < head_dim; ++d) {
    // kP broadcasts, then one key vector at a time: kP * kKeyVecs + kP + 1 registers (16 with
    // AVX2's tile of 3 x 4).
    const float* row = kt + d * kAttnBlock;
    VF qd[kP];
    HWY_UNROLL(16)
    for (int i = 0; i < kP; ++i) qd[i] = hn::Set(df, q[i][d]);
    HWY_UNROLL(16)
    for (int j = 0; j < kKeyVecs; ++j) {
      const VF k = hn::Load(df, row + j * kLanes);
      HWY_UNROLL(16)
      for (int i = 0; i < kP; ++i) a[i][j] = hn::MulAdd(qd[i], k, a[i][j]);
    }
  }
  HWY_UNROLL(16)
  for (int i = 0; i < kP; ++i) {
    HWY_UNROLL(16)
    for (int j = 0; j < kKeyVecs; ++j) hn::Store(a[i][j], df, s + i * kAttnBlock + j * kLanes);
  }
}

template <int kP = kQkPairs>
HWY_INLINE void QkTail(const float* const* q, const float* kt, int head_dim, float* s, int left) {
  if constexpr (kP > 1) {
    if (left < kP) return QkTail<kP - 1>(q, kt, head_dim, s, left);
  }
  QkTile<kP>(q, kt, head_dim, s);
}

// acc_i[d0, d0 + kV * kLanes) = acc_i * c_i, then += p_i[t] v_t for t < count, for kP pairs.
// One vector of a value row: f32 as stored, or bf16 widened (exactly) on the way in.
template <typename VT>
HWY_INLINE VF LoadValues(DF df, const VT* HWY_RESTRICT p) {
  if constexpr (std::is_same_v<VT, float>) {
    return hn::LoadU(df, p);
  } else {
    return hn::PromoteTo(df, hn::LoadU(hn::Rebind<hwy::bfloat16_t, DF>(), p));
  }
}

template <int kP, int kV, typename VT>
HWY_INLINE void PvTile(float* const* acc, const float* const* p, const float* c,
                       const VT* HWY_RESTRICT v, int64_t v_stride, int count, int d0) {
  const DF df;
  VF a[kP][kV];
  HWY_UNROLL(16)
  for (int i = 0; i < kP; ++i) {
    const VF cv = hn::Set(df, c[i]);
    HWY_UNROLL(16)
    for (int j = 0; j < kV; ++j) a[i][j] = hn::Mul(hn::LoadU(df, acc[i] + d0 + j * kLanes), cv);
  }
  for (int t = 0; t < count; ++t) {
    // kP broadcasts, then one value vector at a time (16 registers with AVX2's tile of 3 x 4).
    const VT* row = v + t * v_stride + d0;
    VF pt[kP];
    HWY_UNROLL(16)
    for (int i = 0; i < kP; ++i) pt[i] = hn::Set(df, p[i][t]);
    HWY_UNROLL(16)
    for (int j = 0; j < kV; ++j) {
      const VF vv = LoadValues(df, row + j * kLanes);
      HWY_UNROLL(16)
      for (int i = 0; i < kP; ++i) a[i][j] = hn::MulAdd(pt[i], vv, a[i][j]);
    }
  }
  HWY_UNROLL(16)
  for (int i = 0; i < kP; ++i) {
    HWY_UNROLL(16)
    for (int j = 0; j < kV; ++j) hn::StoreU(a[i][j], df, acc[i] + d0 + j * kLanes);
  }
}

template <int kP, typename VT>
HWY_INLINE void PvPairs(float* const* acc, const float* const* p, const float* c, const VT* v,
                        int64_t v_stride, int count, int dp) {
  int d0 = 0;
  for (; d0 + kPvVecs * kLanes <= dp; d0 += kPvVecs * kLanes) {
    PvTile<kP, kPvVecs>(acc, p, c, v, v_stride, count, d0);
  }
  for (; d0 < dp; d0 += kLanes) PvTile<kP, 1>(acc, p, c, v, v_stride, count, d0);
}

template <typename VT, int kP = kPvPairs>
HWY_INLINE void PvTail(float* const* acc, const float* const* p, const float* c, const VT* v,
                       int64_t v_stride, int count, int dp, int left) {
  if constexpr (kP > 1) {
    if (left < kP) return PvTail<VT, kP - 1>(acc, p, c, v, v_stride, count, dp, left);
  }
  PvPairs<kP>(acc, p, c, v, v_stride, count, dp);
}

// Online-softmax step of one pair over its scores s (kAttnBlock, count valid): s becomes p.
HWY_INLINE void SoftmaxStep(float* HWY_RESTRICT s, int count, float* HWY_RESTRICT ml,
                            float* HWY_RESTRICT c) {
  const DF df;
  VF sv[kKeyVecs];
  VF vmax = hn::Set(df, kNegInf);
  HWY_UNROLL(16)
  for (int j = 0; j < kKeyVecs; ++j) {
    sv[j] = hn::Load(df, s + j * kLanes);
    const int valid = count - j * kLanes;
    if (valid < kLanes) {
      sv[j] = hn::IfThenElse(hn::FirstN(df, static_cast<size_t>(std::max(valid, 0))), sv[j],
                             hn::Set(df, kNegInf));
    }
    vmax = hn::Max(vmax, sv[j]);
  }
  const float m_old = ml[0];
  const float m_new = std::max(m_old, hn::GetLane(hn::MaxOfLanes(df, vmax)));
  // 0 for the first block (m = -inf: Exp is 0 below -104).
  *c = hn::GetLane(hn::Exp(df, hn::Set(df, m_old - m_new)));
  const VF mv = hn::Set(df, m_new);
  VF psum = hn::Zero(df);
  HWY_UNROLL(16)
  for (int j = 0; j < kKeyVecs; ++j) {
    VF p = hn::Exp(df, hn::Sub(sv[j], mv));
    const int valid = count - j * kLanes;
    if (valid < kLanes) {
      p = hn::IfThenElseZero(hn::FirstN(df, static_cast<size_t>(std::max(valid, 0))), p);
    }
    hn::Store(p, df, s + j * kLanes);
    psum = hn::Add(psum, p);
  }
  ml[0] = m_new;
  ml[1] = std::fma(ml[1], *c, hn::GetLane(hn::SumOfLanes(df, psum)));
}

// The block step for every pair of `pairs` (see above). Not inlined: every caller runs the same
// machine code, whether the block came from the cache or was gathered.
// V is read in place (f32, or bf16 widened exactly as it is loaded) or from a widened copy: the
// products are the same.
template <typename VT>
HWY_NOINLINE void UpdatePairs(const PairList& pairs, const float* HWY_RESTRICT kt, int head_dim,
                              const VT* HWY_RESTRICT v, int64_t v_stride, int dp, int count) {
  for (int i = 0; i < pairs.n; i += kQkPairs) {
    QkTail(pairs.q + i, kt, head_dim, pairs.s + i * kAttnBlock, pairs.n - i);
  }
  for (int i = 0; i < pairs.n; ++i) {
    SoftmaxStep(pairs.s + i * kAttnBlock, count, pairs.ml[i], pairs.c + i);
  }
  const float* p[kPvPairs];
  for (int i = 0; i < pairs.n; i += kPvPairs) {
    const int take = std::min(kPvPairs, pairs.n - i);
    for (int j = 0; j < take; ++j) p[j] = pairs.s + (i + j) * kAttnBlock;
    PvTail<VT>(pairs.acc + i, p, pairs.c + i, v, v_stride, count, dp, take);
  }
}

// Column t of kt (head_dim, kAttnBlock): dims [d0, d1) of the key `row`, widened to f32.
template <typename KT>
HWY_INLINE void PutKeyColumn(const KT* HWY_RESTRICT row, int d0, int d1, int t,
                             float* HWY_RESTRICT kt) {
  for (int d = d0; d < d1; ++d) {
    if constexpr (std::is_same_v<KT, float>) {
      kt[d * kAttnBlock + t] = row[d];
    } else {
      kt[d * kAttnBlock + t] = BF16ToF32(row[d]);
    }
  }
}

// kt (head_dim, kAttnBlock) = the kAttnBlock keys at k (rows `stride` apart), widened to f32.
template <typename KT>
HWY_INLINE void TransposeBlock(const KT* HWY_RESTRICT k, int64_t stride, int head_dim,
                               float* HWY_RESTRICT kt) {
  int d0 = 0;
#if HWY_ARCH_X86 && HWY_TARGET <= HWY_AVX2
  // 8 x 8 tiles: 8 keys (rows) by 8 dims -> 8 dims (rows of kt) by 8 keys.
  for (; d0 + 8 <= head_dim; d0 += 8) {
    for (int t0 = 0; t0 < kAttnBlock; t0 += 8) {
      __m256 r[8];
      for (int i = 0; i < 8; ++i) {
        const KT* src = k + (t0 + i) * stride + d0;
        if constexpr (std::is_same_v<KT, float>) {
          r[i] = _mm256_loadu_ps(src);
        } else {
          const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
          r[i] = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
        }
      }
      const __m256 t0a = _mm256_unpacklo_ps(r[0], r[1]), t1a = _mm256_unpackhi_ps(r[0], r[1]);
      const __m256 t2a = _mm256_unpacklo_ps(r[2], r[3]), t3a = _mm256_unpackhi_ps(r[2], r[3]);
      const __m256 t4a = _mm256_unpacklo_ps(r[4], r[5]), t5a = _mm256_unpackhi_ps(r[4], r[5]);
      const __m256 t6a = _mm256_unpacklo_ps(r[6], r[7]), t7a = _mm256_unpackhi_ps(r[6], r[7]);
      const __m256 u0 = _mm256_shuffle_ps(t0a, t2a, 0x44), u1 = _mm256_shuffle_ps(t0a, t2a, 0xEE);
      const __m256 u2 = _mm256_shuffle_ps(t1a, t3a, 0x44), u3 = _mm256_shuffle_ps(t1a, t3a, 0xEE);
      const __m256 u4 = _mm256_shuffle_ps(t4a, t6a, 0x44), u5 = _mm256_shuffle_ps(t4a, t6a, 0xEE);
      const __m256 u6 = _mm256_shuffle_ps(t5a, t7a, 0x44), u7 = _mm256_shuffle_ps(t5a, t7a, 0xEE);
      float* dst = kt + d0 * kAttnBlock + t0;
      _mm256_store_ps(dst + 0 * kAttnBlock, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_store_ps(dst + 1 * kAttnBlock, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_store_ps(dst + 2 * kAttnBlock, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_store_ps(dst + 3 * kAttnBlock, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_store_ps(dst + 4 * kAttnBlock, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_store_ps(dst + 5 * kAttnBlock, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_store_ps(dst + 6 * kAttnBlock, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_store_ps(dst + 7 * kAttnBlock, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
  }
#endif
  for (int t = 0; t < kAttnBlock; ++t) PutKeyColumn(k + t * stride, d0, head_dim, t, kt);
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

// dst (dp) = row (head_dim) widened to f32, zero past head_dim.
template <typename KT>
HWY_INLINE void RowToF32(const KT* HWY_RESTRICT row, int head_dim, int dp,
                         float* HWY_RESTRICT dst) {
  int d = 0;
  if constexpr (std::is_same_v<KT, float>) {
    std::memcpy(dst, row, sizeof(float) * head_dim);
    d = head_dim;
  } else {
    const DF df;
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

// A thread's working memory for one task, carved from its AttentionThreadScratch.
struct TaskBuffers {
  float* kt;    // (head_dim, kAttnBlock) transposed keys, vector-aligned
  float* vbuf;  // (kAttnBlock, dp) widened or gathered values
  float* qbuf;  // (rows, group, head_dim) scaled queries
  PairList pairs;
};

TaskBuffers CarveBuffers(AttentionThreadScratch& ts, int64_t pairs, int head_dim, int dp) {
  constexpr size_t kAlign = 64 / sizeof(float);
  auto up = [](size_t n) { return (n + kAlign - 1) / kAlign * kAlign; };
  const size_t kt = up(static_cast<size_t>(head_dim) * kAttnBlock);
  const size_t vb = up(static_cast<size_t>(kAttnBlock) * dp);
  const size_t qb = up(static_cast<size_t>(pairs) * head_dim);
  const size_t sb = up(static_cast<size_t>(pairs) * kAttnBlock);
  const size_t need = kt + vb + qb + sb + up(pairs) + kAlign;
  if (ts.floats.size() < need) ts.floats.resize(need);
  if (ts.q.size() < static_cast<size_t>(pairs)) {
    ts.q.resize(pairs);
    ts.ml.resize(pairs);
    ts.acc.resize(pairs);
  }
  float* base = ts.floats.data();
  base += (kAlign - reinterpret_cast<uintptr_t>(base) / sizeof(float) % kAlign) % kAlign;
  TaskBuffers b;
  b.kt = base;
  b.vbuf = b.kt + kt;
  b.qbuf = b.vbuf + vb;
  b.pairs.s = b.qbuf + qb;
  b.pairs.c = b.pairs.s + sb;
  b.pairs.q = ts.q.data();
  b.pairs.ml = ts.ml.data();
  b.pairs.acc = ts.acc.data();
  return b;
}

// One task: KV head kvh, segment seg, rows [r0, r1).
template <typename KT>
void RunTask(const Job& job, int kvh, int64_t seg, int64_t r0, int64_t r1,
             AttentionThreadScratch& scratch) {
  const int dp = job.dp, head_dim = job.head_dim, group = job.group;
  const int64_t seg_lo = seg * kAttnSegment, seg_hi = seg_lo + kAttnSegment;
  const KvLayerView& cache = *job.cache;
  const int64_t head_offset = static_cast<int64_t>(kvh) * cache.capacity * head_dim;
  const KT* k_head = static_cast<const KT*>(cache.k) + head_offset;  // (capacity, head_dim)
  const KT* v_head = static_cast<const KT*>(cache.v) + head_offset;
  TaskBuffers buf = CarveBuffers(scratch, (r1 - r0) * group, head_dim, dp);
  PairList& pairs = buf.pairs;
  int64_t shared_end = seg_lo;  // end of the blocks some row sees whole
  bool any = false;
  for (int64_t i = r0; i < r1; ++i) {
    if (SeqLen(job, i) <= seg_lo) continue;
    any = true;
    shared_end = std::max(shared_end, PrefixLen(job, i) / kAttnBlock * kAttnBlock);
    for (int g = 0; g < group; ++g) {
      const int h = kvh * group + g;
      float* qd = buf.qbuf + ((i - r0) * group + g) * head_dim;
      const float* qs = job.q + (i * job.n_heads + h) * head_dim;
      for (int d = 0; d < head_dim; ++d) qd[d] = qs[d] * job.scale;
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
  auto add_row = [&](int64_t i) {
    for (int g = 0; g < group; ++g) {
      const int64_t ps = PairSegment(job, i, kvh * group + g, seg);
      pairs.q[pairs.n] = buf.qbuf + ((i - r0) * group + g) * head_dim;
      pairs.ml[pairs.n] = job.partial_ml + 2 * ps;
      pairs.acc[pairs.n] = job.partial_acc + ps * dp;
      ++pairs.n;
    }
  };
  // Values are read in place (bf16 widened as it is loaded) when a vector never reaches past a
  // row (dp == head_dim); else widened and zero-padded into vbuf first. Same values, same bits.
  // In place against the widened copy, one SmolLM2 layer, bf16, 2 threads, Zen 4 (the copy
  // cost a store and a reload per value): 100K context 1 row 5.4 vs 7.4-8.1 ms, 16 rows 31.1
  // vs 35.6 ms, 41 rows 75.0 vs 83.5 ms; 16K context 16 rows 4.5 vs 5.2 ms.
  const bool v_rows_fit = dp == head_dim;
  // Whole prefix blocks: read once, applied to every row whose prefix covers them.
  for (int64_t b0 = seg_lo; b0 < shared_end; b0 += kAttnBlock) {
    pairs.n = 0;
    for (int64_t i = r0; i < r1; ++i) {
      if (PrefixLen(job, i) >= b0 + kAttnBlock) add_row(i);
    }
    if (pairs.n == 0) continue;
    TransposeBlock(k_head + b0 * head_dim, head_dim, head_dim, buf.kt);
    if (v_rows_fit) {
      if constexpr (std::is_same_v<KT, float>) {
        UpdatePairs(pairs, buf.kt, head_dim, v_head + b0 * head_dim, head_dim, dp, kAttnBlock);
      } else {
        UpdatePairs(pairs, buf.kt, head_dim,
                    reinterpret_cast<const hwy::bfloat16_t*>(v_head + b0 * head_dim), head_dim, dp,
                    kAttnBlock);
      }
    } else {
      for (int t = 0; t < kAttnBlock; ++t) {
        RowToF32(v_head + (b0 + t) * head_dim, head_dim, dp, buf.vbuf + t * dp);
      }
      UpdatePairs(pairs, buf.kt, head_dim, static_cast<const float*>(buf.vbuf), dp, dp, kAttnBlock);
    }
  }
  // Each row's own blocks in this segment: the partial prefix block, then its extra slots,
  // gathered (same arithmetic as a block read in place: the values are the same).
  for (int64_t i = r0; i < r1; ++i) {
    const int64_t prefix = PrefixLen(job, i), len = SeqLen(job, i);
    const int32_t* extra =
        job.mask->extra_begin ? job.mask->extra_slots + job.mask->extra_begin[i] : nullptr;
    const int64_t end = std::min(len, seg_hi);
    pairs.n = 0;
    add_row(i);
    for (int64_t b0 = std::max(prefix / kAttnBlock * kAttnBlock, seg_lo); b0 < end;
         b0 += kAttnBlock) {
      const int count = static_cast<int>(std::min<int64_t>(kAttnBlock, len - b0));
      for (int t = 0; t < count; ++t) {
        const int64_t j = b0 + t;
        const int64_t slot = j < prefix ? j : extra[j - prefix];
        PutKeyColumn(k_head + slot * head_dim, 0, head_dim, t, buf.kt);
        RowToF32(v_head + slot * head_dim, head_dim, dp, buf.vbuf + t * dp);
      }
      for (int d = 0; d < head_dim; ++d) {  // keys past count: zeros (their scores are dropped)
        std::fill(buf.kt + d * kAttnBlock + count, buf.kt + (d + 1) * kAttnBlock, 0.0f);
      }
      UpdatePairs(pairs, buf.kt, head_dim, static_cast<const float*>(buf.vbuf), dp, dp, count);
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
  if (static_cast<int>(scratch.local.size()) < n_threads) scratch.local.resize(n_threads);
  for (auto& l : scratch.local) {
    if (l.combine.size() < static_cast<size_t>(dp)) l.combine.resize(dp);
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
      RunTask<KT>(job, kvh, seg, r0, std::min(rb, r0 + kAttnRowChunk), scratch.local[thread]);
    });
    if (max_seg <= 1) {
      ra = rb;
      continue;
    }
    pool.ParallelFor(rb - ra, [&](int64_t r, int thread) {
      CombineRow(job, ra + r, scratch.local[thread].combine.data());
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
