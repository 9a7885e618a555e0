// LoadModelFiles: dispatches on the path (GGUF file or HF directory), then binds the weights.
#include "runtime/model/loader.h"

#include <cstring>
#include <filesystem>
#include <string_view>
#include <utility>

#include "runtime/common/mapped_file.h"
#include "runtime/model/gguf_model.h"
#include "runtime/model/safetensors_model.h"
#include "runtime/model/weight_names.h"

namespace ts {
namespace {

namespace fs = std::filesystem;

bool EndsWith(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

}  // namespace

LoadedModel::LoadedModel() = default;
LoadedModel::~LoadedModel() = default;

StatusOr<std::unique_ptr<LoadedModel>> OpenModelFiles(const std::string& path) {
  auto model = std::make_unique<LoadedModel>();
  model->source = path;
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return BadInput(path, ": no such file or directory");
  if (fs::is_directory(st)) {
    TS_RETURN_IF_ERROR(ReadHfModelDir(path, model.get()));
    return model;
  }
  TS_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(path));
  if (file->size() >= 4 && std::memcmp(file->data(), "GGUF", 4) == 0) {
    const MappedFile& f = *file;
    model->files.push_back(std::move(file));
    TS_RETURN_IF_ERROR(ReadGgufModel(f.data(), f.size(), path, model.get()));
    return model;
  }
  // A file inside an HF directory (model.safetensors, config.json) stands for the directory.
  const fs::path p(path);
  const std::string base = p.filename().string();
  if (EndsWith(base, ".safetensors") || base == "config.json" ||
      base == "model.safetensors.index.json") {
    const std::string dir = p.has_parent_path() ? p.parent_path().string() : std::string(".");
    TS_RETURN_IF_ERROR(ReadHfModelDir(dir, model.get()));
    return model;
  }
  return BadInput(path, ": not a GGUF file (no 'GGUF' magic) nor an HF model directory");
}

StatusOr<std::unique_ptr<LoadedModel>> LoadModelFiles(const std::string& path) {
  TS_ASSIGN_OR_RETURN(std::unique_ptr<LoadedModel> model, OpenModelFiles(path));
  TS_RETURN_IF_ERROR(BindWeights(model.get()));
  return model;
}

}  // namespace ts
