#include "launch/cli_common.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#if TS_CUDA
#include "kernels/cuda/cuda_backend.h"
#endif

namespace ts::cli {

std::string CacheDir() {
  if (const char* dir = std::getenv("TS_CACHE_DIR"); dir != nullptr && *dir != '\0') return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg != nullptr && *xdg != '\0') {
    return std::string(xdg) + "/tokenswift";
  }
  const char* home = std::getenv("HOME");
  return std::string(home != nullptr ? home : ".") + "/.cache/tokenswift";
}

std::string DefaultModelPath() { return CacheDir() + "/models/SmolLM2-135M-Instruct.Q4_1.gguf"; }

void AddBackendOptions(CLI::App* app, BackendOptions* options) {
  app->add_option("--device", options->device, "where the model runs: cpu, cuda or cuda:N")
      ->capture_default_str();
  app->add_option("-t,--threads", options->threads, "CPU threads (0 = all hardware threads)")
      ->check(CLI::Range(0, kMaxThreads));
  app->add_option("--kv-dtype", options->kv_dtype, "KV cache element type: bf16 or f32")
      ->capture_default_str();
  app->add_option("-b,--batch-size", options->batch_size, "tokens per prefill forward pass")
      ->capture_default_str()
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
}

void AddSamplingOptions(CLI::App* app, SamplingParams* params) {
  app->add_option("-s,--seed", params->seed, "sampling seed")->capture_default_str();
  app->add_option("--temperature,--temp", params->temperature, "0 = greedy")->capture_default_str();
  app->add_option("--top-p", params->top_p, "nucleus sampling (1 = off)")->capture_default_str();
  app->add_option("--top-k", params->top_k, "top-k sampling (0 = off)")->capture_default_str();
  app->add_option("--min-p", params->min_p, "min-p sampling (0 = off)")->capture_default_str();
  app->add_option("--eta", params->eta, "eta sampling epsilon (0 = off)")->capture_default_str();
  app->add_option("--penalty,--repeat-penalty", params->penalty,
                  "contextual repetition penalty (1 = off)")
      ->capture_default_str();
  app->add_option("--penalty-window,--repeat-last-n", params->penalty_window,
                  "tokens the penalty looks back over")
      ->capture_default_str();
}

StatusOr<DType> ParseKvDtype(const std::string& name) {
  if (name == "f32") return DType::kF32;
  if (name == "bf16") return DType::kBF16;
  return BadInput("--kv-dtype: expected f32 or bf16, got '", name, "'");
}

StatusOr<std::unique_ptr<Backend>> MakeBackend(const BackendOptions& options) {
  const std::string& device = options.device;
  if (device == "cuda" || device.starts_with("cuda:")) {
    int index = 0;
    if (device.size() > 5 && !absl::SimpleAtoi(device.substr(5), &index)) {
      return BadInput("--device: expected cpu, cuda or cuda:N, got '", device, "'");
    }
#if TS_CUDA
    StatusOr<std::unique_ptr<CudaBackend>> cuda = CreateCudaBackend(index);
    if (!cuda.ok()) {
      return RuntimeFailure("--device ", device, ": no usable CUDA device (",
                            cuda.status().message(), ")");
    }
    return std::unique_ptr<Backend>(std::move(*cuda));
#else
    return RuntimeFailure(
        "--device ", device,
        ": this build has no CUDA backend (nvcc was not found at configure time)");
#endif
  }
  if (device != "cpu") {
    return BadInput("--device: expected cpu, cuda or cuda:N, got '", device, "'");
  }
  int threads = options.threads;
  if (threads <= 0) threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return MakeCpuBackend(threads);
}

Status CheckWritable(const std::string& path, const std::string& flag) {
  std::error_code ec;
  const bool existed = std::filesystem::exists(path, ec);
  {
    std::ofstream out(path, std::ios::app);
    if (!out) return RuntimeFailure(flag, ": cannot write '", path, "'");
  }
  if (!existed) std::filesystem::remove(path, ec);
  return absl::OkStatus();
}

Status WriteJson(const std::string& path, const nlohmann::json& json) {
  std::ofstream out(path);
  if (!out) return RuntimeFailure(path, ": cannot open for writing");
  out << json.dump(2) << "\n";
  out.close();  // the bytes reach the file (or fail to) here, not at the destructor
  if (!out) return RuntimeFailure(path, ": write failed (the statistics were not saved)");
  return absl::OkStatus();
}

StatusOr<std::string> ReadFile(const std::string& path, const std::string& flag) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return BadInput(flag, ": cannot read '", path, "'");
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

StatusOr<std::string> ApplyChatTemplate(const Tokenizer& tokenizer, const std::string& prompt) {
  // ChatML, the template of SmolLM2 and Qwen2 instruct models.
  const std::vector<int32_t> start = tokenizer.Encode("<|im_start|>", false);
  if (start.size() != 1 || !tokenizer.IsControl(start[0])) {
    return BadInput("--chat: the model's vocabulary has no <|im_start|> token (ChatML)");
  }
  return "<|im_start|>user\n" + prompt + "<|im_end|>\n<|im_start|>assistant\n";
}

}  // namespace ts::cli
