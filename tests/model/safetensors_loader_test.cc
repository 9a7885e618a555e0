// HF directories (config.json + safetensors, single or sharded) written by a small in-test
// writer, loaded and checked; then a table of malformed inputs, each BadInput naming the file and
// the field.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "nlohmann/json.hpp"
#include "runtime/model/hf_config.h"
#include "runtime/model/inspect.h"
#include "runtime/model/loader.h"
#include "runtime/model/safetensors.h"

namespace ts {
namespace {

using ::nlohmann::json;
using ::testing::HasSubstr;

struct StTensor {
  std::string name;
  std::string dtype;  // "F32", "F16", "BF16", ...
  std::vector<int64_t> shape;
  std::string data;
};

size_t ElemBytes(const std::string& dtype) { return dtype == "F32" ? 4 : 2; }

std::string Values(const std::string& dtype, size_t n, float base) {
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    const float v = base + 0.25f * static_cast<float>(i % 8);
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    if (dtype == "F32") {
      s.append(reinterpret_cast<const char*>(&bits), 4);
    } else if (dtype == "BF16") {
      const uint16_t b = static_cast<uint16_t>(bits >> 16);  // exact for these values
      s.append(reinterpret_cast<const char*>(&b), 2);
    } else {  // F16 of small multiples of 0.25 in [0.25, 4): exact
      const int e = static_cast<int>((bits >> 23) & 0xFF) - 127;
      const uint16_t h = static_cast<uint16_t>(((e + 15) << 10) | ((bits >> 13) & 0x3FF));
      s.append(reinterpret_cast<const char*>(&h), 2);
    }
  }
  return s;
}

// Serializes tensors in order; `header_edit` may rewrite the JSON header before writing.
std::string Serialize(const std::vector<StTensor>& tensors,
                      const std::function<void(json&)>& header_edit = nullptr) {
  json header = json::object();
  header["__metadata__"] = {{"format", "pt"}};
  std::string data;
  for (const StTensor& t : tensors) {
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {data.size(), data.size() + t.data.size()}}};
    data += t.data;
  }
  if (header_edit) header_edit(header);
  std::string text = header.dump();
  text.resize((text.size() + 7) / 8 * 8, ' ');
  std::string out(8, '\0');
  const uint64_t n = text.size();
  std::memcpy(out.data(), &n, 8);
  return out + text + data;
}

struct TinyHf {
  std::string model_type = "llama";
  int layers = 2, hidden = 32, ff = 64, heads = 4, kv_heads = 2, vocab = 48;
  bool tied = false;
  std::string dtype = "BF16";
};

json TinyConfig(const TinyHf& d) {
  json c = {{"architectures", {"LlamaForCausalLM"}},
            {"model_type", d.model_type},
            {"hidden_size", d.hidden},
            {"intermediate_size", d.ff},
            {"num_hidden_layers", d.layers},
            {"num_attention_heads", d.heads},
            {"num_key_value_heads", d.kv_heads},
            {"vocab_size", d.vocab},
            {"rms_norm_eps", 1e-6},
            {"rope_theta", 500000.0},
            {"max_position_embeddings", 1024},
            {"tie_word_embeddings", d.tied},
            {"hidden_act", "silu"},
            {"bos_token_id", 1},
            {"eos_token_id", {2, 3}},
            {"rope_scaling", nullptr}};
  return c;
}

std::vector<StTensor> TinyTensors(const TinyHf& d) {
  const int64_t h = d.hidden, hd = d.hidden / d.heads, q = d.heads * hd, kv = d.kv_heads * hd;
  std::vector<StTensor> t;
  auto add = [&](const std::string& name, std::vector<int64_t> shape, float base = 1.0f) {
    size_t n = 1;
    for (int64_t x : shape) n *= static_cast<size_t>(x);
    t.push_back({name, d.dtype, shape, Values(d.dtype, n, base)});
  };
  add("model.embed_tokens.weight", {d.vocab, h});
  add("model.norm.weight", {h}, 2.0f);
  if (!d.tied) add("lm_head.weight", {d.vocab, h});
  for (int i = 0; i < d.layers; ++i) {
    const std::string p = "model.layers." + std::to_string(i) + ".";
    add(p + "input_layernorm.weight", {h});
    add(p + "self_attn.q_proj.weight", {q, h});
    add(p + "self_attn.k_proj.weight", {kv, h});
    add(p + "self_attn.v_proj.weight", {kv, h});
    add(p + "self_attn.o_proj.weight", {h, q});
    if (d.model_type == "qwen2") {
      add(p + "self_attn.q_proj.bias", {q}, 0.5f);
      add(p + "self_attn.k_proj.bias", {kv}, 0.5f);
      add(p + "self_attn.v_proj.bias", {kv}, 0.5f);
    }
    add(p + "post_attention_layernorm.weight", {h});
    add(p + "mlp.gate_proj.weight", {d.ff, h});
    add(p + "mlp.up_proj.weight", {d.ff, h});
    add(p + "mlp.down_proj.weight", {h, d.ff});
  }
  return t;
}

class SafetensorsLoaderTest : public ::testing::Test {
 public:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("ts_st_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  // Writes `bytes` to `name` in the model directory; returns the path.
  std::string Write(const std::string& name, const std::string& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary).write(bytes.data(), bytes.size());
    return path;
  }
  std::string WriteModel(const TinyHf& d, const std::vector<StTensor>& tensors) {
    Write("config.json", TinyConfig(d).dump(2));
    return Write("model.safetensors", Serialize(tensors));
  }

  std::filesystem::path dir_;
};

TEST_F(SafetensorsLoaderTest, LoadsTinyLlamaDirectory) {
  TinyHf d;
  WriteModel(d, TinyTensors(d));
  Write("generation_config.json", R"({"eos_token_id": [3, 7], "bos_token_id": 1})");
  Write("tokenizer.json", "{}");
  auto model = LoadModelFiles(dir_.string());
  ASSERT_TRUE(model.ok()) << model.status();
  const ModelConfig& c = (*model)->config;
  EXPECT_EQ((*model)->format, "safetensors");
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.intermediate_size, 64);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.vocab_size, 48);
  EXPECT_EQ(c.max_position, 1024);
  EXPECT_FLOAT_EQ(c.rope_theta, 500000.0f);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-6f);
  EXPECT_EQ(c.rope_style, RopeStyle::kNeox);
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::kDefault);
  EXPECT_FALSE(c.tie_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_ids, (std::vector<int32_t>{2, 3, 7}));
  EXPECT_EQ((*model)->tokenizer_json, (dir_ / "tokenizer.json").string());
  EXPECT_FALSE((*model)->gguf_vocab.has_value());

  const ModelWeights& w = (*model)->weights;
  EXPECT_EQ(w.embed.dtype, DType::kBF16);
  EXPECT_EQ(w.embed.rows, 48);
  EXPECT_EQ(w.embed.cols, 32);
  EXPECT_EQ(w.embed.row_bytes, 64u);
  EXPECT_NE(w.lm_head.data, w.embed.data);
  ASSERT_EQ(w.layers.size(), 2u);
  EXPECT_EQ(w.layers[0].wk.rows, 16);
  EXPECT_EQ(w.layers[0].wo.cols, 32);
  EXPECT_EQ(w.layers[1].w_down.cols, 64);
  EXPECT_FLOAT_EQ(w.final_norm[0], 2.0f);
  EXPECT_FLOAT_EQ(w.final_norm[3], 2.75f);
  EXPECT_FLOAT_EQ(w.layers[1].ffn_norm[1], 1.25f);
}

TEST_F(SafetensorsLoaderTest, LoadsQwen2WithBiasTiedAndF16) {
  TinyHf d;
  d.model_type = "qwen2";
  d.tied = true;
  d.dtype = "F16";
  WriteModel(d, TinyTensors(d));
  auto model = LoadModelFiles(dir_.string());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_TRUE((*model)->config.qkv_bias);
  EXPECT_TRUE((*model)->config.tie_embeddings);
  const ModelWeights& w = (*model)->weights;
  EXPECT_EQ(w.lm_head.data, w.embed.data);
  EXPECT_EQ(w.layers[0].wq.dtype, DType::kF16);
  ASSERT_NE(w.layers[1].bv, nullptr);
  EXPECT_FLOAT_EQ(w.layers[1].bv[2], 1.0f);
  EXPECT_FLOAT_EQ(w.layers[1].attn_norm[5], 2.25f);
}

TEST_F(SafetensorsLoaderTest, LoadsShardedDirectory) {
  TinyHf d;
  d.dtype = "F32";
  const std::vector<StTensor> all = TinyTensors(d);
  std::vector<StTensor> a(all.begin(), all.begin() + 7), b(all.begin() + 7, all.end());
  Write("config.json", TinyConfig(d).dump());
  Write("model-00001-of-00002.safetensors", Serialize(a));
  Write("model-00002-of-00002.safetensors", Serialize(b));
  json index = {{"metadata", {{"total_size", 0}}}, {"weight_map", json::object()}};
  for (const auto& t : a) index["weight_map"][t.name] = "model-00001-of-00002.safetensors";
  for (const auto& t : b) index["weight_map"][t.name] = "model-00002-of-00002.safetensors";
  Write("model.safetensors.index.json", index.dump());
  auto model = LoadModelFiles(dir_.string());
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ((*model)->files.size(), 3u);  // index + 2 shards
  EXPECT_EQ((*model)->tensors.size(), all.size());
  EXPECT_EQ((*model)->weights.layers[1].w_up.dtype, DType::kF32);

  // A weight_map entry that its shard lacks.
  index["weight_map"]["model.layers.9.mlp.up_proj.weight"] = "model-00001-of-00002.safetensors";
  Write("model.safetensors.index.json", index.dump());
  auto bad = LoadModelFiles(dir_.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()),
              HasSubstr("model.safetensors.index.json: field 'weight_map': tensor "
                        "'model.layers.9.mlp.up_proj.weight' is not in shard"));

  // A shard name that leaves the directory.
  index["weight_map"]["model.layers.9.mlp.up_proj.weight"] = "../x.safetensors";
  Write("model.safetensors.index.json", index.dump());
  bad = LoadModelFiles(dir_.string());
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(std::string(bad.status().message()), HasSubstr("'../x.safetensors'"));
}

TEST_F(SafetensorsLoaderTest, ReadsRopeScalingVariants) {
  json c = TinyConfig({});
  c["rope_scaling"] = {{"rope_type", "llama3"},
                       {"factor", 8.0},
                       {"low_freq_factor", 1.0},
                       {"high_freq_factor", 4.0},
                       {"original_max_position_embeddings", 8192}};
  auto cfg = ParseHfConfig(c.dump(), "config.json");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->rope_scaling.type, RopeScaling::Type::kLlama3);
  EXPECT_FLOAT_EQ(cfg->rope_scaling.factor, 8.0f);
  EXPECT_EQ(cfg->rope_scaling.original_max_position, 8192);

  c["rope_scaling"] = {{"type", "yarn"}, {"factor", 4.0}, {"beta_fast", 16}};
  cfg = ParseHfConfig(c.dump(), "config.json");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->rope_scaling.type, RopeScaling::Type::kYarn);
  EXPECT_EQ(cfg->rope_scaling.original_max_position, 1024);  // max_position_embeddings
  EXPECT_FLOAT_EQ(cfg->rope_scaling.beta_fast, 16.0f);
  EXPECT_FLOAT_EQ(cfg->rope_scaling.attention_factor, 0.0f);

  c["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 2}};
  cfg = ParseHfConfig(c.dump(), "config.json");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->rope_scaling.type, RopeScaling::Type::kLinear);
  EXPECT_FLOAT_EQ(cfg->rope_scaling.factor, 2.0f);

  c.erase("num_key_value_heads");
  c["head_dim"] = 16;
  c["eos_token_id"] = 5;
  cfg = ParseHfConfig(c.dump(), "config.json");
  ASSERT_TRUE(cfg.ok()) << cfg.status();
  EXPECT_EQ(cfg->n_kv_heads, 4);
  EXPECT_EQ(cfg->head_dim, 16);
  EXPECT_EQ(cfg->eos_ids, std::vector<int32_t>{5});
}

TEST_F(SafetensorsLoaderTest, InspectDescribesTheDirectory) {
  TinyHf d;
  WriteModel(d, TinyTensors(d));
  auto text = InspectModel(dir_.string());
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("format:         safetensors"));
  EXPECT_THAT(*text, HasSubstr("bf16 21"));
  EXPECT_THAT(*text, HasSubstr("weights:        ok"));
}

// ---- malformed inputs --------------------------------------------------------------------------

struct BadCase {
  std::string label;
  // Writes the model directory's files.
  std::function<void(SafetensorsLoaderTest*)> setup;
  std::string file;   // the file the message must name
  std::string field;  // a substring the message must contain
};

std::vector<BadCase> BadCases() {
  const TinyHf d;
  std::vector<BadCase> cases;
  auto with_config = [d](std::function<void(json&)> edit) {
    return [d, edit](SafetensorsLoaderTest* t) {
      json c = TinyConfig(d);
      edit(c);
      t->Write("config.json", c.dump());
      t->Write("model.safetensors", Serialize(TinyTensors(d)));
    };
  };
  auto with_bytes = [d](std::function<std::string(std::string)> edit) {
    return [d, edit](SafetensorsLoaderTest* t) {
      t->Write("config.json", TinyConfig(d).dump());
      t->Write("model.safetensors", edit(Serialize(TinyTensors(d))));
    };
  };
  auto with_header = [d](std::function<void(json&)> edit) {
    return [d, edit](SafetensorsLoaderTest* t) {
      t->Write("config.json", TinyConfig(d).dump());
      t->Write("model.safetensors", Serialize(TinyTensors(d), edit));
    };
  };
  auto with_tensors = [d](std::function<void(std::vector<StTensor>&)> edit) {
    return [d, edit](SafetensorsLoaderTest* t) {
      std::vector<StTensor> ts = TinyTensors(d);
      edit(ts);
      t->Write("config.json", TinyConfig(d).dump());
      t->Write("model.safetensors", Serialize(ts));
    };
  };
  const std::string st = "model.safetensors";
  cases.push_back({"bad config JSON",
                   [](SafetensorsLoaderTest* t) { t->Write("config.json", "{\"model_type\":"); },
                   "config.json", "invalid JSON"});
  cases.push_back({"config not an object",
                   [](SafetensorsLoaderTest* t) { t->Write("config.json", "[1,2]"); },
                   "config.json", "expected a JSON object"});
  cases.push_back({"unsupported model_type",
                   with_config([](json& c) { c["model_type"] = "mistral"; }), "config.json",
                   "field 'model_type': 'mistral' is not supported"});
  cases.push_back({"missing hidden_size", with_config([](json& c) { c.erase("hidden_size"); }),
                   "config.json", "field 'hidden_size': missing"});
  cases.push_back({"string layers", with_config([](json& c) { c["num_hidden_layers"] = "2"; }),
                   "config.json", "field 'num_hidden_layers': expected an integer"});
  cases.push_back({"huge layer count",
                   with_config([](json& c) { c["num_hidden_layers"] = 18446744073709551615u; }),
                   "config.json", "field 'num_hidden_layers': 18446744073709551615 is not in"});
  cases.push_back({"kv heads do not divide",
                   with_config([](json& c) { c["num_key_value_heads"] = 3; }), "config.json",
                   "field 'num_key_value_heads': 3 does not divide"});
  cases.push_back({"negative eps", with_config([](json& c) { c["rms_norm_eps"] = -1; }),
                   "config.json", "field 'rms_norm_eps'"});
  cases.push_back({"dynamic rope", with_config([](json& c) {
                     c["rope_scaling"] = {{"type", "dynamic"}, {"factor", 2.0}};
                   }),
                   "config.json", "field 'rope_scaling.rope_type': 'dynamic' is not supported"});
  cases.push_back({"llama3 rope without factors", with_config([](json& c) {
                     c["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", 8.0}};
                   }),
                   "config.json", "field 'rope_scaling.low_freq_factor': missing"});
  cases.push_back({"bad eos", with_config([](json& c) {
                     c["eos_token_id"] = {1, "x"};
                   }),
                   "config.json", "field 'eos_token_id'"});
  cases.push_back({"eos outside vocab", with_config([](json& c) { c["eos_token_id"] = 4000; }), "",
                   "eos token id 4000 is outside the vocabulary"});
  cases.push_back({"no weights",
                   [d](SafetensorsLoaderTest* t) { t->Write("config.json", TinyConfig(d).dump()); },
                   "", "no model.safetensors"});
  cases.push_back({"file shorter than 8",
                   with_bytes([](std::string) { return std::string("abc"); }), st,
                   "header length"});
  cases.push_back({"header length beyond file", with_bytes([](std::string s) {
                     const uint64_t n = uint64_t{1} << 40;
                     std::memcpy(s.data(), &n, 8);
                     return s;
                   }),
                   st, "header length 1099511627776 exceeds"});
  cases.push_back({"bad header JSON", with_bytes([](std::string s) {
                     s[9] = '!';
                     return s;
                   }),
                   st, "header: invalid JSON"});
  cases.push_back({"truncated tensor data", with_bytes([](std::string s) {
                     s.resize(s.size() - 10);
                     return s;
                   }),
                   st, "field 'data_offsets'"});
  cases.push_back({"unknown dtype",
                   with_header([](json& h) { h["model.norm.weight"]["dtype"] = "F8_E4M3"; }), st,
                   "tensor 'model.norm.weight': field 'dtype': unsupported dtype 'F8_E4M3'"});
  cases.push_back({"dtype not a string",
                   with_header([](json& h) { h["model.norm.weight"]["dtype"] = 3; }), st,
                   "tensor 'model.norm.weight': field 'dtype'"});
  cases.push_back({"negative dim",
                   with_header([](json& h) { h["model.norm.weight"]["shape"] = {-32}; }), st,
                   "tensor 'model.norm.weight': field 'shape': dimension -32"});
  cases.push_back({"dims product overflows", with_header([](json& h) {
                     h["model.norm.weight"]["shape"] = {uint64_t{1} << 32, uint64_t{1} << 32};
                   }),
                   st, "tensor 'model.norm.weight': field 'shape': element count overflows"});
  cases.push_back({"byte size overflows", with_header([](json& h) {
                     h["model.norm.weight"]["shape"] = {uint64_t{1} << 32, uint64_t{1} << 31};
                   }),
                   st, "tensor 'model.norm.weight': field 'shape': byte size overflows"});
  cases.push_back({"size differs from shape",
                   with_header([](json& h) { h["model.norm.weight"]["shape"] = {31}; }), st,
                   "tensor 'model.norm.weight': field 'data_offsets'"});
  cases.push_back(
      {"offset out of range", with_header([](json& h) {
         h["model.norm.weight"]["data_offsets"] = {uint64_t{1} << 40, (uint64_t{1} << 40) + 64};
       }),
       st, "tensor 'model.norm.weight': field 'data_offsets': [1099511627776"});
  cases.push_back({"offsets reversed", with_header([](json& h) {
                     h["model.norm.weight"]["data_offsets"] = {64, 0};
                   }),
                   st, "tensor 'model.norm.weight': field 'data_offsets': [64, 0]"});
  cases.push_back({"overlapping tensors", with_header([](json& h) {
                     h["model.norm.weight"]["data_offsets"] = {2, 66};
                   }),
                   st, "begins at 2 inside tensor 'model.embed_tokens.weight'"});
  cases.push_back({"bad metadata", with_header([](json& h) {
                     h["__metadata__"] = {{"a", 1}};
                   }),
                   st, "header '__metadata__'"});
  cases.push_back({"header not an object", with_header([](json& h) { h = json::array(); }), st,
                   "header: expected a JSON object"});
  cases.push_back({"shape mismatch with config", with_tensors([](std::vector<StTensor>& ts) {
                     for (auto& t : ts) {
                       if (t.name == "model.layers.0.self_attn.q_proj.weight") t.shape = {64, 16};
                     }
                   }),
                   st,
                   "tensor 'model.layers.0.self_attn.q_proj.weight': shape [64,16] but config "
                   "expects [32,32]"});
  cases.push_back({"missing tensor", with_tensors([](std::vector<StTensor>& ts) {
                     std::erase_if(ts, [](const StTensor& t) {
                       return t.name == "model.layers.1.mlp.down_proj.weight";
                     });
                   }),
                   "", "missing tensor 'model.layers.1.mlp.down_proj.weight'"});
  cases.push_back({"missing lm_head when untied", with_tensors([](std::vector<StTensor>& ts) {
                     std::erase_if(ts,
                                   [](const StTensor& t) { return t.name == "lm_head.weight"; });
                   }),
                   "", "missing tensor 'lm_head.weight'"});
  cases.push_back(
      {"unexpected bias", with_tensors([](std::vector<StTensor>& ts) {
         ts.push_back(
             {"model.layers.0.self_attn.q_proj.bias", "F32", {32}, std::string(128, '\0')});
       }),
       st, "tensor 'model.layers.0.self_attn.q_proj.bias': present but"});
  cases.push_back(
      {"output bias", with_tensors([](std::vector<StTensor>& ts) {
         ts.push_back(
             {"model.layers.0.self_attn.o_proj.bias", "F32", {32}, std::string(128, '\0')});
       }),
       st, "tensor 'model.layers.0.self_attn.o_proj.bias': an output projection"});
  return cases;
}

TEST_F(SafetensorsLoaderTest, MalformedInputsAreBadInputNamingFileAndField) {
  for (const BadCase& c : BadCases()) {
    SCOPED_TRACE(c.label);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    c.setup(this);
    auto model = LoadModelFiles(dir_.string());
    ASSERT_FALSE(model.ok());
    EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument) << model.status();
    const std::string msg(model.status().message());
    EXPECT_THAT(msg, HasSubstr(c.file.empty() ? dir_.string() + ":" : (dir_ / c.file).string()));
    EXPECT_THAT(msg, HasSubstr(c.field));
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST_F(SafetensorsLoaderTest, EveryTruncationFailsCleanly) {
  TinyHf d;
  const std::string good = Serialize(TinyTensors(d));
  for (size_t n = 0; n < good.size(); n += (n < 4096 ? 1 : 61)) {
    auto h = ParseSafetensors(reinterpret_cast<const uint8_t*>(good.data()), n, "m.safetensors");
    ASSERT_FALSE(h.ok()) << n;
    EXPECT_EQ(h.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

}  // namespace
}  // namespace ts
