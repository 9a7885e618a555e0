// libFuzzer target: HF config.json text, and the same text as generation_config.json. Any
// outcome but a BadInput status is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "runtime/model/config.h"
#include "runtime/model/hf_config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  ts::StatusOr<ts::ModelConfig> c = ts::ParseHfConfig(text, "config.json");
  if (!c.ok() && c.status().code() != absl::StatusCode::kInvalidArgument) std::abort();
  ts::ModelConfig config = c.ok() ? *c : ts::ModelConfig{};
  const ts::Status s = ts::ApplyGenerationConfig(text, "generation_config.json", &config);
  if (!s.ok() && s.code() != absl::StatusCode::kInvalidArgument) std::abort();
  return 0;
}
