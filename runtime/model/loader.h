// Opens a model from a path: an HF directory (config.json + model.safetensors or
// model.safetensors.index.json with shards) or a GGUF file. Files are memory-mapped; every
// malformed input becomes a one-line BadInput status naming the file and the field.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/common/status.h"
#include "runtime/model/config.h"
#include "runtime/model/weights.h"
#include "runtime/tokenizer/vocab.h"

namespace ts {

class MappedFile;

struct LoadedModel {
  std::string source;   // the path given
  std::string format;   // "gguf" or "safetensors"
  ModelConfig config;
  ModelWeights weights;  // views into the mapped files and into owned_f32
  std::optional<VocabData> gguf_vocab;  // the vocabulary embedded in a GGUF file
  std::string tokenizer_json;           // HF directory: path of tokenizer.json when present

  // Owned storage that the views above point into.
  std::vector<std::unique_ptr<MappedFile>> files;
  std::vector<std::vector<float>> owned_f32;
  ~LoadedModel();
};

StatusOr<std::unique_ptr<LoadedModel>> LoadModelFiles(const std::string& path);

}  // namespace ts
