// CheckTreeVerifyEqualsAr (runtime/engine/tree_exactness.h) on the CPU backend: the check the GPU
// script runs on CUDA, here on tiny test models, f32 and bf16 weights and KV caches, 1 and 2
// threads. The last test shows the check can fail: a backend whose attention drops the last
// extra slot of a row (a tree-mask bug) is caught.
#include "runtime/engine/tree_exactness.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "runtime/engine/model.h"
#include "runtime/model/test_model.h"
#include "tests/common/fixtures.h"

namespace ts {
namespace {

namespace fs = std::filesystem;

struct Case {
  std::string preset;
  DType weights;
  DType kv;
  int threads;
};

std::string Name(const Case& c) {
  return c.preset + "_" + std::string(GetDTypeInfo(c.weights).name) + "_kv" +
         std::string(GetDTypeInfo(c.kv).name) + "_t" + std::to_string(c.threads);
}

void PrintTo(const Case& c, std::ostream* os) { *os << Name(c); }

class ModelFixture {
 protected:
  void LoadCase(const Case& c) {
    dir_ = fs::temp_directory_path() / ("ts_tree_exact_" + Name(c) + std::to_string(getpid()));
    auto preset = FindTestModelPreset(c.preset);
    ASSERT_TRUE(preset.ok()) << preset.status();
    ASSERT_TRUE(WriteTestModel(*preset, c.weights, dir_.string()).ok());
    auto model = LoadModel(dir_.string(), /*require_tokenizer=*/false);
    ASSERT_TRUE(model.ok()) << model.status();
    model_ = std::make_unique<Model>(std::move(*model));
  }
  ~ModelFixture() {
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  std::vector<int32_t> Prefix(int n) const {
    std::vector<int32_t> p;
    for (int i = 0; i < n; ++i) p.push_back(static_cast<int32_t>((37 * i + 5) % 200));
    return p;
  }

  fs::path dir_;
  std::unique_ptr<Model> model_;
};

class TreeExactnessTest : public ModelFixture, public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override { LoadCase(GetParam()); }
};

TEST_P(TreeExactnessTest, EveryNodeHasItsPathsArLogits) {
  ASSERT_NE(model_, nullptr);
  const Case& c = GetParam();
  auto backend = MakeCpuBackend(c.threads);
  TreeExactnessOptions options;
  options.kv_dtype = c.kv;
  for (const uint64_t seed : {1u, 2u}) {
    options.seed = seed;
    auto report =
        CheckTreeVerifyEqualsAr(model_->config(), model_->weights(), *backend, Prefix(70), options);
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_EQ(report->nodes, 64);
    EXPECT_GE(report->depth, 8);  // a tree, not a fan: paths several tokens deep
    EXPECT_GE(report->ar_forwards, 64);
    EXPECT_EQ(report->mismatched, 0) << report->first_mismatch;
  }
}

INSTANTIATE_TEST_SUITE_P(Presets, TreeExactnessTest,
                         ::testing::Values(Case{"llama-gqa-3kv", DType::kF32, DType::kBF16, 2},
                                           Case{"llama-gqa-llama3", DType::kBF16, DType::kF32, 1},
                                           Case{"qwen2-yarn", DType::kF32, DType::kF32, 2}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           std::string n = Name(info.param);
                           for (char& ch : n) {
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           }
                           return n;
                         });

// The CPU backend with attention that forgets the last extra slot of rows with two or more: the
// node itself, for every tree node below the root.
class DropLastSlotBackend : public Backend {
 public:
  explicit DropLastSlotBackend(std::unique_ptr<Backend> inner) : inner_(std::move(inner)) {}
  std::string Name() const override { return "drop-last-slot"; }
  bool host_memory() const override { return true; }
  StatusOr<Buffer> Alloc(size_t bytes) override { return inner_->Alloc(bytes); }
  void Upload(void* d, const void* s, size_t b) override { inner_->Upload(d, s, b); }
  Status Download(void* d, const void* s, size_t b) override { return inner_->Download(d, s, b); }
  void Copy(void* d, const void* s, size_t b) override { inner_->Copy(d, s, b); }
  void Copy2D(void* d, size_t dp, const void* s, size_t sp, size_t w, size_t h) override {
    inner_->Copy2D(d, dp, s, sp, w, h);
  }
  void Memset(void* d, int v, size_t b) override { inner_->Memset(d, v, b); }
  Status Synchronize() override { return inner_->Synchronize(); }
  void MatMul(const Matrix& w, const float* x, int64_t n, float* y, const float* bias) override {
    inner_->MatMul(w, x, n, y, bias);
  }
  void MatMulSegments(const Matrix& w, const float* x, int64_t n, std::span<const int64_t> bounds,
                      float* y) override {
    inner_->MatMulSegments(w, x, n, bounds, y);
  }
  void Embed(const Matrix& t, const int32_t* ids, int64_t n, float* out) override {
    inner_->Embed(t, ids, n, out);
  }
  void RmsNorm(const float* x, const float* w, int64_t n, int64_t dim, float eps,
               float* out) override {
    inner_->RmsNorm(x, w, n, dim, eps, out);
  }
  void Rope(float* x, int64_t n, int h, int hd, const int32_t* pos, const float* f, float m,
            RopeStyle s) override {
    inner_->Rope(x, n, h, hd, pos, f, m, s);
  }
  void StoreKv(const KvLayerView& c, const float* k, const float* v, int64_t n,
               const int32_t* slots) override {
    inner_->StoreKv(c, k, v, n, slots);
  }
  void GatherKv(const KvLayerView& s, const KvLayerView& d, const int32_t* slots, int64_t count,
                int64_t stride) override {
    inner_->GatherKv(s, d, slots, count, stride);
  }
  void Attention(const float* q, int64_t n, int h, const KvLayerView& c, const AttentionMask& m,
                 float scale, float* out) override {
    if (m.extra_begin == nullptr) return inner_->Attention(q, n, h, c, m, scale, out);
    const int64_t per_row = static_cast<int64_t>(h) * c.head_dim;
    for (int64_t i = 0; i < n; ++i) {
      const int32_t begin = m.extra_begin[i];
      int32_t end = m.extra_begin[i + 1];
      if (end - begin >= 2) --end;
      const int32_t row_begin[2] = {0, end - begin};
      const AttentionMask one{m.prefix_len + i, row_begin, m.extra_slots + begin};
      inner_->Attention(q + i * per_row, 1, h, c, one, scale, out + i * per_row);
    }
  }
  void SwiGlu(const float* g, const float* u, int64_t n, int64_t d, float* out) override {
    inner_->SwiGlu(g, u, n, d, out);
  }
  void Add(float* x, const float* y, int64_t count) override { inner_->Add(x, y, count); }
  void KeyScores(const KvLayerView& c, int head, const float* q, int64_t lo, int64_t hi,
                 float* scores) override {
    inner_->KeyScores(c, head, q, lo, hi, scores);
  }

 private:
  std::unique_ptr<Backend> inner_;
};

class TreeExactnessMutationTest : public ModelFixture, public ::testing::Test {
 protected:
  void SetUp() override { LoadCase(Case{"llama-gqa-3kv", DType::kF32, DType::kF32, 1}); }
};

TEST_F(TreeExactnessMutationTest, CatchesATreeMaskBug) {
  ASSERT_NE(model_, nullptr);
  DropLastSlotBackend broken(MakeCpuBackend(1));
  auto report = CheckTreeVerifyEqualsAr(model_->config(), model_->weights(), broken, Prefix(40),
                                        TreeExactnessOptions{});
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_EQ(report->mismatched, 63);  // every node but the root
  EXPECT_NE(report->first_mismatch.find("node 1 "), std::string::npos) << report->first_mismatch;
}

}  // namespace
}  // namespace ts
