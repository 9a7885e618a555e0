// The default real model (SmolLM2-135M-Instruct, GGUF Q4_1), when it is in the model cache
// ($TS_CACHE_DIR or ~/.cache/tokenswift/models); skipped otherwise.
#include <cstdlib>
#include <filesystem>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "runtime/model/inspect.h"
#include "runtime/model/loader.h"
#include "tests/common/default_model.h"

namespace ts {
namespace {

constexpr const char* kModelFile = testing_paths::kDefaultModelFile;

std::string FindModel() { return testing_paths::DefaultModelPath(); }

TEST(RealModelTest, LoadsSmolLm2Q4_1) {
  const std::string path = FindModel();
  if (path.empty()) GTEST_SKIP() << kModelFile << " not in the model cache";
  auto model = LoadModelFiles(path);
  ASSERT_TRUE(model.ok()) << model.status();
  const ModelConfig& c = (*model)->config;
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.n_layers, 30);
  EXPECT_EQ(c.hidden_size, 576);
  EXPECT_EQ(c.intermediate_size, 1536);
  EXPECT_EQ(c.n_heads, 9);
  EXPECT_EQ(c.n_kv_heads, 3);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.vocab_size, 49152);
  EXPECT_EQ(c.max_position, 8192);
  EXPECT_FLOAT_EQ(c.rope_theta, 100000.0f);
  EXPECT_FLOAT_EQ(c.rms_eps, 1e-5f);
  EXPECT_EQ(c.rope_style, RopeStyle::kInterleaved);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.bos_id, 1);
  EXPECT_EQ(c.eos_ids, std::vector<int32_t>{2});

  ASSERT_TRUE((*model)->gguf_vocab.has_value());
  const VocabData& v = *(*model)->gguf_vocab;
  EXPECT_EQ(v.model, "gpt2");
  EXPECT_EQ(v.pre, "smollm");
  EXPECT_EQ(v.tokens.size(), 49152u);
  EXPECT_EQ(v.merges.size(), 48900u);
  EXPECT_EQ(v.tokens[2], "<|im_end|>");

  const ModelWeights& w = (*model)->weights;
  EXPECT_EQ(w.embed.dtype, DType::kQ8_0);
  EXPECT_EQ(w.embed.rows, 49152);
  EXPECT_EQ(w.embed.cols, 576);
  EXPECT_EQ(w.lm_head.data, w.embed.data);
  ASSERT_EQ(w.layers.size(), 30u);
  for (const LayerWeights& l : w.layers) {
    EXPECT_EQ(l.wq.dtype, DType::kQ4_1);
    EXPECT_EQ(l.wk.rows, 192);
    EXPECT_EQ(l.w_down.dtype, DType::kQ4_1);
    EXPECT_EQ(l.w_down.cols, 1536);
  }
  EXPECT_EQ((*model)->tensors.size(), 272u);

  auto text = InspectModel(path);
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, ::testing::HasSubstr("q4_1 210"));
  EXPECT_THAT(*text, ::testing::HasSubstr("weights:        ok"));
}

}  // namespace
}  // namespace ts
