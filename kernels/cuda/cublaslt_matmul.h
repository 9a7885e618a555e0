// The opt-in cuBLASLt path for f32/f16/bf16 weights (CudaBackendOptions).
//
// What cuBLAS documents (cuBLAS guide, "Results reproducibility"): with the same toolkit version
// and the same GPU architecture and SM count, a routine gives bit-identical results run to run,
// except routines/algorithms that use atomics and multi-stream use of one workspace. It does NOT
// promise that one output row is the same for different problem sizes: for each (m, n, k) the
// heuristics may pick a different kernel, tile shape, split-K factor or stream-K decomposition,
// each with its own summation order. So cuBLAS is not batch-invariant by default.
//
// What this path does to get as close as cuBLASLt allows: for each weight shape (dtype, rows,
// cols) it asks the heuristic ONCE, for a reference batch of kRefBatch rows, with zero workspace,
// forces split-K = 1 and reduction scheme NONE on the returned algorithm, and reuses exactly that
// algorithm for every n (cublasLtMatmulAlgoCheck per call; an n it rejects is an error, not a
// silent switch). With the tile configuration fixed and no K split, each output element is
// accumulated over K in the kernel's fixed K-loop order independent of n. That last step is an
// observation about how tiled GEMMs work, not an NVIDIA guarantee (a persistent/stream-K kernel
// could still split K by problem size), hence off by default and checked by tests/gpu.
//
// Numerics: x (f32) is rounded to the weight's type (f16/bf16) before the GEMM, accumulation is
// f32 (CUBLAS_COMPUTE_32F, never TF32). f32 weights use plain SGEMM arithmetic.
#pragma once

#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

#include "common/status.h"
#include "kernels/dtype.h"

namespace ts::cuda {

class CublasLtMatmul {
 public:
  static constexpr int64_t kRefBatch = 64;

  static StatusOr<std::unique_ptr<CublasLtMatmul>> Create();
  ~CublasLtMatmul();
  CublasLtMatmul(const CublasLtMatmul&) = delete;
  CublasLtMatmul& operator=(const CublasLtMatmul&) = delete;

  // y (n, w.rows) = xw (n, w.cols) * W^T, xw already in w.dtype (f32, f16 or bf16). Enqueued on
  // `stream`; the first call for a weight shape also runs the heuristic (host only).
  Status Run(const Matrix& w, const void* xw, int64_t n, float* y, cudaStream_t stream);

 private:
  explicit CublasLtMatmul(cublasLtHandle_t handle) : handle_(handle) {}
  StatusOr<cublasLtMatmulAlgo_t> AlgoFor(const Matrix& w);

  cublasLtHandle_t handle_;
  std::map<std::tuple<int, int64_t, int64_t>, cublasLtMatmulAlgo_t> algos_;
};

}  // namespace ts::cuda
