// Clients of `tokenswift serve`: submit (prints the job id), stream (token ids one per line, as
// `generate --output` writes them), status, cancel. Each takes --server ADDR and
// --auth-token-file F (and --tls-ca / --tls-cert / --tls-key for a TLS server).
#include <cstdio>
#include <memory>
#include <string>

#include "launch/cli_common.h"
#include "launch/commands.h"

#if TS_GRPC
#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include "absl/strings/ascii.h"
#include "proto/tokenswift.grpc.pb.h"
#endif

namespace ts::cli {
namespace {

struct ClientArgs {
  std::string server = "127.0.0.1:50051";
  std::string auth_token_file;
  std::string tls_ca, tls_cert, tls_key;
  double timeout = 30;  // seconds for unary calls
  // submit
  std::string prompt, prompt_file, mode, request_id;
  bool chat = false, ignore_eos = false;
  int64_t max_new_tokens = 256;
  SamplingParams sampling;
  // stream, status, cancel
  std::string job;
  int64_t from = 0;
  std::string output;
  bool json = false;
};

#if TS_GRPC
namespace v1 = tokenswift::v1;

class Client {
 public:
  static StatusOr<Client> Connect(const ClientArgs& a) {
    if (a.auth_token_file.empty()) {
      return BadInput("--auth-token-file: required (the server's bearer token)");
    }
    if (a.tls_cert.empty() != a.tls_key.empty()) {
      return BadInput("--tls-cert / --tls-key: give both or neither");
    }
    if (!(a.timeout > 0 && a.timeout <= 86400)) {
      return BadInput("--timeout: expected seconds in (0, 86400], got ", a.timeout);
    }
    Client c;
    TS_ASSIGN_OR_RETURN(std::string token, ReadFile(a.auth_token_file, "--auth-token-file"));
    c.token_ = std::string(absl::StripAsciiWhitespace(token));
    if (c.token_.empty()) return BadInput("--auth-token-file: '", a.auth_token_file, "' is empty");
    std::shared_ptr<grpc::ChannelCredentials> creds = grpc::InsecureChannelCredentials();
    if (!a.tls_ca.empty() || !a.tls_cert.empty()) {
      grpc::SslCredentialsOptions ssl;
      if (!a.tls_ca.empty()) {
        TS_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFile(a.tls_ca, "--tls-ca"));
      }
      if (!a.tls_cert.empty()) {
        TS_ASSIGN_OR_RETURN(ssl.pem_cert_chain, ReadFile(a.tls_cert, "--tls-cert"));
        TS_ASSIGN_OR_RETURN(ssl.pem_private_key, ReadFile(a.tls_key, "--tls-key"));
      }
      creds = grpc::SslCredentials(ssl);
    }
    grpc::ChannelArguments channel_args;
    channel_args.SetMaxReceiveMessageSize(16 << 20);
    c.stub_ = v1::Generation::NewStub(grpc::CreateCustomChannel(a.server, creds, channel_args));
    c.server_ = a.server;
    c.timeout_ = a.timeout;
    return c;
  }

  // A context with the bearer token; a deadline for unary calls.
  std::unique_ptr<grpc::ClientContext> Context(bool unary) const {
    auto ctx = std::make_unique<grpc::ClientContext>();
    ctx->AddMetadata("authorization", "Bearer " + token_);
    if (unary) {
      ctx->set_deadline(std::chrono::system_clock::now() +
                        std::chrono::milliseconds(static_cast<int64_t>(timeout_ * 1000)));
    }
    return ctx;
  }

  // One line naming the server and the gRPC code; exit 2 where the request was at fault.
  Status Error(const grpc::Status& s) const {
    const std::string line =
        absl::StrCat(server_, ": ", CodeName(s.error_code()), ": ", s.error_message());
    switch (s.error_code()) {
      case grpc::StatusCode::INVALID_ARGUMENT:
      case grpc::StatusCode::NOT_FOUND:
      case grpc::StatusCode::ALREADY_EXISTS:
      case grpc::StatusCode::UNAUTHENTICATED:
      case grpc::StatusCode::PERMISSION_DENIED:
      case grpc::StatusCode::OUT_OF_RANGE:
        return BadInput(line);
      default:
        return RuntimeFailure(line);
    }
  }

  v1::Generation::Stub& stub() { return *stub_; }

 private:
  static const char* CodeName(grpc::StatusCode c) {
    switch (c) {
      case grpc::StatusCode::CANCELLED:
        return "CANCELLED";
      case grpc::StatusCode::INVALID_ARGUMENT:
        return "INVALID_ARGUMENT";
      case grpc::StatusCode::DEADLINE_EXCEEDED:
        return "DEADLINE_EXCEEDED";
      case grpc::StatusCode::NOT_FOUND:
        return "NOT_FOUND";
      case grpc::StatusCode::ALREADY_EXISTS:
        return "ALREADY_EXISTS";
      case grpc::StatusCode::PERMISSION_DENIED:
        return "PERMISSION_DENIED";
      case grpc::StatusCode::RESOURCE_EXHAUSTED:
        return "RESOURCE_EXHAUSTED";
      case grpc::StatusCode::OUT_OF_RANGE:
        return "OUT_OF_RANGE";
      case grpc::StatusCode::UNAVAILABLE:
        return "UNAVAILABLE";
      case grpc::StatusCode::UNAUTHENTICATED:
        return "UNAUTHENTICATED";
      case grpc::StatusCode::INTERNAL:
        return "INTERNAL";
      default:
        return "ERROR";
    }
  }
  std::unique_ptr<v1::Generation::Stub> stub_;
  std::string token_, server_;
  double timeout_ = 30;
};

Status RunSubmit(const ClientArgs& a) {
  if (a.prompt.empty() == a.prompt_file.empty()) {
    return BadInput("--prompt / --prompt-file: expected exactly one of them");
  }
  // Sampling values are the server's to check (its message names the request field).
  TS_ASSIGN_OR_RETURN(Client c, Client::Connect(a));
  v1::SubmitRequest req;
  std::string text = a.prompt;
  if (!a.prompt_file.empty()) {
    TS_ASSIGN_OR_RETURN(text, ReadFile(a.prompt_file, "--prompt-file"));
  }
  req.set_text(text);
  req.set_chat(a.chat);
  req.set_request_id(a.request_id);
  req.set_max_new_tokens(a.max_new_tokens);
  req.set_mode(a.mode);
  req.set_ignore_eos(a.ignore_eos);
  v1::Sampling* s = req.mutable_sampling();
  s->set_temperature(a.sampling.temperature);
  s->set_top_p(a.sampling.top_p);
  s->set_top_k(a.sampling.top_k);
  s->set_min_p(a.sampling.min_p);
  s->set_eta(a.sampling.eta);
  s->set_penalty(a.sampling.penalty);
  s->set_penalty_window(a.sampling.penalty_window);
  s->set_seed(a.sampling.seed);
  v1::SubmitResponse resp;
  const grpc::Status st = c.stub().Submit(c.Context(true).get(), req, &resp);
  if (!st.ok()) return c.Error(st);
  std::printf("%s\n", resp.job_id().c_str());
  return absl::OkStatus();
}

Status RunStream(const ClientArgs& a) {
  if (a.job.empty()) return BadInput("--job: required (the id submit printed)");
  if (a.from < 0) return BadInput("--from: expected >= 0, got ", a.from);
  TS_ASSIGN_OR_RETURN(Client c, Client::Connect(a));
  // --from K > 0 continues a file that holds the first K ids: append.
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> out(nullptr, &std::fclose);
  std::FILE* f = stdout;
  if (!a.output.empty()) {
    out.reset(std::fopen(a.output.c_str(), a.from > 0 ? "a" : "w"));
    if (out == nullptr) return RuntimeFailure("--output: cannot open '", a.output, "' for writing");
    f = out.get();
  }
  v1::StreamRequest req;
  req.set_job_id(a.job);
  req.set_from(a.from);
  auto ctx = c.Context(false);
  std::unique_ptr<grpc::ClientReader<v1::StreamResponse>> reader = c.stub().Stream(ctx.get(), req);
  v1::StreamResponse msg;
  v1::JobState last = v1::JOB_STATE_UNSPECIFIED;
  while (reader->Read(&msg)) {
    for (int32_t id : msg.token_ids()) std::fprintf(f, "%d\n", id);
    if (std::fflush(f) != 0) return RuntimeFailure("--output: writing '", a.output, "' failed");
    last = msg.state();
  }
  const grpc::Status st = reader->Finish();
  if (!st.ok()) return c.Error(st);
  if (out != nullptr && std::fclose(out.release()) != 0) {
    return RuntimeFailure("--output: writing '", a.output, "' failed");
  }
  if (last == v1::JOB_STATE_CANCELLED) return RuntimeFailure("job ", a.job, " was cancelled");
  if (last == v1::JOB_STATE_FAILED) return RuntimeFailure("job ", a.job, " failed (see status)");
  return absl::OkStatus();
}

Status PrintJob(const v1::Job& job, bool json) {
  if (json) {
    std::string text;
    google::protobuf::util::JsonPrintOptions o;
    o.preserve_proto_field_names = true;
    o.always_print_primitive_fields = true;
    if (!google::protobuf::util::MessageToJsonString(job, &text, o).ok()) {
      return RuntimeFailure("status: cannot print the job as JSON");
    }
    std::printf("%s\n", text.c_str());
  } else {
    std::printf("%s %s %lld/%lld tokens%s%s\n", job.job_id().c_str(),
                v1::JobState_Name(job.state()).c_str(),
                static_cast<long long>(job.generated_tokens()),
                static_cast<long long>(job.max_new_tokens()),
                job.stop_reason().empty() ? "" : (" stop: " + job.stop_reason()).c_str(),
                job.error().empty() ? "" : (" error: " + job.error()).c_str());
  }
  return absl::OkStatus();
}

Status RunStatus(const ClientArgs& a) {
  TS_ASSIGN_OR_RETURN(Client c, Client::Connect(a));
  if (a.job.empty()) {  // every job, in submission order (one line or one JSON object each)
    v1::ListResponse all;
    const grpc::Status st = c.stub().List(c.Context(true).get(), v1::ListRequest(), &all);
    if (!st.ok()) return c.Error(st);
    for (const v1::Job& job : all.jobs()) TS_RETURN_IF_ERROR(PrintJob(job, a.json));
    return absl::OkStatus();
  }
  v1::GetRequest req;
  req.set_job_id(a.job);
  v1::Job job;
  const grpc::Status st = c.stub().Get(c.Context(true).get(), req, &job);
  if (!st.ok()) return c.Error(st);
  return PrintJob(job, a.json);
}

Status RunCancel(const ClientArgs& a) {
  if (a.job.empty()) return BadInput("--job: required (the id submit printed)");
  TS_ASSIGN_OR_RETURN(Client c, Client::Connect(a));
  v1::CancelRequest req;
  req.set_job_id(a.job);
  v1::Job job;
  const grpc::Status st = c.stub().Cancel(c.Context(true).get(), req, &job);
  if (!st.ok()) return c.Error(st);
  return PrintJob(job, a.json);
}
#else
Status NoGrpc(const ClientArgs&) {
  return RuntimeFailure("this build has no gRPC client (install libgrpc++-dev and rebuild)");
}
Status RunSubmit(const ClientArgs& a) { return NoGrpc(a); }
Status RunStream(const ClientArgs& a) { return NoGrpc(a); }
Status RunStatus(const ClientArgs& a) { return NoGrpc(a); }
Status RunCancel(const ClientArgs& a) { return NoGrpc(a); }
#endif

CLI::App* AddClient(CLI::App& app, const char* name, const char* help,
                    const std::shared_ptr<ClientArgs>& args) {
  CLI::App* sub = app.add_subcommand(name, help);
  sub->add_option("--server", args->server, "HOST:PORT of tokenswift serve")->capture_default_str();
  sub->add_option("--auth-token-file", args->auth_token_file, "file holding the bearer token");
  sub->add_option("--tls-ca", args->tls_ca, "CA certificate (PEM) of a TLS server");
  sub->add_option("--tls-cert", args->tls_cert, "client certificate (PEM) for mTLS");
  sub->add_option("--tls-key", args->tls_key, "client private key (PEM) for mTLS");
  return sub;
}

}  // namespace

void RegisterClients(CLI::App& app, Status* result) {
  {
    auto a = std::make_shared<ClientArgs>();
    a->sampling.temperature = 1.0f;  // generate's defaults (TokenSwift's sampling)
    a->sampling.min_p = 0.1f;
    a->sampling.penalty = 1.2f;
    a->sampling.penalty_window = 1024;
    CLI::App* sub = AddClient(app, "submit", "queue a job on a server; prints its id", a);
    sub->add_option("-p,--prompt", a->prompt, "prompt text");
    sub->add_option("-f,--prompt-file", a->prompt_file, "file holding the prompt text");
    sub->add_flag("--chat", a->chat, "wrap the prompt in the model's chat template (ChatML)");
    sub->add_option("-n,--max-new-tokens", a->max_new_tokens, "tokens to generate")
        ->capture_default_str();
    sub->add_option("--mode", a->mode, "ar or tokenswift (default: the server's choice)");
    AddSamplingOptions(sub, &a->sampling);
    sub->add_flag("--ignore-eos", a->ignore_eos, "keep generating past end-of-sequence");
    sub->add_option("--request-id", a->request_id,
                    "idempotency key: the same id and request give the same job");
    sub->add_option("--timeout", a->timeout, "seconds to wait for the server")
        ->capture_default_str();
    sub->callback([a, result] { *result = RunSubmit(*a); });
  }
  {
    auto a = std::make_shared<ClientArgs>();
    CLI::App* sub = AddClient(app, "stream", "follow a job's tokens until it ends", a);
    sub->add_option("--job", a->job, "job id");
    sub->add_option("--from", a->from, "first token index wanted (appends to --output when > 0)")
        ->capture_default_str();
    sub->add_option("-o,--output", a->output,
                    "write token ids here, one per line (default: stdout)");
    sub->callback([a, result] { *result = RunStream(*a); });
  }
  {
    auto a = std::make_shared<ClientArgs>();
    CLI::App* sub =
        AddClient(app, "status", "a job's state, progress and stats (every job without --job)", a);
    sub->add_option("--job", a->job, "job id (default: list every job)");
    sub->add_flag("--json", a->json, "print JSON (the Job message)");
    sub->add_option("--timeout", a->timeout, "seconds to wait for the server")
        ->capture_default_str();
    sub->callback([a, result] { *result = RunStatus(*a); });
  }
  {
    auto a = std::make_shared<ClientArgs>();
    CLI::App* sub = AddClient(app, "cancel", "stop a queued or running job", a);
    sub->add_option("--job", a->job, "job id");
    sub->add_flag("--json", a->json, "print JSON (the Job message)");
    sub->add_option("--timeout", a->timeout, "seconds to wait for the server")
        ->capture_default_str();
    sub->callback([a, result] { *result = RunCancel(*a); });
  }
}

}  // namespace ts::cli
