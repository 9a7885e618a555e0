#include "runtime/model/test_model.h"

#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "absl/strings/str_join.h"
#include "common/hash_random.h"
#include "nlohmann/json.hpp"

namespace ts {
namespace {

using Json = nlohmann::ordered_json;

// The shortest decimal that reads back as `f`, as a double: 1e-5f is written 1e-05, not
// 9.99999974737875e-06.
double NiceDouble(float f) {
  char buf[32];
  auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), f);
  return std::strtod(std::string(buf, end).c_str(), nullptr);
}

ModelConfig BaseConfig(std::string arch) {
  ModelConfig c;
  c.arch = std::move(arch);
  c.vocab_size = 256;
  c.hidden_size = 64;
  c.intermediate_size = 128;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 4;
  c.head_dim = 16;
  c.max_position = 256;
  c.rms_eps = 1e-5f;
  c.rope_theta = 10000.0f;
  c.bos_id = 1;
  c.eos_ids = {2};
  return c;
}

std::vector<TestModelPreset> MakePresets() {
  std::vector<TestModelPreset> presets;
  auto add = [&](std::string name, std::string description, ModelConfig config) {
    TestModelPreset p;
    p.seed = Fnv1a64(name);
    p.name = std::move(name);
    p.description = std::move(description);
    p.config = std::move(config);
    presets.push_back(std::move(p));
    return &presets.back();
  };
  {
    ModelConfig c = BaseConfig("llama");
    add("llama-mha", "llama, MHA 4/4 heads, head_dim 16, hidden 64, 2 layers, default rope, untied",
        c);
  }
  {
    ModelConfig c = BaseConfig("llama");
    c.hidden_size = 128;
    c.intermediate_size = 64;
    c.n_layers = 3;
    c.n_heads = 8;
    c.n_kv_heads = 2;
    c.max_position = 512;
    c.rope_theta = 500000.0f;
    c.rope_scaling.type = RopeScaling::Type::kLlama3;
    c.rope_scaling.factor = 8.0f;
    c.rope_scaling.low_freq_factor = 1.0f;
    c.rope_scaling.high_freq_factor = 4.0f;
    c.rope_scaling.original_max_position = 64;
    c.tie_embeddings = true;
    c.eos_ids = {2, 3};
    add("llama-gqa-llama3",
        "llama, GQA 8/2 heads, head_dim 16, hidden 128, 3 layers, llama3 rope (factor 8, "
        "original 64), theta 5e5, tied, eos [2,3]",
        c)
        ->write_head_dim = true;
  }
  {
    ModelConfig c = BaseConfig("qwen2");
    c.n_kv_heads = 2;
    c.rms_eps = 1e-6f;
    c.qkv_bias = true;
    c.rope_scaling.type = RopeScaling::Type::kYarn;
    c.rope_scaling.factor = 4.0f;
    c.rope_scaling.original_max_position = 64;
    add("qwen2-yarn",
        "qwen2, GQA 4/2 heads, head_dim 16, hidden 64, 2 layers, q/k/v bias, yarn rope (factor "
        "4, original 64, written with \"type\"), untied",
        c)
        ->rope_type_key_is_type = true;
  }
  {
    ModelConfig c = BaseConfig("llama");
    c.n_kv_heads = 1;
    c.rope_scaling.type = RopeScaling::Type::kLinear;
    c.rope_scaling.factor = 2.0f;
    add("llama-linear",
        "llama, MQA 4/1 heads, head_dim 16, hidden 64, 2 layers, linear rope (factor 2), untied",
        c);
  }
  {
    ModelConfig c = BaseConfig("llama");
    c.hidden_size = 96;
    c.intermediate_size = 192;
    c.n_heads = 6;
    c.n_kv_heads = 3;
    c.rope_theta = 100000.0f;
    c.tie_embeddings = true;
    add("llama-gqa-3kv",
        "llama (SmolLM2-like), GQA 6/3 heads (3 KV heads split unevenly by TP 2), head_dim 16, "
        "hidden 96, 2 layers, theta 1e5, tied",
        c)
        ->write_head_dim = true;
  }
  return presets;
}

std::string_view TorchDTypeName(DType dtype) {
  switch (dtype) {
    case DType::kBF16:
      return "bfloat16";
    case DType::kF16:
      return "float16";
    default:
      return "float32";
  }
}

Json RopeScalingJson(const TestModelPreset& preset) {
  const RopeScaling& r = preset.config.rope_scaling;
  const char* type_key = preset.rope_type_key_is_type ? "type" : "rope_type";
  Json j = Json::object();
  switch (r.type) {
    case RopeScaling::Type::kDefault:
      return Json(nullptr);
    case RopeScaling::Type::kLinear:
      j[type_key] = "linear";
      j["factor"] = NiceDouble(r.factor);
      break;
    case RopeScaling::Type::kLlama3:
      j[type_key] = "llama3";
      j["factor"] = NiceDouble(r.factor);
      j["low_freq_factor"] = NiceDouble(r.low_freq_factor);
      j["high_freq_factor"] = NiceDouble(r.high_freq_factor);
      j["original_max_position_embeddings"] = r.original_max_position;
      break;
    case RopeScaling::Type::kYarn:
      j[type_key] = "yarn";
      j["factor"] = NiceDouble(r.factor);
      j["original_max_position_embeddings"] = r.original_max_position;
      break;
  }
  return j;
}

Json EosJson(const ModelConfig& c) {
  if (c.eos_ids.size() == 1) return Json(c.eos_ids[0]);
  return Json(c.eos_ids);
}

// One tensor: shape (rows, cols) or (rows) when cols == 0; value = scale * noise + offset.
SafetensorsTensor MakeTensor(uint64_t seed, std::string name, int64_t rows, int64_t cols,
                             float scale, float offset, DType dtype) {
  const uint64_t key = SplitMix64(seed ^ Fnv1a64(name));
  const int64_t count = cols > 0 ? rows * cols : rows;
  std::vector<float> values(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    // fma is correctly rounded everywhere, so the result never depends on FMA contraction.
    values[i] = std::fma(scale, HashNormal(key, static_cast<uint64_t>(i)), offset);
  }
  SafetensorsTensor t;
  t.name = std::move(name);
  t.dtype = dtype;
  t.shape = cols > 0 ? std::vector<int64_t>{rows, cols} : std::vector<int64_t>{rows};
  t.bytes = EncodeFloats(values, dtype);
  return t;
}

Status WriteText(const std::filesystem::path& path, const std::string& text) {
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  if (!file) return RuntimeFailure(path.string(), ": cannot open for writing");
  file << text;
  file.close();
  if (!file) return RuntimeFailure(path.string(), ": write failed");
  return absl::OkStatus();
}

}  // namespace

const std::vector<TestModelPreset>& TestModelPresets() {
  static const std::vector<TestModelPreset>* presets =
      new std::vector<TestModelPreset>(MakePresets());
  return *presets;
}

StatusOr<TestModelPreset> FindTestModelPreset(std::string_view name) {
  std::vector<std::string> names;
  for (const TestModelPreset& p : TestModelPresets()) {
    if (p.name == name) return p;
    names.push_back(p.name);
  }
  return BadInput("--preset: unknown test model '", std::string(name), "', expected one of ",
                  absl::StrJoin(names, ", "));
}

StatusOr<DType> ParseTestModelDType(std::string_view name) {
  if (name == "f32") return DType::kF32;
  if (name == "bf16") return DType::kBF16;
  if (name == "f16") return DType::kF16;
  return BadInput("--dtype: '", std::string(name), "', expected f32, bf16 or f16");
}

std::string TestModelConfigJson(const TestModelPreset& preset, DType dtype) {
  const ModelConfig& c = preset.config;
  const bool llama = c.arch == "llama";
  Json j;
  j["architectures"] = {llama ? "LlamaForCausalLM" : "Qwen2ForCausalLM"};
  j["model_type"] = c.arch;
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  if (preset.write_head_dim) j["head_dim"] = c.head_dim;
  j["hidden_act"] = "silu";
  j["max_position_embeddings"] = c.max_position;
  j["rms_norm_eps"] = NiceDouble(c.rms_eps);
  j["rope_theta"] = NiceDouble(c.rope_theta);
  j["rope_scaling"] = RopeScalingJson(preset);
  j["tie_word_embeddings"] = c.tie_embeddings;
  if (llama) {
    j["attention_bias"] = c.qkv_bias;
    j["mlp_bias"] = false;
  } else {
    j["use_sliding_window"] = false;
    j["sliding_window"] = c.max_position;
    j["max_window_layers"] = c.n_layers;
  }
  if (c.bos_id >= 0) j["bos_token_id"] = c.bos_id;
  j["eos_token_id"] = EosJson(c);
  j["initializer_range"] = 0.02;
  j["use_cache"] = true;
  j["torch_dtype"] = TorchDTypeName(dtype);
  return j.dump(2) + "\n";
}

std::string TestModelGenerationConfigJson(const TestModelPreset& preset) {
  Json j;
  if (preset.config.bos_id >= 0) j["bos_token_id"] = preset.config.bos_id;
  j["eos_token_id"] = EosJson(preset.config);
  j["do_sample"] = false;
  return j.dump(2) + "\n";
}

std::vector<SafetensorsTensor> TestModelTensors(const TestModelPreset& preset, DType dtype) {
  const ModelConfig& c = preset.config;
  const uint64_t seed = preset.seed;
  const int64_t h = c.hidden_size;
  const int64_t q_dim = static_cast<int64_t>(c.n_heads) * c.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(c.n_kv_heads) * c.head_dim;
  const int64_t ffn = c.intermediate_size;
  // Tied: the current token's own embedding leaks into the logits through e_t . e_t, which makes
  // untrained tied models repeat themselves; small embeddings and a large final norm keep the
  // logit scale without that bias.
  const bool tied = c.tie_embeddings;
  const float embed_std = (tied ? 0.5f : 2.5f) / std::sqrt(static_cast<float>(h));
  auto linear = [&](const std::string& name, int64_t rows, int64_t cols, float gain) {
    return MakeTensor(seed, name, rows, cols, gain / std::sqrt(static_cast<float>(cols)), 0.0f,
                      dtype);
  };
  auto norm = [&](const std::string& name, int64_t dim) {
    return MakeTensor(seed, name, dim, 0, 0.1f, 1.0f, dtype);
  };
  auto bias = [&](const std::string& name, int64_t dim) {
    return MakeTensor(seed, name, dim, 0, 0.3f, 0.0f, dtype);
  };

  std::vector<SafetensorsTensor> t;
  t.push_back(
      MakeTensor(seed, "model.embed_tokens.weight", c.vocab_size, h, embed_std, 0.0f, dtype));
  for (int l = 0; l < c.n_layers; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".";
    t.push_back(norm(p + "input_layernorm.weight", h));
    t.push_back(linear(p + "self_attn.q_proj.weight", q_dim, h, 1.3f));
    t.push_back(linear(p + "self_attn.k_proj.weight", kv_dim, h, 1.3f));
    t.push_back(linear(p + "self_attn.v_proj.weight", kv_dim, h, 1.0f));
    if (c.qkv_bias) {
      t.push_back(bias(p + "self_attn.q_proj.bias", q_dim));
      t.push_back(bias(p + "self_attn.k_proj.bias", kv_dim));
      t.push_back(bias(p + "self_attn.v_proj.bias", kv_dim));
    }
    t.push_back(linear(p + "self_attn.o_proj.weight", h, q_dim, 0.7f));
    t.push_back(norm(p + "post_attention_layernorm.weight", h));
    t.push_back(linear(p + "mlp.gate_proj.weight", ffn, h, 1.0f));
    t.push_back(linear(p + "mlp.up_proj.weight", ffn, h, 1.0f));
    t.push_back(linear(p + "mlp.down_proj.weight", h, ffn, 0.7f));
  }
  t.push_back(tied ? MakeTensor(seed, "model.norm.weight", h, 0, 0.5f, 5.0f, dtype)
                   : norm("model.norm.weight", h));
  if (!c.tie_embeddings) {
    t.push_back(MakeTensor(seed, "lm_head.weight", c.vocab_size, h, embed_std, 0.0f, dtype));
  }
  return t;
}

Status WriteTestModel(const TestModelPreset& preset, DType dtype, const std::string& dir) {
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return RuntimeFailure(dir, ": cannot create directory: ", ec.message());
  const std::filesystem::path root(dir);
  TS_RETURN_IF_ERROR(WriteText(root / "config.json", TestModelConfigJson(preset, dtype)));
  TS_RETURN_IF_ERROR(
      WriteText(root / "generation_config.json", TestModelGenerationConfigJson(preset)));
  return WriteSafetensors((root / "model.safetensors").string(), TestModelTensors(preset, dtype),
                          {{"format", "pt"}});
}

}  // namespace ts
