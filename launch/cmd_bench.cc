// `tokenswift bench`: decode speed on a fixed-size prompt, written as JSON and Markdown.
// Prompt tokens come from a text file (tokenized, repeated and cut to --prompt-tokens), so that
// another engine (scripts/bench_llamacpp.py) can be run on exactly the same ids.
#include <cstdio>
#include <fstream>
#include <string>

#include "launch/cli_common.h"
#include "launch/commands.h"
#include "runtime/decode/ar_decoder.h"
#include "runtime/engine/generator.h"
#include "runtime/engine/model.h"
#include "runtime/engine/text_stats.h"

namespace ts::cli {
namespace {

struct BenchArgs {
  std::string model;
  std::string mode = "ar";
  std::string prompt_file;
  int64_t prompt_tokens = 512;
  int64_t gen_tokens = 512;
  SamplingParams sampling;  // greedy by default
  std::string json;
  std::string markdown;
  std::string prompt_ids_out;
  BackendOptions backend;
};

constexpr char kDefaultBenchText[] =
    "The history of the lighthouse is a history of people who kept a light burning through "
    "long nights so that others could find their way. Each keeper wrote in a log: the weather, "
    "the ships that passed, the oil that was used, and the small repairs that kept the lamp "
    "turning. ";

Status RunBench(const BenchArgs& args) {
  TS_RETURN_IF_ERROR(Validate(args.sampling));
  if (args.mode != "ar") return BadInput("--mode ", args.mode, ": only ar is available yet");
  if (args.prompt_tokens < 1 || args.gen_tokens < 1) {
    return BadInput("--prompt-tokens / --gen-tokens: expected at least 1");
  }
  TS_ASSIGN_OR_RETURN(const DType kv_dtype, ParseKvDtype(args.backend.kv_dtype));
  std::string text = kDefaultBenchText;
  if (!args.prompt_file.empty()) {
    TS_ASSIGN_OR_RETURN(text, ReadFile(args.prompt_file, "--prompt-file"));
  }
  TS_ASSIGN_OR_RETURN(Model model, LoadModel(args.model, /*require_tokenizer=*/true));
  const ModelConfig& config = model.config();
  const std::vector<int32_t> text_ids = model.tokenizer->Encode(text, /*add_special=*/true);
  if (text_ids.empty()) return BadInput("--prompt-file: encodes to no tokens");
  std::vector<int32_t> prompt;
  while (static_cast<int64_t>(prompt.size()) < args.prompt_tokens) {
    for (int32_t id : text_ids) {
      if (static_cast<int64_t>(prompt.size()) == args.prompt_tokens) break;
      prompt.push_back(id);
    }
  }
  if (!args.prompt_ids_out.empty()) {
    std::ofstream out(args.prompt_ids_out);
    if (!out) return BadInput("--prompt-ids-out: cannot open '", args.prompt_ids_out, "'");
    for (int32_t id : prompt) out << id << "\n";
  }
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, MakeBackend(args.backend));
  TS_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
                      KvCache::Create(config, args.prompt_tokens + args.gen_tokens, kv_dtype));
  Transformer transformer(config, model.weights(), backend.get(), args.backend.batch_size);
  ArDecoder decoder(&transformer, cache.get(), args.sampling);
  GenerationLimits limits;
  limits.max_new_tokens = args.gen_tokens;
  limits.ignore_eos = true;
  TS_ASSIGN_OR_RETURN(GenerationResult result, Generate(decoder, prompt, limits, nullptr));

  const double prefill_tps = args.prompt_tokens / result.prefill_seconds;
  const double decode_tps = result.tokens.size() / result.decode_seconds;
  nlohmann::json j;
  j["engine"] = "tokenswift";
  j["backend"] = backend->Name();
  j["mode"] = args.mode;
  j["model"] = args.model;
  j["threads"] = args.backend.threads;
  j["prompt_tokens"] = args.prompt_tokens;
  j["generated_tokens"] = static_cast<int64_t>(result.tokens.size());
  j["prefill_seconds"] = result.prefill_seconds;
  j["prefill_tokens_per_second"] = prefill_tps;
  j["seconds"] = result.decode_seconds;
  j["tokens_per_second"] = decode_tps;
  j["peak_rss_bytes"] = PeakRssBytes();
  j["generated_ids"] = result.tokens;
  std::printf(
      "tokenswift bench: mode %s, %s, prompt %lld tokens at %.1f tok/s, "
      "generated %zu tokens at %.1f tok/s\n",
      args.mode.c_str(), backend->Name().c_str(), static_cast<long long>(args.prompt_tokens),
      prefill_tps, result.tokens.size(), decode_tps);
  if (!args.json.empty()) TS_RETURN_IF_ERROR(WriteJson(args.json, j));
  if (!args.markdown.empty()) {
    std::ofstream md(args.markdown);
    if (!md) return BadInput("--markdown: cannot open '", args.markdown, "'");
    md << "| engine | mode | threads | prompt | prefill tok/s | generated | decode tok/s |\n"
       << "|---|---|---|---|---|---|---|\n"
       << "| tokenswift | " << args.mode << " | " << args.backend.threads << " | "
       << args.prompt_tokens << " | " << prefill_tps << " | " << result.tokens.size() << " | "
       << decode_tps << " |\n";
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterBench(CLI::App& app, Status* result) {
  auto args = std::make_shared<BenchArgs>();
  args->model = DefaultModelPath();
  CLI::App* sub = app.add_subcommand("bench", "measure prefill and decode speed");
  sub->add_option("-m,--model", args->model, "GGUF file or HF model directory")
      ->capture_default_str();
  sub->add_option("--mode", args->mode, "ar (tokenswift: coming)")->capture_default_str();
  sub->add_option("--prompt-file", args->prompt_file, "text the prompt tokens are cut from");
  sub->add_option("--prompt-tokens", args->prompt_tokens, "prompt length")->capture_default_str();
  sub->add_option("--gen-tokens", args->gen_tokens, "tokens to generate")->capture_default_str();
  sub->add_option("-s,--seed", args->sampling.seed, "sampling seed")->capture_default_str();
  sub->add_option("--temperature", args->sampling.temperature, "0 = greedy")->capture_default_str();
  sub->add_option("--json", args->json, "write results as JSON");
  sub->add_option("--markdown", args->markdown, "write results as a Markdown table");
  sub->add_option("--prompt-ids-out", args->prompt_ids_out, "write the prompt token ids");
  AddBackendOptions(sub, &args->backend);
  sub->callback([args, result] { *result = RunBench(*args); });
}

}  // namespace ts::cli
