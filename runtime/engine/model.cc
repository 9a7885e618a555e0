#include "runtime/engine/model.h"

#include <utility>

namespace ts {

StatusOr<Model> LoadModel(const std::string& path, bool require_tokenizer) {
  Model model;
  TS_ASSIGN_OR_RETURN(model.files, LoadModelFiles(path));
  if (model.files->gguf_vocab.has_value()) {
    TS_ASSIGN_OR_RETURN(model.tokenizer, MakeGgufTokenizer(*model.files->gguf_vocab, path));
  } else if (!model.files->tokenizer_json.empty()) {
    TS_ASSIGN_OR_RETURN(model.tokenizer, LoadHfTokenizer(model.files->tokenizer_json));
  } else if (require_tokenizer) {
    return BadInput(path,
                    ": no tokenizer (expected tokenizer.json beside config.json or "
                    "tokenizer.ggml.* keys in the GGUF file)");
  }
  return model;
}

}  // namespace ts
