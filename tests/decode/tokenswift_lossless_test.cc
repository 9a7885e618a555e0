// TokenSwift decoding is lossless: for the same seed and sampling settings it commits exactly the
// token stream of plain AR decoding (DESIGN.md section 2), greedy and sampled (temperature 1,
// min-p 0.1, penalty 1.2 over 1024 and over 16 tokens), over 2,000 generated tokens, on every tiny
// test model and on SmolLM2, for every way the decoder can draft: the planner's choice (which may
// take plain AR steps), fused drafting, a separate draft pass, and the static [1,3,3,3] tree.
// Draft heads are random on the tiny models (acceptance comes mostly from n-gram branches) and the
// trained ones on SmolLM2 when models/heads/ has them; the greedy cases assert that drafts were
// accepted, so tree verification, acceptance and KV compaction are really exercised, not just the
// bonus-token path.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>
#include <vector>

#include "runtime/decode/ar_decoder.h"
#include "runtime/decode/draft_heads.h"
#include "runtime/decode/tokenswift_decoder.h"
#include "runtime/engine/generator.h"
#include "runtime/engine/model.h"
#include "runtime/model/test_model.h"
#include "runtime/sampling/sampler.h"
#include "tests/common/default_model.h"
#include "tests/common/fixtures.h"
#include "tests/common/simd_targets.h"

namespace ts {
namespace {

namespace fs = std::filesystem;

struct RunResult {
  std::vector<int32_t> tokens;
  DecodeCounters counters;
};

// The drafting configurations every stream is checked under.
struct Config {
  const char* name;
  TokenSwiftOptions options;
};

std::vector<Config> Configs() {
  std::vector<Config> configs;
  TokenSwiftOptions planner;  // defaults: planner-sized trees, AR fallback, calibration
  configs.push_back({"planner", planner});
  TokenSwiftOptions fused;
  fused.drafting = DraftingMode::kFused;
  fused.fixed_nodes = 8;
  fused.calibrate = false;
  configs.push_back({"fused-8", fused});
  TokenSwiftOptions separate;
  separate.drafting = DraftingMode::kSeparate;
  separate.fixed_nodes = 12;
  separate.calibrate = false;
  configs.push_back({"separate-12", separate});
  TokenSwiftOptions static_tree;
  static_tree.static_tree = true;  // [1,3,3,3] + n-gram branches, separate draft pass
  static_tree.calibrate = false;
  configs.push_back({"static-1333", static_tree});
  TokenSwiftOptions small_partial = separate;  // drafts over a partial cache that re-selects
  small_partial.partial = {
      .budget = 64, .n_sink = 4, .recent = 16, .reselect_room = 8, .draft_slots = 1};
  configs.push_back({"separate-12-partial-64", small_partial});
  return configs;
}

class LosslessTest : public ::testing::Test {
 protected:
  // `heads`: a heads file to use, or empty for random heads written to a temporary file.
  // `random`: the random heads' options (e.g. with a token input).
  void Load(const std::string& path, const std::string& heads = "", int threads = 2,
            const RandomHeadsOptions& random = {}) {
    StatusOr<Model> model = LoadModel(path, /*require_tokenizer=*/false);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::make_unique<Model>(std::move(*model));
    backend_ = MakeCpuBackend(threads);
    if (!heads.empty()) {
      heads_path_ = heads;
      return;
    }
    heads_path_ = (fs::temp_directory_path() /
                   ("ts_lossless_heads_" + std::to_string(getpid()) + ".safetensors"))
                      .string();
    owns_heads_ = true;
    ASSERT_TRUE(
        WriteRandomHeads(heads_path_, model_->config().hidden_size, /*seed=*/11, random).ok());
  }
  void TearDown() override {
    if (owns_heads_) fs::remove(heads_path_);
  }

  RunResult Generate(const TokenSwiftOptions* tokenswift, const std::vector<int32_t>& prompt,
                     const SamplingParams& p, int64_t n) {
    const TokenSwiftOptions options = tokenswift ? *tokenswift : TokenSwiftOptions();
    auto cache =
        KvCache::Create(model_->config(), prompt.size() + n + options.tree.max_nodes, DType::kF32);
    EXPECT_TRUE(cache.ok());
    Transformer t(model_->config(), model_->weights(), backend_.get(), options.tree.max_nodes);
    GenerationLimits limits;
    limits.max_new_tokens = n;
    limits.ignore_eos = true;
    StatusOr<GenerationResult> result;
    if (tokenswift) {
      auto heads = DraftHeads::Load(heads_path_, model_->config(), 1);
      EXPECT_TRUE(heads.ok()) << heads.status();
      TokenSwiftDecoder decoder(&t, cache->get(), heads->get(), p, options);
      result = ts::Generate(decoder, prompt, limits, nullptr);
    } else {
      ArDecoder decoder(&t, cache->get(), p);
      result = ts::Generate(decoder, prompt, limits, nullptr);
    }
    EXPECT_TRUE(result.ok()) << result.status();
    if (!result.ok()) return {};
    return {result->tokens, result->counters};
  }

  // `configs`: how many of Configs() to check (the first ones).
  void ExpectSameStream(const std::vector<int32_t>& prompt, const SamplingParams& p, int64_t n,
                        bool expect_accepted, size_t configs = 5) {
    const RunResult ar = Generate(nullptr, prompt, p, n);
    ASSERT_EQ(ar.tokens.size(), static_cast<size_t>(n));
    const std::vector<Config> all = Configs();
    for (size_t c = 0; c < std::min(configs, all.size()); ++c) {
      const Config& config = all[c];
      SCOPED_TRACE(config.name);
      const RunResult tsw = Generate(&config.options, prompt, p, n);
      ASSERT_EQ(tsw.tokens.size(), ar.tokens.size());
      for (size_t i = 0; i < ar.tokens.size(); ++i) {
        ASSERT_EQ(tsw.tokens[i], ar.tokens[i]) << "first difference at generated token " << i;
      }
      EXPECT_LE(tsw.counters.steps, ar.counters.steps);
      EXPECT_EQ(tsw.counters.ar_steps + tsw.counters.fused_steps + tsw.counters.separate_steps,
                tsw.counters.steps);
      if (expect_accepted && std::string(config.name) != "planner") {
        EXPECT_GT(tsw.counters.accepted, 0) << "no draft was ever accepted";
      }
    }
  }

  static SamplingParams Greedy() {
    SamplingParams p;
    p.temperature = 0;
    p.penalty = 1;
    return p;
  }
  // Greedy with the repetition penalty: the target of a tree node depends on the node's
  // ancestors (they enter the penalty window), so a walk that used only the committed window
  // would diverge from AR.
  static SamplingParams GreedyPenalty(int64_t window) {
    SamplingParams p;
    p.temperature = 0;
    p.penalty = 1.2f;
    p.penalty_window = window;
    return p;
  }
  static SamplingParams Sampled(uint64_t seed, int64_t window) {
    SamplingParams p;
    p.seed = seed;
    p.temperature = 1.0f;
    p.min_p = 0.1f;
    p.penalty = 1.2f;
    p.penalty_window = window;
    return p;
  }

  std::unique_ptr<Model> model_;
  std::unique_ptr<Backend> backend_;
  std::string heads_path_;
  bool owns_heads_ = false;
};

class TinyLosslessTest : public LosslessTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    dir_ =
        fs::temp_directory_path() / ("ts_lossless_" + GetParam() + "_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    auto preset = FindTestModelPreset(GetParam());
    ASSERT_TRUE(preset.ok());
    ASSERT_TRUE(WriteTestModel(*preset, DType::kF32, dir_.string()).ok());
    // One thread: tiny models are dominated by per-op synchronisation (thread invariance has its
    // own tests in tests/kernels and tests/engine).
    Load(dir_.string(), "", /*threads=*/1);
  }
  void TearDown() override {
    LosslessTest::TearDown();
    fs::remove_all(dir_);
  }
  // A prompt with repeats, so the n-gram table has something to propose from the start.
  std::vector<int32_t> Prompt() const {
    std::vector<int32_t> p;
    for (int r = 0; r < 4; ++r) {
      for (int i = 0; i < 8; ++i) p.push_back(static_cast<int32_t>(10 + 7 * i));
    }
    return p;
  }
  fs::path dir_;
};

TEST_P(TinyLosslessTest, GreedyStreamEqualsAr) { ExpectSameStream(Prompt(), Greedy(), 2000, true); }

TEST_P(TinyLosslessTest, GreedyWithPenaltyStreamEqualsAr) {
  ExpectSameStream(Prompt(), GreedyPenalty(1024), 1000, true);
  ExpectSameStream(Prompt(), GreedyPenalty(8), 600, true);  // window shorter than the stream
}

// Sampled streams must also accept drafts (the separate draft pass's own distribution, coupled
// to the target by the same Gumbel noise, is accepted nearly always; n-gram branches too).
TEST_P(TinyLosslessTest, SampledStreamEqualsAr) {
  ExpectSameStream(Prompt(), Sampled(3, 1024), 2000, true);
  ExpectSameStream(Prompt(), Sampled(4, 16), 600, true);  // window shorter than the stream
}

// Heads that read the next token (a token linear and a token MLP): fused drafting feeds them the
// root, separate drafting its depth-1 guess; Apply fails without the token, so a path that
// forgot it would stop the run.
TEST_P(TinyLosslessTest, TokenInputHeadsStreamEqualsAr) {
  RandomHeadsOptions random;
  random.token_input = true;
  random.token_mlp = 16;
  Load(dir_.string(), "", /*threads=*/1, random);
  ExpectSameStream(Prompt(), Sampled(5, 1024), 600, true);
  ExpectSameStream(Prompt(), GreedyPenalty(64), 600, true);
}

// A hand-built tree whose second draft is the token the committed window alone would pick at
// its parent: with the parent (an accepted ancestor) in the penalty window, as AR has it, the
// target there is another token, so the walk must stop with that bonus token. A walk that
// penalised only the committed tokens would accept the second draft and diverge from AR. The
// prompt is searched for so that the two windows really give different targets.
TEST_P(TinyLosslessTest, AncestorInPenaltyWindowChangesTheTarget) {
  const ModelConfig& config = model_->config();
  SamplingParams p;
  p.temperature = 0;
  p.penalty = 3.0f;
  p.penalty_window = 64;
  Sampler sampler(p, config.vocab_size);
  Transformer t(config, model_->weights(), backend_.get(), 8);
  DraftTree tree(DraftTreeOptions{.static_shape = {}, .max_depth = 4, .max_nodes = 8});
  const std::vector<int32_t> rows = {0, 1, 2};
  std::vector<float> logits(3 * config.vocab_size);
  // Verifies root -> a (-> c when c >= 0) after the prompt; logits of every node.
  auto verify = [&](const std::vector<int32_t>& prompt, int32_t a, int32_t c) {
    auto cache = KvCache::Create(config, prompt.size() + 8, DType::kF32);
    EXPECT_TRUE(cache.ok());
    const int64_t cached = static_cast<int64_t>(prompt.size()) - 1;
    EXPECT_TRUE(t.ForwardCausal(prompt, 0, cached, **cache, nullptr).ok());
    tree.Reset(prompt.back(), static_cast<int32_t>(cached));
    EXPECT_EQ(tree.AddChild(0, a, DraftTree::kFromNgram), 1);
    if (c >= 0) EXPECT_EQ(tree.AddChild(1, c, DraftTree::kFromNgram), 2);
    tree.Finalize();
    const ForwardBatch batch = tree.VerifyBatch(std::span<const int32_t>(rows.data(), tree.size()));
    EXPECT_TRUE(t.Forward(batch, **cache, logits.data(), nullptr).ok());
  };
  for (int k = 0; k < 400; ++k) {
    std::vector<int32_t> prompt;
    for (int i = 0; i < 6; ++i) {
      prompt.push_back(static_cast<int32_t>((k * 131 + i * 29 + 7) % config.vocab_size));
    }
    const RunResult ar = Generate(nullptr, prompt, p, 2);
    ASSERT_EQ(ar.tokens.size(), 2u);
    const int32_t a = ar.tokens[0], b = ar.tokens[1];
    verify(prompt, a, -1);
    const int64_t n = static_cast<int64_t>(prompt.size());
    // Node a's target with only the committed tokens in the window.
    const int32_t committed_only = sampler.Sample(logits.data() + config.vocab_size, prompt, n + 1);
    if (committed_only == b) continue;  // the ancestor does not matter here: try another prompt
    verify(prompt, a, committed_only);
    std::vector<int32_t> stream = prompt;
    auto result = tree.Walk(2, [&](int node) -> int32_t {
      const int32_t target = sampler.Sample(logits.data() + node * config.vocab_size, stream,
                                            static_cast<int64_t>(stream.size()));
      stream.push_back(target);
      return target;
    });
    ASSERT_TRUE(result.ok());
    EXPECT_EQ(std::vector<int32_t>(result->path.begin(), result->path.end()),
              (std::vector<int32_t>{0, 1}));
    EXPECT_EQ(result->bonus_token, b);
    EXPECT_EQ(std::vector<int32_t>(stream.begin() + n, stream.end()), ar.tokens);
    return;
  }
  FAIL() << "no prompt where the parent's penalty changes the target";
}

INSTANTIATE_TEST_SUITE_P(Presets, TinyLosslessTest,
                         ::testing::Values("llama-mha", "llama-gqa-llama3", "qwen2-yarn",
                                           "llama-gqa-3kv"),
                         testing_fixtures::CaseName());

// The same on every SIMD target this CPU supports (each target has its own attention and matmul
// code; tests/common/simd_targets.h prints which ran and which were skipped), on the GQA model
// shaped like SmolLM2 (3 KV heads).
class TinySimdLosslessTest : public TinyLosslessTest {};

TEST_P(TinySimdLosslessTest, StreamsEqualArOnEverySimdTarget) {
  testing::ForEachSimdTarget([&] {
    ExpectSameStream(Prompt(), Greedy(), 300, true);
    ExpectSameStream(Prompt(), Sampled(9, 64), 300, false);
  });
}

INSTANTIATE_TEST_SUITE_P(Presets, TinySimdLosslessTest, ::testing::Values("llama-gqa-3kv"),
                         testing_fixtures::CaseName());

class SmolLM2LosslessTest : public LosslessTest {
 protected:
  void SetUp() override {
    const std::string path = testing_paths::DefaultModelPath();
    if (path.empty()) GTEST_SKIP() << "default model not found (run scripts/fetch-model.sh)";
    const fs::path trained =
        fs::path(TS_FIXTURES_DIR) / "../../models/heads/smollm2-135m-instruct-heads.safetensors";
    Load(path, fs::exists(trained) ? trained.string() : "");
  }
  std::vector<int32_t> Prompt() const {
    return {504, 3575, 282, 4649, 314};  // "The capital of France is"
  }
};

// The planner's choice and fused drafting (every configuration runs on the tiny models; on
// SmolLM2 a 2,000-token stream costs ~15 s per configuration on 2 cores).
TEST_F(SmolLM2LosslessTest, GreedyStreamEqualsAr) {
  ExpectSameStream(Prompt(), Greedy(), 2000, true, /*configs=*/2);
}

TEST_F(SmolLM2LosslessTest, SampledStreamEqualsAr) {
  ExpectSameStream(Prompt(), Sampled(42, 1024), 2000, false, /*configs=*/2);
}

}  // namespace
}  // namespace ts
