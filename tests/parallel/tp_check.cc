// Runs under mpirun (tests/parallel/tests.cmake): the logits of a tensor-parallel forward pass
// (each rank: its heads, its columns, its vocabulary rows, all-reduces over MPI) against the same
// model run whole in one process, on every rank.
//
//   mpirun -np 2 ts_tp_check                      tiny llama-gqa-3kv test model (f32)
//   mpirun -np 3 ts_tp_check --model SmolLM2.gguf   also a real model (quantized weights)
// Exit 0 when every logit of every rank's vocabulary range is within 1e-4 of the row's largest
// logit magnitude (relative), and the cache slots and all-reduces worked for a second batch too.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "kernels/backend.h"
#include "kernels/cpu/dequant.h"
#include "parallel/communicator.h"
#include "runtime/decode/ar_decoder.h"
#include "runtime/decode/draft_heads.h"
#include "runtime/decode/tokenswift_decoder.h"
#include "runtime/engine/generator.h"
#include "runtime/engine/model.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/tensor_parallel.h"
#include "runtime/model/test_model.h"
#include "runtime/model/transformer.h"
#include "runtime/sampling/sharded_sampler.h"
#include "tests/common/fixtures.h"

namespace ts {
namespace {

// Logits of rows 0..n-1 of `tokens` (causal, fresh cache) in two batches (prefix, then the rest),
// so that the second batch reads KV written by the first.
Status RunForward(const ModelConfig& config, const ModelWeights& weights, Backend* backend,
                  const TpShard* tp, const std::vector<int32_t>& tokens, int64_t vocab,
                  std::vector<float>& logits) {
  const int64_t n = static_cast<int64_t>(tokens.size());
  TS_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache, KvCache::Create(config, n, DType::kF32));
  Transformer tf(config, weights, backend, n, tp);
  logits.assign(n * vocab, 0.0f);
  std::vector<int32_t> pos(n), prefix(n);
  for (int64_t i = 0; i < n; ++i) {
    pos[i] = static_cast<int32_t>(i);
    prefix[i] = static_cast<int32_t>(i + 1);
  }
  const int64_t cut = n / 2;
  for (auto [b, e] : {std::pair<int64_t, int64_t>{0, cut}, {cut, n}}) {
    if (e == b) continue;  // a one-token prompt is one batch
    std::vector<int32_t> rows(e - b);
    for (int64_t i = 0; i < e - b; ++i) rows[i] = static_cast<int32_t>(i);
    ForwardBatch batch;
    batch.tokens = std::span<const int32_t>(tokens.data() + b, e - b);
    batch.positions = std::span<const int32_t>(pos.data() + b, e - b);
    batch.slots = batch.positions;
    batch.mask.prefix_len = prefix.data() + b;
    batch.logits_rows = rows;
    TS_RETURN_IF_ERROR(tf.Forward(batch, *cache, logits.data() + b * vocab));
  }
  return absl::OkStatus();
}

// An f32 copy of every matrix: with quantized weights the kernels quantize activations to 8 bits
// per block, and a rounding flipped by the split sums' last bit moves a logit by up to ~1e-2
// after 30 layers, so the 1e-4 comparison runs on the model's own weights dequantized.
struct F32Weights {
  std::vector<std::vector<float>> buffers;
  ModelWeights weights;
  Matrix Copy(const Matrix& m) {
    if (m.data == nullptr) return m;
    buffers.emplace_back(static_cast<size_t>(m.rows * m.cols));
    std::vector<float>& b = buffers.back();
    for (int64_t r = 0; r < m.rows; ++r)
      DequantizeRow(m.dtype, m.Row(r), b.data() + r * m.cols, m.cols);
    return Matrix{b.data(), DType::kF32, m.rows, m.cols, RowBytes(DType::kF32, m.cols)};
  }
  explicit F32Weights(const ModelWeights& w) {
    buffers.reserve(4 + 7 * w.layers.size());
    weights = w;
    weights.embed = Copy(w.embed);
    weights.lm_head = w.lm_head.data == w.embed.data ? weights.embed : Copy(w.lm_head);
    for (LayerWeights& l : weights.layers) {
      for (Matrix* m : {&l.wq, &l.wk, &l.wv, &l.wo, &l.w_gate, &l.w_up, &l.w_down}) *m = Copy(*m);
    }
  }
};

// Compares the rank's vocabulary range of the whole model's logits with its TP logits. The
// row-parallel sums are defined by reduction granules (parallel/shard_plan.h), so tolerance 0:
// the very same bits.
int Check(const char* what, const ModelConfig& config, const ModelWeights& weights,
          Communicator& comm, int64_t vocab_block, const std::vector<int32_t>& tokens,
          double tolerance) {
  std::unique_ptr<Backend> backend = MakeCpuBackend(1);
  const int64_t vocab = config.vocab_size, n = static_cast<int64_t>(tokens.size());
  std::vector<float> whole, part;
  Status s = RunForward(config, weights, backend.get(), nullptr, tokens, vocab, whole);
  if (!s.ok()) {
    std::fprintf(stderr, "%s: whole model: %s\n", what, std::string(s.message()).c_str());
    return 1;
  }
  auto shard = TpShard::Create(config, weights, &comm, vocab_block);
  if (!shard.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, std::string(shard.status().message()).c_str());
    return 1;
  }
  const Range vr = (*shard)->vocab();
  const int64_t bytes_before = comm.bytes_sent();
  s = RunForward((*shard)->config(), (*shard)->weights(), backend.get(), shard->get(), tokens,
                 vr.size(), part);
  if (!s.ok()) {
    std::fprintf(stderr, "%s: tp: %s\n", what, std::string(s.message()).c_str());
    comm.Abort(3);
  }
  double worst = 0;
  for (int64_t r = 0; r < n; ++r) {
    float scale = 0;
    for (int64_t j = 0; j < vocab; ++j) scale = std::max(scale, std::fabs(whole[r * vocab + j]));
    for (int64_t j = vr.begin; j < vr.end; ++j) {
      const double d =
          std::fabs(static_cast<double>(part[r * vr.size() + j - vr.begin]) - whole[r * vocab + j]);
      worst = std::max(worst, d / std::max(scale, 1e-6f));
    }
  }
  const bool ok = worst <= tolerance;
  std::printf(
      "%s: rank %d/%d %s, vocab [%lld, %lld), max relative logit error %.3g, %lld bytes "
      "sent for %lld tokens\n",
      what, comm.rank(), comm.size(), ok ? "ok" : "FAILED", static_cast<long long>(vr.begin),
      static_cast<long long>(vr.end), worst,
      static_cast<long long>(comm.bytes_sent() - bytes_before), static_cast<long long>(n));
  std::fflush(stdout);
  return ok ? 0 : 1;
}

// AR generation with the sharded sampler against the whole model with the plain sampler: the same
// tokens (the logits are the same bits).
int CheckGeneration(const char* what, const Model& model, Communicator& comm,
                    const SamplingParams& params, int64_t vocab_block, int64_t count) {
  std::unique_ptr<Backend> backend = MakeCpuBackend(1);
  const ModelConfig& config = model.config();
  const std::vector<int32_t> prompt = {3, 17, 42, 5, 99, 7};
  GenerationLimits limits;
  limits.max_new_tokens = count;
  limits.ignore_eos = true;
  const int64_t capacity = static_cast<int64_t>(prompt.size()) + count;
  auto run = [&](const ModelConfig& c, const ModelWeights& w, const TpShard* tp,
                 ShardedSampler* sharded) -> StatusOr<std::vector<int32_t>> {
    TS_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache, KvCache::Create(c, capacity, DType::kF32));
    Transformer tf(c, w, backend.get(), 16, tp);
    ArDecoder decoder(&tf, cache.get(), params, sharded);
    TS_ASSIGN_OR_RETURN(GenerationResult r, Generate(decoder, prompt, limits, nullptr));
    return r.tokens;
  };
  auto whole = run(config, model.weights(), nullptr, nullptr);
  auto shard = TpShard::Create(config, model.weights(), &comm, vocab_block);
  if (!whole.ok() || !shard.ok()) return 1;
  auto sampler = ShardedSampler::Create(params, (*shard)->vocab(), &comm);
  if (!sampler.ok()) return 1;
  auto split = run((*shard)->config(), (*shard)->weights(), shard->get(), &*sampler);
  if (!split.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, std::string(split.status().message()).c_str());
    comm.Abort(3);
  }
  int64_t first_diff = -1;
  for (int64_t i = 0; i < count && first_diff < 0; ++i) {
    if ((*whole)[i] != (*split)[i]) first_diff = i;
  }
  std::printf("%s: rank %d/%d %s, %lld tokens, first difference %lld\n", what, comm.rank(),
              comm.size(), first_diff < 0 ? "ok" : "FAILED", static_cast<long long>(count),
              static_cast<long long>(first_diff));
  std::fflush(stdout);
  return first_diff < 0 ? 0 : 1;
}

#ifdef TS_FIXTURES_DIR
// The golden prompts (tests/fixtures/golden/llama-gqa-3kv.json, the tiny model written above):
// the rank's vocabulary range of the TP logits against the whole model's (the same bits) and
// against HF transformers' (the 1e-4 of tests/engine/forward_golden_test).
int CheckGolden(const Model& model, Communicator& comm) {
  namespace tf = testing_fixtures;
  const std::filesystem::path dir = std::filesystem::path(TS_FIXTURES_DIR) / "golden";
  const nlohmann::json golden = tf::ReadJson(dir / "llama-gqa-3kv.json");
  const std::vector<float> hf = tf::ReadF32(dir / "llama-gqa-3kv.logits.f32");
  std::unique_ptr<Backend> backend = MakeCpuBackend(1);
  const ModelConfig& config = model.config();
  const int64_t vocab = config.vocab_size;
  auto shard = TpShard::Create(config, model.weights(), &comm, /*vocab_block=*/32);
  if (!shard.ok()) return 1;
  const Range vr = (*shard)->vocab();
  double worst_whole = 0, worst_hf = 0;
  int prompts = 0;
  for (const auto& prompt : golden["prompts"]) {
    const auto ids = prompt["token_ids"].get<std::vector<int32_t>>();
    const int64_t offset = prompt["logits_row_offset"].get<int64_t>();
    const int64_t n = static_cast<int64_t>(ids.size());
    std::vector<float> whole, part;
    Status s = RunForward(config, model.weights(), backend.get(), nullptr, ids, vocab, whole);
    if (s.ok()) {
      s = RunForward((*shard)->config(), (*shard)->weights(), backend.get(), shard->get(), ids,
                     vr.size(), part);
    }
    if (!s.ok()) {
      std::fprintf(stderr, "golden: %s\n", std::string(s.message()).c_str());
      comm.Abort(3);
    }
    for (int64_t r = 0; r < n; ++r) {
      const float* ref = hf.data() + (offset + r) * vocab;
      double scale_whole = 0, scale_hf = 0, d_whole = 0, d_hf = 0;
      for (int64_t j = 0; j < vocab; ++j) {
        scale_whole = std::max(scale_whole, std::fabs(double{whole[r * vocab + j]}));
        scale_hf = std::max(scale_hf, std::fabs(double{ref[j]}));
      }
      for (int64_t j = vr.begin; j < vr.end; ++j) {
        const double ours = part[r * vr.size() + j - vr.begin];
        d_whole = std::max(d_whole, std::fabs(ours - whole[r * vocab + j]));
        d_hf = std::max(d_hf, std::fabs(ours - ref[j]));
      }
      worst_whole = std::max(worst_whole, d_whole / scale_whole);
      worst_hf = std::max(worst_hf, d_hf / scale_hf);
    }
    ++prompts;
  }
  const bool ok = prompts > 0 && worst_whole == 0 && worst_hf <= 1e-4;
  std::printf(
      "golden prompts: rank %d/%d %s, %d prompts, max relative logit error %.2e vs TP=1, "
      "%.2e vs HF transformers\n",
      comm.rank(), comm.size(), ok ? "ok" : "FAILED", prompts, worst_whole, worst_hf);
  std::fflush(stdout);
  return ok ? 0 : 1;
}
#endif

// Draft heads with their linears split by output rows (DraftHeads::Shard, one all-gather per
// head) against the same heads whole: every head's logits over the rank's vocabulary range, bit
// for bit (each output row is the same dot product either way).
int CheckHeads(const Model& model, Communicator& comm, const std::string& heads_path) {
  std::unique_ptr<Backend> backend = MakeCpuBackend(1);
  const ModelConfig& config = model.config();
  auto shard = TpShard::Create(config, model.weights(), &comm, /*vocab_block=*/32);
  auto whole = DraftHeads::Load(heads_path, config, 2);
  auto split = DraftHeads::Load(heads_path, config, 2);
  if (!shard.ok() || !whole.ok() || !split.ok()) return 1;
  const Status s = (*split)->Shard((*shard)->plan().draft_hidden, &comm);
  if (!s.ok()) {
    std::fprintf(stderr, "heads: %s\n", std::string(s.message()).c_str());
    comm.Abort(3);
  }
  const int64_t h = config.hidden_size, vocab = config.vocab_size, n = 2;
  const Range vr = (*shard)->vocab();
  std::vector<float> hidden(n * h);
  for (int64_t i = 0; i < n * h; ++i) hidden[i] = static_cast<float>((i * 7919) % 201 - 100) / 50;
  const int heads = (*whole)->num_heads();
  std::vector<float> want(heads * n * vocab), got(heads * n * vr.size());
  const Status a =
      (*whole)->Apply(*backend, hidden.data(), n, model.weights().lm_head, want.data());
  const Status b =
      (*split)->Apply(*backend, hidden.data(), n, (*shard)->weights().lm_head, got.data());
  if (!a.ok() || !b.ok()) {
    std::fprintf(stderr, "heads: %s\n", std::string((a.ok() ? b : a).message()).c_str());
    comm.Abort(3);
  }
  int64_t mismatches = 0;
  for (int64_t r = 0; r < heads * n; ++r) {
    for (int64_t j = vr.begin; j < vr.end; ++j) {
      mismatches += want[r * vocab + j] != got[r * vr.size() + j - vr.begin];
    }
  }
  std::printf("draft heads split by rows [%lld, %lld): rank %d/%d %s, %lld of %lld logits differ\n",
              static_cast<long long>((*split)->rows().begin),
              static_cast<long long>((*split)->rows().end), comm.rank(), comm.size(),
              mismatches == 0 ? "ok" : "FAILED", static_cast<long long>(mismatches),
              static_cast<long long>(heads * n * vr.size()));
  std::fflush(stdout);
  return mismatches == 0 ? 0 : 1;
}

// TokenSwift under tensor parallelism (sharded draft lists and targets, rank 0 coordinating:
// parallel/step_message.h) against AR under the same split: the same tokens. Random heads and a
// static tree make every step speculate; the planner run lets timing-dependent plans differ
// between ranks' own views. workers_differ: the other ranks get drafting options that would give
// other trees, other calibrations and no n-gram branches if they decided anything themselves.
int CheckTokenSwift(const char* what, const Model& model, Communicator& comm,
                    const SamplingParams& params, int64_t vocab_block, int64_t count,
                    const std::string& heads_path, bool static_tree, bool workers_differ = false) {
  std::unique_ptr<Backend> backend = MakeCpuBackend(1);
  const std::vector<int32_t> prompt = {3, 17, 42, 5, 99, 7, 3, 17, 42, 5, 99, 7};
  GenerationLimits limits;
  limits.max_new_tokens = count;
  limits.ignore_eos = true;
  auto shard = TpShard::Create(model.config(), model.weights(), &comm, vocab_block);
  if (!shard.ok()) return 1;
  auto sampler = ShardedSampler::Create(params, (*shard)->vocab(), &comm);
  if (!sampler.ok()) return 1;
  TokenSwiftOptions options;
  options.tree.max_nodes = 16;
  options.static_tree = static_tree;
  options.partial.budget = 64;  // a job longer than the budget: re-selection happens
  options.partial.recent = 16;
  options.partial.reselect_room = 8;
  options.recalibrate_every = 100;
  if (workers_differ && comm.rank() != 0) {
    options.ngram_topk = 0;
    options.drafting = DraftingMode::kSeparate;
    options.fixed_nodes = 3;
    options.calibrate = false;
    options.recalibrate_every = 7;
  }
  const int64_t capacity = static_cast<int64_t>(prompt.size()) + count + options.tree.max_nodes;
  auto run = [&](bool tokenswift) -> StatusOr<std::vector<int32_t>> {
    const ModelConfig& c = (*shard)->config();
    TS_ASSIGN_OR_RETURN(std::unique_ptr<KvCache> cache, KvCache::Create(c, capacity, DType::kF32));
    Transformer tf(c, (*shard)->weights(), backend.get(), 16, shard->get());
    std::unique_ptr<Decoder> decoder;
    std::unique_ptr<DraftHeads> heads;
    if (tokenswift) {
      TS_ASSIGN_OR_RETURN(heads, DraftHeads::Load(heads_path, model.config(), 1));
      TS_RETURN_IF_ERROR(heads->Shard((*shard)->plan().draft_hidden, &comm));
      decoder = std::make_unique<TokenSwiftDecoder>(&tf, cache.get(), heads.get(), params, options,
                                                    &*sampler);
    } else {
      decoder = std::make_unique<ArDecoder>(&tf, cache.get(), params, &*sampler);
    }
    TS_ASSIGN_OR_RETURN(GenerationResult r, Generate(*decoder, prompt, limits, nullptr));
    return r.tokens;
  };
  auto ar = run(false);
  auto tsw = run(true);
  if (!ar.ok() || !tsw.ok()) {
    std::fprintf(stderr, "%s: %s\n", what,
                 std::string((ar.ok() ? tsw.status() : ar.status()).message()).c_str());
    comm.Abort(3);
  }
  int64_t first_diff = -1;
  for (int64_t i = 0; i < count && first_diff < 0; ++i) {
    if ((*ar)[i] != (*tsw)[i]) first_diff = i;
  }
  std::printf("%s: rank %d/%d %s, %lld tokens, first difference %lld\n", what, comm.rank(),
              comm.size(), first_diff < 0 ? "ok" : "FAILED", static_cast<long long>(count),
              static_cast<long long>(first_diff));
  std::fflush(stdout);
  return first_diff < 0 ? 0 : 1;
}

}  // namespace
}  // namespace ts

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  std::string real_model;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--model" && i + 1 < argc) {
      real_model = argv[++i];
    } else {
      std::fprintf(stderr, "usage: ts_tp_check [--model PATH]\n");
      return 2;
    }
  }
  auto comm = ts::MakeCommunicator("mpi", ts::CommOptions{});
  if (!comm.ok()) {
    std::fprintf(stderr, "%s\n", std::string(comm.status().message()).c_str());
    return 2;
  }
  int failures = 0;
  {
    const fs::path dir = fs::temp_directory_path() / ("ts_tp_check_" + std::to_string(getpid()) +
                                                      "_" + std::to_string((*comm)->rank()));
    auto preset = ts::FindTestModelPreset("llama-gqa-3kv");
    if (!preset.ok() || !ts::WriteTestModel(*preset, ts::DType::kF32, dir.string()).ok()) {
      std::fprintf(stderr, "cannot write the tiny test model\n");
      return 1;
    }
    auto model = ts::LoadModel(dir.string(), /*require_tokenizer=*/false);
    if (!model.ok()) {
      std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
      return 1;
    }
    std::vector<int32_t> tokens;
    for (int i = 0; i < 24; ++i) tokens.push_back((i * 37 + 11) % model->config().vocab_size);
    failures += ts::Check("llama-gqa-3kv", model->config(), model->weights(), **comm,
                          /*vocab_block=*/32, tokens, /*tolerance=*/0);
    ts::SamplingParams greedy;
    greedy.temperature = 0.0f;
    greedy.penalty = 1.2f;
    greedy.penalty_window = 64;
#ifdef TS_FIXTURES_DIR
    failures += ts::CheckGolden(*model, **comm);
#endif
    failures += ts::CheckGeneration("generate greedy", *model, **comm, greedy, 32, 512);
    ts::SamplingParams sampled;
    sampled.temperature = 1.0f;
    sampled.min_p = 0.1f;
    sampled.penalty = 1.2f;
    sampled.penalty_window = 64;
    sampled.seed = 9;
    failures += ts::CheckGeneration("generate sampled", *model, **comm, sampled, 32, 512);
    ts::SamplingParams top_k = sampled;  // a selection over the split vocabulary
    top_k.min_p = 0.0f;
    top_k.top_k = 20;
    failures += ts::CheckGeneration("generate top-k", *model, **comm, top_k, 32, 512);
    const std::string heads = (dir / "heads.safetensors").string();
    if (!ts::WriteRandomHeads(heads, model->config().hidden_size, 5).ok()) return 1;
    failures += ts::CheckHeads(*model, **comm, heads);
    failures += ts::CheckTokenSwift("tokenswift greedy, static tree", *model, **comm, greedy, 32,
                                    512, heads, true);
    failures += ts::CheckTokenSwift("tokenswift sampled, static tree", *model, **comm, sampled, 32,
                                    512, heads, true);
    failures += ts::CheckTokenSwift("tokenswift sampled, planner", *model, **comm, sampled, 32, 512,
                                    heads, false);
    failures += ts::CheckTokenSwift("tokenswift sampled, planner, workers configured otherwise",
                                    *model, **comm, sampled, 32, 512, heads, false, true);
    fs::remove_all(dir);
  }
  if (!real_model.empty()) {
    auto model = ts::LoadModel(real_model, /*require_tokenizer=*/false);
    if (!model.ok()) {
      std::fprintf(stderr, "%s\n", std::string(model.status().message()).c_str());
      return 1;
    }
    // SmolLM2-style ids of an English sentence and a code line (fixed, no tokenizer needed).
    const std::vector<int32_t> tokens = {504,   3458, 282, 4649, 314,  7042, 30,   378,  2365, 2593,
                                         15465, 1086, 253, 6077, 28,   2102, 1488, 7051, 1695, 288,
                                         260,   7253, 30,  216,  1115, 1001, 45,   40};
    {
      ts::F32Weights f32(model->weights());
      failures += ts::Check("model (weights as f32)", model->config(), f32.weights, **comm,
                            /*vocab_block=*/1024, tokens, /*tolerance=*/0);
    }
    // As stored (8-bit activations, where a rounding flip used to propagate): the same bits too.
    failures += ts::Check("model (as stored)", model->config(), model->weights(), **comm,
                          /*vocab_block=*/1024, tokens, /*tolerance=*/0);
  }
  comm->reset();
  return failures == 0 ? 0 : 1;
}
