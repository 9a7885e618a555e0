// Reading test fixtures (tests/fixtures/...) and naming parameterised tests after them.
#pragma once

#include <algorithm>
#include <cctype>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "nlohmann/json.hpp"

namespace ts::testing_fixtures {

inline std::string ReadBytes(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A little-endian float32 file.
inline std::vector<float> ReadF32(const std::filesystem::path& path) {
  const std::string bytes = ReadBytes(path);
  std::vector<float> out(bytes.size() / sizeof(float));
  std::memcpy(out.data(), bytes.data(), out.size() * sizeof(float));
  return out;
}

inline nlohmann::json ReadJson(const std::filesystem::path& path) {
  return nlohmann::json::parse(ReadBytes(path));
}

// A fixture case name ("llama-mha.bf16") as a GoogleTest parameter name ("llama_mha_bf16").
struct CaseName {
  template <typename Info>
  std::string operator()(const Info& info) const {
    std::string name = info.param;
    std::replace_if(
        name.begin(), name.end(),
        [](char c) { return !std::isalnum(static_cast<unsigned char>(c)); }, '_');
    return name;
  }
};

}  // namespace ts::testing_fixtures
