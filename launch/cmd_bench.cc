// `tokenswift bench`: AR and TokenSwift decoding side by side in one process (DESIGN.md 5 and 7:
// speed is a ratio measured in one run), written as JSON, Markdown and an SVG speed curve.
//
//   tokenswift bench [--mode ar|tokenswift|both] [--heads PATH] --prompt-tokens N --gen-tokens N
//   tokenswift bench --mode verify --prompt-tokens N [--rows 1,2,4,...] [--reps K] [--out-dir D]
//                    [sampling flags as generate] [--tree 1,3,3,3] [--ngram-topk K]
//                    [--interval N] [--json F] [--markdown F] [--plot F.svg] [--out-dir DIR]
//
// Sampling defaults are SamplingParams' (plain sampling at temperature 1, no min-p, no penalty),
// not generate's TokenSwift defaults, so `--temperature 0` is pure greedy as
// scripts/bench_llamacpp.py expects; pass --min-p 0.1 --penalty 1.2 for TokenSwift's setting.
//
// Prompt ids are cut from a text (the built-in paragraph or --prompt-file: tokenized, repeated
// and cut to --prompt-tokens) or read from --prompt-ids (whitespace-separated ids, repeated and
// cut the same way; needed for models without a tokenizer), and can be written out with
// --prompt-ids-out so that another engine (scripts/bench_llamacpp.py) runs on exactly the same
// ids. The modes run one after the other, AR first, each with its own KV cache and transformer
// scratch, on the same prompt ids, seed and sampling settings; EOS is ignored so both generate
// exactly --gen-tokens. TokenSwift must commit exactly AR's tokens (DESIGN.md section 2): the
// bench checks it, records "lossless" in the JSON and fails with exit code 1 when it does not.
//
// Peak RSS per mode: the kernel's high-water mark is reset before each mode (writing 5 to
// /proc/self/clear_refs) and VmHWM is read from /proc/self/status after it. Where the reset is
// refused, the process-wide getrusage peak is reported instead and "peak_rss_method" says so
// (then the second mode's figure includes the first's peak).
//
// --mode verify times one verify pass per tree row count over a prefilled context instead of
// generating (launch/bench_verify.h).
//
// A hidden flag, --random-heads SEED, stands in for --heads with untrained random heads of the
// model's hidden size (WriteRandomHeads into a temporary file that is removed once mapped), so
// tests can bench tiny test models without shipping heads files.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "launch/bench_inputs.h"
#include "launch/bench_report.h"
#include "launch/bench_verify.h"
#include "launch/cli_common.h"
#include "launch/commands.h"
#include "launch/svg_plot.h"
#include "launch/tensor_parallel_flags.h"
#include "launch/tokenswift_flags.h"
#include "runtime/engine/job.h"
#include "runtime/engine/model.h"
#include "runtime/engine/text_stats.h"
#include "spdlog/spdlog.h"

namespace ts::cli {
namespace {

namespace fs = std::filesystem;

struct BenchArgs {
  std::string model;
  std::string mode = "both";
  std::string heads;
  int64_t random_heads = -1;  // >= 0: random heads with this seed instead of --heads
  std::string prompt_file;
  std::string prompt_ids;
  int64_t prompt_tokens = 512;
  int64_t gen_tokens = 512;
  int64_t interval = 1024;
  int64_t warmup = 32;
  SamplingParams sampling;     // plain sampling at temperature 1 unless flags say otherwise
  TokenSwiftFlags tokenswift;  // --tree, --ngram-topk, --drafting, ... (launch/tokenswift_flags.h)
  std::string json;
  std::string markdown;
  std::string plot;
  std::string out_dir;
  std::string prompt_ids_out;
  std::string rows = "1,2,4,8,16,32,64";  // --mode verify
  int reps = 5;                           // --mode verify
  TensorParallelFlags parallel;
  BackendOptions backend;
};

constexpr char kDefaultBenchText[] =
    "The history of the lighthouse is a history of people who kept a light burning through "
    "long nights so that others could find their way. Each keeper wrote in a log: the weather, "
    "the ships that passed, the oil that was used, and the small repairs that kept the lamp "
    "turning. ";

// --prompt-ids, or the tokenized text (the built-in paragraph or --prompt-file); repeated and cut
// to --prompt-tokens ids.
StatusOr<std::vector<int32_t>> BuildPrompt(const BenchArgs& args, const Model& model) {
  std::vector<int32_t> source;
  if (!args.prompt_ids.empty()) {
    TS_ASSIGN_OR_RETURN(const std::string text, ReadFile(args.prompt_ids, "--prompt-ids"));
    TS_ASSIGN_OR_RETURN(source, ParsePromptIds(text, args.prompt_ids, model.config().vocab_size));
  } else {
    std::string text = kDefaultBenchText;
    if (!args.prompt_file.empty()) {
      TS_ASSIGN_OR_RETURN(text, ReadFile(args.prompt_file, "--prompt-file"));
    }
    source = model.tokenizer->Encode(text, /*add_special=*/true);
    if (source.empty()) return BadInput("--prompt-file: encodes to no tokens");
  }
  return RepeatToLength(source, args.prompt_tokens);
}

struct ModeSetup {
  EngineParts parts;
  TokenSwiftOptions options;
  DType kv_dtype;
  bool rss_reset;
};

StatusOr<ModeRun> RunMode(const std::string& mode, const ModeSetup& s, const BenchArgs& args,
                          std::span<const int32_t> prompt) {
  if (s.rss_reset) ResetPeakRss();
  ModeRun run;
  run.mode = mode;
  JobSpec spec;
  spec.prompt_ids.assign(prompt.begin(), prompt.end());
  spec.max_new_tokens = args.gen_tokens;
  spec.ignore_eos = true;
  spec.tokenswift = mode == "tokenswift";
  spec.sampling = args.sampling;
  spec.tokenswift_options = s.options;
  spec.kv_dtype = s.kv_dtype;
  ProgressRecorder progress(args.gen_tokens);
  TS_ASSIGN_OR_RETURN(run.result, RunJob(s.parts, spec, &progress));
  run.intervals = IntervalSpeeds(progress.marks(), args.interval);
  run.peak_rss_bytes = s.rss_reset ? PeakRssSinceResetBytes() : PeakRssBytes();
  return run;
}

std::string ModelName(const std::string& path) {
  fs::path p(path);
  if (p.filename().empty()) p = p.parent_path();
  std::string name = p.filename().string();
  if (name.size() > 5 && name.substr(name.size() - 5) == ".gguf") name.resize(name.size() - 5);
  return name;
}

Status WriteText(const std::string& path, const std::string& flag, const std::string& text) {
  std::ofstream out(path);
  if (!out) return RuntimeFailure(flag, ": cannot open '", path, "' for writing");
  out << text;
  if (!out) return RuntimeFailure(path, ": write failed");
  return absl::OkStatus();
}

// Output paths: the explicit flags, else bench.{json,md,svg} under --out-dir (created).
Status ResolveOutputs(const BenchArgs& args, std::string* json, std::string* md, std::string* svg) {
  *json = args.json;
  *md = args.markdown;
  *svg = args.plot;
  if (!args.out_dir.empty()) {
    std::error_code ec;
    fs::create_directories(args.out_dir, ec);
    if (ec) return BadInput("--out-dir: cannot create '", args.out_dir, "': ", ec.message());
    if (json->empty()) *json = (fs::path(args.out_dir) / "bench.json").string();
    if (md->empty()) *md = (fs::path(args.out_dir) / "bench.md").string();
    if (svg->empty()) *svg = (fs::path(args.out_dir) / "bench.svg").string();
  }
  for (const auto& [path, flag] :
       {std::pair{json, "--json"}, {md, "--markdown"}, {svg, "--plot"}}) {
    if (!path->empty()) TS_RETURN_IF_ERROR(CheckWritable(*path, flag));
  }
  return absl::OkStatus();
}

Status RunVerifyMode(const BenchArgs& args) {
  VerifyBenchOptions options;
  TS_ASSIGN_OR_RETURN(options.rows, ParseRows(args.rows));
  if (args.reps < 1) return BadInput("--reps: expected at least 1, got ", args.reps);
  options.reps = args.reps;
  if (args.parallel.tp != 1) return BadInput("--tp: --mode verify runs in one process (--tp 1)");
  if (args.prompt_tokens > kMaxPositions) {
    return BadInput("--prompt-tokens: expected 1..", kMaxPositions, ", got ", args.prompt_tokens);
  }
  TS_ASSIGN_OR_RETURN(options.kv_dtype, ParseKvDtype(args.backend.kv_dtype));
  options.prefill_chunk = args.backend.batch_size;
  std::string json_path, md_path, svg_path;
  TS_RETURN_IF_ERROR(ResolveOutputs(args, &json_path, &md_path, &svg_path));
  TS_ASSIGN_OR_RETURN(Model model, LoadModel(args.model, args.prompt_ids.empty()));
  TS_ASSIGN_OR_RETURN(const std::vector<int32_t> prompt, BuildPrompt(args, model));
  if (args.prompt_tokens > model.config().max_position) {
    spdlog::warn("--prompt-tokens {} exceeds the model's trained context of {}", args.prompt_tokens,
                 model.config().max_position);
  }
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, MakeBackend(args.backend));
  TS_ASSIGN_OR_RETURN(const VerifyBenchResult r,
                      RunVerifyBench(model, backend.get(), prompt, options));
  const VerifyBenchMeta meta{args.model, ModelName(args.model), backend->Name(),
                             args.backend.threads, args.backend.kv_dtype};
  std::printf("tokenswift bench: verify at %lld tokens of context (%s, KV %s):",
              static_cast<long long>(r.context_tokens), meta.backend.c_str(),
              meta.kv_dtype.c_str());
  for (const auto& [rows, ms] : r.median_ms) std::printf(" %d:%.2fms", rows, ms);
  std::printf("\n");
  std::fflush(stdout);
  if (!json_path.empty()) TS_RETURN_IF_ERROR(WriteJson(json_path, VerifyBenchJson(r, meta)));
  if (!md_path.empty()) {
    TS_RETURN_IF_ERROR(WriteText(md_path, "--markdown", VerifyBenchMarkdown(r, meta)));
  }
  if (!svg_path.empty()) TS_RETURN_IF_ERROR(WriteText(svg_path, "--plot", VerifyBenchSvg(r, meta)));
  return absl::OkStatus();
}

Status RunBench(const BenchArgs& args) {
  // Every flag is checked before the model is opened.
  TS_RETURN_IF_ERROR(Validate(args.sampling));
  if (args.mode != "ar" && args.mode != "tokenswift" && args.mode != "both" &&
      args.mode != "verify") {
    return BadInput("--mode: expected ar, tokenswift, both or verify, got '", args.mode, "'");
  }
  if (args.prompt_tokens < 1 || args.prompt_tokens > kMaxPositions) {
    return BadInput("--prompt-tokens: expected 1..", kMaxPositions, ", got ", args.prompt_tokens);
  }
  if (args.gen_tokens < 1 || args.gen_tokens > kMaxPositions - args.prompt_tokens) {
    return BadInput("--gen-tokens: expected 1..", kMaxPositions - args.prompt_tokens,
                    " (with --prompt-tokens ", args.prompt_tokens, "), got ", args.gen_tokens);
  }
  if (args.interval < 1) return BadInput("--interval: expected at least 1, got ", args.interval);
  if (args.warmup < 0) return BadInput("--warmup: expected at least 0, got ", args.warmup);
  if (!args.prompt_ids.empty() && !args.prompt_file.empty()) {
    return BadInput("--prompt-ids / --prompt-file: expected at most one of them");
  }
  if (args.mode == "verify") return RunVerifyMode(args);
  const bool want_ts = args.mode != "ar";
  if (want_ts && args.heads.empty() && args.random_heads < 0) {
    return BadInput("--heads: --mode ", args.mode,
                    " needs draft heads (a safetensors file or an HF checkpoint directory with "
                    "model.medusa_layers.* tensors)");
  }
  TS_RETURN_IF_ERROR(ValidateTensorParallel(args.parallel));
  TS_ASSIGN_OR_RETURN(const TokenSwiftOptions options, ParseTokenSwiftFlags(args.tokenswift));
  TS_ASSIGN_OR_RETURN(const DType kv_dtype, ParseKvDtype(args.backend.kv_dtype));
  std::string json_path, md_path, svg_path;
  TS_RETURN_IF_ERROR(ResolveOutputs(args, &json_path, &md_path, &svg_path));

  TS_ASSIGN_OR_RETURN(Model model, LoadModel(args.model, args.prompt_ids.empty()));
  const ModelConfig& config = model.config();
  TS_ASSIGN_OR_RETURN(const std::vector<int32_t> prompt, BuildPrompt(args, model));
  if (!args.prompt_ids_out.empty()) {
    std::ostringstream ids;
    for (int32_t id : prompt) ids << id << "\n";
    TS_RETURN_IF_ERROR(WriteText(args.prompt_ids_out, "--prompt-ids-out", ids.str()));
  }
  if (args.prompt_tokens + args.gen_tokens > config.max_position) {
    spdlog::warn("prompt + generated tokens ({}) exceed the model's trained context of {}",
                 args.prompt_tokens + args.gen_tokens, config.max_position);
  }
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, MakeBackend(args.backend));
  std::unique_ptr<DraftHeads> heads;
  if (want_ts) {
    if (args.random_heads >= 0) {
      TS_ASSIGN_OR_RETURN(heads, LoadRandomHeads(config, static_cast<uint64_t>(args.random_heads)));
    } else {
      TS_ASSIGN_OR_RETURN(heads, DraftHeads::Load(args.heads, config, /*max_rows=*/1));
    }
    if (options.static_tree &&
        static_cast<int>(options.tree.static_shape.size()) > 1 + heads->num_heads()) {
      return BadInput("--tree: ", options.tree.static_shape.size(), " levels need ",
                      options.tree.static_shape.size() - 1, " draft heads, the heads have ",
                      heads->num_heads());
    }
  }

  BenchReport report;
  report.model = args.model;
  report.model_name = ModelName(args.model);
  report.backend = backend->Name();
  report.threads = args.backend.threads;
  report.prompt_tokens = args.prompt_tokens;
  report.gen_tokens = args.gen_tokens;
  report.interval = args.interval;
  report.warmup_tokens = args.warmup;
  report.mode = args.mode;
  report.sampling = args.sampling;
  report.heads =
      args.random_heads >= 0 ? "random:" + std::to_string(args.random_heads) : args.heads;
  report.tree_shape = options.tree.static_shape;
  report.tree_max_depth = options.tree.max_depth;
  report.tree_max_nodes = options.tree.max_nodes;
  report.ngram_topk = options.ngram_topk;
  report.kv_dtype = args.backend.kv_dtype;
  const bool rss_reset = ResetPeakRss();
  report.peak_rss_method = rss_reset ? "vmhwm_reset_per_mode"
                                     : "getrusage_process_peak (clear_refs reset refused: "
                                       "figures include earlier modes)";
  // Tensor parallel: every rank runs both modes; rank 0 prints and writes the reports.
  TS_ASSIGN_OR_RETURN(TensorParallelRank parallel, SetUpTensorParallel(args.parallel, model));
  TS_RETURN_IF_ERROR(parallel.Place(model, backend.get()));
  TS_RETURN_IF_ERROR(parallel.ShardHeads(heads.get()));
  report.tp = args.parallel.tp;
  const bool printer = parallel.printer();
  if (!printer) json_path = md_path = svg_path = "";
  const ModeSetup setup{parallel.Parts(model, backend.get(), heads.get(), args.backend.batch_size),
                        options, kv_dtype, rss_reset};
  if (args.warmup > 0) {
    // Untimed: the first run of a process pays for cold caches, page faults and clock ramp-up,
    // which would count against whichever mode runs first.
    BenchArgs warm = args;
    warm.gen_tokens = args.warmup;
    const std::span<const int32_t> head(prompt.data(), std::min<size_t>(prompt.size(), 64));
    for (const char* mode : {"ar", "tokenswift"}) {
      if (args.mode != "both" && args.mode != mode) continue;
      TS_RETURN_IF_ERROR(RunMode(mode, setup, warm, head).status());
    }
  }
  for (const char* mode : {"ar", "tokenswift"}) {
    if (args.mode != "both" && args.mode != mode) continue;
    TS_ASSIGN_OR_RETURN(ModeRun run, RunMode(mode, setup, args, prompt));
    const ModeFigures f = Figures(run);
    if (printer)
      std::printf(
          "tokenswift bench: %-10s prompt %lld tokens at %.1f tok/s, generated %zu tokens in "
          "%.2f s: %.2f tok/s, %.3f tokens/step, peak RSS %.1f MiB\n",
          mode, static_cast<long long>(run.result.prompt_tokens), f.prefill_tokens_per_second,
          run.result.tokens.size(), run.result.decode_seconds, f.tokens_per_second,
          f.mean_accepted_per_step, run.peak_rss_bytes / 1048576.0);
    std::fflush(stdout);
    report.runs.push_back(std::move(run));
  }
  const std::optional<double> speedup = report.Speedup();
  const std::optional<bool> lossless = report.Lossless();
  if (speedup.has_value() && printer) {
    std::printf("tokenswift bench: TokenSwift / AR tokens/s = %.3fx, lossless: %s\n", *speedup,
                *lossless ? "true" : "false");
  }

  if (!json_path.empty()) TS_RETURN_IF_ERROR(WriteJson(json_path, BenchJson(report)));
  if (!md_path.empty()) TS_RETURN_IF_ERROR(WriteText(md_path, "--markdown", BenchMarkdown(report)));
  if (!svg_path.empty()) {
    TS_RETURN_IF_ERROR(WriteText(svg_path, "--plot", RenderLinePlotSvg(BenchPlot(report))));
  }
  if (lossless.has_value() && !*lossless) {
    const int64_t at =
        FirstMismatch(report.Find("ar")->result.tokens, report.Find("tokenswift")->result.tokens);
    std::fprintf(stderr, "tokenswift bench: warning: lossless: false\n");
    return RuntimeFailure("TokenSwift committed different tokens than AR from generated token ", at,
                          " on (a bug: the two must be identical)");
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterBench(CLI::App& app, Status* result) {
  auto args = std::make_shared<BenchArgs>();
  args->model = DefaultModelPath();
  CLI::App* sub =
      app.add_subcommand("bench", "AR vs TokenSwift decode speed, as JSON, Markdown and SVG");
  sub->add_option("-m,--model", args->model, "GGUF file or HF model directory")
      ->capture_default_str();
  sub->add_option("--mode", args->mode,
                  "ar, tokenswift or both (AR first); verify: verify-pass cost by tree rows")
      ->capture_default_str();
  sub->add_option("--rows", args->rows, "--mode verify: tree row counts, ascending")
      ->capture_default_str();
  sub->add_option("--reps", args->reps, "--mode verify: timed passes per row count (median)")
      ->capture_default_str();
  sub->add_option("--heads", args->heads, "draft heads (safetensors) for TokenSwift");
  AddTensorParallelOptions(sub, &args->parallel);
  sub->add_option("--random-heads", args->random_heads,
                  "untrained random heads with this seed instead of --heads (tests)")
      ->group("");
  sub->add_option("-f,--prompt-file", args->prompt_file, "text the prompt tokens are cut from");
  sub->add_option("--prompt-ids", args->prompt_ids, "prompt token ids (whitespace-separated)");
  sub->add_option("--prompt-tokens", args->prompt_tokens, "prompt length")->capture_default_str();
  sub->add_option("-n,--gen-tokens", args->gen_tokens, "tokens to generate")->capture_default_str();
  sub->add_option("--warmup", args->warmup, "untimed tokens each mode generates first (0 = none)")
      ->capture_default_str();
  sub->add_option("--interval", args->interval, "generated tokens per speed-curve point")
      ->capture_default_str();
  AddSamplingOptions(sub, &args->sampling);
  AddTokenSwiftOptions(sub, &args->tokenswift);
  sub->add_option("--json", args->json, "write results as JSON");
  sub->add_option("--markdown", args->markdown, "write results as Markdown tables");
  sub->add_option("--plot", args->plot, "write the speed curve as SVG");
  sub->add_option("--out-dir", args->out_dir, "write bench.json, bench.md and bench.svg here");
  sub->add_option("--prompt-ids-out", args->prompt_ids_out, "write the prompt token ids");
  AddBackendOptions(sub, &args->backend);
  sub->callback([args, result] { *result = RunBench(*args); });
}

}  // namespace ts::cli
