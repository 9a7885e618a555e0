// ts_gpu_check: the prepared device check of the CUDA backend end to end (tests/gpu/run.sh runs
// it after the op checks). In order, writing the JSON report after each step:
//   1. the GPU, runtime and driver;
//   2. the device's read bandwidth (a streaming read, tests/gpu/gpu_util.cu);
//   3. exactness: a 2-layer Llama-3.1-8B-shaped model with random bf16 weights made on the device:
//      one 64-node tree verify gives every node the bits AR decoding of its path gives
//      (runtime/engine/tree_exactness.h, the check CPU tests run on the CPU backend);
//   4. lossless: on the same model, TokenSwift jobs (random draft heads placed on the device, a
//      partial KV cache that re-selects) give the tokens of AR jobs, greedy and sampled;
//   5. speed: the 32-layer 8B shape, KV cache filled on the device without prefill: an AR step at
//      each context, verify passes of 16/64/128 rows, each next to its bound = (weight bytes + KV
//      bytes the step reads) / measured bandwidth.
// Exit 0 when every check passed, 1 when one failed, 3 when no GPU is found (one line says so).
// Usage: ts_gpu_check [--out FILE.json] [--contexts 4096,32768,100000] [--rows 16,64,128]
//                     [--device N] [--skip-bench]
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_split.h"
#include "kernels/cuda/cuda_backend.h"
#include "nlohmann/json.hpp"
#include "runtime/decode/draft_heads.h"
#include "runtime/engine/job.h"
#include "runtime/engine/tree_exactness.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/transformer.h"
#include "tests/gpu/gpu_util.h"

namespace ts {
namespace {

struct Args {
  std::string out = "gpu_check.json";
  std::vector<int64_t> contexts = {4096, 32768, 100000};
  std::vector<int64_t> rows = {16, 64, 128};
  int device = 0;
  bool bench = true;
};

ModelConfig Llama8BShape(int n_layers) {
  ModelConfig c;
  c.arch = "llama";
  c.vocab_size = 128256;
  c.hidden_size = 4096;
  c.intermediate_size = 14336;
  c.n_layers = n_layers;
  c.n_heads = 32;
  c.n_kv_heads = 8;
  c.head_dim = 128;
  c.max_position = 131072;
  c.rms_eps = 1e-5f;
  c.rope_theta = 500000.0f;
  c.rope_style = RopeStyle::kNeox;
  return c;
}

// Random bf16 weights made on the device: linear std ~ 1/sqrt(fan_in) (uniform * sqrt(3/fan_in)),
// norms 1.
struct DeviceModel {
  ModelWeights weights;
  std::vector<Buffer> storage;
  size_t matrix_bytes = 0;  // every matrix once (what one step reads)
};

StatusOr<DeviceModel> MakeDeviceModel(CudaBackend& b, const ModelConfig& c, uint64_t seed) {
  DeviceModel m;
  uint64_t next_seed = seed;
  auto matrix = [&](int64_t rows, int64_t cols, float scale) -> StatusOr<Matrix> {
    const size_t bytes = static_cast<size_t>(rows * cols) * 2;
    TS_ASSIGN_OR_RETURN(Buffer buf, b.Alloc(bytes));
    if (!gpu::FillRandom(buf.data(), rows * cols, /*bf16=*/true, next_seed++, scale, b.stream())) {
      return RuntimeFailure("FillRandom launch failed");
    }
    Matrix w{buf.data(), DType::kBF16, rows, cols, RowBytes(DType::kBF16, cols)};
    m.storage.push_back(std::move(buf));
    m.matrix_bytes += bytes;
    return w;
  };
  auto ones = [&](int64_t count) -> StatusOr<const float*> {
    TS_ASSIGN_OR_RETURN(Buffer buf, b.Alloc(count * sizeof(float)));
    if (!gpu::FillConstant(buf.as<float>(), count, 1.0f, b.stream())) {
      return RuntimeFailure("FillConstant launch failed");
    }
    const float* p = buf.as<float>();
    m.storage.push_back(std::move(buf));
    return p;
  };
  const auto lin = [](int64_t fan_in, float gain) {
    return gain * std::sqrt(3.0f / static_cast<float>(fan_in));
  };
  const int64_t h = c.hidden_size, q = int64_t{c.n_heads} * c.head_dim,
                kv = int64_t{c.n_kv_heads} * c.head_dim, f = c.intermediate_size;
  TS_ASSIGN_OR_RETURN(m.weights.embed, matrix(c.vocab_size, h, 1.0f));
  TS_ASSIGN_OR_RETURN(m.weights.lm_head, matrix(c.vocab_size, h, lin(h, 2.5f)));
  TS_ASSIGN_OR_RETURN(m.weights.final_norm, ones(h));
  m.weights.layers.resize(c.n_layers);
  for (LayerWeights& l : m.weights.layers) {
    TS_ASSIGN_OR_RETURN(l.attn_norm, ones(h));
    TS_ASSIGN_OR_RETURN(l.ffn_norm, ones(h));
    TS_ASSIGN_OR_RETURN(l.wq, matrix(q, h, lin(h, 1.3f)));
    TS_ASSIGN_OR_RETURN(l.wk, matrix(kv, h, lin(h, 1.3f)));
    TS_ASSIGN_OR_RETURN(l.wv, matrix(kv, h, lin(h, 1.0f)));
    TS_ASSIGN_OR_RETURN(l.wo, matrix(h, q, lin(q, 0.7f)));
    TS_ASSIGN_OR_RETURN(l.w_gate, matrix(f, h, lin(h, 1.0f)));
    TS_ASSIGN_OR_RETURN(l.w_up, matrix(f, h, lin(h, 1.0f)));
    TS_ASSIGN_OR_RETURN(l.w_down, matrix(h, f, lin(f, 0.7f)));
  }
  m.matrix_bytes -= static_cast<size_t>(c.vocab_size * h) * 2;  // a step reads one embedding row
  TS_RETURN_IF_ERROR(b.Synchronize());
  return m;
}

class Report {
 public:
  explicit Report(std::string path) : path_(std::move(path)) {}
  nlohmann::json& json() { return j_; }
  void Save() {
    std::ofstream out(path_);
    out << j_.dump(2) << "\n";
    if (!out) std::fprintf(stderr, "ts_gpu_check: cannot write %s\n", path_.c_str());
  }

 private:
  std::string path_;
  nlohmann::json j_;
};

std::vector<int32_t> RandomTokens(int64_t n, int64_t vocab, uint64_t seed) {
  std::vector<int32_t> t(n);
  uint64_t x = seed;
  for (int64_t i = 0; i < n; ++i) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    t[i] = static_cast<int32_t>((x >> 33) % static_cast<uint64_t>(vocab));
  }
  return t;
}

// Median wall time of `reps` calls of fn after one warm-up (each call ends with a download, so
// the GPU work is inside the time).
template <typename Fn>
StatusOr<double> MedianMs(int reps, Fn fn) {
  TS_RETURN_IF_ERROR(fn());
  std::vector<double> ms;
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    TS_RETURN_IF_ERROR(fn());
    ms.push_back(
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return ms[ms.size() / 2];
}

Status Bench(CudaBackend& b, const Args& args, double bandwidth, Report& report) {
  const ModelConfig c = Llama8BShape(32);
  const int64_t max_ctx = *std::max_element(args.contexts.begin(), args.contexts.end());
  const int64_t max_rows = *std::max_element(args.rows.begin(), args.rows.end());
  std::printf("bench: Llama-3.1-8B shape, 32 layers, random bf16 weights, bf16 KV cache of %lld\n",
              static_cast<long long>(max_ctx + max_rows));
  TS_ASSIGN_OR_RETURN(DeviceModel model, MakeDeviceModel(b, c, 1000));
  TS_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache,
                      KvCache::Create(c, max_ctx + max_rows, DType::kBF16, &b));
  for (int l = 0; l < c.n_layers; ++l) {
    const KvLayerView v = cache->Layer(l);
    const int64_t count = int64_t{v.n_kv_heads} * v.capacity * v.head_dim;
    if (!gpu::FillRandom(v.k, count, true, 5000 + 2 * l, 1.0f, b.stream()) ||
        !gpu::FillRandom(v.v, count, true, 5001 + 2 * l, 1.0f, b.stream())) {
      return RuntimeFailure("FillRandom launch failed (KV cache)");
    }
  }
  TS_RETURN_IF_ERROR(b.Synchronize());
  Transformer tf(c, model.weights, &b, max_rows);
  const double kv_bytes_per_token = 2.0 * c.n_layers * c.n_kv_heads * c.head_dim * 2;
  std::vector<float> logits(static_cast<size_t>(max_rows) * c.vocab_size);
  nlohmann::json& rows_json = report.json()["bench"]["steps"];
  std::printf("%-8s %6s %10s %10s %8s\n", "context", "rows", "ms", "bound ms", "ratio");
  // A chain of n tokens after ctx cached ones (a verify's worst depth; every row reads the whole
  // prefix), logits for every row as the verifier downloads them; timed and recorded.
  auto step = [&](Transformer& t, int64_t ctx, int64_t n, const char* mode) -> Status {
    std::vector<int32_t> tokens = RandomTokens(n, c.vocab_size, ctx + n);
    std::vector<int32_t> pos(n), prefix(n), rows(n);
    for (int64_t i = 0; i < n; ++i) {
      pos[i] = static_cast<int32_t>(ctx + i);
      prefix[i] = static_cast<int32_t>(ctx + i + 1);
      rows[i] = static_cast<int32_t>(i);
    }
    ForwardBatch batch;
    batch.tokens = tokens;
    batch.positions = pos;
    batch.slots = pos;
    batch.mask.prefix_len = prefix.data();
    batch.logits_rows = rows;
    TS_ASSIGN_OR_RETURN(const double ms,
                        MedianMs(5, [&] { return t.Forward(batch, *cache, logits.data()); }));
    const double bytes = static_cast<double>(model.matrix_bytes) + kv_bytes_per_token * (ctx + n);
    const double bound_ms = bytes / bandwidth * 1e3;
    std::printf("%-8lld %6lld %10.3f %10.3f %8.2f  %s\n", static_cast<long long>(ctx),
                static_cast<long long>(n), ms, bound_ms, ms / bound_ms, mode);
    std::fflush(stdout);
    rows_json.push_back({{"context", ctx},
                         {"rows", n},
                         {"ms", ms},
                         {"bytes_read", bytes},
                         {"bound_ms", bound_ms},
                         {"ratio_to_bound", ms / bound_ms},
                         {"mode", mode}});
    report.Save();
    return absl::OkStatus();
  };
  for (const int64_t ctx : args.contexts) {
    TS_RETURN_IF_ERROR(step(tf, ctx, 1, "eager, split-KV attention"));
    for (const int64_t n : args.rows) {
      TS_RETURN_IF_ERROR(step(tf, ctx, n, "eager, split-KV attention"));
    }
  }
  // The same 1-row steps with one CTA per (query, head) over the whole context (the path before
  // split-KV attention), for comparison.
  CudaBackendOptions whole_options;
  whole_options.split_kv_attention = false;
  TS_ASSIGN_OR_RETURN(std::unique_ptr<CudaBackend> whole,
                      CreateCudaBackend(args.device, whole_options));
  {
    Transformer tf_whole(c, model.weights, whole.get(), 1);
    for (const int64_t ctx : args.contexts) {
      TS_RETURN_IF_ERROR(step(tf_whole, ctx, 1, "eager, whole-context attention"));
    }
  }

  // The draft pass = a 1-row step over the partial cache (the 4096-context row above, the default
  // budget) + the three heads: time the heads (hidden in, 3 x vocab logits out).
  {
    const std::string heads_path =
        (std::filesystem::temp_directory_path() / "ts_gpu_bench_heads.safetensors").string();
    RandomHeadsOptions random;
    random.dtype = DType::kBF16;
    TS_RETURN_IF_ERROR(WriteRandomHeads(heads_path, c.hidden_size, 12, random));
    TS_ASSIGN_OR_RETURN(std::unique_ptr<DraftHeads> heads, DraftHeads::Load(heads_path, c, 1));
    std::vector<float> hidden(c.hidden_size, 0.5f);
    std::vector<float> head_logits(static_cast<size_t>(heads->num_heads()) * c.vocab_size);
    TS_ASSIGN_OR_RETURN(const double ms, MedianMs(5, [&] {
                          return heads->Apply(b, hidden.data(), 1, model.weights.lm_head,
                                              head_logits.data());
                        }));
    const double bytes = 3.0 * c.hidden_size * c.hidden_size * 2 +
                         static_cast<double>(c.vocab_size) * c.hidden_size * 2;
    const double bound_ms = bytes / bandwidth * 1e3;
    std::printf("draft heads (3, bf16): %.3f ms, bound %.3f ms, ratio %.2f\n", ms, bound_ms,
                ms / bound_ms);
    report.json()["bench"]["draft_heads"] = {
        {"ms", ms}, {"bound_ms", bound_ms}, {"ratio_to_bound", ms / bound_ms}};
    report.Save();
    std::filesystem::remove(heads_path);
  }
  report.json()["bench"]["not_measured"] = {
      "graph-captured steps: Transformer::Forward stages its inputs and downloads logits inside "
      "the step, so it cannot be captured yet"};
  report.Save();
  return absl::OkStatus();
}

class NullSink : public TokenSink {
 public:
  void OnTokens(std::span<const int32_t>, int64_t, double) override {}
};

// TokenSwift == AR through RunJob on the device (what `generate --device cuda` runs).
int CheckLossless(CudaBackend& b, const ModelConfig& c, const ModelWeights& weights,
                  Report& report) {
  const std::string heads_path =
      (std::filesystem::temp_directory_path() / "ts_gpu_check_heads.safetensors").string();
  RandomHeadsOptions random;
  random.dtype = DType::kBF16;
  Status s = WriteRandomHeads(heads_path, c.hidden_size, 11, random);
  StatusOr<std::unique_ptr<DraftHeads>> heads =
      s.ok() ? DraftHeads::Load(heads_path, c, /*max_rows=*/1)
             : StatusOr<std::unique_ptr<DraftHeads>>(s);
  if (!heads.ok()) {
    std::printf("FAIL lossless: heads: %s\n", std::string(heads.status().message()).c_str());
    return 1;
  }
  EngineParts parts;
  parts.config = &c;
  parts.weights = &weights;
  parts.backend = &b;
  parts.heads = heads->get();
  parts.batch_size = 256;
  TokenSwiftOptions options;
  options.drafting = DraftingMode::kSeparate;
  options.fixed_nodes = 16;
  options.calibrate = false;
  options.partial = {
      .budget = 256, .n_sink = 4, .recent = 64, .reselect_room = 16, .draft_slots = 1};
  int failed = 0;
  for (const bool sampled : {false, true}) {
    JobSpec spec;
    spec.prompt_ids = RandomTokens(300, c.vocab_size, 21);
    spec.max_new_tokens = 200;
    spec.ignore_eos = true;
    spec.sampling.temperature = sampled ? 1.0f : 0.0f;
    spec.sampling.min_p = sampled ? 0.05f : 0.0f;
    spec.sampling.seed = 5;
    spec.kv_dtype = DType::kBF16;
    spec.tokenswift_options = options;
    NullSink sink;
    StatusOr<GenerationResult> ar = RunJob(parts, spec, &sink);
    spec.tokenswift = true;
    StatusOr<GenerationResult> ts = ar.ok() ? RunJob(parts, spec, &sink) : ar;
    nlohmann::json j{{"sampled", sampled}};
    if (!ts.ok()) {
      std::printf("FAIL lossless (%s): %s\n", sampled ? "sampled" : "greedy",
                  std::string(ts.status().message()).c_str());
      j["error"] = std::string(ts.status().message());
      ++failed;
    } else {
      size_t same = 0;
      while (same < ar->tokens.size() && same < ts->tokens.size() &&
             ar->tokens[same] == ts->tokens[same]) {
        ++same;
      }
      const bool ok = ar->tokens == ts->tokens && ar->tokens.size() == 200;
      std::printf(
          "%s lossless (%s): TokenSwift == AR for %zu of %zu tokens (%lld steps, %lld "
          "accepted drafts)\n",
          ok ? "PASS" : "FAIL", sampled ? "sampled" : "greedy", same, ar->tokens.size(),
          static_cast<long long>(ts->counters.steps),
          static_cast<long long>(ts->counters.accepted));
      j["equal_prefix"] = same;
      j["tokens"] = ar->tokens.size();
      j["ok"] = ok;
      if (!ok) ++failed;
    }
    report.json()["lossless"].push_back(j);
    report.Save();
  }
  std::filesystem::remove(heads_path);
  return failed;
}

int Run(const Args& args) {
  Report report(args.out);
  StatusOr<std::unique_ptr<CudaBackend>> created = CreateCudaBackend(args.device);
  if (!created.ok()) {
    std::printf("ts_gpu_check: no GPU found (%s)\n",
                std::string(created.status().message()).c_str());
    return 3;
  }
  CudaBackend& b = **created;
  int runtime = 0, driver = 0;
  cudaRuntimeGetVersion(&runtime);
  cudaDriverGetVersion(&driver);
  std::printf("gpu: %s, CUDA runtime %d, driver API %d\n", b.Name().c_str(), runtime, driver);
  report.json()["gpu"] = b.Name();
  report.json()["cuda_runtime"] = runtime;
  report.json()["cuda_driver"] = driver;
  report.Save();

  const double bandwidth = gpu::MeasureReadBandwidth(size_t{4} << 30, 10);
  std::printf("read bandwidth: %.0f GB/s\n", bandwidth / 1e9);
  report.json()["read_bandwidth_gbs"] = bandwidth / 1e9;
  report.Save();
  if (bandwidth <= 0) {
    std::printf("FAIL bandwidth measurement\n");
    return 1;
  }

  int failed = 0;
  {
    const ModelConfig c = Llama8BShape(2);
    StatusOr<DeviceModel> model = MakeDeviceModel(b, c, 7);
    if (!model.ok()) {
      std::printf("FAIL exactness: %s\n", std::string(model.status().message()).c_str());
      return 1;
    }
    TreeExactnessOptions options;
    options.nodes = 64;
    const std::vector<int32_t> prefix = RandomTokens(512, c.vocab_size, 3);
    for (const uint64_t seed : {1u, 2u}) {
      options.seed = seed;
      StatusOr<TreeExactnessReport> r =
          CheckTreeVerifyEqualsAr(c, model->weights, b, prefix, options);
      nlohmann::json j;
      if (!r.ok()) {
        std::printf("FAIL exactness (seed %llu): %s\n", static_cast<unsigned long long>(seed),
                    std::string(r.status().message()).c_str());
        j["error"] = std::string(r.status().message());
        ++failed;
      } else {
        const bool ok = r->mismatched == 0;
        std::printf(
            "%s exactness (seed %llu): 64-node tree (depth %d) vs AR of each path: %d of "
            "%d nodes differ%s%s\n",
            ok ? "PASS" : "FAIL", static_cast<unsigned long long>(seed), r->depth, r->mismatched,
            r->nodes, ok ? "" : "; first: ", r->first_mismatch.c_str());
        j = {{"seed", seed},
             {"nodes", r->nodes},
             {"depth", r->depth},
             {"mismatched", r->mismatched},
             {"max_abs_diff", r->max_abs_diff},
             {"first_mismatch", r->first_mismatch}};
        if (!ok) ++failed;
      }
      report.json()["exactness"].push_back(j);
      report.Save();
    }
    failed += CheckLossless(b, c, model->weights, report);
  }
  if (args.bench) {
    const Status s = Bench(b, args, bandwidth, report);
    if (!s.ok()) {
      std::printf("FAIL bench: %s\n", std::string(s.message()).c_str());
      ++failed;
    }
  }
  report.json()["failed"] = failed;
  report.Save();
  std::printf("%s: report in %s\n", failed == 0 ? "all passed" : "FAILED", args.out.c_str());
  return failed == 0 ? 0 : 1;
}

bool ParseList(const std::string& text, std::vector<int64_t>* out) {
  out->clear();
  for (const absl::string_view part : absl::StrSplit(text, ',')) {
    int64_t v = 0;
    if (!absl::SimpleAtoi(part, &v) || v <= 0) return false;
    out->push_back(v);
  }
  return !out->empty();
}

}  // namespace
}  // namespace ts

int main(int argc, char** argv) {
  ts::Args args;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--out" && has_value) {
      args.out = argv[++i];
    } else if (a == "--contexts" && has_value && ts::ParseList(argv[i + 1], &args.contexts)) {
      ++i;
    } else if (a == "--rows" && has_value && ts::ParseList(argv[i + 1], &args.rows)) {
      ++i;
    } else if (a == "--device" && has_value && absl::SimpleAtoi(argv[i + 1], &args.device)) {
      ++i;
    } else if (a == "--skip-bench") {
      args.bench = false;
    } else {
      std::fprintf(stderr, "ts_gpu_check: bad argument '%s' (see the usage in gpu_check.cc)\n",
                   a.c_str());
      return 2;
    }
  }
  return ts::Run(args);
}
