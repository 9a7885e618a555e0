// GGUF parsing and loading: tiny models written by a small in-test writer, then a table of
// malformed files, each of which must fail with one BadInput line naming the file and the field.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/model/gguf.h"
#include "runtime/model/inspect.h"
#include "runtime/model/loader.h"

namespace ts {
namespace {

using ::testing::HasSubstr;

enum : uint32_t { kU8 = 0, kU32 = 4, kI32 = 5, kF32 = 6, kBool = 7, kStr = 8, kArr = 9, kU64 = 10 };
enum : uint32_t { kGgmlF32 = 0, kGgmlF16 = 1, kGgmlQ4_1 = 3, kGgmlQ8_0 = 8, kGgmlQ4_K = 12 };

// Appends little-endian values to a byte string.
struct Bytes {
  std::string b;
  template <typename T>
  Bytes& Put(T v) {
    b.append(reinterpret_cast<const char*>(&v), sizeof(T));
    return *this;
  }
  Bytes& Str(const std::string& s) {
    Put<uint64_t>(s.size());
    b += s;
    return *this;
  }
};

// Builds a GGUF file in memory: metadata and tensors in insertion order, data aligned to 32.
class GgufWriter {
 public:
  struct Tensor {
    std::string name;
    std::vector<uint64_t> ne;
    uint32_t type;
    std::string data;
    std::optional<uint64_t> offset_override;
  };

  void U32(const std::string& k, uint32_t v) { Kv(k, kU32).Put(v); }
  void F32(const std::string& k, float v) { Kv(k, kF32).Put(v); }
  void Bool(const std::string& k, bool v) { Kv(k, kBool).Put<uint8_t>(v); }
  void Str(const std::string& k, const std::string& v) { Kv(k, kStr).Str(v); }
  void StrArray(const std::string& k, const std::vector<std::string>& v) {
    Bytes& b = Kv(k, kArr).Put(kStr).Put<uint64_t>(v.size());
    for (const auto& s : v) b.Str(s);
  }
  void I32Array(const std::string& k, const std::vector<int32_t>& v) {
    Bytes& b = Kv(k, kArr).Put(kI32).Put<uint64_t>(v.size());
    for (int32_t x : v) b.Put(x);
  }
  void Raw(const std::string& k, uint32_t type, const std::string& payload) {
    Kv(k, type).b += payload;
  }
  void AddTensor(const std::string& name, std::vector<uint64_t> ne, uint32_t type,
                 std::string data) {
    tensors.push_back({name, std::move(ne), type, std::move(data)});
  }
  Tensor* Find(const std::string& name) {
    for (auto& t : tensors) {
      if (t.name == name) return &t;
    }
    return nullptr;
  }
  void Remove(const std::string& name) {
    std::erase_if(tensors, [&](const Tensor& t) { return t.name == name; });
  }

  std::string Build(uint32_t version = 3, uint64_t tensor_count_override = 0) const {
    Bytes out;
    out.b = "GGUF";
    out.Put(version);
    out.Put<uint64_t>(tensor_count_override ? tensor_count_override : tensors.size());
    out.Put<uint64_t>(n_kv_);
    out.b += kv_.b;
    uint64_t offset = 0;
    std::vector<uint64_t> offsets;
    for (const Tensor& t : tensors) {
      out.Str(t.name).Put<uint32_t>(t.ne.size());
      for (uint64_t n : t.ne) out.Put(n);
      out.Put(t.type);
      const uint64_t off = t.offset_override.value_or(offset);
      out.Put(off);
      offsets.push_back(off);
      offset += (t.data.size() + 31) / 32 * 32;
    }
    out.b.resize((out.b.size() + 31) / 32 * 32, '\0');
    const size_t data_start = out.b.size();
    for (size_t i = 0; i < tensors.size(); ++i) {
      if (tensors[i].offset_override) continue;
      out.b.resize(std::max(out.b.size(), data_start + offsets[i]), '\0');
      out.b += tensors[i].data;
    }
    out.b.resize((out.b.size() + 31) / 32 * 32, '\0');
    return out.b;
  }

  std::vector<Tensor> tensors;

 private:
  Bytes& Kv(const std::string& k, uint32_t type) {
    ++n_kv_;
    kv_.Str(k).Put(type);
    return kv_;
  }
  Bytes kv_;
  uint64_t n_kv_ = 0;
};

std::string F32Data(size_t n, float base = 1.0f) {
  std::string s(n * 4, '\0');
  for (size_t i = 0; i < n; ++i) {
    const float v = base + 0.01f * static_cast<float>(i);
    std::memcpy(&s[i * 4], &v, 4);
  }
  return s;
}

std::string Pattern(size_t n) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(i * 7 + 3);
  return s;
}

struct TinyDims {
  std::string arch = "llama";
  uint32_t layers = 2, hidden = 64, ff = 128, heads = 4, kv_heads = 2, vocab = 40;
  bool tied = true;
  bool bias = false;
  uint32_t matrix_type = kGgmlQ8_0;
};

// Bytes of an (rows x cols) matrix of ggml type `type`.
size_t MatrixBytes(uint32_t type, uint64_t rows, uint64_t cols) {
  switch (type) {
    case kGgmlF32:
      return rows * cols * 4;
    case kGgmlF16:
      return rows * cols * 2;
    case kGgmlQ8_0:
      return rows * cols / 32 * 34;
    case kGgmlQ4_1:
      return rows * cols / 32 * 20;
    case kGgmlQ4_K:
      return rows * cols / 256 * 144;
  }
  return 0;
}

GgufWriter TinyModel(const TinyDims& d) {
  GgufWriter w;
  const std::string& a = d.arch;
  w.Str("general.architecture", a);
  w.U32("general.alignment", 32);
  w.U32(a + ".block_count", d.layers);
  w.U32(a + ".context_length", 256);
  w.U32(a + ".embedding_length", d.hidden);
  w.U32(a + ".feed_forward_length", d.ff);
  w.U32(a + ".attention.head_count", d.heads);
  w.U32(a + ".attention.head_count_kv", d.kv_heads);
  w.F32(a + ".rope.freq_base", 100000.0f);
  w.F32(a + ".attention.layer_norm_rms_epsilon", 1e-5f);
  w.U32(a + ".rope.dimension_count", d.hidden / d.heads);
  w.Str("tokenizer.ggml.model", "gpt2");
  w.Str("tokenizer.ggml.pre", "smollm");
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (uint32_t i = 0; i < d.vocab; ++i) {
    tokens.push_back("t" + std::to_string(i));
    types.push_back(i < 3 ? 3 : 1);
  }
  w.StrArray("tokenizer.ggml.tokens", tokens);
  w.I32Array("tokenizer.ggml.token_type", types);
  w.StrArray("tokenizer.ggml.merges", {"t 1", "t 2"});
  w.U32("tokenizer.ggml.bos_token_id", 1);
  w.U32("tokenizer.ggml.eos_token_id", 2);
  w.Bool("tokenizer.ggml.add_bos_token", false);

  const uint64_t h = d.hidden, hd = d.hidden / d.heads, q = d.heads * hd, kv = d.kv_heads * hd;
  auto matrix = [&](const std::string& name, uint64_t rows, uint64_t cols) {
    w.AddTensor(name, {cols, rows}, d.matrix_type, Pattern(MatrixBytes(d.matrix_type, rows, cols)));
  };
  w.AddTensor("token_embd.weight", {h, d.vocab}, kGgmlQ8_0,
              Pattern(MatrixBytes(kGgmlQ8_0, d.vocab, h)));
  w.AddTensor("output_norm.weight", {h}, kGgmlF32, F32Data(h, 2.0f));
  if (!d.tied) matrix("output.weight", d.vocab, h);
  for (uint32_t i = 0; i < d.layers; ++i) {
    const std::string p = "blk." + std::to_string(i) + ".";
    w.AddTensor(p + "attn_norm.weight", {h}, kGgmlF32, F32Data(h));
    matrix(p + "attn_q.weight", q, h);
    matrix(p + "attn_k.weight", kv, h);
    matrix(p + "attn_v.weight", kv, h);
    matrix(p + "attn_output.weight", h, q);
    if (d.bias) {
      w.AddTensor(p + "attn_q.bias", {q}, kGgmlF32, F32Data(q, 0.5f));
      w.AddTensor(p + "attn_k.bias", {kv}, kGgmlF32, F32Data(kv, 0.5f));
      w.AddTensor(p + "attn_v.bias", {kv}, kGgmlF32, F32Data(kv, 0.5f));
    }
    w.AddTensor(p + "ffn_norm.weight", {h}, kGgmlF32, F32Data(h));
    matrix(p + "ffn_gate.weight", d.ff, h);
    matrix(p + "ffn_up.weight", d.ff, h);
    matrix(p + "ffn_down.weight", h, d.ff);
  }
  return w;
}

class GgufLoaderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("ts_gguf_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& bytes, const std::string& name = "model.gguf") {
    const std::string path = (dir_ / name).string();
    std::ofstream(path, std::ios::binary).write(bytes.data(), bytes.size());
    return path;
  }

  std::filesystem::path dir_;
};

TEST_F(GgufLoaderTest, LoadsTinyLlama) {
  const std::string path = Write(TinyModel({}).Build());
  auto model = LoadModelFiles(path);
  ASSERT_TRUE(model.ok()) << model.status();
  const ModelConfig& c = (*model)->config;
  EXPECT_EQ((*model)->format, "gguf");
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.n_layers, 2);
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.intermediate_size, 128);
  EXPECT_EQ(c.n_heads, 4);
  EXPECT_EQ(c.n_kv_heads, 2);
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_EQ(c.vocab_size, 40);
  EXPECT_EQ(c.max_position, 256);
  EXPECT_FLOAT_EQ(c.rope_theta, 100000.0f);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
  EXPECT_EQ(c.rope_style, RopeStyle::kInterleaved);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_ids, std::vector<int32_t>{2});
  EXPECT_FALSE(c.add_bos);

  ASSERT_TRUE((*model)->gguf_vocab.has_value());
  const VocabData& v = *(*model)->gguf_vocab;
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "smollm");
  ASSERT_EQ(v.tokens.size(), 40u);
  EXPECT_EQ(v.tokens[7], "t7");
  EXPECT_EQ(v.token_types[0], 3);
  EXPECT_EQ(v.merges, (std::vector<std::string>{"t 1", "t 2"}));

  const ModelWeights& w = (*model)->weights;
  EXPECT_EQ(w.embed.dtype, DType::kQ8_0);
  EXPECT_EQ(w.embed.rows, 40);
  EXPECT_EQ(w.embed.cols, 64);
  EXPECT_EQ(w.embed.row_bytes, 2u * 34u);
  EXPECT_EQ(w.lm_head.data, w.embed.data);
  ASSERT_EQ(w.layers.size(), 2u);
  EXPECT_EQ(w.layers[1].wk.rows, 32);
  EXPECT_EQ(w.layers[1].wk.cols, 64);
  EXPECT_EQ(w.layers[1].w_down.rows, 64);
  EXPECT_EQ(w.layers[1].w_down.cols, 128);
  EXPECT_EQ(w.layers[0].bq, nullptr);
  EXPECT_FLOAT_EQ(w.final_norm[0], 2.0f);
  EXPECT_FLOAT_EQ(w.layers[0].attn_norm[3], 1.03f);
  // Matrices point into the mapping: the first bytes are the pattern written.
  EXPECT_EQ(static_cast<const uint8_t*>(w.layers[0].wq.data)[1], 10);
  EXPECT_EQ((*model)->tensors.size(), 2u + 2u * 9u);
  EXPECT_EQ((*model)->tensors[0].shape, (std::vector<int64_t>{40, 64}));
}

TEST_F(GgufLoaderTest, LoadsQwen2WithBiasAndUntiedOutput) {
  TinyDims d;
  d.arch = "qwen2";
  d.bias = true;
  d.tied = false;
  d.matrix_type = kGgmlF16;
  const std::string path = Write(TinyModel(d).Build(/*version=*/2));
  auto model = LoadModelFiles(path);
  ASSERT_TRUE(model.ok()) << model.status();
  const ModelConfig& c = (*model)->config;
  EXPECT_EQ(c.arch, "qwen2");
  EXPECT_EQ(c.rope_style, RopeStyle::kNeox);
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.tie_embeddings);
  const ModelWeights& w = (*model)->weights;
  EXPECT_NE(w.lm_head.data, w.embed.data);
  EXPECT_EQ(w.lm_head.dtype, DType::kF16);
  ASSERT_NE(w.layers[1].bk, nullptr);
  EXPECT_FLOAT_EQ(w.layers[1].bk[2], 0.52f);
}

TEST_F(GgufLoaderTest, ReadsYarnScalingAndF16Norms) {
  GgufWriter w = TinyModel({});
  w.Str("llama.rope.scaling.type", "yarn");
  w.F32("llama.rope.scaling.factor", 4.0f);
  w.U32("llama.rope.scaling.original_context_length", 64);
  // f16 norm: 1.0, 0.5, -2.0, ... converted to f32.
  std::string halves;
  for (int i = 0; i < 64; ++i) {
    const uint16_t h[3] = {0x3C00, 0x3800, 0xC000};
    halves.append(reinterpret_cast<const char*>(&h[i % 3]), 2);
  }
  w.Find("output_norm.weight")->type = kGgmlF16;
  w.Find("output_norm.weight")->data = halves;
  auto model = LoadModelFiles(Write(w.Build()));
  ASSERT_TRUE(model.ok()) << model.status();
  const RopeScaling& rs = (*model)->config.rope_scaling;
  EXPECT_EQ(rs.type, RopeScaling::Type::kYarn);
  EXPECT_FLOAT_EQ(rs.factor, 4.0f);
  EXPECT_EQ(rs.original_max_position, 64);
  const float* n = (*model)->weights.final_norm;
  EXPECT_FLOAT_EQ(n[0], 1.0f);
  EXPECT_FLOAT_EQ(n[1], 0.5f);
  EXPECT_FLOAT_EQ(n[2], -2.0f);
}

TEST_F(GgufLoaderTest, ReadsRopeFreqFactors) {
  GgufWriter w = TinyModel({});
  w.AddTensor("rope_freqs.weight", {8}, kGgmlF32, F32Data(8, 1.0f));
  auto model = LoadModelFiles(Write(w.Build()));
  ASSERT_TRUE(model.ok()) << model.status();
  ASSERT_EQ((*model)->config.rope_scaling.freq_factors.size(), 8u);
  EXPECT_FLOAT_EQ((*model)->config.rope_scaling.freq_factors[7], 1.07f);
}

TEST_F(GgufLoaderTest, ParsesEveryMetadataType) {
  GgufWriter w;
  w.Raw("u8", 0, std::string(1, '\x05'));
  w.Raw("i8", 1, std::string(1, '\xfb'));
  w.Raw("u16", 2, Bytes().Put<uint16_t>(65535).b);
  w.Raw("i16", 3, Bytes().Put<int16_t>(-3).b);
  w.Raw("i64", 11, Bytes().Put<int64_t>(-1234567890123).b);
  w.Raw("u64", kU64, Bytes().Put<uint64_t>(77).b);
  w.Raw("f64", 12, Bytes().Put<double>(0.25).b);
  w.Raw("arr_f64", kArr, Bytes().Put<uint32_t>(12).Put<uint64_t>(2).Put(1.5).Put(2.5).b);
  w.Raw("arr_empty", kArr, Bytes().Put<uint32_t>(kStr).Put<uint64_t>(0).b);
  const std::string bytes = w.Build();
  auto f = ParseGguf(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "m.gguf");
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->Find("u8")->int_value, 5);
  EXPECT_EQ(f->Find("i8")->int_value, -5);
  EXPECT_EQ(f->Find("u16")->int_value, 65535);
  EXPECT_EQ(f->Find("i16")->int_value, -3);
  EXPECT_EQ(f->Find("i64")->int_value, -1234567890123);
  EXPECT_EQ(f->Find("u64")->int_value, 77);
  EXPECT_DOUBLE_EQ(f->Find("f64")->float_value, 0.25);
  EXPECT_EQ(f->Find("arr_f64")->floats, (std::vector<double>{1.5, 2.5}));
  EXPECT_EQ(f->Find("arr_empty")->array_size, 0u);
  EXPECT_EQ(f->kv_order.size(), 9u);
}

TEST_F(GgufLoaderTest, InspectDescribesTheModel) {
  auto text = InspectModel(Write(TinyModel({}).Build()));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("architecture:   llama"));
  EXPECT_THAT(*text, HasSubstr("heads:          4 (kv 2, head dim 16)"));
  EXPECT_THAT(*text, HasSubstr("q8_0 15"));
  EXPECT_THAT(*text, HasSubstr("weights:        ok"));
}

TEST_F(GgufLoaderTest, InspectReportsBindingErrors) {
  GgufWriter w = TinyModel({});
  w.Remove("blk.1.ffn_up.weight");
  auto text = InspectModel(Write(w.Build()));
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("missing tensor 'blk.1.ffn_up.weight'"));
}

// ---- malformed files ---------------------------------------------------------------------------

struct BadCase {
  std::string label;
  std::function<std::string()> bytes;
  std::string field;  // a substring the message must contain besides the file name
};

std::string Truncate(std::string s, size_t n) {
  s.resize(n);
  return s;
}

// Offset of the first byte after the 4-byte magic + version + counts.
constexpr size_t kHeaderBytes = 24;

std::vector<BadCase> BadCases() {
  std::vector<BadCase> cases;
  cases.push_back({"empty file", [] { return std::string(); }, "magic"});
  cases.push_back(
      {"wrong magic", [] { return "GGUX" + TinyModel({}).Build().substr(4); }, "magic"});
  cases.push_back({"version 1", [] { return TinyModel({}).Build(1); }, "version"});
  cases.push_back({"big-endian", [] { return TinyModel({}).Build(0x03000000); }, "big-endian"});
  cases.push_back(
      {"truncated header", [] { return Truncate(TinyModel({}).Build(), 10); }, "header"});
  cases.push_back({"truncated metadata",
                   [] { return Truncate(TinyModel({}).Build(), kHeaderBytes + 300); },
                   "metadata key #7: string length 29"});
  cases.push_back({"truncated tensor data",
                   [] {
                     std::string s = TinyModel({}).Build();
                     return Truncate(s, s.size() - 200);
                   },
                   "exceeds file size"});
  cases.push_back({"tensor offset out of range",
                   [] {
                     GgufWriter w = TinyModel({});
                     w.Find("blk.0.ffn_up.weight")->offset_override = uint64_t{1} << 40;
                     return w.Build();
                   },
                   "tensor 'blk.0.ffn_up.weight': data offset 1099511627776"});
  cases.push_back({"offset overflows",
                   [] {
                     GgufWriter w = TinyModel({});
                     w.Find("blk.0.ffn_up.weight")->offset_override = ~uint64_t{0} - 31;
                     return w.Build();
                   },
                   "tensor 'blk.0.ffn_up.weight': data offset"});
  cases.push_back({"misaligned offset",
                   [] {
                     GgufWriter w = TinyModel({});
                     w.Find("blk.0.ffn_up.weight")->offset_override = 33;
                     return w.Build();
                   },
                   "not a multiple of the alignment"});
  cases.push_back({"dims product overflows",
                   [] {
                     GgufWriter w = TinyModel({});
                     w.Find("blk.0.ffn_up.weight")->ne = {uint64_t{1} << 32, uint64_t{1} << 32};
                     return w.Build();
                   },
                   "tensor 'blk.0.ffn_up.weight': element count overflows"});
  cases.push_back({"byte size overflows",
                   [] {
                     GgufWriter w = TinyModel({});
                     w.Find("blk.0.ffn_up.weight")->type = kGgmlF32;
                     w.Find("blk.0.ffn_up.weight")->ne = {uint64_t{1} << 31, uint64_t{1} << 31};
                     return w.Build();
                   },
                   "tensor 'blk.0.ffn_up.weight': byte size overflows"});
  cases.push_back({"row byte size overflows",
                   [] {
                     GgufWriter w = TinyModel({});
                     w.Find("blk.0.ffn_norm.weight")->ne = {uint64_t{1} << 62};
                     return w.Build();
                   },
                   "tensor 'blk.0.ffn_norm.weight': byte size overflows"});
  cases.push_back({"too many dims",
                   [] {
                     GgufWriter w = TinyModel({});
                     w.Find("blk.0.ffn_up.weight")->ne = {1, 1, 1, 1, 1};
                     return w.Build();
                   },
                   "tensor 'blk.0.ffn_up.weight': n_dims 5"});
  cases.push_back({"unknown tensor type",
                   [] {
                     GgufWriter w = TinyModel({});
                     w.Find("blk.1.attn_k.weight")->type = 6;  // q5_0
                     return w.Build();
                   },
                   "tensor 'blk.1.attn_k.weight': unsupported ggml type id 6"});
  cases.push_back({"row not a multiple of the block",
                   [] {
                     TinyDims d;
                     d.matrix_type = kGgmlQ4_K;  // 256-element blocks, hidden is 64
                     return TinyModel(d).Build();
                   },
                   "row length 64 is not a multiple of the q4_k block size 256"});
  cases.push_back({"huge string length",
                   [] {
                     GgufWriter w;
                     w.Raw("general.name", kStr, Bytes().Put<uint64_t>(uint64_t{1} << 62).b);
                     return w.Build();
                   },
                   "metadata 'general.name': string length 4611686018427387904"});
  cases.push_back({"huge key length",
                   [] {
                     std::string s = TinyModel({}).Build();
                     const uint64_t huge = ~uint64_t{0};
                     std::memcpy(&s[kHeaderBytes], &huge, 8);
                     return s;
                   },
                   "metadata key #0: string length"});
  cases.push_back({"huge array count",
                   [] {
                     GgufWriter w;
                     w.Raw("tokenizer.ggml.tokens", kArr,
                           Bytes().Put<uint32_t>(kStr).Put<uint64_t>(uint64_t{1} << 60).b);
                     return w.Build();
                   },
                   "metadata 'tokenizer.ggml.tokens': array of 1152921504606846976 string"});
  cases.push_back({"huge metadata count",
                   [] {
                     std::string s = TinyModel({}).Build();
                     const uint64_t huge = uint64_t{1} << 50;
                     std::memcpy(&s[16], &huge, 8);
                     return s;
                   },
                   "header metadata count"});
  cases.push_back({"huge tensor count", [] { return TinyModel({}).Build(3, uint64_t{1} << 50); },
                   "header tensor count"});
  cases.push_back({"nested array",
                   [] {
                     GgufWriter w;
                     w.Raw("x", kArr, Bytes().Put<uint32_t>(kArr).Put<uint64_t>(1).b);
                     return w.Build();
                   },
                   "metadata 'x': nested arrays"});
  cases.push_back({"unknown value type",
                   [] {
                     GgufWriter w;
                     w.Raw("x", 99, "");
                     return w.Build();
                   },
                   "metadata 'x': unknown value type 99"});
  cases.push_back({"bad bool",
                   [] {
                     GgufWriter w;
                     w.Raw("x", kBool, std::string(1, '\x07'));
                     return w.Build();
                   },
                   "metadata 'x': bool value 7"});
  cases.push_back({"bad alignment",
                   [] {
                     GgufWriter w;
                     w.U32("general.alignment", 24);
                     return w.Build();
                   },
                   "general.alignment"});
  cases.push_back({"duplicate key",
                   [] {
                     GgufWriter w;
                     w.U32("a", 1);
                     w.U32("a", 2);
                     return w.Build();
                   },
                   "metadata 'a': duplicate key"});
  cases.push_back({"duplicate tensor",
                   [] {
                     GgufWriter w = TinyModel({});
                     w.AddTensor("blk.0.ffn_norm.weight", {64}, kGgmlF32, F32Data(64));
                     return w.Build();
                   },
                   "tensor 'blk.0.ffn_norm.weight': duplicate"});
  cases.push_back({"unsupported architecture",
                   [] {
                     TinyDims d;
                     d.arch = "qwen3";
                     return TinyModel(d).Build();
                   },
                   "general.architecture': 'qwen3' is not supported"});
  cases.push_back({"missing block_count",
                   [] {
                     GgufWriter w;
                     w.Str("general.architecture", "llama");
                     return w.Build();
                   },
                   "metadata 'llama.block_count': missing"});
  cases.push_back({"wrong metadata type",
                   [] {
                     GgufWriter w;
                     w.Str("general.architecture", "llama");
                     w.Str("llama.block_count", "thirty");
                     return w.Build();
                   },
                   "metadata 'llama.block_count': expected an integer, got string"});
  cases.push_back({"kv heads do not divide heads",
                   [] {
                     TinyDims d;
                     d.kv_heads = 3;
                     return TinyModel(d).Build();
                   },
                   "llama.attention.head_count_kv': 3 does not divide"});
  cases.push_back({"eos id out of range",
                   [] {
                     GgufWriter v;
                     v.Str("general.architecture", "llama");
                     v.Str("tokenizer.ggml.model", "gpt2");
                     v.StrArray("tokenizer.ggml.tokens", {"a", "b"});
                     v.U32("tokenizer.ggml.eos_token_id", 5);
                     return v.Build();
                   },
                   "tokenizer.ggml.eos_token_id': 5 is not in [0, 1]"});
  cases.push_back({"token_type size mismatch",
                   [] {
                     GgufWriter v;
                     v.Str("general.architecture", "llama");
                     v.Str("tokenizer.ggml.model", "gpt2");
                     v.StrArray("tokenizer.ggml.tokens", {"a", "b"});
                     v.I32Array("tokenizer.ggml.token_type", {1});
                     return v.Build();
                   },
                   "tokenizer.ggml.token_type': 1 entries but there are 2 tokens"});
  cases.push_back({"shape mismatch with config",
                   [] {
                     GgufWriter w = TinyModel({});
                     w.Find("blk.1.attn_q.weight")->ne = {64, 32};
                     w.Find("blk.1.attn_q.weight")->data = Pattern(32 * 64 / 32 * 34);
                     return w.Build();
                   },
                   "tensor 'blk.1.attn_q.weight': shape [32,64] but config expects [64,64]"});
  cases.push_back({"vocab mismatch with embedding",
                   [] {
                     GgufWriter w = TinyModel({});
                     w.Find("token_embd.weight")->ne = {64, 41};
                     w.Find("token_embd.weight")->data = Pattern(41 * 2 * 34);
                     return w.Build();
                   },
                   "tensor 'token_embd.weight': shape [41,64] but config expects [40,64]"});
  cases.push_back({"missing tensor",
                   [] {
                     GgufWriter w = TinyModel({});
                     w.Remove("blk.1.ffn_gate.weight");
                     return w.Build();
                   },
                   "missing tensor 'blk.1.ffn_gate.weight'"});
  cases.push_back({"quantized norm",
                   [] {
                     GgufWriter w = TinyModel({});
                     w.Find("blk.0.attn_norm.weight")->type = kGgmlQ8_0;
                     w.Find("blk.0.attn_norm.weight")->data = Pattern(68);
                     return w.Build();
                   },
                   "tensor 'blk.0.attn_norm.weight': dtype q8_0 is not supported for a 1-D"});
  cases.push_back({"partial rotary",
                   [] {
                     GgufWriter v;
                     v.Str("general.architecture", "llama");
                     v.U32("llama.block_count", 1);
                     v.U32("llama.embedding_length", 64);
                     v.U32("llama.feed_forward_length", 64);
                     v.U32("llama.attention.head_count", 4);
                     v.U32("llama.rope.dimension_count", 8);
                     return v.Build();
                   },
                   "llama.rope.dimension_count': 8 differs from head dim 16"});
  return cases;
}

TEST_F(GgufLoaderTest, MalformedFilesAreBadInputNamingFileAndField) {
  for (const BadCase& c : BadCases()) {
    SCOPED_TRACE(c.label);
    const std::string path = Write(c.bytes(), "bad.gguf");
    auto model = LoadModelFiles(path);
    ASSERT_FALSE(model.ok());
    EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument) << model.status();
    const std::string msg(model.status().message());
    EXPECT_THAT(msg, HasSubstr(path));
    EXPECT_THAT(msg, HasSubstr(c.field));
    EXPECT_EQ(msg.find('\n'), std::string::npos) << msg;
  }
}

TEST_F(GgufLoaderTest, MissingFileIsBadInputNamingThePath) {
  const std::string path = (dir_ / "nope.gguf").string();
  auto model = LoadModelFiles(path);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(model.status().message()), HasSubstr(path));
}

// Every prefix of a valid file fails cleanly (no crash, BadInput), and so does every single-byte
// corruption of the header region (a cheap deterministic complement to the fuzzers).
TEST_F(GgufLoaderTest, EveryTruncationAndHeaderByteFlipFailsCleanly) {
  const std::string good = TinyModel({}).Build();
  const std::string path = (dir_ / "t.gguf").string();
  for (size_t n = 0; n < good.size(); n += (n < 2048 ? 1 : 97)) {
    auto f = ParseGguf(reinterpret_cast<const uint8_t*>(good.data()), n, path);
    if (f.ok()) continue;  // a prefix that ends exactly after the tensor data can be valid
    EXPECT_EQ(f.status().code(), absl::StatusCode::kInvalidArgument);
  }
  for (size_t i = 0; i < 1024 && i < good.size(); ++i) {
    std::string bad = good;
    bad[i] = static_cast<char>(bad[i] ^ 0xA5);
    auto m = LoadModelFiles(Write(bad, "flip.gguf"));
    if (!m.ok()) EXPECT_EQ(m.status().code(), absl::StatusCode::kInvalidArgument) << i;
  }
}

}  // namespace
}  // namespace ts
