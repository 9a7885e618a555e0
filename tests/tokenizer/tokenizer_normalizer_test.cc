// NFC normalization (HF tokenizer.json "normalizer": NFC or a Sequence of NFC). The ids against
// HF `tokenizers` are in golden_ids.json (qwen2_nfc_tokenizer.json); these tests hold the
// normalizer itself and the loader's handling of the Sequence form.
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "runtime/tokenizer/normalizer.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/tokenizer/tokenizer_test_util.h"

namespace ts {
namespace {

using testing::FixturePath;
using testing::ReadJsonOrDie;
using tok::Normalizer;

const Normalizer kNfc(Normalizer::Kind::kNfc);

std::string Nfc(const Normalizer& n, const std::string& text) {
  std::string storage;
  return std::string(n.Apply(text, &storage));
}

TEST(TokenizerNormalizer, Nfc_ComposesDecomposedCharacters) {
  EXPECT_EQ(Nfc(kNfc, "cafe\u0301"), "caf\u00e9");
  EXPECT_EQ(Nfc(kNfc, "A\u030a \u212b"), "\u00c5 \u00c5");  // Angstrom sign -> U+00C5
  EXPECT_EQ(Nfc(kNfc, "a\u0302\u0323"), "\u1ead");          // reordered, then composed
  EXPECT_EQ(Nfc(kNfc, "\u1112\u1161\u11ab"), "\ud55c");     // Hangul jamo -> syllable
  EXPECT_EQ(Nfc(kNfc, "\ufb01\u2460"), "\ufb01\u2460");     // compatibility forms stay
}

TEST(TokenizerNormalizer, TextAlreadyInNfc_IsReturnedWithoutACopy) {
  std::string storage;
  for (const std::string text : {"plain ascii", "caf\u00e9 \u65e5\u672c", ""}) {
    const std::string_view out = kNfc.Apply(text, &storage);
    EXPECT_EQ(out.data(), text.data());
    EXPECT_EQ(out, text);
  }
  const Normalizer none;
  const std::string decomposed = "e\u0301";
  EXPECT_EQ(none.Apply(decomposed, &storage).data(), decomposed.data());
}

TEST(TokenizerNormalizer, PiecewiseNormalization_MatchesWholeText) {
  // Pieces cut only before a code point nothing can combine with: the same result as one pass,
  // even where a combining sequence straddles the nominal piece size.
  std::string text;
  for (int i = 0; i < 200; ++i) {
    text += (i % 3 == 0)   ? "cafe\u0301 "
            : (i % 3 == 1) ? "a\u0302\u0323\u0301 "
                           : "\u1112\u1161\u11ab";
  }
  const std::string whole = Nfc(kNfc, text);
  for (size_t piece : {1, 2, 5, 7, 13, 64}) {
    SCOPED_TRACE(piece);
    EXPECT_EQ(Nfc(Normalizer(Normalizer::Kind::kNfc, piece), text), whole);
  }
}

// qwen2_nfc_tokenizer.json with its normalizer replaced, written beside the build.
std::string WriteWithNormalizer(const std::string& name, const nlohmann::json& normalizer) {
  nlohmann::json root = ReadJsonOrDie(FixturePath("qwen2_nfc_tokenizer.json"));
  root["normalizer"] = normalizer;
  const std::filesystem::path dir = std::filesystem::path(TS_BINARY_DIR) / "tokenizer_test_tmp";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << root.dump();
  return path;
}

TEST(TokenizerNormalizer, SequenceOfNfc_EncodesLikeNfc) {
  auto nfc = LoadHfTokenizer(FixturePath("qwen2_nfc_tokenizer.json"));
  ASSERT_TRUE(nfc.ok()) << nfc.status();
  auto seq = LoadHfTokenizer(WriteWithNormalizer(
      "seq_nfc.json",
      nlohmann::json::parse(R"({"type":"Sequence","normalizers":[{"type":"NFC"}]})")));
  ASSERT_TRUE(seq.ok()) << seq.status();
  auto none = LoadHfTokenizer(WriteWithNormalizer("no_normalizer.json", nullptr));
  ASSERT_TRUE(none.ok()) << none.status();

  const std::string decomposed = "re\u0301sume\u0301 cafe\u0301 <|im_start|>e\u0301";
  const std::string composed = "r\u00e9sum\u00e9 caf\u00e9 <|im_start|>\u00e9";
  EXPECT_EQ((*seq)->Encode(decomposed, false), (*nfc)->Encode(decomposed, false));
  EXPECT_EQ((*nfc)->Encode(decomposed, false), (*nfc)->Encode(composed, false));
  EXPECT_NE((*none)->Encode(decomposed, false), (*nfc)->Encode(decomposed, false));
  // Decode gives the normalized text back, not the input.
  EXPECT_EQ((*nfc)->Decode((*nfc)->Encode(decomposed, false)), composed);
  EXPECT_EQ((*none)->Decode((*none)->Encode(decomposed, false)), decomposed);
}

TEST(TokenizerNormalizer, InvalidUtf8_IsReplacedBeforeNormalizing) {
  auto nfc = LoadHfTokenizer(FixturePath("qwen2_nfc_tokenizer.json"));
  ASSERT_TRUE(nfc.ok()) << nfc.status();
  // A bad byte between a base letter and its mark: U+FFFD first, so nothing composes across it.
  const std::string bad = "e\xff\xcc\x81 e\xcc\x81";
  EXPECT_EQ((*nfc)->Decode((*nfc)->Encode(bad, false)), "e\uFFFD\u0301 \u00e9");
}

}  // namespace
}  // namespace ts
