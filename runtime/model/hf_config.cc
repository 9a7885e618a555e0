#include "runtime/model/hf_config.h"

#include <algorithm>
#include <cmath>
#include <exception>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace ts {
namespace {

using nlohmann::json;

// Typed access to the fields of one JSON object; null counts as absent. `prefix` names the
// object in messages ("" for config.json's top level, "rope_scaling." inside it).
class Fields {
 public:
  Fields(const json& obj, const std::string& name, std::string prefix = "")
      : obj_(obj), name_(name), prefix_(std::move(prefix)) {}

  const json* Get(const char* key) const {
    auto it = obj_.find(key);
    return it == obj_.end() || it->is_null() ? nullptr : &*it;
  }
  Status Error(const char* key, absl::string_view what) const {
    return BadInput(name_, ": field '", prefix_, key, "': ", what);
  }

  StatusOr<std::optional<int64_t>> Int(const char* key, int64_t lo, int64_t hi) const {
    const json* v = Get(key);
    if (v == nullptr) return std::optional<int64_t>();
    if (!v->is_number_integer())
      return Error(key, absl::StrCat("expected an integer, got ", v->dump()));
    // Unsigned values above INT64_MAX would wrap in get<int64_t>(): compare them as unsigned.
    const bool too_big = v->is_number_unsigned() && v->get<uint64_t>() > static_cast<uint64_t>(hi);
    const int64_t i = too_big ? hi : v->get<int64_t>();
    if (too_big || i < lo || i > hi) {
      return Error(key, absl::StrCat(v->dump(), " is not in [", lo, ", ", hi, "]"));
    }
    return std::optional<int64_t>(i);
  }
  StatusOr<int64_t> RequiredInt(const char* key, int64_t lo, int64_t hi) const {
    TS_ASSIGN_OR_RETURN(std::optional<int64_t> v, Int(key, lo, hi));
    if (!v) return Error(key, "missing");
    return *v;
  }
  // A positive finite number (integers accepted).
  StatusOr<std::optional<float>> Positive(const char* key) const {
    const json* v = Get(key);
    if (v == nullptr) return std::optional<float>();
    if (!v->is_number()) return Error(key, absl::StrCat("expected a number, got ", v->dump()));
    const double d = v->get<double>();
    if (!(d > 0) || !std::isfinite(d) || d > 3.4e38) {
      return Error(key, absl::StrCat(v->dump(), " is not a positive number"));
    }
    return std::optional<float>(static_cast<float>(d));
  }
  StatusOr<std::optional<bool>> Bool(const char* key) const {
    const json* v = Get(key);
    if (v == nullptr) return std::optional<bool>();
    if (!v->is_boolean())
      return Error(key, absl::StrCat("expected true or false, got ", v->dump()));
    return std::optional<bool>(v->get<bool>());
  }
  StatusOr<std::optional<std::string>> String(const char* key) const {
    const json* v = Get(key);
    if (v == nullptr) return std::optional<std::string>();
    if (!v->is_string()) return Error(key, absl::StrCat("expected a string, got ", v->dump()));
    return std::optional<std::string>(v->get<std::string>());
  }
  // Token ids: an integer or a list of integers, each in [0, 2^31).
  StatusOr<std::vector<int32_t>> Ids(const char* key) const {
    std::vector<int32_t> ids;
    const json* v = Get(key);
    if (v == nullptr) return ids;
    const json list = v->is_array() ? *v : json::array({*v});
    for (const json& id : list) {
      if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > INT32_MAX) {
        return Error(key, absl::StrCat("expected a token id or a list of them, got ", v->dump()));
      }
      const int32_t i = static_cast<int32_t>(id.get<int64_t>());
      if (std::find(ids.begin(), ids.end(), i) == ids.end()) ids.push_back(i);
    }
    return ids;
  }

 private:
  const json& obj_;
  const std::string& name_;
  std::string prefix_;
};

Status ParseRopeScaling(const json& rs, const std::string& name, int64_t max_position,
                        RopeScaling* out) {
  if (!rs.is_object()) return BadInput(name, ": field 'rope_scaling': expected an object or null");
  const Fields f(rs, name, "rope_scaling.");
  TS_ASSIGN_OR_RETURN(std::optional<std::string> type, f.String("rope_type"));
  if (!type) {
    TS_ASSIGN_OR_RETURN(type, f.String("type"));
  }
  if (!type) return f.Error("rope_type", "missing");
  if (*type == "default") {
    out->type = RopeScaling::Type::kDefault;
    return absl::OkStatus();
  }
  if (*type == "linear") {
    out->type = RopeScaling::Type::kLinear;
  } else if (*type == "llama3") {
    out->type = RopeScaling::Type::kLlama3;
  } else if (*type == "yarn") {
    out->type = RopeScaling::Type::kYarn;
  } else {
    return f.Error("rope_type", absl::StrCat("'", *type,
                                             "' is not supported (expected default, linear, "
                                             "llama3 or yarn)"));
  }
  TS_ASSIGN_OR_RETURN(std::optional<float> factor, f.Positive("factor"));
  if (!factor) return f.Error("factor", "missing");
  out->factor = *factor;
  TS_ASSIGN_OR_RETURN(std::optional<int64_t> orig,
                      f.Int("original_max_position_embeddings", 1, int64_t{1} << 40));
  if (out->type == RopeScaling::Type::kLlama3) {
    TS_ASSIGN_OR_RETURN(std::optional<float> low, f.Positive("low_freq_factor"));
    TS_ASSIGN_OR_RETURN(std::optional<float> high, f.Positive("high_freq_factor"));
    if (!low) return f.Error("low_freq_factor", "missing");
    if (!high) return f.Error("high_freq_factor", "missing");
    if (!orig) return f.Error("original_max_position_embeddings", "missing");
    if (*high <= *low) return f.Error("high_freq_factor", "must exceed low_freq_factor");
    out->low_freq_factor = *low;
    out->high_freq_factor = *high;
    out->original_max_position = *orig;
  } else if (out->type == RopeScaling::Type::kYarn) {
    out->original_max_position = orig.value_or(max_position);
    if (out->original_max_position <= 0) {
      return f.Error("original_max_position_embeddings", "missing");
    }
    TS_ASSIGN_OR_RETURN(std::optional<float> fast, f.Positive("beta_fast"));
    TS_ASSIGN_OR_RETURN(std::optional<float> slow, f.Positive("beta_slow"));
    TS_ASSIGN_OR_RETURN(std::optional<float> attn, f.Positive("attention_factor"));
    if (fast) out->beta_fast = *fast;
    if (slow) out->beta_slow = *slow;
    if (attn) out->attention_factor = *attn;
  }
  return absl::OkStatus();
}

Status ParseConfigObject(const json& j, const std::string& name, ModelConfig* c) {
  if (!j.is_object()) return BadInput(name, ": expected a JSON object");
  const Fields f(j, name);
  TS_ASSIGN_OR_RETURN(std::optional<std::string> model_type, f.String("model_type"));
  if (!model_type) return f.Error("model_type", "missing");
  if (*model_type != "llama" && *model_type != "qwen2") {
    return f.Error("model_type",
                   absl::StrCat("'", *model_type, "' is not supported (expected llama or qwen2)"));
  }
  c->arch = *model_type;
  TS_ASSIGN_OR_RETURN(std::optional<std::string> act, f.String("hidden_act"));
  if (act && *act != "silu") return f.Error("hidden_act", "'" + *act + "' is not supported (silu)");

  TS_ASSIGN_OR_RETURN(c->vocab_size, f.RequiredInt("vocab_size", 1, int64_t{1} << 24));
  TS_ASSIGN_OR_RETURN(c->hidden_size, f.RequiredInt("hidden_size", 1, 1 << 20));
  TS_ASSIGN_OR_RETURN(c->intermediate_size, f.RequiredInt("intermediate_size", 1, 1 << 22));
  TS_ASSIGN_OR_RETURN(int64_t layers, f.RequiredInt("num_hidden_layers", 1, 4096));
  c->n_layers = static_cast<int>(layers);
  TS_ASSIGN_OR_RETURN(int64_t heads, f.RequiredInt("num_attention_heads", 1, 4096));
  c->n_heads = static_cast<int>(heads);
  TS_ASSIGN_OR_RETURN(std::optional<int64_t> kv, f.Int("num_key_value_heads", 1, heads));
  c->n_kv_heads = static_cast<int>(kv.value_or(heads));
  if (c->n_heads % c->n_kv_heads != 0) {
    return f.Error(
        "num_key_value_heads",
        absl::StrCat(c->n_kv_heads, " does not divide num_attention_heads ", c->n_heads));
  }
  TS_ASSIGN_OR_RETURN(std::optional<int64_t> head_dim, f.Int("head_dim", 2, 4096));
  if (!head_dim && c->hidden_size % c->n_heads != 0) {
    return f.Error("hidden_size",
                   absl::StrCat(c->hidden_size, " is not a multiple of num_attention_heads ",
                                c->n_heads, " and head_dim is absent"));
  }
  c->head_dim = static_cast<int>(head_dim.value_or(c->hidden_size / c->n_heads));
  if (c->head_dim < 2 || c->head_dim % 2 != 0) {
    return f.Error("head_dim", absl::StrCat(c->head_dim, " is not an even number >= 2"));
  }
  TS_ASSIGN_OR_RETURN(std::optional<int64_t> max_pos,
                      f.Int("max_position_embeddings", 1, int64_t{1} << 40));
  c->max_position = max_pos.value_or(0);
  TS_ASSIGN_OR_RETURN(std::optional<float> eps, f.Positive("rms_norm_eps"));
  c->rms_eps = eps.value_or(1e-6f);
  TS_ASSIGN_OR_RETURN(std::optional<float> theta, f.Positive("rope_theta"));
  c->rope_theta = theta.value_or(10000.0f);
  if (const json* rs = f.Get("rope_scaling")) {
    TS_RETURN_IF_ERROR(ParseRopeScaling(*rs, name, c->max_position, &c->rope_scaling));
  }
  c->rope_style = RopeStyle::kNeox;
  TS_ASSIGN_OR_RETURN(std::optional<bool> tie, f.Bool("tie_word_embeddings"));
  c->tie_embeddings = tie.value_or(false);
  TS_ASSIGN_OR_RETURN(std::optional<bool> attention_bias, f.Bool("attention_bias"));
  c->qkv_bias = c->arch == "qwen2" || attention_bias.value_or(false);
  TS_ASSIGN_OR_RETURN(std::optional<bool> mlp_bias, f.Bool("mlp_bias"));
  if (mlp_bias.value_or(false)) return f.Error("mlp_bias", "true is not supported");
  TS_ASSIGN_OR_RETURN(std::optional<bool> sliding, f.Bool("use_sliding_window"));
  if (sliding.value_or(false)) return f.Error("use_sliding_window", "true is not supported");

  TS_ASSIGN_OR_RETURN(std::vector<int32_t> bos, f.Ids("bos_token_id"));
  if (bos.size() > 1) return f.Error("bos_token_id", "expected one token id");
  c->bos_id = bos.empty() ? -1 : bos[0];
  TS_ASSIGN_OR_RETURN(c->eos_ids, f.Ids("eos_token_id"));
  return absl::OkStatus();
}

}  // namespace

StatusOr<ModelConfig> ParseHfConfig(std::string_view json_text, const std::string& name) {
  const json j = json::parse(json_text.begin(), json_text.end(), nullptr,
                             /*allow_exceptions=*/false);
  if (j.is_discarded()) return BadInput(name, ": invalid JSON");
  ModelConfig c;
  try {
    TS_RETURN_IF_ERROR(ParseConfigObject(j, name, &c));
  } catch (const std::exception& e) {  // a type error we failed to rule out above
    return BadInput(name, ": ", e.what());
  }
  return c;
}

Status ApplyGenerationConfig(std::string_view json_text, const std::string& name,
                             ModelConfig* config) {
  const json j = json::parse(json_text.begin(), json_text.end(), nullptr,
                             /*allow_exceptions=*/false);
  if (j.is_discarded()) return BadInput(name, ": invalid JSON");
  if (!j.is_object()) return BadInput(name, ": expected a JSON object");
  try {
    TS_ASSIGN_OR_RETURN(std::vector<int32_t> eos, Fields(j, name).Ids("eos_token_id"));
    for (int32_t id : eos) {
      if (std::find(config->eos_ids.begin(), config->eos_ids.end(), id) == config->eos_ids.end()) {
        config->eos_ids.push_back(id);
      }
    }
  } catch (const std::exception& e) {
    return BadInput(name, ": ", e.what());
  }
  return absl::OkStatus();
}

}  // namespace ts
