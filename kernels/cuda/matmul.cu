// MatMul for every weight DType: y (n, rows) = x (n, cols) * dequant(W)^T (+ bias).
//
// Algorithm (one kernel for all n, so prefill, decode, draft and verify share it):
//   grid.x  = ceil(rows / 8): a CTA of 8 warps, warp w owns weight row r = 8 * blockIdx.x + w;
//   grid.y  = ceil(n / 8):    the CTA computes that row against x rows 8 * blockIdx.y + b, b < 8.
//   Lane l of the warp walks chunks c = l, l + 32, l + 64, ... of the weight row (a chunk is 32
//   elements, see quant_decode.cuh), decodes each chunk once into registers and, for each of its
//   x rows, adds  s_c = sum_{j=0..31} w[j] * x[32c + j]  (sequential fmaf, j ascending) to a
//   per-lane accumulator (acc += s_c, c ascending). The 32 lane sums are then combined by the
//   xor butterfly (offsets 16, 8, 4, 2, 1); fadd is commutative, so every lane ends with the same
//   value, and lane 0 adds the bias and stores.
//
// Batch invariance (kernels/backend.h): the sequence of floating-point operations producing
// y[i][r] depends only on cols, W row r and x row i. It does not depend on n, on where row i falls
// in its tile of 8, on rows (so a tensor-parallel shard of W gives the same values as the whole
// matrix), or on launch order. The file is compiled with --fmad=false and uses explicit __fmaf_rn,
// so no contraction choice of the compiler can differ between call sites. Result: bit-identical
// rows for n = 1 and n = 64 (tests/gpu checks this), and run-to-run determinism (no atomics).
//
// Loads: a full f32/f16/bf16 chunk on a 16-byte boundary is read with 16-byte loads (8 or 4 per
// chunk; quant_decode.cuh), the same values as element loads, so the bits above are unchanged.
//
// Cost: weights are read once per tile of 8 x rows (from HBM for decode; from L2 for prefill
// tiles of one weight matrix that fits L2), and all arithmetic is on CUDA cores in f32. That is
// at the bandwidth bound for decode/verify batches and far from the tensor-core bound for long
// prefill; a batch-invariant tensor-core kernel (fixed K order per tile, no split-K) is the next
// step for prefill speed.
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/launch.h"
#include "kernels/cuda/quant_decode.cuh"

namespace ts::cuda {
namespace {

constexpr int kWarps = 8;  // weight rows per CTA
constexpr int kBatch = 8;  // x rows per CTA

template <DType T>
__global__ void __launch_bounds__(kWarps * 32)
    MatMulKernel(const uint8_t* __restrict__ w, int64_t rows, int64_t cols, size_t row_bytes,
                 const float* __restrict__ x, int64_t n, float* __restrict__ y,
                 const float* __restrict__ bias) {
  const int lane = threadIdx.x & 31;
  const int64_t r = static_cast<int64_t>(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (r >= rows) return;  // whole warp leaves together
  const int64_t i0 = static_cast<int64_t>(blockIdx.y) * kBatch;
  const int nb = static_cast<int>(min(static_cast<int64_t>(kBatch), n - i0));
  const uint8_t* wrow = w + static_cast<size_t>(r) * row_bytes;
  const int64_t chunks = (cols + kChunk - 1) / kChunk;

  float acc[kBatch];
#pragma unroll
  for (int b = 0; b < kBatch; ++b) acc[b] = 0.0f;

  float wv[kChunk];
  for (int64_t c = lane; c < chunks; c += 32) {
    const int valid = static_cast<int>(min(static_cast<int64_t>(kChunk), cols - c * kChunk));
    ChunkDecoder<T>::Decode(wrow, c, valid, wv);
#pragma unroll
    for (int b = 0; b < kBatch; ++b) {
      if (b < nb) {
        const float* xr = x + (i0 + b) * cols + c * kChunk;
        float s = 0.0f;
#pragma unroll
        for (int j = 0; j < kChunk; ++j) {
          if (j < valid) s = __fmaf_rn(wv[j], __ldg(xr + j), s);
        }
        acc[b] = __fadd_rn(acc[b], s);
      }
    }
  }
#pragma unroll
  for (int b = 0; b < kBatch; ++b) {
    float v = acc[b];
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) v = __fadd_rn(v, __shfl_xor_sync(0xffffffffu, v, off));
    if (lane == 0 && b < nb) {
      if (bias != nullptr) v = __fadd_rn(v, bias[r]);
      y[(i0 + b) * rows + r] = v;
    }
  }
}

}  // namespace

void LaunchMatMul(DType dtype, const void* w, int64_t rows, int64_t cols, size_t row_bytes,
                  const float* x, int64_t n, float* y, const float* bias, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((rows + kWarps - 1) / kWarps),
                  static_cast<unsigned>((n + kBatch - 1) / kBatch));
  DispatchDType(dtype, [&]<DType T>() {
    MatMulKernel<T><<<grid, kWarps * 32, 0, stream>>>(static_cast<const uint8_t*>(w), rows, cols,
                                                      row_bytes, x, n, y, bias);
  });
}

}  // namespace ts::cuda
