// Round trips, invalid UTF-8, special-token bookkeeping and encode speed.
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/tokenizer/tokenizer_test_util.h"

namespace ts {
namespace {

using testing::FixturePath;
using testing::LoadVocabJson;
using testing::ReadFileOrDie;

std::unique_ptr<Tokenizer> Hf(const std::string& name) {
  auto t = LoadHfTokenizer(FixturePath(name));
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

std::unique_ptr<Tokenizer> Gguf(const std::string& vocab_file, const std::string& pre) {
  VocabData v = LoadVocabJson(FixturePath(vocab_file));
  v.pre = pre;
  auto t = MakeGgufTokenizer(std::move(v), "test.gguf");
  EXPECT_TRUE(t.ok()) << t.status();
  return t.ok() ? std::move(*t) : nullptr;
}

std::vector<std::unique_ptr<Tokenizer>> ByteLevelTokenizers() {
  std::vector<std::unique_ptr<Tokenizer>> all;
  for (const char* f : {"smollm_tokenizer.json", "llama3_tokenizer.json", "qwen2_tokenizer.json"}) {
    all.push_back(Hf(f));
  }
  for (const char* pre : {"smollm", "gpt2", "llama-bpe", "qwen2"}) {
    all.push_back(Gguf("gguf_gpt2_vocab.json", pre));
  }
  return all;
}

TEST(TokenizerRoundTrip, DecodeOfEncode_GivesVariedTextBack) {
  const std::string text = ReadFileOrDie(FixturePath("varied.txt"));
  for (const auto& t : ByteLevelTokenizers()) {
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->Decode(t->Encode(text, false)), text);
  }
  // SentencePiece with add_space_prefix (llama.cpp) puts a space before the text and after every
  // literal token; Decode gives those spaces back.
  auto spm = Gguf("gguf_llama_spm_vocab.json", "default");
  ASSERT_NE(spm, nullptr);
  const std::vector<std::string> literals = {"<|im_start|>", "<|im_end|>"};
  std::string spaced = " ";
  for (size_t pos = 0; pos < text.size();) {
    size_t matched = 0;
    for (const std::string& l : literals) {
      if (text.compare(pos, l.size(), l) == 0) matched = l.size();
    }
    spaced += text.substr(pos, matched ? matched : 1);
    pos += matched ? matched : 1;
    bool next_is_literal = pos == text.size();
    for (const std::string& l : literals) next_is_literal |= text.compare(pos, l.size(), l) == 0;
    if (matched && !next_is_literal) spaced += " ";
  }
  EXPECT_EQ(spm->Decode(spm->Encode(text, false)), spaced);
}

TEST(TokenizerInvalidUtf8, EachBadByteBecomesReplacementCharacter) {
  const std::string bad =
      "a\xff"
      "b\xe2\x82"
      "c\xed\xa0\x80"
      "d\xf0\x9f\x98";
  const std::string fffd = "\xEF\xBF\xBD";
  const std::string want =
      "a" + fffd + "b" + fffd + fffd + "c" + fffd + fffd + fffd + "d" + fffd + fffd + fffd;
  for (const auto& t : ByteLevelTokenizers()) {
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(t->Decode(t->Encode(bad, false)), want);
  }
}

TEST(TokenizerInvalidUtf8, SentencePieceKeepsRawBytesViaByteTokens) {
  auto spm = Gguf("gguf_llama_spm_vocab.json", "default");
  ASSERT_NE(spm, nullptr);
  // (A bad lead byte still claims the bytes its value announces, as in llama.cpp: keep the
  // U+2581 of a space out of their reach or it comes back as U+2581.)
  const std::string bad = "ab\x80 c\xffxyz d";
  EXPECT_EQ(spm->Decode(spm->Encode(bad, false)), " " + bad);
}

TEST(TokenizerSpecials, TemplateBosAndControlTokens) {
  auto llama3 = Hf("llama3_tokenizer.json");
  ASSERT_NE(llama3, nullptr);
  EXPECT_TRUE(llama3->AddBos());
  ASSERT_GE(llama3->BosId(), 0);
  EXPECT_EQ(llama3->TokenBytes(llama3->BosId()), "<|begin_of_text|>");
  EXPECT_TRUE(llama3->IsControl(llama3->BosId()));
  const std::vector<int32_t> with = llama3->Encode("hi", true);
  ASSERT_FALSE(with.empty());
  EXPECT_EQ(with.front(), llama3->BosId());
  EXPECT_EQ(std::vector<int32_t>(with.begin() + 1, with.end()), llama3->Encode("hi", false));

  auto smollm = Hf("smollm_tokenizer.json");
  ASSERT_NE(smollm, nullptr);
  EXPECT_FALSE(smollm->AddBos());
  EXPECT_EQ(smollm->Encode("<|im_start|>", false), std::vector<int32_t>{1});
  EXPECT_TRUE(smollm->IsControl(1));
  EXPECT_FALSE(smollm->IsControl(smollm->Encode("a", false).at(0)));
  EXPECT_EQ(smollm->TokenBytes(1), "<|im_start|>");

  // Qwen-style non-special added tokens: ids past the vocabulary, matched literally, not control.
  auto qwen = Hf("qwen2_tokenizer.json");
  ASSERT_NE(qwen, nullptr);
  const std::vector<int32_t> think = qwen->Encode("<think>", false);
  ASSERT_EQ(think.size(), 1u);
  EXPECT_GE(think[0], 4096);
  EXPECT_LT(think[0], qwen->VocabSize());
  EXPECT_FALSE(qwen->IsControl(think[0]));
  EXPECT_EQ(qwen->TokenBytes(think[0]), "<think>");
}

TEST(TokenizerLongInput, HugeWordsAndWhitespaceRunsRoundTrip) {
  const std::string spaces(100000, ' ');
  const std::string letters(100000, 'a');
  const std::string digits(30000, '7');
  for (const auto& t : ByteLevelTokenizers()) {
    ASSERT_NE(t, nullptr);
    for (const std::string* s : {&spaces, &letters, &digits}) {
      const std::string text = "x" + *s + "\ny";
      EXPECT_EQ(t->Decode(t->Encode(text, false)), text);
    }
  }
}

// About 1 MB of text with many distinct words (a repeated text would only measure the cache):
// pseudo-words of random letters, numbers, punctuation, and the varied fixture now and then.
std::string MakeMegabyteText() {
  const std::string base = ReadFileOrDie(FixturePath("varied.txt"));
  std::string out;
  uint64_t state = 12345;
  const auto next = [&state](uint64_t n) {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (state >> 33) % n;
  };
  while (out.size() < (1 << 20)) {
    for (int i = 0; i < 400; ++i) {
      const uint64_t len = 1 + next(9);
      for (uint64_t k = 0; k < len; ++k)
        out += static_cast<char>((k == 0 && next(8) == 0 ? 'A' : 'a') + next(26));
      if (next(10) == 0) out += std::to_string(next(1000000));
      out += next(12) == 0 ? ".\n" : next(9) == 0 ? ", " : " ";
    }
    out += base;
  }
  return out;
}

TEST(TokenizerSpeed, EncodesAMegabyteQuickly) {
  const std::string text = MakeMegabyteText();
  for (const char* f : {"smollm_tokenizer.json", "llama3_tokenizer.json"}) {
    auto t = Hf(f);
    ASSERT_NE(t, nullptr);
    const auto start = std::chrono::steady_clock::now();
    const std::vector<int32_t> ids = t->Encode(text, false);
    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("%s: %zu bytes -> %zu tokens in %.3f s (%.0f tokens/s)\n", f, text.size(),
                ids.size(), seconds, ids.size() / seconds);
    EXPECT_EQ(t->Decode(ids), text);
    EXPECT_LT(seconds, 20.0);  // generous: sanitizer and debug builds run here too
  }
}

}  // namespace
}  // namespace ts
