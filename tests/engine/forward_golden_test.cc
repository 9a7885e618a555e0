// The forward pass against golden logits from HF transformers (tests/fixtures/golden, made by
// scripts/make_golden_logits.py from the make-test-model presets), AR greedy decoding against
// HF's greedy continuation, and the model-level consequence of batch invariance: a prompt's
// logits are bit-identical whether it is prefilled in one batch or token by token.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"
#include "runtime/decode/ar_decoder.h"
#include "runtime/engine/generator.h"
#include "runtime/engine/model.h"
#include "runtime/model/test_model.h"
#include "runtime/model/transformer.h"
#include "tests/common/fixtures.h"

namespace ts {
namespace {

using testing_fixtures::ReadBytes;
using testing_fixtures::ReadF32;
using testing_fixtures::ReadJson;

namespace fs = std::filesystem;

const fs::path kGolden = fs::path(TS_FIXTURES_DIR) / "golden";

// max |a - b| / max |b| over one row.
double RowRelError(const float* a, const float* b, int64_t n) {
  double max_diff = 0, max_ref = 0;
  for (int64_t i = 0; i < n; ++i) {
    max_diff = std::max(max_diff, std::fabs(static_cast<double>(a[i]) - b[i]));
    max_ref = std::max(max_ref, std::fabs(static_cast<double>(b[i])));
  }
  return max_diff / max_ref;
}

struct Case {
  std::string name;  // "llama-mha" or "llama-mha.bf16"
  nlohmann::json golden;
  std::vector<float> logits;
  Model model;
};

class ForwardGoldenTest : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    c_.name = GetParam();
    c_.golden = ReadJson(kGolden / (c_.name + ".json"));
    c_.logits = ReadF32(kGolden / c_.golden["logits_file"].get<std::string>());
    StatusOr<TestModelPreset> preset = FindTestModelPreset(c_.golden["preset"].get<std::string>());
    ASSERT_TRUE(preset.ok()) << preset.status();
    StatusOr<DType> dtype = ParseTestModelDType(c_.golden["dtype"].get<std::string>());
    ASSERT_TRUE(dtype.ok());
    dir_ = fs::temp_directory_path() /
           ("ts_forward_golden_" + c_.name + "_" + std::to_string(getpid()));
    fs::remove_all(dir_);
    ASSERT_TRUE(WriteTestModel(*preset, *dtype, dir_.string()).ok());
    StatusOr<Model> model = LoadModel(dir_.string(), /*require_tokenizer=*/false);
    ASSERT_TRUE(model.ok()) << model.status();
    c_.model = std::move(*model);
    backend_ = MakeCpuBackend(2);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Logits of every position of `ids`, prefilled in batches of `batch` tokens.
  std::vector<float> Prefill(const std::vector<int32_t>& ids, int64_t batch, DType kv_dtype) {
    const ModelConfig& config = c_.model.config();
    const int64_t n = static_cast<int64_t>(ids.size());
    auto cache = KvCache::Create(config, n, kv_dtype);
    EXPECT_TRUE(cache.ok());
    Transformer t(config, c_.model.weights(), backend_.get(), batch);
    std::vector<float> logits(n * config.vocab_size);
    std::vector<int32_t> pos(n), prefix(n), rows(n);
    for (int64_t i = 0; i < n; ++i) {
      pos[i] = static_cast<int32_t>(i);
      prefix[i] = static_cast<int32_t>(i + 1);
    }
    for (int64_t s = 0; s < n; s += batch) {
      const int64_t m = std::min(batch, n - s);
      for (int64_t i = 0; i < m; ++i) rows[i] = static_cast<int32_t>(i);
      ForwardBatch fb;
      fb.tokens = std::span<const int32_t>(ids.data() + s, m);
      fb.positions = std::span<const int32_t>(pos.data() + s, m);
      fb.slots = fb.positions;
      fb.mask.prefix_len = prefix.data() + s;
      fb.logits_rows = std::span<const int32_t>(rows.data(), m);
      Status st = t.Forward(fb, **cache, logits.data() + s * config.vocab_size);
      EXPECT_TRUE(st.ok()) << st;
    }
    return logits;
  }

  Case c_;
  fs::path dir_;
  std::unique_ptr<Backend> backend_;
};

TEST_P(ForwardGoldenTest, RopeFrequenciesMatchTransformers) {
  const RopeTable rope = ComputeRope(c_.model.config());
  const auto& hf = c_.golden["hf_rope"];
  const std::vector<float> inv = hf["inv_freq"].get<std::vector<float>>();
  ASSERT_EQ(rope.inv_freq.size(), inv.size());
  for (size_t j = 0; j < inv.size(); ++j) {
    EXPECT_NEAR(rope.inv_freq[j], inv[j], 1e-6 * inv[j]) << "pair " << j;
  }
  EXPECT_NEAR(rope.mscale, hf["attention_scaling"].get<double>(), 1e-6);
}

TEST_P(ForwardGoldenTest, LogitsMatchTransformersWithin1e4) {
  const int64_t vocab = c_.model.config().vocab_size;
  for (const auto& prompt : c_.golden["prompts"]) {
    const auto ids = prompt["token_ids"].get<std::vector<int32_t>>();
    const int64_t offset = prompt["logits_row_offset"].get<int64_t>();
    const std::vector<float> ours = Prefill(ids, 128, DType::kF32);
    for (size_t r = 0; r < ids.size(); ++r) {
      const double err =
          RowRelError(ours.data() + r * vocab, c_.logits.data() + (offset + r) * vocab, vocab);
      ASSERT_LE(err, 1e-4) << c_.name << " prompt of " << ids.size() << " tokens, position " << r;
    }
  }
}

TEST_P(ForwardGoldenTest, Bf16KvCacheStaysClose) {
  const int64_t vocab = c_.model.config().vocab_size;
  const auto& prompt = c_.golden["prompts"].back();
  const auto ids = prompt["token_ids"].get<std::vector<int32_t>>();
  const int64_t offset = prompt["logits_row_offset"].get<int64_t>();
  const std::vector<float> ours = Prefill(ids, 128, DType::kBF16);
  double worst = 0;
  for (size_t r = 0; r < ids.size(); ++r) {
    worst = std::max(worst, RowRelError(ours.data() + r * vocab,
                                        c_.logits.data() + (offset + r) * vocab, vocab));
  }
  // bf16 keeps 8 bits of mantissa: K and V are rounded by up to 2^-9 relative.
  EXPECT_LE(worst, 2e-2);
  EXPECT_GT(worst, 0.0) << "a bf16 cache that matches f32 exactly is not storing bf16";
}

TEST_P(ForwardGoldenTest, PrefillIsBitIdenticalAtAnyBatchSize) {
  const auto ids = c_.golden["prompts"].back()["token_ids"].get<std::vector<int32_t>>();
  const std::vector<float> one_batch = Prefill(ids, 128, DType::kF32);
  const std::vector<float> token_by_token = Prefill(ids, 1, DType::kF32);
  const std::vector<float> odd_chunks = Prefill(ids, 17, DType::kF32);
  ASSERT_EQ(one_batch.size(), token_by_token.size());
  EXPECT_EQ(0, std::memcmp(one_batch.data(), token_by_token.data(), one_batch.size() * 4));
  EXPECT_EQ(0, std::memcmp(one_batch.data(), odd_chunks.data(), one_batch.size() * 4));
}

TEST_P(ForwardGoldenTest, GreedyDecodingMatchesTransformers) {
  const ModelConfig& config = c_.model.config();
  for (const auto& prompt : c_.golden["prompts"]) {
    const auto ids = prompt["token_ids"].get<std::vector<int32_t>>();
    const auto expected = prompt["greedy"]["token_ids"].get<std::vector<int32_t>>();
    const auto margins = prompt["greedy"]["top2_margins"].get<std::vector<double>>();
    auto cache = KvCache::Create(config, ids.size() + expected.size(), DType::kF32);
    ASSERT_TRUE(cache.ok());
    Transformer t(config, c_.model.weights(), backend_.get(), 64);
    SamplingParams greedy;
    greedy.temperature = 0;
    greedy.penalty = 1;
    ArDecoder decoder(&t, cache->get(), greedy);
    GenerationLimits limits;
    limits.max_new_tokens = static_cast<int64_t>(expected.size());
    limits.ignore_eos = true;
    StatusOr<GenerationResult> result = Generate(decoder, ids, limits, nullptr);
    ASSERT_TRUE(result.ok()) << result.status();
    // Identical until HF's own choice was a near-tie (float32 noise may flip it).
    for (size_t i = 0; i < expected.size(); ++i) {
      if (margins[i] < 1e-4) break;
      ASSERT_EQ(result->tokens[i], expected[i]) << c_.name << " greedy token " << i;
    }
  }
}

std::vector<std::string> Cases() {
  return ReadJson(kGolden / "index.json")["cases"].get<std::vector<std::string>>();
}

INSTANTIATE_TEST_SUITE_P(Presets, ForwardGoldenTest, ::testing::ValuesIn(Cases()),
                         testing_fixtures::CaseName());

}  // namespace
}  // namespace ts
