// libFuzzer target: a GGUF file from bytes, through parsing, config, vocabulary and weight
// binding. Any outcome but a BadInput status (a crash, a sanitizer report, another status code)
// is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "runtime/model/gguf_model.h"
#include "runtime/model/loader.h"
#include "runtime/model/weight_names.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ts::LoadedModel model;
  model.source = "fuzz.gguf";
  ts::Status s = ts::ReadGgufModel(data, size, "fuzz.gguf", &model);
  if (s.ok()) s = ts::BindWeights(&model);
  if (!s.ok() && s.code() != absl::StatusCode::kInvalidArgument) std::abort();
  return 0;
}
