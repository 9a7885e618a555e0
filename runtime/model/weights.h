// Typed views of a model's weights. Matrices point into memory-mapped files; small 1-D tensors
// (norms, biases) are converted to f32 and owned by the loaded model.
#pragma once

#include <memory>
#include <vector>

#include "common/status.h"
#include "kernels/backend.h"
#include "kernels/dtype.h"
#include "runtime/model/config.h"

namespace ts {

struct LayerWeights {
  const float* attn_norm = nullptr;  // (hidden)
  Matrix wq, wk, wv, wo;             // (n_heads*head_dim, hidden) ... wo (hidden, n_heads*head_dim)
  const float* bq = nullptr;         // biases (qwen2), nullptr when absent
  const float* bk = nullptr;
  const float* bv = nullptr;
  const float* ffn_norm = nullptr;  // (hidden)
  Matrix w_gate, w_up;              // (intermediate, hidden)
  Matrix w_down;                    // (hidden, intermediate)
};

struct ModelWeights {
  Matrix embed;                       // (vocab, hidden)
  Matrix lm_head;                     // (vocab, hidden); same memory as embed when tied
  const float* final_norm = nullptr;  // (hidden)
  std::vector<LayerWeights> layers;
};

// A model's weights in a backend's memory: on a host-memory backend the host weights themselves;
// otherwise every matrix and vector uploaded once (as stored: quantized matrices stay quantized),
// tied matrices once, the copies owned here.
class PlacedWeights {
 public:
  static StatusOr<std::unique_ptr<PlacedWeights>> Place(const ModelWeights& host,
                                                        const ModelConfig& config,
                                                        Backend& backend);
  const ModelWeights& get() const { return host_ != nullptr ? *host_ : placed_; }
  size_t uploaded_bytes() const { return uploaded_bytes_; }

 private:
  PlacedWeights() = default;
  const ModelWeights* host_ = nullptr;
  ModelWeights placed_;
  std::vector<Buffer> storage_;
  size_t uploaded_bytes_ = 0;
};

}  // namespace ts
