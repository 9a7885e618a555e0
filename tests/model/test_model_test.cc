// make-test-model presets: deterministic bytes, config.json fields that match the preset, and the
// generator still producing exactly the models the golden fixtures were computed from.
#include "runtime/model/test_model.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <string>

#include "common/hash_random.h"
#include "nlohmann/json.hpp"

namespace ts {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream ss;
  ss << file.rdbuf();
  return ss.str();
}

uint64_t Fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : s) h = (h ^ c) * 0x100000001b3ull;
  return h;
}

fs::path TempDir(const std::string& name) {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  fs::path dir = fs::temp_directory_path() / ("ts_test_model_" + std::string(info->name()) + "_" +
                                              name + "_" + std::to_string(getpid()));
  fs::remove_all(dir);
  return dir;
}

TEST(TestModel, PresetNamesAreUniqueAndFindable) {
  std::set<std::string> names;
  for (const TestModelPreset& p : TestModelPresets()) {
    EXPECT_TRUE(names.insert(p.name).second) << p.name;
    auto found = FindTestModelPreset(p.name);
    ASSERT_TRUE(found.ok()) << found.status();
    EXPECT_EQ(found->seed, p.seed);
  }
  for (const char* required : {"llama-mha", "llama-gqa-llama3", "qwen2-yarn", "llama-linear"}) {
    EXPECT_TRUE(names.count(required)) << required;
  }
}

TEST(TestModel, UnknownPresetAndDTypeAreBadInput) {
  auto preset = FindTestModelPreset("gpt2");
  EXPECT_EQ(preset.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(preset.status().message().find("llama-mha"), std::string_view::npos);
  EXPECT_EQ(ParseTestModelDType("q4_0").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*ParseTestModelDType("bf16"), DType::kBF16);
}

TEST(TestModel, TwoWritesGiveIdenticalBytes) {
  for (const TestModelPreset& p : TestModelPresets()) {
    for (DType dtype : {DType::kF32, DType::kBF16}) {
      const fs::path a = TempDir(p.name + "_a"), b = TempDir(p.name + "_b");
      ASSERT_TRUE(WriteTestModel(p, dtype, a.string()).ok());
      ASSERT_TRUE(WriteTestModel(p, dtype, b.string()).ok());
      for (const char* file : {"config.json", "generation_config.json", "model.safetensors"}) {
        const std::string bytes_a = ReadFile(a / file);
        EXPECT_FALSE(bytes_a.empty()) << p.name << " " << file;
        EXPECT_EQ(bytes_a, ReadFile(b / file)) << p.name << " " << file;
      }
      EXPECT_LT(fs::file_size(a / "model.safetensors"), 1u << 20) << p.name;
      fs::remove_all(a);
      fs::remove_all(b);
    }
  }
}

TEST(TestModel, ConfigJsonMatchesPreset) {
  for (const TestModelPreset& p : TestModelPresets()) {
    SCOPED_TRACE(p.name);
    const ModelConfig& c = p.config;
    const auto j = nlohmann::json::parse(TestModelConfigJson(p, DType::kBF16));
    EXPECT_EQ(j["model_type"], c.arch);
    EXPECT_EQ(j["architectures"][0], c.arch == "llama" ? "LlamaForCausalLM" : "Qwen2ForCausalLM");
    EXPECT_EQ(j["vocab_size"], c.vocab_size);
    EXPECT_EQ(j["hidden_size"], c.hidden_size);
    EXPECT_EQ(j["intermediate_size"], c.intermediate_size);
    EXPECT_EQ(j["num_hidden_layers"], c.n_layers);
    EXPECT_EQ(j["num_attention_heads"], c.n_heads);
    EXPECT_EQ(j["num_key_value_heads"], c.n_kv_heads);
    const int head_dim = j.contains("head_dim") ? j["head_dim"].get<int>()
                                                : static_cast<int>(c.hidden_size / c.n_heads);
    EXPECT_EQ(head_dim, c.head_dim);
    EXPECT_EQ(j["max_position_embeddings"], c.max_position);
    EXPECT_FLOAT_EQ(j["rms_norm_eps"].get<float>(), c.rms_eps);
    EXPECT_FLOAT_EQ(j["rope_theta"].get<float>(), c.rope_theta);
    EXPECT_EQ(j["tie_word_embeddings"], c.tie_embeddings);
    EXPECT_EQ(j["torch_dtype"], "bfloat16");
    EXPECT_EQ(j["bos_token_id"], c.bos_id);
    std::vector<int32_t> eos;
    if (j["eos_token_id"].is_array()) {
      eos = j["eos_token_id"].get<std::vector<int32_t>>();
    } else {
      eos = {j["eos_token_id"].get<int32_t>()};
    }
    EXPECT_EQ(eos, c.eos_ids);
    if (c.arch == "llama") {
      EXPECT_EQ(j["attention_bias"], c.qkv_bias);
    } else {
      EXPECT_TRUE(c.qkv_bias);  // qwen2 always has q/k/v bias
      EXPECT_EQ(j["use_sliding_window"], false);
    }

    const RopeScaling& r = c.rope_scaling;
    const auto& rs = j["rope_scaling"];
    if (r.type == RopeScaling::Type::kDefault) {
      EXPECT_TRUE(rs.is_null());
      continue;
    }
    const std::string type = rs.contains("rope_type") ? rs["rope_type"] : rs["type"];
    EXPECT_FLOAT_EQ(rs["factor"].get<float>(), r.factor);
    switch (r.type) {
      case RopeScaling::Type::kLinear:
        EXPECT_EQ(type, "linear");
        break;
      case RopeScaling::Type::kLlama3:
        EXPECT_EQ(type, "llama3");
        EXPECT_FLOAT_EQ(rs["low_freq_factor"].get<float>(), r.low_freq_factor);
        EXPECT_FLOAT_EQ(rs["high_freq_factor"].get<float>(), r.high_freq_factor);
        EXPECT_EQ(rs["original_max_position_embeddings"], r.original_max_position);
        break;
      case RopeScaling::Type::kYarn:
        EXPECT_EQ(type, "yarn");
        EXPECT_EQ(rs["original_max_position_embeddings"], r.original_max_position);
        // transformers warns unless factor = max_position_embeddings / original.
        EXPECT_EQ(c.max_position, static_cast<int64_t>(r.factor) * r.original_max_position);
        break;
      default:
        ADD_FAILURE();
    }
  }
}

TEST(TestModel, TensorsHaveHfNamesAndShapes) {
  const TestModelPreset p = *FindTestModelPreset("qwen2-yarn");
  const auto tensors = TestModelTensors(p, DType::kF32);
  std::map<std::string, std::vector<int64_t>> shapes;
  for (const auto& t : tensors) shapes[t.name] = t.shape;
  const int64_t kv_dim = p.config.n_kv_heads * p.config.head_dim;
  EXPECT_EQ(shapes["model.embed_tokens.weight"], (std::vector<int64_t>{256, 64}));
  EXPECT_EQ(shapes["model.layers.1.self_attn.k_proj.weight"], (std::vector<int64_t>{kv_dim, 64}));
  EXPECT_EQ(shapes["model.layers.1.self_attn.k_proj.bias"], (std::vector<int64_t>{kv_dim}));
  EXPECT_EQ(shapes["model.layers.0.mlp.down_proj.weight"], (std::vector<int64_t>{64, 128}));
  EXPECT_EQ(shapes["lm_head.weight"], (std::vector<int64_t>{256, 64}));
  const auto tied = TestModelTensors(*FindTestModelPreset("llama-gqa-llama3"), DType::kF32);
  for (const auto& t : tied) EXPECT_NE(t.name, "lm_head.weight");
}

TEST(TestModel, HashNormalIsRoughlyStandardNormal) {
  double sum = 0, sum_sq = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const float v = HashNormal(42, static_cast<uint64_t>(i));
    ASSERT_LE(std::abs(v), 3.47f);
    sum += v;
    sum_sq += static_cast<double>(v) * v;
  }
  EXPECT_NEAR(sum / n, 0.0, 0.02);
  EXPECT_NEAR(sum_sq / n, 1.0, 0.02);
  EXPECT_EQ(HashNormal(7, 3), HashNormal(7, 3));
  EXPECT_NE(HashNormal(7, 3), HashNormal(8, 3));
}

// The golden logits in tests/fixtures/golden were computed from these exact bytes
// (scripts/make_golden_logits.py records their FNV-1a 64). If this fails, the generator changed:
// regenerate the fixtures with that script.
TEST(TestModel, SafetensorsMatchGoldenFixtures) {
  const fs::path golden = fs::path(TS_FIXTURES_DIR) / "golden";
  const auto index = nlohmann::json::parse(ReadFile(golden / "index.json"));
  ASSERT_FALSE(index["cases"].empty());
  for (const auto& name : index["cases"]) {
    SCOPED_TRACE(name.get<std::string>());
    const auto record =
        nlohmann::json::parse(ReadFile(golden / (name.get<std::string>() + ".json")));
    auto preset = FindTestModelPreset(record["preset"].get<std::string>());
    ASSERT_TRUE(preset.ok()) << preset.status();
    auto dtype = ParseTestModelDType(record["dtype"].get<std::string>());
    ASSERT_TRUE(dtype.ok());
    auto bytes = SerializeSafetensors(TestModelTensors(*preset, *dtype), {{"format", "pt"}});
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    EXPECT_EQ(bytes->size(), record["model_safetensors_bytes"].get<size_t>());
    char hex[17];
    std::snprintf(hex, sizeof(hex), "%016llx", static_cast<unsigned long long>(Fnv1a64(*bytes)));
    EXPECT_EQ(std::string(hex), record["model_safetensors_fnv1a64"].get<std::string>());
    // And config.json as written, field by field.
    EXPECT_EQ(nlohmann::json::parse(TestModelConfigJson(*preset, *dtype)), record["config"]);
  }
}

}  // namespace
}  // namespace ts
