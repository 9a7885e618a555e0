// `tokenswift train-heads`: trains TokenSwift draft heads for a model (base model frozen) and
// writes them as safetensors with the released tensor names, loadable by `generate --heads`.
//
// Pipeline: tokens (a text file cut into --seq-len sequences, or the model's own generations:
// self-distillation, runtime/train/head_data.h) -> the frozen model's hidden states, computed
// once -> the last --eval-share of the rows held out -> epochs of AdamW on the heads
// (runtime/train/head_trainer.h) -> per-head top-1 / top-3 accuracy on the held-out rows before
// and after training, in the log and in --stats-json.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "launch/cli_common.h"
#include "launch/commands.h"
#include "nlohmann/json.hpp"
#include "runtime/decode/draft_heads.h"
#include "runtime/engine/model.h"
#include "runtime/model/safetensors_writer.h"
#include "runtime/train/head_data.h"
#include "runtime/train/head_trainer.h"
#include "spdlog/spdlog.h"

namespace ts::cli {
namespace {

struct TrainHeadsArgs {
  std::string model;
  std::vector<std::string> data;
  std::string samples;
  std::string hidden_cache;  // directory of cached hidden-state rows
  std::string output;
  std::string dtype = "bf16";
  int64_t tokens = -1;       // self-distilled training tokens; -1: 32768 without --data, else 0
  int64_t eval_tokens = -1;  // self-distilled held-out tokens; -1: a tenth of tokens (or none)
  int64_t seq_len = 2048;
  int64_t draft_vocab = 8192;  // 0: the whole vocabulary
  double soft_targets = 0.0;   // weight of the model's own distribution in the targets
  bool token_input = false;    // heads also read the token after their row
  int64_t token_mlp = 0;       // units of head 0's token MLP
  int epochs = 3;
  double lr = 2e-2;  // see HeadTrainerOptions::lr
  int64_t batch_size = 64;
  int64_t warmup = 50;
  double weight_decay = 0.0;
  double head_loss_decay = 0.8;
  uint64_t seed = 0;
  float temperature = 0.9f;
  std::string stats_json;
  double eval_share = 0.1;
  BackendOptions backend;
};

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

nlohmann::json MetricsJson(const train::HeadMetrics& m) {
  nlohmann::json j;
  j["loss"] = m.loss;
  j["top1"] = m.top1;
  j["top3"] = m.top3;
  j["objective"] = m.objective;
  j["rows"] = m.rows;
  if (!m.coverage.empty()) j["draft_vocab_coverage"] = m.coverage;
  return j;
}

// The --data files' names (not their paths: stats and heads files are committed and shared),
// plus self-distillation.
std::string DataDescription(const TrainHeadsArgs& a) {
  std::string out;
  for (const std::string& p : a.data) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", std::filesystem::path(p).filename().string());
  }
  if (a.tokens != 0 && !(a.tokens < 0 && !a.data.empty())) {
    absl::StrAppend(&out, out.empty() ? "" : " + ", "self-distillation");
  }
  return out;
}

void LogMetrics(const char* what, const train::HeadMetrics& m) {
  std::string heads;
  for (size_t i = 0; i < m.loss.size(); ++i) {
    heads += fmt::format(" | head {}: loss {:.3f} top1 {:.3f} top3 {:.3f}", i, m.loss[i], m.top1[i],
                         m.top3[i]);
    if (i < m.coverage.size() && m.coverage[i] < 1) {
      heads += fmt::format(" (draft vocab covers {:.3f})", m.coverage[i]);
    }
  }
  spdlog::info("train-heads: {} ({} rows): objective {:.4f}{}", what, m.rows, m.objective, heads);
}

Status Validate(const TrainHeadsArgs& a) {
  if (a.output.empty()) return BadInput("--output: required (the safetensors file to write)");
  if (a.dtype != "f32" && a.dtype != "bf16" && a.dtype != "f16") {
    return BadInput("--dtype: expected f32, bf16 or f16, got '", a.dtype, "'");
  }
  if (a.data.empty() && a.tokens >= 0 && a.tokens < 16) {
    return BadInput("--tokens: expected at least 16 without --data, got ", a.tokens);
  }
  if (a.tokens < -1 || a.eval_tokens < -1) return BadInput("--tokens/--eval-tokens: expected >= 0");
  if (a.draft_vocab < 0) return BadInput("--draft-vocab: expected >= 0, got ", a.draft_vocab);
  if (a.token_mlp < 0 || (a.token_mlp > 0 && !a.token_input)) {
    return BadInput("--token-mlp: expected 0, or a positive size together with --token-input; got ",
                    a.token_mlp, a.token_input ? "" : " without --token-input");
  }
  if (!(a.soft_targets >= 0 && a.soft_targets <= 1)) {
    return BadInput("--soft-targets: expected a weight in [0, 1], got ", a.soft_targets);
  }
  if (a.seq_len < 8) return BadInput("--seq-len: expected at least 8, got ", a.seq_len);
  if (a.epochs < 1) return BadInput("--epochs: expected at least 1, got ", a.epochs);
  if (!(a.lr > 0) || !std::isfinite(a.lr)) return BadInput("--lr: expected a positive value");
  if (a.batch_size < 1 || a.batch_size > 65536) {
    return BadInput("--batch-size: expected 1..65536 rows, got ", a.batch_size);
  }
  if (a.warmup < 0) return BadInput("--warmup: expected at least 0 steps, got ", a.warmup);
  if (!(a.weight_decay >= 0) || !std::isfinite(a.weight_decay)) {
    return BadInput("--weight-decay: expected a value >= 0");
  }
  if (!(a.head_loss_decay > 0) || !std::isfinite(a.head_loss_decay)) {
    return BadInput("--head-loss-decay: expected a positive value");
  }
  if (!(a.eval_share >= 0 && a.eval_share < 1)) {
    return BadInput("--eval-share: expected a value in [0, 1), got ", a.eval_share);
  }
  if (!(a.temperature >= 0) || !std::isfinite(a.temperature)) {
    return BadInput("--temperature: expected a value >= 0");
  }
  return absl::OkStatus();
}

// The training and held-out rows, with what it took to make them.
struct PreparedData {
  size_t sequences = 0;
  train::HeadDataset train;
  train::HeadDataset eval;
  double data_seconds = 0;    // reading + tokenizing, or generating
  double hidden_seconds = 0;  // the frozen model's hidden states
  double hidden_rms = 0;      // mean over rows of the hidden states' root mean square
};

// Self-distilled sequences of `tokens` tokens (held-out prompts or training prompts), read from
// the `cache` file when it exists, else generated and written there (when cache is set).
StatusOr<std::vector<train::TokenSequence>> SelfDistilled(const TrainHeadsArgs& args,
                                                          const Model& model, Backend* backend,
                                                          int64_t tokens, bool held_out,
                                                          const std::string& cache) {
  if (tokens <= 0) return std::vector<train::TokenSequence>{};
  if (!cache.empty() && std::filesystem::exists(cache)) {
    TS_ASSIGN_OR_RETURN(auto sequences, train::ReadSequences(cache, model.config().vocab_size));
    spdlog::info("train-heads: {} self-distillation sequences from {}", sequences.size(), cache);
    return sequences;
  }
  train::SelfDistillOptions sd;
  sd.tokens = tokens;
  sd.seq_len = args.seq_len;
  sd.held_out = held_out;
  sd.sampling.seed = args.seed;
  sd.sampling.temperature = args.temperature;
  sd.sampling.min_p = 0.1f;
  sd.sampling.penalty = 1.2f;
  sd.sampling.penalty_window = 1024;
  TS_ASSIGN_OR_RETURN(auto sequences, train::GenerateSelfDistillation(model, backend, sd));
  if (!cache.empty()) TS_RETURN_IF_ERROR(train::WriteSequences(cache, sequences));
  return sequences;
}

// Token sequences (the --data texts and/or self-distillation), then hidden states and the split:
// held-out rows are self-distilled from held-out prompts when --eval-tokens > 0, else the last
// --eval-share of the rows.
StatusOr<PreparedData> PrepareData(const TrainHeadsArgs& args, std::span<const std::string> texts,
                                   const Model& model, Backend* backend) {
  PreparedData out;
  auto phase = std::chrono::steady_clock::now();
  std::vector<train::TokenSequence> sequences;
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<int32_t> ids = model.tokenizer->Encode(texts[i], /*add_special=*/true);
    std::vector<train::TokenSequence> cut = train::CutIntoSequences(ids, args.seq_len);
    if (cut.empty()) return BadInput("--data: '", args.data[i], "' has fewer than 8 tokens");
    spdlog::info("train-heads: {}: {} tokens", args.data[i], ids.size());
    for (auto& s : cut) sequences.push_back(std::move(s));
  }
  const int64_t tokens = args.tokens >= 0 ? args.tokens : (args.data.empty() ? 32768 : 0);
  const int64_t eval_tokens = args.eval_tokens >= 0 ? args.eval_tokens : tokens / 10;
  TS_ASSIGN_OR_RETURN(
      auto own, SelfDistilled(args, model, backend, tokens, /*held_out=*/false, args.samples));
  for (auto& s : own) sequences.push_back(std::move(s));
  TS_ASSIGN_OR_RETURN(auto held,
                      SelfDistilled(args, model, backend, eval_tokens, /*held_out=*/true,
                                    args.samples.empty() ? "" : args.samples + ".heldout"));
  out.sequences = sequences.size();
  out.data_seconds = Seconds(phase);

  phase = std::chrono::steady_clock::now();
  train::HeadDataset& data = out.train;
  data.num_heads = kTokenSwiftDraftHeads;
  data.hidden_size = model.config().hidden_size;
  // The cache key's model part: file name and size (the rows also depend on the CPU's kernels,
  // which is why the cache lives on the machine, not in the repository).
  std::error_code ec;
  const auto model_size = std::filesystem::file_size(args.model, ec);
  const std::string model_id =
      absl::StrCat(std::filesystem::path(args.model).filename().string(), ":", ec ? 0 : model_size);
  TS_RETURN_IF_ERROR(train::AppendHiddenStatesCached(
      model, backend, sequences, args.backend.batch_size, args.hidden_cache, model_id, &data));
  if (held.empty()) {
    out.eval = train::SplitTail(data, args.eval_share);
  } else {
    out.eval.num_heads = data.num_heads;
    out.eval.hidden_size = data.hidden_size;
    TS_RETURN_IF_ERROR(train::AppendHiddenStatesCached(
        model, backend, held, args.backend.batch_size, args.hidden_cache, model_id, &out.eval));
  }
  out.hidden_seconds = Seconds(phase);
  if (data.rows() == 0) return BadInput("--data / --tokens: no training rows");
  double rms_sum = 0;
  for (int64_t r = 0; r < data.rows(); ++r) {
    double ss = 0;
    for (int64_t c = 0; c < data.hidden_size; ++c) {
      const double x = data.hidden[r * data.hidden_size + c];
      ss += x * x;
    }
    rms_sum += std::sqrt(ss / static_cast<double>(data.hidden_size));
  }
  out.hidden_rms = rms_sum / static_cast<double>(data.rows());
  spdlog::info(
      "train-heads: {} sequences, {} tokens ({:.1f} s); hidden states {:.1f} s (mean rms {:.2f}): "
      "{} training rows, {} held-out rows, {:.1f} MiB in memory",
      out.sequences, data.tokens, out.data_seconds, out.hidden_seconds, out.hidden_rms, data.rows(),
      out.eval.rows(), (data.bytes() + out.eval.bytes()) / 1048576.0);
  return out;
}

Status RunTrainHeads(const TrainHeadsArgs& args) {
  TS_RETURN_IF_ERROR(Validate(args));
  // Training takes minutes to hours: refuse outputs that cannot be written before it starts.
  TS_RETURN_IF_ERROR(CheckWritable(args.output, "--output"));
  if (!args.stats_json.empty()) TS_RETURN_IF_ERROR(CheckWritable(args.stats_json, "--stats-json"));
  const DType out_dtype =
      args.dtype == "f32" ? DType::kF32 : (args.dtype == "f16" ? DType::kF16 : DType::kBF16);
  std::vector<std::string> texts;
  for (const std::string& path : args.data) {
    TS_ASSIGN_OR_RETURN(std::string text, ReadFile(path, "--data"));
    texts.push_back(std::move(text));
  }
  const auto start = std::chrono::steady_clock::now();
  TS_ASSIGN_OR_RETURN(Model model, LoadModel(args.model, /*require_tokenizer=*/true));
  const ModelConfig& config = model.config();
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, MakeBackend(args.backend));
  if (!backend->host_memory()) {
    return BadInput("--device: train-heads runs on the CPU (its trainer is host code), got '",
                    args.backend.device, "'");
  }
  const int threads = args.backend.threads > 0
                          ? args.backend.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  TS_ASSIGN_OR_RETURN(PreparedData prepared, PrepareData(args, texts, model, backend.get()));
  const train::HeadDataset& data = prepared.train;
  const train::HeadDataset& eval = prepared.eval;

  // 3. Training.
  train::HeadTrainerOptions options;
  options.batch_size = args.batch_size;
  options.epochs = args.epochs;
  options.lr = args.lr;
  options.warmup_steps = args.warmup;
  options.weight_decay = args.weight_decay;
  options.head_loss_decay = args.head_loss_decay;
  options.seed = args.seed;
  options.threads = threads;
  options.soft_weight = args.soft_targets;
  options.token_input = args.token_input;
  options.token_mlp = args.token_mlp;
  // The draft vocabulary: the most frequent target tokens of the training rows.
  std::vector<int64_t> freq(static_cast<size_t>(config.vocab_size), 0);
  for (int64_t r = 0; r < data.rows(); ++r) {
    const int32_t t = data.targets[r * data.num_heads];
    if (t >= 0 && t < config.vocab_size) ++freq[t];
  }
  if (args.draft_vocab > 0 && args.draft_vocab < config.vocab_size) {
    std::vector<int32_t> ids(static_cast<size_t>(config.vocab_size));
    for (int32_t j = 0; j < static_cast<int32_t>(ids.size()); ++j) ids[j] = j;
    std::stable_sort(ids.begin(), ids.end(),
                     [&](int32_t a, int32_t b) { return freq[a] > freq[b]; });
    ids.resize(static_cast<size_t>(args.draft_vocab));
    std::sort(ids.begin(), ids.end());
    options.draft_vocab = std::move(ids);
  }
  // Unigram baseline: always proposing the most frequent training target.
  const int32_t unigram_top =
      static_cast<int32_t>(std::max_element(freq.begin(), freq.end()) - freq.begin());
  TS_ASSIGN_OR_RETURN(std::unique_ptr<train::HeadTrainer> trainer,
                      train::HeadTrainer::Create(config, model.weights(), options));
  nlohmann::json stats;
  const auto phase = std::chrono::steady_clock::now();
  if (eval.rows() > 0) {
    const train::HeadMetrics before = trainer->Evaluate(eval);
    LogMetrics("held-out before training", before);
    stats["eval_before"] = MetricsJson(before);
    std::vector<double> unigram(eval.num_heads, 0.0);
    std::vector<int64_t> counted(eval.num_heads, 0);
    for (int64_t r = 0; r < eval.rows(); ++r) {
      for (int i = 0; i < eval.num_heads; ++i) {
        const int32_t t = eval.targets[r * eval.num_heads + i];
        if (t < 0) continue;
        ++counted[i];
        unigram[i] += t == unigram_top ? 1 : 0;
      }
    }
    for (int i = 0; i < eval.num_heads; ++i) unigram[i] /= std::max<int64_t>(counted[i], 1);
    stats["eval_unigram_top1"] = unigram;
    spdlog::info("train-heads: held-out unigram baseline top1 {:.3f} (token {})", unigram[0],
                 unigram_top);
  }
  const int64_t total_steps = trainer->StepsPerEpoch(data.rows()) * args.epochs;
  nlohmann::json epochs = nlohmann::json::array();
  train::HeadMetrics after;
  for (int e = 0; e < args.epochs; ++e) {
    TS_ASSIGN_OR_RETURN(train::HeadMetrics train_metrics,
                        trainer->TrainEpoch(data, e, total_steps));
    LogMetrics(fmt::format("epoch {} training", e + 1).c_str(), train_metrics);
    nlohmann::json ej;
    ej["epoch"] = e + 1;
    ej["train"] = MetricsJson(train_metrics);
    if (eval.rows() > 0) {
      after = trainer->Evaluate(eval);
      LogMetrics(fmt::format("epoch {} held-out", e + 1).c_str(), after);
      ej["eval"] = MetricsJson(after);
    }
    ej["seconds"] = Seconds(phase);
    epochs.push_back(ej);
  }
  const double train_seconds = Seconds(phase);
  if (eval.rows() > 0) {
    const train::ModelAgreement agree = trainer->AgreementWithModel(eval);
    nlohmann::json j;
    j["top1_sampled"] = agree.top1_sampled;
    j["top1_model_argmax"] = agree.top1_argmax;
    j["coupled_acceptance"] = agree.acceptance;
    j["rows"] = agree.rows;
    stats["eval_against_model"] = j;
    for (size_t i = 0; i < agree.rows.size(); ++i) {
      spdlog::info(
          "train-heads: held-out head {}: top1 vs sampled token {:.3f}, vs model argmax {:.3f}, "
          "coupled acceptance (1 - TV) {:.3f} ({} rows)",
          i, agree.top1_sampled[i], agree.top1_argmax[i], agree.acceptance[i], agree.rows[i]);
    }
  }

  // 4. Output.
  std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      // The file name only: heads files are committed and shared.
      {"tokenswift.base_model", std::filesystem::path(args.model).filename().string()},
      {"tokenswift.training_tokens", std::to_string(data.tokens)},
      {"tokenswift.epochs", std::to_string(args.epochs)},
      {"tokenswift.data", DataDescription(args)}};
  if (!options.draft_vocab.empty()) {
    std::string ids;
    for (int32_t id : options.draft_vocab) absl::StrAppend(&ids, ids.empty() ? "" : " ", id);
    metadata[std::string(kDraftVocabKey)] = std::move(ids);
  }
  TS_RETURN_IF_ERROR(WriteSafetensors(args.output, trainer->Tensors(out_dtype), metadata));
  spdlog::info("train-heads: wrote {} ({}) after {:.1f} s", args.output, args.dtype,
               Seconds(start));

  if (!args.stats_json.empty()) {
    // The file name only: stats files are committed beside the heads they describe.
    stats["model"] = std::filesystem::path(args.model).filename().string();
    stats["output"] = args.output;
    stats["data"] = DataDescription(args);
    stats["draft_vocab"] = options.draft_vocab.size();
    stats["soft_targets"] = args.soft_targets;
    stats["token_input"] = args.token_input;
    stats["token_mlp"] = args.token_mlp;
    stats["sequences"] = prepared.sequences;
    stats["tokens"] = data.tokens;
    stats["train_rows"] = data.rows();
    stats["eval_rows"] = eval.rows();
    stats["epochs"] = epochs;
    stats["steps"] = trainer->step();
    stats["batch_size"] = args.batch_size;
    stats["lr"] = args.lr;
    stats["warmup"] = args.warmup;
    stats["weight_decay"] = args.weight_decay;
    stats["head_weights"] =
        std::vector<double>(trainer->head_weights().begin(), trainer->head_weights().end());
    stats["seed"] = args.seed;
    stats["threads"] = threads;
    stats["data_seconds"] = prepared.data_seconds;
    stats["hidden_seconds"] = prepared.hidden_seconds;
    stats["train_seconds"] = train_seconds;
    stats["seconds"] = Seconds(start);
    stats["dataset_bytes"] = data.bytes() + eval.bytes();
    stats["hidden_rms"] = prepared.hidden_rms;
    if (eval.rows() > 0) stats["eval_after"] = MetricsJson(after);
    TS_RETURN_IF_ERROR(WriteJson(args.stats_json, stats));
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterTrainHeads(CLI::App& app, Status* result) {
  auto args = std::make_shared<TrainHeadsArgs>();
  args->model = DefaultModelPath();
  CLI::App* sub = app.add_subcommand(
      "train-heads", "train TokenSwift draft heads on a text file or on the model's own samples");
  sub->add_option("-m,--model", args->model, "GGUF file or HF model directory")
      ->capture_default_str();
  sub->add_option("--data", args->data,
                  "plain-text training files (repeatable); with --tokens, mixed with "
                  "self-distillation");
  sub->add_option("--samples", args->samples,
                  "self-distillation samples cache: read when the file exists, else generated and "
                  "written there");
  sub->add_option("-o,--output", args->output, "safetensors file to write");
  sub->add_option("--dtype", args->dtype, "output tensor type: f32, bf16 or f16")
      ->capture_default_str();
  sub->add_option("--tokens", args->tokens,
                  "self-distilled training tokens (default 32768 without --data, 0 with it)");
  sub->add_option("--eval-tokens", args->eval_tokens,
                  "self-distilled held-out tokens from held-out prompts (default: a tenth of "
                  "--tokens; 0: hold out the last --eval-share of the rows)");
  sub->add_option("--draft-vocab", args->draft_vocab,
                  "heads predict over the K most frequent training tokens (0: whole vocabulary)")
      ->capture_default_str();
  sub->add_option("--soft-targets", args->soft_targets,
                  "weight of the model's own distribution in the targets (0: sampled tokens only)")
      ->capture_default_str();
  sub->add_flag("--token-input", args->token_input,
                "heads also read the token after their row (already sampled when they run): one "
                "more hidden x hidden linear, model.medusa_layers.0.token_linear.weight");
  sub->add_option("--hidden-cache", args->hidden_cache,
                  "directory keeping the model's hidden states over the training sequences, "
                  "reused by later runs on the same sequences");
  sub->add_option("--token-mlp", args->token_mlp,
                  "with --token-input: units of a SiLU MLP over [head 0's normed input; token] "
                  "(0: none)")
      ->capture_default_str();
  sub->add_option("--seq-len", args->seq_len,
                  "tokens per sequence (--data) / generated per prompt (self-distillation)")
      ->capture_default_str();
  sub->add_option("--epochs", args->epochs, "passes over the training rows")->capture_default_str();
  sub->add_option("--lr", args->lr, "peak AdamW learning rate")->capture_default_str();
  sub->add_option("--warmup", args->warmup, "linear warm-up steps")->capture_default_str();
  sub->add_option("--weight-decay", args->weight_decay, "AdamW weight decay of the linear weights")
      ->capture_default_str();
  sub->add_option("--head-loss-decay", args->head_loss_decay, "head i's loss weight is this^i")
      ->capture_default_str();
  sub->add_option("-s,--seed", args->seed, "seed of the samples and the shuffling")
      ->capture_default_str();
  sub->add_option("--temperature", args->temperature, "self-distillation sampling temperature")
      ->capture_default_str();
  sub->add_option("--eval-share", args->eval_share, "share of rows held out for evaluation")
      ->capture_default_str();
  sub->add_option("--stats-json", args->stats_json, "write losses and accuracies as JSON");
  AddBackendOptions(sub, &args->backend);
  // AddBackendOptions' --batch-size is the prefill chunk; here it is the optimiser's minibatch
  // (the hidden-state pass uses the default chunk). KV caches here are always f32.
  sub->remove_option(sub->get_option("--batch-size"));
  sub->remove_option(sub->get_option("--kv-dtype"));
  sub->add_option("-b,--batch-size", args->batch_size, "rows (positions) per optimiser step")
      ->capture_default_str();
  sub->callback([args, result] { *result = RunTrainHeads(*args); });
}

}  // namespace ts::cli
