// Bad tokenizer.json files and GGUF vocabularies give BadInput naming the file and the field.
#include <filesystem>
#include <fstream>
#include <string>

#include "gtest/gtest.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/tokenizer/tokenizer_test_util.h"

namespace ts {
namespace {

std::string WriteTemp(const std::string& name, const std::string& content) {
  const std::filesystem::path dir = std::filesystem::path(TS_BINARY_DIR) / "tokenizer_test_tmp";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / name).string();
  std::ofstream(path, std::ios::binary) << content;
  return path;
}

// A tiny valid byte-level tokenizer.json with `model` and `extra` top-level fields spliced in.
std::string TinyJson(const std::string& model, const std::string& extra = "") {
  return R"({"version":"1.0","added_tokens":[],"normalizer":null,)"
         R"("pre_tokenizer":{"type":"ByteLevel","add_prefix_space":false,"use_regex":true},)"
         R"("post_processor":null,"decoder":{"type":"ByteLevel"},)" +
         extra + R"("model":)" + model + "}";
}
const char* kGoodModel = R"({"type":"BPE","vocab":{"a":0,"b":1,"ab":2},"merges":["a b"]})";

void ExpectBadInput(const std::string& name, const std::string& content, const std::string& field) {
  SCOPED_TRACE(name);
  const std::string path = WriteTemp(name, content);
  auto t = LoadHfTokenizer(path);
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument) << t.status();
  EXPECT_NE(t.status().message().find(name), std::string::npos) << t.status();
  EXPECT_NE(t.status().message().find(field), std::string::npos) << t.status();
}

TEST(TokenizerErrors, TinyValidFileLoadsAndMerges) {
  auto t = LoadHfTokenizer(WriteTemp("good.json", TinyJson(kGoodModel)));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ((*t)->Encode("ab", false), std::vector<int32_t>{2});
}

TEST(TokenizerErrors, BadTokenizerJson_IsBadInputNamingFileAndField) {
  ExpectBadInput("no_model.json", R"({"pre_tokenizer":{"type":"ByteLevel"},"normalizer":null})",
                 "'model'");
  ExpectBadInput("wordpiece.json", TinyJson(R"({"type":"WordPiece","vocab":{"a":0}})"),
                 "'model.type'");
  ExpectBadInput("merge_oov.json",
                 TinyJson(R"({"type":"BPE","vocab":{"a":0,"b":1},"merges":["a b"]})"),
                 "'model.merges[0]'");
  ExpectBadInput("merge_format.json",
                 TinyJson(R"({"type":"BPE","vocab":{"a":0},"merges":["abc"]})"),
                 "'model.merges[0]'");
  ExpectBadInput("merge_type.json", TinyJson(R"({"type":"BPE","vocab":{"a":0},"merges":[7]})"),
                 "'model.merges[0]'");
  ExpectBadInput("no_vocab.json", TinyJson(R"({"type":"BPE","merges":[]})"), "'model.vocab'");
  ExpectBadInput("nfkc.json",
                 R"({"normalizer":{"type":"NFKC"},"model":)" + std::string(kGoodModel) + "}",
                 "'normalizer'");
  ExpectBadInput("seq_lowercase.json",
                 R"({"normalizer":{"type":"Sequence","normalizers":[{"type":"NFC"},)"
                 R"({"type":"Lowercase"}]},"model":)" +
                     std::string(kGoodModel) + "}",
                 "'normalizer.normalizers[1]'");
  ExpectBadInput(
      "no_byte_level.json",
      R"({"pre_tokenizer":{"type":"Whitespace"},"model":)" + std::string(kGoodModel) + "}",
      "'pre_tokenizer'");
  ExpectBadInput("bad_regex.json",
                 R"({"pre_tokenizer":{"type":"Sequence","pretokenizers":[)"
                 R"({"type":"Split","pattern":{"Regex":"(unclosed"},"behavior":"Isolated"},)"
                 R"({"type":"ByteLevel","use_regex":false}]},"model":)" +
                     std::string(kGoodModel) + "}",
                 "'pre_tokenizer.pretokenizers[0].pattern'");
  ExpectBadInput("lstrip.json",
                 R"({"added_tokens":[{"id":3,"content":"<x>","lstrip":true}],)"
                 R"("pre_tokenizer":{"type":"ByteLevel"},"model":)" +
                     std::string(kGoodModel) + "}",
                 "'added_tokens[0].lstrip'");
  ExpectBadInput("roberta.json",
                 TinyJson(kGoodModel)
                     .replace(TinyJson(kGoodModel).find("\"post_processor\":null"), 21,
                              R"("post_processor":{"type":"RobertaProcessing"})"),
                 "'post_processor'");
  ExpectBadInput("not_json.json", "{\"model\": ", "expected valid JSON");
}

TEST(TokenizerErrors, MissingFile_IsNotFound) {
  auto t = LoadHfTokenizer(std::string(TS_BINARY_DIR) + "/no/such/tokenizer.json");
  ASSERT_FALSE(t.ok());
  EXPECT_EQ(t.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ExitCodeFor(t.status()), 2);
}

TEST(TokenizerErrors, BadGgufVocab_IsBadInputNamingSourceAndKey) {
  VocabData good;
  good.model = "gpt2";
  good.pre = "smollm";
  good.tokens = {"a", "b", "ab"};
  good.token_types = {1, 1, 1};
  good.merges = {"a b"};
  ASSERT_TRUE(MakeGgufTokenizer(good, "m.gguf").ok());

  const auto expect_bad = [](VocabData v, const std::string& key) {
    auto t = MakeGgufTokenizer(std::move(v), "m.gguf");
    ASSERT_FALSE(t.ok()) << key;
    EXPECT_EQ(t.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(t.status().message().find("m.gguf"), std::string::npos) << t.status();
    EXPECT_NE(t.status().message().find(key), std::string::npos) << t.status();
  };
  VocabData v = good;
  v.model = "bert";
  expect_bad(v, "tokenizer.ggml.model");
  v = good;
  v.pre = "no-such-pre";
  expect_bad(v, "tokenizer.ggml.pre");
  v = good;
  v.token_types = {1};
  expect_bad(v, "tokenizer.ggml.token_type");
  v = good;
  v.merges = {"ab"};
  expect_bad(v, "tokenizer.ggml.merges[0]");
  v = good;
  v.bos_id = 99;
  expect_bad(v, "bos_token_id");
  v = good;
  v.model = "llama";
  expect_bad(v, "tokenizer.ggml.scores");
}

}  // namespace
}  // namespace ts
