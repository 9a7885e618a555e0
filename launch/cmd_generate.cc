// `tokenswift generate`: stream a generation from a prompt (DESIGN.md section 5).
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>

#include "absl/strings/numbers.h"
#include "launch/cli_common.h"
#include "launch/commands.h"
#include "launch/tensor_parallel_flags.h"
#include "launch/tokenswift_flags.h"
#include "nlohmann/json.hpp"
#include "runtime/engine/job.h"
#include "runtime/engine/job_identity.h"
#include "runtime/engine/model.h"
#include "runtime/engine/text_stats.h"
#include "spdlog/spdlog.h"

namespace ts::cli {
namespace {

struct GenerateArgs {
  std::string model;
  std::string heads;
  std::string prompt;
  std::string prompt_file;
  bool chat = false;
  int64_t max_new_tokens = 256;
  std::string mode = "ar";
  TokenSwiftFlags tokenswift;
  SamplingParams sampling;
  bool ignore_eos = false;
  int64_t ctx_size = 0;
  std::string output;
  bool resume = false;
  std::string stats_json;
  bool quiet = false;
  TensorParallelFlags parallel;
  BackendOptions backend;
};

// Streams text to stdout as tokens are committed; token ids to the --output file, flushed every
// step, so a job that dies keeps what it committed (--resume continues from there). Progress: a
// line on stderr when stderr is a terminal and stdout is not (the two would interleave
// otherwise), else an info log every 30 s for runs that go to files.
class StreamSink : public TokenSink {
 public:
  StreamSink(const Tokenizer& tokenizer, bool print_text, int64_t max_new_tokens, int64_t resumed,
             std::FILE* ids_out)
      : tokenizer_(tokenizer),
        print_text_(print_text),
        max_new_tokens_(max_new_tokens),
        resumed_(resumed),
        ids_out_(ids_out),
        progress_(isatty(STDERR_FILENO) && !isatty(STDOUT_FILENO)) {}

  // generated: tokens of this run (after the resumed ones).
  void OnTokens(std::span<const int32_t> tokens, int64_t generated, double seconds) override {
    if (print_text_) {
      for (int32_t id : tokens) {
        if (tokenizer_.IsControl(id)) continue;
        const std::string bytes = tokenizer_.TokenBytes(id);
        std::fwrite(bytes.data(), 1, bytes.size(), stdout);
      }
      std::fflush(stdout);
    }
    if (ids_out_ != nullptr) {
      for (int32_t id : tokens) std::fprintf(ids_out_, "%d\n", id);
      if (std::fflush(ids_out_) != 0) write_failed_ = true;
    }
    const int64_t total = resumed_ + generated;
    const double rate = seconds > 0 ? static_cast<double>(generated) / seconds : 0.0;
    if (progress_) {
      if (generated - last_progress_ >= 64 || total == max_new_tokens_) {
        last_progress_ = generated;
        std::fprintf(stderr, "\r[%lld/%lld] %.1f tok/s   ", static_cast<long long>(total),
                     static_cast<long long>(max_new_tokens_), rate);
        std::fflush(stderr);
      }
    } else if (seconds - last_log_seconds_ >= 30.0) {
      const double recent = (generated - last_log_generated_) / (seconds - last_log_seconds_);
      last_log_seconds_ = seconds;
      last_log_generated_ = generated;
      spdlog::info("generated {}/{} tokens, {:.1f} tok/s (last 30 s: {:.1f}), {:.0f} s to go",
                   total, max_new_tokens_, rate, recent,
                   recent > 0 ? (max_new_tokens_ - total) / recent : 0.0);
    }
  }
  void Finish() {
    if (progress_ && last_progress_ > 0) std::fprintf(stderr, "\n");
  }
  bool write_failed() const { return write_failed_; }

 private:
  const Tokenizer& tokenizer_;
  bool print_text_;
  int64_t max_new_tokens_;
  int64_t resumed_;
  std::FILE* ids_out_;
  bool progress_;
  bool write_failed_ = false;
  int64_t last_progress_ = 0;
  double last_log_seconds_ = 0;
  int64_t last_log_generated_ = 0;
};

// The token ids an earlier run of the same job wrote to --output, one per line. A last line
// without its newline was cut off by the crash and is dropped (and cut from the file, which
// the resumed run appends to).
StatusOr<std::vector<int32_t>> ReadResumeIds(const std::string& path, int64_t vocab) {
  std::vector<int32_t> ids;
  std::ifstream in(path, std::ios::binary);
  if (!in) return ids;  // nothing written yet: start from the prompt
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  in.close();
  const size_t complete = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  int64_t line = 0;
  for (size_t begin = 0; begin < complete;) {
    const size_t end = text.find('\n', begin);
    ++line;
    const std::string word = text.substr(begin, end - begin);
    int32_t id = 0;
    if (!absl::SimpleAtoi(word, &id) || id < 0 || id >= vocab) {
      return BadInput("--resume: '", path, "' line ", line, ": expected a token id in [0, ", vocab,
                      "), got '", word.substr(0, 40), "'");
    }
    ids.push_back(id);
    begin = end + 1;
  }
  if (complete < text.size()) {
    std::filesystem::resize_file(path, complete);
    spdlog::warn("--resume: dropped an unfinished last line of {}", path);
  }
  return ids;
}

// The job's context: the prompt's ids and the ids an earlier run of the job committed (--resume).
struct JobInput {
  std::vector<int32_t> prompt_ids;
  std::vector<int32_t> resumed;
  bool finished = false;  // --resume: the output already holds the whole job
};

// Rank 0's part (or the single process's): reads and tokenizes the prompt; with --output, checks
// that a resumed output was written for this very job (runtime/engine/job_identity.h) and reads
// its ids, or records the job beside a fresh output.
StatusOr<JobInput> ReadJobInput(const GenerateArgs& args, const Model& model) {
  const ModelConfig& config = model.config();
  std::string prompt = args.prompt;
  if (!args.prompt_file.empty()) {
    TS_ASSIGN_OR_RETURN(prompt, ReadFile(args.prompt_file, "--prompt-file"));
  }
  if (args.chat) {
    TS_ASSIGN_OR_RETURN(prompt, ApplyChatTemplate(*model.tokenizer, prompt));
  }
  if (!args.stats_json.empty()) TS_RETURN_IF_ERROR(CheckWritable(args.stats_json, "--stats-json"));
  JobInput input;
  input.prompt_ids = model.tokenizer->Encode(prompt, /*add_special=*/true);
  if (input.prompt_ids.empty()) return BadInput("--prompt: the prompt encodes to no tokens");
  if (args.output.empty()) return input;

  TS_ASSIGN_OR_RETURN(const JobIdentity identity,
                      MakeJobIdentity(args.model, input.prompt_ids, args.sampling, args.ignore_eos,
                                      args.backend.kv_dtype));
  const std::string sidecar = SidecarPath(args.output);
  std::error_code ec;
  const bool has_output = std::filesystem::file_size(args.output, ec) > 0 && !ec;
  const bool continues = args.resume && (has_output || std::filesystem::exists(sidecar));
  if (!continues) {
    TS_RETURN_IF_ERROR(WriteJobIdentity(sidecar, identity));
    return input;
  }
  TS_RETURN_IF_ERROR(CheckResume(args.output, sidecar, identity));
  // The tokens an earlier run committed are re-prefilled after the prompt. Sampling is a pure
  // function of (logits, window, seed, position), so the continuation is the very one the
  // earlier run would have produced (DESIGN.md 2).
  TS_ASSIGN_OR_RETURN(input.resumed, ReadResumeIds(args.output, config.vocab_size));
  const bool ended_by_eos =
      !args.ignore_eos && std::any_of(input.resumed.begin(), input.resumed.end(), [&](int32_t id) {
        return std::find(config.eos_ids.begin(), config.eos_ids.end(), id) != config.eos_ids.end();
      });
  if (static_cast<int64_t>(input.resumed.size()) >= args.max_new_tokens || ended_by_eos) {
    std::fprintf(stderr, "tokenswift: %s already holds a finished job (%zu tokens%s)\n",
                 args.output.c_str(), input.resumed.size(), ended_by_eos ? ", stopped by EOS" : "");
    input.finished = true;
  } else if (!input.resumed.empty()) {
    spdlog::info("--resume: {} tokens already in {}, {} to go", input.resumed.size(), args.output,
                 args.max_new_tokens - static_cast<int64_t>(input.resumed.size()));
  }
  return input;
}

// Every rank's part: rank 0's input on all ranks (the others never open the prompt or output
// files, which may exist on rank 0's node only). Rank 0 broadcasts a header (its status, the
// sizes, a SHA-256 of the ids) and then the ids; each rank checks the hash of what it received.
// When rank 0 failed, the others leave with its exit code and one line saying so.
StatusOr<JobInput> ShareJobInput(Communicator* comm, StatusOr<JobInput> mine) {
  if (comm == nullptr || comm->size() == 1) return mine;
  struct Header {
    int32_t exit_code = 0;
    int32_t finished = 0;
    int64_t prompt = 0;
    int64_t resumed = 0;
    char sha256[65] = {};
  } header;
  JobInput input;
  const bool root = comm->rank() == 0;
  if (root) {
    header.exit_code = ExitCodeFor(mine.status());
    if (mine.ok()) {
      input = *std::move(mine);
      header.finished = input.finished ? 1 : 0;
      header.prompt = static_cast<int64_t>(input.prompt_ids.size());
      header.resumed = static_cast<int64_t>(input.resumed.size());
    }
  }
  std::vector<int32_t> ids;
  if (root) {
    ids = input.prompt_ids;
    ids.insert(ids.end(), input.resumed.begin(), input.resumed.end());
    const std::string sha = TokensSha256(ids);
    std::copy(sha.begin(), sha.end(), header.sha256);
  }
  TS_RETURN_IF_ERROR(comm->Broadcast(&header, sizeof(header), 0));
  if (header.exit_code != 0) {
    if (root) return mine.status();
    return header.exit_code == 2 ? BadInput("rank ", comm->rank(), ": rank 0 rejected the job")
                                 : RuntimeFailure("rank ", comm->rank(), ": rank 0 failed");
  }
  if (header.prompt < 1 || header.resumed < 0 || header.prompt + header.resumed > kMaxPositions) {
    return RuntimeFailure("rank ", comm->rank(), ": a malformed job header from rank 0");
  }
  ids.resize(static_cast<size_t>(header.prompt + header.resumed));
  TS_RETURN_IF_ERROR(comm->Broadcast(ids.data(), ids.size() * sizeof(int32_t), 0));
  if (TokensSha256(ids) != std::string(header.sha256)) {
    return RuntimeFailure("rank ", comm->rank(), ": the context ids from rank 0 arrived damaged");
  }
  input.prompt_ids.assign(ids.begin(), ids.begin() + header.prompt);
  input.resumed.assign(ids.begin() + header.prompt, ids.end());
  input.finished = header.finished != 0;
  return input;
}

Status RunGenerate(const GenerateArgs& args) {
  TS_RETURN_IF_ERROR(Validate(args.sampling));
  if (args.mode != "ar" && args.mode != "tokenswift") {
    return BadInput("--mode: expected ar or tokenswift, got '", args.mode, "'");
  }
  if (args.mode == "tokenswift" && args.heads.empty()) {
    return BadInput(
        "--heads: --mode tokenswift needs draft heads (a safetensors file or an HF "
        "checkpoint directory with model.medusa_layers.* tensors)");
  }
  if (args.prompt.empty() == args.prompt_file.empty()) {
    return BadInput("--prompt / --prompt-file: expected exactly one of them");
  }
  if (args.max_new_tokens < 1 || args.max_new_tokens > kMaxPositions) {
    return BadInput("--max-new-tokens: expected 1..", kMaxPositions, ", got ", args.max_new_tokens);
  }
  if (args.ctx_size < 0 || args.ctx_size > kMaxPositions) {
    return BadInput("--ctx-size: expected 0 (the model's) or up to ", kMaxPositions, ", got ",
                    args.ctx_size);
  }
  TS_RETURN_IF_ERROR(ValidateTensorParallel(args.parallel));
  if (args.resume && args.output.empty()) {
    return BadInput("--resume: needs --output FILE, the token ids an earlier run wrote");
  }
  TS_ASSIGN_OR_RETURN(const DType kv_dtype, ParseKvDtype(args.backend.kv_dtype));

  TS_ASSIGN_OR_RETURN(Model model, LoadModel(args.model, /*require_tokenizer=*/true));
  const ModelConfig& config = model.config();
  // Tensor parallel: this rank's communicator and slices; its KV cache holds its KV heads only.
  TS_ASSIGN_OR_RETURN(TensorParallelRank parallel, SetUpTensorParallel(args.parallel, model));
  const bool printer = parallel.printer();
  Communicator* comm = parallel.comm.get();
  StatusOr<JobInput> mine = printer ? ReadJobInput(args, model) : JobInput{};
  TS_ASSIGN_OR_RETURN(JobInput input, ShareJobInput(comm, std::move(mine)));
  if (input.finished) return absl::OkStatus();
  JobSpec spec;
  spec.prompt_ids = std::move(input.prompt_ids);
  spec.resumed = std::move(input.resumed);
  const std::vector<int32_t>& prompt_ids = spec.prompt_ids;
  const std::vector<int32_t>& resumed = spec.resumed;

  const int64_t ctx = args.ctx_size > 0 ? args.ctx_size : config.max_position;
  const int64_t needed = static_cast<int64_t>(prompt_ids.size()) + args.max_new_tokens;
  if (needed > ctx) {
    return BadInput("--max-new-tokens: prompt (", prompt_ids.size(), " tokens) + ",
                    args.max_new_tokens, " new tokens exceed the context of ", ctx,
                    " tokens (raise --ctx-size)");
  }
  spec.max_new_tokens = args.max_new_tokens;
  spec.ignore_eos = args.ignore_eos;
  spec.tokenswift = args.mode == "tokenswift";
  spec.sampling = args.sampling;
  TS_ASSIGN_OR_RETURN(spec.tokenswift_options, ParseTokenSwiftFlags(args.tokenswift));
  spec.kv_dtype = kv_dtype;
  TS_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, MakeBackend(args.backend));
  TS_RETURN_IF_ERROR(parallel.Place(model, backend.get()));
  std::unique_ptr<DraftHeads> heads;
  if (spec.tokenswift) {
    TS_ASSIGN_OR_RETURN(heads, DraftHeads::Load(args.heads, config, /*max_rows=*/1));
    TS_RETURN_IF_ERROR(parallel.ShardHeads(heads.get()));
  }
  const EngineParts parts =
      parallel.Parts(model, backend.get(), heads.get(), args.backend.batch_size);
  spdlog::info("model {}: {} layers, hidden {}, vocab {}; prompt {} tokens; KV cache {:.1f} MiB",
               args.model, config.n_layers, config.hidden_size, config.vocab_size,
               prompt_ids.size(),
               KvCache::BytesFor(*parts.config, JobCapacity(spec), kv_dtype) / 1048576.0);
  if (backend->host_memory()) {
    TS_RETURN_IF_ERROR(CheckJobMemory(*parts.config, spec));  // before --output is opened
  }
  if (ctx > config.max_position) {
    spdlog::warn("--ctx-size {} is beyond the model's trained context of {} tokens", ctx,
                 config.max_position);
  }
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> ids_out(nullptr, &std::fclose);
  if (!args.output.empty() && printer) {
    ids_out.reset(std::fopen(args.output.c_str(), args.resume ? "a" : "w"));
    if (ids_out == nullptr) {
      return RuntimeFailure("--output: cannot open '", args.output, "' for writing");
    }
  }
  StreamSink sink(*model.tokenizer, !args.quiet && printer, args.max_new_tokens,
                  static_cast<int64_t>(resumed.size()), ids_out.get());
  if (prompt_ids.size() + resumed.size() > 4096) {  // minutes on a CPU: say what the silence is
    spdlog::info("prefilling {} tokens ({} prompt + {} resumed)",
                 prompt_ids.size() + resumed.size(), prompt_ids.size(), resumed.size());
  }
  StatusOr<GenerationResult> generated_or = RunJob(parts, spec, &sink);
  if (!generated_or.ok() && comm != nullptr) {
    // The other ranks wait in a collective: end them all now, not at their deadline.
    std::fprintf(stderr, "tokenswift: error: rank %d: %s\n", comm->rank(),
                 std::string(generated_or.status().message()).c_str());
    std::fflush(stderr);
    comm->Abort(ExitCodeFor(generated_or.status()));
  }
  TS_RETURN_IF_ERROR(generated_or.status());
  GenerationResult result = *std::move(generated_or);
  sink.Finish();
  if (sink.write_failed() || (ids_out != nullptr && std::fclose(ids_out.release()) != 0)) {
    return RuntimeFailure("--output: writing '", args.output, "' failed");
  }
  if (!args.quiet && printer) {
    std::printf("\n");
    std::fflush(stdout);
  }
  if (!printer) return absl::OkStatus();

  const int64_t generated = static_cast<int64_t>(result.tokens.size());
  const double tps = result.decode_seconds > 0 ? generated / result.decode_seconds : 0.0;
  std::fprintf(stderr,
               "tokenswift: mode %s, prompt %lld tokens%s (%.1f tok/s), generated %lld tokens in "
               "%.2f s (%.1f tok/s), %.2f tokens/step, stop: %s\n",
               args.mode.c_str(), static_cast<long long>(result.prompt_tokens),
               resumed.empty() ? "" : absl::StrCat(" incl. ", resumed.size(), " resumed").c_str(),
               result.prefill_seconds > 0 ? result.prompt_tokens / result.prefill_seconds : 0.0,
               static_cast<long long>(generated), result.decode_seconds, tps,
               result.counters.steps > 0
                   ? static_cast<double>(result.counters.committed) / result.counters.steps
                   : 0.0,
               result.stop_reason.c_str());

  if (spec.tokenswift) {
    const DecodeCounters& c = result.counters;
    spdlog::info(
        "planner: {} steps ar / {} fused / {} separate, {:.2f} rows verified per step; last: {}",
        c.ar_steps, c.fused_steps, c.separate_steps,
        c.steps > 0 ? static_cast<double>(c.verified_rows) / c.steps : 0.0, result.planner);
  }
  if (!args.stats_json.empty()) {
    const DecodeCounters& c = result.counters;
    nlohmann::json j;
    j["mode"] = args.mode;
    j["model"] = args.model;
    j["prompt_tokens"] = static_cast<int64_t>(prompt_ids.size());
    j["resumed_tokens"] = static_cast<int64_t>(resumed.size());
    j["generated_tokens"] = generated;
    j["seconds"] = result.decode_seconds;
    j["prefill_seconds"] = result.prefill_seconds;
    j["tokens_per_second"] = tps;
    j["steps"] = c.steps;
    j["mean_accepted_per_step"] = c.steps > 0 ? static_cast<double>(c.committed) / c.steps : 0.0;
    j["acceptance_rate"] = c.drafted > 0 ? static_cast<double>(c.accepted) / c.drafted : 0.0;
    j["ngram_accepted_share"] =
        c.accepted > 0 ? static_cast<double>(c.accepted_ngram) / c.accepted : 0.0;
    std::vector<int32_t> all = resumed;
    all.insert(all.end(), result.tokens.begin(), result.tokens.end());
    for (int n = 1; n <= 4; ++n) j["distinct_" + std::to_string(n)] = DistinctN(all, n);
    j["peak_rss_bytes"] = PeakRssBytes();
    j["stop_reason"] = result.stop_reason;
    j["threads"] = args.backend.threads;
    j["tp"] = args.parallel.tp;
    if (comm != nullptr) j["comm_bytes_sent_rank0"] = comm->bytes_sent();
    j["seed"] = args.sampling.seed;
    if (spec.tokenswift) {
      j["planner"] = {
          {"ar_steps", c.ar_steps},
          {"fused_steps", c.fused_steps},
          {"separate_steps", c.separate_steps},
          {"verified_rows_per_step",
           c.steps > 0 ? static_cast<double>(c.verified_rows) / c.steps : 0.0},
          {"last_decision", result.planner},
      };
    }
    TS_RETURN_IF_ERROR(WriteJson(args.stats_json, j));
  }
  return absl::OkStatus();
}

}  // namespace

void RegisterGenerate(CLI::App& app, Status* result) {
  auto args = std::make_shared<GenerateArgs>();
  args->model = DefaultModelPath();
  // TokenSwift's sampling defaults (DESIGN.md 1.6): temperature 1, min-p 0.1, penalty 1.2 / 1024.
  args->sampling.temperature = 1.0f;
  args->sampling.min_p = 0.1f;
  args->sampling.penalty = 1.2f;
  args->sampling.penalty_window = 1024;
  CLI::App* sub = app.add_subcommand("generate", "generate text from a prompt, streamed to stdout");
  sub->add_option("-m,--model", args->model, "GGUF file or HF model directory")
      ->capture_default_str();
  sub->add_option("--heads", args->heads, "draft heads (safetensors) for --mode tokenswift");
  sub->add_option("-p,--prompt", args->prompt, "prompt text");
  sub->add_option("-f,--prompt-file", args->prompt_file, "file holding the prompt text");
  sub->add_flag("--chat", args->chat, "wrap the prompt in the model's chat template (ChatML)");
  sub->add_option("-n,--max-new-tokens", args->max_new_tokens, "tokens to generate")
      ->capture_default_str();
  sub->add_option("--mode", args->mode, "ar or tokenswift")->capture_default_str();
  AddTokenSwiftOptions(sub, &args->tokenswift);
  AddSamplingOptions(sub, &args->sampling);
  sub->add_flag("--ignore-eos", args->ignore_eos, "keep generating past end-of-sequence");
  sub->add_option("-c,--ctx-size", args->ctx_size,
                  "context limit for prompt + new tokens (default: the model's)");
  sub->add_option("-o,--output", args->output,
                  "write generated token ids, one per line, as they are committed");
  sub->add_flag("--resume", args->resume,
                "continue the job whose token ids --output already holds (after a crash or a "
                "stop): same flags, same tokens as one uninterrupted run");
  sub->add_option("--stats-json", args->stats_json, "write run statistics as JSON");
  sub->add_flag("-q,--quiet", args->quiet, "do not print the generated text");
  AddTensorParallelOptions(sub, &args->parallel);
  AddBackendOptions(sub, &args->backend);
  sub->callback([args, result] { *result = RunGenerate(*args); });
}

}  // namespace ts::cli
