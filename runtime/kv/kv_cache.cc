#include "runtime/kv/kv_cache.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace ts {

size_t KvCache::BytesFor(const ModelConfig& config, int64_t capacity, DType dtype) {
  const size_t elem = dtype == DType::kBF16 ? 2 : 4;
  return 2 * static_cast<size_t>(config.n_layers) * static_cast<size_t>(config.n_kv_heads) *
         static_cast<size_t>(capacity) * static_cast<size_t>(config.head_dim) * elem;
}

StatusOr<std::unique_ptr<KvCache>> KvCache::Create(const ModelConfig& config, int64_t capacity,
                                                   DType dtype, Backend* backend) {
  if (dtype != DType::kF32 && dtype != DType::kBF16) {
    return BadInput("--kv-dtype: expected f32 or bf16");
  }
  if (capacity <= 0) return BadInput("KV cache: capacity must be positive, got ", capacity);
  std::unique_ptr<KvCache> cache(new KvCache());
  cache->n_layers_ = config.n_layers;
  cache->n_kv_heads_ = config.n_kv_heads;
  cache->head_dim_ = config.head_dim;
  cache->capacity_ = capacity;
  cache->dtype_ = dtype;
  cache->bytes_ = BytesFor(config, capacity, dtype);
  cache->layer_bytes_ = cache->bytes_ / static_cast<size_t>(config.n_layers);
  cache->backend_ = backend;
  // Host memory is faulted in now (AllocHostMemory), so a cache that does not fit fails at the
  // start of a job, not hours into it, and decoding takes no page faults.
  StatusOr<Buffer> memory =
      backend != nullptr ? backend->Alloc(cache->bytes_) : AllocHostMemory(cache->bytes_);
  if (!memory.ok()) {
    return absl::ResourceExhaustedError(
        absl::StrCat("KV cache of ", cache->bytes_, " bytes: ", memory.status().message()));
  }
  cache->memory_ = *std::move(memory);
  return cache;
}

void KvCache::CopySlot(int64_t from, int64_t to) {
  if (from == to) return;
  const size_t elem = dtype_ == DType::kBF16 ? 2 : 4;
  const size_t row = static_cast<size_t>(head_dim_) * elem;
  const size_t head_pitch = static_cast<size_t>(capacity_) * row;
  for (int l = 0; l < n_layers_; ++l) {
    const KvLayerView view = Layer(l);
    for (void* base : {view.k, view.v}) {
      // One slot of every KV head: n_kv_heads rows of `row` bytes, one head apart.
      uint8_t* dst = static_cast<uint8_t*>(base) + static_cast<size_t>(to) * row;
      const uint8_t* src = static_cast<uint8_t*>(base) + static_cast<size_t>(from) * row;
      if (backend_ != nullptr) {
        backend_->Copy2D(dst, head_pitch, src, head_pitch, row, n_kv_heads_);
      } else {
        HostCopy2D(dst, head_pitch, src, head_pitch, row, n_kv_heads_);
      }
    }
  }
}

KvLayerView KvCache::Layer(int layer) const {
  KvLayerView view;
  uint8_t* base = memory_.as<uint8_t>() + static_cast<size_t>(layer) * layer_bytes_;
  view.k = base;
  view.v = base + layer_bytes_ / 2;
  view.dtype = dtype_;
  view.n_kv_heads = n_kv_heads_;
  view.head_dim = head_dim_;
  view.capacity = capacity_;
  return view;
}

}  // namespace ts
