// A GGUF file as a model: ModelConfig from `{arch}.*` metadata, VocabData from tokenizer.ggml.*,
// and the tensor directory as TensorInfo (shapes reversed to PyTorch order).
//
// Key mapping (arch = general.architecture, "llama" or "qwen2"):
//   {arch}.block_count -> n_layers          {arch}.embedding_length -> hidden_size
//   {arch}.feed_forward_length -> intermediate_size
//   {arch}.attention.head_count(_kv) -> n_heads, n_kv_heads (kv defaults to head_count)
//   {arch}.attention.key_length -> head_dim (default hidden / heads)
//   {arch}.rope.dimension_count must equal head_dim (partial rotary is not supported)
//   {arch}.rope.freq_base -> rope_theta     {arch}.attention.layer_norm_rms_epsilon -> rms_eps
//   {arch}.context_length -> max_position   {arch}.vocab_size or the token list -> vocab_size
//   {arch}.rope.scaling.{type,factor,original_context_length,attn_factor,yarn_beta_fast,
//   yarn_beta_slow} -> rope_scaling; tensor rope_freqs.weight -> rope_scaling.freq_factors
// rope_style is kInterleaved for llama (llama.cpp's converter permutes q/k rows), kNeox for qwen2.
// tie_embeddings is the absence of output.weight; qkv_bias the presence of blk.0.attn_q.bias.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status.h"
#include "runtime/model/config.h"
#include "runtime/model/gguf.h"
#include "runtime/model/loader.h"
#include "runtime/tokenizer/vocab.h"

namespace ts {

StatusOr<VocabData> VocabFromGguf(const GgufFile& file, const std::string& name);

// Reads the config; `vocab` (may be null) supplies vocab_size, bos/eos and add_bos.
StatusOr<ModelConfig> ConfigFromGguf(const GgufFile& file, const VocabData* vocab,
                                     const std::string& name);

// Parses the GGUF bytes and fills model->format, config, gguf_vocab and tensors (pointing into
// `data`, which must outlive the model). Does not bind weights.
Status ReadGgufModel(const uint8_t* data, size_t size, const std::string& name, LoadedModel* model);

}  // namespace ts
