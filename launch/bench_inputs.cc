// Bench inputs and peak RSS; see bench_inputs.h.
#include "launch/bench_inputs.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "runtime/engine/text_stats.h"

namespace ts::cli {

StatusOr<std::vector<int>> ParseTreeShape(const std::string& text) {
  std::vector<int> shape;
  std::stringstream ss(text);
  std::string item;
  bool ok = !text.empty() && text.back() != ',';
  while (ok && std::getline(ss, item, ',')) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    ok = !item.empty() && *end == '\0' && v >= 1 && v <= 16 && shape.size() < 4;
    shape.push_back(static_cast<int>(v));
  }
  if (!ok) {
    return BadInput("--tree: expected 1 to 4 comma-separated widths in [1, 16] like 1,3,3,3, got '",
                    text, "'");
  }
  return shape;
}

StatusOr<std::vector<int32_t>> ParsePromptIds(const std::string& text, const std::string& file,
                                              int64_t vocab) {
  std::vector<int32_t> ids;
  std::istringstream in(text);
  std::string word;
  while (in >> word) {
    char* end = nullptr;
    const long long id = std::strtoll(word.c_str(), &end, 10);
    if (*end != '\0' || id < 0 || id >= vocab) {
      return BadInput("--prompt-ids: '", word, "' in ", file, " is not a token id in [0, ", vocab,
                      ")");
    }
    ids.push_back(static_cast<int32_t>(id));
  }
  if (ids.empty()) return BadInput("--prompt-ids: ", file, " holds no token ids");
  return ids;
}

std::vector<int32_t> RepeatToLength(const std::vector<int32_t>& source, int64_t n) {
  std::vector<int32_t> out;
  if (source.empty()) return out;
  out.reserve(n);
  while (static_cast<int64_t>(out.size()) < n) out.push_back(source[out.size() % source.size()]);
  return out;
}

StatusOr<std::unique_ptr<DraftHeads>> LoadRandomHeads(const ModelConfig& config, uint64_t seed) {
  namespace fs = std::filesystem;
  const std::string path = (fs::temp_directory_path() /
                            ("tokenswift_bench_heads_" + std::to_string(getpid()) + ".safetensors"))
                               .string();
  const Status written = WriteRandomHeads(path, config.hidden_size, seed);
  std::unique_ptr<DraftHeads> heads;
  Status loaded = written;
  if (written.ok()) {
    StatusOr<std::unique_ptr<DraftHeads>> h = DraftHeads::Load(path, config, /*max_rows=*/1);
    if (h.ok()) heads = std::move(*h);
    loaded = h.status();
  }
  std::error_code ignored;
  fs::remove(path, ignored);  // the heads stay mapped
  TS_RETURN_IF_ERROR(loaded);
  return heads;
}

bool ResetPeakRss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (f == nullptr) return false;
  const bool wrote = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && wrote;
}

int64_t PeakRssSinceResetBytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;  // "... kB"
  }
  return PeakRssBytes();
}

}  // namespace ts::cli
