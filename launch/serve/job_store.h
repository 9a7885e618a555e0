// Durable job records for `tokenswift serve`: SQLite in WAL mode under --state-dir. A job's
// submission is committed (synchronous=FULL) before Submit answers, so no acknowledged job is
// lost to a crash; generated tokens are appended in chunks as the job runs. Tokens committed by
// the decoder but not yet written are simply generated again after a restart: decoding is
// deterministic (DESIGN.md 2), so the resumed job's tokens equal an uninterrupted run's.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "common/status.h"

namespace ts::serve {

enum class StoredState : int {
  kQueued = 1,
  kRunning = 2,
  kSucceeded = 3,
  kCancelled = 4,
  kFailed = 5
};

struct StoredJob {
  std::string id;
  std::string request_id;
  std::string payload;  // the SubmitRequest, serialized deterministically
  std::vector<int32_t> prompt_ids;
  StoredState state = StoredState::kQueued;
  std::string stop_reason;
  std::string error;
  int64_t created_ms = 0;
  int64_t resumes = 0;
  std::vector<int32_t> tokens;  // generated so far (Load only)
};

class JobStore {
 public:
  // Opens or creates DIR/jobs.sqlite3 (DIR is created). One connection, serialized by a mutex.
  static StatusOr<std::unique_ptr<JobStore>> Open(const std::string& dir);
  ~JobStore();
  JobStore(const JobStore&) = delete;
  JobStore& operator=(const JobStore&) = delete;

  // Inserts a new job (durable when this returns).
  Status Insert(const StoredJob& job);
  // Appends generated tokens [first, first + ids.size()) of a job.
  Status AppendTokens(const std::string& id, int64_t first, const std::vector<int32_t>& ids);
  Status SetState(const std::string& id, StoredState state, const std::string& stop_reason,
                  const std::string& error);
  Status CountResume(const std::string& id);
  // Every job in submission order, with its tokens.
  StatusOr<std::vector<StoredJob>> LoadAll();

  const std::string& path() const { return path_; }

 private:
  JobStore() = default;
  Status Exec(const char* sql);
  Status Fail(const char* what);

  std::mutex mu_;
  sqlite3* db_ = nullptr;
  std::string path_;
};

}  // namespace ts::serve
