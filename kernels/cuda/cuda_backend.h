// The CUDA backend: every Backend op on device pointers, plus the device-memory API the shared
// Backend interface does not (yet) have. This header is plain C++ (no CUDA headers), so the
// runtime can use it from .cc files; the implementation lives in cuda_backend.cc and the .cu
// files beside it.
//
// Pointers passed to the ops (weights, activations, ids, positions, slots, the AttentionMask
// arrays, inv_freq, norm weights, biases) are all device pointers on this backend's device.
// Ops are asynchronous: they enqueue kernels on the backend's stream and return. Errors:
//   - a bad argument seen on the host (shape, dtype, alignment) or a failed launch is recorded
//     with file:line, and the op does nothing;
//   - a bad value seen on the device (token id, cache slot or mask out of range) sets a bit in a
//     device error word; the affected outputs are zero, the rest is computed.
// Both surface at Synchronize() (and status()). The first error is kept: after one, treat the
// backend as failed (a CUDA fault leaves the context unusable anyway).
//
// Batch invariance (kernels/backend.h) holds for every op on the default path; each .cu file
// states its reduction order. The opt-in cuBLASLt path for f32/f16/bf16 weights (see
// CudaBackendOptions) is deterministic run to run but its invariance across n is not documented
// by NVIDIA (see cublaslt_matmul.h); tests/gpu checks it empirically.
//
// CUDA graphs: every op only launches kernels on stream() (no allocation, no synchronisation, no
// host reads of device data), so a decoding step can be captured with
// cudaStreamBeginCapture(stream()) and replayed, provided its pointers stay fixed. Exceptions:
// the cuBLASLt path allocates its conversion buffer and picks its algorithm on the first call of
// each shape (call ReserveScratch() and run one step before capturing); the copy helpers below
// synchronise and must stay outside a capture.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "common/status.h"
#include "kernels/backend.h"

namespace ts {

struct CudaBackendOptions {
  // false (default): the fixed-order kernel of matmul.cu for every weight dtype (batch-invariant
  // by construction). true: f32/f16/bf16 weights go through cuBLASLt with one algorithm per
  // weight shape, split-K 1 and no workspace; x is rounded to the weight's type first (f16/bf16).
  bool cublaslt_for_float_weights = false;
  // true (default): split-KV attention (flash-decoding over fixed 2048-key logical chunks, then an
  // ordered merge; attention.cu): every SM busy on one long-context row. false: one CTA per
  // (query, head) over the whole context. Both are batch-invariant; their bits differ.
  bool split_kv_attention = true;
};

// Device memory (Backend::Alloc's Buffer on this backend).
using DeviceBuffer = Buffer;

class CudaBackend : public Backend {
 public:
  // ---- device memory beyond Backend's (Alloc, Upload, Download, Copy, Copy2D, Memset,
  // Synchronize: see kernels/backend.h; on this backend they are ordered on stream()) ----
  // Returns at once: `src` must stay valid and unchanged until the next Synchronize() (use pinned
  // host memory for real overlap; pageable memory is staged by the driver).
  virtual Status UploadAsync(void* dst, const void* src, size_t bytes) = 0;
  // The first error recorded so far, without waiting for the device.
  virtual Status status() const = 0;

  // Sizes the cuBLASLt path's buffer for x (max_rows * max_cols 16-bit values), so no MatMul
  // allocates. A no-op when that path is off.
  virtual Status ReserveScratch(int64_t max_rows, int64_t max_cols) = 0;

  virtual int device() const = 0;
  // The cudaStream_t all ops run on (as void* to keep CUDA headers out of this file): for graph
  // capture and for NCCL calls that must be ordered with the ops.
  virtual void* stream() const = 0;

  // Uploads a host matrix (e.g. from a mapped GGUF file) into `storage` and returns the matrix
  // view of the device copy.
  StatusOr<Matrix> UploadMatrix(const Matrix& host, DeviceBuffer* storage);
};

// The backend on CUDA device `device`, with its own non-blocking stream.
StatusOr<std::unique_ptr<CudaBackend>> CreateCudaBackend(int device,
                                                         const CudaBackendOptions& options = {});

// As CreateCudaBackend, shaped like MakeCpuBackend: nullptr when the device cannot be used (no
// driver, no such device); call CreateCudaBackend for the reason.
std::unique_ptr<Backend> MakeCudaBackend(int device);

}  // namespace ts
