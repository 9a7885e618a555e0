// Dense NT matrix product, see dense_gemm.h for the blocking and the determinism argument.
#include "runtime/train/dense_gemm.h"

#include <algorithm>
#include <cstring>
#include <type_traits>

namespace ts::train {
namespace {

constexpr int kMR = 4;             // A rows per micro-kernel
constexpr int kNR = 3;             // B rows per micro-kernel
constexpr int64_t kKChunk = 1024;  // k elements per chunk
constexpr int64_t kNTile = 48;     // B rows per task

#define TS_GEMM_INLINE inline __attribute__((always_inline))

// 32-byte vectors (GCC/Clang vector extensions): the compiler maps them to one ymm register in
// the AVX clone and to two xmm registers in the baseline one.
template <typename T>
struct Vec;
template <>
struct Vec<float> {
  typedef float Type __attribute__((vector_size(32)));
  static constexpr int kLanes = 8;
};
template <>
struct Vec<double> {
  typedef double Type __attribute__((vector_size(32)));
  static constexpr int kLanes = 4;
};

template <typename T>
struct GemmArgs {
  int64_t m, n, k;
  const T* a;
  int64_t lda;
  const T* b;
  int64_t ldb;
  T* c;
  int64_t ldc;
};

// c[i * ldc + j] (+)= dot(a row i, b row j) over k elements, for i < MR, j < NR.
template <typename T, int MR, int NR>
TS_GEMM_INLINE void MicroKernel(const T* a, int64_t lda, const T* b, int64_t ldb, int64_t k, T* c,
                                int64_t ldc, bool accumulate) {
  using V = typename Vec<T>::Type;
  constexpr int L = Vec<T>::kLanes;
  V acc[MR][NR];
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 3
    for (int j = 0; j < NR; ++j) acc[i][j] = V{};
  }
  int64_t kk = 0;
  for (; kk + L <= k; kk += L) {
    V bv[NR];
#pragma GCC unroll 3
    for (int j = 0; j < NR; ++j) std::memcpy(&bv[j], b + j * ldb + kk, sizeof(V));
#pragma GCC unroll 4
    for (int i = 0; i < MR; ++i) {
      V av;
      std::memcpy(&av, a + i * lda + kk, sizeof(V));
#pragma GCC unroll 3
      for (int j = 0; j < NR; ++j) acc[i][j] += av * bv[j];
    }
  }
#pragma GCC unroll 4
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 3
    for (int j = 0; j < NR; ++j) {
      // Fixed lane reduction: pairwise halves.
      T lanes[L];
      std::memcpy(lanes, &acc[i][j], sizeof(V));
      for (int w = L / 2; w >= 1; w /= 2) {
        for (int l = 0; l < w; ++l) lanes[l] += lanes[l + w];
      }
      T s = lanes[0];
      for (int64_t t = kk; t < k; ++t) s += a[i * lda + t] * b[j * ldb + t];
      T& out = c[i * ldc + j];
      out = accumulate ? out + s : s;
    }
  }
}

template <typename T, int MR>
TS_GEMM_INLINE void MicroKernelNr(int nr, const T* a, int64_t lda, const T* b, int64_t ldb,
                                  int64_t k, T* c, int64_t ldc, bool accumulate) {
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
TS_GEMM_INLINE void TileImpl(const GemmArgs<T>& g, int64_t j0, int64_t j1, int64_t k0, int64_t kc,
                             bool accumulate) {
  for (int64_t j = j0; j < j1; j += kNR) {
    const int nr = static_cast<int>(std::min<int64_t>(kNR, j1 - j));
    const T* b = g.b + j * g.ldb + k0;
    for (int64_t i = 0; i < g.m; i += kMR) {
      const int mr = static_cast<int>(std::min<int64_t>(kMR, g.m - i));
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

void TileBaselineF32(const GemmArgs<float>& g, int64_t j0, int64_t j1, int64_t k0, int64_t kc,
                     bool acc) {
  TileImpl<float>(g, j0, j1, k0, kc, acc);
}
void TileBaselineF64(const GemmArgs<double>& g, int64_t j0, int64_t j1, int64_t k0, int64_t kc,
                     bool acc) {
  TileImpl<double>(g, j0, j1, k0, kc, acc);
}

#if defined(__x86_64__) && defined(__GNUC__)
#define TS_GEMM_HAS_FMA_CLONE 1
__attribute__((target("avx,fma"))) void TileFmaF32(const GemmArgs<float>& g, int64_t j0, int64_t j1,
                                                   int64_t k0, int64_t kc, bool acc) {
  TileImpl<float>(g, j0, j1, k0, kc, acc);
}
__attribute__((target("avx,fma"))) void TileFmaF64(const GemmArgs<double>& g, int64_t j0,
                                                   int64_t j1, int64_t k0, int64_t kc, bool acc) {
  TileImpl<double>(g, j0, j1, k0, kc, acc);
}
bool CpuHasFma() {
  static const bool has = __builtin_cpu_supports("avx") && __builtin_cpu_supports("fma");
  return has;
}
#else
#define TS_GEMM_HAS_FMA_CLONE 0
bool CpuHasFma() { return false; }
#endif

template <typename T>
using TileFn = void (*)(const GemmArgs<T>&, int64_t, int64_t, int64_t, int64_t, bool);

template <typename T>
TileFn<T> ChooseTile() {
#if TS_GEMM_HAS_FMA_CLONE
  if (CpuHasFma()) {
    if constexpr (std::is_same_v<T, float>)
      return &TileFmaF32;
    else
      return &TileFmaF64;
  }
#endif
  if constexpr (std::is_same_v<T, float>)
    return &TileBaselineF32;
  else
    return &TileBaselineF64;
}

}  // namespace

template <typename T>
void GemmNT(cpu::ThreadPool* pool, int64_t m, int64_t n, int64_t k, const T* a, int64_t lda,
            const T* b, int64_t ldb, T* c, int64_t ldc, bool accumulate) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {
    if (!accumulate) {
      for (int64_t i = 0; i < m; ++i) std::fill(c + i * ldc, c + i * ldc + n, T(0));
    }
    return;
  }
  const GemmArgs<T> g{m, n, k, a, lda, b, ldb, c, ldc};
  const TileFn<T> tile = ChooseTile<T>();
  const int64_t n_tiles = (n + kNTile - 1) / kNTile;
  for (int64_t k0 = 0; k0 < k; k0 += kKChunk) {
    const int64_t kc = std::min(kKChunk, k - k0);
    const bool acc = accumulate || k0 > 0;
    auto task = [&](int64_t t, int /*thread*/) {
      tile(g, t * kNTile, std::min(n, (t + 1) * kNTile), k0, kc, acc);
    };
    if (pool != nullptr) {
      pool->ParallelFor(n_tiles, task);
    } else {
      for (int64_t t = 0; t < n_tiles; ++t) task(t, 0);
    }
  }
}

template void GemmNT<float>(cpu::ThreadPool*, int64_t, int64_t, int64_t, const float*, int64_t,
                            const float*, int64_t, float*, int64_t, bool);
template void GemmNT<double>(cpu::ThreadPool*, int64_t, int64_t, int64_t, const double*, int64_t,
                             const double*, int64_t, double*, int64_t, bool);

const char* GemmTargetName() { return CpuHasFma() ? "avx+fma" : "baseline"; }

}  // namespace ts::train
