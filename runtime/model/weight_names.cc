#include "runtime/model/weight_names.h"

#include <cstring>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace ts {
namespace {

float F16BitsToF32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1Fu;
  uint32_t mant = h & 0x3FFu;
  uint32_t bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // inf / nan
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;  // +-0
  } else {
    // Subnormal half: normalize.
    int e = -1;
    do {
      ++e;
      mant <<= 1;
    } while ((mant & 0x400u) == 0);
    bits = sign | static_cast<uint32_t>(112 - e) << 23 | ((mant & 0x3FFu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float Bf16BitsToF32(uint16_t b) {
  const uint32_t bits = static_cast<uint32_t>(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Looks tensors up by name and checks them against expected shapes.
class Binder {
 public:
  explicit Binder(LoadedModel* model) : model_(model) {
    for (const TensorInfo& t : model->tensors) by_name_.emplace(t.name, &t);
  }

  const TensorInfo* Find(const std::string& name) const {
    auto it = by_name_.find(name);
    return it == by_name_.end() ? nullptr : it->second;
  }

  StatusOr<const TensorInfo*> Require(const std::string& name) const {
    const TensorInfo* t = Find(name);
    if (t == nullptr) return BadInput(model_->source, ": missing tensor '", name, "'");
    return t;
  }

  Status CheckShape(const TensorInfo& t, const std::vector<int64_t>& expected) const {
    if (t.shape != expected) {
      return BadInput(t.file, ": tensor '", t.name, "': shape ", ShapeString(t.shape),
                      " but config expects ", ShapeString(expected));
    }
    return absl::OkStatus();
  }

  StatusOr<Matrix> MatrixOf(const std::string& name, int64_t rows, int64_t cols) const {
    TS_ASSIGN_OR_RETURN(const TensorInfo* t, Require(name));
    return MatrixOf(*t, rows, cols);
  }

  StatusOr<Matrix> MatrixOf(const TensorInfo& t, int64_t rows, int64_t cols) const {
    TS_RETURN_IF_ERROR(CheckShape(t, {rows, cols}));
    const DTypeInfo info = GetDTypeInfo(t.dtype);
    if (cols % info.block_elems != 0) {
      return BadInput(t.file, ": tensor '", t.name, "': row length ", cols,
                      " is not a multiple of the ", std::string(info.name), " block size ",
                      info.block_elems);
    }
    Matrix m;
    m.data = t.data;
    m.dtype = t.dtype;
    m.rows = rows;
    m.cols = cols;
    m.row_bytes = RowBytes(t.dtype, cols);
    // The parsers derived nbytes from the shape; this guards against a parser bug reading past.
    if (m.row_bytes * static_cast<size_t>(rows) != t.nbytes) {
      return BadInput(t.file, ": tensor '", t.name, "': ", t.nbytes, " bytes but shape ",
                      ShapeString(t.shape), " needs ", m.row_bytes * static_cast<size_t>(rows));
    }
    return m;
  }

  // A 1-D f32/f16/bf16 tensor of `n` elements, converted to f32 and owned by the model.
  StatusOr<const float*> VectorOf(const std::string& name, int64_t n) const {
    TS_ASSIGN_OR_RETURN(const TensorInfo* t, Require(name));
    TS_RETURN_IF_ERROR(CheckShape(*t, {n}));
    TS_ASSIGN_OR_RETURN(std::vector<float> values, ToF32(*t));
    model_->owned_f32.push_back(std::move(values));
    return model_->owned_f32.back().data();
  }

 private:
  LoadedModel* model_;
  std::unordered_map<std::string, const TensorInfo*> by_name_;
};

Status CheckConfig(const ModelConfig& c, const std::string& source) {
  if (c.n_layers <= 0 || c.hidden_size <= 0 || c.intermediate_size <= 0 || c.n_heads <= 0 ||
      c.n_kv_heads <= 0 || c.head_dim <= 0 || c.vocab_size < 0 || c.n_heads % c.n_kv_heads != 0) {
    return BadInput(source, ": inconsistent config (layers ", c.n_layers, ", hidden ",
                    c.hidden_size, ", intermediate ", c.intermediate_size, ", heads ", c.n_heads,
                    "/", c.n_kv_heads, ", head_dim ", c.head_dim, ")");
  }
  return absl::OkStatus();
}

Status BindLayer(const Binder& b, const ModelConfig& c, const LayerWeightNames& n,
                 LayerWeights* l) {
  const int64_t h = c.hidden_size;
  const int64_t q_dim = static_cast<int64_t>(c.n_heads) * c.head_dim;
  const int64_t kv_dim = static_cast<int64_t>(c.n_kv_heads) * c.head_dim;
  const int64_t ff = c.intermediate_size;
  TS_ASSIGN_OR_RETURN(l->attn_norm, b.VectorOf(n.attn_norm, h));
  TS_ASSIGN_OR_RETURN(l->wq, b.MatrixOf(n.wq, q_dim, h));
  TS_ASSIGN_OR_RETURN(l->wk, b.MatrixOf(n.wk, kv_dim, h));
  TS_ASSIGN_OR_RETURN(l->wv, b.MatrixOf(n.wv, kv_dim, h));
  TS_ASSIGN_OR_RETURN(l->wo, b.MatrixOf(n.wo, h, q_dim));
  if (c.qkv_bias) {
    TS_ASSIGN_OR_RETURN(l->bq, b.VectorOf(n.bq, q_dim));
    TS_ASSIGN_OR_RETURN(l->bk, b.VectorOf(n.bk, kv_dim));
    TS_ASSIGN_OR_RETURN(l->bv, b.VectorOf(n.bv, kv_dim));
  } else if (const TensorInfo* t = b.Find(n.bq)) {
    return BadInput(t->file, ": tensor '", t->name,
                    "': present but the config has no q/k/v bias (attention_bias)");
  }
  if (const TensorInfo* t = b.Find(n.bo)) {
    return BadInput(t->file, ": tensor '", t->name,
                    "': an output projection bias is not supported");
  }
  TS_ASSIGN_OR_RETURN(l->ffn_norm, b.VectorOf(n.ffn_norm, h));
  TS_ASSIGN_OR_RETURN(l->w_gate, b.MatrixOf(n.w_gate, ff, h));
  TS_ASSIGN_OR_RETURN(l->w_up, b.MatrixOf(n.w_up, ff, h));
  TS_ASSIGN_OR_RETURN(l->w_down, b.MatrixOf(n.w_down, h, ff));
  return absl::OkStatus();
}

}  // namespace

WeightNames MakeWeightNames(const std::string& format, int n_layers) {
  WeightNames w;
  const bool gguf = format == "gguf";
  w.embed = gguf ? "token_embd.weight" : "model.embed_tokens.weight";
  w.lm_head = gguf ? "output.weight" : "lm_head.weight";
  w.final_norm = gguf ? "output_norm.weight" : "model.norm.weight";
  w.layers.resize(n_layers > 0 ? static_cast<size_t>(n_layers) : 0);
  for (int i = 0; i < n_layers; ++i) {
    LayerWeightNames& l = w.layers[i];
    if (gguf) {
      const std::string p = absl::StrCat("blk.", i, ".");
      l.attn_norm = p + "attn_norm.weight";
      l.wq = p + "attn_q.weight";
      l.wk = p + "attn_k.weight";
      l.wv = p + "attn_v.weight";
      l.wo = p + "attn_output.weight";
      l.bq = p + "attn_q.bias";
      l.bk = p + "attn_k.bias";
      l.bv = p + "attn_v.bias";
      l.bo = p + "attn_output.bias";
      l.ffn_norm = p + "ffn_norm.weight";
      l.w_gate = p + "ffn_gate.weight";
      l.w_up = p + "ffn_up.weight";
      l.w_down = p + "ffn_down.weight";
    } else {
      const std::string p = absl::StrCat("model.layers.", i, ".");
      l.attn_norm = p + "input_layernorm.weight";
      l.wq = p + "self_attn.q_proj.weight";
      l.wk = p + "self_attn.k_proj.weight";
      l.wv = p + "self_attn.v_proj.weight";
      l.wo = p + "self_attn.o_proj.weight";
      l.bq = p + "self_attn.q_proj.bias";
      l.bk = p + "self_attn.k_proj.bias";
      l.bv = p + "self_attn.v_proj.bias";
      l.bo = p + "self_attn.o_proj.bias";
      l.ffn_norm = p + "post_attention_layernorm.weight";
      l.w_gate = p + "mlp.gate_proj.weight";
      l.w_up = p + "mlp.up_proj.weight";
      l.w_down = p + "mlp.down_proj.weight";
    }
  }
  return w;
}

Status BindWeights(LoadedModel* model) {
  ModelConfig& c = model->config;
  TS_RETURN_IF_ERROR(CheckConfig(c, model->source));
  const Binder b(model);
  const WeightNames names = MakeWeightNames(model->format, c.n_layers);
  ModelWeights w;

  TS_ASSIGN_OR_RETURN(const TensorInfo* embed, b.Require(names.embed));
  if (c.vocab_size == 0 && embed->shape.size() == 2) c.vocab_size = embed->shape[0];
  TS_ASSIGN_OR_RETURN(w.embed, b.MatrixOf(*embed, c.vocab_size, c.hidden_size));
  if (c.tie_embeddings) {
    w.lm_head = w.embed;
  } else {
    TS_ASSIGN_OR_RETURN(w.lm_head, b.MatrixOf(names.lm_head, c.vocab_size, c.hidden_size));
  }
  TS_ASSIGN_OR_RETURN(w.final_norm, b.VectorOf(names.final_norm, c.hidden_size));
  w.layers.resize(static_cast<size_t>(c.n_layers));
  for (int i = 0; i < c.n_layers; ++i) {
    TS_RETURN_IF_ERROR(BindLayer(b, c, names.layers[i], &w.layers[i]));
  }
  for (int64_t id : c.eos_ids) {
    if (id < 0 || id >= c.vocab_size) {
      return BadInput(model->source, ": eos token id ", id, " is outside the vocabulary of ",
                      c.vocab_size);
    }
  }
  if (c.bos_id >= c.vocab_size) {
    return BadInput(model->source, ": bos token id ", c.bos_id, " is outside the vocabulary of ",
                    c.vocab_size);
  }
  model->weights = std::move(w);
  return absl::OkStatus();
}

std::string ShapeString(const std::vector<int64_t>& shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

StatusOr<std::vector<float>> ToF32(const TensorInfo& t) {
  int64_t n = 1;
  for (int64_t d : t.shape) n *= d;  // the parsers checked the product against the bytes
  std::vector<float> out;
  switch (t.dtype) {
    case DType::kF32:
      if (t.nbytes != static_cast<size_t>(n) * 4) break;
      out.resize(static_cast<size_t>(n));
      std::memcpy(out.data(), t.data, t.nbytes);
      return out;
    case DType::kF16:
    case DType::kBF16: {
      if (t.nbytes != static_cast<size_t>(n) * 2) break;
      out.resize(static_cast<size_t>(n));
      const bool f16 = t.dtype == DType::kF16;
      for (size_t i = 0; i < out.size(); ++i) {
        uint16_t bits;
        std::memcpy(&bits, t.data + 2 * i, 2);
        out[i] = f16 ? F16BitsToF32(bits) : Bf16BitsToF32(bits);
      }
      return out;
    }
    default:
      return BadInput(t.file, ": tensor '", t.name, "': dtype ",
                      std::string(GetDTypeInfo(t.dtype).name),
                      " is not supported for a 1-D tensor (expected f32, f16 or bf16)");
  }
  return BadInput(t.file, ": tensor '", t.name, "': ", t.nbytes, " bytes do not match shape ",
                  ShapeString(t.shape));
}

}  // namespace ts
