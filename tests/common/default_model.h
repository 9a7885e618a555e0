// Where tests find the real default model (SmolLM2-135M-Instruct, GGUF Q4_1): $TS_MODEL_PATH,
// else the cache directory scripts/fetch-model.sh fills ($TS_CACHE_DIR, $XDG_CACHE_HOME/tokenswift
// or ~/.cache/tokenswift, then models/). The README test command fetches it, so in CI it exists.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <string>

namespace ts::testing_paths {

inline constexpr char kDefaultModelFile[] = "SmolLM2-135M-Instruct.Q4_1.gguf";

// The model's path, or "" when it is not there.
inline std::string DefaultModelPath() {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (const char* p = std::getenv("TS_MODEL_PATH"); p != nullptr && *p != '\0') {
    if (fs::is_regular_file(p, ec)) return p;
  }
  fs::path cache;
  if (const char* d = std::getenv("TS_CACHE_DIR"); d != nullptr && *d != '\0') {
    cache = d;
  } else if (const char* x = std::getenv("XDG_CACHE_HOME"); x != nullptr && *x != '\0') {
    cache = fs::path(x) / "tokenswift";
  } else if (const char* h = std::getenv("HOME"); h != nullptr && *h != '\0') {
    cache = fs::path(h) / ".cache" / "tokenswift";
  }
  const fs::path model = cache / "models" / kDefaultModelFile;
  return !cache.empty() && fs::is_regular_file(model, ec) ? model.string() : "";
}

}  // namespace ts::testing_paths
