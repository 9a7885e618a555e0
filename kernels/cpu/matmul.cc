// MatMul orchestration: activation quantization and the split into (weight rows x x rows) tiles.
// The arithmetic lives in matmul_kernels.cc.
#include "kernels/cpu/matmul.h"

#include <algorithm>

#include "kernels/cpu/quant_blocks.h"

namespace ts::cpu {
namespace {

constexpr int64_t kRowTile = 16;  // weight rows per task (Q4_1 x 576 cols: 5.6 KiB)
constexpr int64_t kXTile = 64;    // x rows per task

bool UsesQ8Activations(DType t) {
  return t == DType::kQ8_0 || t == DType::kQ4_0 || t == DType::kQ4_1;
}

}  // namespace

void MatMul(ThreadPool& pool, MatMulScratch& scratch, const Matrix& w, const float* x, int64_t n,
            float* y, const float* bias) {
  if (n <= 0 || w.rows <= 0) return;
  const int64_t cols = w.cols;
  Q8Rows xq;
  xq.cols = cols;
  if (UsesQ8Activations(w.dtype)) {
    const int64_t nb = cols / kQK;
    if (static_cast<int64_t>(scratch.q.size()) < n * cols) scratch.q.resize(n * cols);
    if (static_cast<int64_t>(scratch.ds.size()) < 2 * n * nb) scratch.ds.resize(2 * n * nb);
    int8_t* q = scratch.q.data();
    float* ds = scratch.ds.data();
    // One x row per task: the quantization of a row never depends on the batch.
    pool.ParallelFor(n, [&](int64_t i, int) {
      QuantizeActivationRow(x + i * cols, cols, q + i * cols, ds + 2 * i * nb);
    });
    xq.q = q;
    xq.ds = ds;
  }
  float* const* wbufs = nullptr;
  std::vector<float*> wbuf_ptrs;
  const bool k_quant = IsQuantized(w.dtype) && !UsesQ8Activations(w.dtype);
  if (k_quant) {
    const int n_threads = pool.NumThreads();
    if (static_cast<int>(scratch.wtile.size()) < n_threads) scratch.wtile.resize(n_threads);
    for (auto& buf : scratch.wtile) {
      if (static_cast<int64_t>(buf.size()) < kRowTile * cols) buf.resize(kRowTile * cols);
    }
    for (auto& buf : scratch.wtile) wbuf_ptrs.push_back(buf.data());
    wbufs = wbuf_ptrs.data();
  }
  const int64_t row_tiles = (w.rows + kRowTile - 1) / kRowTile;
  const int64_t x_tiles = (n + kXTile - 1) / kXTile;
  // Task t covers weight-row tile t / x_tiles and x-row tile t % x_tiles, so consecutive tasks
  // share a weight tile.
  pool.ParallelFor(row_tiles * x_tiles, [&](int64_t t, int thread) {
    const int64_t r0 = (t / x_tiles) * kRowTile;
    const int64_t i0 = (t % x_tiles) * kXTile;
    MatMulTile(w, r0, std::min(w.rows, r0 + kRowTile), x, xq, i0, std::min(n, i0 + kXTile), y,
               w.rows, bias, wbufs != nullptr ? wbufs[thread] : nullptr);
  });
}

}  // namespace ts::cpu
