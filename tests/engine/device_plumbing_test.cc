// The device-memory plumbing (kernels/backend.h's memory API; Transformer staging, placed weights,
// KV caches in backend memory) on GuardedBackend: the CPU kernels behind a backend whose memory
// the host cannot touch outside an op (tests/common/guarded_backend.h). A host access to backend
// memory crashes the test; every result must equal the plain CPU backend's bits.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "runtime/decode/draft_heads.h"
#include "runtime/engine/job.h"
#include "runtime/engine/model.h"
#include "runtime/engine/tree_exactness.h"
#include "runtime/kv/kv_cache.h"
#include "runtime/model/test_model.h"
#include "runtime/model/transformer.h"
#include "tests/common/guarded_backend.h"

namespace ts {
namespace {

namespace fs = std::filesystem;

class CollectSink : public TokenSink {
 public:
  void OnTokens(std::span<const int32_t> tokens, int64_t, double) override {
    all.insert(all.end(), tokens.begin(), tokens.end());
  }
  std::vector<int32_t> all;
};

class DevicePlumbingTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ts_plumbing_" + GetParam() + std::to_string(getpid()));
    auto preset = FindTestModelPreset(GetParam());
    ASSERT_TRUE(preset.ok()) << preset.status();
    ASSERT_TRUE(WriteTestModel(*preset, DType::kBF16, dir_.string()).ok());
    auto model = LoadModel(dir_.string(), /*require_tokenizer=*/false);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::make_unique<Model>(std::move(*model));
    auto placed = PlacedWeights::Place(model_->weights(), model_->config(), guarded_);
    ASSERT_TRUE(placed.ok()) << placed.status();
    placed_ = std::move(*placed);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::vector<int32_t> Prompt() const {
    std::vector<int32_t> p;
    for (int i = 0; i < 45; ++i) p.push_back(static_cast<int32_t>((11 * i + 3) % 150));
    return p;
  }

  StatusOr<GenerationResult> Run(Backend* backend, const ModelWeights& weights,
                                 const SamplingParams& sampling, int64_t batch_size,
                                 DraftHeads* heads = nullptr,
                                 const TokenSwiftOptions& options = {}) {
    EngineParts parts;
    parts.config = &model_->config();
    parts.weights = &weights;
    parts.backend = backend;
    parts.batch_size = batch_size;
    parts.heads = heads;
    JobSpec spec;
    spec.tokenswift = heads != nullptr;
    spec.tokenswift_options = options;
    spec.prompt_ids = Prompt();
    spec.max_new_tokens = 120;
    spec.ignore_eos = true;
    spec.sampling = sampling;
    spec.kv_dtype = DType::kBF16;
    CollectSink sink;
    return RunJob(parts, spec, &sink);
  }

  // Greedy, then sampled (temperature 1, min-p 0.05, `seed`).
  static std::vector<SamplingParams> GreedyAndSampled(uint64_t seed) {
    SamplingParams greedy;
    greedy.temperature = 0;
    SamplingParams sampled;
    sampled.temperature = 1;
    sampled.min_p = 0.05f;
    sampled.seed = seed;
    return {greedy, sampled};
  }

  fs::path dir_;
  std::unique_ptr<Model> model_;
  testing::GuardedBackend guarded_{2};
  std::unique_ptr<PlacedWeights> placed_;
};

TEST_P(DevicePlumbingTest, WeightsAreUploadedOnceEach) {
  const ModelWeights& w = placed_->get();
  EXPECT_NE(w.embed.data, model_->weights().embed.data);
  EXPECT_NE(w.layers[0].wq.data, model_->weights().layers[0].wq.data);
  // Tied models share one copy, as their host weights do.
  EXPECT_EQ(w.embed.data == w.lm_head.data,
            model_->weights().embed.data == model_->weights().lm_head.data);
  EXPECT_GT(placed_->uploaded_bytes(), 0u);
}

TEST_P(DevicePlumbingTest, ArJobsEqualTheCpuBackend) {
  auto cpu = MakeCpuBackend(2);
  for (const SamplingParams& s : GreedyAndSampled(7)) {
    // Prefill chunks of 16: the staging of several chunks and of one-token steps.
    auto want = Run(cpu.get(), model_->weights(), s, 16);
    auto got = Run(&guarded_, placed_->get(), s, 16);
    ASSERT_TRUE(want.ok()) << want.status();
    ASSERT_TRUE(got.ok()) << got.status();
    EXPECT_EQ(got->tokens.size(), 120u);
    EXPECT_EQ(got->tokens, want->tokens);
  }
}

// TokenSwift end to end on device memory: heads with a token input and token MLP (placed at their
// first Apply), a partial cache of 64 slots that re-selects (KeyScores staged, GatherKv, the 2-D
// copies of AppendRecent), tree compaction (CopySlot): the tokens of AR on the CPU backend.
TEST_P(DevicePlumbingTest, TokenSwiftJobsEqualArOnTheCpuBackend) {
  const fs::path heads_path = dir_ / "heads.safetensors";
  RandomHeadsOptions random;
  random.token_input = true;
  random.token_mlp = 16;
  ASSERT_TRUE(WriteRandomHeads(heads_path.string(), model_->config().hidden_size, 11, random).ok());
  auto heads = DraftHeads::Load(heads_path.string(), model_->config(), /*max_rows=*/1);
  ASSERT_TRUE(heads.ok()) << heads.status();
  TokenSwiftOptions options;
  options.drafting = DraftingMode::kSeparate;
  options.fixed_nodes = 12;
  options.calibrate = false;
  options.partial = {.budget = 64, .n_sink = 4, .recent = 16, .reselect_room = 8, .draft_slots = 1};
  auto cpu = MakeCpuBackend(2);
  for (const SamplingParams& s : GreedyAndSampled(9)) {
    auto ar = Run(cpu.get(), model_->weights(), s, 16);
    auto ts = Run(&guarded_, placed_->get(), s, 16, heads->get(), options);
    ASSERT_TRUE(ar.ok()) << ar.status();
    ASSERT_TRUE(ts.ok()) << ts.status();
    EXPECT_EQ(ts->tokens, ar->tokens);
    EXPECT_GT(ts->counters.separate_steps, 0);  // drafts over the partial cache ran
  }
}

TEST_P(DevicePlumbingTest, TreeVerifyEqualsArThroughStaging) {
  TreeExactnessOptions options;
  options.nodes = 40;
  auto report =
      CheckTreeVerifyEqualsAr(model_->config(), placed_->get(), guarded_, Prompt(), options);
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->mismatched, 0) << report->first_mismatch;
}

TEST_P(DevicePlumbingTest, CapturedQueriesAndHiddenStatesComeBackToTheHost) {
  auto cpu = MakeCpuBackend(2);
  const ModelConfig& c = model_->config();
  const std::vector<int32_t> prompt = Prompt();
  const int64_t n = static_cast<int64_t>(prompt.size());
  const size_t q_per_row = static_cast<size_t>(c.n_layers) * c.n_heads * c.head_dim;
  auto run = [&](Backend* b, const ModelWeights& w, std::vector<float>* queries,
                 std::vector<float>* hidden, std::vector<float>* logits) {
    auto cache = KvCache::Create(c, n, DType::kF32, b);
    ASSERT_TRUE(cache.ok()) << cache.status();
    Transformer t(c, w, b, 64);
    std::vector<int32_t> pos(n), prefix(n);
    for (int64_t i = 0; i < n; ++i) {
      pos[i] = static_cast<int32_t>(i);
      prefix[i] = static_cast<int32_t>(i + 1);
    }
    const std::vector<int32_t> rows = {3, 44, 20};
    const std::vector<int32_t> capture = {44, 7};
    ForwardBatch batch;
    batch.tokens = prompt;
    batch.positions = pos;
    batch.slots = pos;
    batch.mask.prefix_len = prefix.data();
    batch.logits_rows = rows;
    batch.capture_rows = capture;
    queries->assign(capture.size() * q_per_row, 0.0f);
    hidden->assign(rows.size() * c.hidden_size, 0.0f);
    logits->assign(rows.size() * c.vocab_size, 0.0f);
    batch.capture_queries = queries->data();
    ASSERT_TRUE(t.Forward(batch, **cache, logits->data(), hidden->data()).ok());
  };
  std::vector<float> q1, h1, l1, q2, h2, l2;
  run(cpu.get(), model_->weights(), &q1, &h1, &l1);
  run(&guarded_, placed_->get(), &q2, &h2, &l2);
  EXPECT_EQ(q1, q2);
  EXPECT_EQ(h1, h2);
  EXPECT_EQ(l1, l2);
}

// The guard itself: a host write to backend memory outside an op is a crash, and an Upload /
// Download pair round-trips.
TEST(GuardedBackendTest, HostAccessOutsideAnOpCrashes) {
  testing::GuardedBackend b;
  auto buf = b.Alloc(64);
  ASSERT_TRUE(buf.ok());
  const float in[2] = {1.5f, -2.0f};
  float out[2] = {0, 0};
  b.Upload(buf->data(), in, sizeof(in));
  ASSERT_TRUE(b.Download(out, buf->data(), sizeof(out)).ok());
  EXPECT_EQ(out[1], -2.0f);
  EXPECT_DEATH({ static_cast<volatile float*>(buf->as<float>())[0] = 3.0f; }, "");
}

INSTANTIATE_TEST_SUITE_P(Presets, DevicePlumbingTest,
                         ::testing::Values("llama-gqa-3kv", "qwen2-yarn"),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           std::string n = info.param;
                           for (char& ch : n) {
                             if (ch == '-') ch = '_';
                           }
                           return n;
                         });

}  // namespace
}  // namespace ts
