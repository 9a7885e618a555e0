// The kernel interface: every operation the forward pass needs, implemented once per backend
// (kernels/cpu always built; kernels/cuda behind TS_CUDA). Kernels know nothing of models.
//
// Pointers are backend memory: what the backend's Alloc returned (host memory for the CPU
// backend, device memory for CUDA), never host memory the caller owns, unless host_memory() says
// the two are the same. Activations are f32, row-major, one row per token: x is (n, dim).
//
// Ops are ordered: each sees the effects of the ops and copies called before it. A device backend
// may run them asynchronously; Download and Synchronize wait for them. Errors of ops (which return
// nothing) surface at the next Download or Synchronize.
//
// Batch invariance (DESIGN.md section 2) is part of the contract: the result for one row must be
// bit-identical whether the row is computed alone or among n rows, at any thread count, and
// whatever cache entries the row's mask excludes. Reductions therefore run in a fixed order that
// depends only on the row's own data and logical length, never on n or on the thread split.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <utility>

#include "common/status.h"
#include "kernels/dtype.h"

namespace ts {

// Memory a backend allocated (Backend::Alloc): freed by `release` when the buffer dies. Move-only.
// The backend that made it must outlive it.
class Buffer {
 public:
  using Release = void (*)(void* data, size_t bytes, int tag);
  Buffer() = default;
  Buffer(void* data, size_t bytes, Release release, int tag)
      : data_(data), bytes_(bytes), release_(release), tag_(tag) {}
  ~Buffer() { Reset(); }
  Buffer(Buffer&& other) noexcept { *this = std::move(other); }
  Buffer& operator=(Buffer&& other) noexcept {
    if (this != &other) {
      Reset();
      data_ = std::exchange(other.data_, nullptr);
      bytes_ = std::exchange(other.bytes_, 0);
      release_ = std::exchange(other.release_, nullptr);
      tag_ = other.tag_;
    }
    return *this;
  }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;

  void* data() const { return data_; }
  size_t size() const { return bytes_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }

 private:
  void Reset() {
    if (data_ != nullptr && release_ != nullptr) release_(data_, bytes_, tag_);
    data_ = nullptr;
    bytes_ = 0;
  }
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Release release_ = nullptr;
  int tag_ = 0;  // the backend's own (CUDA: the device)
};

// One layer's KV cache: k and v are (n_kv_heads, capacity, head_dim), f32 or bf16.
struct KvLayerView {
  void* k = nullptr;
  void* v = nullptr;
  DType dtype = DType::kF32;  // kF32 or kBF16
  int n_kv_heads = 0;
  int head_dim = 0;
  int64_t capacity = 0;  // slots per head
};

// Which cache slots each query attends to, in logical order: first slots [0, prefix_len[i]),
// then extra_slots[extra_begin[i] .. extra_begin[i+1]) (a tree node's ancestors, then itself).
// Causal decoding/prefill uses prefix_len[i] = position + 1 and no extra slots.
// Example, a tree over a committed prefix of 10 tokens, nodes at slots 10 (root), 11 (child of
// root), 12 (child of root): prefix_len = {10,10,10}, extra_begin = {0,1,3,5},
// extra_slots = {10, 10,11, 10,12}.
struct AttentionMask {
  const int32_t* prefix_len = nullptr;   // (n)
  const int32_t* extra_begin = nullptr;  // (n + 1), or nullptr when no query has extra slots
  const int32_t* extra_slots = nullptr;  // (extra_begin[n])
};

enum class RopeStyle : uint8_t {
  kNeox,         // pairs (i, i + head_dim/2): HF transformers' rotate_half
  kInterleaved,  // pairs (2i, 2i + 1): GGUF llama (q/k permuted by the converter)
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string Name() const = 0;

  // ---- memory (ggml's buffer split: the caller plans, the backend owns the bytes) ----
  // True when backend memory is host memory: host code may then read and write it directly, and
  // callers skip the copies below.
  virtual bool host_memory() const = 0;
  // `bytes` of backend memory, 256-byte aligned, contents undefined. ResourceExhausted when it
  // does not fit.
  virtual StatusOr<Buffer> Alloc(size_t bytes) = 0;
  // Host -> backend. `src` may be reused as soon as this returns.
  virtual void Upload(void* dst, const void* src, size_t bytes) = 0;
  // Backend -> host: waits for every op called before it; returns their first error.
  virtual Status Download(void* dst, const void* src, size_t bytes) = 0;
  // Within backend memory: `bytes` from src to dst (no overlap).
  virtual void Copy(void* dst, const void* src, size_t bytes) = 0;
  // `height` rows of `width` bytes: row r from src + r * src_pitch to dst + r * dst_pitch.
  virtual void Copy2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
                      size_t height) = 0;
  virtual void Memset(void* dst, int value, size_t bytes) = 0;
  // Waits for every op called so far; returns the first error of any of them.
  virtual Status Synchronize() = 0;

  // ---- ops ----

  // y (n, w.rows) = x (n, w.cols) * W^T (+ bias (w.rows) when bias != nullptr).
  virtual void MatMul(const Matrix& w, const float* x, int64_t n, float* y,
                      const float* bias = nullptr) = 0;
  // The row-parallel reduction granules in one pass over W (runtime/model/transformer.h):
  // bounds = {0 = c_0 < c_1 < ... < c_S = w.cols}, internal bounds multiples of 64; y holds S
  // products, y + s * n * w.rows = x[:, c_s:c_s+1] (n, ...) times W[:, c_s:c_s+1]^T, each the very
  // bits MatMul on a matrix of those columns alone (and x restricted to them) gives.
  virtual void MatMulSegments(const Matrix& w, const float* x, int64_t n,
                              std::span<const int64_t> bounds, float* y) = 0;
  // out (n, table.cols) = rows ids[0..n) of `table`, dequantized.
  virtual void Embed(const Matrix& table, const int32_t* ids, int64_t n, float* out) = 0;
  // out (n, dim) = x / sqrt(mean(x^2) + eps) * weight. out may alias x.
  virtual void RmsNorm(const float* x, const float* weight, int64_t n, int64_t dim, float eps,
                       float* out) = 0;
  // Rotates x (n, n_heads, head_dim) in place: angle for pair j of row i is
  // positions[i] * inv_freq[j] (j < head_dim/2); results are multiplied by mscale
  // (1 except for yarn).
  virtual void Rope(float* x, int64_t n, int n_heads, int head_dim, const int32_t* positions,
                    const float* inv_freq, float mscale, RopeStyle style) = 0;
  // Writes k, v (n, n_kv_heads, head_dim) into cache slots slots[0..n).
  virtual void StoreKv(const KvLayerView& cache, const float* k, const float* v, int64_t n,
                       const int32_t* slots) = 0;
  // The partial KV cache's gather: for every KV head h and i < count, slot i of dst's head h <-
  // slot slots[h * stride + i] of src's head h, K and V (dst.dtype == src.dtype). Slots outside
  // src.capacity: the row is left as is (CUDA: and the device error word says so).
  virtual void GatherKv(const KvLayerView& src, const KvLayerView& dst, const int32_t* slots,
                        int64_t count, int64_t stride) = 0;
  // out (n, n_heads, head_dim) = softmax(q k^T * scale) v over each query's masked slots.
  // Query head h reads KV head h / (n_heads / n_kv_heads) (GQA).
  virtual void Attention(const float* q, int64_t n, int n_heads, const KvLayerView& cache,
                         const AttentionMask& mask, float scale, float* out) = 0;
  // out (n, dim) = silu(gate) * up. out may alias gate.
  virtual void SwiGlu(const float* gate, const float* up, int64_t n, int64_t dim, float* out) = 0;
  // x (n*dim) += y (n*dim).
  virtual void Add(float* x, const float* y, int64_t count) = 0;
  // scores[i] = q . k_{head, lo + i} for cache slots [lo, hi) of KV head `head` (q: head_dim f32;
  // bf16 keys widened to f32): the partial KV cache's importance scores (DESIGN.md 1.5). Each
  // score is one fixed reduction: the same bits whatever the thread count.
  virtual void KeyScores(const KvLayerView& cache, int head, const float* q, int64_t lo, int64_t hi,
                         float* scores) = 0;
};

// The CPU backend with `n_threads` worker threads (SIMD target chosen at run time).
std::unique_ptr<Backend> MakeCpuBackend(int n_threads);

// Host memory as the CPU backend allocates it (KV caches and other callers without a backend):
// large buffers are anonymous mappings faulted in at once (MAP_POPULATE), so memory that does not
// fit fails here, not hours into a job.
StatusOr<Buffer> AllocHostMemory(size_t bytes);
void HostCopy2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
                size_t height);

}  // namespace ts
