// The CPU backend: ts::Backend on host memory, SIMD kernels chosen at run time (Highway) and a
// persistent thread pool. One backend serves one caller thread at a time (its scratch buffers
// and pool are not shared between concurrent calls).
#include <sys/mman.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "kernels/backend.h"
#include "kernels/cpu/attention.h"
#include "kernels/cpu/matmul.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/thread_pool.h"

namespace ts {
namespace {

class CpuBackend final : public Backend {
 public:
  explicit CpuBackend(int n_threads) : pool_(n_threads) {}

  std::string Name() const override {
    return std::string("cpu(") + cpu::MatMulTargetName() + ", " +
           std::to_string(pool_.NumThreads()) + " threads)";
  }

  bool host_memory() const override { return true; }
  StatusOr<Buffer> Alloc(size_t bytes) override { return AllocHostMemory(bytes); }
  void Upload(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  Status Download(void* dst, const void* src, size_t bytes) override {
    std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  void Copy(void* dst, const void* src, size_t bytes) override { std::memcpy(dst, src, bytes); }
  void Copy2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
              size_t height) override {
    HostCopy2D(dst, dst_pitch, src, src_pitch, width, height);
  }
  void Memset(void* dst, int value, size_t bytes) override { std::memset(dst, value, bytes); }
  Status Synchronize() override { return absl::OkStatus(); }

  void MatMul(const Matrix& w, const float* x, int64_t n, float* y, const float* bias) override {
    cpu::MatMul(pool_, matmul_scratch_, w, x, n, y, bias);
  }
  void MatMulSegments(const Matrix& w, const float* x, int64_t n, std::span<const int64_t> bounds,
                      float* y) override {
    cpu::MatMul(pool_, matmul_scratch_, w, x, n, y, nullptr, bounds);
  }
  void Embed(const Matrix& table, const int32_t* ids, int64_t n, float* out) override {
    cpu::Embed(pool_, table, ids, n, out);
  }
  void RmsNorm(const float* x, const float* weight, int64_t n, int64_t dim, float eps,
               float* out) override {
    cpu::RmsNorm(pool_, x, weight, n, dim, eps, out);
  }
  void Rope(float* x, int64_t n, int n_heads, int head_dim, const int32_t* positions,
            const float* inv_freq, float mscale, RopeStyle style) override {
    cpu::Rope(pool_, x, n, n_heads, head_dim, positions, inv_freq, mscale, style);
  }
  void StoreKv(const KvLayerView& cache, const float* k, const float* v, int64_t n,
               const int32_t* slots) override {
    cpu::StoreKv(cache, k, v, n, slots);
  }
  void GatherKv(const KvLayerView& src, const KvLayerView& dst, const int32_t* slots, int64_t count,
                int64_t stride) override {
    const size_t row = static_cast<size_t>(src.head_dim) * (src.dtype == DType::kBF16 ? 2 : 4);
    for (int h = 0; h < src.n_kv_heads; ++h) {
      const size_t s_head = static_cast<size_t>(h) * static_cast<size_t>(src.capacity) * row;
      const size_t d_head = static_cast<size_t>(h) * static_cast<size_t>(dst.capacity) * row;
      for (int64_t i = 0; i < count; ++i) {
        const int32_t slot = slots[h * stride + i];
        if (slot < 0 || slot >= src.capacity) continue;
        const size_t s = s_head + static_cast<size_t>(slot) * row;
        const size_t d = d_head + static_cast<size_t>(i) * row;
        std::memcpy(static_cast<uint8_t*>(dst.k) + d, static_cast<const uint8_t*>(src.k) + s, row);
        std::memcpy(static_cast<uint8_t*>(dst.v) + d, static_cast<const uint8_t*>(src.v) + s, row);
      }
    }
  }
  void Attention(const float* q, int64_t n, int n_heads, const KvLayerView& cache,
                 const AttentionMask& mask, float scale, float* out) override {
    cpu::Attention(pool_, attn_scratch_, q, n, n_heads, cache, mask, scale, out);
  }
  void SwiGlu(const float* gate, const float* up, int64_t n, int64_t dim, float* out) override {
    cpu::SwiGlu(pool_, gate, up, n, dim, out);
  }
  void Add(float* x, const float* y, int64_t count) override { cpu::Add(pool_, x, y, count); }
  void KeyScores(const KvLayerView& cache, int head, const float* q, int64_t lo, int64_t hi,
                 float* scores) override {
    cpu::KeyScores(pool_, cache, head, q, lo, hi, scores);
  }

 private:
  cpu::ThreadPool pool_;
  cpu::MatMulScratch matmul_scratch_;
  cpu::AttentionScratch attn_scratch_;
};

// Below this size, aligned heap memory; at and above it, an anonymous mapping faulted in at once.
constexpr size_t kMapBytes = size_t{1} << 20;

void ReleaseHost(void* data, size_t bytes, int /*tag*/) {
  if (bytes >= kMapBytes) {
    munmap(data, bytes);
  } else {
    std::free(data);
  }
}

}  // namespace

StatusOr<Buffer> AllocHostMemory(size_t bytes) {
  if (bytes == 0) return Buffer();
  void* p = nullptr;
  if (bytes >= kMapBytes) {
    p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1,
             0);
    if (p == MAP_FAILED) p = nullptr;
  } else {
    p = std::aligned_alloc(256, (bytes + 255) / 256 * 256);
  }
  if (p == nullptr) {
    return absl::ResourceExhaustedError(
        absl::StrCat("cannot allocate ", bytes, " bytes of host memory: ", std::strerror(errno)));
  }
  return Buffer(p, bytes, ReleaseHost, 0);
}

void HostCopy2D(void* dst, size_t dst_pitch, const void* src, size_t src_pitch, size_t width,
                size_t height) {
  for (size_t r = 0; r < height; ++r) {
    std::memcpy(static_cast<uint8_t*>(dst) + r * dst_pitch,
                static_cast<const uint8_t*>(src) + r * src_pitch, width);
  }
}

std::unique_ptr<Backend> MakeCpuBackend(int n_threads) {
  return std::make_unique<CpuBackend>(n_threads);
}

}  // namespace ts
