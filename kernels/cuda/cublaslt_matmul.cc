// See cublaslt_matmul.h. Layout: cuBLASLt is column-major, so the row-major problem
//   Y (n, rows) = X (n, cols) * W^T,  W row-major (rows, cols)
// is computed as D (rows x n, ld rows) = op(A) * B with A = W seen column-major as (cols x rows,
// ld cols) and op = transpose, B = X seen column-major as (cols x n, ld cols).
#include "kernels/cuda/cublaslt_matmul.h"

#include <memory>
#include <string>
#include <utility>

#include "kernels/cuda/cuda_check.h"

namespace ts::cuda {
namespace {

cudaDataType_t CudaTypeOf(DType t) {
  switch (t) {
    case DType::kF16:
      return CUDA_R_16F;
    case DType::kBF16:
      return CUDA_R_16BF;
    default:
      return CUDA_R_32F;
  }
}

// The descriptors of one problem; destroyed with the object.
struct Problem {
  cublasLtMatmulDesc_t op = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  ~Problem() {
    if (d != nullptr) cublasLtMatrixLayoutDestroy(d);
    if (b != nullptr) cublasLtMatrixLayoutDestroy(b);
    if (a != nullptr) cublasLtMatrixLayoutDestroy(a);
    if (op != nullptr) cublasLtMatmulDescDestroy(op);
  }
  Status Init(const Matrix& w, int64_t n) {
    const cudaDataType_t wt = CudaTypeOf(w.dtype);
    TS_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t trans = CUBLAS_OP_T;
    TS_CUBLAS_RETURN_IF_ERROR(
        cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &trans, sizeof(trans)));
    TS_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&a, wt, w.cols, w.rows, w.cols));
    TS_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&b, wt, w.cols, n, w.cols));
    TS_CUBLAS_RETURN_IF_ERROR(cublasLtMatrixLayoutCreate(&d, CUDA_R_32F, w.rows, n, w.rows));
    return absl::OkStatus();
  }
};

}  // namespace

StatusOr<std::unique_ptr<CublasLtMatmul>> CublasLtMatmul::Create() {
  cublasLtHandle_t handle = nullptr;
  TS_CUBLAS_RETURN_IF_ERROR(cublasLtCreate(&handle));
  return std::unique_ptr<CublasLtMatmul>(new CublasLtMatmul(handle));
}

CublasLtMatmul::~CublasLtMatmul() { cublasLtDestroy(handle_); }

StatusOr<cublasLtMatmulAlgo_t> CublasLtMatmul::AlgoFor(const Matrix& w) {
  const auto key = std::make_tuple(static_cast<int>(w.dtype), w.rows, w.cols);
  if (auto it = algos_.find(key); it != algos_.end()) return it->second;

  Problem ref;
  TS_RETURN_IF_ERROR(ref.Init(w, kRefBatch));
  cublasLtMatmulPreference_t pref = nullptr;
  TS_CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceCreate(&pref));
  const size_t no_workspace = 0;
  cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                       &no_workspace, sizeof(no_workspace));
  constexpr int kWanted = 16;
  cublasLtMatmulHeuristicResult_t results[kWanted] = {};
  int found = 0;
  const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(handle_, ref.op, ref.a, ref.b, ref.d,
                                                           ref.d, pref, kWanted, results, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  TS_CUBLAS_RETURN_IF_ERROR(hs);

  for (int r = 0; r < found; ++r) {
    cublasLtMatmulAlgo_t algo = results[r].algo;
    const uint32_t one = 1;
    const uint32_t none = CUBLASLT_REDUCTION_SCHEME_NONE;
    if (cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &one,
                                             sizeof(one)) != CUBLAS_STATUS_SUCCESS ||
        cublasLtMatmulAlgoConfigSetAttribute(&algo, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &none,
                                             sizeof(none)) != CUBLAS_STATUS_SUCCESS) {
      continue;
    }
    cublasLtMatmulHeuristicResult_t check = {};
    if (cublasLtMatmulAlgoCheck(handle_, ref.op, ref.a, ref.b, ref.d, ref.d, &algo, &check) !=
            CUBLAS_STATUS_SUCCESS ||
        check.workspaceSize != 0) {
      continue;
    }
    algos_.emplace(key, algo);
    return algo;
  }
  return RuntimeFailure(__FILE__, ":", __LINE__, ": cuBLASLt has no split-K-free algorithm for ",
                        std::string(GetDTypeInfo(w.dtype).name), " weight ", w.rows, "x", w.cols);
}

Status CublasLtMatmul::Run(const Matrix& w, const void* xw, int64_t n, float* y,
                           cudaStream_t stream) {
  TS_ASSIGN_OR_RETURN(cublasLtMatmulAlgo_t algo, AlgoFor(w));
  Problem p;
  TS_RETURN_IF_ERROR(p.Init(w, n));
  cublasLtMatmulHeuristicResult_t check = {};
  if (cublasLtMatmulAlgoCheck(handle_, p.op, p.a, p.b, p.d, p.d, &algo, &check) !=
          CUBLAS_STATUS_SUCCESS ||
      check.workspaceSize != 0) {
    return RuntimeFailure(__FILE__, ":", __LINE__, ": the fixed cuBLASLt algorithm for ",
                          std::string(GetDTypeInfo(w.dtype).name), " weight ", w.rows, "x", w.cols,
                          " does not accept a batch of ", n, " rows");
  }
  const float alpha = 1.0f, beta = 0.0f;
  TS_CUBLAS_RETURN_IF_ERROR(cublasLtMatmul(handle_, p.op, &alpha, w.data, p.a, xw, p.b, &beta, y,
                                           p.d, y, p.d, &algo, nullptr, 0, stream));
  return absl::OkStatus();
}

}  // namespace ts::cuda
