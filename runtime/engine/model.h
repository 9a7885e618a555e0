// A model ready to run: its files (config, mapped weights) and its tokenizer.
#pragma once

#include <memory>
#include <string>

#include "common/status.h"
#include "runtime/model/loader.h"
#include "runtime/tokenizer/tokenizer.h"

namespace ts {

struct Model {
  std::unique_ptr<LoadedModel> files;
  std::unique_ptr<Tokenizer> tokenizer;  // nullptr for test models that ship none

  const ModelConfig& config() const { return files->config; }
  const ModelWeights& weights() const { return files->weights; }
};

// Loads `path` (GGUF file or HF directory) and its tokenizer (embedded GGUF vocabulary or the
// directory's tokenizer.json). With require_tokenizer, a model without one is an error.
StatusOr<Model> LoadModel(const std::string& path, bool require_tokenizer);

}  // namespace ts
