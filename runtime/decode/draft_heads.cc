// Draft heads: loading (safetensors file or HF directory), applying through Backend ops, and
// writing random heads. See draft_heads.h for the structure and its source.
//
// Note on backends: Apply only calls Backend ops. On a backend without host memory (CUDA) every
// pointer an op receives is its memory: Place copies the weights (as stored) and allocates the
// scratch there at the first Apply, as PlacedWeights does for the model.
#include "runtime/decode/draft_heads.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <string_view>
#include <system_error>
#include <utility>

#include "common/hash_random.h"
#include "runtime/common/mapped_file.h"
#include "runtime/model/loader.h"
#include "runtime/model/safetensors.h"
#include "runtime/model/weight_names.h"

namespace ts {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kPrefix = "model.medusa_layers.";

// "tokenswift.draft_vocab" metadata: ascending, distinct ids in [0, vocab).
StatusOr<std::vector<int32_t>> ParseDraftVocab(const std::string& text, const std::string& file,
                                               int64_t vocab) {
  std::vector<int32_t> ids;
  const char* p = text.c_str();
  while (*p != '\0') {
    while (*p == ' ') ++p;
    if (*p == '\0') break;
    char* end = nullptr;
    const long long id = std::strtoll(p, &end, 10);
    if (end == p || (*end != ' ' && *end != '\0') || id < 0 || id >= vocab ||
        (!ids.empty() && id <= ids.back())) {
      return BadInput(file, ": metadata '", kDraftVocabKey,
                      "': expected ascending token ids in [0, ", vocab, "), got '",
                      std::string(p, end != p ? end : p + 1), "' after ", ids.size(), " ids");
    }
    ids.push_back(static_cast<int32_t>(id));
    p = end;
  }
  if (ids.empty()) return BadInput(file, ": metadata '", kDraftVocabKey, "' holds no token id");
  return ids;
}

// The *.safetensors files `path` stands for, sorted by name.
StatusOr<std::vector<std::string>> SafetensorsFilesOf(const std::string& path) {
  std::error_code ec;
  const fs::file_status st = fs::status(path, ec);
  if (ec || !fs::exists(st)) return BadInput(path, ": no such file or directory");
  if (!fs::is_directory(st)) return std::vector<std::string>{path};
  std::vector<std::string> files;
  for (fs::directory_iterator it(path, ec), end; !ec && it != end; it.increment(ec)) {
    const fs::path& p = it->path();
    std::error_code type_ec;
    if (p.extension() == ".safetensors" && it->is_regular_file(type_ec)) {
      files.push_back(p.string());
    }
  }
  if (ec) return BadInput(path, ": cannot list directory: ", ec.message());
  if (files.empty()) return BadInput(path, ": directory holds no .safetensors file");
  std::sort(files.begin(), files.end());
  return files;
}

// One draft-head tensor found in a file.
struct Found {
  TensorInfo info;
  size_t file_index = 0;
};

StatusOr<const Found*> Require(const std::map<std::string, Found>& found, const std::string& source,
                               const std::string& name, std::vector<int64_t> shape, int head,
                               int num_heads) {
  auto it = found.find(name);
  if (it == found.end()) {
    return BadInput(source, ": missing tensor '", name, "' (draft head ", head, " of ", num_heads,
                    ")");
  }
  const TensorInfo& t = it->second.info;
  if (t.shape != shape) {
    return BadInput(t.file, ": tensor '", name, "': shape ", ShapeString(t.shape), ", expected ",
                    ShapeString(shape), " (hidden_size ", shape[0], ")");
  }
  if (t.dtype != DType::kF32 && t.dtype != DType::kF16 && t.dtype != DType::kBF16) {
    return BadInput(t.file, ": tensor '", name, "': dtype ", GetDTypeInfo(t.dtype).name,
                    ", expected f32, f16 or bf16");
  }
  return &it->second;
}

}  // namespace

std::string DraftHeadTensorName(int head, const char* part) {
  return Cat(kPrefix, head, ".", part, ".weight");
}

DraftHeads::~DraftHeads() = default;

StatusOr<std::unique_ptr<DraftHeads>> DraftHeads::Load(const std::string& path,
                                                       const ModelConfig& config, int64_t max_rows,
                                                       int num_heads) {
  const int64_t h = config.hidden_size;
  if (h < 1) return BadInput(path, ": model hidden_size ", h, " must be positive");
  if (num_heads < 1) return BadInput(path, ": number of draft heads ", num_heads, " must be >= 1");
  if (max_rows < 1) return BadInput(path, ": draft heads max_rows ", max_rows, " must be >= 1");

  std::unique_ptr<DraftHeads> heads(new DraftHeads());
  heads->source_ = path;
  heads->hidden_ = h;
  heads->max_rows_ = max_rows;
  heads->eps_ = config.rms_eps;

  // Map every candidate file; keep the ones holding draft-head tensors.
  TS_ASSIGN_OR_RETURN(std::vector<std::string> paths, SafetensorsFilesOf(path));
  std::map<std::string, Found> found;
  for (const std::string& file_path : paths) {
    TS_ASSIGN_OR_RETURN(std::unique_ptr<MappedFile> file, MappedFile::Open(file_path));
    TS_ASSIGN_OR_RETURN(SafetensorsHeader header,
                        ParseSafetensors(file->data(), file->size(), file_path));
    bool used = false;
    if (auto it = header.metadata.find(std::string(kDraftVocabKey)); it != header.metadata.end()) {
      TS_ASSIGN_OR_RETURN(heads->draft_vocab_,
                          ParseDraftVocab(it->second, file_path, config.vocab_size));
      used = true;
    }
    for (const SafetensorsEntry& e : header.tensors) {
      if (!e.name.starts_with(kPrefix)) continue;
      Found f;
      f.info.name = e.name;
      f.info.file = file_path;
      f.info.dtype = e.dtype;
      f.info.shape = e.shape;
      f.info.data = file->data() + e.offset;
      f.info.nbytes = static_cast<size_t>(e.nbytes);
      f.file_index = heads->files_.size();
      auto [it, inserted] = found.emplace(e.name, std::move(f));
      if (!inserted) {
        return BadInput(file_path, ": tensor '", e.name, "' also in ", it->second.info.file);
      }
      used = true;
    }
    if (used) heads->files_.push_back(std::move(file));
  }

  heads->norms_.reserve(2 * static_cast<size_t>(num_heads));  // moves keep data() valid
  for (int i = 0; i < num_heads; ++i) {
    DraftHeadWeights w;
    for (const char* part : {"input_layernorm", "post_layernorm"}) {
      TS_ASSIGN_OR_RETURN(const Found* f,
                          Require(found, path, DraftHeadTensorName(i, part), {h}, i, num_heads));
      TS_ASSIGN_OR_RETURN(std::vector<float> values, ToF32(f->info));
      heads->norms_.push_back(std::move(values));
      (std::string_view(part) == "input_layernorm" ? w.input_norm : w.post_norm) =
          heads->norms_.back().data();
    }
    TS_ASSIGN_OR_RETURN(const Found* lin, Require(found, path, DraftHeadTensorName(i, "linear"),
                                                  {h, h}, i, num_heads));
    w.linear.data = lin->info.data;
    w.linear.dtype = lin->info.dtype;
    w.linear.rows = h;
    w.linear.cols = h;
    w.linear.row_bytes = RowBytes(lin->info.dtype, h);
    heads->heads_.push_back(w);
  }

  if (found.contains(std::string(kDraftTokenLinearName))) {
    TS_ASSIGN_OR_RETURN(const Found* t, Require(found, path, std::string(kDraftTokenLinearName),
                                                {h, h}, 0, num_heads));
    heads->token_linear_ = {.data = t->info.data,
                            .dtype = t->info.dtype,
                            .rows = h,
                            .cols = h,
                            .row_bytes = RowBytes(t->info.dtype, h)};
    heads->ones_.assign(static_cast<size_t>(h), 1.0f);
    heads->token_term_.assign(static_cast<size_t>(max_rows * h), 0.0f);
  }
  const std::string up_name(kDraftTokenMlpUpName), down_name(kDraftTokenMlpDownName);
  if (found.contains(up_name) || found.contains(down_name)) {
    if (!heads->has_token_input()) {
      return BadInput(path, ": the token MLP needs the token input tensor '", kDraftTokenLinearName,
                      "'");
    }
    auto up_it = found.find(up_name);
    const int64_t m =
        up_it != found.end() && !up_it->second.info.shape.empty() ? up_it->second.info.shape[0] : 0;
    if (m < 1) return BadInput(path, ": missing or empty tensor '", up_name, "'");
    TS_ASSIGN_OR_RETURN(const Found* up, Require(found, path, up_name, {m, 2 * h}, 0, num_heads));
    TS_ASSIGN_OR_RETURN(const Found* down, Require(found, path, down_name, {h, m}, 0, num_heads));
    auto view = [](const Found* f, int64_t rows, int64_t cols) {
      return Matrix{.data = f->info.data,
                    .dtype = f->info.dtype,
                    .rows = rows,
                    .cols = cols,
                    .row_bytes = RowBytes(f->info.dtype, cols)};
    };
    heads->mlp_up_ = view(up, m, 2 * h);
    heads->mlp_down_ = view(down, h, m);
    heads->mlp_in_.assign(static_cast<size_t>(max_rows * 2 * h), 0.0f);
    heads->mlp_act_.assign(static_cast<size_t>(max_rows * m), 0.0f);
    heads->mlp_ones_.assign(static_cast<size_t>(max_rows * m), 1.0f);
  }

  heads->rows_ = {0, h};
  const size_t scratch = static_cast<size_t>(max_rows * h);
  heads->normed_.assign(scratch, 0.0f);
  heads->post_normed_.assign(scratch * heads->heads_.size(), 0.0f);
  heads->stream_a_.assign(scratch, 0.0f);
  heads->stream_b_.assign(scratch, 0.0f);
  return heads;
}

Status DraftHeads::Place(Backend& backend, int64_t vocab) {
  if (comm_ != nullptr) {
    return BadInput("draft heads (", source_, "): sharded heads on ", backend.Name(),
                    ": tensor parallelism runs on host memory only so far");
  }
  Placement d;
  d.backend = &backend;
  auto floats = [&](int64_t count) -> StatusOr<float*> {
    TS_ASSIGN_OR_RETURN(Buffer b, backend.Alloc(static_cast<size_t>(count) * sizeof(float)));
    float* p = b.as<float>();
    d.storage.push_back(std::move(b));
    return p;
  };
  auto upload = [&](const void* host, size_t bytes) -> StatusOr<const void*> {
    TS_ASSIGN_OR_RETURN(Buffer b, backend.Alloc(bytes));
    backend.Upload(b.data(), host, bytes);
    const void* p = b.data();
    d.storage.push_back(std::move(b));
    return p;
  };
  auto matrix = [&](const Matrix& m) -> StatusOr<Matrix> {
    Matrix out = m;
    if (m.data != nullptr) {
      TS_ASSIGN_OR_RETURN(out.data, upload(m.data, m.row_bytes * static_cast<size_t>(m.rows)));
    }
    return out;
  };
  auto vec = [&](const float* v, int64_t count) -> StatusOr<const float*> {
    TS_ASSIGN_OR_RETURN(const void* p, upload(v, static_cast<size_t>(count) * sizeof(float)));
    return static_cast<const float*>(p);
  };
  for (const DraftHeadWeights& w : heads_) {
    DraftHeadWeights dw;
    TS_ASSIGN_OR_RETURN(dw.input_norm, vec(w.input_norm, hidden_));
    TS_ASSIGN_OR_RETURN(dw.linear, matrix(w.linear));
    TS_ASSIGN_OR_RETURN(dw.post_norm, vec(w.post_norm, hidden_));
    d.heads.push_back(dw);
  }
  const int64_t rows = max_rows_ * hidden_;
  TS_ASSIGN_OR_RETURN(d.hidden, floats(rows));
  TS_ASSIGN_OR_RETURN(d.normed, floats(rows));
  TS_ASSIGN_OR_RETURN(d.stream_a, floats(rows));
  TS_ASSIGN_OR_RETURN(d.stream_b, floats(rows));
  TS_ASSIGN_OR_RETURN(d.post_normed, floats(rows * num_heads()));
  if (has_token_input()) {
    TS_ASSIGN_OR_RETURN(d.token_linear, matrix(token_linear_));
    TS_ASSIGN_OR_RETURN(d.ones, vec(ones_.data(), hidden_));
    TS_ASSIGN_OR_RETURN(d.embeddings, floats(rows));
    TS_ASSIGN_OR_RETURN(d.token_term, floats(rows));
  }
  if (mlp_up_.data != nullptr) {
    TS_ASSIGN_OR_RETURN(d.mlp_up, matrix(mlp_up_));
    TS_ASSIGN_OR_RETURN(d.mlp_down, matrix(mlp_down_));
    TS_ASSIGN_OR_RETURN(d.mlp_ones, vec(mlp_ones_.data(), static_cast<int64_t>(mlp_ones_.size())));
    TS_ASSIGN_OR_RETURN(d.mlp_in, floats(2 * rows));
    TS_ASSIGN_OR_RETURN(d.mlp_act, floats(static_cast<int64_t>(mlp_act_.size())));
  }
  d.logits_count = num_heads() * max_rows_ * vocab;
  TS_ASSIGN_OR_RETURN(d.logits, floats(d.logits_count));
  TS_RETURN_IF_ERROR(backend.Synchronize());
  device_ = std::move(d);
  draft_lm_source_ = nullptr;  // the draft lm_head is rebuilt in this backend's memory
  return absl::OkStatus();
}

Status DraftHeads::Apply(Backend& backend, const float* hidden, int64_t n, const Matrix& lm_head,
                         float* logits_out, const float* token_embeddings) {
  if (n < 1 || n > max_rows_) {
    return BadInput("draft heads (", source_, "): ", n, " rows, expected 1..", max_rows_);
  }
  if (lm_head.cols != hidden_) {
    return BadInput("draft heads (", source_, "): lm_head has ", lm_head.cols,
                    " columns, expected hidden_size ", hidden_);
  }
  if (hidden == nullptr || logits_out == nullptr) {
    return BadInput("draft heads (", source_, "): null hidden or logits buffer");
  }
  if (has_token_input() && token_embeddings == nullptr) {
    return BadInput("draft heads (", source_, "): the heads read the next token (",
                    kDraftTokenLinearName, ") but no token embeddings were given");
  }
  // Host vectors on a host-memory backend; the placed copies on a device backend.
  const bool host = backend.host_memory();
  if (!host && (device_.backend != &backend ||
                device_.logits_count < num_heads() * max_rows_ * lm_head.rows)) {
    TS_RETURN_IF_ERROR(Place(backend, lm_head.rows));
  }
  const Placement& d = device_;
  const std::vector<DraftHeadWeights>& heads = host ? heads_ : d.heads;
  const Matrix& token_linear = host ? token_linear_ : d.token_linear;
  const Matrix& mlp_up = host ? mlp_up_ : d.mlp_up;
  const Matrix& mlp_down = host ? mlp_down_ : d.mlp_down;
  const float* ones = host ? ones_.data() : d.ones;
  const float* mlp_ones = host ? mlp_ones_.data() : d.mlp_ones;
  float* normed = host ? normed_.data() : d.normed;
  float* stream_a = host ? stream_a_.data() : d.stream_a;
  float* stream_b = host ? stream_b_.data() : d.stream_b;
  float* post_normed = host ? post_normed_.data() : d.post_normed;
  float* token_term = host ? token_term_.data() : d.token_term;
  float* mlp_in = host ? mlp_in_.data() : d.mlp_in;
  float* mlp_act = host ? mlp_act_.data() : d.mlp_act;
  const int64_t count = n * hidden_;
  const float* prev = hidden;  // x_i, (n, hidden)
  if (!host) {
    backend.Upload(d.hidden, hidden, count * sizeof(float));
    prev = d.hidden;
    if (has_token_input()) {
      backend.Upload(d.embeddings, token_embeddings, count * sizeof(float));
      token_embeddings = d.embeddings;
    }
  }
  const size_t row_bytes = static_cast<size_t>(hidden_) * sizeof(float);
  for (size_t i = 0; i < heads.size(); ++i) {
    const DraftHeadWeights& w = heads[i];
    float* next = (i % 2 == 0) ? stream_a : stream_b;  // x_{i+1}
    backend.RmsNorm(prev, w.input_norm, n, hidden_, eps_, normed);
    if (comm_ == nullptr) {
      backend.MatMul(w.linear, normed, n, next);
    } else {
      TS_RETURN_IF_ERROR(ShardedLinear(backend, w.linear, normed, n, next));
    }
    if (i == 0 && has_token_input()) {  // unsharded, the same on every rank
      if (mlp_up.data != nullptr) {     // u = [rms_norm(x_0; input_layernorm_0); e]
        backend.Copy2D(mlp_in, 2 * row_bytes, normed, row_bytes, row_bytes, n);
      }
      backend.RmsNorm(token_embeddings, ones, n, hidden_, eps_, normed);  // e
      backend.MatMul(token_linear, normed, n, token_term);
      backend.Add(next, token_term, count);  // + T e
      if (mlp_up.data != nullptr) {          // + D silu(U u)
        const int64_t m = mlp_up.rows;
        backend.Copy2D(mlp_in + hidden_, 2 * row_bytes, normed, row_bytes, row_bytes, n);
        backend.MatMul(mlp_up, mlp_in, n, mlp_act);
        backend.SwiGlu(mlp_act, mlp_ones, n, m, mlp_act);  // silu * 1
        backend.MatMul(mlp_down, mlp_act, n, token_term);
        backend.Add(next, token_term, count);
      }
    }
    backend.Add(next, prev, count);  // linear(norm(x_i)) + x_i
    backend.RmsNorm(next, w.post_norm, n, hidden_, eps_, post_normed + i * count);
    prev = next;
  }
  // One lm_head product for every head's rows: the weights are read once (rows are independent,
  // so each row's logits equal a product of that row alone).
  const int64_t rows = n * num_heads(), v = lm_head.rows;
  if (draft_vocab_.empty()) {
    if (host) {
      backend.MatMul(lm_head, post_normed, rows, logits_out);
      return absl::OkStatus();
    }
    backend.MatMul(lm_head, post_normed, rows, d.logits);
    return backend.Download(logits_out, d.logits, rows * v * sizeof(float));
  }
  if (draft_lm_source_ != lm_head.data) TS_RETURN_IF_ERROR(BuildDraftLmHead(lm_head, backend));
  const int64_t k = draft_lm_.rows;
  std::fill(logits_out, logits_out + rows * v, -INFINITY);
  if (k == 0) return absl::OkStatus();
  if (host) {
    backend.MatMul(draft_lm_, post_normed, rows, draft_logits_.data());
  } else {
    backend.MatMul(draft_lm_, post_normed, rows, d.logits);
    TS_RETURN_IF_ERROR(backend.Download(draft_logits_.data(), d.logits, rows * k * sizeof(float)));
  }
  for (int64_t r = 0; r < rows; ++r) {
    const float* src = draft_logits_.data() + r * k;
    float* dst = logits_out + r * v;
    for (int64_t j = 0; j < k; ++j) dst[draft_rows_[j]] = src[j];
  }
  return absl::OkStatus();
}

Status DraftHeads::BuildDraftLmHead(const Matrix& lm_head, Backend& backend) {
  const int64_t begin = vocab_range_.end < 0 ? 0 : vocab_range_.begin;
  const int64_t end = vocab_range_.end < 0 ? lm_head.rows : vocab_range_.end;
  draft_rows_.clear();
  for (int32_t id : draft_vocab_) {
    if (id >= begin && id < end && id - begin < lm_head.rows) {
      draft_rows_.push_back(static_cast<int32_t>(id - begin));
    }
  }
  // The rows as stored (same dtype, same bytes): each draft logit is the very dot product the
  // whole-vocabulary product computes for that token.
  // lm_head is the backend's memory: the rows are copied there (host vectors on the CPU).
  const int64_t k = static_cast<int64_t>(draft_rows_.size());
  const size_t bytes = static_cast<size_t>(k) * lm_head.row_bytes;
  uint8_t* dst = nullptr;
  if (backend.host_memory()) {
    draft_lm_bytes_.resize(bytes);
    dst = draft_lm_bytes_.data();
  } else {
    TS_ASSIGN_OR_RETURN(draft_lm_device_, backend.Alloc(bytes));
    dst = draft_lm_device_.as<uint8_t>();
  }
  for (int64_t j = 0; j < k; ++j) {
    backend.Copy(dst + j * lm_head.row_bytes, lm_head.Row(draft_rows_[j]), lm_head.row_bytes);
  }
  draft_lm_ = lm_head;
  draft_lm_.data = dst;
  draft_lm_.rows = k;
  draft_logits_.assign(static_cast<size_t>(num_heads() * max_rows_ * k), 0.0f);
  draft_lm_source_ = lm_head.data;
  return absl::OkStatus();
}

Status DraftHeads::Shard(Range rows, Communicator* comm) {
  if (comm == nullptr || comm->size() == 1) return absl::OkStatus();
  if (comm_ != nullptr) return absl::InternalError("draft heads: already sharded");
  const int world = comm->size();
  const int64_t mine[2] = {rows.begin, rows.end};
  std::vector<int64_t> all(2 * static_cast<size_t>(world));
  TS_RETURN_IF_ERROR(comm->AllGather(mine, sizeof(mine), all.data()));
  all_rows_.clear();
  int64_t at = 0;
  for (int r = 0; r < world; ++r) {
    const Range rr{all[2 * r], all[2 * r + 1]};
    if (rr.begin != at || rr.end < rr.begin || rr.end > hidden_) {
      return BadInput("draft heads (", source_, "): rank ", r, " rows [", rr.begin, ", ", rr.end,
                      ") do not continue the split of ", hidden_, " rows at ", at);
    }
    all_rows_.push_back(rr);
    max_slice_ = std::max(max_slice_, rr.size());
    at = rr.end;
  }
  if (at != hidden_) {
    return BadInput("draft heads (", source_, "): ranks' rows end at ", at, ", expected ", hidden_);
  }
  for (DraftHeadWeights& w : heads_) {
    w.linear.data = static_cast<const uint8_t*>(w.linear.data) + rows.begin * w.linear.row_bytes;
    w.linear.rows = rows.size();
  }
  rows_ = rows;
  comm_ = comm;
  slice_.assign(static_cast<size_t>(max_rows_ * max_slice_), 0.0f);
  gathered_.assign(static_cast<size_t>(world) * slice_.size(), 0.0f);
  return absl::OkStatus();
}

// out (n, hidden) = the whole product, from this rank's rows and the others' (one all-gather of
// (n, max_slice) floats per rank).
Status DraftHeads::ShardedLinear(Backend& backend, const Matrix& linear, const float* in, int64_t n,
                                 float* out) {
  const int64_t mine = rows_.size();
  if (mine > 0) backend.MatMul(linear, in, n, out);  // (n, mine), packed
  for (int64_t r = 0; r < n; ++r) {
    std::copy(out + r * mine, out + (r + 1) * mine, slice_.data() + r * max_slice_);
  }
  const size_t per_rank = static_cast<size_t>(n * max_slice_);
  if (per_rank * all_rows_.size() > gathered_.size()) {
    return absl::InternalError("draft heads: gather buffer too small");
  }
  // Pack the gathered ranks contiguously: rank q's n * max_slice floats at q * per_rank.
  TS_RETURN_IF_ERROR(comm_->AllGather(slice_.data(), per_rank * sizeof(float), gathered_.data()));
  for (size_t q = 0; q < all_rows_.size(); ++q) {
    const Range rr = all_rows_[q];
    const float* src = gathered_.data() + q * per_rank;
    for (int64_t r = 0; r < n; ++r) {
      std::copy(src + r * max_slice_, src + r * max_slice_ + rr.size(),
                out + r * hidden_ + rr.begin);
    }
  }
  return absl::OkStatus();
}

std::vector<SafetensorsTensor> RandomHeadsTensors(int64_t hidden, uint64_t seed,
                                                  const RandomHeadsOptions& options) {
  const float linear_std =
      options.linear_std > 0.0f ? options.linear_std : 1.0f / std::sqrt(static_cast<float>(hidden));
  // A key per (seed, tensor name) for HashNormal (common/hash_random.h).
  auto key_of = [seed](const std::string& name) { return Fnv1a64(name) ^ seed; };
  auto make = [&](std::string name, std::vector<int64_t> shape, float scale, float offset) {
    int64_t count = 1;
    for (int64_t d : shape) count *= d;
    const uint64_t key = key_of(name);
    std::vector<float> values(static_cast<size_t>(count));
    for (int64_t j = 0; j < count; ++j) {
      // fma rounds once, so the value never depends on the compiler's FMA contraction.
      values[j] = std::fma(scale, HashNormal(key, static_cast<uint64_t>(j)), offset);
    }
    return SafetensorsTensor{std::move(name), options.dtype, std::move(shape),
                             EncodeFloats(values, options.dtype)};
  };
  std::vector<SafetensorsTensor> tensors;
  for (int i = 0; i < options.num_heads; ++i) {
    tensors.push_back(
        make(DraftHeadTensorName(i, "input_layernorm"), {hidden}, options.norm_noise, 1.0f));
    tensors.push_back(make(DraftHeadTensorName(i, "linear"), {hidden, hidden}, linear_std, 0.0f));
    tensors.push_back(
        make(DraftHeadTensorName(i, "post_layernorm"), {hidden}, options.norm_noise, 1.0f));
  }
  if (options.token_input) {
    tensors.push_back(make(std::string(kDraftTokenLinearName), {hidden, hidden}, linear_std, 0.0f));
    if (options.token_mlp > 0) {
      const int64_t m = options.token_mlp;
      tensors.push_back(make(std::string(kDraftTokenMlpUpName), {m, 2 * hidden},
                             1.0f / std::sqrt(2.0f * static_cast<float>(hidden)), 0.0f));
      tensors.push_back(make(std::string(kDraftTokenMlpDownName), {hidden, m},
                             1.0f / std::sqrt(static_cast<float>(m)), 0.0f));
    }
  }
  return tensors;
}

Status WriteRandomHeads(const std::string& path, int64_t hidden, uint64_t seed,
                        const RandomHeadsOptions& options) {
  if (hidden < 1) return BadInput(path, ": random heads: hidden ", hidden, " must be >= 1");
  if (options.num_heads < 1) {
    return BadInput(path, ": random heads: num_heads ", options.num_heads, " must be >= 1");
  }
  if (options.dtype != DType::kF32 && options.dtype != DType::kF16 &&
      options.dtype != DType::kBF16) {
    return BadInput(path, ": random heads: dtype ", GetDTypeInfo(options.dtype).name,
                    ", expected f32, f16 or bf16");
  }
  return WriteSafetensors(path, RandomHeadsTensors(hidden, seed, options), {{"format", "pt"}});
}

}  // namespace ts
