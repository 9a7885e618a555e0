// Pieces shared by the CLI subcommands: default paths, backend and model set-up, JSON output.
#pragma once

#include <charconv>
#include <limits>
#include <memory>
#include <string>

#include "CLI/CLI.hpp"
#include "common/status.h"
#include "kernels/backend.h"
#include "nlohmann/json.hpp"
#include "runtime/sampling/sampling_params.h"
#include "runtime/tokenizer/tokenizer.h"

namespace ts::cli {

// $TS_CACHE_DIR, else $XDG_CACHE_HOME/tokenswift, else ~/.cache/tokenswift.
std::string CacheDir();
// The default model: SmolLM2-135M-Instruct Q4_1 inside the cache directory.
std::string DefaultModelPath();

// The most CPU threads --threads accepts (a thread pool of more is a typo, not a machine).
inline constexpr int kMaxThreads = 1024;
// The longest context (prompt + new tokens) flags accept: positions and cache slots are int32,
// and a verify tree writes past the committed prefix.
inline constexpr int64_t kMaxPositions = int64_t{1} << 30;

// A check for an integer flag: the whole text is one integer of T within [lo, hi]. CLI11 2.1
// alone wraps "-5" into an unsigned flag and saturates "99999999999999999999"; this refuses both:
// "--seed: expected an integer in 0..18446744073709551615, got '-5'".
template <typename T>
CLI::Validator IntegerIn(T lo = std::numeric_limits<T>::min(),
                         T hi = std::numeric_limits<T>::max()) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        T value{};
        const char* end = text.data() + text.size();
        const auto [ptr, ec] = std::from_chars(text.data(), end, value);
        if (ec == std::errc() && ptr == end && value >= lo && value <= hi) return {};
        return "expected an integer in " + std::to_string(lo) + ".." + std::to_string(hi) +
               ", got '" + text + "'";
      },
      "INT in " + std::to_string(lo) + ".." + std::to_string(hi));
}

struct BackendOptions {
  std::string device = "cpu";  // cpu | cuda | cuda:N
  int threads = 0;             // 0: all hardware threads
  // bf16: half the bytes of f32, faster at every verify size on the CPU, and no measurable
  // perplexity cost (SmolLM2 on GPL-3: 15.6375 vs 15.6524 with f32).
  std::string kv_dtype = "bf16";
  int64_t batch_size = 256;  // prefill chunk
};
void AddBackendOptions(CLI::App* app, BackendOptions* options);
StatusOr<std::unique_ptr<Backend>> MakeBackend(const BackendOptions& options);
StatusOr<DType> ParseKvDtype(const std::string& name);

// The sampling flags shared by generate and bench, llama.cpp spellings as aliases: -s/--seed,
// --temperature/--temp, --top-p, --top-k, --min-p, --eta, --penalty/--repeat-penalty,
// --penalty-window/--repeat-last-n. Defaults shown in --help are *params as passed in (set the
// command's defaults first). Values are checked later by Validate(SamplingParams).
void AddSamplingOptions(CLI::App* app, SamplingParams* params);

// Before a long run: RuntimeFailure naming `flag` when `path` cannot be written, so results are
// not computed only to be lost at the end. Leaves no file behind where there was none.
Status CheckWritable(const std::string& path, const std::string& flag);
Status WriteJson(const std::string& path, const nlohmann::json& json);
StatusOr<std::string> ReadFile(const std::string& path, const std::string& flag);

// The prompt wrapped in the model's chat template (ChatML, the template of SmolLM2 and Qwen2
// instruct models); BadInput naming --chat when the vocabulary has no <|im_start|> token.
StatusOr<std::string> ApplyChatTemplate(const Tokenizer& tokenizer, const std::string& prompt);

}  // namespace ts::cli
