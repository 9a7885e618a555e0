// MatMul orchestration: activation quantization and the split into (weight rows x x rows) tiles.
// The arithmetic lives in matmul_kernels.cc.
#include "kernels/cpu/matmul.h"

#include <algorithm>
#include <cstdint>

#include "kernels/cpu/quant_blocks.h"

namespace ts::cpu {
namespace {

constexpr int64_t kRowTile = 16;  // weight rows per task (Q4_1 x 576 cols: 5.6 KiB)
constexpr int64_t kXTile = 64;    // x rows per task
constexpr int64_t kChunksPerThread = 4;

bool UsesQ8Activations(DType t) {
  return t == DType::kQ8_0 || t == DType::kQ4_0 || t == DType::kQ4_1;
}

}  // namespace

void MatMul(ThreadPool& pool, MatMulScratch& scratch, const Matrix& w, const float* x, int64_t n,
            float* y, const float* bias, std::span<const int64_t> bounds) {
  if (n <= 0 || w.rows <= 0) return;
  const int64_t cols = w.cols;
  Q8Rows xq;
  xq.cols = cols;
  if (UsesQ8Activations(w.dtype)) {
    const int64_t pairs = (cols / kQK + 1) / 2;
    const int64_t q_size = pairs * n * kXPairBytes, ds_size = pairs * n * kXPairFloats;
    if (static_cast<int64_t>(scratch.q.size()) < q_size + 64) scratch.q.resize(q_size + 64);
    if (static_cast<int64_t>(scratch.ds.size()) < ds_size) scratch.ds.resize(ds_size);
    // 64-byte aligned, so that each 64-byte pair load touches one cache line.
    int8_t* q = scratch.q.data() + (-reinterpret_cast<uintptr_t>(scratch.q.data()) & 63);
    float* ds = scratch.ds.data();
    // One x row per task: the quantization of a row never depends on the batch (only where its
    // values are stored does).
    pool.ParallelFor(n, [&](int64_t i, int) {
      QuantizeActivationRow(x + i * cols, cols, n, q + i * kXPairBytes, ds + i * kXPairFloats);
    });
    xq.q = q;
    xq.ds = ds;
    xq.stride = n;
  }
  const bool k_quant = IsQuantized(w.dtype) && !UsesQ8Activations(w.dtype);
  if (k_quant) {  // per-thread buffers for dequantized weight tiles
    if (static_cast<int>(scratch.wtile.size()) < pool.NumThreads()) {
      scratch.wtile.resize(pool.NumThreads());
    }
    for (auto& buf : scratch.wtile) {
      if (static_cast<int64_t>(buf.size()) < kRowTile * cols) buf.resize(kRowTile * cols);
    }
  }
  // Each task takes a contiguous chunk of weight rows and one x tile, and walks the chunk in
  // kRowTile sub-tiles so each sub-tile stays in L1 across the x rows. The rows are cut into
  // about kChunksPerThread chunks per thread (long sequential runs that the prefetchers follow,
  // and slack for a thread that starts late), chunk c holding sub-tiles [c * tiles / chunks,
  // (c + 1) * tiles / chunks): sizes differ by at most one sub-tile, so with a verify batch
  // (n <= 16: one x tile, a few microseconds per call) both threads get equal work.
  const int64_t threads = pool.NumThreads();
  const int64_t tiles = (w.rows + kRowTile - 1) / kRowTile;
  const int64_t chunks = std::min(tiles, kChunksPerThread * threads);
  const int64_t x_tiles = (n + kXTile - 1) / kXTile;
  pool.ParallelFor(chunks * x_tiles, [&](int64_t t, int thread) {
    const int64_t c = t / x_tiles;
    const int64_t c0 = c * tiles / chunks * kRowTile;
    const int64_t c1 = std::min(w.rows, (c + 1) * tiles / chunks * kRowTile);
    const int64_t i0 = (t % x_tiles) * kXTile;
    const int64_t i1 = std::min(n, i0 + kXTile);
    float* wbuf = k_quant ? scratch.wtile[thread].data() : nullptr;
    for (int64_t r0 = c0; r0 < c1; r0 += kRowTile) {
      MatMulTile(w, r0, std::min(c1, r0 + kRowTile), x, xq, i0, i1, y, w.rows, bias, wbuf,
                 bounds.empty() ? nullptr : bounds.data(),
                 bounds.empty() ? 1 : static_cast<int64_t>(bounds.size()) - 1, n * w.rows);
    }
  });
}

}  // namespace ts::cpu
