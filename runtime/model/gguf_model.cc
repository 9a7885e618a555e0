#include "runtime/model/gguf_model.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "runtime/model/weight_names.h"

namespace ts {
namespace {

// Typed access to optional metadata keys; a key present with the wrong type is an error.
class Meta {
 public:
  Meta(const GgufFile& file, const std::string& name) : file_(file), name_(name) {}

  StatusOr<std::optional<int64_t>> Int(const std::string& key) const {
    const GgufValue* v = file_.Find(key);
    if (v == nullptr) return std::optional<int64_t>();
    if (!v->IsInteger()) return WrongType(key, "an integer", *v);
    return std::optional<int64_t>(v->int_value);
  }
  StatusOr<std::optional<double>> Float(const std::string& key) const {
    const GgufValue* v = file_.Find(key);
    if (v == nullptr) return std::optional<double>();
    if (v->IsFloat()) return std::optional<double>(v->float_value);
    if (v->IsInteger()) return std::optional<double>(static_cast<double>(v->int_value));
    return WrongType(key, "a number", *v);
  }
  StatusOr<std::optional<bool>> Bool(const std::string& key) const {
    const GgufValue* v = file_.Find(key);
    if (v == nullptr) return std::optional<bool>();
    if (v->type != GgufType::kBool) return WrongType(key, "a bool", *v);
    return std::optional<bool>(v->int_value != 0);
  }
  StatusOr<std::optional<std::string>> String(const std::string& key) const {
    const GgufValue* v = file_.Find(key);
    if (v == nullptr) return std::optional<std::string>();
    if (v->type != GgufType::kString) return WrongType(key, "a string", *v);
    return std::optional<std::string>(v->str);
  }
  // An array whose elements are `elem` ("string", "integer" or "float"); null when absent.
  StatusOr<const GgufValue*> Array(const std::string& key, absl::string_view elem) const {
    const GgufValue* v = file_.Find(key);
    if (v == nullptr) return v;
    const bool ok = v->type == GgufType::kArray &&
                    ((elem == "string" && v->elem_type == GgufType::kString) ||
                     (elem == "float" &&
                      (v->elem_type == GgufType::kFloat32 || v->elem_type == GgufType::kFloat64)) ||
                     (elem == "integer" && v->elem_type != GgufType::kString &&
                      v->elem_type != GgufType::kFloat32 && v->elem_type != GgufType::kFloat64 &&
                      v->elem_type != GgufType::kBool));
    if (!ok) return WrongType(key, absl::StrCat("an array of ", elem), *v);
    return v;
  }

  // A required integer in [lo, hi].
  StatusOr<int64_t> RequiredInt(const std::string& key, int64_t lo, int64_t hi) const {
    TS_ASSIGN_OR_RETURN(std::optional<int64_t> v, Int(key));
    if (!v) return BadInput(name_, ": metadata '", key, "': missing");
    return InRange(key, *v, lo, hi);
  }
  StatusOr<int64_t> InRange(const std::string& key, int64_t v, int64_t lo, int64_t hi) const {
    if (v < lo || v > hi) {
      return BadInput(name_, ": metadata '", key, "': ", v, " is not in [", lo, ", ", hi, "]");
    }
    return v;
  }
  Status Positive(const std::string& key, double v) const {
    if (!(v > 0) || !std::isfinite(v)) {
      return BadInput(name_, ": metadata '", key, "': ", v, " is not a positive number");
    }
    return absl::OkStatus();
  }

 private:
  Status WrongType(const std::string& key, absl::string_view expected, const GgufValue& v) const {
    std::string got = GgufTypeName(v.type);
    if (v.type == GgufType::kArray) absl::StrAppend(&got, " of ", GgufTypeName(v.elem_type));
    return BadInput(name_, ": metadata '", key, "': expected ", expected, ", got ", got);
  }

  const GgufFile& file_;
  const std::string& name_;
};

constexpr int64_t kMaxTokens = int64_t{1} << 24;

StatusOr<int32_t> TokenId(const Meta& meta, const std::string& key, size_t n_tokens) {
  TS_ASSIGN_OR_RETURN(std::optional<int64_t> v, meta.Int(key));
  if (!v) return -1;
  TS_ASSIGN_OR_RETURN(int64_t id, meta.InRange(key, *v, 0, static_cast<int64_t>(n_tokens) - 1));
  return static_cast<int32_t>(id);
}

Status ReadRopeScaling(const Meta& meta, const std::string& arch, const std::string& name,
                       RopeScaling* rs) {
  const std::string p = arch + ".rope.scaling.";
  TS_ASSIGN_OR_RETURN(std::optional<std::string> type, meta.String(p + "type"));
  TS_ASSIGN_OR_RETURN(std::optional<double> factor, meta.Float(p + "factor"));
  if (!type || *type == "none") {
    rs->type = RopeScaling::Type::kDefault;
    return absl::OkStatus();
  }
  if (*type == "linear") {
    rs->type = RopeScaling::Type::kLinear;
  } else if (*type == "yarn") {
    rs->type = RopeScaling::Type::kYarn;
  } else {
    return BadInput(name, ": metadata '", p, "type': '", *type,
                    "' is not supported (expected none, linear or yarn)");
  }
  if (!factor) return BadInput(name, ": metadata '", p, "factor': missing");
  TS_RETURN_IF_ERROR(meta.Positive(p + "factor", *factor));
  rs->factor = static_cast<float>(*factor);
  if (rs->type == RopeScaling::Type::kYarn) {
    TS_ASSIGN_OR_RETURN(std::optional<int64_t> orig, meta.Int(p + "original_context_length"));
    if (!orig) return BadInput(name, ": metadata '", p, "original_context_length': missing");
    TS_ASSIGN_OR_RETURN(rs->original_max_position,
                        meta.InRange(p + "original_context_length", *orig, 1, int64_t{1} << 40));
    TS_ASSIGN_OR_RETURN(std::optional<double> attn, meta.Float(p + "attn_factor"));
    if (attn) rs->attention_factor = static_cast<float>(*attn);
    TS_ASSIGN_OR_RETURN(std::optional<double> fast, meta.Float(p + "yarn_beta_fast"));
    if (fast) rs->beta_fast = static_cast<float>(*fast);
    TS_ASSIGN_OR_RETURN(std::optional<double> slow, meta.Float(p + "yarn_beta_slow"));
    if (slow) rs->beta_slow = static_cast<float>(*slow);
  }
  return absl::OkStatus();
}

// Reads the f32 rope_freqs.weight tensor (llama3-scaled models) into rs->freq_factors.
Status ReadFreqFactors(const std::vector<TensorInfo>& tensors, int head_dim, RopeScaling* rs) {
  for (const TensorInfo& t : tensors) {
    if (t.name != "rope_freqs.weight") continue;
    if (t.shape.size() != 1 || t.shape[0] != head_dim / 2) {
      return BadInput(t.file, ": tensor '", t.name, "': shape ", ShapeString(t.shape),
                      " but config expects [", head_dim / 2, "]");
    }
    TS_ASSIGN_OR_RETURN(rs->freq_factors, ToF32(t));
    for (float f : rs->freq_factors) {
      if (!(f > 0) || !std::isfinite(f)) {
        return BadInput(t.file, ": tensor '", t.name, "': factor ", f, " is not positive");
      }
    }
  }
  return absl::OkStatus();
}

}  // namespace

StatusOr<VocabData> VocabFromGguf(const GgufFile& file, const std::string& name) {
  const Meta meta(file, name);
  VocabData v;
  TS_ASSIGN_OR_RETURN(std::optional<std::string> model, meta.String("tokenizer.ggml.model"));
  if (!model) return BadInput(name, ": metadata 'tokenizer.ggml.model': missing");
  v.model = *model;
  TS_ASSIGN_OR_RETURN(std::optional<std::string> pre, meta.String("tokenizer.ggml.pre"));
  if (pre) v.pre = *pre;

  TS_ASSIGN_OR_RETURN(const GgufValue* tokens, meta.Array("tokenizer.ggml.tokens", "string"));
  if (tokens == nullptr) return BadInput(name, ": metadata 'tokenizer.ggml.tokens': missing");
  if (tokens->strings.empty() || static_cast<int64_t>(tokens->strings.size()) > kMaxTokens) {
    return BadInput(name, ": metadata 'tokenizer.ggml.tokens': ", tokens->strings.size(),
                    " tokens is not in [1, ", kMaxTokens, "]");
  }
  v.tokens = tokens->strings;
  const size_t n = v.tokens.size();

  TS_ASSIGN_OR_RETURN(const GgufValue* types, meta.Array("tokenizer.ggml.token_type", "integer"));
  if (types != nullptr) {
    if (types->ints.size() != n) {
      return BadInput(name, ": metadata 'tokenizer.ggml.token_type': ", types->ints.size(),
                      " entries but there are ", n, " tokens");
    }
    v.token_types.reserve(n);
    for (int64_t t : types->ints) v.token_types.push_back(static_cast<int32_t>(t));
  }
  TS_ASSIGN_OR_RETURN(const GgufValue* scores, meta.Array("tokenizer.ggml.scores", "float"));
  if (scores != nullptr) {
    if (scores->floats.size() != n) {
      return BadInput(name, ": metadata 'tokenizer.ggml.scores': ", scores->floats.size(),
                      " entries but there are ", n, " tokens");
    }
    v.scores.assign(scores->floats.begin(), scores->floats.end());
  }
  TS_ASSIGN_OR_RETURN(const GgufValue* merges, meta.Array("tokenizer.ggml.merges", "string"));
  if (merges != nullptr) v.merges = merges->strings;

  TS_ASSIGN_OR_RETURN(v.bos_id, TokenId(meta, "tokenizer.ggml.bos_token_id", n));
  TS_ASSIGN_OR_RETURN(v.eos_id, TokenId(meta, "tokenizer.ggml.eos_token_id", n));
  TS_ASSIGN_OR_RETURN(v.unk_id, TokenId(meta, "tokenizer.ggml.unknown_token_id", n));
  TS_ASSIGN_OR_RETURN(v.pad_id, TokenId(meta, "tokenizer.ggml.padding_token_id", n));
  // llama.cpp's defaults when the keys are absent: SentencePiece adds BOS and a space prefix.
  const bool spm = v.model == "llama";
  TS_ASSIGN_OR_RETURN(std::optional<bool> add_bos, meta.Bool("tokenizer.ggml.add_bos_token"));
  v.add_bos = add_bos.value_or(spm);
  TS_ASSIGN_OR_RETURN(std::optional<bool> space, meta.Bool("tokenizer.ggml.add_space_prefix"));
  v.add_space_prefix = space.value_or(spm);
  return v;
}

StatusOr<ModelConfig> ConfigFromGguf(const GgufFile& file, const VocabData* vocab,
                                     const std::string& name) {
  const Meta meta(file, name);
  ModelConfig c;
  TS_ASSIGN_OR_RETURN(std::optional<std::string> arch, meta.String("general.architecture"));
  if (!arch) return BadInput(name, ": metadata 'general.architecture': missing");
  if (*arch != "llama" && *arch != "qwen2") {
    return BadInput(name, ": metadata 'general.architecture': '", *arch,
                    "' is not supported (expected llama or qwen2)");
  }
  c.arch = *arch;
  const std::string& a = c.arch;
  TS_ASSIGN_OR_RETURN(int64_t layers, meta.RequiredInt(a + ".block_count", 1, 4096));
  c.n_layers = static_cast<int>(layers);
  TS_ASSIGN_OR_RETURN(c.hidden_size, meta.RequiredInt(a + ".embedding_length", 1, 1 << 20));
  TS_ASSIGN_OR_RETURN(c.intermediate_size,
                      meta.RequiredInt(a + ".feed_forward_length", 1, 1 << 22));
  TS_ASSIGN_OR_RETURN(int64_t heads, meta.RequiredInt(a + ".attention.head_count", 1, 4096));
  c.n_heads = static_cast<int>(heads);
  TS_ASSIGN_OR_RETURN(std::optional<int64_t> kv, meta.Int(a + ".attention.head_count_kv"));
  TS_ASSIGN_OR_RETURN(int64_t kv_heads,
                      meta.InRange(a + ".attention.head_count_kv", kv.value_or(heads), 1, heads));
  c.n_kv_heads = static_cast<int>(kv_heads);
  if (c.n_heads % c.n_kv_heads != 0) {
    return BadInput(name, ": metadata '", a, ".attention.head_count_kv': ", c.n_kv_heads,
                    " does not divide head_count ", c.n_heads);
  }
  TS_ASSIGN_OR_RETURN(std::optional<int64_t> key_length, meta.Int(a + ".attention.key_length"));
  if (!key_length && c.hidden_size % c.n_heads != 0) {
    return BadInput(name, ": metadata '", a, ".embedding_length': ", c.hidden_size,
                    " is not a multiple of head_count ", c.n_heads);
  }
  TS_ASSIGN_OR_RETURN(int64_t head_dim,
                      meta.InRange(a + ".attention.key_length",
                                   key_length.value_or(c.hidden_size / c.n_heads), 2, 4096));
  if (head_dim % 2 != 0) {
    return BadInput(name, ": metadata '", a, ".attention.key_length': head dim ", head_dim,
                    " is odd");
  }
  c.head_dim = static_cast<int>(head_dim);
  TS_ASSIGN_OR_RETURN(std::optional<int64_t> value_length, meta.Int(a + ".attention.value_length"));
  if (value_length && *value_length != head_dim) {
    return BadInput(name, ": metadata '", a, ".attention.value_length': ", *value_length,
                    " differs from key length ", head_dim, " (not supported)");
  }
  TS_ASSIGN_OR_RETURN(std::optional<int64_t> rot, meta.Int(a + ".rope.dimension_count"));
  if (rot && *rot != head_dim) {
    return BadInput(name, ": metadata '", a, ".rope.dimension_count': ", *rot,
                    " differs from head dim ", head_dim, " (partial rotary is not supported)");
  }
  TS_ASSIGN_OR_RETURN(std::optional<int64_t> ctx, meta.Int(a + ".context_length"));
  if (ctx) {
    TS_ASSIGN_OR_RETURN(c.max_position,
                        meta.InRange(a + ".context_length", *ctx, 1, int64_t{1} << 40));
  }
  TS_ASSIGN_OR_RETURN(std::optional<double> eps,
                      meta.Float(a + ".attention.layer_norm_rms_epsilon"));
  if (eps) {
    TS_RETURN_IF_ERROR(meta.Positive(a + ".attention.layer_norm_rms_epsilon", *eps));
    c.rms_eps = static_cast<float>(*eps);
  } else {
    c.rms_eps = 1e-5f;  // llama.cpp's default
  }
  TS_ASSIGN_OR_RETURN(std::optional<double> theta, meta.Float(a + ".rope.freq_base"));
  if (theta) {
    TS_RETURN_IF_ERROR(meta.Positive(a + ".rope.freq_base", *theta));
    c.rope_theta = static_cast<float>(*theta);
  }
  TS_RETURN_IF_ERROR(ReadRopeScaling(meta, a, name, &c.rope_scaling));
  c.rope_style = a == "llama" ? RopeStyle::kInterleaved : RopeStyle::kNeox;

  TS_ASSIGN_OR_RETURN(std::optional<int64_t> vocab_size, meta.Int(a + ".vocab_size"));
  if (vocab_size) {
    TS_ASSIGN_OR_RETURN(c.vocab_size, meta.InRange(a + ".vocab_size", *vocab_size, 1, kMaxTokens));
  }
  if (vocab != nullptr) {
    const int64_t n = static_cast<int64_t>(vocab->tokens.size());
    if (vocab_size && *vocab_size != n) {
      return BadInput(name, ": metadata '", a, ".vocab_size': ", *vocab_size,
                      " but tokenizer.ggml.tokens has ", n, " tokens");
    }
    c.vocab_size = n;
    c.bos_id = vocab->bos_id;
    if (vocab->eos_id >= 0) c.eos_ids = {vocab->eos_id};
    c.add_bos = vocab->add_bos;
  }
  return c;
}

Status ReadGgufModel(const uint8_t* data, size_t size, const std::string& name,
                     LoadedModel* model) {
  TS_ASSIGN_OR_RETURN(GgufFile file, ParseGguf(data, size, name));
  model->format = "gguf";
  if (file.Find("tokenizer.ggml.model") != nullptr) {
    TS_ASSIGN_OR_RETURN(model->gguf_vocab, VocabFromGguf(file, name));
  }
  TS_ASSIGN_OR_RETURN(
      model->config, ConfigFromGguf(file, model->gguf_vocab ? &*model->gguf_vocab : nullptr, name));
  model->tensors.reserve(model->tensors.size() + file.tensors.size());
  bool has_output = false;
  bool has_q_bias = false;
  for (const GgufTensor& t : file.tensors) {
    TensorInfo info;
    info.name = t.name;
    info.file = name;
    info.dtype = t.dtype;
    info.shape.assign(t.ne.rbegin(), t.ne.rend());
    info.data = data + t.offset;
    info.nbytes = static_cast<size_t>(t.nbytes);
    has_output |= t.name == "output.weight";
    has_q_bias |= t.name == "blk.0.attn_q.bias";
    model->tensors.push_back(std::move(info));
  }
  model->config.tie_embeddings = !has_output;
  model->config.qkv_bias = has_q_bias;
  return ReadFreqFactors(model->tensors, model->config.head_dim, &model->config.rope_scaling);
}

}  // namespace ts
