// Dense NT matrix product, see dense_gemm.h for the blocking and the determinism argument.

#ifndef HWY_WANT_AVX3_DL
#define HWY_WANT_AVX3_DL
#endif

#undef HWY_TARGET_INCLUDE
#define HWY_TARGET_INCLUDE "kernels/cpu/dense_gemm.cc"
// foreach_target.h must come first, then highway.h.
// clang-format off
#include "hwy/foreach_target.h"  // IWYU pragma: keep
#include "hwy/highway.h"
// clang-format on

#include "kernels/cpu/dense_gemm.h"

#include <algorithm>

#ifndef TS_DENSE_GEMM_ARGS
#define TS_DENSE_GEMM_ARGS
namespace ts::cpu::dense_gemm {

constexpr int kMR = 4;             // A rows per micro-kernel
constexpr int kNR = 3;             // B rows per micro-kernel
constexpr int64_t kKChunk = 1024;  // k elements per chunk
constexpr int64_t kNTile = 48;     // B rows per task

template <typename T>
struct Args {
  int64_t m, n, k;
  const T* a;
  int64_t lda;
  const T* b;
  int64_t ldb;
  T* c;
  int64_t ldc;
};

}  // namespace ts::cpu::dense_gemm
#endif  // TS_DENSE_GEMM_ARGS

HWY_BEFORE_NAMESPACE();
namespace ts::cpu {
namespace HWY_NAMESPACE {
namespace hn = hwy::HWY_NAMESPACE;
using dense_gemm::Args;

// c[i * ldc + j] (+)= dot(a row i, b row j) over k elements, for i < MR, j < NR.
template <typename T, int MR, int NR>
HWY_INLINE void MicroKernel(const T* HWY_RESTRICT a, int64_t lda, const T* HWY_RESTRICT b,
                            int64_t ldb, int64_t k, T* HWY_RESTRICT c, int64_t ldc,
                            bool accumulate) {
  const hn::CappedTag<T, 32 / sizeof(T)> d;  // 256-bit at most: see the header
  using V = hn::Vec<decltype(d)>;
  const int64_t L = static_cast<int64_t>(hn::Lanes(d));
  V acc[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 3
    for (int j = 0; j < NR; ++j) acc[i][j] = hn::Zero(d);
  }
  int64_t kk = 0;
  for (; kk + L <= k; kk += L) {
    V bv[NR];
#pragma GCC unroll 3
    for (int j = 0; j < NR; ++j) bv[j] = hn::LoadU(d, b + j * ldb + kk);
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      const V av = hn::LoadU(d, a + i * lda + kk);
#pragma GCC unroll 3
      for (int j = 0; j < NR; ++j) acc[i][j] = hn::MulAdd(av, bv[j], acc[i][j]);
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 3
    for (int j = 0; j < NR; ++j) {
      T s = hn::GetLane(hn::SumOfLanes(d, acc[i][j]));
      for (int64_t t = kk; t < k; ++t) s += a[i * lda + t] * b[j * ldb + t];
      T& out = c[i * ldc + j];
      out = accumulate ? out + s : s;
    }
  }
}

template <typename T, int MR>
HWY_INLINE void MicroKernelNr(int nr, const T* a, int64_t lda, const T* b, int64_t ldb, int64_t k,
                              T* c, int64_t ldc, bool accumulate) {
  switch (nr) {
    case 3:
      MicroKernel<T, MR, 3>(a, lda, b, ldb, k, c, ldc, accumulate);
      break;
    case 2:
      MicroKernel<T, MR, 2>(a, lda, b, ldb, k, c, ldc, accumulate);
      break;
    default:
      MicroKernel<T, MR, 1>(a, lda, b, ldb, k, c, ldc, accumulate);
      break;
  }
}

// B rows [j0, j1), k elements [k0, k0 + kc), all A rows.
template <typename T>
HWY_INLINE void Tile(const Args<T>& g, int64_t j0, int64_t j1, int64_t k0, int64_t kc,
                     bool accumulate) {
  for (int64_t j = j0; j < j1; j += dense_gemm::kNR) {
    const int nr = static_cast<int>(std::min<int64_t>(dense_gemm::kNR, j1 - j));
    const T* b = g.b + j * g.ldb + k0;
    for (int64_t i = 0; i < g.m; i += dense_gemm::kMR) {
      const int mr = static_cast<int>(std::min<int64_t>(dense_gemm::kMR, g.m - i));
      const T* a = g.a + i * g.lda + k0;
      T* c = g.c + i * g.ldc + j;
      switch (mr) {
        case 4:
          MicroKernelNr<T, 4>(nr, a, g.lda, b, g.ldb, kc, c, g.ldc, accumulate);
          break;
        case 3:
          MicroKernelNr<T, 3>(nr, a, g.lda, b, g.ldb, kc, c, g.ldc, accumulate);
          break;
        case 2:
          MicroKernelNr<T, 2>(nr, a, g.lda, b, g.ldb, kc, c, g.ldc, accumulate);
          break;
        default:
          MicroKernelNr<T, 1>(nr, a, g.lda, b, g.ldb, kc, c, g.ldc, accumulate);
          break;
      }
    }
  }
}

void TileF32(const Args<float>& g, int64_t j0, int64_t j1, int64_t k0, int64_t kc, bool acc) {
  Tile<float>(g, j0, j1, k0, kc, acc);
}
void TileF64(const Args<double>& g, int64_t j0, int64_t j1, int64_t k0, int64_t kc, bool acc) {
  Tile<double>(g, j0, j1, k0, kc, acc);
}
const char* GemmTargetName() { return hwy::TargetName(HWY_TARGET); }

}  // namespace HWY_NAMESPACE
}  // namespace ts::cpu
HWY_AFTER_NAMESPACE();

#if HWY_ONCE
namespace ts::cpu {

HWY_EXPORT(TileF32);
HWY_EXPORT(TileF64);
HWY_EXPORT(GemmTargetName);

namespace {

template <typename T, typename TileFn>
void Run(TileFn tile, ThreadPool* pool, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
         const T* b, int64_t ldb, T* c, int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate) {
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, T(0));
    }
    return;
  }
  const dense_gemm::Args<T> g{m, n, k, a, lda, b, ldb, c, ldc};
  const int64_t n_tiles = (n + dense_gemm::kNTile - 1) / dense_gemm::kNTile;
  for (int64_t k0 = 0; k0 < k; k0 += dense_gemm::kKChunk) {
    const int64_t kc = std::min(dense_gemm::kKChunk, k - k0);
    const bool acc = accumulate || k0 > 0;
    auto task = [&](int64_t t, int /*thread*/) {
      tile(g, t * dense_gemm::kNTile, std::min(n, (t + 1) * dense_gemm::kNTile), k0, kc, acc);
    };
    if (pool != nullptr) {
      pool->ParallelFor(n_tiles, task);
    } else {
      for (int64_t t = 0; t < n_tiles; ++t) task(t, 0);
    }
  }
}

}  // namespace

void DenseGemmNT(ThreadPool* pool, int64_t m, int64_t n, int64_t k, const float* a, int64_t lda,
                 const float* b, int64_t ldb, float* c, int64_t ldc, bool accumulate) {
  Run(HWY_DYNAMIC_DISPATCH(TileF32), pool, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
}

void DenseGemmNT(ThreadPool* pool, int64_t m, int64_t n, int64_t k, const double* a, int64_t lda,
                 const double* b, int64_t ldb, double* c, int64_t ldc, bool accumulate) {
  Run(HWY_DYNAMIC_DISPATCH(TileF64), pool, m, n, k, a, lda, b, ldb, c, ldc, accumulate);
}

const char* DenseGemmTargetName() { return HWY_DYNAMIC_DISPATCH(GemmTargetName)(); }

}  // namespace ts::cpu
#endif  // HWY_ONCE
