// The architecture of a decoder-only transformer, read from HF config.json or GGUF metadata.
// llama and qwen2 differ only by these values (QKV bias, tied embeddings, rope scaling):
// there is one forward pass for both.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/backend.h"

namespace ts {

struct RopeScaling {
  enum class Type : uint8_t { kDefault, kLinear, kLlama3, kYarn };
  Type type = Type::kDefault;
  float factor = 1.0f;
  // llama3
  float low_freq_factor = 1.0f;
  float high_freq_factor = 4.0f;
  int64_t original_max_position = 0;
  // yarn
  float beta_fast = 32.0f;
  float beta_slow = 1.0f;
  float attention_factor = 0.0f;  // 0 = derive as HF does: 0.1 * ln(factor) + 1
  // Per-frequency divisors of inv_freq (head_dim/2 values), as GGUF files of llama3-scaled models
  // store them (tensor rope_freqs.weight) instead of the llama3 parameters; empty when absent.
  std::vector<float> freq_factors;
};

struct ModelConfig {
  std::string arch;  // "llama" or "qwen2"
  int64_t vocab_size = 0;
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int n_layers = 0;
  int n_heads = 0;
  int n_kv_heads = 0;
  int head_dim = 0;
  int64_t max_position = 0;  // context length the model was trained for
  float rms_eps = 1e-6f;
  float rope_theta = 10000.0f;
  RopeScaling rope_scaling;
  RopeStyle rope_style = RopeStyle::kNeox;  // kInterleaved for GGUF llama
  bool tie_embeddings = false;
  bool qkv_bias = false;
  int32_t bos_id = -1;           // -1 when none
  std::vector<int32_t> eos_ids;  // generation stops at any of these
  bool add_bos = false;          // prepend BOS when tokenizing a prompt
};

}  // namespace ts
