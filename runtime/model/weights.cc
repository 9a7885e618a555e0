#include "runtime/model/weights.h"

#include <map>
#include <utility>

#include "absl/strings/str_cat.h"

namespace ts {
namespace {

// Uploads host memory once per distinct (pointer, size): tied matrices share their copy.
class Uploader {
 public:
  Uploader(Backend& backend, std::vector<Buffer>& storage, size_t& bytes)
      : backend_(backend), storage_(storage), bytes_(bytes) {}

  StatusOr<const void*> Put(const void* host, size_t bytes, const std::string& what) {
    if (host == nullptr) return nullptr;
    if (auto it = placed_.find(host); it != placed_.end() && it->second.second >= bytes) {
      return it->second.first;
    }
    StatusOr<Buffer> buffer = backend_.Alloc(bytes);
    if (!buffer.ok()) {
      return Status(buffer.status().code(),
                    absl::StrCat("weights: ", what, " (", bytes, " bytes) on ", backend_.Name(),
                                 ": ", buffer.status().message()));
    }
    backend_.Upload(buffer->data(), host, bytes);
    const void* device = buffer->data();
    storage_.push_back(*std::move(buffer));
    placed_[host] = {device, bytes};
    bytes_ += bytes;
    return device;
  }
  StatusOr<Matrix> Put(const Matrix& m, const std::string& what) {
    Matrix out = m;
    TS_ASSIGN_OR_RETURN(out.data, Put(m.data, m.row_bytes * static_cast<size_t>(m.rows), what));
    return out;
  }
  StatusOr<const float*> Put(const float* v, int64_t count, const std::string& what) {
    TS_ASSIGN_OR_RETURN(const void* p, Put(static_cast<const void*>(v),
                                           static_cast<size_t>(count) * sizeof(float), what));
    return static_cast<const float*>(p);
  }

 private:
  Backend& backend_;
  std::vector<Buffer>& storage_;
  size_t& bytes_;
  std::map<const void*, std::pair<const void*, size_t>> placed_;
};

}  // namespace

StatusOr<std::unique_ptr<PlacedWeights>> PlacedWeights::Place(const ModelWeights& host,
                                                              const ModelConfig& config,
                                                              Backend& backend) {
  std::unique_ptr<PlacedWeights> p(new PlacedWeights());
  if (backend.host_memory()) {
    p->host_ = &host;
    return p;
  }
  Uploader up(backend, p->storage_, p->uploaded_bytes_);
  ModelWeights& w = p->placed_;
  const int64_t hidden = config.hidden_size;
  TS_ASSIGN_OR_RETURN(w.embed, up.Put(host.embed, "token_embd"));
  TS_ASSIGN_OR_RETURN(w.lm_head, up.Put(host.lm_head, "output"));
  TS_ASSIGN_OR_RETURN(w.final_norm, up.Put(host.final_norm, hidden, "output_norm"));
  w.layers.resize(host.layers.size());
  for (size_t l = 0; l < host.layers.size(); ++l) {
    const LayerWeights& h = host.layers[l];
    LayerWeights& d = w.layers[l];
    const std::string at = absl::StrCat("layer ", l, " ");
    TS_ASSIGN_OR_RETURN(d.attn_norm, up.Put(h.attn_norm, hidden, at + "attn_norm"));
    TS_ASSIGN_OR_RETURN(d.ffn_norm, up.Put(h.ffn_norm, hidden, at + "ffn_norm"));
    TS_ASSIGN_OR_RETURN(d.wq, up.Put(h.wq, at + "wq"));
    TS_ASSIGN_OR_RETURN(d.wk, up.Put(h.wk, at + "wk"));
    TS_ASSIGN_OR_RETURN(d.wv, up.Put(h.wv, at + "wv"));
    TS_ASSIGN_OR_RETURN(d.wo, up.Put(h.wo, at + "wo"));
    TS_ASSIGN_OR_RETURN(d.bq, up.Put(h.bq, h.wq.rows, at + "bq"));
    TS_ASSIGN_OR_RETURN(d.bk, up.Put(h.bk, h.wk.rows, at + "bk"));
    TS_ASSIGN_OR_RETURN(d.bv, up.Put(h.bv, h.wv.rows, at + "bv"));
    TS_ASSIGN_OR_RETURN(d.w_gate, up.Put(h.w_gate, at + "w_gate"));
    TS_ASSIGN_OR_RETURN(d.w_up, up.Put(h.w_up, at + "w_up"));
    TS_ASSIGN_OR_RETURN(d.w_down, up.Put(h.w_down, at + "w_down"));
  }
  TS_RETURN_IF_ERROR(backend.Synchronize());
  return p;
}

}  // namespace ts
