// The full KV cache of one sequence: for every layer, K and V as (n_kv_heads, capacity, head_dim)
// in f32 or bf16. Allocated once at start-up for the whole job (prompt + max new tokens), so a job
// that does not fit fails before any work. Slots are cache positions; the decoder decides which
// slot holds which token (AR: slot = position; tree verification writes nodes past the committed
// prefix and compacts the accepted path afterwards).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "common/status.h"
#include "kernels/backend.h"
#include "runtime/model/config.h"

namespace ts {

class KvCache {
 public:
  // Bytes a cache of `capacity` slots needs for `config` (what Create would allocate).
  static size_t BytesFor(const ModelConfig& config, int64_t capacity, DType dtype);
  // In `backend`'s memory (host memory when nullptr, as the CPU backend's).
  static StatusOr<std::unique_ptr<KvCache>> Create(const ModelConfig& config, int64_t capacity,
                                                   DType dtype, Backend* backend = nullptr);
  KvCache(const KvCache&) = delete;
  KvCache& operator=(const KvCache&) = delete;

  KvLayerView Layer(int layer) const;
  // Copies slot `from` to slot `to` in every layer and KV head (tree compaction: an accepted node
  // moves to the position it now holds).
  void CopySlot(int64_t from, int64_t to);
  int64_t capacity() const { return capacity_; }
  DType dtype() const { return dtype_; }
  size_t bytes() const { return bytes_; }

 private:
  KvCache() = default;
  int n_layers_ = 0;
  int n_kv_heads_ = 0;
  int head_dim_ = 0;
  int64_t capacity_ = 0;
  DType dtype_ = DType::kF32;
  size_t layer_bytes_ = 0;  // K and V of one layer
  size_t bytes_ = 0;
  Backend* backend_ = nullptr;  // nullptr: host memory
  Buffer memory_;
};

}  // namespace ts
