// ModelConfig from a Hugging Face config.json (model_type llama or qwen2), and the end-of-sequence
// ids of generation_config.json.
//
//   hidden_size, intermediate_size, num_hidden_layers, num_attention_heads   required
//   num_key_value_heads (default num_attention_heads), head_dim (default hidden / heads),
//   vocab_size (required), rms_norm_eps (1e-6), rope_theta (10000), max_position_embeddings,
//   tie_word_embeddings (false), attention_bias (false; qwen2 always has q/k/v bias),
//   bos_token_id, eos_token_id (an integer or a list),
//   rope_scaling: null or {rope_type|type: default|linear|llama3|yarn, factor,
//     low_freq_factor, high_freq_factor, original_max_position_embeddings, beta_fast, beta_slow,
//     attention_factor}
// rope_style is always kNeox (HF weights are not permuted).
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"
#include "runtime/model/config.h"

namespace ts {

// `name` (the file path) prefixes every error.
StatusOr<ModelConfig> ParseHfConfig(std::string_view json_text, const std::string& name);

// Adds generation_config.json's eos_token_id (an integer or a list) to config->eos_ids, keeping
// config.json's ids first and dropping duplicates.
Status ApplyGenerationConfig(std::string_view json_text, const std::string& name,
                             ModelConfig* config);

}  // namespace ts
