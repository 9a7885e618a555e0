#include "launch/serve/job_store.h"

#include <cstring>
#include <filesystem>
#include <memory>

#include "absl/strings/str_cat.h"

namespace ts::serve {
namespace {

// sqlite3_stmt with finalize on scope exit.
struct Stmt {
  sqlite3_stmt* s = nullptr;
  ~Stmt() { sqlite3_finalize(s); }
};

std::string IdsBlob(const std::vector<int32_t>& ids) {
  std::string blob(ids.size() * sizeof(int32_t), '\0');
  if (!ids.empty()) std::memcpy(blob.data(), ids.data(), blob.size());
  return blob;
}

void AppendIds(const void* blob, int bytes, std::vector<int32_t>* ids) {
  const size_t n = static_cast<size_t>(bytes) / sizeof(int32_t);
  const size_t at = ids->size();
  ids->resize(at + n);
  if (n > 0) std::memcpy(ids->data() + at, blob, n * sizeof(int32_t));
}

std::string Text(sqlite3_stmt* s, int col) {
  const unsigned char* t = sqlite3_column_text(s, col);
  return t == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(t));
}

}  // namespace

StatusOr<std::unique_ptr<JobStore>> JobStore::Open(const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return BadInput("--state-dir: cannot create '", dir, "': ", ec.message());
  std::unique_ptr<JobStore> store(new JobStore());
  store->path_ = (std::filesystem::path(dir) / "jobs.sqlite3").string();
  if (sqlite3_open_v2(store->path_.c_str(), &store->db_,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX,
                      nullptr) != SQLITE_OK) {
    return BadInput("--state-dir: cannot open '", store->path_,
                    "': ", store->db_ ? sqlite3_errmsg(store->db_) : "out of memory");
  }
  sqlite3_busy_timeout(store->db_, 5000);
  TS_RETURN_IF_ERROR(store->Exec("PRAGMA journal_mode=WAL"));
  TS_RETURN_IF_ERROR(store->Exec("PRAGMA synchronous=FULL"));
  TS_RETURN_IF_ERROR(store->Exec(
      "CREATE TABLE IF NOT EXISTS jobs("
      " seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, request_id TEXT NOT NULL,"
      " payload BLOB NOT NULL, prompt_ids BLOB NOT NULL, state INTEGER NOT NULL,"
      " stop_reason TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '',"
      " created_ms INTEGER NOT NULL, resumes INTEGER NOT NULL DEFAULT 0);"
      "CREATE UNIQUE INDEX IF NOT EXISTS jobs_request_id ON jobs(request_id)"
      " WHERE request_id != '';"
      "CREATE TABLE IF NOT EXISTS tokens("
      " job_id TEXT NOT NULL, first INTEGER NOT NULL, ids BLOB NOT NULL,"
      " PRIMARY KEY(job_id, first));"));
  return store;
}

JobStore::~JobStore() { sqlite3_close(db_); }

Status JobStore::Fail(const char* what) {
  return RuntimeFailure("job store ", path_, ": ", what, ": ", sqlite3_errmsg(db_));
}

Status JobStore::Exec(const char* sql) {
  char* err = nullptr;
  if (sqlite3_exec(db_, sql, nullptr, nullptr, &err) != SQLITE_OK) {
    const std::string message = err ? err : "unknown error";
    sqlite3_free(err);
    return RuntimeFailure("job store ", path_, ": ", message);
  }
  return absl::OkStatus();
}

Status JobStore::Insert(const StoredJob& job) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st;
  if (sqlite3_prepare_v2(db_,
                         "INSERT INTO jobs(id, request_id, payload, prompt_ids, state, created_ms)"
                         " VALUES(?, ?, ?, ?, ?, ?)",
                         -1, &st.s, nullptr) != SQLITE_OK) {
    return Fail("prepare insert");
  }
  const std::string ids = IdsBlob(job.prompt_ids);
  sqlite3_bind_text(st.s, 1, job.id.data(), static_cast<int>(job.id.size()), SQLITE_TRANSIENT);
  sqlite3_bind_text(st.s, 2, job.request_id.data(), static_cast<int>(job.request_id.size()),
                    SQLITE_TRANSIENT);
  sqlite3_bind_blob(st.s, 3, job.payload.data(), static_cast<int>(job.payload.size()),
                    SQLITE_TRANSIENT);
  sqlite3_bind_blob(st.s, 4, ids.data(), static_cast<int>(ids.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int(st.s, 5, static_cast<int>(job.state));
  sqlite3_bind_int64(st.s, 6, job.created_ms);
  if (sqlite3_step(st.s) != SQLITE_DONE) return Fail("insert job");
  return absl::OkStatus();
}

Status JobStore::AppendTokens(const std::string& id, int64_t first,
                              const std::vector<int32_t>& ids) {
  if (ids.empty()) return absl::OkStatus();
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st;
  if (sqlite3_prepare_v2(db_, "INSERT OR REPLACE INTO tokens(job_id, first, ids) VALUES(?, ?, ?)",
                         -1, &st.s, nullptr) != SQLITE_OK) {
    return Fail("prepare tokens");
  }
  const std::string blob = IdsBlob(ids);
  sqlite3_bind_text(st.s, 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
  sqlite3_bind_int64(st.s, 2, first);
  sqlite3_bind_blob(st.s, 3, blob.data(), static_cast<int>(blob.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(st.s) != SQLITE_DONE) return Fail("append tokens");
  return absl::OkStatus();
}

Status JobStore::SetState(const std::string& id, StoredState state, const std::string& stop_reason,
                          const std::string& error) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st;
  if (sqlite3_prepare_v2(db_, "UPDATE jobs SET state = ?, stop_reason = ?, error = ? WHERE id = ?",
                         -1, &st.s, nullptr) != SQLITE_OK) {
    return Fail("prepare state");
  }
  sqlite3_bind_int(st.s, 1, static_cast<int>(state));
  sqlite3_bind_text(st.s, 2, stop_reason.data(), static_cast<int>(stop_reason.size()),
                    SQLITE_TRANSIENT);
  sqlite3_bind_text(st.s, 3, error.data(), static_cast<int>(error.size()), SQLITE_TRANSIENT);
  sqlite3_bind_text(st.s, 4, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(st.s) != SQLITE_DONE) return Fail("set state");
  return absl::OkStatus();
}

Status JobStore::CountResume(const std::string& id) {
  std::lock_guard<std::mutex> lock(mu_);
  Stmt st;
  if (sqlite3_prepare_v2(db_, "UPDATE jobs SET resumes = resumes + 1 WHERE id = ?", -1, &st.s,
                         nullptr) != SQLITE_OK) {
    return Fail("prepare resume");
  }
  sqlite3_bind_text(st.s, 1, id.data(), static_cast<int>(id.size()), SQLITE_TRANSIENT);
  if (sqlite3_step(st.s) != SQLITE_DONE) return Fail("count resume");
  return absl::OkStatus();
}

StatusOr<std::vector<StoredJob>> JobStore::LoadAll() {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<StoredJob> jobs;
  {
    Stmt st;
    if (sqlite3_prepare_v2(db_,
                           "SELECT id, request_id, payload, prompt_ids, state, stop_reason, error,"
                           " created_ms, resumes FROM jobs ORDER BY seq",
                           -1, &st.s, nullptr) != SQLITE_OK) {
      return Fail("prepare load");
    }
    int rc;
    while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
      StoredJob j;
      j.id = Text(st.s, 0);
      j.request_id = Text(st.s, 1);
      j.payload.assign(static_cast<const char*>(sqlite3_column_blob(st.s, 2)),
                       static_cast<size_t>(sqlite3_column_bytes(st.s, 2)));
      AppendIds(sqlite3_column_blob(st.s, 3), sqlite3_column_bytes(st.s, 3), &j.prompt_ids);
      const int state = sqlite3_column_int(st.s, 4);
      if (state < 1 || state > 5) {
        return RuntimeFailure("job store ", path_, ": job ", j.id, " has an unknown state ", state);
      }
      j.state = static_cast<StoredState>(state);
      j.stop_reason = Text(st.s, 5);
      j.error = Text(st.s, 6);
      j.created_ms = sqlite3_column_int64(st.s, 7);
      j.resumes = sqlite3_column_int64(st.s, 8);
      jobs.push_back(std::move(j));
    }
    if (rc != SQLITE_DONE) return Fail("load jobs");
  }
  for (StoredJob& j : jobs) {
    Stmt st;
    if (sqlite3_prepare_v2(db_, "SELECT first, ids FROM tokens WHERE job_id = ? ORDER BY first", -1,
                           &st.s, nullptr) != SQLITE_OK) {
      return Fail("prepare tokens load");
    }
    sqlite3_bind_text(st.s, 1, j.id.data(), static_cast<int>(j.id.size()), SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(st.s)) == SQLITE_ROW) {
      const int64_t first = sqlite3_column_int64(st.s, 0);
      if (first != static_cast<int64_t>(j.tokens.size())) {
        return RuntimeFailure("job store ", path_, ": job ", j.id, " has a gap in its tokens at ",
                              j.tokens.size());
      }
      AppendIds(sqlite3_column_blob(st.s, 1), sqlite3_column_bytes(st.s, 1), &j.tokens);
    }
    if (rc != SQLITE_DONE) return Fail("load tokens");
  }
  return jobs;
}

}  // namespace ts::serve
