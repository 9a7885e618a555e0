#include "launch/serve/generation_service.h"

#include <algorithm>
#include <chrono>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "launch/cli_common.h"
#include "spdlog/spdlog.h"

namespace ts::serve {
namespace v1 = tokenswift::v1;

namespace {

constexpr size_t kMaxRequestId = 128;
constexpr int64_t kFlushTokens = 256;   // tokens per stored chunk while a job runs
constexpr double kFlushSeconds = 1.0;   // or this long since the last chunk
constexpr int64_t kStreamBatch = 1024;  // tokens per stream message at most

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string NewJobId() {
  static std::mutex mu;
  static std::mt19937_64 rng(std::random_device{}() ^ static_cast<uint64_t>(NowMs()));
  std::lock_guard<std::mutex> lock(mu);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "job-%016llx", static_cast<unsigned long long>(rng()));
  return buf;
}

v1::JobState ToProto(StoredState s) { return static_cast<v1::JobState>(static_cast<int>(s)); }

bool Terminal(StoredState s) {
  return s == StoredState::kSucceeded || s == StoredState::kCancelled || s == StoredState::kFailed;
}

grpc::Status Invalid(const std::string& message) {
  return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, message);
}

// Validate(SamplingParams) names CLI flags; a gRPC client sees the request's field names.
std::string FieldNames(std::string message) {
  return absl::StrReplaceAll(message, {{"--temperature", "sampling.temperature"},
                                       {"--top-p", "sampling.top_p"},
                                       {"--top-k", "sampling.top_k"},
                                       {"--min-p", "sampling.min_p"},
                                       {"--eta", "sampling.eta"},
                                       {"--penalty-window", "sampling.penalty_window"},
                                       {"--penalty", "sampling.penalty"},
                                       {"--chat", "chat"}});
}

// Constant-time comparison (the token is a secret).
bool SameSecret(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  return diff == 0;
}

}  // namespace

// Appends committed tokens to the job, wakes streams, and writes a chunk to the store every
// kFlushTokens tokens or kFlushSeconds.
class GenerationService::Sink : public TokenSink {
 public:
  Sink(GenerationService* service, LiveJob* job) : service_(service), job_(job) {}
  void OnTokens(std::span<const int32_t> tokens, int64_t generated, double seconds) override {
    {
      std::lock_guard<std::mutex> lock(service_->mu_);
      job_->tokens.insert(job_->tokens.end(), tokens.begin(), tokens.end());
      job_->stats.set_decode_seconds(seconds);
      job_->stats.set_tokens_per_second(seconds > 0 ? generated / seconds : 0.0);
      service_->tokens_total_ += static_cast<int64_t>(tokens.size());
    }
    service_->cv_.notify_all();
    const bool due = seconds - last_flush_ >= kFlushSeconds;
    if (due) last_flush_ = seconds;
    Flush(/*all=*/due);
  }
  // all: write whatever is pending; else only a full chunk of kFlushTokens.
  void Flush(bool all) {
    const Status s = service_->Flush(*job_, all);
    if (!s.ok() && error_.ok()) {
      error_ = s;
      job_->stop.store(true);  // a job whose tokens cannot be stored stops (FAILED)
    }
  }
  const Status& error() const { return error_; }

 private:
  GenerationService* service_;
  LiveJob* job_;
  double last_flush_ = 0;
  Status error_;
};

GenerationService::GenerationService(const Model* model, EngineParts parts, JobStore* store,
                                     ServeOptions options)
    : model_(model), parts_(parts), store_(store), options_(std::move(options)) {}

GenerationService::~GenerationService() { Drain(); }

grpc::Status GenerationService::CheckAuth(grpc::ServerContext* ctx) const {
  const auto& md = ctx->client_metadata();
  const auto it = md.find("authorization");
  if (it == md.end()) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED,
                        "missing 'authorization: Bearer <token>' metadata");
  }
  const std::string_view value(it->second.data(), it->second.size());
  const std::string expected = "Bearer " + options_.auth_token;
  if (!SameSecret(value, expected)) {
    return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "the bearer token is not valid");
  }
  return grpc::Status::OK;
}

grpc::Status GenerationService::BuildSpec(const v1::SubmitRequest& request, JobSpec* spec) const {
  const ModelConfig& config = model_->config();
  if (request.request_id().size() > kMaxRequestId) {
    return Invalid(absl::StrCat("request_id: at most ", kMaxRequestId, " characters, got ",
                                request.request_id().size()));
  }
  std::vector<int32_t> ids;
  switch (request.prompt_case()) {
    case v1::SubmitRequest::kText: {
      if (request.text().empty()) return Invalid("text: the prompt is empty");
      std::string text = request.text();
      if (request.chat()) {
        StatusOr<std::string> wrapped = cli::ApplyChatTemplate(*model_->tokenizer, text);
        if (!wrapped.ok()) return Invalid(FieldNames(std::string(wrapped.status().message())));
        text = *std::move(wrapped);
      }
      ids = model_->tokenizer->Encode(text, /*add_special=*/true);
      if (ids.empty()) return Invalid("text: the prompt encodes to no tokens");
      break;
    }
    case v1::SubmitRequest::kIds: {
      if (request.chat()) return Invalid("chat: applies to a text prompt, not to ids");
      if (request.ids().ids().empty()) return Invalid("ids: the prompt has no tokens");
      for (int i = 0; i < request.ids().ids_size(); ++i) {
        const int32_t id = request.ids().ids(i);
        if (id < 0 || id >= config.vocab_size) {
          return Invalid(absl::StrCat("ids: element ", i, " is ", id,
                                      ", expected a token id in [0, ", config.vocab_size, ")"));
        }
      }
      ids.assign(request.ids().ids().begin(), request.ids().ids().end());
      break;
    }
    default:
      return Invalid("prompt: expected text or ids");
  }
  const int64_t prompt = static_cast<int64_t>(ids.size());
  if (prompt >= options_.ctx_size) {
    return Invalid(absl::StrCat("text: the prompt has ", prompt,
                                " tokens, the server's context is ", options_.ctx_size));
  }
  if (request.max_new_tokens() < 1 || request.max_new_tokens() > options_.ctx_size - prompt) {
    return Invalid(absl::StrCat("max_new_tokens: expected 1..", options_.ctx_size - prompt,
                                " (the server's context of ", options_.ctx_size,
                                " tokens less the ", prompt, "-token prompt), got ",
                                request.max_new_tokens()));
  }
  std::string mode = request.mode();
  if (mode.empty()) mode = parts_.heads != nullptr ? "tokenswift" : "ar";
  if (mode != "ar" && mode != "tokenswift") {
    return Invalid(absl::StrCat("mode: expected ar or tokenswift, got '", mode.substr(0, 40), "'"));
  }
  if (mode == "tokenswift" && parts_.heads == nullptr) {
    return Invalid("mode: tokenswift needs draft heads; this server was started without --heads");
  }
  // generate's defaults (TokenSwift's sampling, DESIGN.md 1.6) for every unset field.
  SamplingParams p;
  p.temperature = 1.0f;
  p.min_p = 0.1f;
  p.penalty = 1.2f;
  p.penalty_window = 1024;
  const v1::Sampling& s = request.sampling();
  if (s.has_temperature()) p.temperature = s.temperature();
  if (s.has_top_p()) p.top_p = s.top_p();
  if (s.has_top_k()) p.top_k = s.top_k();
  if (s.has_min_p()) p.min_p = s.min_p();
  if (s.has_eta()) p.eta = s.eta();
  if (s.has_penalty()) p.penalty = s.penalty();
  if (s.has_penalty_window()) p.penalty_window = s.penalty_window();
  if (s.has_seed()) p.seed = s.seed();
  if (const Status v = Validate(p); !v.ok()) return Invalid(FieldNames(std::string(v.message())));

  spec->prompt_ids = std::move(ids);
  spec->max_new_tokens = request.max_new_tokens();
  spec->ignore_eos = request.ignore_eos();
  spec->tokenswift = mode == "tokenswift";
  spec->sampling = p;
  spec->tokenswift_options = options_.tokenswift;
  spec->kv_dtype = options_.kv_dtype;
  if (const Status m = CheckJobMemory(*parts_.config, *spec); !m.ok()) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, std::string(m.message()));
  }
  return grpc::Status::OK;
}

Status GenerationService::Recover() {
  TS_ASSIGN_OR_RETURN(std::vector<StoredJob> stored, store_->LoadAll());
  int64_t resumed = 0;
  std::lock_guard<std::mutex> lock(mu_);
  for (StoredJob& s : stored) {
    auto job = std::make_shared<LiveJob>();
    job->tokens = std::move(s.tokens);
    job->durable = static_cast<int64_t>(job->tokens.size());
    job->stored = std::move(s);
    v1::SubmitRequest request;
    if (!request.ParseFromString(job->stored.payload)) {
      return RuntimeFailure("job store ", store_->path(), ": job ", job->stored.id,
                            " has an unreadable request");
    }
    if (Terminal(job->stored.state)) {
      // For Get and List: what the request asked (the server's limits may have changed since).
      if (!BuildSpec(request, &job->spec).ok()) {
        job->spec.max_new_tokens = request.max_new_tokens();
        job->spec.tokenswift = request.mode() == "tokenswift";
      }
    } else {
      const grpc::Status g = BuildSpec(request, &job->spec);
      if (!g.ok()) {
        // The server now runs with other limits or another model: the job cannot continue.
        job->stored.state = StoredState::kFailed;
        job->stored.error = "cannot resume with this server's settings: " + g.error_message();
        TS_RETURN_IF_ERROR(
            store_->SetState(job->stored.id, job->stored.state, "", job->stored.error));
      } else if (job->spec.prompt_ids != job->stored.prompt_ids) {
        job->stored.state = StoredState::kFailed;
        job->stored.error = "cannot resume: the prompt tokenizes differently with this model";
        TS_RETURN_IF_ERROR(
            store_->SetState(job->stored.id, job->stored.state, "", job->stored.error));
      } else {
        if (job->stored.state == StoredState::kRunning || job->durable > 0) {
          TS_RETURN_IF_ERROR(store_->CountResume(job->stored.id));
          ++job->stored.resumes;
        }
        job->stored.state = StoredState::kQueued;
        queue_.push_back(job);
        ++resumed;
      }
    }
    if (!job->stored.request_id.empty()) by_request_[job->stored.request_id] = job->stored.id;
    order_.push_back(job->stored.id);
    jobs_[job->stored.id] = job;
  }
  spdlog::info("job store {}: {} jobs, {} to run", store_->path(), stored.size(), resumed);
  return absl::OkStatus();
}

void GenerationService::Start() {
  scheduler_ = std::thread([this] { SchedulerLoop(); });
}

void GenerationService::Drain() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (draining_ && !scheduler_.joinable()) return;
    draining_ = true;
    for (auto& [id, job] : jobs_) {
      if (job->stored.state == StoredState::kRunning) job->stop.store(true);
    }
  }
  cv_.notify_all();
  if (scheduler_.joinable()) scheduler_.join();
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopped_ = true;
  }
  cv_.notify_all();
}

bool GenerationService::Finished(const LiveJob& job) const {
  if (static_cast<int64_t>(job.tokens.size()) >= job.spec.max_new_tokens) return true;
  if (job.spec.ignore_eos || job.tokens.empty()) return false;
  const auto& eos = model_->config().eos_ids;
  return std::find(eos.begin(), eos.end(), job.tokens.back()) != eos.end();
}

Status GenerationService::Flush(LiveJob& job, bool force) {
  std::vector<int32_t> chunk;
  int64_t first;
  {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t pending = static_cast<int64_t>(job.tokens.size()) - job.durable;
    if (pending == 0 || (!force && pending < kFlushTokens)) return absl::OkStatus();
    first = job.durable;
    chunk.assign(job.tokens.begin() + first, job.tokens.end());
  }
  TS_RETURN_IF_ERROR(store_->AppendTokens(job.stored.id, first, chunk));
  std::lock_guard<std::mutex> lock(mu_);
  job.durable = first + static_cast<int64_t>(chunk.size());
  return absl::OkStatus();
}

void GenerationService::AbortGroup(const std::string& id, const Status& status) {
  spdlog::critical("tensor-parallel group out of step{}: {}; ending every rank",
                   id.empty() ? "" : " in job " + id, std::string(status.message()));
  if (!id.empty()) {
    const Status s = store_->SetState(id, StoredState::kFailed, "", std::string(status.message()));
    if (!s.ok()) spdlog::error("{}", std::string(s.message()));
  }
  options_.group->Abort(1);
}

void GenerationService::SchedulerLoop() {
  constexpr auto kIdleBeat = std::chrono::seconds(5);
  while (true) {
    std::shared_ptr<LiveJob> job;
    {
      std::unique_lock<std::mutex> lock(mu_);
      if (!cv_.wait_for(lock, kIdleBeat, [&] { return draining_ || !queue_.empty(); })) {
        lock.unlock();
        if (options_.group != nullptr) {
          if (const Status s = AnnounceIdle(options_.group); !s.ok()) AbortGroup("", s);
        }
        continue;
      }
      if (draining_) {
        lock.unlock();
        if (options_.group != nullptr) {
          if (const Status s = AnnounceEnd(options_.group); !s.ok()) AbortGroup("", s);
        }
        return;
      }
      job = queue_.front();
      queue_.pop_front();
      if (job->stored.state != StoredState::kQueued) continue;  // cancelled while queued
      job->stored.state = StoredState::kRunning;
    }
    cv_.notify_all();
    RunOne(job);
  }
}

void GenerationService::RunOne(const std::shared_ptr<LiveJob>& job) {
  const std::string& id = job->stored.id;
  StoredState state = StoredState::kSucceeded;
  std::string stop_reason, error;
  Status stored = store_->SetState(id, StoredState::kRunning, "", "");
  bool checkpoint = false;  // drained: stays queued for the next start
  if (!stored.ok()) {
    state = StoredState::kFailed;
    error = std::string(stored.message());
  } else if (Finished(*job)) {
    stop_reason =
        static_cast<int64_t>(job->tokens.size()) >= job->spec.max_new_tokens ? "length" : "eos";
  } else {
    JobSpec spec = job->spec;
    {
      std::lock_guard<std::mutex> lock(mu_);
      spec.resumed = job->tokens;
    }
    spdlog::info("job {}: {} ({} prompt tokens, {} of {} new tokens done)", id,
                 spec.tokenswift ? "tokenswift" : "ar", spec.prompt_ids.size(), spec.resumed.size(),
                 spec.max_new_tokens);
    if (options_.group != nullptr) {
      if (const Status s = AnnounceJob(options_.group, spec); !s.ok()) AbortGroup(id, s);
    }
    Sink sink(this, job.get());
    StatusOr<GenerationResult> result = RunJob(parts_, spec, &sink, &job->stop);
    if (!result.ok() && options_.group != nullptr) AbortGroup(id, result.status());
    sink.Flush(/*all=*/true);
    std::lock_guard<std::mutex> lock(mu_);
    if (!sink.error().ok()) {
      state = StoredState::kFailed;
      error = std::string(sink.error().message());
    } else if (!result.ok()) {
      state = StoredState::kFailed;
      error = std::string(result.status().message());
    } else {
      const GenerationResult& r = *result;
      const DecodeCounters& c = r.counters;
      job->stats.set_prefill_seconds(r.prefill_seconds);
      job->stats.set_decode_seconds(r.decode_seconds);
      job->stats.set_tokens_per_second(r.decode_seconds > 0 ? r.tokens.size() / r.decode_seconds
                                                            : 0.0);
      job->stats.set_steps(c.steps);
      job->stats.set_mean_accepted_per_step(c.steps > 0 ? static_cast<double>(c.committed) / c.steps
                                                        : 0.0);
      job->stats.set_acceptance_rate(c.drafted > 0 ? static_cast<double>(c.accepted) / c.drafted
                                                   : 0.0);
      last_stats_ = job->stats;
      if (r.stop_reason == "cancelled") {
        if (job->user_cancel) {
          state = StoredState::kCancelled;
          stop_reason = "cancelled";
        } else {
          checkpoint = true;
        }
      } else {
        stop_reason = r.stop_reason;
      }
    }
  }
  if (checkpoint) {
    spdlog::info("job {}: checkpointed at {} tokens for the next start", id, job->durable);
    const Status s = store_->SetState(id, StoredState::kQueued, "", "");
    if (!s.ok()) spdlog::error("{}", std::string(s.message()));
    std::lock_guard<std::mutex> lock(mu_);
    job->stored.state = StoredState::kQueued;
  } else {
    const Status s = store_->SetState(id, state, stop_reason, error);
    if (!s.ok()) spdlog::error("{}", std::string(s.message()));
    std::lock_guard<std::mutex> lock(mu_);
    job->stored.state = state;
    job->stored.stop_reason = stop_reason;
    job->stored.error = error;
    if (state == StoredState::kFailed) {
      spdlog::error("job {} failed: {}", id, error);
    } else {
      spdlog::info("job {}: {} after {} tokens ({})", id,
                   state == StoredState::kCancelled ? "cancelled" : "done", job->tokens.size(),
                   stop_reason);
    }
  }
  cv_.notify_all();
}

std::shared_ptr<GenerationService::LiveJob> GenerationService::Find(const std::string& id) {
  const auto it = jobs_.find(id);
  return it == jobs_.end() ? nullptr : it->second;
}

void GenerationService::FillJob(const LiveJob& job, v1::Job* out) const {
  const StoredJob& s = job.stored;
  out->set_job_id(s.id);
  out->set_request_id(s.request_id);
  out->set_state(ToProto(s.state));
  out->set_prompt_tokens(static_cast<int64_t>(s.prompt_ids.size()));
  out->set_max_new_tokens(job.spec.max_new_tokens);
  out->set_generated_tokens(static_cast<int64_t>(job.tokens.size()));
  out->set_mode(job.spec.tokenswift ? "tokenswift" : "ar");
  out->set_stop_reason(s.stop_reason);
  out->set_error(s.error);
  out->set_created_unix_ms(s.created_ms);
  out->set_resumes(s.resumes);
  *out->mutable_stats() = job.stats;
}

grpc::Status GenerationService::Submit(grpc::ServerContext* ctx, const v1::SubmitRequest* request,
                                       v1::SubmitResponse* response) {
  if (grpc::Status a = CheckAuth(ctx); !a.ok()) return a;
  auto job = std::make_shared<LiveJob>();
  if (grpc::Status v = BuildSpec(*request, &job->spec); !v.ok()) return v;
  v1::SubmitRequest payload = *request;
  payload.clear_request_id();
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream out(&bytes);
    google::protobuf::io::CodedOutputStream coded(&out);
    coded.SetSerializationDeterministic(true);
    payload.SerializeToCodedStream(&coded);
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (draining_) {
    return grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is shutting down");
  }
  if (!request->request_id().empty()) {
    const auto it = by_request_.find(request->request_id());
    if (it != by_request_.end()) {
      const std::shared_ptr<LiveJob> earlier = Find(it->second);
      if (earlier->stored.payload != bytes) {
        return grpc::Status(
            grpc::StatusCode::ALREADY_EXISTS,
            absl::StrCat("request_id: '", request->request_id(),
                         "' was used for another request (job ", earlier->stored.id, ")"));
      }
      response->set_job_id(earlier->stored.id);
      response->set_created(false);
      return grpc::Status::OK;
    }
  }
  const int64_t queued =
      static_cast<int64_t>(std::count_if(queue_.begin(), queue_.end(), [](const auto& j) {
        return j->stored.state == StoredState::kQueued;
      }));
  if (queued >= options_.max_queue) {
    return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED,
                        absl::StrCat("the queue is full (", queued, " jobs waiting)"));
  }
  StoredJob& s = job->stored;
  s.id = NewJobId();
  s.request_id = request->request_id();
  s.payload = std::move(bytes);
  s.prompt_ids = job->spec.prompt_ids;
  s.state = StoredState::kQueued;
  s.created_ms = NowMs();
  if (const Status st = store_->Insert(s); !st.ok()) {  // durable before acknowledged
    return grpc::Status(grpc::StatusCode::INTERNAL, std::string(st.message()));
  }
  jobs_[s.id] = job;
  order_.push_back(s.id);
  if (!s.request_id.empty()) by_request_[s.request_id] = s.id;
  queue_.push_back(job);
  response->set_job_id(s.id);
  response->set_created(true);
  spdlog::info("job {}: queued ({} prompt tokens, {} new)", s.id, s.prompt_ids.size(),
               job->spec.max_new_tokens);
  cv_.notify_all();
  return grpc::Status::OK;
}

grpc::Status GenerationService::Stream(grpc::ServerContext* ctx, const v1::StreamRequest* request,
                                       grpc::ServerWriter<v1::StreamResponse>* writer) {
  if (grpc::Status a = CheckAuth(ctx); !a.ok()) return a;
  if (request->from() < 0)
    return Invalid(absl::StrCat("from: expected >= 0, got ", request->from()));
  int64_t pos = request->from();
  std::unique_lock<std::mutex> lock(mu_);
  const std::shared_ptr<LiveJob> job = Find(request->job_id());
  if (job == nullptr) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("job_id: no job '", request->job_id().substr(0, 64), "'"));
  }
  while (true) {
    cv_.wait_for(lock, std::chrono::milliseconds(200), [&] {
      return static_cast<int64_t>(job->tokens.size()) > pos || Terminal(job->stored.state) ||
             stopped_;
    });
    if (ctx->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "stream cancelled");
    const int64_t have = static_cast<int64_t>(job->tokens.size());
    if (have > pos) {
      v1::StreamResponse msg;
      msg.set_offset(pos);
      const int64_t end = std::min(have, pos + kStreamBatch);
      std::string text;
      for (int64_t i = pos; i < end; ++i) {
        const int32_t id = job->tokens[i];
        msg.add_token_ids(id);
        if (!model_->tokenizer->IsControl(id)) text += model_->tokenizer->TokenBytes(id);
      }
      msg.set_text(std::move(text));
      msg.set_state(ToProto(job->stored.state));
      pos = end;
      lock.unlock();
      const bool ok = writer->Write(msg);
      lock.lock();
      if (!ok) return grpc::Status(grpc::StatusCode::CANCELLED, "the client went away");
      continue;
    }
    if (Terminal(job->stored.state)) {
      if (pos > have) {
        return grpc::Status(grpc::StatusCode::OUT_OF_RANGE,
                            absl::StrCat("from: the job has ", have, " tokens, asked from ", pos));
      }
      v1::StreamResponse last;
      last.set_offset(pos);
      last.set_state(ToProto(job->stored.state));
      writer->Write(last);
      return grpc::Status::OK;
    }
    if (stopped_) {
      return grpc::Status(grpc::StatusCode::UNAVAILABLE,
                          "the server is shutting down; reconnect with from = tokens received");
    }
  }
}

grpc::Status GenerationService::Get(grpc::ServerContext* ctx, const v1::GetRequest* request,
                                    v1::Job* response) {
  if (grpc::Status a = CheckAuth(ctx); !a.ok()) return a;
  std::lock_guard<std::mutex> lock(mu_);
  const std::shared_ptr<LiveJob> job = Find(request->job_id());
  if (job == nullptr) {
    return grpc::Status(grpc::StatusCode::NOT_FOUND,
                        absl::StrCat("job_id: no job '", request->job_id().substr(0, 64), "'"));
  }
  FillJob(*job, response);
  return grpc::Status::OK;
}

grpc::Status GenerationService::Cancel(grpc::ServerContext* ctx, const v1::CancelRequest* request,
                                       v1::Job* response) {
  if (grpc::Status a = CheckAuth(ctx); !a.ok()) return a;
  std::shared_ptr<LiveJob> job;
  bool was_queued = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    job = Find(request->job_id());
    if (job == nullptr) {
      return grpc::Status(grpc::StatusCode::NOT_FOUND,
                          absl::StrCat("job_id: no job '", request->job_id().substr(0, 64), "'"));
    }
    if (job->stored.state == StoredState::kQueued) {
      was_queued = true;
      job->stored.state = StoredState::kCancelled;
      job->stored.stop_reason = "cancelled";
    } else if (job->stored.state == StoredState::kRunning) {
      job->user_cancel = true;
      job->stop.store(true);
    }
  }
  if (was_queued) {
    if (const Status s = store_->SetState(job->stored.id, StoredState::kCancelled, "cancelled", "");
        !s.ok()) {
      return grpc::Status(grpc::StatusCode::INTERNAL, std::string(s.message()));
    }
    cv_.notify_all();
  }
  std::lock_guard<std::mutex> lock(mu_);
  FillJob(*job, response);
  return grpc::Status::OK;
}

grpc::Status GenerationService::List(grpc::ServerContext* ctx, const v1::ListRequest*,
                                     v1::ListResponse* response) {
  if (grpc::Status a = CheckAuth(ctx); !a.ok()) return a;
  std::lock_guard<std::mutex> lock(mu_);
  for (const std::string& id : order_) FillJob(*jobs_.at(id), response->add_jobs());
  return grpc::Status::OK;
}

std::string GenerationService::MetricsText() {
  std::lock_guard<std::mutex> lock(mu_);
  int64_t counts[6] = {};
  for (const auto& [id, job] : jobs_) ++counts[static_cast<int>(job->stored.state)];
  const v1::JobStats* live = &last_stats_;
  for (const auto& [id, job] : jobs_) {
    if (job->stored.state == StoredState::kRunning) live = &job->stats;
  }
  std::string out;
  out += "# HELP tokenswift_jobs Jobs by state.\n# TYPE tokenswift_jobs gauge\n";
  const char* names[6] = {"", "queued", "running", "succeeded", "cancelled", "failed"};
  for (int s = 1; s <= 5; ++s) {
    out += absl::StrCat("tokenswift_jobs{state=\"", names[s], "\"} ", counts[s], "\n");
  }
  out += absl::StrCat(
      "# HELP tokenswift_generated_tokens_total Tokens generated since the server started.\n"
      "# TYPE tokenswift_generated_tokens_total counter\n"
      "tokenswift_generated_tokens_total ",
      tokens_total_, "\n",
      "# HELP tokenswift_tokens_per_second Decode rate of the running (else the last) job.\n"
      "# TYPE tokenswift_tokens_per_second gauge\n"
      "tokenswift_tokens_per_second ",
      live->tokens_per_second(), "\n",
      "# HELP tokenswift_acceptance_rate Accepted share of drafted tokens (last finished run).\n"
      "# TYPE tokenswift_acceptance_rate gauge\n"
      "tokenswift_acceptance_rate ",
      last_stats_.acceptance_rate(), "\n",
      "# HELP tokenswift_step_seconds Mean decoding step time (last finished run).\n"
      "# TYPE tokenswift_step_seconds gauge\n"
      "tokenswift_step_seconds ",
      last_stats_.steps() > 0 ? last_stats_.decode_seconds() / last_stats_.steps() : 0.0, "\n");
  return out;
}

}  // namespace ts::serve
