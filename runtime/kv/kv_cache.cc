#include "runtime/kv/kv_cache.h"

#include <sys/mman.h>

#include <cerrno>
#include <cstring>

namespace ts {

size_t KvCache::BytesFor(const ModelConfig& config, int64_t capacity, DType dtype) {
  const size_t elem = dtype == DType::kBF16 ? 2 : 4;
  return 2 * static_cast<size_t>(config.n_layers) * static_cast<size_t>(config.n_kv_heads) *
         static_cast<size_t>(capacity) * static_cast<size_t>(config.head_dim) * elem;
}

StatusOr<std::unique_ptr<KvCache>> KvCache::Create(const ModelConfig& config, int64_t capacity,
                                                   DType dtype) {
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
  // MAP_POPULATE: the pages are faulted in now, so a cache that does not fit fails (or is
  // refused) at the start of a job, not hours into it, and decoding takes no page faults.
  void* p = mmap(nullptr, cache->bytes_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
  if (p == MAP_FAILED) {
    return absl::ResourceExhaustedError(
        absl::StrCat("KV cache: cannot reserve ", cache->bytes_, " bytes: ", std::strerror(errno)));
  }
  cache->memory_ = p;
  return cache;
}

KvCache::~KvCache() {
  if (memory_ != nullptr) munmap(memory_, bytes_);
}

void KvCache::CopySlot(int64_t from, int64_t to) {
  if (from == to) return;
  const size_t elem = dtype_ == DType::kBF16 ? 2 : 4;
  const size_t row = static_cast<size_t>(head_dim_) * elem;
  for (int l = 0; l < n_layers_; ++l) {
    const KvLayerView view = Layer(l);
    for (void* base : {view.k, view.v}) {
      for (int h = 0; h < n_kv_heads_; ++h) {
        uint8_t* head = static_cast<uint8_t*>(base) + static_cast<size_t>(h) * capacity_ * row;
        std::memcpy(head + static_cast<size_t>(to) * row, head + static_cast<size_t>(from) * row,
                    row);
      }
    }
  }
}

KvLayerView KvCache::Layer(int layer) const {
  KvLayerView view;
  uint8_t* base = static_cast<uint8_t*>(memory_) + static_cast<size_t>(layer) * layer_bytes_;
  view.k = base;
  view.v = base + layer_bytes_ / 2;
  view.dtype = dtype_;
  view.n_kv_heads = n_kv_heads_;
  view.head_dim = head_dim_;
  view.capacity = capacity_;
  return view;
}

}  // namespace ts
