#include "runtime/model/safetensors_model.h"

#include <exception>
#include <filesystem>
#include <map>
#include <set>
#include <string_view>
#include <unordered_set>
#include <utility>

#include "nlohmann/json.hpp"
#include "runtime/common/mapped_file.h"
#include "runtime/model/hf_config.h"
#include "runtime/model/safetensors.h"

namespace ts {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

bool IsFile(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

// Maps `path`, keeps the mapping alive in model->files and returns it.
StatusOr<const MappedFile*> MapInto(const std::string& path, LoadedModel* model) {
  TS_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(path));
  model->files.push_back(std::move(file));
  return model->files.back().get();
}

// Reads weight_map of a sharded index: tensor name -> shard file name.
StatusOr<std::map<std::string, std::string>> ReadIndex(std::string_view text,
                                                       const std::string& name) {
  const json j = json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return BadInput(name, ": invalid JSON");
  if (!j.is_object()) return BadInput(name, ": expected a JSON object");
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object()) {
    return BadInput(name, ": field 'weight_map': missing or not an object");
  }
  std::map<std::string, std::string> out;
  for (const auto& [tensor, shard] : wm->items()) {
    if (!shard.is_string()) {
      return BadInput(name, ": field 'weight_map': entry '", tensor, "' is not a file name");
    }
    const std::string& file = shard.get_ref<const std::string&>();
    // A shard is a file next to the index: no directories, no way out of the model directory.
    if (file.empty() || file == "." || file == ".." ||
        file.find_first_of("/\\") != std::string::npos) {
      return BadInput(name, ": field 'weight_map': entry '", tensor, "' names '", file,
                      "', not a file name in the model directory");
    }
    out.emplace(tensor, file);
  }
  if (out.empty()) return BadInput(name, ": field 'weight_map': empty");
  return out;
}

Status ReadShards(const fs::path& dir, const fs::path& index_path, LoadedModel* model) {
  TS_ASSIGN_OR_RETURN(const MappedFile* index, MapInto(index_path.string(), model));
  TS_ASSIGN_OR_RETURN(auto weight_map, ReadIndex(index->view(), index->path()));
  std::set<std::string> shards;
  for (const auto& [tensor, shard] : weight_map) shards.insert(shard);
  std::map<std::string, std::unordered_set<std::string>> names_in_shard;
  for (const std::string& shard : shards) {
    TS_ASSIGN_OR_RETURN(const MappedFile* f, MapInto((dir / shard).string(), model));
    const size_t first = model->tensors.size();
    TS_RETURN_IF_ERROR(AddSafetensorsTensors(f->data(), f->size(), f->path(), model));
    for (size_t k = first; k < model->tensors.size(); ++k) {
      names_in_shard[shard].insert(model->tensors[k].name);
    }
  }
  for (const auto& [tensor, shard] : weight_map) {
    if (names_in_shard[shard].count(tensor) == 0) {
      return BadInput(index->path(), ": field 'weight_map': tensor '", tensor,
                      "' is not in shard '", shard, "'");
    }
  }
  return absl::OkStatus();
}

}  // namespace

Status AddSafetensorsTensors(const uint8_t* data, size_t size, const std::string& name,
                             LoadedModel* model) {
  TS_ASSIGN_OR_RETURN(SafetensorsHeader header, ParseSafetensors(data, size, name));
  std::unordered_set<std::string_view> existing;
  for (const TensorInfo& t : model->tensors) existing.insert(t.name);
  for (SafetensorsEntry& e : header.tensors) {
    if (existing.count(e.name) != 0) {
      return BadInput(name, ": tensor '", e.name, "': also present in another file");
    }
  }
  model->tensors.reserve(model->tensors.size() + header.tensors.size());
  for (SafetensorsEntry& e : header.tensors) {
    TensorInfo t;
    t.name = std::move(e.name);
    t.file = name;
    t.dtype = e.dtype;
    t.shape = std::move(e.shape);
    t.data = data + e.offset;
    t.nbytes = static_cast<size_t>(e.nbytes);
    model->tensors.push_back(std::move(t));
  }
  return absl::OkStatus();
}

Status ReadHfModelDir(const std::string& dir_name, LoadedModel* model) {
  const fs::path dir(dir_name);
  model->format = "safetensors";
  const fs::path config_path = dir / "config.json";
  if (!IsFile(config_path)) return BadInput(config_path.string(), ": missing (HF model directory)");
  {
    TS_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> f, MappedFile::Open(config_path.string()));
    TS_ASSIGN_OR_RETURN(model->config, ParseHfConfig(f->view(), f->path()));
  }
  const fs::path gen_path = dir / "generation_config.json";
  if (IsFile(gen_path)) {
    TS_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> f, MappedFile::Open(gen_path.string()));
    TS_RETURN_IF_ERROR(ApplyGenerationConfig(f->view(), f->path(), &model->config));
  }
  const fs::path tokenizer_path = dir / "tokenizer.json";
  if (IsFile(tokenizer_path)) model->tokenizer_json = tokenizer_path.string();

  const fs::path index_path = dir / "model.safetensors.index.json";
  if (IsFile(index_path)) return ReadShards(dir, index_path, model);
  const fs::path single = dir / "model.safetensors";
  if (!IsFile(single)) {
    return BadInput(dir_name, ": no model.safetensors or model.safetensors.index.json");
  }
  TS_ASSIGN_OR_RETURN(const MappedFile* f, MapInto(single.string(), model));
  return AddSafetensorsTensors(f->data(), f->size(), f->path(), model);
}

}  // namespace ts
