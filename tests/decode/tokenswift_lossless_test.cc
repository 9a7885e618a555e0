// TokenSwift decoding is lossless: for the same seed and sampling settings it commits exactly the
// token stream of plain AR decoding (DESIGN.md section 2), greedy and sampled, on every tiny test
// model and on SmolLM2. Draft heads here are random (untrained), so acceptance comes mostly from
// n-gram branches; the tests assert that drafts were accepted, so tree verification, acceptance
// and KV compaction are really exercised, not just the bonus-token path.
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
#include "tests/common/default_model.h"
#include "tests/common/fixtures.h"

namespace ts {
namespace {

namespace fs = std::filesystem;

struct RunResult {
  std::vector<int32_t> tokens;
  DecodeCounters counters;
};

class LosslessTest : public ::testing::Test {
 protected:
  void Load(const std::string& path) {
    StatusOr<Model> model = LoadModel(path, /*require_tokenizer=*/false);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::make_unique<Model>(std::move(*model));
    heads_path_ = (fs::temp_directory_path() /
                   ("ts_lossless_heads_" + std::to_string(getpid()) + ".safetensors"))
                      .string();
    ASSERT_TRUE(WriteRandomHeads(heads_path_, model_->config().hidden_size, /*seed=*/11).ok());
    backend_ = MakeCpuBackend(2);
  }
  void TearDown() override {
    if (!heads_path_.empty()) fs::remove(heads_path_);
  }

  RunResult Generate(bool tokenswift, const std::vector<int32_t>& prompt, const SamplingParams& p,
                     int64_t n) {
    TokenSwiftOptions options;
    auto cache =
        KvCache::Create(model_->config(), prompt.size() + n + options.tree.max_nodes, DType::kF32);
    EXPECT_TRUE(cache.ok());
    Transformer t(model_->config(), model_->weights(), backend_.get(), 64);
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

  void ExpectSameStream(const std::vector<int32_t>& prompt, const SamplingParams& p, int64_t n,
                        bool expect_accepted) {
    const RunResult ar = Generate(false, prompt, p, n);
    const RunResult tsw = Generate(true, prompt, p, n);
    ASSERT_EQ(ar.tokens.size(), static_cast<size_t>(n));
    ASSERT_EQ(tsw.tokens.size(), ar.tokens.size());
    for (size_t i = 0; i < ar.tokens.size(); ++i) {
      ASSERT_EQ(tsw.tokens[i], ar.tokens[i]) << "first difference at generated token " << i;
    }
    EXPECT_LT(tsw.counters.steps, ar.counters.steps + 1);
    if (expect_accepted) EXPECT_GT(tsw.counters.accepted, 0) << "no draft was ever accepted";
  }

  static SamplingParams Greedy() {
    SamplingParams p;
    p.temperature = 0;
    p.penalty = 1;
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
};

class TinyLosslessTest : public LosslessTest, public ::testing::WithParamInterface<std::string> {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ts_lossless_" + GetParam());
    fs::remove_all(dir_);
    auto preset = FindTestModelPreset(GetParam());
    ASSERT_TRUE(preset.ok());
    ASSERT_TRUE(WriteTestModel(*preset, DType::kF32, dir_.string()).ok());
    Load(dir_.string());
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

TEST_P(TinyLosslessTest, GreedyStreamEqualsAr) { ExpectSameStream(Prompt(), Greedy(), 400, true); }

TEST_P(TinyLosslessTest, SampledStreamEqualsAr) {
  ExpectSameStream(Prompt(), Sampled(3, 1024), 400, false);
  ExpectSameStream(Prompt(), Sampled(4, 16), 400, false);  // window shorter than the stream
}

INSTANTIATE_TEST_SUITE_P(Presets, TinyLosslessTest,
                         ::testing::Values("llama-mha", "llama-gqa-llama3", "qwen2-yarn",
                                           "llama-gqa-3kv"),
                         testing_fixtures::CaseName());

class SmolLM2LosslessTest : public LosslessTest {
 protected:
  void SetUp() override {
    const std::string path = testing_paths::DefaultModelPath();
    if (path.empty()) GTEST_SKIP() << "default model not found (run scripts/fetch-model.sh)";
    Load(path);
  }
  std::vector<int32_t> Prompt() const {
    return {504, 3575, 282, 4649, 314};  // "The capital of France is"
  }
};

TEST_F(SmolLM2LosslessTest, GreedyStreamEqualsAr) {
  ExpectSameStream(Prompt(), Greedy(), 300, true);
}

TEST_F(SmolLM2LosslessTest, SampledStreamEqualsAr) {
  ExpectSameStream(Prompt(), Sampled(42, 1024), 300, false);
}

}  // namespace
}  // namespace ts
