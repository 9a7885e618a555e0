// `tokenswift make-test-model`: writes a tiny deterministic HF model directory (config.json,
// generation_config.json, model.safetensors) from a preset; see runtime/model/test_model.h.
//   tokenswift make-test-model --preset llama-mha --out DIR [--dtype f32|bf16|f16]
//   tokenswift make-test-model --list
#include <cstdio>
#include <memory>
#include <string>

#include "launch/commands.h"
#include "runtime/model/test_model.h"

namespace ts::cli {
namespace {

struct MakeTestModelOptions {
  std::string preset;
  std::string out;
  std::string dtype = "f32";
  bool list = false;
};

Status RunMakeTestModel(const MakeTestModelOptions& opts) {
  if (opts.list) {
    for (const TestModelPreset& p : TestModelPresets()) {
      std::printf("%-18s %s\n", p.name.c_str(), p.description.c_str());
    }
    return absl::OkStatus();
  }
  if (opts.preset.empty()) return BadInput("--preset: required (see --list)");
  if (opts.out.empty()) return BadInput("--out: required (the model directory to write)");
  TS_ASSIGN_OR_RETURN(const TestModelPreset preset, FindTestModelPreset(opts.preset));
  TS_ASSIGN_OR_RETURN(const DType dtype, ParseTestModelDType(opts.dtype));
  return WriteTestModel(preset, dtype, opts.out);
}

}  // namespace

void RegisterMakeTestModel(CLI::App& app, Status* result) {
  CLI::App* cmd = app.add_subcommand("make-test-model",
                                     "Write a tiny deterministic HF model directory for tests");
  auto opts = std::make_shared<MakeTestModelOptions>();
  cmd->add_option("--preset", opts->preset, "Preset name (see --list)");
  cmd->add_option("--out", opts->out, "Directory to write (created if missing)");
  cmd->add_option("--dtype", opts->dtype, "Weight dtype: f32, bf16 or f16")->capture_default_str();
  cmd->add_flag("--list", opts->list, "List the presets and exit");
  cmd->callback([opts, result] { *result = RunMakeTestModel(*opts); });
}

}  // namespace ts::cli
