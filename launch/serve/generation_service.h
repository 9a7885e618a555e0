// The gRPC job service of `tokenswift serve` (proto/tokenswift.proto): a bounded queue of durable
// jobs (job_store.h) run one at a time through the engine's Job API (runtime/engine/job.h), with
// resumable token streams, cancellation within one step, and a drain that checkpoints the running
// job for the next start of the server.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "launch/serve/job_store.h"
#include "proto/tokenswift.grpc.pb.h"
#include "runtime/engine/job.h"
#include "runtime/engine/model.h"

namespace ts::serve {

struct ServeOptions {
  std::string auth_token;        // expected after "Bearer " in the authorization metadata
  int64_t max_queue = 64;        // queued jobs beyond this: RESOURCE_EXHAUSTED
  int64_t ctx_size = 0;          // prompt + max_new_tokens limit per job
  TokenSwiftOptions tokenswift;  // tree and planner options of TokenSwift jobs
  DType kv_dtype = DType::kBF16;
  // Tensor parallel (rank 0 of a group whose other ranks run WorkerLoop): each job is announced
  // to the group before it runs, idle beats keep the workers inside their deadline, and the
  // end is announced when the scheduler stops. nullptr: one process.
  Communicator* group = nullptr;
};

class GenerationService final : public tokenswift::v1::Generation::Service {
 public:
  GenerationService(const Model* model, EngineParts parts, JobStore* store, ServeOptions options);
  ~GenerationService() override;

  // Loads the store's jobs: finished ones answer Get/Stream, unfinished ones are queued again (in
  // submission order) and continue from their stored tokens.
  Status Recover();
  void Start();  // the scheduler thread
  // Refuses new jobs, stops the running job after its current step with its tokens stored and its
  // state left queued (the next server start resumes it), ends open streams, joins the scheduler.
  void Drain();

  // Prometheus text exposition of the job counters and the last run's rates.
  std::string MetricsText();

  grpc::Status Submit(grpc::ServerContext* ctx, const tokenswift::v1::SubmitRequest* request,
                      tokenswift::v1::SubmitResponse* response) override;
  grpc::Status Stream(grpc::ServerContext* ctx, const tokenswift::v1::StreamRequest* request,
                      grpc::ServerWriter<tokenswift::v1::StreamResponse>* writer) override;
  grpc::Status Get(grpc::ServerContext* ctx, const tokenswift::v1::GetRequest* request,
                   tokenswift::v1::Job* response) override;
  grpc::Status Cancel(grpc::ServerContext* ctx, const tokenswift::v1::CancelRequest* request,
                      tokenswift::v1::Job* response) override;
  grpc::Status List(grpc::ServerContext* ctx, const tokenswift::v1::ListRequest* request,
                    tokenswift::v1::ListResponse* response) override;

 private:
  struct LiveJob {
    StoredJob stored;  // tokens live in `tokens` below
    JobSpec spec;      // resumed is filled when the job starts
    std::vector<int32_t> tokens;
    int64_t durable = 0;  // tokens written to the store
    std::atomic<bool> stop{false};
    bool user_cancel = false;
    tokenswift::v1::JobStats stats;
  };
  class Sink;

  grpc::Status CheckAuth(grpc::ServerContext* ctx) const;
  // The job a request describes, or INVALID_ARGUMENT naming the field.
  grpc::Status BuildSpec(const tokenswift::v1::SubmitRequest& request, JobSpec* spec) const;
  void FillJob(const LiveJob& job, tokenswift::v1::Job* out) const;  // mu_ held
  std::shared_ptr<LiveJob> Find(const std::string& id);              // mu_ held
  void SchedulerLoop();
  void RunOne(const std::shared_ptr<LiveJob>& job);
  // A failed collective leaves the group out of step: the job is marked failed and every rank
  // ends (jobs are durable; a restarted server resumes the others).
  [[noreturn]] void AbortGroup(const std::string& id, const Status& status);
  Status Flush(LiveJob& job, bool force);
  bool Finished(const LiveJob& job) const;  // the stored tokens already end the job

  const Model* model_;
  EngineParts parts_;
  JobStore* store_;
  ServeOptions options_;

  std::mutex mu_;
  std::condition_variable cv_;  // any job's tokens or state changed, or the queue did
  std::map<std::string, std::shared_ptr<LiveJob>> jobs_;
  std::vector<std::string> order_;  // job ids in submission order
  std::map<std::string, std::string> by_request_;
  std::deque<std::shared_ptr<LiveJob>> queue_;
  bool draining_ = false;
  bool stopped_ = false;  // the scheduler has left
  std::thread scheduler_;
  int64_t tokens_total_ = 0;
  tokenswift::v1::JobStats last_stats_;
};

}  // namespace ts::serve
