// Pieces shared by the CLI subcommands: default paths, backend and model set-up, JSON output.
#pragma once

#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "kernels/backend.h"
#include "nlohmann/json.hpp"
#include "runtime/common/status.h"

namespace ts::cli {

// $TS_CACHE_DIR, else $XDG_CACHE_HOME/tokenswift, else ~/.cache/tokenswift.
std::string CacheDir();
// The default model: SmolLM2-135M-Instruct Q4_1 inside the cache directory.
std::string DefaultModelPath();

struct BackendOptions {
  int threads = 0;  // 0: all hardware threads
  std::string kv_dtype = "f32";
  int64_t batch_size = 256;  // prefill chunk
};
void AddBackendOptions(CLI::App* app, BackendOptions* options);
StatusOr<std::unique_ptr<Backend>> MakeBackend(const BackendOptions& options);
StatusOr<DType> ParseKvDtype(const std::string& name);

Status WriteJson(const std::string& path, const nlohmann::json& json);
StatusOr<std::string> ReadFile(const std::string& path, const std::string& flag);

}  // namespace ts::cli
