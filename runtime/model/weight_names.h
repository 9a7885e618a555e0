// The tensor names of each format and the binding of a model's tensors to ModelWeights.
//
//   logical            HF safetensors                               GGUF
//   embed              model.embed_tokens.weight                    token_embd.weight
//   lm_head            lm_head.weight (absent when tied)            output.weight (absent when
//   tied) final_norm         model.norm.weight                            output_norm.weight layer
//   i: attn_norm          model.layers.{i}.input_layernorm.weight      blk.{i}.attn_norm.weight
//   wq/wk/wv/wo        model.layers.{i}.self_attn.{q,k,v,o}_proj.weight
//                                                                   blk.{i}.attn_{q,k,v,output}.weight
//   bq/bk/bv           model.layers.{i}.self_attn.{q,k,v}_proj.bias blk.{i}.attn_{q,k,v}.bias
//   (bo: an o_proj / attn_output bias is not supported and rejected)
//   ffn_norm           model.layers.{i}.post_attention_layernorm.weight
//                                                                   blk.{i}.ffn_norm.weight
//   w_gate/w_up/w_down model.layers.{i}.mlp.{gate,up,down}_proj.weight
//                                                                   blk.{i}.ffn_{gate,up,down}.weight
//
// Every shape is checked against the config (PyTorch order, [out, in]); matrices point into the
// mapped files, norms and biases are converted to f32 into LoadedModel::owned_f32.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "common/status.h"
#include "runtime/model/loader.h"

namespace ts {

struct LayerWeightNames {
  std::string attn_norm, wq, wk, wv, wo, bq, bk, bv, bo, ffn_norm, w_gate, w_up, w_down;
};

struct WeightNames {
  std::string embed, lm_head, final_norm;
  std::vector<LayerWeightNames> layers;
};

// format: "gguf" or "safetensors".
WeightNames MakeWeightNames(const std::string& format, int n_layers);

// Fills model->weights from model->tensors and model->config (see the table above). When the
// config has vocab_size 0 it is taken from the embedding. Fails with BadInput naming the tensor
// and its file (or model->source for a missing tensor).
Status BindWeights(LoadedModel* model);

// "[64,32]"
std::string ShapeString(const std::vector<int64_t>& shape);

// A tensor of f32, f16 or bf16 elements converted to f32 (any shape, flattened).
StatusOr<std::vector<float>> ToF32(const TensorInfo& t);

}  // namespace ts
