// Typed views of a model's weights. Matrices point into memory-mapped files; small 1-D tensors
// (norms, biases) are converted to f32 and owned by the loaded model.
#pragma once

#include <vector>

#include "kernels/dtype.h"

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

}  // namespace ts
