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
  std::string data;
  std::string samples;
  std::string output;
  std::string dtype = "bf16";
  int64_t tokens = 32768;
  int64_t seq_len = 2048;
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
  return j;
}

void LogMetrics(const char* what, const train::HeadMetrics& m) {
  std::string heads;
  for (size_t i = 0; i < m.loss.size(); ++i) {
    heads += fmt::format(" | head {}: loss {:.3f} top1 {:.3f} top3 {:.3f}", i, m.loss[i], m.top1[i],
                         m.top3[i]);
  }
  spdlog::info("train-heads: {} ({} rows): objective {:.4f}{}", what, m.rows, m.objective, heads);
}

Status Validate(const TrainHeadsArgs& a) {
  if (a.output.empty()) return BadInput("--output: required (the safetensors file to write)");
  if (a.dtype != "f32" && a.dtype != "bf16" && a.dtype != "f16") {
    return BadInput("--dtype: expected f32, bf16 or f16, got '", a.dtype, "'");
  }
  if (a.data.empty() && a.tokens < 16) return BadInput("--tokens: expected at least 16");
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

// Token sequences (the --data text, or self-distillation), then hidden states and the split.
StatusOr<PreparedData> PrepareData(const TrainHeadsArgs& args, const std::string& text,
                                   const Model& model, Backend* backend) {
  PreparedData out;
  auto phase = std::chrono::steady_clock::now();
  std::vector<train::TokenSequence> sequences;
  if (!args.data.empty()) {
    const std::vector<int32_t> ids = model.tokenizer->Encode(text, /*add_special=*/true);
    sequences = train::CutIntoSequences(ids, args.seq_len);
    if (sequences.empty()) return BadInput("--data: '", args.data, "' has fewer than 8 tokens");
  } else {
    train::SelfDistillOptions sd;
    sd.tokens = args.tokens;
    sd.seq_len = args.seq_len;
    sd.sampling.seed = args.seed;
    sd.sampling.temperature = args.temperature;
    sd.sampling.min_p = 0.1f;
    sd.sampling.penalty = 1.2f;
    sd.sampling.penalty_window = 1024;
    if (!args.samples.empty() && std::filesystem::exists(args.samples)) {
      TS_ASSIGN_OR_RETURN(sequences, train::ReadSequences(args.samples, model.config().vocab_size));
      spdlog::info("train-heads: {} self-distillation sequences from {}", sequences.size(),
                   args.samples);
    } else {
      TS_ASSIGN_OR_RETURN(sequences, train::GenerateSelfDistillation(model, backend, sd));
      if (!args.samples.empty()) {
        TS_RETURN_IF_ERROR(train::WriteSequences(args.samples, sequences));
      }
    }
  }
  out.sequences = sequences.size();
  out.data_seconds = Seconds(phase);

  phase = std::chrono::steady_clock::now();
  train::HeadDataset& data = out.train;
  data.num_heads = kTokenSwiftDraftHeads;
  data.hidden_size = model.config().hidden_size;
  TS_RETURN_IF_ERROR(
      train::AppendHiddenStates(model, backend, sequences, args.backend.batch_size, &data));
  out.hidden_seconds = Seconds(phase);
  out.eval = train::SplitTail(data, args.eval_share);
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
  const DType out_dtype =
      args.dtype == "f32" ? DType::kF32 : (args.dtype == "f16" ? DType::kF16 : DType::kBF16);
  std::string text;
  if (!args.data.empty()) {
    TS_ASSIGN_OR_RETURN(text, ReadFile(args.data, "--data"));
  }
  const auto start = std::chrono::steady_clock::now();
  TS_ASSIGN_OR_RETURN(Model model, LoadModel(args.model, /*require_tokenizer=*/true));
  const ModelConfig& config = model.config();
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, MakeBackend(args.backend));
  const int threads = args.backend.threads > 0
                          ? args.backend.threads
                          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  TS_ASSIGN_OR_RETURN(PreparedData prepared, PrepareData(args, text, model, backend.get()));
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
  TS_ASSIGN_OR_RETURN(std::unique_ptr<train::HeadTrainer> trainer,
                      train::HeadTrainer::Create(config, model.weights(), options));
  nlohmann::json stats;
  const auto phase = std::chrono::steady_clock::now();
  if (eval.rows() > 0) {
    const train::HeadMetrics before = trainer->Evaluate(eval);
    LogMetrics("held-out before training", before);
    stats["eval_before"] = MetricsJson(before);
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

  // 4. Output.
  std::map<std::string, std::string> metadata = {
      {"format", "pt"},
      // The file name only: heads files are committed and shared.
      {"tokenswift.base_model", std::filesystem::path(args.model).filename().string()},
      {"tokenswift.training_tokens", std::to_string(data.tokens)},
      {"tokenswift.epochs", std::to_string(args.epochs)},
      {"tokenswift.data", args.data.empty() ? "self-distillation" : args.data}};
  TS_RETURN_IF_ERROR(WriteSafetensors(args.output, trainer->Tensors(out_dtype), metadata));
  spdlog::info("train-heads: wrote {} ({}) after {:.1f} s", args.output, args.dtype,
               Seconds(start));

  if (!args.stats_json.empty()) {
    // The file name only: stats files are committed beside the heads they describe.
    stats["model"] = std::filesystem::path(args.model).filename().string();
    stats["output"] = args.output;
    stats["data"] = args.data.empty() ? "self-distillation" : args.data;
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
                  "plain-text training file (default: self-distillation, the model's own samples)");
  sub->add_option("--samples", args->samples,
                  "self-distillation samples cache: read when the file exists, else generated and "
                  "written there");
  sub->add_option("-o,--output", args->output, "safetensors file to write");
  sub->add_option("--dtype", args->dtype, "output tensor type: f32, bf16 or f16")
      ->capture_default_str();
  sub->add_option("--tokens", args->tokens, "self-distillation: tokens to generate")
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
