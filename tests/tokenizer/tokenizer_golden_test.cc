// Token ids against independent references (tests/fixtures/tokenizer/golden_ids.json, written by
// scripts/make_tokenizer_fixtures.py): HF `tokenizers` for the tokenizer.json files, llama.cpp
// for the GGUF vocabularies (the real, full SmolLM2 vocabulary: tokenizer_real_vocab_test.cc).
// One differing id fails the test.
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/tokenizer/tokenizer_test_util.h"

namespace ts {
namespace {

using testing::CaseText;
using testing::FixturePath;
using testing::LoadVocabJson;
using testing::ReadJsonOrDie;
using testing::SameIds;

const nlohmann::json& Golden() {
  static const auto* const kGolden =
      new nlohmann::json(ReadJsonOrDie(FixturePath("golden_ids.json")));
  return *kGolden;
}

void CheckCases(const Tokenizer& tokenizer, const nlohmann::json& cases, int* checked) {
  for (const auto& c : cases) {
    SCOPED_TRACE(c["name"].get<std::string>() +
                 (c["add_special"].get<bool>() ? " add_special" : ""));
    const std::vector<int32_t> expected = c["ids"].get<std::vector<int32_t>>();
    EXPECT_TRUE(SameIds(expected, tokenizer.Encode(CaseText(c), c["add_special"].get<bool>())));
    ++*checked;
  }
}

TEST(TokenizerGolden, HfTokenizerJson_MatchesHfTokenizersIdForId) {
  int checked = 0;
  ASSERT_EQ(Golden()["hf"].size(), 4u);
  for (const auto& entry : Golden()["hf"]) {
    const std::string file = entry["file"].get<std::string>();
    SCOPED_TRACE(file);
    auto tokenizer = LoadHfTokenizer(FixturePath(file));
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    CheckCases(**tokenizer, entry["cases"], &checked);
  }
  EXPECT_GT(checked, 60);
}

TEST(TokenizerGolden, GgufVocab_MatchesLlamaCppIdForId) {
  int checked = 0;
  ASSERT_EQ(Golden()["gguf"].size(), 5u);
  for (const auto& entry : Golden()["gguf"]) {
    const std::string pre = entry["pre"].get<std::string>();
    SCOPED_TRACE(entry["vocab"].get<std::string>() + " pre=" + pre);
    VocabData vocab = LoadVocabJson(FixturePath(entry["vocab"].get<std::string>()));
    vocab.pre = pre;
    vocab.add_bos = entry["add_bos"].get<bool>();
    auto tokenizer = MakeGgufTokenizer(vocab, "test.gguf");
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status();
    CheckCases(**tokenizer, entry["cases"], &checked);
  }
  EXPECT_GT(checked, 100);
}

}  // namespace
}  // namespace ts
