// `tokenswift score`: per-token log-probabilities and perplexity of a text file.
#include <cstdio>
#include <string>

#include "launch/cli_common.h"
#include "launch/commands.h"
#include "runtime/engine/model.h"
#include "runtime/engine/scorer.h"

namespace ts::cli {
namespace {

struct ScoreArgs {
  std::string model;
  std::string text_file;
  std::string stats_json;
  int64_t ctx_size = 0;
  BackendOptions backend;
};

Status RunScore(const ScoreArgs& args) {
  TS_ASSIGN_OR_RETURN(const DType kv_dtype, ParseKvDtype(args.backend.kv_dtype));
  TS_ASSIGN_OR_RETURN(const std::string text, ReadFile(args.text_file, "--text-file"));
  TS_ASSIGN_OR_RETURN(Model model, LoadModel(args.model, /*require_tokenizer=*/true));
  const ModelConfig& config = model.config();
  // The model's own BOS handling, as HF `tokenizer(text)` and llama.cpp tokenize it.
  const std::vector<int32_t> ids = model.tokenizer->Encode(text, /*add_special=*/true);
  const int64_t window = std::min<int64_t>(args.ctx_size > 0 ? args.ctx_size : config.max_position,
                                           static_cast<int64_t>(ids.size()));
  if (!args.stats_json.empty()) TS_RETURN_IF_ERROR(CheckWritable(args.stats_json, "--stats-json"));
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, MakeBackend(args.backend));
  TS_ASSIGN_OR_RETURN(
      std::unique_ptr<KvCache> cache,
      KvCache::Create(config, std::max<int64_t>(window, 2), kv_dtype, backend.get()));
  TS_ASSIGN_OR_RETURN(std::unique_ptr<PlacedWeights> weights,
                      PlacedWeights::Place(model.weights(), config, *backend));
  Transformer transformer(config, weights->get(), backend.get(), args.backend.batch_size);
  TS_ASSIGN_OR_RETURN(ScoreResult score, ScoreTokens(transformer, *cache, ids, window));
  std::printf("tokens: %zu scored of %zu, window %lld, mean logprob %.6f, perplexity %.4f\n",
              score.logprobs.size(), ids.size(), static_cast<long long>(window), score.mean_logprob,
              score.perplexity);
  if (!args.stats_json.empty()) {
    nlohmann::json j;
    j["model"] = args.model;
    j["text_file"] = args.text_file;
    j["tokens"] = static_cast<int64_t>(score.logprobs.size());
    j["text_tokens"] = static_cast<int64_t>(ids.size());
    j["window"] = window;
    j["mean_logprob"] = score.mean_logprob;
    j["perplexity"] = score.perplexity;
    j["token_ids"] = score.scored_ids;
    j["token_logprobs"] = score.logprobs;
    TS_RETURN_IF_ERROR(WriteJson(args.stats_json, j));
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterScore(CLI::App& app, Status* result) {
  auto args = std::make_shared<ScoreArgs>();
  args->model = DefaultModelPath();
  CLI::App* sub = app.add_subcommand("score", "log-probabilities and perplexity of a text file");
  sub->add_option("-m,--model", args->model, "GGUF file or HF model directory")
      ->capture_default_str();
  sub->add_option("--text-file", args->text_file, "text to score")->required();
  sub->add_option("--stats-json", args->stats_json,
                  "write tokens, mean_logprob, perplexity and per-token log-probabilities");
  sub->add_option("-c,--ctx-size", args->ctx_size,
                  "window for texts longer than the context (default: the model's)");
  AddBackendOptions(sub, &args->backend);
  sub->callback([args, result] { *result = RunScore(*args); });
}

}  // namespace ts::cli
