// GuardedBackend: the CPU backend dressed as a device backend, so CPU tests exercise every
// device-memory path (staging, uploads, downloads, placed weights) and catch host code that reads
// or writes backend memory directly. host_memory() is false; every allocation is its own mapping,
// kept PROT_NONE while control is outside the backend and opened only for the duration of an op
// or a copy: a stray host access is a SIGSEGV, not a silent read. Results are the CPU backend's
// bits (same kernels), so tokens must equal a plain CPU run. Not thread-safe; tiny models only (an
// op costs an mprotect per live allocation).
#pragma once

#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "kernels/backend.h"

namespace ts::testing {

class GuardedBackend final : public Backend {
 public:
  explicit GuardedBackend(int threads = 1) : inner_(MakeCpuBackend(threads)) {}

  std::string Name() const override { return "guarded(" + inner_->Name() + ")"; }
  bool host_memory() const override { return false; }

  StatusOr<Buffer> Alloc(size_t bytes) override {
    if (bytes == 0) return Buffer();
    const size_t page = static_cast<size_t>(sysconf(_SC_PAGESIZE));
    const size_t mapped = (bytes + page - 1) / page * page;
    void* p = mmap(nullptr, mapped, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) return absl::ResourceExhaustedError(absl::StrCat("guarded: ", bytes));
    Regions()[p] = mapped;
    return Buffer(p, bytes, &Release, 0);
  }
  void Upload(void* dst, const void* src, size_t bytes) override {
    Open o;
    std::memcpy(dst, src, bytes);
  }
  Status Download(void* dst, const void* src, size_t bytes) override {
    Open o;
    std::memcpy(dst, src, bytes);
    return absl::OkStatus();
  }
  void Copy(void* dst, const void* src, size_t bytes) override {
    Open o;
    inner_->Copy(dst, src, bytes);
  }
  void Copy2D(void* dst, size_t dp, const void* src, size_t sp, size_t w, size_t h) override {
    Open o;
    inner_->Copy2D(dst, dp, src, sp, w, h);
  }
  void Memset(void* dst, int value, size_t bytes) override {
    Open o;
    inner_->Memset(dst, value, bytes);
  }
  Status Synchronize() override { return absl::OkStatus(); }

  void MatMul(const Matrix& w, const float* x, int64_t n, float* y, const float* bias) override {
    Open o;
    inner_->MatMul(w, x, n, y, bias);
  }
  void MatMulSegments(const Matrix& w, const float* x, int64_t n, std::span<const int64_t> bounds,
                      float* y) override {
    Open o;
    inner_->MatMulSegments(w, x, n, bounds, y);
  }
  void Embed(const Matrix& table, const int32_t* ids, int64_t n, float* out) override {
    Open o;
    inner_->Embed(table, ids, n, out);
  }
  void RmsNorm(const float* x, const float* weight, int64_t n, int64_t dim, float eps,
               float* out) override {
    Open o;
    inner_->RmsNorm(x, weight, n, dim, eps, out);
  }
  void Rope(float* x, int64_t n, int n_heads, int head_dim, const int32_t* positions,
            const float* inv_freq, float mscale, RopeStyle style) override {
    Open o;
    inner_->Rope(x, n, n_heads, head_dim, positions, inv_freq, mscale, style);
  }
  void StoreKv(const KvLayerView& cache, const float* k, const float* v, int64_t n,
               const int32_t* slots) override {
    Open o;
    inner_->StoreKv(cache, k, v, n, slots);
  }
  void GatherKv(const KvLayerView& src, const KvLayerView& dst, const int32_t* slots, int64_t count,
                int64_t stride) override {
    Open o;
    inner_->GatherKv(src, dst, slots, count, stride);
  }
  void Attention(const float* q, int64_t n, int n_heads, const KvLayerView& cache,
                 const AttentionMask& mask, float scale, float* out) override {
    Open o;
    inner_->Attention(q, n, n_heads, cache, mask, scale, out);
  }
  void SwiGlu(const float* gate, const float* up, int64_t n, int64_t dim, float* out) override {
    Open o;
    inner_->SwiGlu(gate, up, n, dim, out);
  }
  void Add(float* x, const float* y, int64_t count) override {
    Open o;
    inner_->Add(x, y, count);
  }
  void KeyScores(const KvLayerView& cache, int head, const float* q, int64_t lo, int64_t hi,
                 float* scores) override {
    Open o;
    inner_->KeyScores(cache, head, q, lo, hi, scores);
  }

  // Live allocations (a leak check for tests).
  static size_t live() { return Regions().size(); }

 private:
  static std::map<void*, size_t>& Regions() {
    static std::map<void*, size_t> regions;
    return regions;
  }
  static void Release(void* data, size_t /*bytes*/, int /*tag*/) {
    auto it = Regions().find(data);
    if (it == Regions().end()) return;
    munmap(it->first, it->second);
    Regions().erase(it);
  }
  // Opens every allocation for the scope of one op or copy.
  struct Open {
    Open() {
      for (const auto& [p, n] : Regions()) mprotect(p, n, PROT_READ | PROT_WRITE);
    }
    ~Open() {
      for (const auto& [p, n] : Regions()) mprotect(p, n, PROT_NONE);
    }
  };

  std::unique_ptr<Backend> inner_;
};

}  // namespace ts::testing
