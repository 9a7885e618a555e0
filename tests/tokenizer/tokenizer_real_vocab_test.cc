// The full SmolLM2-135M-Instruct vocabulary (49152 tokens, 48900 merges), loaded from the real
// GGUF the way the engine loads it, against llama.cpp's ids (smollm2_gguf_ids.json, written by
// scripts/make_tokenizer_fixtures.py). The GGUF is TS_MODEL_PATH or the cache path that
// scripts/fetch-model.sh fills; without it these tests are skipped.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/engine/model.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/common/default_model.h"
#include "tests/tokenizer/tokenizer_test_util.h"

namespace ts {
namespace {

using testing::CaseText;
using testing::FixturePath;
using testing::ReadFileOrDie;
using testing::ReadJsonOrDie;
using testing::SameIds;

constexpr const char* kModelFile = testing_paths::kDefaultModelFile;

std::string ModelPath() { return testing_paths::DefaultModelPath(); }

class TokenizerRealVocab : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string path = ModelPath();
    if (path.empty()) return;
    auto model = LoadModel(path, /*require_tokenizer=*/true);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = new Model(std::move(*model));
  }
  static void TearDownTestSuite() {
    delete model_;
    model_ = nullptr;
  }
  void SetUp() override {
    if (model_ == nullptr) {
      GTEST_SKIP() << "no " << kModelFile << " (set TS_MODEL_PATH, or run "
                   << "scripts/fetch-model.sh, which scripts/run-tests.sh does)";
    }
    const int64_t want = Golden()["vocab_size"].get<int64_t>();
    ASSERT_EQ(tokenizer().VocabSize(), want)
        << "the model at TS_MODEL_PATH is not SmolLM2 (the golden ids are for its vocabulary)";
  }
  static const Tokenizer& tokenizer() { return *model_->tokenizer; }
  static const nlohmann::json& Golden() {
    static const auto* const kGolden =
        new nlohmann::json(ReadJsonOrDie(FixturePath("smollm2_gguf_ids.json")));
    return *kGolden;
  }
  // A case's text: inline, hex, or a file relative to tests/fixtures/.
  static std::string Text(const nlohmann::json& c) {
    if (c.contains("file")) {
      return ReadFileOrDie(std::string(TS_FIXTURES_DIR) + "/" + c["file"].get<std::string>());
    }
    return CaseText(c);
  }

  static Model* model_;
};
Model* TokenizerRealVocab::model_ = nullptr;

TEST_F(TokenizerRealVocab, FixtureTexts_MatchLlamaCppIdForId) {
  int checked = 0;
  for (const auto& c : Golden()["cases"]) {
    SCOPED_TRACE(c["name"].get<std::string>() +
                 (c["add_special"].get<bool>() ? " add_special" : ""));
    const std::vector<int32_t> expected = c["ids"].get<std::vector<int32_t>>();
    EXPECT_TRUE(SameIds(expected, tokenizer().Encode(Text(c), c["add_special"].get<bool>())));
    ++checked;
  }
  EXPECT_GE(checked, 20);
}

TEST_F(TokenizerRealVocab, DecodeOfEncode_GivesFixtureTextsBack) {
  for (const char* file : {"tokenizer/varied.txt", "text/gpl3_excerpt.txt"}) {
    SCOPED_TRACE(file);
    const std::string text = ReadFileOrDie(std::string(TS_FIXTURES_DIR) + "/" + file);
    ASSERT_FALSE(text.empty());
    EXPECT_EQ(tokenizer().Decode(tokenizer().Encode(text, false)), text);
  }
}

// About 1 MB of English. TS_TOKENIZER_BENCH_TEXT names a file to use instead (a larger corpus of
// distinct words measures more BPE and fewer word-cache hits).
std::string MegabyteOfEnglish(std::string* source) {
  std::string base;
  if (const char* p = std::getenv("TS_TOKENIZER_BENCH_TEXT"); p != nullptr && *p != '\0') {
    base = ReadFileOrDie(p);
    *source = p;
  } else {
    base = ReadFileOrDie(std::string(TS_FIXTURES_DIR) + "/text/gpl3_excerpt.txt");
    *source = "gpl3_excerpt.txt, repeated";
  }
  if (base.empty()) return base;
  std::string out;
  while (out.size() < (1 << 20)) out += base;
  return out;
}

TEST_F(TokenizerRealVocab, EncodeSpeed_MegabyteOfEnglish) {
  std::string source;
  const std::string text = MegabyteOfEnglish(&source);
  ASSERT_FALSE(text.empty());
  std::vector<int32_t> ids;
  double best = 1e9;
  for (int run = 0; run < 3; ++run) {
    const auto start = std::chrono::steady_clock::now();
    ids = tokenizer().Encode(text, false);
    best = std::min(
        best, std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
  }
  std::printf(
      "SmolLM2 vocab, %s: %zu bytes -> %zu tokens, best of 3 %.3f s (%.1f MB/s, %.0f "
      "tokens/s)\n",
      source.c_str(), text.size(), ids.size(), best, text.size() / best / 1e6, ids.size() / best);
  EXPECT_EQ(tokenizer().Decode(ids), text);
  EXPECT_LT(best, 20.0);  // generous: sanitizer and debug builds run here too
}

}  // namespace
}  // namespace ts
