// Helpers shared by the tokenizer tests: fixture files, the vocabulary JSON the fixture script
// writes (what a GGUF file's tokenizer.ggml.* keys hold), and id-list comparison.
#pragma once

#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/tokenizer/vocab.h"

namespace ts::testing {

inline std::string FixturePath(const std::string& name) {
  return std::string(TS_FIXTURES_DIR) + "/tokenizer/" + name;
}

inline std::string ReadFileOrDie(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  EXPECT_TRUE(in.good()) << "cannot open " << path;
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline nlohmann::json ReadJsonOrDie(const std::string& path) {
  return nlohmann::json::parse(ReadFileOrDie(path));
}

inline std::string HexToBytes(const std::string& hex) {
  std::string out;
  for (size_t i = 0; i + 1 < hex.size(); i += 2) {
    out.push_back(static_cast<char>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  }
  return out;
}

inline VocabData LoadVocabJson(const std::string& path) {
  const nlohmann::json j = ReadJsonOrDie(path);
  VocabData v;
  v.model = j.at("model").get<std::string>();
  v.pre = j.at("pre").get<std::string>();
  v.tokens = j.at("tokens").get<std::vector<std::string>>();
  v.token_types = j.at("token_types").get<std::vector<int32_t>>();
  v.scores = j.at("scores").get<std::vector<float>>();
  v.merges = j.at("merges").get<std::vector<std::string>>();
  v.bos_id = j.at("bos_id").get<int32_t>();
  v.eos_id = j.at("eos_id").get<int32_t>();
  v.unk_id = j.at("unk_id").get<int32_t>();
  v.pad_id = j.at("pad_id").get<int32_t>();
  v.add_bos = j.at("add_bos").get<bool>();
  v.add_space_prefix = j.at("add_space_prefix").get<bool>();
  return v;
}

// The text of one golden case: inline, hex bytes, or a fixture file.
inline std::string CaseText(const nlohmann::json& c) {
  if (c.contains("file")) return ReadFileOrDie(FixturePath(c["file"].get<std::string>()));
  if (c.contains("hex")) return HexToBytes(c["hex"].get<std::string>());
  return c.at("text").get<std::string>();
}

// Fails on the first differing id, showing where.
inline ::testing::AssertionResult SameIds(const std::vector<int32_t>& expected,
                                          const std::vector<int32_t>& actual) {
  const size_t n = std::min(expected.size(), actual.size());
  for (size_t i = 0; i < n; ++i) {
    if (expected[i] != actual[i]) {
      return ::testing::AssertionFailure()
             << "first difference at index " << i << ": expected " << expected[i] << ", got "
             << actual[i] << " (lengths " << expected.size() << " vs " << actual.size() << ")";
    }
  }
  if (expected.size() != actual.size()) {
    return ::testing::AssertionFailure()
           << "lengths differ: expected " << expected.size() << ", got " << actual.size();
  }
  return ::testing::AssertionSuccess();
}

}  // namespace ts::testing
