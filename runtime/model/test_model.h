// Tiny deterministic HF model directories for tests (`tokenswift make-test-model`).
//
// A preset is a ModelConfig plus a seed. WriteTestModel writes config.json,
// generation_config.json and model.safetensors in HF naming, loadable unchanged by
// transformers' AutoModelForCausalLM.from_pretrained. Every weight is a pure function of
// (preset seed, tensor name, element index): a counter-based hash (SplitMix64) turned into an
// approximately normal value with integer arithmetic and one float multiply, so the bytes are
// identical on every platform and standard library. Scales keep activations O(1) and logits
// spread (std ~2.5), so golden-logit tests and greedy decoding are not dominated by near-ties:
//   linear weights  std = gain / sqrt(fan_in)   (q/k 1.3, v/gate/up 1.0, o/down 0.7)
//   embed, lm_head  std = 2.5 / sqrt(hidden); tied: 0.5 / sqrt(hidden) and the final norm
//                   5 + 0.5 * noise (a tied untrained model otherwise repeats its input token)
//   norm weights    1 + 0.1 * noise;  q/k/v biases 0.3 * noise
// Golden logits for these presets are in tests/fixtures/golden (scripts/make_golden_logits.py).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "kernels/dtype.h"
#include "runtime/model/config.h"
#include "runtime/model/safetensors_writer.h"

namespace ts {

struct TestModelPreset {
  std::string name;         // "llama-mha", ...
  std::string description;  // one line, for `make-test-model --list`
  uint64_t seed = 0;
  bool write_head_dim = false;         // write "head_dim" into config.json (SmolLM2 does)
  bool rope_type_key_is_type = false;  // rope_scaling uses "type" (Qwen's docs), not "rope_type"
  ModelConfig config;
};

// All presets, in a fixed order.
const std::vector<TestModelPreset>& TestModelPresets();

// BadInput naming the known presets when `name` is not one.
StatusOr<TestModelPreset> FindTestModelPreset(std::string_view name);

// "f32", "bf16" or "f16" -> DType; BadInput otherwise.
StatusOr<DType> ParseTestModelDType(std::string_view name);

// The config.json text of a preset (HF field names, as real llama / qwen2 checkpoints write them).
std::string TestModelConfigJson(const TestModelPreset& preset, DType dtype);

// The generation_config.json text of a preset.
std::string TestModelGenerationConfigJson(const TestModelPreset& preset);

// Every weight of a preset, named as HF names them (lm_head.weight omitted when tied).
std::vector<SafetensorsTensor> TestModelTensors(const TestModelPreset& preset, DType dtype);

// Creates `dir` if needed and writes config.json, generation_config.json, model.safetensors.
Status WriteTestModel(const TestModelPreset& preset, DType dtype, const std::string& dir);

}  // namespace ts
