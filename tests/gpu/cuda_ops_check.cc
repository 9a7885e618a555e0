// Runs every CUDA backend op against the double-precision CPU references of reference.h, and
// checks batch invariance bit for bit (DESIGN.md section 2). Needs a CUDA GPU; built only with
// TS_CUDA. Prints one line per check and ends with "N passed, M failed"; exit code 1 on failure,
// 2 when no backend could be created.
//
// Sizes 1, 17, 54, 97, 128 are the batch sizes (rows of x / tokens / queries) of every op check.
// Outputs carry 64 trailing sentinel floats that must survive (out-of-bounds writes).
#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/cuda/cuda_backend.h"
#include "tests/gpu/reference.h"

namespace ts::gputest {
namespace {

constexpr int64_t kSizes[] = {1, 17, 54, 97, 128};
constexpr int64_t kPad = 64;
constexpr uint32_t kSentinelBits = 0x7fc0dead;  // a NaN payload no kernel writes

const DType kAllTypes[] = {DType::kF32,  DType::kF16,  DType::kBF16, DType::kQ8_0, DType::kQ4_0,
                           DType::kQ4_1, DType::kQ4_K, DType::kQ5_K, DType::kQ6_K};

std::string TypeName(DType t) { return std::string(GetDTypeInfo(t).name); }

class Harness {
 public:
  void Report(const std::string& name, bool ok, const std::string& detail = "") {
    (ok ? passed_ : failed_)++;
    std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", name.c_str(), detail.empty() ? "" : "  ",
                detail.c_str());
    std::fflush(stdout);
  }
  int passed() const { return passed_; }
  int failed() const { return failed_; }

 private:
  int passed_ = 0;
  int failed_ = 0;
};

// Device memory with host-side helpers; aborts the check (not the program) on CUDA errors.
class Dev {
 public:
  explicit Dev(CudaBackend* b) : b_(b) {}
  template <typename T>
  T* Upload(const std::vector<T>& host) {
    DeviceBuffer& buf = New(host.size() * sizeof(T));
    if (!host.empty()) b_->Upload(buf.data(), host.data(), host.size() * sizeof(T));
    return buf.as<T>();
  }
  // count floats followed by kPad sentinel floats.
  float* Output(size_t count) {
    std::vector<uint32_t> init(count + kPad, kSentinelBits);
    return reinterpret_cast<float*>(Upload(init));
  }
  std::vector<float> Download(const float* p, size_t count) {
    std::vector<float> host(count);
    Ok(b_->Download(host.data(), p, count * sizeof(float)));
    return host;
  }
  template <typename T>
  std::vector<T> DownloadAs(const void* p, size_t count) {
    std::vector<T> host(count);
    Ok(b_->Download(host.data(), p, count * sizeof(T)));
    return host;
  }
  bool PadIntact(const float* p, size_t count) {
    std::vector<uint32_t> pad(kPad);
    Ok(b_->Download(pad.data(), p + count, kPad * sizeof(float)));
    for (uint32_t v : pad) {
      if (v != kSentinelBits) return false;
    }
    return true;
  }
  Matrix UploadMatrix(DType t, int64_t rows, int64_t cols, const std::vector<uint8_t>& bytes) {
    Matrix m{bytes.data(), t, rows, cols, RowBytes(t, cols)};
    DeviceBuffer& buf = New(0);
    auto dm = b_->UploadMatrix(m, &buf);
    Ok(dm.status());
    return dm.ok() ? *dm : Matrix{};
  }
  bool ok() const { return ok_; }
  std::string error() const { return error_; }
  void Check(const Status& s) { Ok(s); }

 private:
  DeviceBuffer& New(size_t bytes) {
    buffers_.push_back(std::make_unique<DeviceBuffer>());
    if (bytes > 0) {
      auto buf = b_->Alloc(bytes);
      Ok(buf.status());
      if (buf.ok()) *buffers_.back() = std::move(*buf);
    }
    return *buffers_.back();
  }
  void Ok(const Status& s) {
    if (!s.ok() && ok_) {
      ok_ = false;
      error_ = s.ToString();
    }
  }
  CudaBackend* b_;
  std::vector<std::unique_ptr<DeviceBuffer>> buffers_;
  bool ok_ = true;
  std::string error_;
};

std::string Fmt(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g", v);
  return buf;
}

// Runs `op`, synchronises, and reports failure of either the backend or the memory helpers.
bool Sync(Harness& h, CudaBackend* b, Dev& dev, const std::string& name) {
  const Status s = b->Synchronize();
  if (!s.ok() || !dev.ok()) {
    h.Report(name, false, s.ok() ? dev.error() : s.ToString());
    return false;
  }
  return true;
}

std::vector<float> DequantMatrix(DType t, int64_t rows, int64_t cols,
                                 const std::vector<uint8_t>& bytes) {
  std::vector<float> w(rows * cols);
  for (int64_t r = 0; r < rows; ++r) {
    DequantRow(t, bytes.data() + r * RowBytes(t, cols), cols, w.data() + r * cols);
  }
  return w;
}

double MatMulBound(DType t, bool cublaslt) {
  if (!cublaslt || t == DType::kF32) return 1e-10;
  return t == DType::kF16 ? 1e-5 : 1e-4;  // x rounded to f16 / bf16
}

// ---- MatMul: accuracy at every size, then row-alone vs batch-of-64 bit-exactness. ----
void CheckMatMul(Harness& h, CudaBackend* b, bool cublaslt, std::mt19937& rng) {
  const std::string tag = cublaslt ? "MatMul[cublaslt]" : "MatMul";
  for (DType t : kAllTypes) {
    if (cublaslt && IsQuantized(t)) continue;
    Dev dev(b);
    const int64_t rows = 70;
    const int64_t cols = IsQuantized(t) ? 512 : 520;  // 520: a partial last chunk
    const auto bytes = RandomMatrixBytes(t, rows, cols, rng);
    const auto wf = DequantMatrix(t, rows, cols, bytes);
    const Matrix w = dev.UploadMatrix(t, rows, cols, bytes);
    const auto x = RandomFloats(128 * cols, rng);
    const auto bias = RandomFloats(rows, rng);
    const float* dx = dev.Upload(x);
    const float* dbias = dev.Upload(bias);
    for (int64_t n : kSizes) {
      const std::string name = absl::StrCat(tag, " ", TypeName(t), " n=", n);
      const bool with_bias = n % 2 == 1;
      float* dy = dev.Output(n * rows);
      b->MatMul(w, dx, n, dy, with_bias ? dbias : nullptr);
      if (!Sync(h, b, dev, name)) continue;
      const auto y = dev.Download(dy, n * rows);
      std::vector<double> ref(n * rows);
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t r = 0; r < rows; ++r) {
          double s = with_bias ? bias[r] : 0.0;
          for (int64_t k = 0; k < cols; ++k) {
            s += static_cast<double>(wf[r * cols + k]) * x[i * cols + k];
          }
          ref[i * rows + r] = s;
        }
      }
      const double e = Nmse(ref, y.data());
      const bool pad = dev.PadIntact(dy, n * rows);
      h.Report(name, e < MatMulBound(t, cublaslt) && pad,
               absl::StrCat("nmse=", Fmt(e), pad ? "" : " OUT-OF-BOUNDS WRITE"));
    }

    // Invariance: a wider row (2304 = 9 super-blocks = 72 chunks, lanes get 2 or 3 chunks).
    const int64_t icols = 2304, irows = 50, batch = 64;
    const auto ibytes = RandomMatrixBytes(t, irows, icols, rng);
    const Matrix iw = dev.UploadMatrix(t, irows, icols, ibytes);
    const float* ix = dev.Upload(RandomFloats(batch * icols, rng));
    float* yb = dev.Output(batch * irows);
    b->MatMul(iw, ix, batch, yb);
    const std::string name = absl::StrCat(tag, " ", TypeName(t), " batch-invariance");
    if (!Sync(h, b, dev, name)) continue;
    const auto ybatch = dev.Download(yb, batch * irows);
    bool same = true;
    std::string where;
    for (int64_t r : {int64_t{0}, int64_t{7}, int64_t{17}, int64_t{40}, int64_t{63}}) {
      float* y1 = dev.Output(irows);
      b->MatMul(iw, ix + r * icols, 1, y1);
      float* y17 = dev.Output(17 * irows);
      const int64_t start = r >= 17 ? r - 16 : 0;  // r sits at the end of a 17-row batch
      b->MatMul(iw, ix + start * icols, 17, y17);
      if (!Sync(h, b, dev, name)) break;
      const auto alone = dev.Download(y1, irows);
      const auto mid = dev.Download(y17 + (r - start) * irows, irows);
      if (std::memcmp(alone.data(), ybatch.data() + r * irows, irows * 4) != 0 ||
          std::memcmp(mid.data(), ybatch.data() + r * irows, irows * 4) != 0) {
        same = false;
        absl::StrAppend(&where, " row ", r);
      }
    }
    h.Report(name, same && dev.ok(), same ? "bit-exact n=1/17/64" : "differs at" + where);
  }
}

void CheckEmbed(Harness& h, CudaBackend* b, std::mt19937& rng) {
  for (DType t : kAllTypes) {
    Dev dev(b);
    const int64_t rows = 300, cols = IsQuantized(t) ? 768 : 200;
    const auto bytes = RandomMatrixBytes(t, rows, cols, rng);
    const auto wf = DequantMatrix(t, rows, cols, bytes);
    const Matrix table = dev.UploadMatrix(t, rows, cols, bytes);
    std::uniform_int_distribution<int32_t> pick(0, rows - 1);
    for (int64_t n : kSizes) {
      const std::string name = absl::StrCat("Embed ", TypeName(t), " n=", n);
      std::vector<int32_t> ids(n);
      for (auto& id : ids) id = pick(rng);
      float* out = dev.Output(n * cols);
      b->Embed(table, dev.Upload(ids), n, out);
      if (!Sync(h, b, dev, name)) continue;
      const auto got = dev.Download(out, n * cols);
      std::vector<double> ref(n * cols);
      for (int64_t i = 0; i < n; ++i) {
        for (int64_t k = 0; k < cols; ++k) ref[i * cols + k] = wf[ids[i] * cols + k];
      }
      const double e = Nmse(ref, got.data());
      const bool pad = dev.PadIntact(out, n * cols);
      h.Report(name, e < 1e-14 && pad, absl::StrCat("nmse=", Fmt(e), pad ? "" : " OOB WRITE"));
    }
  }
}

void CheckRmsNorm(Harness& h, CudaBackend* b, std::mt19937& rng) {
  const int64_t dim = 576;
  for (int64_t n : kSizes) {
    for (bool in_place : {false, true}) {
      Dev dev(b);
      const std::string name = absl::StrCat("RmsNorm n=", n, in_place ? " in-place" : "");
      const auto x = RandomFloats(n * dim, rng, -3, 3);
      const auto wt = RandomFloats(dim, rng, 0.5, 1.5);
      float* dx = dev.Output(n * dim);
      // x goes into a buffer with sentinel padding, so the in-place case checks bounds too.
      float* out = in_place ? dx : dev.Output(n * dim);
      {
        const float* tmp = dev.Upload(x);
        b->Copy(dx, tmp, n * dim * sizeof(float));
      }
      b->RmsNorm(dx, dev.Upload(wt), n, dim, 1e-5f, out);
      if (!Sync(h, b, dev, name)) continue;
      const auto got = dev.Download(out, n * dim);
      std::vector<double> ref(n * dim);
      for (int64_t i = 0; i < n; ++i) {
        double ss = 0;
        for (int64_t k = 0; k < dim; ++k)
          ss += static_cast<double>(x[i * dim + k]) * x[i * dim + k];
        const double inv = 1.0 / std::sqrt(ss / dim + 1e-5);
        for (int64_t k = 0; k < dim; ++k) ref[i * dim + k] = x[i * dim + k] * inv * wt[k];
      }
      const double e = Nmse(ref, got.data());
      const bool pad = dev.PadIntact(out, n * dim);
      h.Report(name, e < 1e-12 && pad, absl::StrCat("nmse=", Fmt(e), pad ? "" : " OOB WRITE"));
    }
  }
}

void CheckRope(Harness& h, CudaBackend* b, std::mt19937& rng) {
  const int n_heads = 3, head_dim = 64, half = head_dim / 2;
  std::vector<float> inv_freq(half);
  for (int j = 0; j < half; ++j)
    inv_freq[j] = static_cast<float>(std::pow(10000.0, -2.0 * j / head_dim));
  std::uniform_int_distribution<int32_t> pos(0, 100000);
  for (RopeStyle style : {RopeStyle::kNeox, RopeStyle::kInterleaved}) {
    for (int64_t n : kSizes) {
      Dev dev(b);
      const bool il = style == RopeStyle::kInterleaved;
      const float mscale = n % 2 ? 1.0f : 1.1f;
      const std::string name = absl::StrCat("Rope ", il ? "interleaved" : "neox", " n=", n);
      const int64_t count = n * n_heads * head_dim;
      const auto x = RandomFloats(count, rng);
      std::vector<int32_t> positions(n);
      for (auto& p : positions) p = pos(rng);
      float* dx = dev.Output(count);
      b->Copy(dx, dev.Upload(x), count * sizeof(float));
      b->Rope(dx, n, n_heads, head_dim, dev.Upload(positions), dev.Upload(inv_freq), mscale, style);
      if (!Sync(h, b, dev, name)) continue;
      const auto got = dev.Download(dx, count);
      std::vector<double> ref(x.begin(), x.end());
      for (int64_t i = 0; i < n; ++i) {
        for (int hh = 0; hh < n_heads; ++hh) {
          double* v = ref.data() + (i * n_heads + hh) * head_dim;
          for (int j = 0; j < half; ++j) {
            const float angle = static_cast<float>(positions[i]) * inv_freq[j];  // f32, as HF
            const int a = il ? 2 * j : j, c = il ? 2 * j + 1 : j + half;
            const double x0 = v[a], x1 = v[c];
            v[a] = (x0 * std::cos(static_cast<double>(angle)) -
                    x1 * std::sin(static_cast<double>(angle))) *
                   mscale;
            v[c] = (x0 * std::sin(static_cast<double>(angle)) +
                    x1 * std::cos(static_cast<double>(angle))) *
                   mscale;
          }
        }
      }
      const double e = Nmse(ref, got.data());
      const bool pad = dev.PadIntact(dx, count);
      h.Report(name, e < 1e-12 && pad, absl::StrCat("nmse=", Fmt(e), pad ? "" : " OOB WRITE"));
    }
  }
}

// A KV cache in device memory plus its host mirror (as floats, after bf16 rounding).
struct TestCache {
  KvLayerView view;
  std::vector<float> k, v;
};

TestCache MakeCache(Dev& dev, DType dtype, int n_kv, int head_dim, int64_t capacity,
                    std::mt19937& rng) {
  TestCache c;
  const size_t count = static_cast<size_t>(n_kv) * capacity * head_dim;
  c.k = RandomFloats(count, rng);
  c.v = RandomFloats(count, rng);
  c.view.dtype = dtype;
  c.view.n_kv_heads = n_kv;
  c.view.head_dim = head_dim;
  c.view.capacity = capacity;
  if (dtype == DType::kBF16) {
    std::vector<uint16_t> kb(count), vb(count);
    for (size_t e = 0; e < count; ++e) {
      kb[e] = F32ToBF16(c.k[e]);
      vb[e] = F32ToBF16(c.v[e]);
      c.k[e] = BF16ToF32(kb[e]);
      c.v[e] = BF16ToF32(vb[e]);
    }
    c.view.k = dev.Upload(kb);
    c.view.v = dev.Upload(vb);
  } else {
    c.view.k = dev.Upload(c.k);
    c.view.v = dev.Upload(c.v);
  }
  return c;
}

void CheckStoreKv(Harness& h, CudaBackend* b, std::mt19937& rng) {
  const int n_kv = 3, head_dim = 64;
  const int64_t capacity = 200;
  for (DType dt : {DType::kF32, DType::kBF16}) {
    for (int64_t n : kSizes) {
      Dev dev(b);
      const std::string name = absl::StrCat("StoreKv ", TypeName(dt), " n=", n);
      TestCache c = MakeCache(dev, dt, n_kv, head_dim, capacity, rng);
      std::vector<int32_t> perm(capacity);
      for (int64_t s = 0; s < capacity; ++s) perm[s] = static_cast<int32_t>(s);
      std::shuffle(perm.begin(), perm.end(), rng);
      std::vector<int32_t> slots(perm.begin(), perm.begin() + n);
      const auto k = RandomFloats(n * n_kv * head_dim, rng);
      const auto v = RandomFloats(n * n_kv * head_dim, rng);
      b->StoreKv(c.view, dev.Upload(k), dev.Upload(v), n, dev.Upload(slots));
      if (!Sync(h, b, dev, name)) continue;
      // Expected cache: the old contents with the n rows replaced.
      for (int64_t i = 0; i < n; ++i) {
        for (int hh = 0; hh < n_kv; ++hh) {
          for (int d = 0; d < head_dim; ++d) {
            const size_t dst = (hh * capacity + slots[i]) * head_dim + d;
            const size_t src = (i * n_kv + hh) * head_dim + d;
            c.k[dst] = dt == DType::kBF16 ? BF16ToF32(F32ToBF16(k[src])) : k[src];
            c.v[dst] = dt == DType::kBF16 ? BF16ToF32(F32ToBF16(v[src])) : v[src];
          }
        }
      }
      const size_t count = c.k.size();
      std::vector<float> gk(count), gv(count);
      if (dt == DType::kBF16) {
        const auto kb = dev.DownloadAs<uint16_t>(c.view.k, count);
        const auto vb = dev.DownloadAs<uint16_t>(c.view.v, count);
        for (size_t e = 0; e < count; ++e) gk[e] = BF16ToF32(kb[e]), gv[e] = BF16ToF32(vb[e]);
      } else {
        gk = dev.DownloadAs<float>(c.view.k, count);
        gv = dev.DownloadAs<float>(c.view.v, count);
      }
      const bool same = std::memcmp(gk.data(), c.k.data(), count * 4) == 0 &&
                        std::memcmp(gv.data(), c.v.data(), count * 4) == 0;
      h.Report(name, same && dev.ok(), same ? "exact, other slots untouched" : "cache differs");
    }
  }
}

// A mask built on the host: per query the logical slot list, and the arrays of AttentionMask.
struct HostMask {
  std::vector<int32_t> prefix_len, extra_begin{0}, extra_slots;
  std::vector<std::vector<int>> logical;
  void Add(int32_t prefix, const std::vector<int32_t>& extras) {
    prefix_len.push_back(prefix);
    extra_slots.insert(extra_slots.end(), extras.begin(), extras.end());
    extra_begin.push_back(static_cast<int32_t>(extra_slots.size()));
    std::vector<int> l;
    for (int s = 0; s < prefix; ++s) l.push_back(s);
    l.insert(l.end(), extras.begin(), extras.end());
    logical.push_back(std::move(l));
  }
  AttentionMask Upload(Dev& dev) const {
    return AttentionMask{dev.Upload(prefix_len), dev.Upload(extra_begin),
                         dev.Upload(extra_slots.empty() ? std::vector<int32_t>{0} : extra_slots)};
  }
};

// `long_context`: a cache of 70000 slots (past 64K) and prefixes up to 69000 keys, many split-KV
// chunks per query, GQA groups 3 and 4, a few row counts; otherwise 1024 slots at every size.
void CheckAttentionAccuracy(Harness& h, CudaBackend* b, std::mt19937& rng, const char* tag,
                            bool long_context = false) {
  struct Shape {
    int n_heads, n_kv, head_dim;
  };
  const int64_t capacity = long_context ? 70000 : 1024;
  const int32_t max_prefix = long_context ? 69000 : 700;
  const std::vector<int64_t> sizes =
      long_context ? std::vector<int64_t>{1, 5}
                   : std::vector<int64_t>(std::begin(kSizes), std::end(kSizes));
  const std::vector<Shape> shapes = long_context ? std::vector<Shape>{{9, 3, 64}, {32, 8, 128}}
                                                 : std::vector<Shape>{{9, 3, 64}, {4, 2, 128}};
  for (DType dt : {DType::kF32, DType::kBF16}) {
    for (Shape s : shapes) {
      for (int64_t n : sizes) {
        Dev dev(b);
        const std::string name =
            absl::StrCat("Attention", tag, " ", TypeName(dt), " h=", s.n_heads, "/", s.n_kv,
                         " d=", s.head_dim, " n=", n, " capacity=", capacity);
        TestCache c = MakeCache(dev, dt, s.n_kv, s.head_dim, capacity, rng);
        HostMask m;
        std::uniform_int_distribution<int32_t> plen(long_context ? 2000 : 1, max_prefix),
            nextra(0, 6), eslot(max_prefix, static_cast<int32_t>(capacity - 1));
        for (int64_t i = 0; i < n; ++i) {
          std::vector<int32_t> extras(i % 3 == 0 ? 0 : nextra(rng));
          for (auto& e : extras) e = eslot(rng);
          m.Add(plen(rng), extras);
        }
        const int64_t count = n * s.n_heads * s.head_dim;
        const auto q = RandomFloats(count, rng);
        float* out = dev.Output(count);
        const float scale = 1.0f / std::sqrt(static_cast<float>(s.head_dim));
        b->Attention(dev.Upload(q), n, s.n_heads, c.view, m.Upload(dev), scale, out);
        if (!Sync(h, b, dev, name)) continue;
        const auto got = dev.Download(out, count);
        std::vector<double> ref(count);
        for (int64_t i = 0; i < n; ++i) {
          for (int hh = 0; hh < s.n_heads; ++hh) {
            const size_t off = (i * s.n_heads + hh) * s.head_dim;
            AttentionRef(q.data() + off, m.logical[i], c.k.data(), c.v.data(),
                         hh / (s.n_heads / s.n_kv), capacity, s.head_dim, scale, ref.data() + off);
          }
        }
        const double e = Nmse(ref, got.data());
        const bool pad = dev.PadIntact(out, count);
        h.Report(name, e < 1e-10 && pad, absl::StrCat("nmse=", Fmt(e), pad ? "" : " OOB WRITE"));
      }
    }
  }
}

// Tree verification against AR, bit for bit: a committed prefix of P slots, a 64-node tree in
// slots P + 100 ..; each node (alone, and inside the batch of 64) must equal the AR computation
// where its ancestors and itself sit at contiguous slots P, P + 1, ... of a copy of the cache.
// `prefix` 5000: the tree's keys span three split-KV chunks.
void CheckAttentionInvariance(Harness& h, CudaBackend* b, std::mt19937& rng, const char* tag,
                              int32_t prefix = 700) {
  const int n_heads = 9, n_kv = 3, head_dim = 64;
  const int32_t tree_base = prefix + 100, nodes = 64;
  const int64_t capacity = tree_base + 124;
  for (DType dt : {DType::kF32, DType::kBF16}) {
    Dev dev(b);
    const std::string name = absl::StrCat("Attention", tag, " ", TypeName(dt), " prefix=", prefix,
                                          " tree==AR, alone==batch64");
    TestCache c = MakeCache(dev, dt, n_kv, head_dim, capacity, rng);
    // Random tree: node 0 is the root, parent(j) < j.
    std::vector<int> parent(nodes, -1);
    for (int j = 1; j < nodes; ++j) parent[j] = std::uniform_int_distribution<int>(0, j - 1)(rng);
    HostMask m;
    std::vector<std::vector<int>> paths(nodes);
    for (int j = 0; j < nodes; ++j) {
      for (int a = j; a >= 0; a = parent[a]) paths[j].insert(paths[j].begin(), a);
      std::vector<int32_t> extras;
      for (int a : paths[j]) extras.push_back(tree_base + a);
      m.Add(prefix, extras);
    }
    const int64_t per_q = n_heads * head_dim;
    const auto q = RandomFloats(nodes * per_q, rng);
    const float* dq = dev.Upload(q);
    const AttentionMask mask = m.Upload(dev);
    float* batch_out = dev.Output(nodes * per_q);
    const float scale = 0.125f;
    b->Attention(dq, nodes, n_heads, c.view, mask, scale, batch_out);
    if (!Sync(h, b, dev, name)) continue;
    const auto batch = dev.Download(batch_out, nodes * per_q);
    int alone_diff = 0, ar_diff = 0;
    const size_t elem = dt == DType::kBF16 ? 2 : 4;
    const size_t head_stride = capacity * head_dim;
    for (int j = 0; j < nodes; ++j) {
      // Alone: the same mask arrays, offset to query j (extra_begin holds absolute indices).
      float* one = dev.Output(per_q);
      const AttentionMask mj{mask.prefix_len + j, mask.extra_begin + j, mask.extra_slots};
      b->Attention(dq + j * per_q, 1, n_heads, c.view, mj, scale, one);
      // AR: a copy of the cache with the path at slots prefix .. prefix + depth.
      const int64_t cache_bytes = n_kv * head_stride * elem;
      auto kb = dev.DownloadAs<uint8_t>(c.view.k, cache_bytes);
      auto vb = dev.DownloadAs<uint8_t>(c.view.v, cache_bytes);
      for (size_t d = 0; d < paths[j].size(); ++d) {
        for (int hh = 0; hh < n_kv; ++hh) {
          const size_t src = (hh * head_stride + (tree_base + paths[j][d]) * head_dim) * elem;
          const size_t dst = (hh * head_stride + (prefix + d) * head_dim) * elem;
          std::memcpy(kb.data() + dst, kb.data() + src, head_dim * elem);
          std::memcpy(vb.data() + dst, vb.data() + src, head_dim * elem);
        }
      }
      KvLayerView ar_view = c.view;
      ar_view.k = dev.Upload(kb);
      ar_view.v = dev.Upload(vb);
      HostMask am;
      am.Add(prefix + static_cast<int32_t>(paths[j].size()), {});
      const AttentionMask amask{dev.Upload(am.prefix_len), nullptr, nullptr};
      float* ar = dev.Output(per_q);
      b->Attention(dq + j * per_q, 1, n_heads, ar_view, amask, scale, ar);
      if (!Sync(h, b, dev, name)) break;
      const auto got_one = dev.Download(one, per_q);
      const auto got_ar = dev.Download(ar, per_q);
      alone_diff += std::memcmp(got_one.data(), batch.data() + j * per_q, per_q * 4) != 0;
      ar_diff += std::memcmp(got_ar.data(), batch.data() + j * per_q, per_q * 4) != 0;
    }
    h.Report(name, alone_diff == 0 && ar_diff == 0 && dev.ok(),
             absl::StrCat(nodes, " nodes, alone!=batch: ", alone_diff, ", tree!=AR: ", ar_diff));
  }
}

void CheckElementwise(Harness& h, CudaBackend* b, std::mt19937& rng) {
  const int64_t dim = 1536;
  for (int64_t n : kSizes) {
    Dev dev(b);
    const int64_t count = n * dim;
    const auto g = RandomFloats(count, rng, -6, 6), u = RandomFloats(count, rng);
    float* out = dev.Output(count);
    b->SwiGlu(dev.Upload(g), dev.Upload(u), n, dim, out);
    float* x = dev.Output(count);
    b->Copy(x, dev.Upload(g), count * sizeof(float));
    b->Add(x, dev.Upload(u), count);
    const std::string name = absl::StrCat("SwiGlu+Add n=", n);
    if (!Sync(h, b, dev, name)) continue;
    const auto got = dev.Download(out, count);
    const auto sum = dev.Download(x, count);
    std::vector<double> ref(count), ref_sum(count);
    for (int64_t k = 0; k < count; ++k) {
      ref[k] = g[k] / (1.0 + std::exp(-static_cast<double>(g[k]))) * u[k];
      ref_sum[k] = static_cast<double>(g[k]) + u[k];
    }
    const double e1 = Nmse(ref, got.data()), e2 = Nmse(ref_sum, sum.data());
    const bool pad = dev.PadIntact(out, count) && dev.PadIntact(x, count);
    h.Report(absl::StrCat("SwiGlu n=", n), e1 < 1e-12 && pad, absl::StrCat("nmse=", Fmt(e1)));
    h.Report(absl::StrCat("Add n=", n), e2 < 1e-14 && pad, absl::StrCat("nmse=", Fmt(e2)));
  }
}

// KeyScores (partial-cache importance) against a double reference, f32 and bf16 keys, head_dim 64
// and 128, a slot range that does not start at 0.
void CheckKeyScores(Harness& h, CudaBackend* b, std::mt19937& rng) {
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    for (int head_dim : {64, 128}) {
      Dev dev(b);
      const int n_kv = 2;
      const int64_t capacity = 5000, lo = 37, hi = 4900;
      TestCache c = MakeCache(dev, dtype, n_kv, head_dim, capacity, rng);
      const auto q = RandomFloats(head_dim, rng);
      float* out = dev.Output(hi - lo);
      b->KeyScores(c.view, 1, dev.Upload(q), lo, hi, out);
      const std::string name = absl::StrCat("KeyScores ", TypeName(dtype), " hd=", head_dim);
      if (!Sync(h, b, dev, name)) continue;
      const auto got = dev.Download(out, hi - lo);
      std::vector<double> ref(hi - lo);
      for (int64_t i = 0; i < hi - lo; ++i) {
        double s = 0;
        for (int d = 0; d < head_dim; ++d) {
          s += static_cast<double>(q[d]) * c.k[(capacity + lo + i) * head_dim + d];
        }
        ref[i] = s;
      }
      const double e = Nmse(ref, got.data());
      const bool pad = dev.PadIntact(out, hi - lo);
      h.Report(name, e < 1e-12 && pad, absl::StrCat("nmse=", Fmt(e)));
    }
  }
}

// GatherKv: the partial KV cache's gather. Exact bytes (a copy), rows past `count` untouched,
// per-head slot lists `stride` apart.
void CheckGatherKv(Harness& h, CudaBackend* b, std::mt19937& rng) {
  for (DType dtype : {DType::kF32, DType::kBF16}) {
    for (int head_dim : {64, 128}) {
      Dev dev(b);
      const int n_kv = 3;
      const int64_t src_cap = 70000, dst_cap = 300, count = 257, stride = 280;
      TestCache src = MakeCache(dev, dtype, n_kv, head_dim, src_cap, rng);
      TestCache dst = MakeCache(dev, dtype, n_kv, head_dim, dst_cap, rng);
      std::vector<int32_t> slots(static_cast<size_t>(n_kv) * stride, -1);
      for (int hh = 0; hh < n_kv; ++hh) {
        for (int64_t i = 0; i < count; ++i) {
          slots[hh * stride + i] = static_cast<int32_t>(rng() % src_cap);
        }
      }
      b->GatherKv(src.view, dst.view, dev.Upload(slots), count, stride);
      const std::string name = absl::StrCat("GatherKv ", TypeName(dtype), " hd=", head_dim);
      if (!Sync(h, b, dev, name)) continue;
      const size_t elems = static_cast<size_t>(n_kv) * dst_cap * head_dim;
      std::vector<float> got_k(elems), got_v(elems);
      if (dtype == DType::kBF16) {
        const auto k16 = dev.DownloadAs<uint16_t>(dst.view.k, elems);
        const auto v16 = dev.DownloadAs<uint16_t>(dst.view.v, elems);
        for (size_t e = 0; e < elems; ++e) {
          got_k[e] = BF16ToF32(k16[e]);
          got_v[e] = BF16ToF32(v16[e]);
        }
      } else {
        got_k = dev.DownloadAs<float>(dst.view.k, elems);
        got_v = dev.DownloadAs<float>(dst.view.v, elems);
      }
      int64_t wrong = 0;
      for (int hh = 0; hh < n_kv; ++hh) {
        for (int64_t i = 0; i < dst_cap; ++i) {
          // Rows below count come from the source slot; the rest keep their own values.
          const bool gathered = i < count;
          const size_t from = gathered ? (static_cast<size_t>(hh) * src_cap +
                                          static_cast<size_t>(slots[hh * stride + i])) *
                                             head_dim
                                       : (static_cast<size_t>(hh) * dst_cap + i) * head_dim;
          const size_t to = (static_cast<size_t>(hh) * dst_cap + i) * head_dim;
          const std::vector<float>& want_k = gathered ? src.k : dst.k;
          const std::vector<float>& want_v = gathered ? src.v : dst.v;
          for (int d = 0; d < head_dim; ++d) {
            wrong += got_k[to + d] != want_k[from + d] || got_v[to + d] != want_v[from + d];
          }
        }
      }
      h.Report(name, wrong == 0, absl::StrCat(wrong, " values differ"));
    }
  }
}

// MatMulSegments: each segment's products are the bits of MatMul on that column slice alone.
void CheckMatMulSegments(Harness& h, CudaBackend* b, std::mt19937& rng) {
  for (DType t : kAllTypes) {
    Dev dev(b);
    const bool k_quant = GetDTypeInfo(t).block_elems == 256;
    const std::vector<int64_t> bounds =
        k_quant ? std::vector<int64_t>{0, 256, 768, 1024} : std::vector<int64_t>{0, 192, 320, 544};
    const int64_t rows = 40, cols = bounds.back();
    const auto bytes = RandomMatrixBytes(t, rows, cols, rng);
    const Matrix w = dev.UploadMatrix(t, rows, cols, bytes);
    for (int64_t n : {int64_t{1}, int64_t{5}}) {
      const auto x = RandomFloats(n * cols, rng);
      const float* dx = dev.Upload(x);
      const int64_t segs = static_cast<int64_t>(bounds.size()) - 1;
      float* y = dev.Output(segs * n * rows);
      b->MatMulSegments(w, dx, n, bounds, y);
      const std::string name = absl::StrCat("MatMulSegments ", TypeName(t), " n=", n);
      bool same = true;
      for (int64_t sg = 0; sg < segs && same; ++sg) {
        const int64_t c0 = bounds[sg], len = bounds[sg + 1] - c0;
        std::vector<uint8_t> part_bytes(RowBytes(t, len) * rows);
        for (int64_t r = 0; r < rows; ++r) {
          std::memcpy(part_bytes.data() + r * RowBytes(t, len),
                      bytes.data() + r * RowBytes(t, cols) + RowBytes(t, c0), RowBytes(t, len));
        }
        const Matrix part = dev.UploadMatrix(t, rows, len, part_bytes);
        std::vector<float> xs(n * len);
        for (int64_t i = 0; i < n; ++i) {
          std::memcpy(xs.data() + i * len, x.data() + i * cols + c0, len * sizeof(float));
        }
        float* want = dev.Output(n * rows);
        b->MatMul(part, dev.Upload(xs), n, want, nullptr);
        if (!Sync(h, b, dev, name)) {
          same = false;
          break;
        }
        const auto got_s = dev.Download(y + sg * n * rows, n * rows);
        const auto want_s = dev.Download(want, n * rows);
        same = std::memcmp(got_s.data(), want_s.data(), n * rows * 4) == 0;
      }
      h.Report(name, same && dev.ok() && dev.PadIntact(y, segs * n * rows),
               same ? "each segment bit-exact with its columns alone" : "a segment differs");
    }
  }
}

// A bad token id must surface as an error at Synchronize, not as silent output.
void CheckErrorReporting(Harness& h, int device) {
  auto backend = CreateCudaBackend(device);
  if (!backend.ok()) return h.Report("ErrorReporting", false, backend.status().ToString());
  CudaBackend* b = backend->get();
  Dev dev(b);
  std::mt19937 rng(7);
  const auto bytes = RandomMatrixBytes(DType::kQ8_0, 10, 64, rng);
  const Matrix table = dev.UploadMatrix(DType::kQ8_0, 10, 64, bytes);
  float* out = dev.Output(64);
  b->Embed(table, dev.Upload(std::vector<int32_t>{10}), 1, out);
  const Status s = b->Synchronize();
  h.Report("ErrorReporting Embed id out of range", !s.ok(), s.ToString());
  auto backend2 = CreateCudaBackend(device);
  if (!backend2.ok()) return;
  (*backend2)->MatMul(Matrix{nullptr, DType::kQ4_K, 4, 100, 0}, nullptr, 1, nullptr);
  const Status s2 = (*backend2)->Synchronize();
  h.Report("ErrorReporting MatMul bad shape", !s2.ok(), s2.ToString());
}

}  // namespace
}  // namespace ts::gputest

int main(int argc, char** argv) {
  using namespace ts::gputest;
  const int device = argc > 1 ? std::atoi(argv[1]) : 0;
  auto backend = ts::CreateCudaBackend(device);
  if (!backend.ok()) {
    std::fprintf(stderr, "cuda_ops_check: %s\n", backend.status().ToString().c_str());
    std::printf("0 passed, 1 failed\n");
    return 2;
  }
  std::printf("backend: %s\n", (*backend)->Name().c_str());
  ts::CudaBackendOptions lt_options;
  lt_options.cublaslt_for_float_weights = true;
  auto lt_backend = ts::CreateCudaBackend(device, lt_options);

  Harness h;
  std::mt19937 rng(1234);
  CheckMatMul(h, backend->get(), /*cublaslt=*/false, rng);
  if (lt_backend.ok()) {
    CheckMatMul(h, lt_backend->get(), /*cublaslt=*/true, rng);
  } else {
    h.Report("MatMul[cublaslt] create", false, lt_backend.status().ToString());
  }
  CheckEmbed(h, backend->get(), rng);
  CheckRmsNorm(h, backend->get(), rng);
  CheckRope(h, backend->get(), rng);
  CheckStoreKv(h, backend->get(), rng);
  CheckAttentionAccuracy(h, backend->get(), rng, "[split-kv]");
  CheckAttentionAccuracy(h, backend->get(), rng, "[split-kv]", /*long_context=*/true);
  CheckAttentionInvariance(h, backend->get(), rng, "[split-kv]");
  CheckAttentionInvariance(h, backend->get(), rng, "[split-kv]", /*prefix=*/5000);
  ts::CudaBackendOptions whole_options;
  whole_options.split_kv_attention = false;
  if (auto whole = ts::CreateCudaBackend(device, whole_options); whole.ok()) {
    CheckAttentionAccuracy(h, whole->get(), rng, "[whole]");
    CheckAttentionAccuracy(h, whole->get(), rng, "[whole]", /*long_context=*/true);
    CheckAttentionInvariance(h, whole->get(), rng, "[whole]");
  } else {
    h.Report("Attention[whole] create", false, whole.status().ToString());
  }
  CheckElementwise(h, backend->get(), rng);
  CheckKeyScores(h, backend->get(), rng);
  CheckGatherKv(h, backend->get(), rng);
  CheckMatMulSegments(h, backend->get(), rng);
  CheckErrorReporting(h, device);
  std::printf("%d passed, %d failed\n", h.passed(), h.failed());
  return h.failed() == 0 ? 0 : 1;
}
