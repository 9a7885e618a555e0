// `tokenswift serve`: the gRPC job service (proto/tokenswift.proto, launch/serve/). One process
// holds the model and runs one job at a time from a bounded, durable queue; SIGTERM or SIGINT
// drains it (the running job is checkpointed for the next start) and exits 0.
#include <csignal>
#include <memory>
#include <string>

#include "launch/cli_common.h"
#include "launch/commands.h"
#include "launch/tensor_parallel_flags.h"
#include "launch/tokenswift_flags.h"

#if TS_GRPC
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <pthread.h>
#include <unistd.h>

#include "absl/strings/ascii.h"
#include "launch/serve/generation_service.h"
#include "launch/serve/job_store.h"
#include "launch/serve/metrics_http.h"
#include "spdlog/spdlog.h"
#endif

namespace ts::cli {
namespace {

struct ServeArgs {
  std::string model;
  std::string heads;
  std::string listen = "127.0.0.1:50051";
  std::string state_dir;
  std::string auth_token_file;
  std::string tls_cert, tls_key, tls_client_ca;
  std::string metrics_listen;
  int64_t max_queue = 64;
  int64_t ctx_size = 0;
  TensorParallelFlags parallel;
  TokenSwiftFlags tokenswift;
  BackendOptions backend;
};

#if TS_GRPC
StatusOr<std::string> ReadSecret(const std::string& path, const std::string& flag) {
  TS_ASSIGN_OR_RETURN(std::string text, ReadFile(path, flag));
  text = std::string(absl::StripAsciiWhitespace(text));
  if (text.empty()) return BadInput(flag, ": '", path, "' holds no token");
  return text;
}

// Rank 0's files: the bearer token, TLS material, the job store.
Status OpenServerFiles(const ServeArgs& args, serve::ServeOptions* options,
                       std::shared_ptr<grpc::ServerCredentials>* server_creds,
                       std::unique_ptr<serve::JobStore>* store) {
  TS_ASSIGN_OR_RETURN(options->auth_token, ReadSecret(args.auth_token_file, "--auth-token-file"));
  std::shared_ptr<grpc::ServerCredentials> creds = grpc::InsecureServerCredentials();
  if (!args.tls_cert.empty()) {
    grpc::SslServerCredentialsOptions ssl(
        args.tls_client_ca.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                   : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
    grpc::SslServerCredentialsOptions::PemKeyCertPair pair;
    TS_ASSIGN_OR_RETURN(pair.private_key, ReadFile(args.tls_key, "--tls-key"));
    TS_ASSIGN_OR_RETURN(pair.cert_chain, ReadFile(args.tls_cert, "--tls-cert"));
    ssl.pem_key_cert_pairs.push_back(pair);
    if (!args.tls_client_ca.empty()) {
      TS_ASSIGN_OR_RETURN(ssl.pem_root_certs, ReadFile(args.tls_client_ca, "--tls-client-ca"));
    }
    creds = grpc::SslServerCredentials(ssl);
  }
  *server_creds = creds;
  TS_ASSIGN_OR_RETURN(*store, serve::JobStore::Open(args.state_dir));
  return absl::OkStatus();
}

// Rank 0: the gRPC server until SIGTERM or SIGINT, then the drain.
Status ServeAsRoot(const ServeArgs& args, const Model& model, const EngineParts& parts,
                   serve::ServeOptions options, std::shared_ptr<grpc::ServerCredentials> creds,
                   serve::JobStore* store, const sigset_t& signals) {
  // Before the scheduler runs, a failure must release the other ranks from WorkerLoop.
  auto fail = [&](Status s) {
    if (parts.control != nullptr) {
      if (const Status e = AnnounceEnd(parts.control); !e.ok()) return e;
    }
    return s;
  };
  serve::GenerationService service(&model, parts, store, std::move(options));
  if (Status s = service.Recover(); !s.ok()) return fail(s);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(args.listen, creds, &port);
  builder.SetMaxReceiveMessageSize(16 << 20);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return fail(RuntimeFailure("--listen: cannot listen on '", args.listen, "'"));
  }
  server->GetHealthCheckService()->SetServingStatus(true);
  std::unique_ptr<serve::MetricsHttp> metrics;
  if (!args.metrics_listen.empty()) {
    StatusOr<std::unique_ptr<serve::MetricsHttp>> m =
        serve::MetricsHttp::Start(args.metrics_listen, [&] { return service.MetricsText(); });
    if (!m.ok()) return fail(m.status());
    metrics = *std::move(m);
  }
  service.Start();
  const std::string host = args.listen.substr(0, args.listen.rfind(':'));
  // One line on stderr that scripts wait for (the port is the bound one when --listen asks for 0).
  std::fprintf(stderr, "tokenswift serve: listening on %s:%d%s%s, pid %d\n", host.c_str(), port,
               metrics ? absl::StrCat(", metrics on port ", metrics->port()).c_str() : "",
               args.tls_cert.empty() ? "" : " (TLS)", static_cast<int>(getpid()));
  std::fflush(stderr);
  int sig = 0;
  sigwait(&signals, &sig);  // the workers' idle beats and jobs run on the scheduler thread
  spdlog::warn("signal {}: draining (new jobs refused, the running job is checkpointed)", sig);
  server->GetHealthCheckService()->SetServingStatus(false);
  service.Drain();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(3));
  metrics.reset();
  std::fprintf(stderr, "tokenswift serve: stopped\n");
  return absl::OkStatus();
}

// Rank 0's set-up verdict to the other ranks (they leave with its exit code when it failed).
Status ShareVerdict(Communicator* comm, const Status& mine) {
  if (comm == nullptr) return mine;
  int32_t code = comm->rank() == 0 ? ExitCodeFor(mine) : 0;
  TS_RETURN_IF_ERROR(comm->Broadcast(&code, sizeof(code), 0));
  if (comm->rank() == 0 || code == 0) return mine;
  return code == 2 ? BadInput("rank ", comm->rank(), ": rank 0 refused to start the server")
                   : RuntimeFailure("rank ", comm->rank(), ": rank 0 failed to start the server");
}

Status RunServe(const ServeArgs& args) {
  // Before any thread starts (MPI's, the backend's pool, gRPC's): every thread inherits the mask,
  // so SIGTERM and SIGINT wait for rank 0's sigwait instead of ending a process mid-write
  // (mpirun forwards them to every rank; the other ranks leave when rank 0 announces the end).
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  TS_RETURN_IF_ERROR(ValidateTensorParallel(args.parallel));
  if (args.state_dir.empty()) return BadInput("--state-dir: required (where jobs are kept)");
  if (args.auth_token_file.empty()) {
    return BadInput("--auth-token-file: required (a file holding the bearer token clients send)");
  }
  if (args.tls_cert.empty() != args.tls_key.empty()) {
    return BadInput("--tls-cert / --tls-key: give both or neither");
  }
  if (!args.tls_client_ca.empty() && args.tls_cert.empty()) {
    return BadInput("--tls-client-ca: needs --tls-cert and --tls-key");
  }
  if (args.max_queue < 1 || args.max_queue > 1000000) {
    return BadInput("--max-queue: expected 1..1000000, got ", args.max_queue);
  }
  if (args.ctx_size < 0 || args.ctx_size > kMaxPositions) {
    return BadInput("--ctx-size: expected 0 (the model's) or up to ", kMaxPositions, ", got ",
                    args.ctx_size);
  }
  serve::ServeOptions options;
  options.max_queue = args.max_queue;
  TS_ASSIGN_OR_RETURN(options.tokenswift, ParseTokenSwiftFlags(args.tokenswift));
  TS_ASSIGN_OR_RETURN(options.kv_dtype, ParseKvDtype(args.backend.kv_dtype));
  TS_ASSIGN_OR_RETURN(Model model, LoadModel(args.model, /*require_tokenizer=*/true));
  const ModelConfig& config = model.config();
  options.ctx_size = args.ctx_size > 0 ? args.ctx_size : config.max_position;
  TS_ASSIGN_OR_RETURN(TensorParallelRank parallel, SetUpTensorParallel(args.parallel, model));
  Communicator* comm = parallel.comm.get();
  options.group = comm;

  // Rank 0 alone reads the secrets and the job store (they may exist on its node only).
  std::shared_ptr<grpc::ServerCredentials> creds;
  std::unique_ptr<serve::JobStore> store;
  Status setup = absl::OkStatus();
  if (parallel.printer()) setup = OpenServerFiles(args, &options, &creds, &store);
  TS_RETURN_IF_ERROR(ShareVerdict(comm, setup));

  TS_ASSIGN_OR_RETURN(std::unique_ptr<Backend> backend, MakeBackend(args.backend));
  TS_RETURN_IF_ERROR(parallel.Place(model, backend.get()));
  std::unique_ptr<DraftHeads> heads;
  if (!args.heads.empty()) {
    TS_ASSIGN_OR_RETURN(heads, DraftHeads::Load(args.heads, config, /*max_rows=*/1));
    TS_RETURN_IF_ERROR(parallel.ShardHeads(heads.get()));
  }
  const EngineParts parts =
      parallel.Parts(model, backend.get(), heads.get(), args.backend.batch_size, /*control=*/true);
  if (!parallel.printer()) return WorkerLoop(parts, options.tokenswift);
  return ServeAsRoot(args, model, parts, std::move(options), creds, store.get(), signals);
}

#else
Status RunServe(const ServeArgs&) {
  return RuntimeFailure("serve: this build has no gRPC (install libgrpc++-dev and rebuild)");
}
#endif

}  // namespace

void RegisterServe(CLI::App& app, Status* result) {
  auto args = std::make_shared<ServeArgs>();
  args->model = DefaultModelPath();
  CLI::App* sub = app.add_subcommand("serve", "run the gRPC job service (durable jobs, streams)");
  sub->add_option("-m,--model", args->model, "GGUF file or HF model directory")
      ->capture_default_str();
  sub->add_option("--heads", args->heads, "draft heads for TokenSwift jobs");
  sub->add_option("--listen", args->listen, "HOST:PORT to serve on (port 0: any free port)")
      ->capture_default_str();
  sub->add_option("--state-dir", args->state_dir, "directory of the durable job store");
  sub->add_option("--auth-token-file", args->auth_token_file,
                  "file holding the bearer token every call must carry");
  sub->add_option("--tls-cert", args->tls_cert, "server certificate chain (PEM): serve TLS");
  sub->add_option("--tls-key", args->tls_key, "server private key (PEM)");
  sub->add_option("--tls-client-ca", args->tls_client_ca,
                  "CA (PEM) that client certificates must chain to (mTLS)");
  sub->add_option("--metrics-listen", args->metrics_listen,
                  "HOST:PORT of a Prometheus text endpoint");
  sub->add_option("--max-queue", args->max_queue, "queued jobs at most")->capture_default_str();
  sub->add_option("-c,--ctx-size", args->ctx_size,
                  "context limit per job, prompt + new tokens (default: the model's)");
  AddTensorParallelOptions(sub, &args->parallel);
  AddTokenSwiftOptions(sub, &args->tokenswift);
  AddBackendOptions(sub, &args->backend);
  sub->callback([args, result] { *result = RunServe(*args); });
}

}  // namespace ts::cli
