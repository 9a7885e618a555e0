// An HF model directory as a model: config.json (+ generation_config.json), tokenizer.json, and
// the tensors of model.safetensors or of the shards named by model.safetensors.index.json
// ({"weight_map": {tensor name: shard file name}}; every shard is mapped once, and every
// weight_map entry must be found in the shard it names).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "common/status.h"
#include "runtime/model/loader.h"

namespace ts {

// Parses one safetensors file's bytes and appends its tensors (pointing into `data`, which must
// outlive the model) to model->tensors; a name already present is an error.
Status AddSafetensorsTensors(const uint8_t* data, size_t size, const std::string& name,
                             LoadedModel* model);

// Reads the directory `dir` into model (format, config, tokenizer_json, files, tensors). Does
// not bind weights.
Status ReadHfModelDir(const std::string& dir, LoadedModel* model);

}  // namespace ts
