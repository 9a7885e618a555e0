// Host side of the CUDA backend: argument checks, error bookkeeping, memory helpers and dispatch
// to the kernels (launch.h) or to cuBLASLt (cublaslt_matmul.h). See cuda_backend.h.
#include "kernels/cuda/cuda_backend.h"

#include <cuda_runtime.h>

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cublaslt_matmul.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/launch.h"

namespace ts {

StatusOr<Matrix> CudaBackend::UploadMatrix(const Matrix& host, DeviceBuffer* storage) {
  const size_t bytes = host.row_bytes * static_cast<size_t>(host.rows);
  TS_ASSIGN_OR_RETURN(*storage, Alloc(bytes));
  Upload(storage->data(), host.data, bytes);
  TS_RETURN_IF_ERROR(Synchronize());
  Matrix m = host;
  m.data = storage->data();
  return m;
}

namespace {

using cuda::kMaxHeadDim;
using cuda::kMaxMatMulRows;

void ReleaseDeviceMemory(void* data, size_t /*bytes*/, int device) {
  int current = -1;
  cudaGetDevice(&current);
  if (current != device) cudaSetDevice(device);
  cudaFree(data);  // a failure here cannot be reported from a destructor
  if (current != device && current >= 0) cudaSetDevice(current);
}

Status CudaCall(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat(what, ": ", cudaGetErrorString(e)));
}

bool Aligned(const void* p, size_t a) { return reinterpret_cast<uintptr_t>(p) % a == 0; }

std::string DecodeErrorWord(int bits) {
  std::string s;
  if (bits & cuda::kErrEmbedIdOutOfRange) absl::StrAppend(&s, " Embed: token id out of range;");
  if (bits & cuda::kErrStoreSlotOutOfRange) absl::StrAppend(&s, " StoreKv: slot out of range;");
  if (bits & cuda::kErrAttentionSlotOutOfRange) {
    absl::StrAppend(&s, " Attention: extra slot out of range;");
  }
  if (bits & cuda::kErrGatherSlotOutOfRange) absl::StrAppend(&s, " GatherKv: slot out of range;");
  if (bits & cuda::kErrAttentionBadMask) {
    absl::StrAppend(&s, " Attention: prefix_len > capacity or extra_begin decreasing;");
  }
  return s;
}

class CudaBackendImpl final : public CudaBackend {
 public:
  CudaBackendImpl(int device, CudaBackendOptions options) : device_(device), options_(options) {}

  ~CudaBackendImpl() override {
    cudaSetDevice(device_);
    if (stream_ != nullptr) {
      cudaStreamSynchronize(stream_);
      cudaStreamDestroy(stream_);
    }
  }

  Status Init() {
    int count = 0;
    TS_CUDA_RETURN_IF_ERROR(cudaGetDeviceCount(&count));
    if (device_ < 0 || device_ >= count) {
      return absl::InvalidArgumentError(
          absl::StrCat("CUDA device ", device_, " requested, but ", count, " visible"));
    }
    TS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    cudaDeviceProp prop;
    TS_CUDA_RETURN_IF_ERROR(cudaGetDeviceProperties(&prop, device_));
    name_ = absl::StrCat("cuda:", device_, " (", prop.name, ", sm_", prop.major, prop.minor, ")");
    TS_CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    TS_ASSIGN_OR_RETURN(err_word_, Alloc(sizeof(int)));
    TS_CUDA_RETURN_IF_ERROR(cudaMemsetAsync(err_word_.data(), 0, sizeof(int), stream_));
    if (options_.cublaslt_for_float_weights) {
      TS_ASSIGN_OR_RETURN(cublaslt_, cuda::CublasLtMatmul::Create());
    }
    return Synchronize();
  }

  std::string Name() const override { return name_; }

  // ---- memory ----
  bool host_memory() const override { return false; }
  StatusOr<Buffer> Alloc(size_t bytes) override {
    TS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    void* p = nullptr;
    if (bytes > 0) {
      const cudaError_t e = cudaMalloc(&p, bytes);
      if (e == cudaErrorMemoryAllocation) {
        cudaGetLastError();  // not sticky: clear it
        return absl::ResourceExhaustedError(
            absl::StrCat(name_, ": cannot allocate ", bytes, " bytes of device memory"));
      }
      TS_CUDA_RETURN_IF_ERROR(e);
    }
    return Buffer(p, bytes, ReleaseDeviceMemory, device_);
  }
  // Backend's contract lets the caller reuse `src` at once; cudaMemcpyAsync from pageable memory
  // "might be synchronous" only, so the copy is waited for. Every step today ends with a download
  // anyway, so the stream is idle here (a pinned staging ring would let uploads overlap).
  void Upload(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    Record(CudaCall(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_),
                    "cudaMemcpyAsync (upload)"));
    Record(CudaCall(cudaStreamSynchronize(stream_), "cudaStreamSynchronize (upload)"));
  }
  Status UploadAsync(void* dst, const void* src, size_t bytes) override {
    TS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    TS_CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, stream_));
    return absl::OkStatus();
  }
  Status Download(void* dst, const void* src, size_t bytes) override {
    if (bytes > 0) {
      Record(CudaCall(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream_),
                      "cudaMemcpyAsync (download)"));
    }
    return Synchronize();
  }
  void Copy(void* dst, const void* src, size_t bytes) override {
    if (bytes == 0) return;
    Record(CudaCall(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, stream_),
                    "cudaMemcpyAsync (device to device)"));
  }
  void Copy2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
              size_t height) override {
    if (width == 0 || height == 0) return;
    Record(CudaCall(cudaMemcpy2DAsync(dst, dst_pitch, src, src_pitch, width, height,
                                      cudaMemcpyDeviceToDevice, stream_),
                    "cudaMemcpy2DAsync"));
  }
  void Memset(void* dst, int value, size_t bytes) override {
    if (bytes == 0) return;
    Record(CudaCall(cudaMemsetAsync(dst, value, bytes, stream_), "cudaMemsetAsync"));
  }
  Status Synchronize() override {
    Record(SyncAndReadErrorWord());
    return status_;
  }
  Status status() const override { return status_; }
  Status ReserveScratch(int64_t max_rows, int64_t max_cols) override {
    if (cublaslt_ == nullptr) return absl::OkStatus();
    return EnsureScratch(static_cast<size_t>(max_rows * max_cols) * sizeof(uint16_t));
  }
  int device() const override { return device_; }
  void* stream() const override { return stream_; }

  // ---- ops ----
  void MatMul(const Matrix& w, const float* x, int64_t n, float* y, const float* bias) override {
    if (!Begin("MatMul", n)) return;
    if (!CheckMatrix("MatMul", w) || !Check(x != nullptr && y != nullptr, "MatMul: null x or y") ||
        !Check(n <= kMaxMatMulRows, "MatMul: n above ", kMaxMatMulRows)) {
      return;
    }
    if (cublaslt_ != nullptr && !IsQuantized(w.dtype)) {
      MatMulCublasLt(w, x, n, y, bias);
      return;
    }
    cuda::LaunchMatMul(w.dtype, w.data, w.rows, w.cols, w.row_bytes, x, n, y, bias, stream_);
    CheckLaunch(__FILE__, __LINE__, "MatMul");
  }

  // One MatMul per segment on a column view of w; for n > 1 the segment's x columns are first
  // copied into contiguous rows (one strided 2-D copy).
  void MatMulSegments(const Matrix& w, const float* x, int64_t n, std::span<const int64_t> bounds,
                      float* y) override {
    if (!Begin("MatMulSegments", n)) return;
    if (!CheckMatrix("MatMulSegments", w) ||
        !Check(bounds.size() >= 2 && bounds.front() == 0 && bounds.back() == w.cols,
               "MatMulSegments: bounds must run from 0 to the matrix's columns")) {
      return;
    }
    const int64_t block = GetDTypeInfo(w.dtype).block_elems;
    for (size_t sg = 0; sg + 1 < bounds.size(); ++sg) {
      const int64_t c0 = bounds[sg], c1 = bounds[sg + 1];
      if (!Check(c0 < c1 && c0 % block == 0, "MatMulSegments: bound ", c0,
                 " not on a quantization block")) {
        return;
      }
      Matrix part = w;
      part.data = static_cast<const uint8_t*>(w.data) + RowBytes(w.dtype, c0);
      part.cols = c1 - c0;
      const float* xs = x + c0;
      if (n > 1) {
        const size_t bytes = static_cast<size_t>(n * (c1 - c0)) * sizeof(float);
        if (segment_x_.size() < bytes) {
          Status s = cudaStreamSynchronize(stream_) == cudaSuccess
                         ? absl::OkStatus()
                         : absl::InternalError("MatMulSegments: stream synchronize failed");
          if (!s.ok()) return Record(std::move(s));
          segment_x_ = DeviceBuffer();
          StatusOr<DeviceBuffer> buf = Alloc(bytes);
          if (!buf.ok()) return Record(buf.status());
          segment_x_ = *std::move(buf);
        }
        if (cudaMemcpy2DAsync(segment_x_.data(), (c1 - c0) * sizeof(float), x + c0,
                              w.cols * sizeof(float), (c1 - c0) * sizeof(float), n,
                              cudaMemcpyDeviceToDevice, stream_) != cudaSuccess) {
          return Record(absl::InternalError("MatMulSegments: strided copy of x failed"));
        }
        xs = segment_x_.as<float>();
      }
      MatMul(part, xs, n, y + static_cast<int64_t>(sg) * n * w.rows, nullptr);
    }
  }

  void Embed(const Matrix& table, const int32_t* ids, int64_t n, float* out) override {
    if (!Begin("Embed", n)) return;
    if (!CheckMatrix("Embed", table) ||
        !Check(ids != nullptr && out != nullptr, "Embed: null ids or out")) {
      return;
    }
    cuda::LaunchEmbed(table.dtype, table.data, table.rows, table.cols, table.row_bytes, ids, n, out,
                      ErrWord(), stream_);
    CheckLaunch(__FILE__, __LINE__, "Embed");
  }

  void RmsNorm(const float* x, const float* weight, int64_t n, int64_t dim, float eps,
               float* out) override {
    if (!Begin("RmsNorm", n)) return;
    if (!Check(x != nullptr && weight != nullptr && out != nullptr && dim > 0,
               "RmsNorm: null pointer or dim <= 0")) {
      return;
    }
    cuda::LaunchRmsNorm(x, weight, n, dim, eps, out, stream_);
    CheckLaunch(__FILE__, __LINE__, "RmsNorm");
  }

  void Rope(float* x, int64_t n, int n_heads, int head_dim, const int32_t* positions,
            const float* inv_freq, float mscale, RopeStyle style) override {
    if (!Begin("Rope", n)) return;
    if (!Check(x != nullptr && positions != nullptr && inv_freq != nullptr && n_heads > 0 &&
                   head_dim > 0 && head_dim % 2 == 0,
               "Rope: null pointer, n_heads <= 0 or odd head_dim ", head_dim)) {
      return;
    }
    cuda::LaunchRope(x, n, n_heads, head_dim, positions, inv_freq, mscale,
                     style == RopeStyle::kInterleaved, stream_);
    CheckLaunch(__FILE__, __LINE__, "Rope");
  }

  void StoreKv(const KvLayerView& cache, const float* k, const float* v, int64_t n,
               const int32_t* slots) override {
    if (!Begin("StoreKv", n)) return;
    if (!CheckCache("StoreKv", cache) ||
        !Check(k != nullptr && v != nullptr && slots != nullptr, "StoreKv: null k, v or slots")) {
      return;
    }
    cuda::LaunchStoreKv(cache.k, cache.v, cache.dtype == DType::kBF16, cache.n_kv_heads,
                        cache.head_dim, cache.capacity, k, v, n, slots, ErrWord(), stream_);
    CheckLaunch(__FILE__, __LINE__, "StoreKv");
  }

  void GatherKv(const KvLayerView& src, const KvLayerView& dst, const int32_t* slots, int64_t count,
                int64_t stride) override {
    if (!Begin("GatherKv", count)) return;
    if (!CheckCache("GatherKv", src) || !CheckCache("GatherKv", dst) ||
        !Check(src.dtype == dst.dtype && src.n_kv_heads == dst.n_kv_heads &&
                   src.head_dim == dst.head_dim,
               "GatherKv: source and destination caches differ in shape or dtype") ||
        !Check(count <= dst.capacity && stride >= count && slots != nullptr, "GatherKv: ", count,
               " rows into ", dst.capacity, " slots (stride ", stride, ")")) {
      return;
    }
    const size_t row = static_cast<size_t>(src.head_dim) * (src.dtype == DType::kBF16 ? 2 : 4);
    if (!Check(row % 4 == 0, "GatherKv: rows of ", row, " bytes, expected a multiple of 4")) {
      return;
    }
    cuda::LaunchGatherKv(src.k, src.v, src.capacity, dst.k, dst.v, dst.capacity, src.n_kv_heads,
                         row, slots, count, stride, ErrWord(), stream_);
    CheckLaunch(__FILE__, __LINE__, "GatherKv");
  }

  void Attention(const float* q, int64_t n, int n_heads, const KvLayerView& cache,
                 const AttentionMask& mask, float scale, float* out) override {
    if (!Begin("Attention", n)) return;
    if (!CheckCache("Attention", cache) ||
        !Check(q != nullptr && out != nullptr && mask.prefix_len != nullptr,
               "Attention: null q, out or mask.prefix_len") ||
        !Check(mask.extra_begin == nullptr || mask.extra_slots != nullptr,
               "Attention: mask.extra_begin without mask.extra_slots") ||
        !Check(n_heads > 0 && n_heads % cache.n_kv_heads == 0, "Attention: n_heads ", n_heads,
               " is not a multiple of n_kv_heads ", cache.n_kv_heads) ||
        !Check(cache.head_dim % 32 == 0 && cache.head_dim <= kMaxHeadDim, "Attention: head_dim ",
               cache.head_dim, " is not a multiple of 32 up to ", kMaxHeadDim) ||
        !Check(n * n_heads <= INT32_MAX, "Attention: n * n_heads too large") ||
        !Check(cuda::AttentionChunks(cache.capacity) <= 65535, "Attention: capacity ",
               cache.capacity, " needs more than 65535 split-KV chunks")) {
      return;
    }
    if (!options_.split_kv_attention) {
      cuda::LaunchAttention(q, n, n_heads, cache.k, cache.v, cache.dtype == DType::kBF16,
                            cache.n_kv_heads, cache.head_dim, cache.capacity, mask.prefix_len,
                            mask.extra_begin, mask.extra_slots, scale, out, ErrWord(), stream_);
      CheckLaunch(__FILE__, __LINE__, "Attention");
      return;
    }
    // Partial states of every (query, head, chunk): grown on demand (a capture must follow one
    // eager step of the largest shape, as for the cuBLASLt scratch).
    const size_t floats = cuda::AttentionPartialFloats(n, n_heads, cache.head_dim, cache.capacity);
    if (attn_partials_.size() < floats * sizeof(float)) {
      Record(CudaCall(cudaStreamSynchronize(stream_), "cudaStreamSynchronize"));
      attn_partials_ = Buffer();
      StatusOr<Buffer> buf = Alloc(floats * sizeof(float));
      if (!buf.ok()) return Record(buf.status());
      attn_partials_ = *std::move(buf);
    }
    cuda::LaunchAttentionSplit(q, n, n_heads, cache.k, cache.v, cache.dtype == DType::kBF16,
                               cache.n_kv_heads, cache.head_dim, cache.capacity, mask.prefix_len,
                               mask.extra_begin, mask.extra_slots, scale, out,
                               attn_partials_.as<float>(), ErrWord(), stream_);
    CheckLaunch(__FILE__, __LINE__, "Attention (split-KV)");
  }

  void SwiGlu(const float* gate, const float* up, int64_t n, int64_t dim, float* out) override {
    if (!Begin("SwiGlu", n)) return;
    if (!Check(gate != nullptr && up != nullptr && out != nullptr, "SwiGlu: null pointer")) return;
    cuda::LaunchSwiGlu(gate, up, n * dim, out, stream_);
    CheckLaunch(__FILE__, __LINE__, "SwiGlu");
  }

  void Add(float* x, const float* y, int64_t count) override {
    if (!Begin("Add", count)) return;
    if (!Check(x != nullptr && y != nullptr, "Add: null pointer")) return;
    cuda::LaunchAdd(x, y, count, stream_);
    CheckLaunch(__FILE__, __LINE__, "Add");
  }

  void KeyScores(const KvLayerView& cache, int head, const float* q, int64_t lo, int64_t hi,
                 float* scores) override {
    if (!Begin("KeyScores", hi - lo)) return;
    if (!Check(cache.k != nullptr && q != nullptr && scores != nullptr,
               "KeyScores: null pointer")) {
      return;
    }
    if (!Check(head >= 0 && head < cache.n_kv_heads && lo >= 0 && hi <= cache.capacity,
               "KeyScores: head or slot range outside the cache")) {
      return;
    }
    cuda::LaunchKeyScores(cache.k, cache.dtype == DType::kBF16, head, cache.head_dim,
                          cache.capacity, q, lo, hi, scores, stream_);
    CheckLaunch(__FILE__, __LINE__, "KeyScores");
  }

 private:
  // False when the op should not run: an earlier error, or nothing to do.
  bool Begin(const char* op, int64_t n) {
    if (!status_.ok() || n <= 0) {
      if (n < 0) Record(absl::InvalidArgumentError(absl::StrCat(op, ": negative size ", n)));
      return false;
    }
    const cudaError_t e = cudaSetDevice(device_);
    if (e != cudaSuccess) CheckLaunch(__FILE__, __LINE__, op);
    return status_.ok();
  }

  template <typename... Args>
  bool Check(bool ok, const Args&... message) {
    if (!ok) Record(absl::InvalidArgumentError(absl::StrCat("CudaBackend::", message...)));
    return ok;
  }

  bool CheckMatrix(const char* op, const Matrix& w) {
    const DTypeInfo info = GetDTypeInfo(w.dtype);
    const std::string name(info.name);
    const size_t align = w.dtype == DType::kF32 ? 4 : 2;
    return Check(w.data != nullptr && w.rows > 0 && w.cols > 0, op, ": empty weight matrix") &&
           Check(w.cols % info.block_elems == 0, op, ": ", name, " matrix with ", w.cols,
                 " columns, not a multiple of ", info.block_elems) &&
           Check(w.row_bytes == RowBytes(w.dtype, w.cols), op, ": row_bytes ", w.row_bytes, " for ",
                 name, " x ", w.cols, ", expected ", RowBytes(w.dtype, w.cols)) &&
           Check(Aligned(w.data, align) && w.row_bytes % align == 0, op, ": ", name,
                 " weight data not ", align, "-byte aligned");
  }

  bool CheckCache(const char* op, const KvLayerView& c) {
    return Check(c.k != nullptr && c.v != nullptr && c.n_kv_heads > 0 && c.head_dim > 0 &&
                     c.capacity > 0,
                 op, ": empty KV cache view") &&
           Check(c.dtype == DType::kF32 || c.dtype == DType::kBF16, op, ": KV cache dtype ",
                 std::string(GetDTypeInfo(c.dtype).name), ", expected f32 or bf16");
  }

  void CheckLaunch(const char* file, int line, const char* op) {
    const cudaError_t e = cudaGetLastError();
    if (e != cudaSuccess) {
      Record(RuntimeFailure(file, ":", line, ": ", op, " launch failed: ", cudaGetErrorName(e),
                            " (", cudaGetErrorString(e), ")"));
    }
  }

  void Record(Status s) {
    if (status_.ok() && !s.ok()) status_ = std::move(s);
  }

  int* ErrWord() { return err_word_.as<int>(); }

  Status SyncAndReadErrorWord() {
    TS_CUDA_RETURN_IF_ERROR(cudaSetDevice(device_));
    TS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    if (err_word_.data() == nullptr) return absl::OkStatus();
    int bits = 0;
    TS_CUDA_RETURN_IF_ERROR(
        cudaMemcpyAsync(&bits, err_word_.data(), sizeof(int), cudaMemcpyDeviceToHost, stream_));
    TS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));
    if (bits != 0) {
      return absl::OutOfRangeError(
          absl::StrCat(__FILE__, ":", __LINE__, ": device reported:", DecodeErrorWord(bits)));
    }
    return absl::OkStatus();
  }

  Status EnsureScratch(size_t bytes) {
    if (scratch_.size() >= bytes) return absl::OkStatus();
    TS_CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream_));  // old buffer may be in use
    scratch_ = DeviceBuffer();
    TS_ASSIGN_OR_RETURN(scratch_, Alloc(bytes));
    return absl::OkStatus();
  }

  void MatMulCublasLt(const Matrix& w, const float* x, int64_t n, float* y, const float* bias) {
    const void* xw = x;
    if (w.dtype != DType::kF32) {
      const int64_t count = n * w.cols;
      Status s = EnsureScratch(static_cast<size_t>(count) * sizeof(uint16_t));
      if (!s.ok()) return Record(std::move(s));
      cuda::LaunchConvertF32(x, count, w.dtype == DType::kBF16, scratch_.data(), stream_);
      CheckLaunch(__FILE__, __LINE__, "MatMul (convert x)");
      xw = scratch_.data();
    }
    Record(cublaslt_->Run(w, xw, n, y, stream_));
    if (bias != nullptr && status_.ok()) {
      cuda::LaunchAddBias(y, bias, n, w.rows, stream_);
      CheckLaunch(__FILE__, __LINE__, "MatMul (bias)");
    }
  }

  const int device_;
  const CudaBackendOptions options_;
  std::string name_;
  cudaStream_t stream_ = nullptr;
  DeviceBuffer err_word_;       // one int: ErrorBits set by kernels
  DeviceBuffer scratch_;        // x rounded to f16/bf16 for the cuBLASLt path
  DeviceBuffer segment_x_;      // MatMulSegments: one segment's x columns, contiguous
  DeviceBuffer attn_partials_;  // split-KV attention's per-chunk states
  std::unique_ptr<cuda::CublasLtMatmul> cublaslt_;
  Status status_;
};

}  // namespace

StatusOr<std::unique_ptr<CudaBackend>> CreateCudaBackend(int device,
                                                         const CudaBackendOptions& options) {
  auto backend = std::make_unique<CudaBackendImpl>(device, options);
  TS_RETURN_IF_ERROR(backend->Init());
  return std::unique_ptr<CudaBackend>(std::move(backend));
}

std::unique_ptr<Backend> MakeCudaBackend(int device) {
  StatusOr<std::unique_ptr<CudaBackend>> backend = CreateCudaBackend(device);
  if (!backend.ok()) return nullptr;
  return std::move(*backend);
}

}  // namespace ts
