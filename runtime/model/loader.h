// Opens a model from a path: an HF directory (config.json + model.safetensors or
// model.safetensors.index.json with shards) or a GGUF file. Files are memory-mapped; every
// malformed input becomes a one-line BadInput status naming the file and the field.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "common/status.h"
#include "kernels/dtype.h"
#include "runtime/model/config.h"
#include "runtime/model/weights.h"
#include "runtime/tokenizer/vocab.h"

namespace ts {

class MappedFile;

// One tensor as stored in a model file. `shape` is outermost dimension first (PyTorch order):
// a Linear weight is [out, in]; for GGUF this is ggml's ne[] reversed.
struct TensorInfo {
  std::string name;
  std::string file;  // path of the file holding it (for error messages)
  DType dtype = DType::kF32;
  std::vector<int64_t> shape;
  const uint8_t* data = nullptr;  // into a mapped file
  size_t nbytes = 0;
};

struct LoadedModel {
  std::string source;  // the path given
  std::string format;  // "gguf" or "safetensors"
  ModelConfig config;
  ModelWeights weights;                 // views into the mapped files and into owned_f32
  std::optional<VocabData> gguf_vocab;  // the vocabulary embedded in a GGUF file
  std::string tokenizer_json;           // HF directory: path of tokenizer.json when present
  std::vector<TensorInfo> tensors;      // every tensor of the files, in file order

  // Owned storage that the views above point into.
  std::vector<std::unique_ptr<MappedFile>> files;
  std::vector<std::vector<float>> owned_f32;
  LoadedModel();  // out of line, like the destructor: MappedFile is incomplete here
  ~LoadedModel();
};

StatusOr<std::unique_ptr<LoadedModel>> LoadModelFiles(const std::string& path);

// LoadModelFiles without binding `weights`: maps the files and reads config, vocabulary and the
// tensor directory (for `inspect` and for adapters such as draft heads, whose tensors are not
// the transformer's).
StatusOr<std::unique_ptr<LoadedModel>> OpenModelFiles(const std::string& path);

}  // namespace ts
