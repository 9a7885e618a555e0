// CUDA / cuBLAS error checks that return an absl Status naming the file, line and call, in the
// spirit of nccl-tests' CUDACHECK (which exits; library code here returns instead).
#pragma once

#include <cublas_api.h>
#include <cuda_runtime.h>

#include "common/status.h"

#define TS_CUDA_RETURN_IF_ERROR(expr)                                                \
  do {                                                                               \
    const cudaError_t ts_cuda_err_ = (expr);                                         \
    if (ts_cuda_err_ != cudaSuccess) {                                               \
      return ::ts::RuntimeFailure(__FILE__, ":", __LINE__, ": ", #expr,              \
                                  " failed: ", cudaGetErrorName(ts_cuda_err_), " (", \
                                  cudaGetErrorString(ts_cuda_err_), ")");            \
    }                                                                                \
  } while (0)

#define TS_CUBLAS_RETURN_IF_ERROR(expr)                                             \
  do {                                                                              \
    const cublasStatus_t ts_cublas_st_ = (expr);                                    \
    if (ts_cublas_st_ != CUBLAS_STATUS_SUCCESS) {                                   \
      return ::ts::RuntimeFailure(__FILE__, ":", __LINE__, ": ", #expr,             \
                                  " failed: ", cublasGetStatusName(ts_cublas_st_)); \
    }                                                                               \
  } while (0)
