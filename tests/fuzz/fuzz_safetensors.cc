// libFuzzer target: a safetensors file from bytes, then weight binding against a fixed tiny
// config (the one tests/fuzz/make_seeds.py writes), so that valid-looking inputs reach the
// f16/bf16 conversions. Any outcome but a BadInput status is a bug.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "runtime/model/loader.h"
#include "runtime/model/safetensors_model.h"
#include "runtime/model/weight_names.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  ts::LoadedModel model;
  model.source = "fuzz";
  model.format = "safetensors";
  ts::ModelConfig& c = model.config;
  c.arch = "llama";
  c.vocab_size = 8;
  c.hidden_size = 8;
  c.intermediate_size = 16;
  c.n_layers = 1;
  c.n_heads = 2;
  c.n_kv_heads = 1;
  c.head_dim = 4;
  c.tie_embeddings = true;
  ts::Status s = ts::AddSafetensorsTensors(data, size, "fuzz.safetensors", &model);
  if (s.ok()) s = ts::BindWeights(&model);
  if (!s.ok() && s.code() != absl::StatusCode::kInvalidArgument) std::abort();
  return 0;
}
